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
