//! Half-open: probes, closing, reopening and the open backoff.

use std::time::Instant;

use super::{breaker, call, ms, quiet_config, secs, trip, trips_after_three};
use crate::breaker::{BreakerConfig, CircuitBreaker, OpenBackoff, Outcome, Reason, State};

/// A `trips_after_three` breaker, tripped at `t0` and half-open at `t0 + 10 s`.
fn half_open(config: BreakerConfig, t0: Instant) -> CircuitBreaker {
    let mut b = breaker(config);
    trip(&mut b, t0);
    assert_eq!(
        b.advance(t0 + secs(10)).map(|t| t.to),
        Some(State::HalfOpen)
    );
    b
}

#[test]
fn half_open_admits_only_configured_probes() {
    let t0 = Instant::now();
    let at = t0 + secs(10);
    let mut b = half_open(trips_after_three(), t0);
    let first = b.try_acquire(at).expect("probe 1");
    let second = b.try_acquire(at).expect("probe 2");
    assert!(first.is_probe() && second.is_probe());
    let rejection = b.try_acquire(at).expect_err("both slots taken");
    assert_eq!(rejection.state(), State::HalfOpen);
    assert_eq!(rejection.retry_after(), None);
    // A success keeps its slot: a round is N probes in total, not N at a time forever.
    assert_eq!(b.record(first, Outcome::Success, at), None);
    assert!(b.try_acquire(at).is_err());
    drop(second);
}

#[test]
fn all_probes_succeeding_closes_the_breaker_with_an_empty_window() {
    let t0 = Instant::now();
    let at = t0 + secs(11);
    let mut b = half_open(trips_after_three(), t0);
    let first = b.try_acquire(at).expect("probe 1");
    let second = b.try_acquire(at).expect("probe 2");
    assert_eq!(b.record(first, Outcome::Success, at), None);
    let close = b.record(second, Outcome::Success, at).expect("closes");
    assert_eq!((close.from, close.to), (State::HalfOpen, State::Closed));
    assert_eq!(close.reason, Reason::ProbesSucceeded { probes: 2 });
    assert_eq!(close.open_until, None);
    assert_eq!(b.window_counts(at).calls, 0);
    assert_eq!(b.consecutive_failures(), 0);
    // The fresh window needs three new failures to trip again.
    call(&mut b, Outcome::Failure, at);
    assert_eq!(call(&mut b, Outcome::Failure, at), None);
}

#[test]
fn a_failed_probe_reopens_the_breaker() {
    let t0 = Instant::now();
    let at = t0 + secs(12);
    let mut b = half_open(trips_after_three(), t0);
    let first = b.try_acquire(at).expect("probe");
    let reopen = b.record(first, Outcome::Failure, at).expect("reopens");
    assert_eq!((reopen.from, reopen.to), (State::HalfOpen, State::Open));
    assert_eq!(reopen.reason, Reason::ProbeFailed);
    assert_eq!(reopen.open_until, Some(at + secs(10)));
    assert!(b.try_acquire(at + secs(9)).is_err());
}

#[test]
fn a_slow_probe_reopens_when_slow_call_tripping_is_on() {
    let t0 = Instant::now();
    let config = BreakerConfig {
        slow_call_rate: Some(1.0),
        minimum_calls: 10,
        ..trips_after_three()
    };
    let mut b = half_open(config, t0);
    let probe = b.try_acquire(t0 + secs(10)).expect("probe");
    let reopen = b
        .record(probe, Outcome::Success, t0 + ms(11_500))
        .expect("slow probe reopens");
    assert_eq!(
        reopen.reason,
        Reason::ProbeSlow {
            duration: ms(1_500)
        }
    );
    assert_eq!(reopen.to, State::Open);
}

#[test]
fn a_slow_probe_is_a_success_when_slow_call_tripping_is_off() {
    let t0 = Instant::now();
    let mut b = half_open(trips_after_three(), t0);
    let first = b.try_acquire(t0 + secs(10)).expect("probe");
    let second = b.try_acquire(t0 + secs(10)).expect("probe");
    assert_eq!(b.record(first, Outcome::Success, t0 + secs(15)), None);
    let close = b.record(second, Outcome::Success, t0 + secs(15));
    assert_eq!(close.map(|t| t.to), Some(State::Closed));
}

#[test]
fn an_ignored_probe_frees_its_slot() {
    let t0 = Instant::now();
    let at = t0 + secs(10);
    let mut b = half_open(trips_after_three(), t0);
    let first = b.try_acquire(at).expect("probe 1");
    let second = b.try_acquire(at).expect("probe 2");
    assert!(b.try_acquire(at).is_err());
    assert_eq!(b.record(first, Outcome::Ignored, at), None);
    let third = b.try_acquire(at).expect("the ignored probe's slot is free");
    assert_eq!(b.record(second, Outcome::Success, at), None);
    let close = b.record(third, Outcome::Success, at);
    assert_eq!(
        close.map(|t| t.reason),
        Some(Reason::ProbesSucceeded { probes: 2 })
    );
}

