//! The thread-safe wrapper and its listener.

use std::sync::{Arc, Barrier, Mutex};
use std::time::Instant;

use super::{breaker, secs, trips_after_three};
use crate::breaker::{BreakerConfig, Outcome, SharedBreaker, State, Transition};

fn recorded() -> (
    Arc<Mutex<Vec<Transition>>>,
    impl Fn(&Transition) + Send + Sync + 'static,
) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let listener = move |t: &Transition| sink.lock().expect("test lock").push(*t);
    (seen, listener)
}

fn fail(b: &SharedBreaker, at: Instant) {
    let permit = b.try_acquire(at).expect("admitted");
    b.record(permit, Outcome::Failure, at);
}

#[test]
fn the_listener_sees_every_transition_in_order_including_lazy_ones() {
    let t0 = Instant::now();
    let (seen, listener) = recorded();
    let b = SharedBreaker::with_listener(breaker(trips_after_three()), listener);
    for _ in 0..3 {
        fail(&b, t0);
    }
    assert!(b.try_acquire(t0 + secs(1)).is_err());
    let probe = b.try_acquire(t0 + secs(10)).expect("half-open");
    b.record(probe, Outcome::Failure, t0 + secs(10));
    b.force_open(t0 + secs(11));
    b.force_closed(t0 + secs(12));
    b.reset(t0 + secs(13));
    let path: Vec<_> = seen
        .lock()
        .expect("test lock")
        .iter()
        .map(|t| (t.from, t.to))
        .collect();
    assert_eq!(
        path,
        [
            (State::Closed, State::Open),
            (State::Open, State::HalfOpen),
            (State::HalfOpen, State::Open),
            (State::Open, State::ForcedOpen),
            (State::ForcedOpen, State::ForcedClosed),
            (State::ForcedClosed, State::Closed),
        ]
    );
    assert_eq!(b.pop_transition(), None, "delivered, not left queued");
}

#[test]
fn without_a_listener_lazy_transitions_wait_to_be_popped() {
    let t0 = Instant::now();
    let b = SharedBreaker::new(trips_after_three()).expect("valid");
    for _ in 0..3 {
        fail(&b, t0);
    }
    assert_eq!(
        b.advance(t0 + secs(10)).map(|t| t.to),
        Some(State::HalfOpen)
    );
    let probe = b.try_acquire(t0 + secs(10)).expect("probe");
    assert_eq!(b.pop_transition(), None, "advance returned it directly");
    b.record(probe, Outcome::Failure, t0 + secs(10));
    assert!(b.try_acquire(t0 + secs(20)).is_ok());
    assert_eq!(b.pop_transition().map(|t| t.to), Some(State::HalfOpen));
    assert_eq!(b.missed_transitions(), 0);
}

#[test]
fn clones_share_one_breaker() {
    let t0 = Instant::now();
    let b = SharedBreaker::new(trips_after_three()).expect("valid");
    let other = b.clone();
    for _ in 0..3 {
        fail(&b, t0);
    }
    assert_eq!(other.state(t0), State::Open);
    assert_eq!(other.window_counts(t0).failures, 3);
}

#[test]
fn half_open_admits_only_configured_probes_across_threads() {
    let t0 = Instant::now();
    let b = SharedBreaker::new(BreakerConfig {
        half_open_probes: 3,
        ..trips_after_three()
    })
    .expect("valid");
    for _ in 0..3 {
        fail(&b, t0);
    }
    let threads = 8;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let b = b.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                b.try_acquire(t0 + secs(10)).ok()
            })
        })
        .collect();
    let admitted: Vec<_> = handles
        .into_iter()
        .filter_map(|h| h.join().expect("thread finished"))
        .collect();
    assert_eq!(admitted.len(), 3);
    assert!(admitted.iter().all(|p| p.is_probe()));
}

#[test]
fn a_panicking_listener_leaves_the_breaker_usable() {
    let t0 = Instant::now();
    let b = SharedBreaker::with_listener(breaker(trips_after_three()), |t: &Transition| {
        assert_ne!(t.to, State::ForcedOpen, "listener refuses forced open");
    });
    let other = b.clone();
    let result = std::thread::spawn(move || other.force_open(t0)).join();
    assert!(result.is_err(), "the listener panicked");
    assert_eq!(b.state(t0), State::ForcedOpen, "the transition was applied");
    assert_eq!(b.reset(t0).from, State::ForcedOpen);
}

#[test]
fn admitting_while_closed_takes_no_lock() {
    let t0 = Instant::now();
    let b = SharedBreaker::new(trips_after_three()).expect("valid");
    let held = b.lock();
    let permit = b.try_acquire(t0).expect("closed admits without the lock");
    drop(held);
    assert_eq!(b.record(permit, Outcome::Failure, t0), None);
    assert_eq!(
        b.window_counts(t0).failures,
        1,
        "a lock-free permit records normally"
    );
}

#[test]
fn a_permit_admitted_just_before_a_trip_is_stale_after_it() {
    let t0 = Instant::now();
    let b = SharedBreaker::new(trips_after_three()).expect("valid");
    let early = b.try_acquire(t0).expect("closed");
    for _ in 0..3 {
        fail(&b, t0);
    }
    assert!(b.try_acquire(t0).is_err(), "the published word says open");
    assert_eq!(b.record(early, Outcome::Failure, t0), None);
    assert_eq!(b.window_counts(t0).failures, 3);
}
