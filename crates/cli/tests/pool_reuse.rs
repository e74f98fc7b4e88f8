//! A kept upstream connection never hands one client's answer to another: bytes an
//! endpoint sends after its answer ended (here a whole answer after a 204) retire the
//! connection instead of being read as the next request's answer (issue #15, item 1).

mod support;

use http::StatusCode;
use support::{Proxy, get, single_cluster_config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

/// Reads one request head off `stream`; its target, or `None` when the peer closed.
async fn read_target(stream: &mut TcpStream) -> Option<String> {
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    while !seen.windows(4).any(|window| window == b"\r\n\r\n") {
        let n = stream.read(&mut buffer).await.ok()?;
        if n == 0 {
            return None;
        }
        seen.extend_from_slice(&buffer[..n]);
    }
    let line = String::from_utf8_lossy(&seen).into_owned();
    line.split(' ').nth(1).map(str::to_owned)
}

/// A raw endpoint: `/a` gets a 204, then (when the test says so) a whole second answer
/// nobody asked for; anything else gets `answer for <target>`.
async fn misbehaving_endpoint() -> (String, mpsc::Sender<oneshot::Sender<()>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bound");
    let address = listener.local_addr().expect("address").to_string();
    let (stray_tx, stray_rx) = mpsc::channel::<oneshot::Sender<()>>(1);
    let stray_rx = std::sync::Arc::new(tokio::sync::Mutex::new(stray_rx));
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let stray_rx = stray_rx.clone();
            tokio::spawn(async move {
                while let Some(target) = read_target(&mut stream).await {
                    if target == "/a" {
                        let _ = stream.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").await;
                        let Some(done) = stray_rx.lock().await.recv().await else {
                            return;
                        };
                        let _ = stream
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 12\r\n\r\nmeant for /a")
                            .await;
                        let _ = done.send(());
                    } else {
                        let body = format!("answer for {target}");
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if stream.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (address, stray_tx)
}

#[tokio::test]
async fn a_second_client_gets_its_own_answer_when_the_endpoint_sent_more_after_a_204() {
    let (address, stray) = misbehaving_endpoint().await;
    let endpoint = format!("{{ address = \"{address}\" }}");
    let proxy = Proxy::start(&single_cluster_config(
        "",
        &[endpoint],
        "\n[admin]\nlisten = \"off\"\n",
    ));

    let (status, _, body) = get(&proxy.url("/a")).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    // The first answer has ended and its connection is kept; now the endpoint sends more.
    let (done_tx, done_rx) = oneshot::channel();
    stray.send(done_tx).await.expect("the endpoint listens");
    done_rx.await.expect("the stray answer is written");

    let (status, _, body) = get(&proxy.url("/b")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body, "answer for /b",
        "the second client got another's answer"
    );
}
