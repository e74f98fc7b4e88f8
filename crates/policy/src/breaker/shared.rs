//! A circuit breaker many concurrent callers can share.
//!
//! A breaker's decisions depend on one another (half-open admits exactly N probes; a trip
//! must happen once), so its state is one [`CircuitBreaker`] behind a `std::sync::Mutex`.
//! The lock is taken and released inside each call, never across an `.await`, and a
//! [`Permit`] holds no reference to it. A fully lock-free breaker would make "exactly N
//! probes" and "trip once" much harder to get right, for little gain.
//!
//! But nearly always the breaker is closed, and then neither admitting nor recording needs
//! the lock:
//!
//! - **Admit.** Every locked call publishes the breaker's *admit word* (generation, "admits
//!   everything", "counts outcomes") in an atomic. `try_acquire` reads it and, while closed
//!   or forced closed, hands out a permit of that generation without locking.
//! - **Record.** `record` reads the word too. A permit of an older generation is stale and
//!   ignored at once, as the plain breaker would. A permit of the current, closed generation
//!   is counted straight into the breaker's tally (window and run of failures), which lives
//!   outside the lock and is written with atomic read-modify-writes (see the `window` module
//!   for why no outcome is lost or counted twice, and why totals never go negative). Only
//!   then, and only if this call can have met a trip condition (a failure, a slow call, a
//!   window just reaching `minimum_calls`, a time window shedding old buckets), is the
//!   condition judged from the running totals, still without the lock.
//! - **Trip.** If it is met, the recorder takes the lock, checks that the breaker is still
//!   closed at the permit's generation (another recorder may have tripped it first: a trip
//!   happens once), judges the rates again on the totals as they are now, and trips. The run
//!   of consecutive failures is not judged again: the failure's own increment saw the run
//!   reach the limit, so in the order the counter recorded, the trip was due.
//! - **Roll.** A time window moves to a new bucket under the lock, so at most once per bucket
//!   width; recorders whose call falls in the current bucket never wait for it.
//!
//! So admit-and-record while closed is a few atomic operations and no lock; everything else
//! (open, half-open, forced states, trips, operator actions) goes through the lock.
//!
//! What concurrency approximates, compared with one thread recording the same calls:
//! a trip is judged on totals that may be a few calls old (a concurrent success may be about
//! to lower a rate, or a concurrent failure about to raise one, in which case that failure
//! judges it again a moment later). A call admitted from a word a concurrent transition has
//! just made old carries the old generation and is ignored, exactly as if it had been
//! admitted a moment before the transition; one that passed its check a moment before the
//! transition counts on whichever side of it its increments land (for a trip, that is the
//! open state's tally, which is cleared before the breaker closes again).
//!
//! The optional listener sees every transition, including the lazy ones that happen inside
//! `try_acquire`, in the order they happened: it runs while the lock is held. So it must be
//! quick (log, bump a counter, send on a channel) and must not call back into the same
//! breaker, which would deadlock.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use super::config::Compiled;
use super::window::{Concurrent, Recorded, Tally};
use super::{
    ADMITS_ALL, BreakerConfig, BreakerOpen, COUNTS, CircuitBreaker, ConfigError, Outcome, Permit,
    Phase, State, Transition, WindowCounts,
};

type Listener = Box<dyn Fn(&Transition) + Send + Sync>;

/// A [`CircuitBreaker`] usable through `&self`; clones share one breaker.
#[derive(Clone)]
pub struct SharedBreaker {
    inner: Arc<Inner>,
}

struct Inner {
    breaker: Mutex<CircuitBreaker>,
    /// The breaker's `admit_word`, republished under the lock after every change.
    admit: AtomicU64,
    /// The breaker's own tally, reached without the lock while closed.
    tally: Arc<Tally>,
    /// A copy of the breaker's compiled config, for judging trips without the lock.
    compiled: Compiled,
    listener: Option<Listener>,
}

impl fmt::Debug for SharedBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedBreaker")
            .field("breaker", &self.inner.breaker)
            .field("listener", &self.inner.listener.is_some())
            .finish()
    }
}

