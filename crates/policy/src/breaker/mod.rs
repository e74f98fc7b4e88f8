//! A circuit breaker: stop calling a dependency that is failing, and find out when it is back.
//!
//! # Why a breaker
//!
//! Retries and timeouts make one request resilient; they make a failing dependency worse.
//! When an upstream is down, every caller still pays a timeout, holds a connection and a
//! thread, and the retries multiply the load on something already drowning. A breaker watches
//! outcomes and, once they are bad enough, fails calls at once (open) for a while, then lets a
//! few probes through (half-open) to decide whether to resume (closed) or wait longer.
//!
//! ```text
//!           trip condition               open period elapsed
//!  Closed ─────────────────► Open ─────────────────────────► HalfOpen
//!    ▲                        ▲                                 │  │
//!    │                        └─ probe failed / slow / stuck ───┘  │
//!    └──────────────────── N probes succeeded ─────────────────────┘
//!
//!  from any state: force_open → ForcedOpen, force_closed → ForcedClosed, reset → Closed
//! ```
//!
//! ```
//! use std::time::{Duration, Instant};
//! use blastwall_policy::breaker::{BreakerConfig, CircuitBreaker, Outcome, State};
//!
//! let mut breaker = CircuitBreaker::new(BreakerConfig {
//!     consecutive_failures: Some(2),
//!     half_open_probes: 1,
//!     ..BreakerConfig::default()
//! })?;
//! let t0 = Instant::now(); // in real code: one clock read per request
//! for _ in 0..2 {
//!     let permit = breaker.try_acquire(t0)?;
//!     // ... make the call; it failed ...
//!     if let Some(transition) = breaker.record(permit, Outcome::Failure, t0) {
//!         assert_eq!(transition.to_string(), "closed → open: 2 consecutive failures");
//!     }
//! }
//! let rejected = breaker.try_acquire(t0 + Duration::from_secs(1)).expect_err("open");
//! assert_eq!(rejected.retry_after(), Some(Duration::from_secs(4)));
//!
//! // Five seconds later a probe goes through; the lazy transition waits in the queue.
//! let later = t0 + Duration::from_secs(5);
//! let probe = breaker.try_acquire(later)?;
//! let lazy: Vec<_> = breaker.take_transitions().collect();
//! assert_eq!(lazy[0].to, State::HalfOpen);
//! let closed = breaker.record(probe, Outcome::Success, later);
//! assert_eq!(closed.map(|t| t.to), Some(State::Closed));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Why this shape
//!
//! - **Sans-IO.** [`CircuitBreaker`] is a plain struct. It takes `now` and outcomes and
//!   answers decisions and [`Transition`]s; it never reads a clock, sleeps or spawns. So every
//!   behaviour is testable to the nanosecond, and the proxy, the tower layer and a user's own
//!   loop all run the same code.
//! - **One transition function.** Every change of state goes through
//!   `CircuitBreaker::transition`, which builds the new state, bumps the generation and
//!   returns the event. Nothing else assigns the state, so no change can go unreported.
//! - **Several trip conditions, any of which trips.** Consecutive failures catch a dead
//!   upstream fast at low traffic; a failure rate over a window catches a partly broken one at
//!   high traffic without tripping on one unlucky burst (`minimum_calls`); a slow-call rate
//!   catches the upstream that answers, but too late to be useful. The windows keep running
//!   totals (see [Windows](self#windows)), so judging them costs O(1) per call.
//! - **Lazy timers.** Open → HalfOpen needs no timer task: `try_acquire` notices the open
//!   period has passed. Because that transition happens inside `try_acquire`, which returns a
//!   permit or a rejection, it is queued rather than returned; take it with
//!   [`CircuitBreaker::pop_transition`] (or [`take_transitions`](CircuitBreaker::take_transitions))
//!   after each `try_acquire` and none is lost. [`SharedBreaker`] does that for you and hands
//!   each transition to a listener. Transitions caused by `record`, `force_*` and `reset` are
//!   returned directly.
//! - **Permits, not counters.** A [`Permit`] remembers when it was issued (so duration, and
//!   so slowness, is measured by the breaker from acquire to record) and the breaker's
//!   generation. A call that was admitted before a state change and finishes after it is
//!   *stale*: recording it changes nothing. Without that, a burst of late failures from
//!   before a trip could re-trip a breaker that just closed, or a closed-state call could
//!   be counted as a half-open probe.
//! - **Probe slots cannot leak.** Half-open admits at most `half_open_probes` probes at once.
//!   A probe slot is freed by recording the permit, with [`Outcome::Ignored`] if the call was
//!   cancelled (the tower layer does this when a response future is dropped). If a caller
//!   forgets, `probe_timeout` is the safety net: once every slot is taken and none has
//!   started or finished for that long, the breaker reopens and the forgotten permits go
//!   stale.
//! - **Slow probes fail.** With slow-call tripping on, a probe that succeeds slowly reopens
//!   the breaker: a breaker that tripped because the upstream was slow must not close on
//!   evidence that it still is. With slow-call tripping off, slowness is only counted.
//! - **Shared without a lock while closed.** [`SharedBreaker`] keeps the state behind a
//!   mutex, but the closed state, where a breaker spends nearly all its time, needs none:
//!   admitting reads a published word, and recording counts into a tally of atomics that
//!   lives outside the lock. The lock is taken to trip, to probe, and for everything an
//!   operator does. The plain breaker writes the same tally with plain loads and stores, so
//!   one implementation of the windows serves both; the `shared` and `window` modules argue
//!   why no outcome is lost or counted twice.
//! - **Open backoff.** Each failed round of probing can multiply the open period (up to a
//!   cap), so a long outage is probed less and less often; the period returns to its base
//!   once the breaker closes.
//!
//! # Windows
//!
//! Rate conditions look at a sliding window of recorded calls, either the last N calls or
//! roughly the last T (see [`SlidingWindow`]), and are judged only once the window holds
//! `minimum_calls`. Ignored outcomes and stale permits are never counted. The window is emptied
//! whenever the breaker closes, so a recovered upstream is judged on fresh evidence.
//!
//! # Forced states
//!
//! [`force_open`](CircuitBreaker::force_open) rejects everything and
//! [`force_closed`](CircuitBreaker::force_closed) admits everything without counting, until
//! [`reset`](CircuitBreaker::reset), which always returns to closed with an empty window.

