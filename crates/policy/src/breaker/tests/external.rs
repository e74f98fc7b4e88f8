//! External probes: an open breaker that only the caller's own probe (a health check)
//! half-opens, never time alone.

use std::time::Instant;

use super::{breaker, call, ms, secs, trip, trips_after_three};
use crate::breaker::{BreakerConfig, OpenBackoff, Outcome, Reason, SharedBreaker, State};

fn probed_externally() -> BreakerConfig {
    BreakerConfig {
        external_probes: true,
        ..trips_after_three()
    }
}

/// [`probed_externally`], its open period doubling (up to 100 s) each time probing fails.
fn probed_externally_with_backoff() -> BreakerConfig {
    BreakerConfig {
        open_backoff: Some(OpenBackoff {
            multiplier: 2.0,
            max: secs(100),
        }),
        ..probed_externally()
    }
}

#[test]
fn an_externally_probed_breaker_stays_open_past_its_open_period() {
    let t0 = Instant::now();
    let mut b = breaker(probed_externally());
    trip(&mut b, t0);
    let late = t0 + secs(60);
    assert_eq!(b.advance(late), None);
    assert_eq!(b.state(late), State::Open);
    let rejected = b.try_acquire(late).expect_err("no call is a probe");
    assert_eq!(rejected.state(), State::Open);
    assert!(b.take_transitions().next().is_none());
}

#[test]
fn a_probe_is_due_once_the_open_period_is_over() {
    let t0 = Instant::now();
    let mut b = breaker(probed_externally());
    assert!(!b.probe_due(t0), "a closed breaker needs no probe");
    trip(&mut b, t0);
    assert!(!b.probe_due(t0 + secs(9)));
    assert!(b.probe_due(t0 + secs(10)));
    // Without external probes the caller never probes: calls do.
    let mut by_calls = breaker(trips_after_three());
    trip(&mut by_calls, t0);
    assert!(!by_calls.probe_due(t0 + secs(10)));
}

#[test]
fn a_passing_probe_half_opens_and_calls_then_close_it() {
    let t0 = Instant::now();
    let at = t0 + secs(10);
    let mut b = breaker(probed_externally());
    trip(&mut b, t0);
    let half = b.probe_passed(at).expect("half-opens");
    assert_eq!((half.from, half.to), (State::Open, State::HalfOpen));
    assert_eq!(half.reason, Reason::ExternalProbePassed);
    let first = b.try_acquire(at).expect("probe 1");
    let second = b.try_acquire(at).expect("probe 2");
    assert!(first.is_probe());
    assert_eq!(b.record(first, Outcome::Success, at), None);
    let closed = b.record(second, Outcome::Success, at).expect("closes");
    assert_eq!(closed.to, State::Closed);
}

#[test]
fn a_failing_probe_keeps_it_open_one_more_period_without_backoff() {
    let t0 = Instant::now();
    let mut b = breaker(probed_externally_with_backoff());
    trip(&mut b, t0);
    for round in 1..=5u64 {
        let at = t0 + secs(10 * round);
        assert!(b.probe_due(at));
        b.probe_failed(at);
        assert!(!b.probe_due(at + secs(9)), "round {round}");
        assert_eq!(b.state(at + secs(9)), State::Open);
    }
    assert!(b.probe_due(t0 + secs(60)));
}

#[test]
fn calls_failing_after_a_passing_probe_reopen_it_for_longer() {
    let t0 = Instant::now();
    let mut b = breaker(probed_externally_with_backoff());
    trip(&mut b, t0);
    let at = t0 + secs(10);
    b.probe_passed(at).expect("half-opens");
    let reopened = call(&mut b, Outcome::Failure, at).expect("reopens");
    assert_eq!(reopened.to, State::Open);
    assert_eq!(reopened.open_until, Some(at + secs(20)));
    assert!(!b.probe_due(at + secs(19)));
    assert!(b.probe_due(at + secs(20)));
}

#[test]
fn a_probe_that_outlived_the_open_state_changes_nothing() {
    let t0 = Instant::now();
    let mut b = breaker(probed_externally());
    assert_eq!(b.probe_passed(t0), None, "closed");
    trip(&mut b, t0);
    b.force_open(t0 + ms(1));
    assert_eq!(b.probe_passed(t0 + secs(10)), None, "forced open");
    b.probe_failed(t0 + secs(10));
    assert_eq!(b.state(t0 + secs(10)), State::ForcedOpen);
}

#[test]
fn a_shared_breaker_tells_its_listener_of_the_probe() {
    let t0 = Instant::now();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let b = SharedBreaker::with_listener(
        crate::breaker::CircuitBreaker::new(probed_externally()).expect("valid"),
        move |transition| log.lock().expect("not poisoned").push(transition.reason),
    );
    for _ in 0..3 {
        let permit = b.try_acquire(t0).expect("closed");
        b.record(permit, Outcome::Failure, t0);
    }
    assert!(b.probe_due(t0 + secs(10)));
    b.probe_passed(t0 + secs(10)).expect("half-opens");
    assert!(b.try_acquire(t0 + secs(10)).is_ok());
    let reasons = seen.lock().expect("not poisoned").clone();
    assert_eq!(reasons.last(), Some(&Reason::ExternalProbePassed));
}
