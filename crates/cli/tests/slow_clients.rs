//! Slow clients against the real proxy (issue #15, item 4): clients that send a head slowly,
//! stop sending a body, or never read their answer (HTTP/1.1 and, with a zero flow-control
//! window, HTTP/2) are closed within their timeout plus a second, give back the slots they
//! held, and a normal client beside them is still served.
//!
//! Raw sockets for the slow ones, bounded in count and time. The normal client's latency
//! with and without the attack is printed (run with `--nocapture`), never asserted.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::{Mock, Proxy, admin_section, admin_url, eventually, get, small_window_socket};

/// Every slow-client timeout of the proxy under test.
const TIMEOUT: Duration = Duration::from_secs(2);
/// What a closing may take past its timeout.
const SLACK: Duration = Duration::from_secs(1);
/// Slow connections of each kind.
const SLOW: usize = 100;
/// The large answer's size: far more than a small receive buffer and the proxy's first
/// send buffer hold.
const LARGE: usize = 512 * 1024;

fn config(small: &Mock, large: &Mock) -> String {
    format!(
        r#"
[[listener]]
name = "public"
listen = "127.0.0.1:0"
header_read_timeout = "2s"
request_body_timeout = "2s"
send_timeout = "2s"

[[route]]
name = "large"
cluster = "large"
match = {{ path_prefix = "/large" }}
concurrency = {{ limit = 200 }}

[[route]]
name = "small"
cluster = "small"

[cluster.small]
endpoints = [{{ address = "{}" }}]

[cluster.large]
endpoints = [{{ address = "{}" }}]
{}
"#,
        small.addr,
        large.addr,
        admin_section("")
    )
}

async fn start() -> (Mock, Mock, Proxy) {
    let small = Mock::start("small", &[]);
    let large = Mock::start("large", &[]);
    large
        .set_behaviour(&format!(r#"{{"body_size":{LARGE}}}"#))
        .await;
    let proxy = Proxy::start(&config(&small, &large));
    (small, large, proxy)
}

/// Reads until the proxy closes, for at most `within`; what was read, or `None` if the
/// connection was still open then.
async fn read_to_close(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut output = Vec::new();
    match tokio::time::timeout(within, stream.read_to_end(&mut output)).await {
        Ok(Ok(_)) => Some(output),
        // A reset is a close too.
        Ok(Err(_)) => Some(output),
        Err(_) => None,
    }
}

/// Sends a head that never ends: closed with 408 within `header_read_timeout` (+1 s) of
/// the connection being made.
async fn slow_head(proxy: SocketAddr) -> Result<Duration, String> {
    let mut stream = TcpStream::connect(proxy).await.map_err(|e| e.to_string())?;
    // From the handshake's end: 300 connections at once can see a SYN dropped and resent
    // a second later, before the proxy could know of them.
    let started = Instant::now();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let output = read_to_close(&mut stream, TIMEOUT + SLACK)
        .await
        .ok_or("slow head: still open past its timeout")?;
    if !output.starts_with(b"HTTP/1.1 408") {
        return Err(format!(
            "slow head: {:?}",
            String::from_utf8_lossy(&output[..output.len().min(80)])
        ));
    }
    Ok(started.elapsed())
}

/// Sends a head and part of a body, then nothing: 408 and closed within
/// `request_body_timeout` (+1 s) of the last byte.
async fn slow_body(proxy: SocketAddr) -> Result<Duration, String> {
    let mut stream = TcpStream::connect(proxy).await.map_err(|e| e.to_string())?;
    stream
        .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nfirst bytes")
        .await
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let output = read_to_close(&mut stream, TIMEOUT + SLACK)
        .await
        .ok_or("slow body: still open past its timeout")?;
    if !output.starts_with(b"HTTP/1.1 408") {
        return Err(format!(
            "slow body: {:?}",
            String::from_utf8_lossy(&output[..output.len().min(80)])
        ));
    }
    Ok(started.elapsed())
}

/// Asks for the large answer with a small receive buffer and reads nothing until its
/// timeout plus a second has passed: by then the proxy must have given up, so the answer
/// ends short of its length. Returns the bytes that came before the close.
async fn slow_read(proxy: SocketAddr) -> Result<usize, String> {
    let mut stream = small_window_socket()
        .map_err(|e| e.to_string())?
        .connect(proxy)
        .await
        .map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET /large HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    tokio::time::sleep(TIMEOUT + SLACK).await;
    // Whatever the proxy had handed to its socket before it gave up still arrives.
    let mut output = Vec::new();
    let mut buffer = vec![0; 64 * 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => output.extend_from_slice(&buffer[..n]),
            Err(_) => {
                return Err(format!(
                    "slow read: still open past its timeout, {} bytes read",
                    output.len()
                ));
            }
        }
    }
    if output.len() >= LARGE {
        return Err(format!(
            "slow read: the whole answer came ({} bytes): the proxy never gave up",
            output.len()
        ));
    }
    Ok(output.len())
}

/// Latencies of `count` GETs, one every 5 ms (or after the last, if slower), on one
/// keep-alive client; panics on any answer but 200.
async fn normal_requests(proxy: &Proxy, count: usize) -> Vec<Duration> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let url: hyper::Uri = proxy.url("/").parse().expect("a valid URL");
    let mut latencies = Vec::with_capacity(count);
    let mut pace = tokio::time::interval(Duration::from_millis(5));
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for _ in 0..count {
        pace.tick().await;
        let started = Instant::now();
        let request = Request::get(url.clone())
            .body(Empty::new())
            .expect("a valid request");
        let response = tokio::time::timeout(Duration::from_secs(10), client.request(request))
            .await
            .expect("a normal request is answered beside the attack")
            .expect("a normal request is answered");
        let status = response.status();
        let _ = response.into_body().collect().await;
        assert_eq!(status, StatusCode::OK, "a normal request failed");
        latencies.push(started.elapsed());
    }
    latencies
}