mod config;
#[cfg(feature = "tower")]
mod layer;
mod permit;
mod shared;
mod transition;
mod window;

#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

pub use config::{
    BreakerConfig, ConfigError, MAX_OPEN_DURATION, MAX_WINDOW_SLOTS, OpenBackoff, SlidingWindow,
    ValidBreakerConfig,
};
#[cfg(feature = "tower")]
pub use layer::{
    CircuitBreakerLayer, CircuitBreakerService, Classify, ErrorIsFailure, ResponseFuture,
};
pub use permit::{BreakerOpen, Outcome, Permit};
pub use shared::SharedBreaker;
pub use transition::{Reason, State, Transition};
pub use window::WindowCounts;

use config::Compiled;
use transition::TransitionQueue;
use window::{Access, Exclusive, Recorded, TallyCell};

/// Generations wrap within 62 bits; see [`CircuitBreaker::admit_word`].
const GENERATION_MASK: u64 = u64::MAX >> 2;
/// In an admit word: every call is admitted (closed or forced closed).
const ADMITS_ALL: u64 = 0b01;
/// In an admit word: outcomes are counted (closed).
const COUNTS: u64 = 0b10;

/// The state and the data that lives only in it.
#[derive(Debug, Clone, Copy)]
enum Phase {
    Closed,
    Open {
        until: Instant,
    },
    HalfOpen {
        /// Probes admitted and not yet recorded.
        in_flight: u32,
        /// Probes that succeeded this round.
        succeeded: u32,
        /// When a probe last started or finished (or half-open began): `probe_timeout`
        /// counts from here.
        last_activity: Instant,
    },
    ForcedOpen,
    ForcedClosed,
}

