//! What a caller holds while a call is in flight, what it reports back, and the rejection.

use std::time::{Duration, Instant};

use thiserror::Error;

use super::transition::State;

/// How a call went, as the caller classifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The dependency did its job.
    Success,
    /// The dependency failed; counts toward tripping.
    Failure,
    /// Says nothing about the dependency (cancelled by the client, rejected by a later
    /// policy, a 4xx the caller caused). Not counted anywhere; frees a half-open probe slot.
    Ignored,
}

/// Leave to make one call, from [`CircuitBreaker::try_acquire`].
///
/// Give it back with [`CircuitBreaker::record`] exactly once, whatever happened to the call:
/// a call abandoned before it finished is [`Outcome::Ignored`]. In half-open the permit holds
/// one of the few probe slots until it is recorded (or until `probe_timeout` gives up on it).
///
/// It is deliberately neither `Clone` nor `Copy`, so it cannot be recorded twice. It remembers
/// when it was issued (the start of the call's duration) and the breaker's generation at that
/// time: a permit from before a state change is stale, and recording it changes nothing.
/// Record a permit only on the breaker that issued it.
///
/// [`CircuitBreaker::try_acquire`]: super::CircuitBreaker::try_acquire
/// [`CircuitBreaker::record`]: super::CircuitBreaker::record
#[derive(Debug, PartialEq, Eq)]
#[must_use = "record the permit's outcome (Outcome::Ignored if the call was abandoned)"]
pub struct Permit {
    pub(crate) generation: u64,
    pub(crate) acquired_at: Instant,
    pub(crate) probe: bool,
}

impl Permit {
    /// When the permit was issued; a call's duration runs from here to `record`.
    pub fn acquired_at(&self) -> Instant {
        self.acquired_at
    }

    /// Whether this is a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }
}

/// The breaker is not admitting this call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("circuit breaker is {state}; call rejected")]
pub struct BreakerOpen {
    pub(crate) state: State,
    pub(crate) until: Option<Instant>,
    pub(crate) retry_after: Option<Duration>,
}

impl BreakerOpen {
    /// The state that rejected the call: [`State::Open`], [`State::ForcedOpen`], or
    /// [`State::HalfOpen`] with every probe slot taken.
    pub fn state(&self) -> State {
        self.state
    }

    /// When the open period ends, if the breaker is timed open.
    pub fn until(&self) -> Option<Instant> {
        self.until
    }

    /// How long until the open period ends, if the breaker is timed open. Unknown (`None`)
    /// when forced open or when half-open probes are busy.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}
