//! Closed: what counts, and each trip condition.

use std::time::Instant;

use super::{breaker, call, ms, quiet_config, secs, trips_after_three};
use crate::breaker::{
    BreakerConfig, Outcome, Reason, SlidingWindow, State, Transition, WindowCounts,
};

fn counts(calls: u64, failures: u64, slow: u64) -> WindowCounts {
    WindowCounts {
        calls,
        failures,
        slow,
    }
}

#[test]
fn closed_admits_calls_and_counts_their_outcomes() {
    let t0 = Instant::now();
    let mut b = breaker(quiet_config());
    assert_eq!(b.state(t0), State::Closed);
    let permit = b.try_acquire(t0).expect("closed admits");
    assert!(!permit.is_probe());
    assert_eq!(permit.acquired_at(), t0);
    assert_eq!(b.record(permit, Outcome::Failure, t0), None);
    assert_eq!(call(&mut b, Outcome::Success, t0), None);
    assert_eq!(b.window_counts(t0), counts(2, 1, 0));
}

#[test]
fn consecutive_failures_trip_on_the_nth_failure() {
    let t0 = Instant::now();
    let mut b = breaker(trips_after_three());
    assert_eq!(call(&mut b, Outcome::Failure, t0), None);
    assert_eq!(call(&mut b, Outcome::Failure, t0), None);
    assert_eq!(b.consecutive_failures(), 2);
    let at = t0 + ms(5);
    let trip = call(&mut b, Outcome::Failure, at);
    assert_eq!(
        trip,
        Some(Transition {
            from: State::Closed,
            to: State::Open,
            reason: Reason::ConsecutiveFailures { failures: 3 },
            at,
            open_until: Some(at + secs(10)),
        })
    );
    assert_eq!(b.state(at), State::Open);
}

#[test]
fn a_success_breaks_the_run_of_failures() {
    let t0 = Instant::now();
    let mut b = breaker(trips_after_three());
    call(&mut b, Outcome::Failure, t0);
    call(&mut b, Outcome::Failure, t0);
    call(&mut b, Outcome::Success, t0);
    assert_eq!(b.consecutive_failures(), 0);
    call(&mut b, Outcome::Failure, t0);
    assert_eq!(call(&mut b, Outcome::Failure, t0), None);
    assert_eq!(b.state(t0), State::Closed);
}

#[test]
fn ignored_calls_neither_count_nor_break_the_run() {
    let t0 = Instant::now();
    let mut b = breaker(trips_after_three());
    call(&mut b, Outcome::Failure, t0);
    call(&mut b, Outcome::Failure, t0);
    assert_eq!(call(&mut b, Outcome::Ignored, t0), None);
    assert_eq!(b.window_counts(t0), counts(2, 2, 0));
    let trip = call(&mut b, Outcome::Failure, t0).expect("run continues past ignored call");
    assert_eq!(trip.reason, Reason::ConsecutiveFailures { failures: 3 });
}

fn failure_rate_half(window: SlidingWindow, minimum_calls: u32) -> BreakerConfig {
    BreakerConfig {
        failure_rate: Some(0.5),
        window,
        minimum_calls,
        ..quiet_config()
    }
}

#[test]
fn failure_rate_is_not_judged_before_minimum_calls() {
    let t0 = Instant::now();
    let mut b = breaker(failure_rate_half(SlidingWindow::Count { calls: 10 }, 4));
    for _ in 0..3 {
        assert_eq!(call(&mut b, Outcome::Failure, t0), None);
    }
    let trip = call(&mut b, Outcome::Success, t0).expect("fourth call reaches minimum");
    assert_eq!(
        trip.reason,
        Reason::FailureRate {
            failures: 3,
            calls: 4,
            threshold: 0.5
        }
    );
}

#[test]
fn failure_rate_trips_when_it_reaches_the_threshold_over_a_count_window() {
    let t0 = Instant::now();
    let mut b = breaker(failure_rate_half(SlidingWindow::Count { calls: 10 }, 10));
    for _ in 0..6 {
        call(&mut b, Outcome::Success, t0);
    }
    for _ in 0..4 {
        assert_eq!(
            call(&mut b, Outcome::Failure, t0),
            None,
            "4 of 10 is below 50%"
        );
    }
    // The oldest success slides out: 5 failures of 10.
    let trip = call(&mut b, Outcome::Failure, t0).expect("5 of 10 reaches 50%");
    assert_eq!(
        trip.reason,
        Reason::FailureRate {
            failures: 5,
            calls: 10,
            threshold: 0.5
        }
    );
}

