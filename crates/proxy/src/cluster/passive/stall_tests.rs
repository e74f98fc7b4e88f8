//! Stall detection in a whole cluster, with injected time (no runtime: time is advanced by
//! calling `tick`), and the censored sample a cancelled attempt leaves.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use blastwall_policy::outlier::stall::StallAfter;
use http::StatusCode;
use rand::SeedableRng;
use rand::rngs::SmallRng;

use super::super::Cluster;
use super::tests::{MS, address, config, reached, request};
use crate::config::{PassiveConfig, StallConfig};
use crate::endpoint::EndpointGuard;
use crate::events::EventKind;
use crate::outcome::AttemptOutcome;

fn stalling(endpoints: u8, after: StallAfter, max_ejection_percent: u8) -> Arc<Cluster> {
    let passive = PassiveConfig {
        stall: Some(StallConfig {
            after,
            max_ejection_percent,
        }),
        ..PassiveConfig::default()
    };
    Cluster::new(config(endpoints, passive), None, None, Instant::now())
}

/// An attempt to `last` sent at `now` and kept out (the guard holds it).
fn send(cluster: &Cluster, last: u8, now: Instant) -> EndpointGuard {
    let others: Vec<SocketAddr> = (1..=10)
        .map(address)
        .filter(|other| *other != address(last))
        .collect();
    let mut rng = SmallRng::seed_from_u64(1);
    let guard = cluster
        .pick_avoiding_with(&request(), &others, now, &mut rng)
        .expect("a pick");
    assert_eq!(guard.endpoint().address(), address(last));
    guard
}

fn stalled(cluster: &Cluster) -> Vec<SocketAddr> {
    cluster
        .endpoints()
        .iter()
        .filter(|endpoint| endpoint.is_stalled())
        .map(|endpoint| endpoint.address())
        .collect()
}

#[test]
fn an_endpoint_busy_and_silent_past_stall_after_takes_no_picks_until_it_answers() {
    let cluster = stalling(3, StallAfter::Fixed(50 * MS), 10);
    let start = Instant::now();
    let _hung = send(&cluster, 1, start);
    cluster.tick(start + 40 * MS);
    assert!(stalled(&cluster).is_empty());
    cluster.tick(start + 60 * MS);
    assert_eq!(stalled(&cluster), vec![address(1)]);
    assert!(!reached(&cluster, 60, start + 60 * MS).contains(&1));
    assert_eq!(cluster.stats().stalls.get(), 1);
    let kinds: Vec<EventKind> = (cluster.stats().events.recent().iter())
        .map(|event| event.kind)
        .collect();
    assert_eq!(kinds, vec![EventKind::EndpointStalled]);
    // Its first answer, to the request it had, puts it back.
    cluster.record_outcome(&_hung, AttemptOutcome::Success, 70 * MS, start + 70 * MS);
    assert!(stalled(&cluster).is_empty());
    assert!(reached(&cluster, 60, start + 70 * MS).contains(&1));
    assert_eq!(cluster.stats().stalls_ended.get(), 1);
}

#[test]
fn any_answer_counts_even_an_error_or_a_passing_health_check() {
    let cluster = stalling(3, StallAfter::Fixed(50 * MS), 10);
    let start = Instant::now();
    let hung = send(&cluster, 1, start);
    // A 502 is an answer: the endpoint is there.
    let answered = send(&cluster, 1, start + 40 * MS);
    let bad_gateway = AttemptOutcome::GatewayError(StatusCode::BAD_GATEWAY);
    cluster.record_outcome(&answered, bad_gateway, MS, start + 41 * MS);
    cluster.tick(start + 60 * MS);
    assert!(stalled(&cluster).is_empty());
    cluster.tick(start + 100 * MS);
    assert_eq!(stalled(&cluster), vec![address(1)]);
    cluster.heard_from(hung.endpoint(), None, start + 120 * MS);
    assert!(stalled(&cluster).is_empty());
}

#[test]
fn a_long_request_does_not_stall_an_endpoint_that_answers_others() {
    let cluster = stalling(3, StallAfter::Fixed(50 * MS), 10);
    let start = Instant::now();
    let _long_poll = send(&cluster, 1, start);
    for step in 1..=50u32 {
        let now = start + step * 20 * MS;
        let quick = send(&cluster, 1, now);
        cluster.record_outcome(&quick, AttemptOutcome::Success, 2 * MS, now + 2 * MS);
        cluster.tick(now + 19 * MS);
        assert!(stalled(&cluster).is_empty(), "stalled at step {step}");
    }
}

#[test]
fn a_failure_is_no_answer() {
    let cluster = stalling(3, StallAfter::Fixed(50 * MS), 10);
    let start = Instant::now();
    let _hung = send(&cluster, 1, start);
    let timed_out = send(&cluster, 1, start + 10 * MS);
    cluster.record_outcome(
        &timed_out,
        AttemptOutcome::Timeout,
        30 * MS,
        start + 40 * MS,
    );
    cluster.tick(start + 60 * MS);
    assert_eq!(stalled(&cluster), vec![address(1)]);
}

