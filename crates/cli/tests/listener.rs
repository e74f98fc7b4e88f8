//! Listener limits and request checks against the real proxy, with raw sockets wherever a
//! well-behaved client could not send what is being tested.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use http::StatusCode;
use support::{Mock, Proxy, eventually, get};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bound on every wait for an answer; a passing test never comes near it.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

fn config(upstream: &Mock, listener_settings: &str) -> String {
    format!(
        r#"
[[listener]]
name = "public"
listen = "127.0.0.1:0"
{listener_settings}

[[route]]
cluster = "api"

[cluster.api]
endpoints = [{{ address = "{}" }}]
"#,
        upstream.addr
    )
}

/// One response read off a raw connection: its head (lowercased) and body.
#[derive(Debug)]
struct Raw {
    status: u16,
    head: String,
    body: String,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim() == name).then(|| value.trim())
        })
    }
}

/// A raw client connection that can read responses one at a time.
struct Client {
    stream: TcpStream,
    buffered: Vec<u8>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Self {
        Self {
            stream: TcpStream::connect(addr).await.expect("connects"),
            buffered: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("writes");
    }

    /// Reads one response (Content-Length framed, as the proxy's own answers are), or None
    /// if the connection closes first.
    async fn response(&mut self) -> Option<Raw> {
        tokio::time::timeout(ANSWER_WITHIN, self.read_response())
            .await
            .expect("an answer or a close in time")
    }

    async fn read_response(&mut self) -> Option<Raw> {
        loop {
            if let Some(end) = find(&self.buffered, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buffered[..end]).to_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|line| line.strip_prefix("content-length:"))
                    .map_or(0, |value| value.trim().parse().expect("a length"));
                let total = end + 4 + length;
                while self.buffered.len() < total {
                    if !self.fill().await {
                        return None;
                    }
                }
                let body = String::from_utf8_lossy(&self.buffered[end + 4..total]).into_owned();
                self.buffered.drain(..total);
                let status = head[9..12].parse().expect("a status");
                return Some(Raw { status, head, body });
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        match self.stream.read(&mut chunk).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buffered.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// Whether the proxy closed the connection (reads end, within the bound).
    async fn closed(&mut self) -> bool {
        tokio::time::timeout(ANSWER_WITHIN, async { while self.fill().await {} })
            .await
            .is_ok()
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// Sends `request` on a fresh connection and returns the answer, checking the proxy then
/// closes the connection.
async fn refused(addr: SocketAddr, request: &str) -> Raw {
    let mut client = Client::connect(addr).await;
    client.send(request.as_bytes()).await;
    let answer = client
        .response()
        .await
        .unwrap_or_else(|| panic!("no answer to {request:?}"));
    assert!(
        client.closed().await,
        "connection stays open after {request:?}"
    );
    answer
}

#[tokio::test]
async fn smuggling_and_bad_host_requests_get_400_and_never_reach_the_upstream() {
    let upstream = Mock::start("a", &[]);
    let proxy = Proxy::start(&config(&upstream, ""));
    let cases = [
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -5\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        "POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\r\n",
        "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "GET http://a.example/ HTTP/1.1\r\nHost: b.example\r\n\r\n",
        "GET / HTTP/1.1\r\nX-No-Host: 1\r\n\r\n",
    ];
    for request in cases {
        let answer = refused(proxy.addr(), request).await;
        assert_eq!(answer.status, 400, "{request:?}: {answer:?}");
        assert_eq!(answer.header("x-blastwall-error"), Some("bad_request"));
        assert!(answer.body.starts_with("bad_request: "), "{}", answer.body);
    }
    assert_eq!(upstream.requests().await, 0, "nothing was forwarded");
    let (status, _, _) = get(&proxy.url("/")).await;
    assert_eq!(status, StatusCode::OK, "the proxy still serves");
}

#[tokio::test]
async fn a_refused_request_closes_only_its_own_connection() {
    let upstream = Mock::start("a", &[]);
    let proxy = Proxy::start(&config(&upstream, ""));
    let get_request = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    let mut kept = Client::connect(proxy.addr()).await;
    kept.send(get_request).await;
    assert_eq!(kept.response().await.map(|r| r.status), Some(200));
    let mut smugglers = tokio::task::JoinSet::new();
    for _ in 0..4 {
        smugglers.spawn(refused(
            proxy.addr(),
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ));
    }
    for _ in 0..4 {
        kept.send(get_request).await;
        assert_eq!(kept.response().await.map(|r| r.status), Some(200));
    }
    while let Some(answer) = smugglers.join_next().await {
        assert_eq!(answer.expect("no panic").status, 400);
    }
    // A good request pipelined before a bad one on the same connection is still served.
    let mut pipelined = Client::connect(proxy.addr()).await;
    pipelined
        .send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
        .await;
    assert_eq!(pipelined.response().await.map(|r| r.status), Some(200));
    assert_eq!(pipelined.response().await.map(|r| r.status), Some(400));
    assert!(pipelined.closed().await);
}

#[tokio::test]
async fn heads_over_the_size_or_header_count_limit_get_431_and_heads_under_pass() {
    let upstream = Mock::start("a", &[]);
    let proxy = Proxy::start(&config(
        &upstream,
        "max_header_bytes = \"2KiB\"\nmax_headers = 20",
    ));
    let headers =
        |count: usize| -> String { (0..count).map(|n| format!("X-{n}: v\r\n")).collect() };
    let mut client = Client::connect(proxy.addr()).await;
    client
        .send(format!("GET / HTTP/1.1\r\nHost: a\r\n{}\r\n", headers(19)).as_bytes())
        .await;
    assert_eq!(client.response().await.map(|r| r.status), Some(200));
    let long = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Long: {}\r\n\r\n",
        "a".repeat(1900)
    );
    client.send(long.as_bytes()).await;
    assert_eq!(client.response().await.map(|r| r.status), Some(200));
    for request in [
        format!("GET / HTTP/1.1\r\nHost: a\r\n{}\r\n", headers(25)),
        format!(
            "GET / HTTP/1.1\r\nHost: a\r\nX-Long: {}\r\n\r\n",
            "a".repeat(2100)
        ),
        format!(
            "GET / HTTP/1.1\r\nHost: a\r\nX-Long: {}\r\n\r\n",
            "a".repeat(40_000)
        ),
    ] {
        let answer = refused(proxy.addr(), &request).await;
        assert_eq!(answer.status, 431, "{answer:?}");
        assert_eq!(
            answer.header("x-blastwall-error"),
            Some("request_headers_too_large")
        );
    }
    assert_eq!(upstream.requests().await, 2);
}

#[tokio::test]
async fn a_body_over_max_request_body_gets_413_and_one_under_is_forwarded() {
    let upstream = Mock::start("a", &["--echo"]);
    let proxy = Proxy::start(&config(&upstream, "max_request_body = \"1KiB\""));
    // Declared too large: refused at once, the body never sent, the upstream never asked.
    let answer = refused(
        proxy.addr(),
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n",
    )
    .await;
    assert_eq!(answer.status, 413, "{answer:?}");
    assert_eq!(
        answer.header("x-blastwall-error"),
        Some("request_body_too_large")
    );
    assert_eq!(upstream.requests().await, 0);
    // Within the limit: forwarded whole.
    let mut client = Client::connect(proxy.addr()).await;
    let body = "b".repeat(1000);
    client
        .send(
            format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n{body}").as_bytes(),
        )
        .await;
    let answer = client.response().await.expect("an answer");
    assert_eq!(answer.status, 200);
    assert!(
        answer.body.contains("\"body_bytes\":1000"),
        "{}",
        answer.body
    );
    // Chunked, growing past the limit mid-stream: the upstream attempt is abandoned, 413.
    let chunk = format!("258\r\n{}\r\n", "c".repeat(600));
    let mut client = Client::connect(proxy.addr()).await;
    client
        .send(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await;
    for _ in 0..2 {
        client.send(chunk.as_bytes()).await;
    }
    let answer = client.response().await.expect("an answer");
    assert_eq!(answer.status, 413, "{answer:?}");
    assert_eq!(
        answer.header("x-blastwall-error"),
        Some("request_body_too_large")
    );
}

#[tokio::test]
async fn a_slow_head_gets_408_at_the_deadline_and_other_clients_are_served_meanwhile() {
    let upstream = Mock::start("a", &[]);
    let proxy = Proxy::start(&config(&upstream, "header_read_timeout = \"1s\""));
    let mut slow = Client::connect(proxy.addr()).await;
    slow.send(b"GET / HTTP/1.1\r\nHost: a\r\nX-Half: ").await;
    let started = std::time::Instant::now();
    for _ in 0..5 {
        let (status, _, _) = get(&proxy.url("/")).await;
        assert_eq!(status, StatusCode::OK);
    }
    let answer = slow.response().await.expect("a 408");
    assert_eq!(answer.status, 408);
    assert_eq!(
        answer.header("x-blastwall-error"),
        Some("header_read_timeout")
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "not before the deadline"
    );
    assert!(slow.closed().await);
    // A connection that sends nothing at all is closed at the deadline, without an answer.
    let mut silent = Client::connect(proxy.addr()).await;
    assert!(silent.response().await.is_none());
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_idle_timeout_not_header_read_timeout() {
    let upstream = Mock::start("a", &[]);
    let proxy = Proxy::start(&config(
        &upstream,
        "header_read_timeout = \"300ms\"\nidle_timeout = \"1500ms\"",
    ));
    let request = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    let mut client = Client::connect(proxy.addr()).await;
    client.send(request).await;
    assert_eq!(client.response().await.map(|r| r.status), Some(200));
    // Idle for longer than the head deadline: still open, as the head timer only runs
    // while a head is arriving.
    tokio::time::sleep(Duration::from_millis(700)).await;
    client.send(request).await;
    assert_eq!(client.response().await.map(|r| r.status), Some(200));
    let idle_from = std::time::Instant::now();
    assert!(client.closed().await, "closed once idle");
    assert!(idle_from.elapsed() >= Duration::from_millis(1400));
}

#[tokio::test]
async fn the_nth_response_says_connection_close_and_the_connection_ends() {
    let upstream = Mock::start("a", &[]);
    let proxy = Proxy::start(&config(&upstream, "max_requests_per_connection = 3"));
    let mut client = Client::connect(proxy.addr()).await;
    for n in 1..=3 {
        client.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
        let answer = client.response().await.expect("an answer");
        assert_eq!(answer.status, 200);
        let close = answer.header("connection") == Some("close");
        assert_eq!(close, n == 3, "response {n}: {}", answer.head);
    }
    assert!(client.closed().await);
}

#[tokio::test]
async fn http2_connections_get_a_goaway_after_max_requests_and_when_idle() {
    let upstream = Mock::start("a", &[]);
    let proxy = Proxy::start(&config(
        &upstream,
        "max_requests_per_connection = 2\nidle_timeout = \"1s\"",
    ));
    let (mut sender, ended) = h2c(proxy.addr()).await;
    for _ in 0..2 {
        let response = sender
            .send_request(h2_get(proxy.addr()))
            .await
            .expect("served");
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert!(
        eventually(ANSWER_WITHIN, || async { ended.is_finished() }).await,
        "the connection ends after its quota"
    );
    let (mut sender, ended) = h2c(proxy.addr()).await;
    let response = sender
        .send_request(h2_get(proxy.addr()))
        .await
        .expect("served");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        eventually(ANSWER_WITHIN, || async { ended.is_finished() }).await,
        "an idle HTTP/2 connection is closed"
    );
}

type H2Sender = hyper::client::conn::http2::SendRequest<http_body_util::Empty<bytes::Bytes>>;

async fn h2c(addr: SocketAddr) -> (H2Sender, tokio::task::JoinHandle<()>) {
    let stream = TcpStream::connect(addr).await.expect("connects");
    let (sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("h2c handshake");
    let ended = tokio::spawn(async move {
        let _ = connection.await;
    });
    (sender, ended)
}

fn h2_get(addr: SocketAddr) -> http::Request<http_body_util::Empty<bytes::Bytes>> {
    http::Request::get(format!("http://{addr}/"))
        .body(http_body_util::Empty::new())
        .expect("a request")
}

#[tokio::test]
async fn past_max_connections_a_connection_waits_until_another_closes() {
    let upstream = Mock::start("a", &[]);
    let proxy = Proxy::start(&config(&upstream, "max_connections = 1"));
    let request = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    let mut first = Client::connect(proxy.addr()).await;
    first.send(request).await;
    assert_eq!(first.response().await.map(|r| r.status), Some(200));
    let mut second = Client::connect(proxy.addr()).await;
    second.send(request).await;
    let held_back = tokio::time::timeout(Duration::from_millis(500), second.read_response()).await;
    assert!(held_back.is_err(), "served while the only slot is taken");
    drop(first);
    assert_eq!(second.response().await.map(|r| r.status), Some(200));
}

/// A body of `left` chunks of 600 bytes, with no length announced.
struct Chunks {
    left: u32,
}

impl hyper::body::Body for Chunks {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.left == 0 {
            return std::task::Poll::Ready(None);
        }
        this.left -= 1;
        let chunk = bytes::Bytes::from(vec![b'c'; 600]);
        std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(chunk))))
    }
}

#[tokio::test]
async fn an_http2_body_growing_past_the_limit_gets_413_and_the_connection_serves_on() {
    let upstream = Mock::start("a", &["--echo"]);
    let proxy = Proxy::start(&config(&upstream, "max_request_body = \"1KiB\""));
    let stream = TcpStream::connect(proxy.addr()).await.expect("connects");
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("h2c handshake");
    tokio::spawn(connection);
    let post = |left| {
        http::Request::post(format!("http://{}/", proxy.addr()))
            .body(Chunks { left })
            .expect("a request")
    };
    let response = sender.send_request(post(3)).await.expect("an answer");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        response.headers()["x-blastwall-error"],
        "request_body_too_large"
    );
    let response = sender.send_request(post(1)).await.expect("an answer");
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "same connection, within the limit"
    );
}

#[tokio::test]
async fn after_a_chunked_request_the_connection_keeps_serving_and_timing_heads() {
    let upstream = Mock::start("a", &["--echo"]);
    let proxy = Proxy::start(&config(&upstream, "header_read_timeout = \"1s\""));
    let mut client = Client::connect(proxy.addr()).await;
    client
        .send(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        .await;
    let answer = client.response().await.expect("an answer");
    assert_eq!(answer.status, 200);
    assert!(answer.body.contains("\"body_bytes\":5"), "{}", answer.body);
    client.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert_eq!(client.response().await.map(|r| r.status), Some(200));
    // A head trickling in after that is still cut off at the deadline.
    client.send(b"GET / HTTP/1.1\r\nHo").await;
    assert!(
        client.closed().await,
        "the slow head is not waited for forever"
    );
}