#[test]
fn count_window_forgets_calls_older_than_its_size() {
    let t0 = Instant::now();
    let mut b = breaker(BreakerConfig {
        window: SlidingWindow::Count { calls: 3 },
        ..quiet_config()
    });
    call(&mut b, Outcome::Failure, t0);
    call(&mut b, Outcome::Failure, t0);
    call(&mut b, Outcome::Success, t0);
    assert_eq!(b.window_counts(t0), counts(3, 2, 0));
    call(&mut b, Outcome::Success, t0);
    assert_eq!(b.window_counts(t0), counts(3, 1, 0));
    call(&mut b, Outcome::Success, t0);
    assert_eq!(b.window_counts(t0), counts(3, 0, 0));
}

fn ten_second_window() -> SlidingWindow {
    SlidingWindow::Time {
        span: secs(10),
        buckets: 10,
    }
}

#[test]
fn time_window_forgets_calls_older_than_its_span() {
    let t0 = Instant::now();
    let mut b = breaker(BreakerConfig {
        window: ten_second_window(),
        ..quiet_config()
    });
    call(&mut b, Outcome::Failure, t0);
    call(&mut b, Outcome::Success, t0 + ms(4_500));
    assert_eq!(b.window_counts(t0 + ms(9_999)), counts(2, 1, 0));
    // At 10 s the first second's bucket leaves; the 4 s bucket stays until 14 s.
    assert_eq!(b.window_counts(t0 + secs(10)), counts(1, 0, 0));
    assert_eq!(b.window_counts(t0 + ms(13_999)), counts(1, 0, 0));
    assert_eq!(b.window_counts(t0 + secs(14)), counts(0, 0, 0));
    // Reading is pure; recording after a long gap sheds everything old.
    call(&mut b, Outcome::Failure, t0 + secs(60));
    assert_eq!(b.window_counts(t0 + secs(60)), counts(1, 1, 0));
}

#[test]
fn time_window_trips_only_on_enough_calls_within_its_span() {
    let t0 = Instant::now();
    let mut b = breaker(failure_rate_half(ten_second_window(), 3));
    call(&mut b, Outcome::Failure, t0);
    call(&mut b, Outcome::Failure, t0 + secs(1));
    // The first failure has left the window: two calls, below minimum.
    assert_eq!(call(&mut b, Outcome::Failure, t0 + secs(10)), None);
    assert_eq!(b.window_counts(t0 + secs(10)), counts(2, 2, 0));
    let trip = call(&mut b, Outcome::Success, t0 + secs(10)).expect("3 calls, 2 failures");
    assert_eq!(
        trip.reason,
        Reason::FailureRate {
            failures: 2,
            calls: 3,
            threshold: 0.5
        }
    );
}

fn slow_calls_trip() -> BreakerConfig {
    BreakerConfig {
        slow_call_rate: Some(0.5),
        slow_call_duration: secs(1),
        minimum_calls: 2,
        ..quiet_config()
    }
}

#[test]
fn call_duration_runs_from_acquire_to_record() {
    let t0 = Instant::now();
    let mut b = breaker(slow_calls_trip());
    let permit = b.try_acquire(t0).expect("admitted");
    b.record(permit, Outcome::Success, t0 + ms(999));
    assert_eq!(b.window_counts(t0).slow, 0);
    let permit = b.try_acquire(t0 + secs(5)).expect("admitted");
    let trip = b.record(permit, Outcome::Success, t0 + secs(6));
    assert_eq!(
        b.window_counts(t0).slow,
        1,
        "exactly slow_call_duration is slow"
    );
    assert_eq!(
        trip.map(|t| t.reason),
        Some(Reason::SlowCallRate {
            slow: 1,
            calls: 2,
            threshold: 0.5
        })
    );
}

#[test]
fn a_slow_failure_counts_as_failure_and_as_slow() {
    let t0 = Instant::now();
    let mut b = breaker(quiet_config());
    let permit = b.try_acquire(t0).expect("admitted");
    b.record(permit, Outcome::Failure, t0 + secs(2));
    assert_eq!(b.window_counts(t0), counts(1, 1, 1));
}

#[test]
fn the_first_condition_that_holds_is_the_reason() {
    let t0 = Instant::now();
    let mut b = breaker(BreakerConfig {
        consecutive_failures: Some(2),
        failure_rate: Some(0.5),
        minimum_calls: 2,
        ..quiet_config()
    });
    call(&mut b, Outcome::Failure, t0);
    let trip = call(&mut b, Outcome::Failure, t0).expect("both conditions hold");
    assert_eq!(trip.reason, Reason::ConsecutiveFailures { failures: 2 });
}

#[test]
fn transitions_say_why_in_words() {
    let t0 = Instant::now();
    let mut b = breaker(failure_rate_half(SlidingWindow::Count { calls: 10 }, 4));
    for outcome in [Outcome::Failure, Outcome::Failure, Outcome::Failure] {
        call(&mut b, outcome, t0);
    }
    let trip = call(&mut b, Outcome::Success, t0).expect("trips");
    assert_eq!(
        trip.to_string(),
        "closed → open: failure rate 75.0% ≥ 50.0% over 4 calls"
    );
}