#[test]
fn stalls_never_take_out_more_than_the_cap_allows() {
    let cluster = stalling(3, StallAfter::Fixed(50 * MS), 10);
    let start = Instant::now();
    let _hung: Vec<EndpointGuard> = (1..=3).map(|last| send(&cluster, last, start)).collect();
    cluster.tick(start + 60 * MS);
    cluster.tick(start + 70 * MS);
    // 10% of 3 is at least one, never more: the others keep serving, however silent.
    assert_eq!(stalled(&cluster).len(), 1);
    assert_eq!(cluster.stats().stalls_suppressed.get(), 2, "said once each");
    assert_eq!(reached(&cluster, 60, start + 70 * MS).len(), 2);
}

#[test]
fn the_panic_threshold_bounds_stalls_too() {
    // 100% may go by the percentage, but a panic threshold of 50% keeps 2 of 3 serving.
    let cluster = stalling(3, StallAfter::Fixed(50 * MS), 100);
    let start = Instant::now();
    let _hung: Vec<EndpointGuard> = (1..=3).map(|last| send(&cluster, last, start)).collect();
    cluster.tick(start + 60 * MS);
    assert_eq!(stalled(&cluster).len(), 1);
}

#[test]
fn auto_stalls_an_endpoint_after_ten_times_its_answers_latency() {
    let cluster = stalling(3, StallAfter::Auto, 10);
    let start = Instant::now();
    let quick = send(&cluster, 1, start);
    cluster.record_outcome(&quick, AttemptOutcome::Success, 4 * MS, start + 4 * MS);
    drop(quick);
    let _hung = send(&cluster, 1, start + 10 * MS);
    cluster.tick(start + 45 * MS);
    assert!(stalled(&cluster).is_empty(), "35 ms < 10 × 4 ms");
    cluster.tick(start + 55 * MS);
    assert_eq!(stalled(&cluster), vec![address(1)]);
}

#[test]
fn without_stall_detection_nothing_is_stalled_and_a_reload_that_removes_it_puts_endpoints_back() {
    let cluster = stalling(3, StallAfter::Fixed(50 * MS), 10);
    let start = Instant::now();
    let _hung = send(&cluster, 1, start);
    cluster.tick(start + 60 * MS);
    assert_eq!(stalled(&cluster), vec![address(1)]);
    let off = Cluster::new(
        config(3, PassiveConfig::default()),
        None,
        Some(&cluster),
        start + 70 * MS,
    );
    off.tick(start + 500 * MS);
    assert!(stalled(&off).is_empty());
}

#[test]
fn a_cancelled_attempt_raises_the_latency_estimate_by_the_time_it_was_out() {
    let cluster = Cluster::new(
        config(2, PassiveConfig::default()),
        None,
        None,
        Instant::now(),
    );
    let endpoint = cluster.endpoints()[0].clone();
    let now = Instant::now();
    let answered = EndpointGuard::with_permit(endpoint.clone(), None, now);
    cluster.record_outcome(&answered, AttemptOutcome::Success, 3 * MS, now);
    assert_eq!(endpoint.latency().estimate(), 3 * MS);
    // Dropped unfinished, 80 ms after it was sent: a hedge won elsewhere.
    let sent = now.checked_sub(80 * MS).expect("the clock is past 80 ms");
    drop(EndpointGuard::with_permit(endpoint.clone(), None, sent));
    assert!(endpoint.latency().estimate() >= 80 * MS);
    // A finished attempt is not a cancellation.
    endpoint.latency().forget(now);
    let mut finished = EndpointGuard::with_permit(endpoint.clone(), None, sent);
    finished.finish();
    drop(finished);
    assert_eq!(endpoint.latency().estimate(), Duration::from_millis(30));
}

#[test]
fn an_ejected_endpoint_and_a_stalled_one_share_one_cap() {
    let mut passive = super::tests::outliers(|outliers| {
        outliers.consecutive_gateway_errors = Some(1);
        outliers.max_ejection_percent = 34;
    });
    passive.stall = Some(StallConfig {
        after: StallAfter::Fixed(50 * MS),
        max_ejection_percent: 34,
    });
    let cluster = Cluster::new(config(3, passive), None, None, Instant::now());
    let start = Instant::now();
    let failed = send(&cluster, 1, start);
    let bad_gateway = AttemptOutcome::GatewayError(StatusCode::BAD_GATEWAY);
    cluster.record_outcome(&failed, bad_gateway, MS, start);
    drop(failed);
    assert!(cluster.endpoints()[0].is_ejected());
    // A second endpoint goes silent: one of three may be out, and one is.
    let _hung = send(&cluster, 2, start);
    cluster.tick(start + 60 * MS);
    assert!(stalled(&cluster).is_empty());
    assert_eq!(cluster.stats().stalls_suppressed.get(), 1);
}
