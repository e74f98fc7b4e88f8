//! The toxics on one direction, on in-memory streams with tokio's paused clock: waits are
//! exact and take no real time.

use std::time::Duration;

use bytes::Bytes;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::super::stats::ProxyStats;
use super::super::toxic::{Stream, Toxic};
use super::plan::{Plan, cut_points, plan, refresh};
use super::*;

fn toxic(body: serde_json::Value) -> Toxic {
    Toxic::from_create(&body).expect("a valid toxic")
}

/// A pipe between two in-memory streams: write to the first, read from the second.
struct Rig {
    input: DuplexStream,
    output: DuplexStream,
    chain: watch::Sender<Chain>,
    task: JoinHandle<End>,
}

fn rig(toxics: Vec<Toxic>) -> Rig {
    rig_for(0, toxics)
}

/// A [`rig`] for the proxy's `ordinal`-th connection.
fn rig_for(ordinal: u64, toxics: Vec<Toxic>) -> Rig {
    let (input, source) = tokio::io::duplex(64 * 1024);
    let (dest, output) = tokio::io::duplex(64 * 1024);
    let (chain, receiver) = watch::channel(Arc::new(toxics));
    let (_, down) = Link::pair(ordinal, Arc::default());
    let task = tokio::spawn(pipe(
        source,
        dest,
        receiver,
        SmallRng::seed_from_u64(7),
        down,
    ));
    Rig {
        input,
        output,
        chain,
        task,
    }
}

async fn read_exactly(output: &mut DuplexStream, len: usize) -> Vec<u8> {
    let mut buf = vec![0; len];
    output.read_exact(&mut buf).await.expect("bytes arrive");
    buf
}

#[tokio::test(start_paused = true)]
async fn latency_delays_each_chunk_by_its_milliseconds() {
    let mut rig = rig(vec![toxic(
        json!({"type": "latency", "attributes": {"latency": 250}}),
    )]);
    let start = Instant::now();
    rig.input.write_all(b"hello").await.expect("written");
    assert_eq!(read_exactly(&mut rig.output, 5).await, b"hello");
    assert_eq!(start.elapsed(), Duration::from_millis(250));
}

