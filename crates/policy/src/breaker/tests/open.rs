//! Open: rejecting, and the lazy move to half-open.

use std::time::Instant;

use super::{breaker, ms, secs, trip, trips_after_three};
use crate::breaker::{CircuitBreaker, Reason, State, Transition};

#[test]
fn open_rejects_with_retry_after_until_the_period_ends() {
    let t0 = Instant::now();
    let mut b = breaker(trips_after_three());
    trip(&mut b, t0);
    let rejection = b.try_acquire(t0 + secs(4)).expect_err("open rejects");
    assert_eq!(rejection.state(), State::Open);
    assert_eq!(rejection.until(), Some(t0 + secs(10)));
    assert_eq!(rejection.retry_after(), Some(secs(6)));
    assert_eq!(
        rejection.to_string(),
        "circuit breaker is open; call rejected"
    );
    assert!(b.try_acquire(t0 + ms(9_999)).is_err());
    assert_eq!(b.pop_transition(), None, "rejecting is no transition");
}

#[test]
fn open_becomes_half_open_on_the_first_acquire_after_the_period() {
    let t0 = Instant::now();
    let mut b = breaker(trips_after_three());
    trip(&mut b, t0);
    let at = t0 + secs(12);
    let probe = b.try_acquire(at).expect("open period over: a probe");
    assert!(probe.is_probe());
    assert_eq!(
        b.pop_transition(),
        Some(Transition {
            from: State::Open,
            to: State::HalfOpen,
            reason: Reason::OpenTimeoutElapsed,
            at,
            open_until: None,
        })
    );
    assert_eq!(b.pop_transition(), None);
}

#[test]
fn state_reads_half_open_once_the_period_elapsed_without_changing_anything() {
    let t0 = Instant::now();
    let mut b = breaker(trips_after_three());
    trip(&mut b, t0);
    assert_eq!(b.state(t0 + ms(9_999)), State::Open);
    assert_eq!(b.state(t0 + secs(10)), State::HalfOpen);
    assert_eq!(b.pop_transition(), None);
    assert!(matches!(b.phase, crate::breaker::Phase::Open { .. }));
}

#[test]
fn advance_applies_a_due_transition_and_returns_it() {
    let t0 = Instant::now();
    let mut b = breaker(trips_after_three());
    trip(&mut b, t0);
    assert_eq!(b.advance(t0 + secs(9)), None);
    let t = b.advance(t0 + secs(10)).expect("period over");
    assert_eq!((t.from, t.to), (State::Open, State::HalfOpen));
    assert_eq!(b.advance(t0 + secs(11)), None, "nothing more is due");
    assert_eq!(b.pop_transition(), None, "returned, not queued");
}

#[test]
fn transitions_nobody_takes_overwrite_the_oldest_and_are_counted() {
    let t0 = Instant::now();
    let mut b = breaker(trips_after_three());
    trip(&mut b, t0);
    let mut at = t0;
    let rounds = CircuitBreaker::TRANSITION_QUEUE_CAPACITY + 2;
    for _ in 0..rounds {
        at += secs(10);
        let probe = b.try_acquire(at).expect("half-open again");
        b.record(probe, crate::breaker::Outcome::Failure, at)
            .expect("probe failure reopens");
    }
    assert_eq!(b.missed_transitions(), 2);
    let queued: Vec<_> = b.take_transitions().collect();
    assert_eq!(queued.len(), CircuitBreaker::TRANSITION_QUEUE_CAPACITY);
    assert!(queued.iter().all(|t| t.to == State::HalfOpen));
    assert_eq!(queued.last().map(|t| t.at), Some(at), "newest kept");
}
