//! What `blastwall toxiproxy` does beyond Toxiproxy, on real sockets: toxics on the first
//! connections only, the `http_error` toxic in front of a real HTTP server (the mock),
//! `GET /metrics` counting real traffic, `--config`, and `/version` as Shopify's answers.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::{Value, json};
use support::{Mock, Toxiproxy, eventually_blocking, send};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A TCP server on loopback that echoes every byte back.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bound");
    let addr = listener.local_addr().expect("an address");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = stream.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    addr
}

/// Sends a request to the API and parses the answer (null when it has no JSON body).
async fn call(server: &Toxiproxy, method: Method, path: &str, body: Value) -> (StatusCode, Value) {
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    let (status, _, text) = send(method, &server.url(path), &body, &[]).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Creates proxy `name` in front of `upstream` and returns the address it really listens on.
async fn proxy(server: &Toxiproxy, name: &str, upstream: SocketAddr) -> SocketAddr {
    let body = json!({"name": name, "listen": "127.0.0.1:0", "upstream": upstream.to_string()});
    let (status, created) = call(server, Method::POST, "/proxies", body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["listen"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .expect("a real address")
}

async fn add_toxic(server: &Toxiproxy, name: &str, toxic: Value) -> Value {
    let path = format!("/proxies/{name}/toxics");
    let (status, created) = call(server, Method::POST, &path, toxic).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    created
}

/// Writes `data` and expects it back.
async fn echoes(stream: &mut TcpStream, data: &[u8]) {
    stream.write_all(data).await.expect("written");
    let mut back = vec![0; data.len()];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut back))
        .await
        .expect("echoed in time")
        .expect("echoed");
    assert_eq!(back, data);
}

/// Whether nothing comes back for a while (a stalled connection).
async fn stalls(stream: &mut TcpStream, data: &[u8]) -> bool {
    stream.write_all(data).await.expect("written");
    let mut buf = [0; 1];
    tokio::time::timeout(Duration::from_millis(300), stream.read(&mut buf))
        .await
        .is_err()
}

#[tokio::test]
async fn a_toxic_with_first_connections_acts_on_that_many_new_connections_then_none() {
    let server = Toxiproxy::start();
    let listen = proxy(&server, "p", echo_server().await).await;
    let mut before = TcpStream::connect(listen).await.expect("connected");
    echoes(&mut before, b"warm").await;
    let created = add_toxic(
        &server,
        "p",
        json!({"type": "timeout", "first_connections": 2, "attributes": {"timeout": 0}}),
    )
    .await;
    assert_eq!(created["first_connections"], 2);
    echoes(&mut before, b"opened before it: untouched").await;
    for n in 0..2 {
        let mut stream = TcpStream::connect(listen).await.expect("connected");
        assert!(
            stalls(&mut stream, b"lost").await,
            "new connection {n} stalls"
        );
    }
    let mut third = TcpStream::connect(listen).await.expect("connected");
    echoes(&mut third, b"the third passes").await;
    let (_, listed) = call(&server, Method::GET, "/proxies/p/toxics", Value::Null).await;
    assert_eq!(listed[0]["first_connections"], 2);
    let plain = add_toxic(&server, "p", json!({"type": "latency"})).await;
    assert!(plain.get("first_connections").is_none(), "{plain}");
}

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

/// The samples of a Prometheus text exposition, by name and labels as written; panics on a
/// line that is not a comment nor a sample.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("a sample line");
            (series.to_owned(), value.parse().expect("a number"))
        })
        .collect()
}