impl Phase {
    fn state(&self) -> State {
        match self {
            Phase::Closed => State::Closed,
            Phase::Open { .. } => State::Open,
            Phase::HalfOpen { .. } => State::HalfOpen,
            Phase::ForcedOpen => State::ForcedOpen,
            Phase::ForcedClosed => State::ForcedClosed,
        }
    }
}

/// A circuit breaker for one dependency. See the [module docs](self) for the behaviour.
///
/// Single-threaded (`&mut self`); wrap it in a [`SharedBreaker`] to share it.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    compiled: Compiled,
    phase: Phase,
    /// The window and the run of consecutive failures; shared (not locked) by a
    /// [`SharedBreaker`].
    tally: TallyCell,
    /// Failed rounds of probing since the breaker last closed; drives the open backoff.
    reopens: u32,
    /// Bumped on every transition; permits from an older generation are stale.
    generation: u64,
    pending: TransitionQueue,
}

impl CircuitBreaker {
    /// How many lazy transitions wait for [`pop_transition`](Self::pop_transition) before the
    /// oldest is overwritten.
    pub const TRANSITION_QUEUE_CAPACITY: usize = TransitionQueue::CAPACITY;

    /// A closed breaker, or why `config` cannot work.
    pub fn new(config: BreakerConfig) -> Result<Self, ConfigError> {
        config.validated().map(|valid| Self::from_valid(&valid))
    }

    /// A closed breaker for a configuration already checked: cannot fail.
    pub fn from_valid(valid: &ValidBreakerConfig) -> Self {
        Self {
            tally: TallyCell::new(valid.window),
            config: valid.config().clone(),
            compiled: valid.compiled.clone(),
            phase: Phase::Closed,
            reopens: 0,
            generation: 0,
            pending: TransitionQueue::new(),
        }
    }

    /// The configuration the breaker was built from.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// The state at `now`, counting a transition that is due but not yet applied (an open
    /// period that has elapsed reads as [`State::HalfOpen`]). Changes nothing.
    pub fn state(&self, now: Instant) -> State {
        match self.due(now) {
            Some((to, _)) => to,
            None => self.phase.state(),
        }
    }

    /// What the window holds at `now`.
    pub fn window_counts(&self, now: Instant) -> WindowCounts {
        self.tally.counts_at(now)
    }

    /// The current run of consecutive failures.
    pub fn consecutive_failures(&self) -> u32 {
        self.tally.consecutive_failures()
    }

    /// Asks to make a call at `now`.
    ///
    /// Closed and forced-closed admit; open and forced-open reject; half-open admits while a
    /// probe slot is free. May first apply a due transition (open period over, or probes
    /// timed out), which is queued for [`pop_transition`](Self::pop_transition).
    #[inline]
    pub fn try_acquire(&mut self, now: Instant) -> Result<Permit, BreakerOpen> {
        // ## Closed | ForcedClosed => admit (first, and inlined: the common case, with no
        // lazy transition ever due)
        if let Phase::Closed | Phase::ForcedClosed = self.phase {
            return Ok(Permit {
                generation: self.generation,
                acquired_at: now,
                probe: false,
            });
        }
        self.try_acquire_slow(now)
    }

    fn try_acquire_slow(&mut self, now: Instant) -> Result<Permit, BreakerOpen> {
        if let Some(transition) = self.advance(now) {
            self.pending.push(transition);
        }
        let generation = self.generation;
        let probes = self.compiled.half_open_probes;
        match &mut self.phase {
            // ## Closed | ForcedClosed => admit
            Phase::Closed | Phase::ForcedClosed => Ok(Permit {
                generation,
                acquired_at: now,
                probe: false,
            }),
            // ## Open => reject until the open period ends
            Phase::Open { until } => Err(BreakerOpen {
                state: State::Open,
                until: Some(*until),
                retry_after: Some(until.saturating_duration_since(now)),
            }),
            // ## ForcedOpen => reject until reset
            Phase::ForcedOpen => Err(BreakerOpen {
                state: State::ForcedOpen,
                until: None,
                retry_after: None,
            }),
            // ## HalfOpen => admit while a probe slot is free
            Phase::HalfOpen {
                in_flight,
                succeeded,
                last_activity,
            } => {
                if *in_flight + *succeeded < probes {
                    *in_flight += 1;
                    *last_activity = now;
                    Ok(Permit {
                        generation,
                        acquired_at: now,
                        probe: true,
                    })
                } else {
                    Err(BreakerOpen {
                        state: State::HalfOpen,
                        until: None,
                        retry_after: None,
                    })
                }
            }
        }
    }

