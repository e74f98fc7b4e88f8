//! The breaker's states as the outside world sees them, and the events that move between them.
//!
//! Every change of state produces one [`Transition`] saying from where, to where and why, so
//! a caller can log it, count it or schedule a timer. Transitions that happen lazily inside
//! [`try_acquire`](super::CircuitBreaker::try_acquire) wait in a [`TransitionQueue`]: a fixed
//! ring that never allocates.

use std::fmt;
use std::time::{Duration, Instant};

/// The state of a circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Calls flow; outcomes are watched.
    Closed,
    /// Calls are rejected until the open period ends.
    Open,
    /// A few probe calls test whether the dependency has recovered.
    HalfOpen,
    /// Rejecting every call on an operator's order, until reset.
    ForcedOpen,
    /// Admitting every call and ignoring outcomes on an operator's order, until reset.
    ForcedClosed,
}

impl State {
    /// The snake_case name an operator would see (`"half_open"`).
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
            State::ForcedOpen => "forced_open",
            State::ForcedClosed => "forced_closed",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a transition happened.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reason {
    /// This many failures in a row reached `consecutive_failures`.
    ConsecutiveFailures {
        /// The length of the run.
        failures: u32,
    },
    /// The failure rate over the window reached `failure_rate`.
    FailureRate {
        /// Failures in the window.
        failures: u64,
        /// Calls in the window.
        calls: u64,
        /// The configured threshold.
        threshold: f64,
    },
    /// The slow-call rate over the window reached `slow_call_rate`.
    SlowCallRate {
        /// Slow calls in the window.
        slow: u64,
        /// Calls in the window.
        calls: u64,
        /// The configured threshold.
        threshold: f64,
    },
    /// A half-open probe failed.
    ProbeFailed,
    /// A half-open probe succeeded but took at least `slow_call_duration`, and slow-call
    /// tripping is on.
    ProbeSlow {
        /// How long the probe took.
        duration: Duration,
    },
    /// Every probe slot was taken and no probe started or finished for `probe_timeout`.
    ProbeTimedOut,
    /// `half_open_probes` probes succeeded.
    ProbesSucceeded {
        /// How many.
        probes: u32,
    },
    /// The open period ended; probing starts.
    OpenTimeoutElapsed,
    /// The caller's own probe of the dependency passed (with
    /// [`external_probes`](super::BreakerConfig::external_probes)); calls probe next.
    ExternalProbePassed,
    /// An operator forced the breaker open.
    ForcedOpen,
    /// An operator forced the breaker closed.
    ForcedClosed,
    /// An operator reset the breaker to closed with an empty window.
    Reset,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Reason::ConsecutiveFailures { failures } => {
                write!(f, "{failures} consecutive failures")
            }
            Reason::FailureRate {
                failures,
                calls,
                threshold,
            } => write!(
                f,
                "failure rate {:.1}% ≥ {:.1}% over {calls} calls",
                percent(failures, calls),
                threshold * 100.0
            ),
            Reason::SlowCallRate {
                slow,
                calls,
                threshold,
            } => write!(
                f,
                "slow-call rate {:.1}% ≥ {:.1}% over {calls} calls",
                percent(slow, calls),
                threshold * 100.0
            ),
            Reason::ProbeFailed => f.write_str("a probe failed"),
            Reason::ProbeSlow { duration } => write!(f, "a probe was slow ({duration:?})"),
            Reason::ProbeTimedOut => f.write_str("probes made no progress"),
            Reason::ProbesSucceeded { probes } => write!(f, "{probes} probes succeeded"),
            Reason::OpenTimeoutElapsed => f.write_str("open period elapsed"),
            Reason::ExternalProbePassed => f.write_str("a health probe passed"),
            Reason::ForcedOpen => f.write_str("forced open by operator"),
            Reason::ForcedClosed => f.write_str("forced closed by operator"),
            Reason::Reset => f.write_str("reset by operator"),
        }
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// One change of state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transition {
    /// The state before.
    pub from: State,
    /// The state after. `from == to` only for a reset of a closed breaker, which empties its
    /// window.
    pub to: State,
    /// Why.
    pub reason: Reason,
    /// When, as given by the caller's `now`.
    pub at: Instant,
    /// When `to` is [`State::Open`], the instant it starts admitting probes.
    pub open_until: Option<Instant>,
}

impl fmt::Display for Transition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} → {}: {}", self.from, self.to, self.reason)
    }
}

/// Transitions waiting to be taken; a fixed ring of [`TransitionQueue::CAPACITY`].
///
/// Each `try_acquire` adds at most one, so taking them after every `try_acquire` loses none.
/// If nobody takes them, the oldest are overwritten and counted in `missed`, so a caller
/// that does not care pays nothing and holds no growing memory.
#[derive(Debug, Clone)]
pub(crate) struct TransitionQueue {
    ring: [Option<Transition>; Self::CAPACITY],
    head: usize,
    len: usize,
    missed: u64,
}

impl TransitionQueue {
    /// How many transitions the queue holds before overwriting the oldest.
    pub const CAPACITY: usize = 8;

    pub(crate) fn new() -> Self {
        Self {
            ring: [None; Self::CAPACITY],
            head: 0,
            len: 0,
            missed: 0,
        }
    }

    pub(crate) fn push(&mut self, transition: Transition) {
        let tail = (self.head + self.len) % Self::CAPACITY;
        self.ring[tail] = Some(transition);
        if self.len == Self::CAPACITY {
            self.head = (self.head + 1) % Self::CAPACITY;
            self.missed += 1;
        } else {
            self.len += 1;
        }
    }

    /// Takes the oldest waiting transition.
    pub fn pop(&mut self) -> Option<Transition> {
        if self.len == 0 {
            return None;
        }
        let transition = self.ring[self.head].take();
        self.head = (self.head + 1) % Self::CAPACITY;
        self.len -= 1;
        transition
    }

    /// How many were overwritten before anyone took them.
    pub fn missed(&self) -> u64 {
        self.missed
    }
}
