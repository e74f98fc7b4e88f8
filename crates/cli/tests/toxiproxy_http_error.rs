//! The `http_error` toxic on real sockets, in front of a real HTTP server (the mock): it
//! answers its status on keep-alive connections, lets requests go when lifted, survives
//! hostile bytes, and says in its log what it passed through or why it closed.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::{Value, json};
use support::toxiproxy_api::{add_toxic, call, proxy};
use support::{Mock, Toxiproxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A keep-alive HTTP/1.1 client on a raw connection: answers must have a `content-length`.
struct Client {
    stream: TcpStream,
    got: Vec<u8>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connected");
        Self {
            stream,
            got: Vec::new(),
        }
    }

    /// Writes `request` (maybe none, to read an answer to one sent before) and reads the
    /// next answer: its status and body.
    async fn exchange(&mut self, request: &[u8]) -> (u16, String) {
        self.stream.write_all(request).await.expect("written");
        tokio::time::timeout(Duration::from_secs(10), self.answer())
            .await
            .expect("answered in time")
    }

    async fn answer(&mut self) -> (u16, String) {
        loop {
            if let Some(end) = self.got.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.got[..end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|line| line.strip_prefix("content-length:"))
                    .and_then(|value| value.trim().parse().ok())
                    .expect("an answer with a content-length");
                if self.got.len() >= end + 4 + length {
                    let status = head[9..12].parse().expect("a status");
                    let body = String::from_utf8_lossy(&self.got[end + 4..end + 4 + length]);
                    let answer = (status, body.into_owned());
                    self.got.drain(..end + 4 + length);
                    return answer;
                }
            }
            let mut buf = [0; 4096];
            let n = self.stream.read(&mut buf).await.expect("read");
            assert!(
                n > 0,
                "closed mid-answer: {:?}",
                String::from_utf8_lossy(&self.got)
            );
            self.got.extend_from_slice(&buf[..n]);
        }
    }
}

const GET: &[u8] = b"GET /a HTTP/1.1\r\nHost: mock\r\n\r\n";
const POST_CHUNKED: &[u8] =
    b"POST /b HTTP/1.1\r\nHost: mock\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";

#[tokio::test]
async fn http_error_answers_its_status_on_a_keep_alive_connection_and_lets_go_when_lifted() {
    let server = Toxiproxy::start();
    let mock = Mock::start("m", &[]);
    let listen = proxy(&server, "web", mock.addr).await;
    let created = add_toxic(
        &server,
        "web",
        json!({"type": "http_error", "attributes": {"status": 503, "body": "toxic"}}),
    )
    .await;
    assert_eq!(created["stream"], "upstream");
    let mut client = Client::connect(listen).await;
    assert_eq!(client.exchange(GET).await, (503, "toxic".to_owned()));
    assert_eq!(
        client.exchange(POST_CHUNKED).await,
        (503, "toxic".to_owned())
    );
    assert_eq!(mock.requests().await, 0, "the mock saw none");
    let (status, _) = call(
        &server,
        Method::POST,
        "/proxies/web/toxics/http_error_upstream",
        json!({"toxicity": 0}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = client.exchange(POST_CHUNKED).await;
    assert_eq!(status, 200, "forwarded on the same connection");
    assert_eq!(client.exchange(GET).await.0, 200);
    assert_eq!(mock.requests().await, 2);
}

#[tokio::test]
async fn hostile_bytes_through_http_error_neither_panic_nor_hang_the_proxy() {
    let server = Toxiproxy::start();
    let mock = Mock::start("m", &[]);
    let listen = proxy(&server, "web", mock.addr).await;
    add_toxic(
        &server,
        "web",
        json!({"type": "http_error", "attributes": {"status": 500}}),
    )
    .await;
    let mut oversized = b"GET / HTTP/1.1\r\n".to_vec();
    oversized.extend(std::iter::repeat_n(b'a', 200 * 1024));
    let bad_chunk = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec();
    let pipelined = [GET, GET, GET].concat();
    for hostile in [oversized, bad_chunk, b"\x00\x01\x02\r\n\r\n".to_vec()] {
        let mut stream = TcpStream::connect(listen).await.expect("connected");
        // The proxy closes or passes the bytes on; the mock answers or sees the client's
        // end (a server may wait for the rest of a head): either way the connection ends.
        let _ = stream.write_all(&hostile).await;
        let _ = stream.shutdown().await;
        let mut rest = Vec::new();
        let ended =
            tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest)).await;
        assert!(ended.is_ok(), "the connection ended");
    }
    let mut client = Client::connect(listen).await;
    assert_eq!(client.exchange(&pipelined).await.0, 500);
    for _ in 0..2 {
        assert_eq!(
            client.exchange(b"").await.0,
            500,
            "each pipelined request answered"
        );
    }
    let (status, _) = call(&server, Method::GET, "/proxies", Value::Null).await;
    assert_eq!(status, StatusCode::OK, "the API still answers");
}

/// Whether `log` comes to contain `text` (a server's log is written as it goes).
async fn logged(log: &Path, text: &str) -> bool {
    support::eventually(Duration::from_secs(10), || async {
        std::fs::read_to_string(log).is_ok_and(|written| written.contains(text))
    })
    .await
}

#[tokio::test]
async fn what_http_error_passes_through_or_closes_on_is_said_in_the_log() {
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let log = scratch.path().join("stderr.log");
    let api = Toxiproxy::start_logged(&["--log", "info"], &log);
    let mock = Mock::start("m", &[]);
    let listen = proxy(&api, "web", mock.addr).await;
    add_toxic(&api, "web", json!({"type": "http_error"})).await;

    let mut binary = TcpStream::connect(listen).await.expect("connected");
    binary
        .write_all(b"\x00\x01 not http\r\n\r\n")
        .await
        .expect("written");
    assert!(
        logged(&log, "passing them through untouched").await,
        "{:?}",
        std::fs::read_to_string(&log)
    );

    let mut garbage = TcpStream::connect(listen).await.expect("connected");
    let bad_chunk = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
    garbage.write_all(bad_chunk).await.expect("written");
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), garbage.read_to_end(&mut rest)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "closed by the proxy: {read:?}"
    );
    assert!(rest.is_empty(), "no answer: {rest:?}");
    assert!(logged(&log, "closing the connection").await);
}