impl From<CircuitBreaker> for SharedBreaker {
    fn from(breaker: CircuitBreaker) -> Self {
        Self::build(breaker, None)
    }
}

impl SharedBreaker {
    /// A closed shared breaker, or why `config` cannot work.
    pub fn new(config: BreakerConfig) -> Result<Self, ConfigError> {
        CircuitBreaker::new(config).map(Self::from)
    }

    /// Shares `breaker`, calling `listener` with every transition from now on.
    ///
    /// The listener runs under the breaker's lock, so it sees transitions in order; it must
    /// be quick and must not call this breaker.
    pub fn with_listener(
        breaker: CircuitBreaker,
        listener: impl Fn(&Transition) + Send + Sync + 'static,
    ) -> Self {
        Self::build(breaker, Some(Box::new(listener)))
    }

    fn build(breaker: CircuitBreaker, listener: Option<Listener>) -> Self {
        Self {
            inner: Arc::new(Inner {
                admit: AtomicU64::new(breaker.admit_word()),
                tally: breaker.tally.share(),
                compiled: breaker.compiled.clone(),
                breaker: Mutex::new(breaker),
                listener,
            }),
        }
    }

    /// See [`CircuitBreaker::try_acquire`]. With a listener, a transition this causes is
    /// delivered to it; without one, it waits for [`pop_transition`](Self::pop_transition).
    #[inline]
    pub fn try_acquire(&self, now: Instant) -> Result<Permit, BreakerOpen> {
        let word = self.inner.admit.load(Ordering::Acquire);
        if word & ADMITS_ALL != 0 {
            return Ok(Permit {
                generation: word >> 2,
                acquired_at: now,
                probe: false,
            });
        }
        let mut breaker = self.lock();
        let result = breaker.try_acquire(now);
        self.settle(&mut breaker, None);
        result
    }

    /// See [`CircuitBreaker::record`]. While closed this takes no lock unless the call trips
    /// the breaker (or moves a time window to a new bucket); see the
    /// [breaker module docs](super).
    #[inline]
    pub fn record(&self, permit: Permit, outcome: Outcome, now: Instant) -> Option<Transition> {
        let inner = &*self.inner;
        let word = inner.admit.load(Ordering::Acquire);
        if word >> 2 != permit.generation {
            // NOTE: the word is published before the lock that issued any permit is released,
            // so it is never older than a permit; a different generation means stale.
            return None;
        }
        if word & COUNTS == 0 {
            if word & ADMITS_ALL != 0 {
                return None; // forced closed counts nothing
            }
            // Half-open: probes are few and exact, so they go through the lock.
            let mut breaker = self.lock();
            let transition = breaker.record_as::<Concurrent>(permit, outcome, now);
            return self.settle(&mut breaker, transition);
        }
        let failed = match outcome {
            Outcome::Ignored => return None,
            Outcome::Failure => true,
            Outcome::Success => false,
        };
        let slow = inner.compiled.is_slow(permit.acquired_at, now);
        let Some(recorded) = inner.tally.record::<Concurrent>(failed, slow, now) else {
            return self.roll_and_record(permit, failed, slow, now);
        };
        self.judge(permit.generation, failed, slow, recorded, now)
    }

    /// Closed, but the time window must move to a new bucket first: under the lock.
    #[cold]
    fn roll_and_record(
        &self,
        permit: Permit,
        failed: bool,
        slow: bool,
        now: Instant,
    ) -> Option<Transition> {
        let recorded = {
            let breaker = self.lock();
            if breaker.generation != permit.generation || !matches!(breaker.phase, Phase::Closed) {
                return None; // a transition got in first: the permit is stale now
            }
            self.inner
                .tally
                .roll_and_record::<Concurrent>(failed, slow, now)
        };
        self.judge(permit.generation, failed, slow, recorded, now)
    }