    /// Reports how the call behind `permit` went, at `now`. Returns the transition it caused.
    ///
    /// A stale permit (issued before the last transition) changes nothing and returns `None`.
    #[inline]
    pub fn record(&mut self, permit: Permit, outcome: Outcome, now: Instant) -> Option<Transition> {
        self.record_as::<Exclusive>(permit, outcome, now)
    }

    /// [`record`](Self::record), writing the tally with access `A`: [`Exclusive`] for the
    /// owner, [`Concurrent`](window::Concurrent) under a [`SharedBreaker`]'s lock, where
    /// lock-free recorders may be writing the same tally.
    #[inline]
    fn record_as<A: Access>(
        &mut self,
        permit: Permit,
        outcome: Outcome,
        now: Instant,
    ) -> Option<Transition> {
        if permit.generation != self.generation {
            return None;
        }
        match self.phase {
            Phase::Closed => {
                let slow = self.compiled.is_slow(permit.acquired_at, now);
                self.record_closed::<A>(outcome, slow, now)
            }
            Phase::HalfOpen { .. } => {
                let duration = now.saturating_duration_since(permit.acquired_at);
                let slow = duration >= self.compiled.slow_call_duration;
                self.record_probe(outcome, slow, duration, now)
            }
            // Forced-closed does not count; open states issue no permits of their generation.
            Phase::ForcedClosed | Phase::Open { .. } | Phase::ForcedOpen => None,
        }
    }

    /// Applies a transition that is due at `now` (open period over, probes timed out) and
    /// returns it. `try_acquire` does this itself; call this to notice such transitions
    /// promptly without asking for a permit, e.g. from a status page or a timer.
    pub fn advance(&mut self, now: Instant) -> Option<Transition> {
        let (to, reason) = self.due(now)?;
        Some(self.transition(to, reason, now))
    }

    /// Whether the caller's own probe is due at `now`: the breaker is open, probes
    /// externally ([`BreakerConfig::external_probes`]) and its open period is over.
    pub fn probe_due(&self, now: Instant) -> bool {
        self.compiled.external_probes && matches!(self.phase, Phase::Open { until } if now >= until)
    }

    /// The caller's own probe passed: an open breaker half-opens, and calls then probe as
    /// usual (so a health check that passes while real calls still fail reopens it, with a
    /// longer open period). `None` in any other state: a probe that outlived the open state
    /// (an operator reset or forced it) changes nothing.
    pub fn probe_passed(&mut self, now: Instant) -> Option<Transition> {
        matches!(self.phase, Phase::Open { .. })
            .then(|| self.transition(State::HalfOpen, Reason::ExternalProbePassed, now))
    }

    /// The caller's own probe failed: an open breaker stays open for another open period
    /// from `now` (not lengthened: a probe costs no call, and a dependency that comes back is
    /// noticed within one period however long it was down). No transition.
    pub fn probe_failed(&mut self, now: Instant) {
        if let Phase::Open { until } = &mut self.phase {
            let period = self.compiled.open_period(self.reopens);
            *until = now
                .checked_add(period)
                .expect("open periods are validated to at most a year");
        }
    }

    /// Takes the oldest transition applied inside [`try_acquire`](Self::try_acquire).
    pub fn pop_transition(&mut self) -> Option<Transition> {
        self.pending.pop()
    }

