use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::*;
use crate::listener::tracker::Ticket;

const LIMITS: HeadLimits = HeadLimits {
    max_header_bytes: 1024,
    max_headers: 16,
    max_request_body: 1 << 20,
};
const TIMEOUT: Duration = Duration::from_secs(10);

/// A guard over one end of an in-memory pipe; the test writes as the client on the other.
fn guarded(start: Start) -> (Guarded<DuplexStream>, DuplexStream, Arc<Tracker>) {
    let (server, client) = tokio::io::duplex(64 * 1024);
    let tracker = Arc::new(Tracker::new());
    let guard = Guarded::new(server, tracker.clone(), LIMITS, TIMEOUT, start);
    (guard, client, tracker)
}

/// Reads what hyper would see until `expected` bytes arrived, the stream ends, or nothing
/// more comes (a refused connection's read side stays pending).
async fn read_some(guard: &mut Guarded<DuplexStream>, expected: usize) -> Vec<u8> {
    // With paused time the quiet wait must outlast the head timer (and costs nothing); with
    // real time everything the test wrote is already there.
    let quiet = if paused() {
        TIMEOUT * 2
    } else {
        Duration::from_millis(200)
    };
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while seen.len() < expected {
        let read = tokio::time::timeout(quiet, guard.read(&mut buf)).await;
        match read {
            Ok(Ok(0)) | Err(_) => break,
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
            Ok(Err(error)) => panic!("read failed: {error}"),
        }
    }
    seen
}

/// Whether the test runs on paused (virtual) time.
fn paused() -> bool {
    let before = tokio::time::Instant::now();
    std::thread::sleep(Duration::from_millis(1));
    tokio::time::Instant::now() == before
}

#[tokio::test]
async fn a_whole_head_and_its_body_pass_unchanged() {
    let (mut guard, mut client, _) = guarded(Start::Sniff);
    let request = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\nHost: a\r\n\r\n";
    client.write_all(request).await.unwrap();
    assert_eq!(read_some(&mut guard, request.len()).await, request);
}

#[tokio::test]
async fn a_head_in_pieces_is_held_back_until_whole() {
    let (mut guard, mut client, _) = guarded(Start::Sniff);
    client.write_all(b"GET / HTTP/1.1\r\nHo").await.unwrap();
    let mut buf = [0u8; 256];
    let early = tokio::time::timeout(Duration::from_millis(50), guard.read(&mut buf)).await;
    assert!(
        early.is_err(),
        "nothing is handed over before the head is whole"
    );
    client.write_all(b"st: a\r\n\r\n").await.unwrap();
    let whole = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_eq!(read_some(&mut guard, whole.len()).await, whole);
}

#[tokio::test]
async fn a_smuggling_head_is_replaced_by_the_stand_in_then_the_end() {
    let (mut guard, mut client, tracker) = guarded(Start::Sniff);
    let good = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nok";
    client.write_all(good).await.unwrap();
    client
        .write_all(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        .await
        .unwrap();
    let seen = read_some(&mut guard, usize::MAX).await;
    assert_eq!(seen, [good.as_slice(), STAND_IN].concat());
    assert!(tracker.take_rejection(1).is_none());
    let rejection = tracker
        .take_rejection(2)
        .expect("the second request is refused");
    assert_eq!(rejection.error, ProxyError::BadRequest);
}

#[tokio::test]
async fn the_http2_preface_passes_even_in_pieces() {
    let (mut guard, mut client, _) = guarded(Start::Sniff);
    client.write_all(&PREFACE[..5]).await.unwrap();
    client.write_all(&PREFACE[5..]).await.unwrap();
    client
        .write_all(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    assert_eq!(
        read_some(&mut guard, PREFACE.len() + 9).await.len(),
        PREFACE.len() + 9
    );
}

#[tokio::test(start_paused = true)]
async fn a_head_not_finished_in_time_gets_a_408_stand_in() {
    let (mut guard, mut client, tracker) = guarded(Start::Sniff);
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n")
        .await
        .unwrap();
    let seen = read_some(&mut guard, usize::MAX).await;
    assert_eq!(seen, STAND_IN);
    let rejection = tracker.take_rejection(1).expect("refused");
    assert_eq!(rejection.error, ProxyError::HeaderReadTimeout);
}

#[tokio::test(start_paused = true)]
async fn a_connection_that_sends_nothing_is_closed_at_the_deadline() {
    let (mut guard, _client, tracker) = guarded(Start::Sniff);
    assert!(read_some(&mut guard, usize::MAX).await.is_empty());
    assert!(tracker.take_rejection(1).is_none());
}

#[tokio::test(start_paused = true)]
async fn an_idle_keep_alive_connection_is_not_timed_by_the_head_timer() {
    let (mut guard, mut client, tracker) = guarded(Start::Sniff);
    let request = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    client.write_all(request).await.unwrap();
    assert_eq!(read_some(&mut guard, request.len()).await, request);
    drop(Ticket::new(tracker.clone(), tracker.begin()));
    let mut buf = [0u8; 16];
    let waited = tokio::time::timeout(TIMEOUT * 3, guard.read(&mut buf)).await;
    assert!(waited.is_err(), "still open, waiting for the next head");
}

#[tokio::test]
async fn a_head_over_the_limit_is_refused_before_it_ends() {
    let (mut guard, mut client, tracker) = guarded(Start::Sniff);
    client
        .write_all(b"GET / HTTP/1.1\r\nX-Long: ")
        .await
        .unwrap();
    client.write_all(&[b'a'; 2000]).await.unwrap();
    assert_eq!(read_some(&mut guard, usize::MAX).await, STAND_IN);
    assert_eq!(
        tracker.take_rejection(1).map(|r| r.error),
        Some(ProxyError::RequestHeadersTooLarge)
    );
}

#[tokio::test]
async fn after_alpn_h2_nothing_is_inspected() {
    let (mut guard, mut client, _) = guarded(Start::Http2);
    client
        .write_all(b"not http/1 at all\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(
        read_some(&mut guard, 21).await,
        b"not http/1 at all\r\n\r\n"
    );
}
