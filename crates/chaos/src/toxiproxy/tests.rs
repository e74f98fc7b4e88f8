//! The API server's own guards, on real loopback sockets with tokio's paused clock: the
//! runtime is idle while a client stalls, so the read timeouts fire without real waiting.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::api::READ_WITHIN;

async fn answer_to(request: &[u8]) -> String {
    let server = super::start("127.0.0.1:0".parse().expect("an address"))
        .await
        .expect("listening");
    let mut stream = TcpStream::connect(server.addr()).await.expect("connected");
    stream.write_all(request).await.expect("written");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(READ_WITHIN * 2, stream.read_to_end(&mut answer)).await;
    server.stop().await;
    assert!(
        read.is_ok(),
        "the server let go within twice its read timeout"
    );
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(start_paused = true)]
async fn a_body_that_never_arrives_is_a_400_after_the_read_timeout() {
    let answer = answer_to(b"POST /proxies HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nConnection: close\r\n\r\n{\"na").await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        answer.contains("the body did not arrive within 15s"),
        "{answer}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_head_that_never_ends_is_dropped_after_the_read_timeout() {
    let answer = answer_to(b"GET /proxies HTTP/1.1\r\nHost: x\r\n").await;
    assert!(!answer.contains("200 OK"), "{answer}");
}

/// Sends one request (closing the connection) and returns the answer's status line and body.
async fn exchange(addr: std::net::SocketAddr, method: &str, path: &str, body: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connected");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("written");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("answered");
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn path_segments_are_percent_decoded_as_toxiproxys_router_does() {
    let server = super::start("127.0.0.1:0".parse().expect("an address"))
        .await
        .expect("listening");
    let addr = server.addr();
    let created = exchange(
        addr,
        "POST",
        "/proxies",
        r#"{"name": "sp ace", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9"}"#,
    )
    .await;
    assert!(created.starts_with("HTTP/1.1 201"), "{created}");
    let shown = exchange(addr, "GET", "/proxies/sp%20ace", "").await;
    assert!(shown.starts_with("HTTP/1.1 200"), "{shown}");
    let toxic = exchange(
        addr,
        "POST",
        "/%70roxies/sp%20ace/toxics",
        r#"{"type": "latency"}"#,
    )
    .await;
    assert!(toxic.starts_with("HTTP/1.1 200"), "{toxic}");
    let toxic = exchange(
        addr,
        "GET",
        "/proxies/sp%20ace/toxics/latency%5Fdownstream",
        "",
    )
    .await;
    assert!(toxic.starts_with("HTTP/1.1 200"), "{toxic}");
    let malformed = exchange(addr, "GET", "/proxies/sp%2", "").await;
    assert!(malformed.starts_with("HTTP/1.1 400"), "{malformed}");
    let not_utf8 = exchange(addr, "GET", "/proxies/%ff", "").await;
    assert!(not_utf8.starts_with("HTTP/1.1 404"), "{not_utf8}");
    let deleted = exchange(addr, "DELETE", "/proxies/sp%20ace", "").await;
    assert!(deleted.starts_with("HTTP/1.1 204"), "{deleted}");
    server.stop().await;
}

#[tokio::test]
async fn a_proxy_or_toxic_named_with_a_slash_is_refused_since_no_path_could_name_it() {
    let server = super::start("127.0.0.1:0".parse().expect("an address"))
        .await
        .expect("listening");
    let addr = server.addr();
    let proxy = exchange(
        addr,
        "POST",
        "/proxies",
        r#"{"name": "sl/ash", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9"}"#,
    )
    .await;
    assert!(proxy.starts_with("HTTP/1.1 400"), "{proxy}");
    assert!(proxy.contains("cannot contain '/'"), "{proxy}");
    let populate = exchange(
        addr,
        "POST",
        "/populate",
        r#"[{"name": "a/b", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9"}]"#,
    )
    .await;
    assert!(populate.starts_with("HTTP/1.1 400"), "{populate}");
    let created = exchange(
        addr,
        "POST",
        "/proxies",
        r#"{"name": "db", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9"}"#,
    )
    .await;
    assert!(created.starts_with("HTTP/1.1 201"), "{created}");
    let toxic = exchange(
        addr,
        "POST",
        "/proxies/db/toxics",
        r#"{"name": "sl/ash", "type": "latency"}"#,
    )
    .await;
    assert!(toxic.starts_with("HTTP/1.1 400"), "{toxic}");
    let listed = exchange(addr, "GET", "/proxies", "").await;
    assert!(
        !listed.contains("sl/ash") && !listed.contains("a/b"),
        "{listed}"
    );
    server.stop().await;
}
