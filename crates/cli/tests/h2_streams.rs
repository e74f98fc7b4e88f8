//! HTTP/2 slow readers and slow bodies judged per stream (issue #15, item 4): one stream
//! the client starves while it keeps another moving, or one it trickles below
//! `min_data_rate`, is ended within its limit, gives back what it held, and a normal
//! HTTP/2 client on another connection is still served.
//!
//! A Rust `h2` client plays both: it can hold one stream's window shut (never releasing
//! its capacity) while it reads another, and send a body a few bytes at a time.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use tokio::net::TcpStream;

use support::{Mock, Proxy, admin_section, admin_url, get};

/// Every stall timeout of the proxy under test, unless a test says otherwise.
const TIMEOUT: Duration = Duration::from_secs(2);
/// What an ending may take past its limit.
const SLACK: Duration = Duration::from_secs(1);
/// The large answer's size: far more than one stream window holds.
const LARGE: usize = 512 * 1024;
/// The small answer's size: a few frames, so a stream reading it moves the connection.
const SMALL: usize = 32 * 1024;
/// How long any loop of a test may run at all.
const BOUND: Duration = Duration::from_secs(15);

/// A proxy with a route `/large` held to one request at a time (no queue), and the rest
/// to a small-answer cluster; `listener_keys` are added to its listener.
fn config(small: &Mock, large: &Mock, listener_keys: &str) -> String {
    format!(
        r#"
[[listener]]
name = "public"
listen = "127.0.0.1:0"
{listener_keys}

[[route]]
name = "large"
cluster = "large"
match = {{ path_prefix = "/large" }}
concurrency = {{ limit = 1, queue = 0 }}

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

async fn start(listener_keys: &str) -> (Mock, Mock, Proxy) {
    let small = Mock::start("small", &[]);
    let large = Mock::start("large", &[]);
    small
        .set_behaviour(&format!(r#"{{"body_size":{SMALL}}}"#))
        .await;
    large
        .set_behaviour(&format!(r#"{{"body_size":{LARGE}}}"#))
        .await;
    let proxy = Proxy::start(&config(&small, &large, listener_keys));
    (small, large, proxy)
}

/// An h2c client on a new connection, with a large connection window (a starved stream
/// must not block the others at the connection level), and its connection's task.
async fn h2_client(
    proxy: &Proxy,
) -> (
    h2::client::SendRequest<Bytes>,
    tokio::task::JoinHandle<Result<(), h2::Error>>,
) {
    let tcp = TcpStream::connect(proxy.addr()).await.expect("connected");
    let (client, connection) = h2::client::Builder::new()
        .initial_connection_window_size(8 * 1024 * 1024)
        .handshake::<_, Bytes>(tcp)
        .await
        .expect("h2c handshake");
    (client, tokio::spawn(connection))
}

/// Sends a GET and reads its whole answer, releasing the window as it reads: its status
/// and length, or the error that ended it.
async fn fetch(
    client: &h2::client::SendRequest<Bytes>,
    url: &str,
) -> Result<(StatusCode, usize), h2::Error> {
    let mut client = client.clone().ready().await?;
    let request = Request::get(url).body(()).expect("a valid request");
    let (response, _) = client.send_request(request, true)?;
    let response = response.await?;
    let status = response.status();
    let mut body = response.into_body();
    let mut length = 0;
    while let Some(data) = body.data().await {
        let data = data?;
        length += data.len();
        let _ = body.flow_control().release_capacity(data.len());
    }
    Ok((status, length))
}

/// A normal HTTP/2 client on its own connection, asking for small answers until `stop`:
/// how many it asked, and how many were answered 200 in full.
fn normal_client(proxy: &Proxy, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<(u64, u64)> {
    let url = proxy.url("/");
    let addr = proxy.addr();
    tokio::spawn(async move {
        let tcp = TcpStream::connect(addr).await.expect("connected");
        let (client, connection) = h2::client::handshake(tcp).await.expect("h2c handshake");
        tokio::spawn(connection);
        let (asked, answered) = (AtomicU64::new(0), AtomicU64::new(0));
        let started = Instant::now();
        while !stop.load(Ordering::Relaxed) && started.elapsed() < BOUND {
            asked.fetch_add(1, Ordering::Relaxed);
            if let Ok((StatusCode::OK, SMALL)) = fetch(&client, &url).await {
                answered.fetch_add(1, Ordering::Relaxed);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (asked.into_inner(), answered.into_inner())
    })
}

/// Checks the normal client beside a test: it was asked to stop, and all it asked was
/// answered.
async fn assert_served(normal: tokio::task::JoinHandle<(u64, u64)>, stop: &AtomicBool) {
    stop.store(true, Ordering::Relaxed);
    let (asked, answered) = normal.await.expect("the normal client's task");
    eprintln!("normal client beside: {answered} of {asked} answered");
    assert!(asked > 0);
    assert_eq!(
        answered, asked,
        "the normal client beside was not fully served"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_starved_of_its_window_is_ended_while_another_stream_keeps_moving() {
    let (_small, _large, proxy) = start(
        r#"send_timeout = "2s"
request_body_timeout = "2s""#,
    )
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let normal = normal_client(&proxy, stop.clone());
    let (client, mut connection) = h2_client(&proxy).await;
    // Stream A: a large answer whose window is never opened past the first 64 KiB.
    let mut starved = client.clone().ready().await.expect("ready for a stream");
    let request = Request::get(proxy.url("/large"))
        .body(())
        .expect("a valid request");
    let (response, _) = starved.send_request(request, true).expect("sent");
    let held = response.await.expect("the large answer's head");
    assert_eq!(held.status(), StatusCode::OK);
    let started = Instant::now();
    // Stream B, again and again: small answers read in full, so the connection moves.
    let mut moved = 0;
    let ended = loop {
        if connection.is_finished() {
            break Some(started.elapsed());
        }
        if started.elapsed() > BOUND {
            break None;
        }
        match fetch(&client, &proxy.url("/")).await {
            Ok((StatusCode::OK, SMALL)) => moved += 1,
            // The GOAWAY, or the close after it.
            _ => {
                let closed = tokio::time::timeout(SLACK, &mut connection).await;
                break closed.is_ok().then(|| started.elapsed());
            }
        }
    };
    eprintln!("starved stream: connection ended after {ended:?}, {moved} answers beside it");
    let ended = ended.expect("the connection with the starved stream was never ended");
    assert!(moved > 0, "the other stream never moved");
    assert!(
        ended <= TIMEOUT + SLACK,
        "ended {ended:?} after the starved stream began (send_timeout {TIMEOUT:?})"
    );
    drop(held);
    // The starved stream's slot on `/large` (a limit of one, no queue) is back.
    let (status, _, body) = get(&proxy.url("/large")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body.len(), LARGE);
    assert_served(normal, &stop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_body_trickled_below_the_minimum_rate_is_ended_after_the_grace() {
    let grace = Duration::from_secs(1);
    let (small, _large, proxy) = start(
        r#"request_body_timeout = "5s"
min_data_rate = "1000B/s"
min_data_rate_grace = "1s""#,
    )
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let normal = normal_client(&proxy, stop.clone());
    let (client, _connection) = h2_client(&proxy).await;
    let mut client = client.ready().await.expect("ready for a stream");
    let request = Request::post(proxy.url("/upload"))
        .body(())
        .expect("a valid request");
    let (response, mut body) = client.send_request(request, false).expect("sent");
    let response = tokio::spawn(response);
    // Ten bytes every 100 ms: 100 bytes a second, never silent for the 5 s timeout.
    let started = Instant::now();
    let ended = loop {
        if response.is_finished() || started.elapsed() > BOUND {
            break started.elapsed();
        }
        if body
            .send_data(Bytes::from_static(b"0123456789"), false)
            .is_err()
        {
            break started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let answer = response.await.expect("the answer's task");
    eprintln!("trickled body: ended after {ended:?} with {answer:?}");
    assert!(
        ended <= grace + SLACK,
        "the trickled body went on for {ended:?} (grace {grace:?})"
    );
    if let Ok(answer) = answer {
        assert_ne!(answer.status(), StatusCode::OK, "a trickled body was taken");
    }
    // The client's doing, not the endpoint's: no attempt failure is counted against it,
    // and it still takes requests.
    let (_, _, metrics) = get(&admin_url(&proxy, "/metrics")).await;
    let failures: f64 = metrics
        .lines()
        .filter(|line| {
            line.starts_with("blastwall_upstream_attempt_failures_total{")
                && line.contains(r#"cluster="small""#)
        })
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum();
    assert_eq!(failures, 0.0, "the endpoint was blamed for a slow client");
    let (status, _, _) = get(&proxy.url("/")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(small.requests().await > 0);
    assert_served(normal, &stop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_whose_window_is_trickled_below_the_minimum_rate_is_reset_after_the_grace() {
    let grace = Duration::from_secs(1);
    let (_small, _large, proxy) = start(
        r#"send_timeout = "5s"
min_data_rate = "100000B/s"
min_data_rate_grace = "1s""#,
    )
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let normal = normal_client(&proxy, stop.clone());
    let tcp = TcpStream::connect(proxy.addr()).await.expect("connected");
    // A small stream window, opened again only 100 ms after each piece: about 40 KB a
    // second, never silent for the 5 s timeout.
    let (client, connection) = h2::client::Builder::new()
        .initial_window_size(4096)
        .initial_connection_window_size(8 * 1024 * 1024)
        .handshake::<_, Bytes>(tcp)
        .await
        .expect("h2c handshake");
    tokio::spawn(connection);
    let mut client = client.ready().await.expect("ready for a stream");
    let request = Request::get(proxy.url("/large"))
        .body(())
        .expect("a valid request");
    let (response, _) = client.send_request(request, true).expect("sent");
    let response = response.await.expect("the large answer's head");
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let started = Instant::now();
    let mut read = 0;
    let ended = loop {
        if started.elapsed() > BOUND {
            break None;
        }
        match body.data().await {
            Some(Ok(data)) => {
                read += data.len();
                tokio::time::sleep(Duration::from_millis(100)).await;
                let _ = body.flow_control().release_capacity(data.len());
            }
            Some(Err(error)) => break Some((started.elapsed(), error)),
            None => break None,
        }
    };
    eprintln!("trickled window: {ended:?} after {read} bytes");
    let (ended, error) = ended.expect("the trickled answer was never reset");
    assert!(error.is_reset(), "ended by {error}");
    assert!(
        ended <= grace + SLACK,
        "the trickled answer went on for {ended:?} (grace {grace:?})"
    );
    assert!(read < LARGE);
    // Its slot on `/large` (a limit of one, no queue) is back.
    let (status, _, answer) = get(&proxy.url("/large")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_served(normal, &stop).await;
}