    /// Takes every transition applied inside [`try_acquire`](Self::try_acquire), oldest
    /// first.
    pub fn take_transitions(&mut self) -> impl Iterator<Item = Transition> + '_ {
        std::iter::from_fn(move || self.pending.pop())
    }

    /// How many queued transitions were overwritten before anyone took them.
    pub fn missed_transitions(&self) -> u64 {
        self.pending.missed()
    }

    /// Rejects every call until [`reset`](Self::reset). `None` if already forced open.
    pub fn force_open(&mut self, now: Instant) -> Option<Transition> {
        match self.phase {
            Phase::ForcedOpen => None,
            _ => Some(self.transition(State::ForcedOpen, Reason::ForcedOpen, now)),
        }
    }

    /// Admits every call and counts nothing until [`reset`](Self::reset). `None` if already
    /// forced closed.
    pub fn force_closed(&mut self, now: Instant) -> Option<Transition> {
        match self.phase {
            Phase::ForcedClosed => None,
            _ => Some(self.transition(State::ForcedClosed, Reason::ForcedClosed, now)),
        }
    }

    /// Returns to closed with an empty window and the base open period, from any state.
    /// Always a transition (closed → closed empties the window).
    pub fn reset(&mut self, now: Instant) -> Transition {
        self.transition(State::Closed, Reason::Reset, now)
    }

    /// The generation shifted left by two, with [`ADMITS_ALL`] set when every call is
    /// admitted (closed or forced closed) and [`COUNTS`] when outcomes are counted (closed).
    /// [`SharedBreaker`] publishes it in an atomic so that admitting in those states, and
    /// recording while closed, need no lock.
    pub(crate) fn admit_word(&self) -> u64 {
        let flags = match self.phase {
            Phase::Closed => ADMITS_ALL | COUNTS,
            Phase::ForcedClosed => ADMITS_ALL,
            _ => 0,
        };
        (self.generation << 2) | flags
    }

    /// The lazy transition due at `now`, if any.
    fn due(&self, now: Instant) -> Option<(State, Reason)> {
        match self.phase {
            // ## Open => HalfOpen (by time; with external probes only by `probe_passed`)
            Phase::Open { until } if now >= until && !self.compiled.external_probes => {
                Some((State::HalfOpen, Reason::OpenTimeoutElapsed))
            }
            // ## HalfOpen => Open (forgotten probes)
            Phase::HalfOpen {
                in_flight,
                succeeded,
                last_activity,
            } => {
                let timeout = self.compiled.probe_timeout?;
                let full = in_flight + succeeded >= self.compiled.half_open_probes;
                let stuck = now.saturating_duration_since(last_activity) >= timeout;
                (in_flight > 0 && full && stuck).then_some((State::Open, Reason::ProbeTimedOut))
            }
            _ => None,
        }
    }

    #[inline]
    fn record_closed<A: Access>(
        &mut self,
        outcome: Outcome,
        slow: bool,
        now: Instant,
    ) -> Option<Transition> {
        let failed = match outcome {
            Outcome::Ignored => return None,
            Outcome::Failure => true,
            Outcome::Success => false,
        };
        let recorded = match self.tally.record::<A>(failed, slow, now) {
            Some(recorded) => recorded,
            None => self.tally.roll_and_record::<A>(failed, slow, now),
        };
        // ## Closed => Open
        if !self.compiled.may_trip(failed, slow, recorded) {
            return None;
        }
        let reason = self
            .compiled
            .trip_reason(recorded.run, self.tally.counts())?;
        Some(self.transition(State::Open, reason, now))
    }

    fn record_probe(
        &mut self,
        outcome: Outcome,
        slow: bool,
        duration: Duration,
        now: Instant,
    ) -> Option<Transition> {
        let slow_trips = self.compiled.slow_call_rate.is_some();
        let probes = self.compiled.half_open_probes;
        let Phase::HalfOpen {
            in_flight,
            succeeded,
            last_activity,
        } = &mut self.phase
        else {
            return None;
        };
        // NOTE: every current-generation permit in half-open is a probe counted in
        // `in_flight`, so this cannot underflow for permits of this breaker.
        *in_flight = in_flight.saturating_sub(1);
        *last_activity = now;
        match outcome {
            Outcome::Ignored => None,
            // ## HalfOpen => Open
            Outcome::Failure => Some(self.transition(State::Open, Reason::ProbeFailed, now)),
            Outcome::Success if slow && slow_trips => {
                Some(self.transition(State::Open, Reason::ProbeSlow { duration }, now))
            }
            // ## HalfOpen => (HalfOpen | Closed)
            Outcome::Success => {
                *succeeded += 1;
                if *succeeded < probes {
                    return None;
                }
                Some(self.transition(State::Closed, Reason::ProbesSucceeded { probes }, now))
            }
        }
    }

    /// The one place the state changes.
    fn transition(&mut self, to: State, reason: Reason, now: Instant) -> Transition {
        let from = self.phase.state();
        let mut open_until = None;
        self.phase = match to {
            State::Closed => {
                self.tally.clear();
                self.reopens = 0;
                Phase::Closed
            }
            State::Open => {
                // Each failed round of probing lengthens the next open period.
                if from == State::HalfOpen {
                    self.reopens = self.reopens.saturating_add(1);
                }
                let period = self.compiled.open_period(self.reopens);
                let until = now
                    .checked_add(period)
                    .expect("open periods are validated to at most a year");
                open_until = Some(until);
                Phase::Open { until }
            }
            State::HalfOpen => Phase::HalfOpen {
                in_flight: 0,
                succeeded: 0,
                last_activity: now,
            },
            State::ForcedOpen => Phase::ForcedOpen,
            State::ForcedClosed => Phase::ForcedClosed,
        };
        // NOTE: generations stay below 2^62 so `admit_word` can pack one with two flags.
        self.generation = (self.generation + 1) & GENERATION_MASK;
        Transition {
            from,
            to,
            reason,
            at: now,
            open_until,
        }
    }
}

