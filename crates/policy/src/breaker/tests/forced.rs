//! Operator overrides: force open, force closed, reset.

use std::time::Instant;

use super::{breaker, call, secs, trip, trips_after_three};
use crate::breaker::{Outcome, Reason, State, Transition};

#[test]
fn force_open_rejects_every_call_until_reset() {
    let t0 = Instant::now();
    let mut b = breaker(trips_after_three());
    let forced = b.force_open(t0).expect("a transition");
    assert_eq!(
        forced,
        Transition {
            from: State::Closed,
            to: State::ForcedOpen,
            reason: Reason::ForcedOpen,
            at: t0,
            open_until: None,
        }
    );
    let rejection = b
        .try_acquire(t0 + secs(1_000_000))
        .expect_err("forced open");
    assert_eq!(rejection.state(), State::ForcedOpen);
    assert_eq!((rejection.until(), rejection.retry_after()), (None, None));
    assert_eq!(b.state(t0 + secs(1_000_000)), State::ForcedOpen);
    let reset = b.reset(t0 + secs(5));
    assert_eq!(
        (reset.from, reset.to, reset.reason),
        (State::ForcedOpen, State::Closed, Reason::Reset)
    );
    assert!(b.try_acquire(t0 + secs(5)).is_ok());
}

#[test]
fn force_closed_admits_every_call_and_counts_nothing() {
    let t0 = Instant::now();
    let mut b = breaker(trips_after_three());
    trip(&mut b, t0);
    let forced = b.force_closed(t0).expect("a transition");
    assert_eq!((forced.from, forced.to), (State::Open, State::ForcedClosed));
    for _ in 0..10 {
        assert_eq!(call(&mut b, Outcome::Failure, t0), None);
    }
    assert_eq!(b.state(t0), State::ForcedClosed);
    assert_eq!(b.consecutive_failures(), 3, "nothing counted since forced");
}

#[test]
fn forcing_the_state_it_is_already_in_is_no_transition() {
    let t0 = Instant::now();
    let mut b = breaker(trips_after_three());
    assert!(b.force_open(t0).is_some());
    assert_eq!(b.force_open(t0), None);
    let switched = b.force_closed(t0).expect("open to closed is a change");
    assert_eq!(
        (switched.from, switched.to),
        (State::ForcedOpen, State::ForcedClosed)
    );
    assert_eq!(b.force_closed(t0), None);
}

#[test]
fn reset_returns_to_closed_with_an_empty_window_from_any_state() {
    let t0 = Instant::now();
    let mut b = breaker(trips_after_three());
    call(&mut b, Outcome::Failure, t0);
    call(&mut b, Outcome::Failure, t0);
    let reset = b.reset(t0);
    assert_eq!((reset.from, reset.to), (State::Closed, State::Closed));
    assert_eq!(b.window_counts(t0).calls, 0);
    assert_eq!(b.consecutive_failures(), 0);
    assert_eq!(
        call(&mut b, Outcome::Failure, t0),
        None,
        "the run starts again"
    );
    assert_eq!(b.consecutive_failures(), 1);

    b.reset(t0);
    trip(&mut b, t0);
    assert_eq!(b.reset(t0).from, State::Open);
    trip(&mut b, t0);
    assert!(b.advance(t0 + secs(10)).is_some());
    assert_eq!(b.reset(t0 + secs(10)).from, State::HalfOpen);
    b.force_closed(t0 + secs(10));
    assert_eq!(b.reset(t0 + secs(10)).from, State::ForcedClosed);
}

#[test]
fn force_open_from_an_elapsed_open_period_reports_the_stored_state() {
    let t0 = Instant::now();
    let mut b = breaker(trips_after_three());
    trip(&mut b, t0);
    // The open period is over but nothing has applied it: the event chain still ends in
    // Open, so the forced transition starts there.
    let forced = b.force_open(t0 + secs(20)).expect("a transition");
    assert_eq!(forced.from, State::Open);
    assert_eq!(b.pop_transition(), None);
}