    /// After a closed-state call is counted: trips the breaker if the call met a condition.
    #[inline]
    fn judge(
        &self,
        generation: u64,
        failed: bool,
        slow: bool,
        recorded: Recorded,
        now: Instant,
    ) -> Option<Transition> {
        let inner = &*self.inner;
        if !inner.compiled.may_trip(failed, slow, recorded) {
            return None;
        }
        inner
            .compiled
            .trip_reason(recorded.run, inner.tally.counts())?;
        self.trip(generation, recorded.run, now)
    }

    /// A closed-state recorder saw a trip condition met: trip, unless another got there first
    /// or the rates have since fallen back.
    #[cold]
    fn trip(&self, generation: u64, run: u32, now: Instant) -> Option<Transition> {
        let mut breaker = self.lock();
        if breaker.generation != generation || !matches!(breaker.phase, Phase::Closed) {
            return None;
        }
        // ## Closed => Open
        let reason = self
            .inner
            .compiled
            .trip_reason(run, self.inner.tally.counts())?;
        let transition = breaker.transition(State::Open, reason, now);
        self.settle(&mut breaker, Some(transition))
    }

    /// See [`CircuitBreaker::state`].
    pub fn state(&self, now: Instant) -> State {
        self.lock().state(now)
    }

    /// See [`CircuitBreaker::window_counts`].
    pub fn window_counts(&self, now: Instant) -> WindowCounts {
        self.lock().window_counts(now)
    }

    /// See [`CircuitBreaker::advance`].
    pub fn advance(&self, now: Instant) -> Option<Transition> {
        let mut breaker = self.lock();
        let transition = breaker.advance(now);
        self.settle(&mut breaker, transition)
    }

    /// See [`CircuitBreaker::probe_due`].
    pub fn probe_due(&self, now: Instant) -> bool {
        self.lock().probe_due(now)
    }

    /// See [`CircuitBreaker::probe_passed`].
    pub fn probe_passed(&self, now: Instant) -> Option<Transition> {
        let mut breaker = self.lock();
        let transition = breaker.probe_passed(now);
        self.settle(&mut breaker, transition)
    }

    /// See [`CircuitBreaker::probe_failed`].
    pub fn probe_failed(&self, now: Instant) {
        self.lock().probe_failed(now);
    }

    /// See [`CircuitBreaker::force_open`].
    pub fn force_open(&self, now: Instant) -> Option<Transition> {
        let mut breaker = self.lock();
        let transition = breaker.force_open(now);
        self.settle(&mut breaker, transition)
    }

    /// See [`CircuitBreaker::force_closed`].
    pub fn force_closed(&self, now: Instant) -> Option<Transition> {
        let mut breaker = self.lock();
        let transition = breaker.force_closed(now);
        self.settle(&mut breaker, transition)
    }

    /// See [`CircuitBreaker::reset`].
    pub fn reset(&self, now: Instant) -> Transition {
        let mut breaker = self.lock();
        let transition = breaker.reset(now);
        self.settle(&mut breaker, Some(transition));
        transition
    }

    /// Takes the oldest transition queued by `try_acquire`. Always `None` with a listener,
    /// which receives them instead.
    pub fn pop_transition(&self) -> Option<Transition> {
        self.lock().pop_transition()
    }

    /// See [`CircuitBreaker::missed_transitions`].
    pub fn missed_transitions(&self) -> u64 {
        self.lock().missed_transitions()
    }

    /// After any change, with the lock held: publishes the admit word, then hands queued
    /// transitions and `transition` to the listener, in order.
    fn settle(
        &self,
        breaker: &mut CircuitBreaker,
        transition: Option<Transition>,
    ) -> Option<Transition> {
        self.inner
            .admit
            .store(breaker.admit_word(), Ordering::Release);
        if let Some(listener) = &self.inner.listener {
            while let Some(queued) = breaker.pop_transition() {
                listener(&queued);
            }
            if let Some(t) = &transition {
                listener(t);
            }
        }
        transition
    }

    /// Every method leaves the breaker consistent and publishes its admit word before a
    /// listener runs, so a lock poisoned by a panicking listener is still good to use.
    pub(super) fn lock(&self) -> MutexGuard<'_, CircuitBreaker> {
        self.inner
            .breaker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