#[tokio::test(start_paused = true)]
async fn latency_delays_a_stream_once_not_once_per_chunk() {
    let mut rig = rig(vec![toxic(
        json!({"type": "latency", "attributes": {"latency": 100}}),
    )]);
    let start = Instant::now();
    let mut input = rig.input;
    let writer = tokio::spawn(async move {
        for byte in [b'a', b'b', b'c'] {
            input.write_all(&[byte]).await.expect("written");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        input
    });
    for (byte, at) in [(b'a', 100), (b'b', 110), (b'c', 120)] {
        assert_eq!(read_exactly(&mut rig.output, 1).await, [byte]);
        assert_eq!(start.elapsed(), Duration::from_millis(at));
    }
    drop(writer);
}

#[tokio::test(start_paused = true)]
async fn jitter_keeps_latency_within_plus_or_minus_its_milliseconds() {
    let mut rig = rig(vec![toxic(
        json!({"type": "latency", "attributes": {"latency": 100, "jitter": 50}}),
    )]);
    for _ in 0..20 {
        let start = Instant::now();
        rig.input.write_all(b"x").await.expect("written");
        read_exactly(&mut rig.output, 1).await;
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(50) && waited < Duration::from_millis(150),
            "{waited:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_timeout_of_zero_stalls_the_data_forever() {
    let mut rig = rig(vec![toxic(
        json!({"type": "timeout", "attributes": {"timeout": 0}}),
    )]);
    rig.input.write_all(b"lost").await.expect("written");
    let mut buf = [0; 4];
    let read = tokio::time::timeout(Duration::from_secs(3600), rig.output.read(&mut buf)).await;
    assert!(read.is_err(), "nothing passes a timeout toxic");
    assert!(!rig.task.is_finished());
}

#[tokio::test(start_paused = true)]
async fn a_timeout_drops_the_data_then_closes_the_connection_after_its_milliseconds() {
    let mut rig = rig(vec![toxic(
        json!({"type": "timeout", "attributes": {"timeout": 500}}),
    )]);
    let start = Instant::now();
    rig.input.write_all(b"lost").await.expect("written");
    assert_eq!(rig.task.await.expect("the pipe ends"), End::Close);
    assert_eq!(start.elapsed(), Duration::from_millis(500));
    let mut buf = Vec::new();
    rig.output.read_to_end(&mut buf).await.expect("closed");
    assert!(buf.is_empty(), "dropped: {buf:?}");
}

#[tokio::test(start_paused = true)]
async fn limit_data_lets_its_bytes_through_then_closes() {
    let mut rig = rig(vec![toxic(
        json!({"type": "limit_data", "attributes": {"bytes": 6}}),
    )]);
    rig.input.write_all(b"abcd").await.expect("written");
    assert_eq!(read_exactly(&mut rig.output, 4).await, b"abcd");
    rig.input.write_all(b"efghij").await.expect("written");
    assert_eq!(rig.task.await.expect("the pipe ends"), End::Close);
    let mut rest = Vec::new();
    rig.output.read_to_end(&mut rest).await.expect("closed");
    assert_eq!(rest, b"ef");
}

#[tokio::test(start_paused = true)]
async fn reset_peer_drops_the_data_and_asks_for_a_reset_after_its_timeout() {
    let mut rig = rig(vec![toxic(
        json!({"type": "reset_peer", "attributes": {"timeout": 300}}),
    )]);
    let start = Instant::now();
    rig.input.write_all(b"boom").await.expect("written");
    assert_eq!(rig.task.await.expect("the pipe ends"), End::Reset);
    assert_eq!(start.elapsed(), Duration::from_millis(300));
}

#[tokio::test(start_paused = true)]
async fn bandwidth_passes_its_kilobytes_per_second() {
    // 20 KB at 10 KB/s: two seconds.
    let mut rig = rig(vec![toxic(
        json!({"type": "bandwidth", "attributes": {"rate": 10}}),
    )]);
    let start = Instant::now();
    let data = vec![7u8; 20_000];
    let writer = tokio::spawn(async move {
        rig.input.write_all(&data).await.expect("written");
        rig.input
    });
    read_exactly(&mut rig.output, 20_000).await;
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_millis(2100),
        "{waited:?}"
    );
    drop(writer);
}

#[tokio::test(start_paused = true)]
async fn slow_close_delays_the_close_by_its_milliseconds() {
    let mut rig = rig(vec![toxic(
        json!({"type": "slow_close", "attributes": {"delay": 700}}),
    )]);
    rig.input.write_all(b"bye").await.expect("written");
    assert_eq!(read_exactly(&mut rig.output, 3).await, b"bye");
    let start = Instant::now();
    drop(rig.input);
    let mut rest = Vec::new();
    rig.output.read_to_end(&mut rest).await.expect("closed");
    assert_eq!(start.elapsed(), Duration::from_millis(700));
    assert_eq!(rig.task.await.expect("the pipe ends"), End::Eof);
}

#[tokio::test(start_paused = true)]
async fn the_slicer_cuts_a_chunk_into_small_pieces_its_delay_apart() {
    let mut rig = rig(vec![toxic(json!({"type": "slicer",
        "attributes": {"average_size": 10, "size_variation": 3, "delay": 1000}}))]);
    let start = Instant::now();
    rig.input.write_all(&[1u8; 100]).await.expect("written");
    assert_eq!(read_exactly(&mut rig.output, 100).await, vec![1u8; 100]);
    // At least 100 / 13 slices, a millisecond apart after the first.
    assert!(
        start.elapsed() >= Duration::from_millis(7),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn slices_stay_near_the_average_size_and_cover_the_chunk() {
    let mut rng = SmallRng::seed_from_u64(1);
    let mut bounds = Vec::new();
    cut_points(0, 1000, 50, 10, &mut rng, &mut bounds);
    assert_eq!(bounds.last(), Some(&1000));
    let mut at = 0;
    for end in bounds {
        assert!(end > at && end - at <= 60, "a slice of {}", end - at);
        at = end;
    }
}

#[tokio::test(start_paused = true)]
async fn a_toxicity_of_zero_leaves_the_connection_alone() {
    let mut rig = rig(vec![toxic(
        json!({"type": "latency", "toxicity": 0.0, "attributes": {"latency": 1000}}),
    )]);
    let start = Instant::now();
    rig.input.write_all(b"fast").await.expect("written");
    read_exactly(&mut rig.output, 4).await;
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_toxic_added_later_acts_on_the_open_connection_and_removing_it_lifts_it() {
    let mut rig = rig(Vec::new());
    rig.input.write_all(b"a").await.expect("written");
    read_exactly(&mut rig.output, 1).await;
    rig.chain.send_replace(Arc::new(vec![toxic(
        json!({"type": "latency", "attributes": {"latency": 400}}),
    )]));
    tokio::task::yield_now().await;
    let start = Instant::now();
    rig.input.write_all(b"b").await.expect("written");
    read_exactly(&mut rig.output, 1).await;
    assert_eq!(start.elapsed(), Duration::from_millis(400));
    rig.chain.send_replace(Arc::new(Vec::new()));
    tokio::task::yield_now().await;
    let start = Instant::now();
    rig.input.write_all(b"c").await.expect("written");
    read_exactly(&mut rig.output, 1).await;
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn removing_a_timeout_toxic_closes_the_connection_as_toxiproxy_does() {
    let rig = rig(vec![toxic(
        json!({"type": "timeout", "attributes": {"timeout": 0}}),
    )]);
    tokio::task::yield_now().await;
    rig.chain.send_replace(Arc::new(Vec::new()));
    assert_eq!(rig.task.await.expect("the pipe ends"), End::Close);
}

#[tokio::test(start_paused = true)]
async fn updating_a_timeout_restarts_its_timer() {
    let timeout = |ms: u64| toxic(json!({"type": "timeout", "attributes": {"timeout": ms}}));
    let rig = rig(vec![timeout(1000)]);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_millis(600)).await;
    rig.chain.send_replace(Arc::new(vec![timeout(1000)]));
    tokio::time::sleep(Duration::from_millis(10)).await;
    rig.chain.send_replace(Arc::new(vec![timeout(800)]));
    assert_eq!(rig.task.await.expect("the pipe ends"), End::Close);
    assert_eq!(start.elapsed(), Duration::from_millis(1410));
}

#[tokio::test(start_paused = true)]
async fn limit_data_keeps_its_count_across_an_update() {
    let limit = |bytes: u64| toxic(json!({"type": "limit_data", "attributes": {"bytes": bytes}}));
    let mut rig = rig(vec![limit(6)]);
    rig.input.write_all(b"abcd").await.expect("written");
    assert_eq!(read_exactly(&mut rig.output, 4).await, b"abcd");
    rig.chain.send_replace(Arc::new(vec![limit(5)]));
    tokio::task::yield_now().await;
    rig.input.write_all(b"efgh").await.expect("written");
    assert_eq!(rig.task.await.expect("the pipe ends"), End::Close);
    let mut rest = Vec::new();
    rig.output.read_to_end(&mut rest).await.expect("closed");
    assert_eq!(rest, b"e");
}

#[test]
fn a_plan_applies_the_chain_in_order_latency_then_limit() {
    let toxics = [
        toxic(json!({"type": "latency", "attributes": {"latency": 40}})),
        toxic(json!({"type": "limit_data", "attributes": {"bytes": 3}})),
    ];
    let mut seen = HashMap::new();
    let mut rng = SmallRng::seed_from_u64(3);
    assert!(!refresh(&mut seen, &toxics, &mut rng, 0).close);
    let active: Vec<&Toxic> = toxics.iter().collect();
    let read_at = Instant::now();
    let planned = plan(
        &active,
        &mut seen,
        read_at,
        Bytes::from_static(b"hello"),
        &mut rng,
    );
    assert_eq!(
        planned,
        Plan {
            start: read_at + Duration::from_millis(40),
            pieces: vec![(Duration::ZERO, Bytes::from_static(b"hel"))],
            end: Some((Duration::ZERO, End::Close)),
            answers: Vec::new(),
        }
    );
}

#[tokio::test(start_paused = true)]
async fn first_connections_limits_a_toxic_to_the_connections_after_it_was_created() {
    let mut latency = toxic(json!({"type": "latency", "first_connections": 2,
        "attributes": {"latency": 100}}));
    latency.from_connection = 1;
    for (ordinal, delayed) in [(0, false), (1, true), (2, true), (3, false)] {
        let mut rig = rig_for(ordinal, vec![latency.clone()]);
        let start = Instant::now();
        rig.input.write_all(b"x").await.expect("written");
        read_exactly(&mut rig.output, 1).await;
        let waited = start.elapsed();
        assert_eq!(
            waited == Duration::from_millis(100),
            delayed,
            "connection {ordinal}"
        );
    }
}

/// Both directions of one connection: what the client and the server see.
struct Both {
    client: DuplexStream,
    server: DuplexStream,
    up: watch::Sender<Chain>,
    stats: Arc<ProxyStats>,
}

fn both(toxics: Vec<Toxic>) -> Both {
    both_ways(toxics, Vec::new())
}

/// [`both`] with toxics on the downstream stream too.
fn both_ways(toxics: Vec<Toxic>, downstream: Vec<Toxic>) -> Both {
    let (client, proxy_client) = tokio::io::duplex(64 * 1024);
    let (proxy_server, server) = tokio::io::duplex(64 * 1024);
    let (client_read, client_write) = tokio::io::split(proxy_client);
    let (server_read, server_write) = tokio::io::split(proxy_server);
    let stats = Arc::new(ProxyStats::default());
    let (up_link, down_link) = Link::pair(0, Arc::clone(&stats));
    let (up, up_chain) = watch::channel(Arc::new(toxics));
    let (down, down_chain) = watch::channel(Arc::new(downstream));
    let rng = || SmallRng::seed_from_u64(11);
    tokio::spawn(pipe(client_read, server_write, up_chain, rng(), up_link));
    tokio::spawn(async move {
        let end = pipe(server_read, client_write, down_chain, rng(), down_link).await;
        drop(down);
        end
    });
    Both {
        client,
        server,
        up,
        stats,
    }
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

#[tokio::test(start_paused = true)]
async fn http_error_answers_the_client_itself_and_the_server_sees_nothing() {
    let mut both = both(vec![toxic(json!({"type": "http_error",
        "attributes": {"status": 502, "body": "no"}}))]);
    both.client.write_all(GET).await.expect("written");
    both.client.write_all(GET).await.expect("written");
    let answer = b"HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 2\r\nx-blastwall-toxic: http_error\r\n\r\nno";
    assert_eq!(read_exactly(&mut both.client, answer.len()).await, answer);
    assert_eq!(read_exactly(&mut both.client, answer.len()).await, answer);
    let mut buf = [0; 1];
    let nothing = tokio::time::timeout(Duration::from_secs(60), both.server.read(&mut buf)).await;
    assert!(nothing.is_err(), "the server saw {nothing:?}");
    let http_error = 7;
    assert_eq!(both.stats.applied_total(http_error, Stream::Upstream), 2);
    assert_eq!(
        both.stats.received_total(Stream::Upstream),
        2 * GET.len() as u64
    );
    assert_eq!(
        both.stats.sent_total(Stream::Downstream),
        2 * answer.len() as u64
    );
}

#[tokio::test(start_paused = true)]
async fn removing_http_error_mid_head_forwards_what_it_held_and_the_connection_goes_on() {
    let mut both = both(vec![toxic(json!({"type": "http_error"}))]);
    both.client.write_all(&GET[..10]).await.expect("written");
    let mut buf = [0; 1];
    let held = tokio::time::timeout(Duration::from_secs(1), both.server.read(&mut buf)).await;
    assert!(held.is_err(), "half a head is held: {held:?}");
    both.up.send_replace(Arc::new(Vec::new()));
    assert_eq!(read_exactly(&mut both.server, 10).await, GET[..10]);
    both.client.write_all(&GET[10..]).await.expect("written");
    assert_eq!(
        read_exactly(&mut both.server, GET.len() - 10).await,
        GET[10..]
    );
    both.server
        .write_all(b"HTTP/1.1 200 OK\r\n\r\n")
        .await
        .expect("written");
    assert_eq!(
        read_exactly(&mut both.client, 19).await,
        b"HTTP/1.1 200 OK\r\n\r\n"
    );
}

#[tokio::test(start_paused = true)]
async fn a_connection_only_forwards_and_counts_its_bytes_without_toxics() {
    let mut both = both(Vec::new());
    both.client.write_all(GET).await.expect("written");
    assert_eq!(read_exactly(&mut both.server, GET.len()).await, GET);
    both.server.write_all(b"pong").await.expect("written");
    read_exactly(&mut both.client, 4).await;
    assert_eq!(both.stats.sent_total(Stream::Upstream), GET.len() as u64);
    assert_eq!(both.stats.received_total(Stream::Downstream), 4);
    assert_eq!(both.stats.sent_total(Stream::Downstream), 4);
}

#[tokio::test(start_paused = true)]
async fn a_client_that_sends_its_request_and_its_end_still_gets_the_answer() {
    let mut both = both(vec![toxic(json!({"type": "http_error"}))]);
    both.client.write_all(GET).await.expect("written");
    both.client.shutdown().await.expect("the client's end");
    let mut seen = Vec::new();
    both.server
        .read_to_end(&mut seen)
        .await
        .expect("the end passed on");
    assert!(seen.is_empty(), "the server saw {seen:?}");
    drop(both.server);
    let mut answer = Vec::new();
    both.client
        .read_to_end(&mut answer)
        .await
        .expect("answered, then closed");
    assert!(
        answer.starts_with(b"HTTP/1.1 503 Service Unavailable\r\n"),
        "{answer:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_answer_travels_back_through_the_downstream_toxics() {
    let mut both = both_ways(
        vec![toxic(json!({"type": "http_error"}))],
        vec![toxic(
            json!({"type": "latency", "attributes": {"latency": 200}}),
        )],
    );
    let start = Instant::now();
    both.client.write_all(GET).await.expect("written");
    read_exactly(&mut both.client, 12).await;
    assert_eq!(start.elapsed(), Duration::from_millis(200));
}
