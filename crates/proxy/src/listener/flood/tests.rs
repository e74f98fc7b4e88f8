use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::frames::*;
use super::ledger::*;
use super::*;

const PING: u8 = 0x6;
const SETTINGS: u8 = 0x4;
const WINDOW_UPDATE: u8 = 0x8;
const PREFACE: &[u8; PREFACE_LEN] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("a small payload");
    let mut bytes = len.to_be_bytes()[1..].to_vec();
    bytes.extend([kind, flags]);
    bytes.extend(stream.to_be_bytes());
    bytes.extend(payload);
    bytes
}

fn head(kind: u8, flags: u8, stream: u32, len: u32) -> Head {
    Head {
        len,
        kind,
        flags,
        stream,
    }
}

fn ping() -> Vec<u8> {
    frame(PING, 0, 0, &[7; 8])
}

#[test]
fn scanner_finds_every_head_however_the_bytes_are_split() {
    let mut stream = PREFACE.to_vec();
    stream.extend(frame(SETTINGS, 0, 0, &[0, 4, 0, 1, 0, 0]));
    stream.extend(frame(HEADERS, 0x5, 1, b"abc"));
    stream.extend(frame(DATA, END_STREAM, 1, &[]));
    stream.extend(frame(WINDOW_UPDATE, 0, 0x8000_0003, &[0, 0, 0, 1]));
    let expected = vec![
        head(SETTINGS, 0, 0, 6),
        head(HEADERS, 0x5, 1, 3),
        head(DATA, END_STREAM, 1, 0),
        // The reserved bit is not part of the stream id.
        head(WINDOW_UPDATE, 0, 3, 4),
    ];
    for chunk in 1..=stream.len() {
        let mut scanner = FrameScanner::inbound();
        let mut heads = Vec::new();
        for bytes in stream.chunks(chunk) {
            let stopped = scanner.scan(bytes, |head| {
                heads.push(head);
                true
            });
            assert_eq!(stopped, None);
        }
        assert_eq!(heads, expected, "in chunks of {chunk}");
        assert!(scanner.at_boundary());
    }
}

#[test]
fn scanner_says_where_the_refused_frame_began() {
    let mut bytes = frame(HEADERS, 0x5, 1, b"abc");
    let second = bytes.len();
    bytes.extend(ping());
    let mut scanner = FrameScanner::outbound();
    let stopped = scanner.scan(&bytes, |head| head.kind != PING);
    assert_eq!(stopped, Some(second));

    // A head begun in an earlier chunk began, for this chunk, at its start.
    let mut scanner = FrameScanner::outbound();
    let ping = ping();
    assert_eq!(scanner.scan(&ping[..4], |_| false), None);
    assert_eq!(scanner.scan(&ping[4..], |_| false), Some(0));
    assert!(!scanner.at_boundary());
}

#[test]
fn budget_allows_its_allowance_and_then_refuses_within_the_window() {
    let start = Instant::now();
    let mut budget = Budget::new(start);
    let ping = head(PING, 0, 0, 8);
    for _ in 0..ALLOWANCE {
        assert!(budget.inbound(ping, || panic!("no clock while the budget lasts")));
    }
    let later = start + BUDGET_WINDOW - Duration::from_millis(1);
    assert!(!budget.inbound(ping, || later));
}

#[test]
fn budget_renews_once_its_window_is_over() {
    let start = Instant::now();
    let mut budget = Budget::new(start);
    let settings = head(SETTINGS, 0, 0, 0);
    for _ in 0..ALLOWANCE {
        assert!(budget.inbound(settings, || start));
    }
    let renewed = start + BUDGET_WINDOW;
    for _ in 0..ALLOWANCE {
        assert!(budget.inbound(settings, || renewed));
    }
    assert!(!budget.inbound(settings, || renewed + Duration::from_secs(1)));
}

#[test]
fn requests_and_data_we_send_earn_control_frames_up_to_a_bound() {
    let start = Instant::now();
    let mut budget = Budget::new(start);
    let update = head(WINDOW_UPDATE, 0, 1, 4);
    budget.outbound(head(DATA, 0, 1, 16_384));
    assert!(budget.inbound(head(HEADERS, 0x4, 1, 10), || start));
    for _ in 0..ALLOWANCE + DATA_SENT_EARNS + HEADERS_EARN {
        assert!(budget.inbound(update, || start));
    }
    assert!(!budget.inbound(update, || start));

    let mut budget = Budget::new(start);
    for _ in 0..MAX_BALANCE {
        budget.outbound(head(DATA, 0, 1, 16_384));
    }
    for _ in 0..MAX_BALANCE {
        assert!(budget.inbound(update, || start));
    }
    assert!(!budget.inbound(update, || start));
}

#[test]
fn only_data_frames_that_carry_nothing_and_end_nothing_are_control_frames() {
    let start = Instant::now();
    let mut budget = Budget::new(start);
    for _ in 0..ALLOWANCE * 2 {
        assert!(budget.inbound(head(DATA, 0, 1, 1), || start));
        assert!(budget.inbound(head(DATA, END_STREAM, 1, 0), || start));
        assert!(budget.inbound(head(CONTINUATION, 0, 1, 0), || start));
    }
    for _ in 0..ALLOWANCE {
        assert!(budget.inbound(head(DATA, 0, 1, 0), || start));
    }
    assert!(!budget.inbound(head(DATA, 0, 1, 0), || start));
}

