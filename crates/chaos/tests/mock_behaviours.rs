//! What the mock grew for issue #17 (patches, paths, shaped bodies, phases), over real
//! sockets on loopback. A raw HTTP/1.1 exchange shows exactly the bytes that arrived, which
//! is what a truncated or slow body is about.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use blastwall_chaos::mock::{self, Behaviour, MockConfig, MockHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[path = "../../cli/tests/support/eventually.rs"]
mod eventually;

use self::eventually::eventually;

async fn start(behaviour: Behaviour) -> MockHandle {
    mock::start(MockConfig {
        name: "replica-b".into(),
        listen: "127.0.0.1:0".parse().expect("valid address"),
        behaviour,
        seed: 17,
    })
    .await
    .expect("mock starts")
}

/// An answer as it arrived: its status, its head, and every body byte before the close.
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One request on its own connection, read until the mock closes it.
async fn exchange(addr: SocketAddr, method: &str, path: &str, body: &str) -> Answer {
    let mut stream = TcpStream::connect(addr).await.expect("mock accepts");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: mock\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("request sent");
    let mut received = Vec::new();
    // A cut body ends in a close, which may come as a reset: what arrived before counts.
    let _ = stream.read_to_end(&mut received).await;
    let split = received
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .expect("a whole head arrived");
    let head = String::from_utf8_lossy(&received[..split]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|status| status.parse().ok())
        .expect("a status line");
    Answer {
        status,
        head,
        body: received[split + 4..].to_vec(),
    }
}

#[tokio::test]
async fn a_patch_changes_only_the_fields_given() {
    let mock = start(Behaviour {
        body: "kept\n".into(),
        capacity: Some(4),
        ..Behaviour::default()
    })
    .await;
    let patched = exchange(
        mock.addr(),
        "PATCH",
        "/_mock/behaviour",
        r#"{"status":503,"latency_distribution":{"kind":"fixed","value":"1ms"}}"#,
    )
    .await;
    assert_eq!(patched.status, 200, "{}", patched.text());
    let answer = exchange(mock.addr(), "GET", "/", "").await;
    assert_eq!((answer.status, answer.text().as_str()), (503, "kept\n"));
    let behaviour = mock.behaviour();
    assert_eq!(behaviour.capacity, Some(4));
    assert!(behaviour.latency_distribution.is_some());
}

#[tokio::test]
async fn a_bad_patch_is_refused_naming_the_field_and_the_old_behaviour_stays() {
    let mock = start(Behaviour::default()).await;
    for (patch, named) in [
        (r#"{"status":503,"latncy":"1s"}"#, "`latncy`"),
        (r#"{"body_rate":0}"#, "`body_rate`"),
        (
            r#"{"failure_rate":3}"#,
            "failure_rate must be between 0 and 1",
        ),
        (r#""status""#, "must be a JSON object"),
    ] {
        let refused = exchange(mock.addr(), "PATCH", "/_mock/behaviour", patch).await;
        assert_eq!(refused.status, 400, "{patch}");
        assert!(
            refused.text().contains(named),
            "{patch}: {}",
            refused.text()
        );
    }
    assert_eq!(mock.behaviour(), Behaviour::default());
    assert_eq!(exchange(mock.addr(), "GET", "/", "").await.status, 200);
}

#[tokio::test]
async fn paths_are_answered_by_their_own_behaviour_and_the_rest_by_the_default() {
    let mock = start(Behaviour::default()).await;
    let put = exchange(
        mock.addr(),
        "PUT",
        "/_mock/behaviour",
        r#"{"paths":[{"prefix":"/orders","behaviour":{"status":503,"body":"orders down\n"}}]}"#,
    )
    .await;
    assert_eq!(put.status, 200, "{}", put.text());
    let orders = exchange(mock.addr(), "GET", "/orders/7", "").await;
    assert_eq!(
        (orders.status, orders.text().as_str()),
        (503, "orders down\n")
    );
    let other = exchange(mock.addr(), "GET", "/users", "").await;
    assert_eq!((other.status, other.text().as_str()), (200, "ok\n"));
}

#[tokio::test]
async fn a_truncated_body_promises_all_its_bytes_and_sends_only_those_asked_for() {
    let mock = start(Behaviour {
        body_size: Some(100),
        truncate_after: Some(5),
        ..Behaviour::default()
    })
    .await;
    let answer = exchange(mock.addr(), "GET", "/", "").await;
    assert_eq!(answer.status, 200);
    assert!(
        answer.head.contains("content-length: 100"),
        "{}",
        answer.head
    );
    assert_eq!(answer.body, b"xxxxx");
    assert_eq!(mock.stats().cut_bodies, 1);
}

#[tokio::test]
async fn a_slow_body_arrives_whole_at_its_rate() {
    let mock = start(Behaviour {
        body_size: Some(300),
        body_rate: std::num::NonZeroU64::new(1000),
        ..Behaviour::default()
    })
    .await;
    let started = Instant::now();
    let answer = exchange(mock.addr(), "GET", "/", "").await;
    assert_eq!(answer.body.len(), 300);
    // Three chunks of 100 bytes, 100ms apart: the last cannot leave before 200ms.
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn phases_change_the_answer_on_their_timetable() {
    let mock = start(Behaviour::default()).await;
    let put = exchange(
        mock.addr(),
        "PUT",
        "/_mock/behaviour",
        r#"{"phases":[{"behaviour":{"status":503},"for":"1s"},{"behaviour":{"status":200,"body":"recovered\n"},"for":"1h"}]}"#,
    )
    .await;
    assert_eq!(put.status, 200, "{}", put.text());
    assert_eq!(exchange(mock.addr(), "GET", "/", "").await.status, 503);
    let recovered = eventually(Duration::from_secs(10), || async {
        exchange(mock.addr(), "GET", "/", "").await.text() == "recovered\n"
    })
    .await;
    assert!(recovered, "the second phase never came");
}

/// A `POST` carrying `x-request-id: id` on its own connection; the answer is read whole.
async fn post_with_id(addr: SocketAddr, id: &str, extra: &str) {
    let mut stream = TcpStream::connect(addr).await.expect("mock accepts");
    let request = format!(
        "POST /orders HTTP/1.1\r\nhost: mock\r\nx-request-id: {id}\r\n{extra}content-length: 0\r\nconnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("request sent");
    let mut received = Vec::new();
    let _ = stream.read_to_end(&mut received).await;
    assert!(received.starts_with(b"HTTP/1.1 200"), "answered 200");
}

#[tokio::test]
async fn a_post_delivered_twice_is_counted_once_as_a_duplicate_by_its_request_id() {
    let mock = start(Behaviour::default()).await;
    post_with_id(mock.addr(), "order-1", "").await;
    post_with_id(mock.addr(), "order-2", "").await;
    post_with_id(mock.addr(), "order-1", "").await;
    post_with_id(mock.addr(), "keyed", "idempotency-key: k1\r\n").await;
    post_with_id(mock.addr(), "keyed", "idempotency-key: k1\r\n").await;
    assert_eq!(mock.stats().requests, 5);
    assert_eq!(
        mock.stats().duplicates,
        1,
        "only the unkeyed order-1 came twice"
    );
}
