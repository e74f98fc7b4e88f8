//! Permits that outlive the state they were issued in.

use std::time::Instant;

use super::{breaker, call, secs, trip, trips_after_three};
use crate::breaker::{BreakerConfig, Outcome, State};

#[test]
fn a_permit_from_before_a_trip_is_ignored_once_open() {
    let t0 = Instant::now();
    let mut b = breaker(trips_after_three());
    let late = b.try_acquire(t0).expect("closed admits");
    trip(&mut b, t0);
    let counts = b.window_counts(t0);
    assert_eq!(b.record(late, Outcome::Failure, t0 + secs(1)), None);
    assert_eq!(b.window_counts(t0), counts);
}

#[test]
fn a_closed_permit_recorded_in_half_open_is_not_a_probe() {
    let t0 = Instant::now();
    let mut b = breaker(BreakerConfig {
        half_open_probes: 1,
        ..trips_after_three()
    });
    let late = b.try_acquire(t0).expect("closed admits");
    trip(&mut b, t0);
    let probe = b.try_acquire(t0 + secs(10)).expect("half-open probe");
    // A late success must not count as the probe that closes the breaker...
    assert_eq!(b.record(late, Outcome::Success, t0 + secs(10)), None);
    assert_eq!(b.state(t0 + secs(10)), State::HalfOpen);
    assert!(
        b.try_acquire(t0 + secs(10)).is_err(),
        "nor free the probe's slot"
    );
    let close = b.record(probe, Outcome::Success, t0 + secs(10));
    assert_eq!(close.map(|t| t.to), Some(State::Closed));
}

#[test]
fn a_probe_from_an_earlier_round_does_not_count_in_the_next() {
    let t0 = Instant::now();
    let mut b = breaker(trips_after_three());
    trip(&mut b, t0);
    let failing = b.try_acquire(t0 + secs(10)).expect("round 1, probe 1");
    let old = b.try_acquire(t0 + secs(10)).expect("round 1, probe 2");
    b.record(failing, Outcome::Failure, t0 + secs(10))
        .expect("reopens");
    let at = t0 + secs(20);
    let first = b.try_acquire(at).expect("round 2, probe 1");
    // A success from round 1 neither counts toward round 2 nor frees a slot.
    assert_eq!(b.record(old, Outcome::Success, at), None);
    let second = b.try_acquire(at).expect("round 2, probe 2");
    assert!(b.try_acquire(at).is_err());
    assert_eq!(b.record(first, Outcome::Success, at), None);
    assert_eq!(b.state(at), State::HalfOpen, "one success of two");
    let close = b.record(second, Outcome::Success, at);
    assert_eq!(close.map(|t| t.to), Some(State::Closed));
}

#[test]
fn a_permit_from_before_a_reset_is_ignored() {
    let t0 = Instant::now();
    let mut b = breaker(trips_after_three());
    call(&mut b, Outcome::Failure, t0);
    let late = b.try_acquire(t0).expect("admitted");
    b.reset(t0);
    assert_eq!(b.record(late, Outcome::Failure, t0), None);
    assert_eq!(b.window_counts(t0).calls, 0);
    assert_eq!(b.consecutive_failures(), 0);
}