#[tokio::test]
async fn a_ping_flood_gets_a_goaway_and_nothing_past_the_allowance() {
    let (mut client, server) = tokio::io::duplex(1 << 20);
    let mut guard = FloodGuard::new(server);
    let mut flood = PREFACE.to_vec();
    flood.extend(frame(HEADERS, 0x5, 7, b"abc"));
    for _ in 0..=ALLOWANCE + HEADERS_EARN {
        flood.extend(ping());
    }
    client
        .write_all(&flood)
        .await
        .expect("the flood is written");

    let mut delivered: Vec<u8> = Vec::new();
    let mut chunk = [0; 4096];
    let error = loop {
        match guard.read(&mut chunk).await {
            Ok(0) => panic!("the guard must fail the read, not end it"),
            Ok(n) => delivered.extend(&chunk[..n]),
            Err(error) => break error,
        }
    };
    assert_eq!(error.kind(), io::ErrorKind::ConnectionAborted);
    // Everything up to the frame too many, and not one byte of it.
    assert_eq!(delivered, flood[..flood.len() - ping().len()]);
    assert!(guard.write(b"more").await.is_err());

    let goaway = read_goaway(&mut client).await;
    assert_eq!(goaway.last_stream, 7);
    assert_eq!(goaway.error_code, ENHANCE_YOUR_CALM);
    assert_eq!(goaway.debug, b"too_many_control_frames");
}

struct Goaway {
    last_stream: u32,
    error_code: u32,
    debug: Vec<u8>,
}

async fn read_goaway(client: &mut tokio::io::DuplexStream) -> Goaway {
    let mut head = [0; 9];
    client.read_exact(&mut head).await.expect("a frame head");
    let head = Head::parse(&head);
    assert_eq!(head.kind, GOAWAY);
    let mut payload = vec![0; head.len as usize];
    client.read_exact(&mut payload).await.expect("a GOAWAY");
    Goaway {
        last_stream: u32::from_be_bytes(payload[0..4].try_into().expect("4 bytes")),
        error_code: u32::from_be_bytes(payload[4..8].try_into().expect("4 bytes")),
        debug: payload[8..].to_vec(),
    }
}

#[tokio::test]
async fn a_connection_cancelling_most_of_its_requests_gets_a_goaway() {
    let (mut client, server) = tokio::io::duplex(1 << 20);
    let mut guard = FloodGuard::new(server);
    let mut flood = PREFACE.to_vec();
    let mut stream = 1;
    // Half cancelled is allowed; the reset that makes it more than half is not.
    for _ in 0..RESETS_JUDGED_AFTER / 2 {
        flood.extend(frame(HEADERS, 0x5, stream, b"abc"));
        flood.extend(frame(HEADERS, 0x5, stream + 2, b"abc"));
        flood.extend(frame(RST_STREAM, 0, stream, &[0, 0, 0, 8]));
        stream += 4;
    }
    let last = stream - 2;
    flood.extend(frame(RST_STREAM, 0, last, &[0, 0, 0, 8]));
    client
        .write_all(&flood)
        .await
        .expect("the flood is written");
    let mut chunk = vec![0; flood.len()];
    while guard.read(&mut chunk).await.is_ok() {}
    let goaway = read_goaway(&mut client).await;
    assert_eq!(goaway.last_stream, last);
    assert_eq!(goaway.debug, b"too_many_cancelled_requests");
}

#[test]
fn cancellations_are_judged_only_after_enough_requests() {
    let mut resets = Resets::default();
    for _ in 0..RESETS_JUDGED_AFTER - 1 {
        resets.opened();
        assert!(
            resets.reset(),
            "every request cancelled, but too few to judge"
        );
    }
    resets.opened();
    assert!(!resets.reset());
}

#[test]
fn trailers_are_not_new_requests() {
    let start = Instant::now();
    let mut ledger = Ledger::new(start);
    for stream in (1..2 * RESETS_JUDGED_AFTER).step_by(2) {
        assert_eq!(
            ledger.inbound(head(HEADERS, 0x4, stream, 3), || start),
            Ok(())
        );
    }
    // Trailers on stream 1: no new request, so its reset tips the share over half.
    for _ in 0..RESETS_JUDGED_AFTER {
        assert_eq!(ledger.inbound(head(HEADERS, 0x5, 1, 3), || start), Ok(()));
    }
    for stream in (1..RESETS_JUDGED_AFTER).step_by(2) {
        assert_eq!(
            ledger.inbound(head(RST_STREAM, 0, stream, 4), || start),
            Ok(())
        );
    }
    assert_eq!(
        ledger.inbound(head(RST_STREAM, 0, RESETS_JUDGED_AFTER + 1, 4), || start),
        Err(Flood::Resets)
    );
}

#[tokio::test]
async fn no_goaway_cuts_into_a_frame_half_written() {
    let (mut client, server) = tokio::io::duplex(1 << 20);
    let mut guard = FloodGuard::new(server);
    let data = frame(DATA, 0, 1, &[1; 100]);
    guard
        .write_all(&data[..50])
        .await
        .expect("half a frame written");
    let mut flood = PREFACE.to_vec();
    for _ in 0..=ALLOWANCE + DATA_SENT_EARNS {
        flood.extend(ping());
    }
    client
        .write_all(&flood)
        .await
        .expect("the flood is written");
    let mut chunk = vec![0; flood.len()];
    while guard.read(&mut chunk).await.is_ok() {}
    drop(guard);
    let mut received = Vec::new();
    client
        .read_to_end(&mut received)
        .await
        .expect("the rest is read");
    assert_eq!(received, &data[..50]);
}
