//! A circuit breaker many concurrent callers can share.
//!
//! A breaker's decisions depend on one another (half-open admits exactly N probes; a trip
//! must happen once), so it is one [`CircuitBreaker`] behind a `std::sync::Mutex`. Every
//! method takes the lock for a few tens of nanoseconds and never across an `.await`: the
//! lock is taken and released inside each call, and a [`Permit`] holds no reference to it.
//! A fully lock-free breaker would make "exactly N probes" and "trip once" much harder to
//! get right, for little gain.
//!
//! One lock is avoided: while closed (or forced closed), which is nearly always, admitting
//! needs nothing but the breaker's generation, so every locked call publishes
//! `generation | admits-all` in an atomic and `try_acquire` reads that first. A call admitted
//! from a word that a concurrent trip has just made old carries the old generation, so its
//! outcome is ignored as stale, exactly as if it had been admitted a moment before the trip.
//! So admit-and-record costs one lock, not two.
//!
//! The optional listener sees every transition, including the lazy ones that happen inside
//! `try_acquire`, in the order they happened: it runs while the lock is held. So it must be
//! quick (log, bump a counter, send on a channel) and must not call back into the same
//! breaker, which would deadlock.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use super::{
    BreakerConfig, BreakerOpen, CircuitBreaker, ConfigError, Outcome, Permit, State, Transition,
    WindowCounts,
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
        if word & 1 == 1 {
            return Ok(Permit {
                generation: word >> 1,
                acquired_at: now,
                probe: false,
            });
        }
        let mut breaker = self.lock();
        let result = breaker.try_acquire(now);
        self.settle(&mut breaker, None);
        result
    }

    /// See [`CircuitBreaker::record`].
    #[inline]
    pub fn record(&self, permit: Permit, outcome: Outcome, now: Instant) -> Option<Transition> {
        let mut breaker = self.lock();
        let transition = breaker.record(permit, outcome, now);
        self.settle(&mut breaker, transition)
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
