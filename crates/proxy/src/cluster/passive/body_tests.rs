//! Attempts whose head said success and whose body was still to come: judged when the body
//! ends, against the endpoint when the endpoint broke it off, not at all when the client
//! dropped it.

use std::time::Instant;

use rand::SeedableRng;
use rand::rngs::SmallRng;

use super::super::Cluster;
use super::tests::{MS, address, breaker, config, outliers, request};
use crate::endpoint::EndpointGuard;
use crate::outcome::BodyFailure;

/// A pick of endpoint 1 of two, as a retry avoiding the other would make.
fn pick_first(cluster: &Cluster, now: Instant) -> EndpointGuard {
    cluster
        .pick_avoiding_with(
            &request(),
            &[address(2)],
            now,
            &mut SmallRng::seed_from_u64(1),
        )
        .expect("a pick")
}

#[test]
fn bodies_that_break_off_after_a_good_head_eject_their_endpoint() {
    let passive = outliers(|config| config.consecutive_gateway_errors = Some(3));
    let now = Instant::now();
    let cluster = Cluster::new(config(2, passive), None, None, now);
    for failure in [
        BodyFailure::Broken,
        BodyFailure::Stalled,
        BodyFailure::Broken,
    ] {
        let guard = pick_first(&cluster, now);
        cluster.record_streaming_head(&guard, MS, now);
        assert!(!cluster.endpoints()[0].is_ejected(), "judged at the head");
        cluster.record_body_end(&guard, Err(failure), MS, now);
    }
    assert!(cluster.endpoints()[0].is_ejected());
    let stats = cluster.stats();
    assert_eq!(stats.attempts.get(), 3, "each attempt counted once");
    assert_eq!(stats.attempt_failures.get(), 3);
    assert_eq!(stats.attempt_body_failures.get(), 3);
}

#[test]
fn a_whole_body_is_a_success_that_ends_a_run_of_failures() {
    let passive = outliers(|config| config.consecutive_gateway_errors = Some(2));
    let now = Instant::now();
    let cluster = Cluster::new(config(2, passive), None, None, now);
    for ended in [Err(BodyFailure::Broken), Ok(()), Err(BodyFailure::Broken)] {
        let guard = pick_first(&cluster, now);
        cluster.record_streaming_head(&guard, MS, now);
        cluster.record_body_end(&guard, ended, MS, now);
    }
    assert!(!cluster.endpoints()[0].is_ejected());
    assert_eq!(cluster.stats().attempt_body_failures.get(), 2);
}

#[test]
fn the_endpoint_breaker_keeps_its_permit_until_the_body_ends() {
    let mut passive = outliers(|config| config.consecutive_gateway_errors = None);
    passive.endpoint_circuit_breaker = Some(breaker(2));
    let now = Instant::now();
    let cluster = Cluster::new(config(2, passive), None, None, now);
    for _ in 0..2 {
        let guard = pick_first(&cluster, now);
        cluster.record_streaming_head(&guard, MS, now);
        assert_eq!(cluster.stats().endpoint_breaker_opened.get(), 0);
        cluster.record_body_end(&guard, Err(BodyFailure::Broken), MS, now);
    }
    assert_eq!(cluster.stats().endpoint_breaker_opened.get(), 1);
    assert!(cluster.endpoints()[0].is_tripped());
}

#[test]
fn a_body_the_client_dropped_says_nothing_of_the_endpoint() {
    let mut passive = outliers(|config| {
        config.consecutive_errors = Some(1);
        config.consecutive_gateway_errors = Some(1);
    });
    passive.endpoint_circuit_breaker = Some(breaker(1));
    let now = Instant::now();
    let cluster = Cluster::new(config(2, passive), None, None, now);
    for _ in 0..20 {
        let guard = pick_first(&cluster, now);
        cluster.record_streaming_head(&guard, MS, now);
        // The client left: the body, and the guard in it, are dropped unjudged.
        drop(guard);
    }
    assert!(!cluster.endpoints()[0].is_ejected());
    assert!(!cluster.endpoints()[0].is_tripped());
    let stats = cluster.stats();
    assert_eq!(stats.attempts.get(), 20);
    assert_eq!(stats.attempt_failures.get(), 0);
    assert_eq!(stats.endpoint_breaker_opened.get(), 0);
}