#[tokio::test]
async fn metrics_count_the_real_connections_bytes_and_toxics_in_prometheus_text() {
    let server = Toxiproxy::start();
    let echo = echo_server().await;
    let listen = proxy(&server, "db", echo).await;
    add_toxic(
        &server,
        "db",
        json!({"type": "latency", "attributes": {"latency": 1}}),
    )
    .await;
    let mut first = TcpStream::connect(listen).await.expect("connected");
    echoes(&mut first, b"0123456789").await;
    let mut second = TcpStream::connect(listen).await.expect("connected");
    echoes(&mut second, b"abcde").await;
    drop(first);

    let (status, headers, _) = send(Method::GET, &server.url("/metrics"), "", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/plain; version=0.0.4");
    let labels = |direction: &str| {
        format!("direction=\"{direction}\",proxy=\"db\",listener=\"{listen}\",upstream=\"{echo}\"")
    };
    let mut expected = HashMap::new();
    for direction in ["upstream", "downstream"] {
        for family in ["received", "sent"] {
            let series = format!(
                "toxiproxy_proxy_{family}_bytes_total{{{}}}",
                labels(direction)
            );
            expected.insert(series, 15.0);
        }
    }
    expected.insert(
        "toxiproxy_proxy_connections_accepted_total{proxy=\"db\"}".to_owned(),
        2.0,
    );
    // The first connection's end reaches the count when the proxy's pipes notice it.
    expected.insert(
        "toxiproxy_proxy_connections_open{proxy=\"db\"}".to_owned(),
        1.0,
    );
    let latency =
        "toxiproxy_toxic_applied_total{proxy=\"db\",type=\"latency\",stream=\"downstream\"}";
    expected.insert(latency.to_owned(), 2.0);
    let last = std::sync::Mutex::new(String::new());
    let counted = support::eventually(Duration::from_secs(10), || {
        let (url, expected, last) = (server.url("/metrics"), &expected, &last);
        async move {
            let text = send(Method::GET, &url, "", &[]).await.2;
            let samples = samples(&text);
            *last.lock().expect("not poisoned") = text;
            expected
                .iter()
                .all(|(series, value)| samples.get(series) == Some(value))
        }
    })
    .await;
    let text = last.lock().expect("not poisoned").clone();
    assert!(counted, "expected {expected:#?} in\n{text}");
}

#[tokio::test]
async fn version_answers_json_as_shopifys_server_does() {
    let server = Toxiproxy::start();
    let (status, headers, body) = send(Method::GET, &server.url("/version"), "", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json;charset=utf-8");
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(body, format!("{{\"version\": \"blastwall-{version}\"}}\n"));
}

#[tokio::test]
async fn config_creates_the_files_proxies_at_start() {
    let echo = echo_server().await;
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let file = scratch.path().join("proxies.json");
    let proxies = json!([
        {"name": "on", "listen": "127.0.0.1:0", "upstream": echo.to_string()},
        {"name": "off", "listen": "127.0.0.1:0", "upstream": echo.to_string(), "enabled": false},
    ]);
    std::fs::write(&file, proxies.to_string()).expect("written");
    let server = Toxiproxy::start_with(&["--config", file.to_str().expect("a path")]);
    let (status, all) = call(&server, Method::GET, "/proxies", Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (all["on"]["enabled"].clone(), all["off"]["enabled"].clone()),
        (json!(true), json!(false))
    );
    let listen: SocketAddr = all["on"]["listen"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .expect("an address");
    let mut stream = TcpStream::connect(listen).await.expect("connected");
    echoes(&mut stream, b"from the file").await;
}

/// Runs `blastwall toxiproxy --config FILE` expecting it to exit; its status and stderr.
fn start_failing(file: &std::path::Path) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_blastwall"))
        .args(["toxiproxy", "--listen", "127.0.0.1:0", "--config"])
        .arg(file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("blastwall starts");
    let exited = eventually_blocking(Duration::from_secs(20), || {
        child.try_wait().ok().flatten().is_some()
    });
    if !exited {
        let _ = child.kill();
    }
    let output = child.wait_with_output().expect("its output");
    assert!(exited, "it kept running with a bad --config");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_bad_config_file_stops_the_server_with_an_error_naming_the_file() {
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let cases = [
        ("missing.json", None, "cannot read the proxies file"),
        ("broken.json", Some("[{\"name\": "), "is not valid JSON"),
        (
            "object.json",
            Some("{\"name\": \"x\"}"),
            "expected an array of proxies",
        ),
        (
            "partial.json",
            Some("[{\"name\": \"x\"}]"),
            "missing required field: upstream at proxy 1",
        ),
    ];
    for (name, content, says) in cases {
        let file = scratch.path().join(name);
        if let Some(content) = content {
            std::fs::write(&file, content).expect("written");
        }
        let (ok, stderr) = start_failing(&file);
        assert!(!ok, "{name}: exits with a failure");
        assert!(
            stderr.contains(&file.display().to_string()),
            "{name}: names the file: {stderr}"
        );
        assert!(stderr.contains(says), "{name}: says {says:?}: {stderr}");
    }
}
