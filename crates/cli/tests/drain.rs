//! SIGTERM drains: new connections are refused at once, keep-alive clients are told to
//! close, requests in flight finish, and the process exits 0, within the drain timeout
//! whatever the upstreams do.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::StatusCode;
use support::{Mock, Proxy, admin_url, eventually, get, try_send};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn config(upstream: &Mock, drain_timeout: &str) -> String {
    format!(
        r#"
[proxy]
drain_timeout = "{drain_timeout}"

[[listener]]
name = "public"
listen = "127.0.0.1:0"

[[route]]
cluster = "slow"

[cluster.slow]
request_timeout = "60s"
endpoints = [{{ address = "{}" }}]
"#,
        upstream.addr
    )
}

/// Sends one HTTP/1.1 request on a raw keep-alive connection and reads the response head.
async fn raw_request(stream: &mut TcpStream) -> String {
    stream
        .write_all(b"GET /x HTTP/1.1\r\nhost: blastwall\r\n\r\n")
        .await
        .expect("request written");
    let mut head = Vec::new();
    let mut buffer = [0; 1024];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        let read = stream.read(&mut buffer).await.expect("response read");
        assert!(read > 0, "closed before the response head");
        head.extend_from_slice(&buffer[..read]);
    }
    String::from_utf8_lossy(&head).to_lowercase()
}

/// Whether the server closes `stream` (reads end) within a few seconds.
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buffer = [0; 1024];
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer)).await {
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
    false
}

async fn in_flight_at(mock: &Mock, count: u64) -> bool {
    eventually(Duration::from_secs(10), || async {
        mock.stats().await["in_flight"].as_u64() == Some(count)
    })
    .await
}

async fn refuses_connections(addr: SocketAddr) -> bool {
    eventually(Duration::from_secs(5), || async {
        TcpStream::connect(addr).await.is_err()
    })
    .await
}

#[tokio::test]
async fn sigterm_finishes_slow_requests_refuses_new_connections_and_exits_zero() {
    let upstream = Mock::start("slow", &["--latency", "1500ms"]);
    let mut proxy = Proxy::start(&config(&upstream, "10s"));
    let addr = proxy.addr();
    // An idle keep-alive connection, which the drain should close at once.
    let mut idle = TcpStream::connect(addr).await.expect("connects");
    // A keep-alive connection whose request is in flight: answered, then told to close.
    let mut busy = TcpStream::connect(addr).await.expect("connects");
    let busy = tokio::spawn(async move { raw_request(&mut busy).await });
    let slow: Vec<_> = (0..3)
        .map(|_| {
            let url = proxy.url("/x");
            tokio::spawn(async move { get(&url).await.0 })
        })
        .collect();
    assert!(
        in_flight_at(&upstream, 4).await,
        "requests reach the upstream"
    );

    let signalled = Instant::now();
    proxy.process.signal("TERM");
    proxy.process.wait_for_line("draining on SIGTERM");
    assert!(
        refuses_connections(addr).await,
        "new connections are refused"
    );
    assert!(
        slow.iter().any(|request| !request.is_finished()),
        "refused while requests were still in flight"
    );
    assert!(closed_by_server(&mut idle).await, "idle keep-alive closed");

    for request in slow {
        assert_eq!(request.await.expect("request task"), StatusCode::OK);
    }
    let head = busy.await.expect("busy task");
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("connection: close"), "told to close: {head}");
    assert_eq!(
        proxy.process.wait_exit(Duration::from_secs(10)),
        Some(true),
        "exits 0"
    );
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "within the drain timeout"
    );
    let drained = proxy.process.wait_for_line("drained");
    assert!(
        drained.contains("0 connections and 0 requests cut"),
        "{drained}"
    );
}

#[tokio::test]
async fn a_request_hanging_past_the_drain_timeout_is_cut_and_the_process_exits_anyway() {
    let upstream = Mock::start("stuck", &["--mode", "hang"]);
    let mut proxy = Proxy::start(&config(&upstream, "500ms"));
    let url = proxy.url("/x");
    let hanging = tokio::spawn(async move { try_send(http::Method::GET, &url, "", &[]).await });
    assert!(
        in_flight_at(&upstream, 1).await,
        "the request reaches the upstream"
    );
    proxy.process.signal("TERM");
    assert_eq!(
        proxy.process.wait_exit(Duration::from_secs(10)),
        Some(true),
        "exits 0 once the drain timeout is reached"
    );
    let drained = proxy.process.wait_for_line("drained");
    assert!(drained.contains("1 requests cut"), "{drained}");
    let answer = hanging.await.expect("request task");
    assert!(answer.is_err(), "the cut request ends: {answer:?}");
}

#[tokio::test]
async fn a_second_sigterm_during_the_drain_exits_at_once() {
    let upstream = Mock::start("stuck", &["--mode", "hang"]);
    let mut proxy = Proxy::start(&config(&upstream, "60s"));
    let url = proxy.url("/x");
    let _hanging = tokio::spawn(async move { try_send(http::Method::GET, &url, "", &[]).await });
    assert!(
        in_flight_at(&upstream, 1).await,
        "the request reaches the upstream"
    );
    proxy.process.signal("TERM");
    proxy.process.wait_for_line("draining on SIGTERM");
    proxy.process.signal("TERM");
    assert_eq!(
        proxy.process.wait_exit(Duration::from_secs(10)),
        Some(false),
        "exits at once, with a failure status"
    );
    proxy.process.wait_for_line("drain cut short by SIGTERM");
}

#[tokio::test]
async fn a_request_half_sent_when_the_drain_begins_is_still_answered() {
    let upstream = Mock::start("a", &[]);
    let mut proxy = Proxy::start(&config(&upstream, "10s"));
    let mut stream = TcpStream::connect(proxy.addr()).await.expect("connected");
    stream
        .write_all(b"GET /x HTTP/1.1\r\nhost: blastwall\r\n")
        .await
        .expect("first half written");
    // The proxy must have taken the connection before the drain begins: it counts it in the
    // task that goes on at once to read the first half, already waiting on the socket.
    let metrics = admin_url(&proxy, "/metrics");
    let taken = eventually(Duration::from_secs(10), || async {
        get(&metrics)
            .await
            .2
            .lines()
            .any(|line| line == "blastwall_connections 1")
    })
    .await;
    assert!(taken, "the proxy never counted the connection");
    proxy.process.signal("TERM");
    // The drain has begun once the listener refuses new connections: the same stop tells
    // the open connection to close after its request.
    let addr = proxy.addr();
    let draining = eventually(Duration::from_secs(10), || async {
        TcpStream::connect(addr).await.is_err()
    })
    .await;
    assert!(draining, "the listener still takes connections");
    stream
        .write_all(b"\r\n")
        .await
        .expect("second half written");
    let mut head = Vec::new();
    let mut buffer = [0; 1024];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        let read = stream.read(&mut buffer).await.expect("response read");
        assert!(read > 0, "closed without answering the half-sent request");
        head.extend_from_slice(&buffer[..read]);
    }
    let head = String::from_utf8_lossy(&head).to_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    assert_eq!(proxy.process.wait_exit(Duration::from_secs(10)), Some(true));
}