fn with_probe_timeout() -> BreakerConfig {
    BreakerConfig {
        probe_timeout: Some(secs(30)),
        ..trips_after_three()
    }
}

#[test]
fn forgotten_probes_time_out_and_reopen_the_breaker() {
    let t0 = Instant::now();
    let mut b = half_open(with_probe_timeout(), t0);
    let forgotten = b.try_acquire(t0 + secs(10)).expect("probe 1");
    let done = b.try_acquire(t0 + secs(20)).expect("probe 2");
    assert_eq!(b.record(done, Outcome::Success, t0 + secs(21)), None);
    // Slots full (one forgotten, one succeeded); 30 s from the last activity at 21 s.
    assert!(b.try_acquire(t0 + ms(50_999)).is_err());
    assert_eq!(b.state(t0 + ms(50_999)), State::HalfOpen);
    assert_eq!(b.state(t0 + secs(51)), State::Open);
    let rejection = b.try_acquire(t0 + secs(51)).expect_err("reopened");
    assert_eq!(rejection.state(), State::Open);
    let reopen = b.pop_transition().expect("queued");
    assert_eq!((reopen.from, reopen.to), (State::HalfOpen, State::Open));
    assert_eq!(reopen.reason, Reason::ProbeTimedOut);
    // The forgotten permit is stale now: recording it changes nothing.
    assert_eq!(b.record(forgotten, Outcome::Failure, t0 + secs(52)), None);
    assert!(
        b.try_acquire(t0 + secs(61))
            .expect("half-open again")
            .is_probe()
    );
}

#[test]
fn probe_timeout_does_not_fire_while_a_slot_is_free() {
    let t0 = Instant::now();
    let mut b = half_open(with_probe_timeout(), t0);
    let slow = b.try_acquire(t0 + secs(10)).expect("probe 1");
    assert_eq!(b.state(t0 + secs(100)), State::HalfOpen);
    assert!(
        b.try_acquire(t0 + secs(100))
            .expect("slot 2 free")
            .is_probe()
    );
    assert_eq!(b.pop_transition(), None);
    drop(slow);
}

#[test]
fn without_probe_timeout_a_forgotten_probe_holds_its_slot() {
    let t0 = Instant::now();
    let mut b = half_open(
        BreakerConfig {
            half_open_probes: 1,
            ..trips_after_three()
        },
        t0,
    );
    let forgotten = b.try_acquire(t0 + secs(10)).expect("probe");
    assert!(b.try_acquire(t0 + secs(100_000)).is_err());
    drop(forgotten);
}

fn with_backoff() -> BreakerConfig {
    BreakerConfig {
        half_open_probes: 1,
        open_duration: secs(10),
        open_backoff: Some(OpenBackoff {
            multiplier: 2.0,
            max: secs(35),
        }),
        ..quiet_config()
    }
}

/// Fails one probe at `at` (which must be past the open period); returns the open period.
fn fail_probe(b: &mut CircuitBreaker, at: Instant) -> std::time::Duration {
    let probe = b.try_acquire(at).expect("probe");
    let reopen = b.record(probe, Outcome::Failure, at).expect("reopens");
    reopen.open_until.expect("open") - at
}

#[test]
fn open_period_grows_with_each_failed_round_of_probes_up_to_the_cap() {
    let t0 = Instant::now();
    let mut b = breaker(BreakerConfig {
        consecutive_failures: Some(1),
        ..with_backoff()
    });
    let first = call(&mut b, Outcome::Failure, t0).expect("trips");
    assert_eq!(first.open_until, Some(t0 + secs(10)));
    let mut at = t0 + secs(10);
    let mut periods = Vec::new();
    for _ in 0..4 {
        let period = fail_probe(&mut b, at);
        periods.push(period);
        at += period;
    }
    assert_eq!(periods, [secs(20), secs(35), secs(35), secs(35)]);
}

#[test]
fn open_period_returns_to_base_once_the_breaker_closes() {
    let t0 = Instant::now();
    let mut b = breaker(BreakerConfig {
        consecutive_failures: Some(1),
        ..with_backoff()
    });
    call(&mut b, Outcome::Failure, t0);
    let period = fail_probe(&mut b, t0 + secs(10));
    assert_eq!(period, secs(20));
    let at = t0 + secs(30);
    let close = call(&mut b, Outcome::Success, at).expect("probe closes");
    assert_eq!(close.to, State::Closed);
    let trip = call(&mut b, Outcome::Failure, at).expect("trips again");
    assert_eq!(trip.open_until, Some(at + secs(10)));
}
