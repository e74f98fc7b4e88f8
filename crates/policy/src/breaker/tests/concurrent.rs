//! Many threads recording into one shared breaker at once: nothing is lost or counted twice,
//! and a trip still happens, once.
//!
//! Every thread runs a fixed number of calls with explicit instants; the assertions are on
//! what the breaker holds after every thread has been joined, so nothing waits or sleeps.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Instant;

use super::{ms, quiet_config, secs};
use crate::breaker::{
    BreakerConfig, CircuitBreaker, Outcome, SharedBreaker, SlidingWindow, State, Transition,
    WindowCounts,
};

const THREADS: usize = 4;
const CALLS: u64 = 5_000;

/// Runs `THREADS` threads that each make `CALLS` calls; call `j` of a thread is acquired at
/// `at(j)`, recorded `took(j)` later with `outcome(j)`. Returns the transitions `record`
/// returned, across all threads.
fn hammer(
    b: &SharedBreaker,
    at: fn(u64) -> Instant,
    took: fn(u64) -> std::time::Duration,
    outcome: fn(u64) -> Outcome,
) -> Vec<Transition> {
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let (b, barrier) = (b.clone(), Arc::clone(&barrier));
            thread::spawn(move || {
                barrier.wait();
                let mut seen = Vec::new();
                for j in 0..CALLS {
                    if let Ok(permit) = b.try_acquire(at(j)) {
                        seen.extend(b.record(permit, outcome(j), at(j) + took(j)));
                    }
                }
                seen
            })
        })
        .collect();
    handles
        .into_iter()
        .flat_map(|h| h.join().expect("recording thread finished"))
        .collect()
}

static T0: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);

fn at_start(_: u64) -> Instant {
    *T0
}

fn instant(_: u64) -> std::time::Duration {
    ms(0)
}

/// Every third call fails; every fifth takes two seconds (slow).
fn mixed(j: u64) -> Outcome {
    if j.is_multiple_of(3) {
        Outcome::Failure
    } else {
        Outcome::Success
    }
}

fn sometimes_slow(j: u64) -> std::time::Duration {
    if j.is_multiple_of(5) { secs(2) } else { ms(0) }
}

fn shared(config: BreakerConfig) -> SharedBreaker {
    SharedBreaker::new(config).expect("test config is valid")
}

#[test]
fn concurrent_records_are_counted_exactly_in_a_count_window() {
    let b = shared(BreakerConfig {
        window: SlidingWindow::Count { calls: 1 << 16 },
        ..quiet_config()
    });
    hammer(&b, at_start, sometimes_slow, mixed);
    let per_thread = WindowCounts {
        calls: CALLS,
        failures: CALLS.div_ceil(3),
        slow: CALLS.div_ceil(5),
    };
    assert_eq!(
        b.window_counts(*T0),
        WindowCounts {
            calls: per_thread.calls * THREADS as u64,
            failures: per_thread.failures * THREADS as u64,
            slow: per_thread.slow * THREADS as u64,
        }
    );
}

#[test]
fn concurrent_records_are_counted_exactly_in_a_time_window_that_moves_on() {
    // Calls spread over 5 s of a 10 s window of 1 s buckets: the window moves to a new
    // bucket (under the lock) while other threads add to the current one, and sheds nothing.
    let b = shared(BreakerConfig {
        window: SlidingWindow::Time {
            span: secs(10),
            buckets: 10,
        },
        ..quiet_config()
    });
    fn spread(j: u64) -> Instant {
        *T0 + ms(j)
    }
    hammer(&b, spread, instant, mixed);
    assert_eq!(
        b.window_counts(*T0 + ms(CALLS)),
        WindowCounts {
            calls: CALLS * THREADS as u64,
            failures: CALLS.div_ceil(3) * THREADS as u64,
            slow: 0,
        }
    );
}

#[test]
fn a_full_count_window_holds_exactly_the_latest_outcomes_after_concurrent_laps() {
    // A 64-call window lapped many times by racing threads; every thread then records only
    // failures, then only successes. After each phase the window must hold exactly that.
    let b = shared(BreakerConfig {
        window: SlidingWindow::Count { calls: 64 },
        ..quiet_config()
    });
    fn fail(_: u64) -> Outcome {
        Outcome::Failure
    }
    fn succeed(_: u64) -> Outcome {
        Outcome::Success
    }
    hammer(&b, at_start, sometimes_slow, mixed);
    hammer(&b, at_start, instant, fail);
    let full_of = |failures| WindowCounts {
        calls: 64,
        failures,
        slow: 0,
    };
    assert_eq!(b.window_counts(*T0), full_of(64));
    hammer(&b, at_start, instant, succeed);
    assert_eq!(b.window_counts(*T0), full_of(0));
}

/// Counts the trips a listener sees.
fn counting_trips(config: BreakerConfig) -> (SharedBreaker, Arc<AtomicUsize>) {
    let trips = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&trips);
    let breaker = CircuitBreaker::new(config).expect("test config is valid");
    let b = SharedBreaker::with_listener(breaker, move |t: &Transition| {
        if t.to == State::Open {
            seen.fetch_add(1, Ordering::SeqCst);
        }
    });
    (b, trips)
}

#[test]
fn a_failure_rate_crossed_under_concurrency_trips_the_breaker_once() {
    let (b, trips) = counting_trips(BreakerConfig {
        failure_rate: Some(0.5),
        window: SlidingWindow::Count { calls: 100 },
        minimum_calls: 20,
        ..quiet_config()
    });
    let returned = hammer(&b, at_start, instant, mixed);
    // One in three fails: below 50%, so nothing trips yet...
    assert!(returned.is_empty());
    assert_eq!(b.state(*T0), State::Closed);
    // ...until two in three fail.
    fn mostly_failing(j: u64) -> Outcome {
        if j.is_multiple_of(3) {
            Outcome::Success
        } else {
            Outcome::Failure
        }
    }
    let returned = hammer(&b, at_start, instant, mostly_failing);
    assert_eq!(b.state(*T0), State::Open);
    assert_eq!(returned.len(), 1, "exactly one recorder saw the trip");
    assert_eq!(trips.load(Ordering::SeqCst), 1, "and it happened once");
    let reason = returned[0].reason;
    assert!(
        matches!(reason, crate::breaker::Reason::FailureRate { failures, calls, .. }
            if calls >= 20 && failures * 2 >= calls),
        "tripped on a rate of at least 50% over at least 20 calls: {reason}"
    );
}

#[test]
fn a_run_of_failures_under_concurrency_trips_the_breaker_once() {
    let (b, trips) = counting_trips(BreakerConfig {
        consecutive_failures: Some(50),
        ..quiet_config()
    });
    fn fail(_: u64) -> Outcome {
        Outcome::Failure
    }
    let returned = hammer(&b, at_start, instant, fail);
    assert_eq!(b.state(*T0), State::Open);
    assert_eq!(returned.len(), 1);
    assert_eq!(trips.load(Ordering::SeqCst), 1);
    assert!(matches!(
        returned[0].reason,
        crate::breaker::Reason::ConsecutiveFailures { failures } if failures >= 50
    ));
}
