//! Tests of the circuit breaker: every transition and trip condition with explicit instants,
//! property tests against naive models, and the tower layer under paused tokio time.

mod closed;
mod concurrent;
mod config;
mod equivalence;
mod external;
mod forced;
mod half_open;
#[cfg(feature = "tower")]
mod layer;
mod open;
mod props;
mod shared;
mod stale;

use std::time::{Duration, Instant};

use super::{BreakerConfig, CircuitBreaker, Outcome, SlidingWindow, State, Transition};

pub(super) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub(super) fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A breaker that trips only when a test turns a condition on: no trip conditions, a
/// 10-call window judged from the first call, 10 s open, 2 probes, no backoff, no timeout.
pub(super) fn quiet_config() -> BreakerConfig {
    BreakerConfig {
        consecutive_failures: None,
        failure_rate: None,
        slow_call_rate: None,
        slow_call_duration: secs(1),
        window: SlidingWindow::Count { calls: 10 },
        minimum_calls: 1,
        open_duration: secs(10),
        open_backoff: None,
        half_open_probes: 2,
        probe_timeout: None,
        external_probes: false,
    }
}

/// Trips after 3 consecutive failures; otherwise [`quiet_config`].
pub(super) fn trips_after_three() -> BreakerConfig {
    BreakerConfig {
        consecutive_failures: Some(3),
        ..quiet_config()
    }
}

pub(super) fn breaker(config: BreakerConfig) -> CircuitBreaker {
    CircuitBreaker::new(config).expect("test config is valid")
}

/// One instantaneous call at `at`; panics if the breaker refuses it.
pub(super) fn call(b: &mut CircuitBreaker, outcome: Outcome, at: Instant) -> Option<Transition> {
    let permit = b.try_acquire(at).expect("breaker admits the call");
    b.record(permit, outcome, at)
}

/// Drives a `trips_after_three` breaker open at `at`; returns the trip.
pub(super) fn trip(b: &mut CircuitBreaker, at: Instant) -> Transition {
    call(b, Outcome::Failure, at);
    call(b, Outcome::Failure, at);
    let t = call(b, Outcome::Failure, at).expect("third failure trips");
    assert_eq!(t.to, State::Open);
    t
}
