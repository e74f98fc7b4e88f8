//! The pool against small upstreams on loopback that misbehave on cue: close a kept
//! connection, close after reading a request, never accept.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use blastwall_policy::retry::FailureKind;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{Barrier, Notify};

use super::*;
use crate::body::full;
use crate::config::BalanceConfig;

fn config(protocol: UpstreamProtocol, max_idle: usize) -> ClusterConfig {
    ClusterConfig {
        name: "api".to_owned(),
        endpoints: Vec::new(),
        balance: BalanceConfig::RoundRobin,
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(5),
        body_read_timeout: Duration::from_secs(60),
        protocol,
        dns_refresh: Duration::from_secs(30),
        panic_threshold: 0.5,
        max_idle_per_endpoint: max_idle,
        health_check: None,
        passive: Default::default(),
        retry_budget: Default::default(),
        concurrency: None,
    }
}

fn get(authority: &str) -> Request<ProxyBody> {
    Request::get(format!("http://{authority}/path?q=1"))
        .body(full(Bytes::new()))
        .expect("a valid request")
}

async fn body(response: Response<UpstreamBody>) -> Bytes {
    response
        .into_body()
        .collect()
        .await
        .expect("the whole body")
        .to_bytes()
}

/// An expiry no test reaches.
/// `request` sent with nothing added, to be answered soon.
async fn fetch(
    client: &UpstreamClient,
    request: Request<ProxyBody>,
) -> Result<Response<UpstreamBody>, UpstreamError> {
    client.send(request, AddedHeaders::default(), soon()).await
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

/// Polls `done` (bounded, 5 s) until it holds: waits for a state, asserts no timing.
async fn eventually(mut done: impl FnMut() -> bool) {
    let reached = crate::eventually::eventually(Duration::from_secs(5), || {
        let done = done();
        async move { done }
    })
    .await;
    assert!(reached, "condition not reached within 5 s");
}

/// What an HTTP/1.1 upstream does on each connection.
#[derive(Debug, Clone, Copy)]
struct Script {
    /// Requests answered before `then`.
    answers: usize,
    then: Then,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Then {
    /// Close the connection at once.
    Close,
    /// Read one more request, then close without answering.
    ReadAndClose,
    /// Keep the connection open until the test cuts it.
    CloseOnCue,
}

/// A raw HTTP/1.1 upstream on loopback, counting the connections it accepts and sees end.
struct Upstream {
    authority: String,
    accepted: Arc<AtomicUsize>,
    ended: Arc<AtomicUsize>,
    cut: Arc<Notify>,
}

impl Upstream {
    async fn start(script: Script, together: Option<Arc<Barrier>>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let ended = Arc::new(AtomicUsize::new(0));
        let cut = Arc::new(Notify::new());
        let (accepts, ends, cue) = (accepted.clone(), ended.clone(), cut.clone());
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                accepts.fetch_add(1, Ordering::SeqCst);
                let (ends, together, cue) = (ends.clone(), together.clone(), cue.clone());
                tokio::spawn(async move {
                    for _ in 0..script.answers {
                        if !read_head(&mut stream).await {
                            ends.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                        if let Some(together) = &together {
                            together.wait().await;
                        }
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        stream.write_all(answer).await.unwrap();
                    }
                    match script.then {
                        Then::Close => {}
                        Then::ReadAndClose => {
                            read_head(&mut stream).await;
                        }
                        Then::CloseOnCue => cue.notified().await,
                    }
                    ends.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        Self {
            authority,
            accepted,
            ended,
            cut,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn ended(&self) -> usize {
        self.ended.load(Ordering::SeqCst)
    }
}

/// Reads one request head (the tests send no bodies); false at end of stream.
async fn read_head(stream: &mut tokio::net::TcpStream) -> bool {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return false,
        }
    }
    true
}

const FOREVER: Script = Script {
    answers: usize::MAX,
    then: Then::Close,
};

#[tokio::test]
async fn requests_in_turn_reuse_one_kept_connection() {
    let upstream = Upstream::start(FOREVER, None).await;
    let client = UpstreamClient::new(&config(UpstreamProtocol::Http1, 8));
    for _ in 0..3 {
        let response = fetch(&client, get(&upstream.authority)).await.unwrap();
        assert_eq!(body(response).await, "ok");
    }
    assert_eq!(upstream.accepted(), 1);
}

#[tokio::test]
async fn a_kept_connection_the_endpoint_closed_is_replaced() {
    let once = Script {
        answers: 1,
        then: Then::CloseOnCue,
    };
    let upstream = Upstream::start(once, None).await;
    let client = UpstreamClient::new(&config(UpstreamProtocol::Http1, 8));
    let response = fetch(&client, get(&upstream.authority)).await.unwrap();
    assert_eq!(body(response).await, "ok");
    let pool = &client.shared.pool;
    assert_eq!(pool.open_http1(&upstream.authority), 1);
    upstream.cut.notify_one();
    eventually(|| pool.open_http1(&upstream.authority) == 0).await;
    assert_eq!(
        pool.kept_http1(&upstream.authority),
        1,
        "closed, not yet swept"
    );

    let response = fetch(&client, get(&upstream.authority)).await.unwrap();
    assert_eq!(body(response).await, "ok");
    assert_eq!(upstream.accepted(), 2);
}

#[tokio::test]
async fn a_request_handed_back_unsent_is_sent_on_a_new_connection() {
    let upstream = Upstream::start(FOREVER, None).await;
    let client = UpstreamClient::new(&config(UpstreamProtocol::Http1, 8));
    // A kept connection that cannot be written to although its endpoint has not closed it
    // (shut for writing on this side): it looks open, so the pool hands it out, and only
    // the send finds it broken, before a byte of the request is written.
    let dead_end = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let stream = std::net::TcpStream::connect(dead_end.local_addr().unwrap()).unwrap();
    let _accepted = dead_end.accept().unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    stream.set_nonblocking(true).unwrap();
    let connection = h1::Connection::new(TcpStream::from_std(stream).unwrap());
    assert!(connection.is_reusable());
    client
        .shared
        .pool
        .give_back_http1(&upstream.authority, connection);

    let response = fetch(&client, get(&upstream.authority)).await.unwrap();
    assert_eq!(body(response).await, "ok");
    assert_eq!(
        upstream.accepted(),
        1,
        "sent once more, on a new connection"
    );
}

#[tokio::test]
async fn a_request_that_may_have_been_sent_is_not_sent_again() {
    let once = Script {
        answers: 1,
        then: Then::ReadAndClose,
    };
    let upstream = Upstream::start(once, None).await;
    let client = UpstreamClient::new(&config(UpstreamProtocol::Http1, 8));
    let response = fetch(&client, get(&upstream.authority)).await.unwrap();
    assert_eq!(body(response).await, "ok");

    let error = fetch(&client, get(&upstream.authority)).await.unwrap_err();
    assert_eq!(error.kind(), FailureKind::Reset, "{error}");
    assert_eq!(upstream.accepted(), 1);
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_failure() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let authority = listener.local_addr().unwrap().to_string();
    drop(listener);
    let client = UpstreamClient::new(&config(UpstreamProtocol::Http1, 8));
    let error = fetch(&client, get(&authority)).await.unwrap_err();
    assert_eq!(error.kind(), FailureKind::ConnectFailed, "{error}");
}

#[tokio::test(start_paused = true)]
async fn a_connect_gives_up_after_the_connect_timeout() {
    // A listener that never accepts, with its accept queue full: the kernel drops further
    // SYNs, so a connect neither succeeds nor fails until the timeout (paused time: the
    // runtime jumps to it once nothing else can happen).
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let address = listener.local_addr().unwrap();
    let mut queued = Vec::new();
    for _ in 0..16 {
        match std::net::TcpStream::connect_timeout(&address, Duration::from_millis(200)) {
            Ok(stream) => queued.push(stream),
            Err(_) => break,
        }
    }
    let mut config = config(UpstreamProtocol::Http1, 8);
    config.connect_timeout = Duration::from_secs(3);
    let client = UpstreamClient::new(&config);
    let error = fetch(&client, get(&address.to_string())).await.unwrap_err();
    assert_eq!(error.kind(), FailureKind::ConnectFailed);
    assert!(error.to_string().contains("timed out after 3s"), "{error}");
}

#[tokio::test]
async fn an_endpoint_keeps_at_most_its_idle_cap() {
    // Three requests held until all three have arrived, so each needs its own connection.
    let upstream = Upstream::start(FOREVER, Some(Arc::new(Barrier::new(3)))).await;
    let client = UpstreamClient::new(&config(UpstreamProtocol::Http1, 1));
    for answer in concurrently(&client, &upstream.authority, 3).await {
        assert_eq!(answer, "ok");
    }
    assert_eq!(upstream.accepted(), 3);
    assert_eq!(client.shared.pool.kept_http1(&upstream.authority), 1);
    eventually(|| upstream.ended() == 2).await;
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    let upstream = Upstream::start(FOREVER, None).await;
    let client = UpstreamClient::new(&config(UpstreamProtocol::Http1, 8));
    let response = fetch(&client, get(&upstream.authority)).await.unwrap();
    assert_eq!(body(response).await, "ok");
    let pool = &client.shared.pool;
    // The reaper advances idle time a quarter of the idle timeout at a time.
    for _ in 0..4 {
        pool.reap();
    }
    assert_eq!(
        pool.kept_http1(&upstream.authority),
        1,
        "idle under 1 timeout"
    );
    pool.reap();
    assert_eq!(pool.kept_http1(&upstream.authority), 0);
    eventually(|| upstream.ended() == 1).await;
}

/// An HTTP/2 upstream (h2c) answering `ok`; `connections` holds each connection's task, so
/// a test can cut them.
struct Http2Upstream {
    authority: String,
    accepted: Arc<AtomicUsize>,
    connections: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Http2Upstream {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (accepts, tasks) = (accepted.clone(), connections.clone());
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                accepts.fetch_add(1, Ordering::SeqCst);
                let service = service_fn(|_| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                });
                let task = tokio::spawn(async move {
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                tasks.lock().unwrap().push(task);
            }
        });
        Self {
            authority,
            accepted,
            connections,
        }
    }

    fn cut_connections(&self) {
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

#[tokio::test]
async fn http2_requests_share_one_connection_and_replace_it_when_it_closes() {
    let upstream = Http2Upstream::start().await;
    let client = UpstreamClient::new(&config(UpstreamProtocol::Http2, 8));
    for answer in concurrently(&client, &upstream.authority, 4).await {
        assert_eq!(answer, "ok");
    }
    assert_eq!(upstream.accepted.load(Ordering::SeqCst), 1);

    upstream.cut_connections();
    eventually(|| !client.shared.pool.open_http2(&upstream.authority)).await;
    let response = fetch(&client, get(&upstream.authority)).await.unwrap();
    assert_eq!(body(response).await, "ok");
    assert_eq!(upstream.accepted.load(Ordering::SeqCst), 2);
}

/// Sends `count` requests at once, each on its own task, and returns their bodies.
async fn concurrently(client: &UpstreamClient, authority: &str, count: usize) -> Vec<Bytes> {
    let tasks: Vec<_> = (0..count)
        .map(|_| {
            let (client, request) = (client.clone(), get(authority));
            tokio::spawn(async move {
                let response = fetch(&client, request).await.unwrap();
                body(response).await
            })
        })
        .collect();
    let mut bodies = Vec::new();
    for task in tasks {
        bodies.push(task.await.unwrap());
    }
    bodies
}

#[tokio::test]
async fn an_http2_endpoints_trailers_come_through_filtered() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let authority = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let service = service_fn(|_| async {
            let mut trailers = http::HeaderMap::new();
            trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
            trailers.insert("content-length", http::HeaderValue::from_static("99"));
            trailers.insert("set-cookie", http::HeaderValue::from_static("a=b"));
            let body = Full::new(Bytes::from_static(b"ok"))
                .with_trailers(async move { Some(Ok::<_, Infallible>(trailers)) });
            Ok::<_, Infallible>(Response::new(body))
        });
        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(TokioIo::new(stream), service)
            .await;
    });
    let client = UpstreamClient::new(&config(UpstreamProtocol::Http2, 8));
    let response = fetch(&client, get(&authority)).await.unwrap();
    let collected = response.into_body().collect().await.expect("the body");
    let trailers = collected.trailers().expect("trailers").clone();
    assert_eq!(collected.to_bytes(), "ok");
    let names: Vec<_> = trailers.keys().map(|name| name.as_str()).collect();
    assert_eq!(names, ["grpc-status"]);
}