impl Compiled {
    /// Whether a call from `acquired_at` to `now` took at least `slow_call_duration`. The
    /// same as comparing `now.saturating_duration_since(acquired_at)`, but an `Instant`
    /// addition and comparison are inlined where a subtraction is a call into std.
    #[inline]
    pub(crate) fn is_slow(&self, acquired_at: Instant, now: Instant) -> bool {
        let limit = self.slow_call_duration;
        limit.is_zero() || acquired_at.checked_add(limit).is_some_and(|end| now >= end)
    }

    /// Whether the call just recorded can have met a trip condition. Judging is skipped
    /// otherwise, which changes no decision: a success that is not slow, moved no bucket out
    /// and did not bring the window up to `minimum_calls` can only lower or keep every rate,
    /// and the rates were below their thresholds after the previous call (or the breaker
    /// would have tripped then).
    #[inline]
    pub(crate) fn may_trip(&self, failed: bool, slow: bool, recorded: Recorded) -> bool {
        let run = failed && self.consecutive_failures.is_some_and(|l| recorded.run >= l);
        let rates = (self.failure_rate.is_some() || self.slow_call_rate.is_some())
            && recorded.calls >= self.minimum_calls
            && (failed || slow || recorded.shed || recorded.calls == self.minimum_calls);
        run || rates
    }

    /// The first trip condition that a run of `run` failures and a window holding `counts`
    /// meet, if any.
    pub(crate) fn trip_reason(&self, run: u32, counts: WindowCounts) -> Option<Reason> {
        if let Some(limit) = self.consecutive_failures
            && run >= limit
        {
            return Some(Reason::ConsecutiveFailures { failures: run });
        }
        if counts.calls < self.minimum_calls {
            return None;
        }
        if let Some(t) = self.failure_rate
            && t.reached(counts.failures, counts.calls)
        {
            return Some(Reason::FailureRate {
                failures: counts.failures,
                calls: counts.calls,
                threshold: t.ratio,
            });
        }
        if let Some(t) = self.slow_call_rate
            && t.reached(counts.slow, counts.calls)
        {
            return Some(Reason::SlowCallRate {
                slow: counts.slow,
                calls: counts.calls,
                threshold: t.ratio,
            });
        }
        None
    }
}