fn percentile(latencies: &mut [Duration], share: f64) -> Duration {
    latencies.sort();
    let index = ((latencies.len() as f64 * share).ceil() as usize).saturating_sub(1);
    latencies[index.min(latencies.len() - 1)]
}

/// Client connections the proxy has open, from its metrics.
async fn open_connections(proxy: &Proxy) -> u64 {
    let (_, _, metrics) = get(&admin_url(proxy, "/metrics")).await;
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("blastwall_connections "))
        .and_then(|value| value.trim().parse().ok())
        .expect("a connections gauge")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_heads_bodies_and_readers_are_closed_in_time_and_a_normal_client_is_served() {
    let (_small, _large, proxy) = start().await;
    let addr = proxy.addr();
    normal_requests(&proxy, 50).await;
    let mut quiet = normal_requests(&proxy, 600).await;

    let mut attack = tokio::task::JoinSet::new();
    for _ in 0..SLOW {
        attack.spawn(async move { ("slow head", slow_head(addr).await) });
        attack.spawn(async move { ("slow body", slow_body(addr).await) });
        attack.spawn(async move {
            // Closed by its deadline, as the short answer shows.
            let read = slow_read(addr).await.map(|_| TIMEOUT + SLACK);
            ("slow read", read)
        });
    }
    // About as long as the attack lasts.
    let mut beside = normal_requests(&proxy, 600).await;
    let mut closed_after: Vec<(&str, Duration)> = Vec::new();
    let mut failures = Vec::new();
    while let Some(joined) = attack.join_next().await {
        match joined.expect("a slow client task") {
            (kind, Ok(after)) => closed_after.push((kind, after)),
            (_, Err(failure)) => failures.push(failure),
        }
    }
    eprintln!(
        "normal client p50/p99: quiet {:?}/{:?}, beside {SLOW}x3 slow clients {:?}/{:?}",
        percentile(&mut quiet, 0.5),
        percentile(&mut quiet, 0.99),
        percentile(&mut beside, 0.5),
        percentile(&mut beside, 0.99),
    );
    assert!(
        failures.is_empty(),
        "{} failed: {failures:?}",
        failures.len()
    );
    for (kind, after) in &closed_after {
        assert!(*after <= TIMEOUT + SLACK, "{kind} closed after {after:?}");
    }
    // Every slow connection is gone on the proxy's side too (the normal client's may stay).
    assert!(
        eventually(Duration::from_secs(5), || async {
            open_connections(&proxy).await <= 1
        })
        .await,
        "the proxy still holds {} connections",
        open_connections(&proxy).await
    );
    // The slow readers' route slots are back: as many large answers as they held, and as
    // many again as the route lets a normal-priority request hold (150 of 200) would not fit.
    let mut readers = tokio::task::JoinSet::new();
    for _ in 0..SLOW {
        let url = proxy.url("/large");
        readers.spawn(async move { get(&url).await });
    }
    while let Some(answer) = readers.join_next().await {
        let (status, _, body) = answer.expect("a reader task");
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body.len(), LARGE);
    }
    let slowest = |kind: &str| {
        closed_after
            .iter()
            .filter(|(of, _)| *of == kind)
            .map(|(_, after)| *after)
            .max()
            .unwrap_or_default()
    };
    eprintln!(
        "closed within: slow head {:?}, slow body {:?}, slow read by {:?} (timeouts {TIMEOUT:?})",
        slowest("slow head"),
        slowest("slow body"),
        slowest("slow read")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_client_that_opens_no_window_is_closed_after_send_timeout() {
    let (_small, _large, proxy) = start().await;
    let tcp = TcpStream::connect(proxy.addr()).await.expect("connected");
    // A stream window of 0: the proxy can send answers' heads, never a byte of their bodies.
    let (client, connection) = h2::client::Builder::new()
        .initial_window_size(0)
        .handshake::<_, Bytes>(tcp)
        .await
        .expect("h2c handshake");
    let connection = tokio::spawn(connection);
    let mut heads = Vec::new();
    for _ in 0..20 {
        let mut client = client.clone().ready().await.expect("ready for a stream");
        let request = Request::get(proxy.url("/large"))
            .body(())
            .expect("a valid request");
        let (response, _) = client.send_request(request, true).expect("sent");
        heads.push(response);
    }
    // The bodies are held and never read: their windows stay shut.
    let mut held = Vec::new();
    for response in heads {
        let response = response.await.expect("an answer's head");
        assert_eq!(response.status(), StatusCode::OK);
        held.push(response);
    }
    let started = Instant::now();
    let ended = tokio::time::timeout(TIMEOUT + SLACK, connection).await;
    assert!(
        ended.is_ok(),
        "the connection was still open {:?} after the answers began",
        started.elapsed()
    );
    eprintln!(
        "zero-window HTTP/2 connection closed after {:?}",
        started.elapsed()
    );
    drop(held);
    // Its streams' slots are back: the route takes as many large answers again.
    assert!(
        eventually(Duration::from_secs(5), || async {
            open_connections(&proxy).await == 0
        })
        .await,
        "the proxy still holds the connection"
    );
    let (status, _, body) = get(&proxy.url("/large")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.len(), LARGE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_client_that_stops_sending_a_body_is_closed_after_request_body_timeout() {
    let (_small, _large, proxy) = start().await;
    let tcp = TcpStream::connect(proxy.addr()).await.expect("connected");
    let (client, connection) = h2::client::handshake(tcp).await.expect("h2c handshake");
    let connection = tokio::spawn(connection);
    let mut client = client.ready().await.expect("ready for a stream");
    let request = Request::post(proxy.url("/"))
        .header("content-length", "1000")
        .body(())
        .expect("a valid request");
    let (_response, mut body) = client.send_request(request, false).expect("sent");
    body.send_data(Bytes::from_static(b"first bytes"), false)
        .expect("a first piece");
    let started = Instant::now();
    // Nothing more is sent, and the stream is held open.
    let ended = tokio::time::timeout(TIMEOUT + SLACK, connection).await;
    assert!(
        ended.is_ok(),
        "the connection was still open {:?} after the body stopped",
        started.elapsed()
    );
    drop(body);
    assert!(
        eventually(Duration::from_secs(5), || async {
            open_connections(&proxy).await == 0
        })
        .await,
        "the proxy still holds the connection"
    );
}
