//! A bulkhead: a concurrency limit with a bounded FIFO wait queue.
//!
//! A [`Bulkhead`] hands out at most `limit` [`BulkheadPermit`]s at a time. A caller that finds
//! no free permit either gives up at once ([`Bulkhead::try_acquire`]) or waits in a FIFO
//! queue of bounded length ([`Bulkhead::acquire`]); when the queue is full it is rejected at
//! once with [`BulkheadFull`]. A permit is given back when it is dropped, so every exit path
//! (success, error, panic, a cancelled future) releases it.
//!
//! # Why a permit counter plus a separate queue
//!
//! The uncontended path, the one that matters for throughput, is one compare-and-swap on
//! `in_flight` to take a permit and one `fetch_sub` to give it back: no lock, no allocation.
//! The queue sits behind a `std::sync::Mutex` that only callers who must wait ever touch, and
//! that is never held across an `.await` or while a waker runs. A new caller does not jump
//! the queue: while anyone waits, [`Bulkhead::try_acquire`] fails and [`Bulkhead::acquire`]
//! queues behind them, so waiters are served in arrival order.
//!
//! A permit freed while someone waits is handed to the head of the queue. A waiter whose
//! future is dropped (cancelled, timed out) takes itself out of the queue; if it had already
//! been granted a permit but never saw it, it gives that permit back. A cancelled waiter
//! therefore neither blocks the queue nor swallows a permit, which is the classic bug of
//! hand-made semaphores.
//!
//! # Why no timer inside
//!
//! The core only uses [`std::task::Waker`], so it runs on any executor and in plain threads.
//! The queue timeout ([`BulkheadConfig::queue_timeout`]) is applied by whoever waits: the
//! tower layer (feature `tower`) wraps [`Bulkhead::acquire`] in `tokio::time::timeout` and
//! turns an expiry into [`QueueTimeout`]; dropping the timed-out future leaves the queue as
//! described above. A sans-IO `now`-based check would have needed someone to poll the queue
//! when the deadline passes, which is a timer anyway; letting the waiter own its timer keeps
//! exactly one of them per waiter and none in the core.
//!
//! # Changing the limit
//!
//! [`Bulkhead::set_limit`] may move the limit at any time (the adaptive limiter in
//! [`crate::concurrency`] drives it). Raising it grants queued waiters at once. Lowering it
//! revokes nothing: requests already running finish, and no new permit is granted until
//! `in_flight` falls below the new limit, so [`Bulkhead::in_flight`] may exceed
//! [`Bulkhead::limit`] for a while after a decrease.

mod acquire;
#[cfg(feature = "tower")]
mod layer;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Waker;
use std::time::Duration;

pub use acquire::Acquire;
#[cfg(feature = "tower")]
pub(crate) use layer::queue_outcome;
#[cfg(feature = "tower")]
pub use layer::{BulkheadLayer, BulkheadService, ResponseFuture};

/// How many calls may run at once, and how many may wait for their turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkheadConfig {
    /// Permits that may be held at once (the initial limit; see [`Bulkhead::set_limit`]).
    pub max_concurrent: u32,
    /// Callers that may wait for a permit; `0` means reject at once when all are taken.
    pub max_queue: usize,
    /// How long a caller may wait in the queue before it gives up with [`QueueTimeout`].
    /// Applied by the waiter (the tower layer), not by the core; see the module doc.
    pub queue_timeout: Duration,
}

impl Default for BulkheadConfig {
    /// 100 concurrent calls, up to 100 waiting, each for at most one second.
    fn default() -> Self {
        Self {
            max_concurrent: 100,
            max_queue: 100,
            queue_timeout: Duration::from_secs(1),
        }
    }
}

/// A [`BulkheadConfig`] whose checks passed.
///
/// Made only by [`BulkheadConfig::validated`]; a bulkhead built from it
/// ([`Bulkhead::from_valid`]) cannot fail. A caller that validates once at load keeps this,
/// so building the bulkhead later (on a reload) has no failure path to forget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidBulkheadConfig(BulkheadConfig);

impl ValidBulkheadConfig {
    /// The configuration as given.
    pub fn config(&self) -> &BulkheadConfig {
        &self.0
    }
}

impl BulkheadConfig {
    /// Checks the config and keeps it as checked; or the first setting that makes no sense.
    pub fn validated(self) -> Result<ValidBulkheadConfig, ConfigError> {
        self.validate()?;
        Ok(ValidBulkheadConfig(self))
    }

    /// Checks that the config makes sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_concurrent == 0 {
            return Err(ConfigError::ZeroConcurrency);
        }
        if self.max_queue > 0 && self.queue_timeout.is_zero() {
            return Err(ConfigError::ZeroQueueTimeout);
        }
        Ok(())
    }
}

/// A [`BulkheadConfig`] that makes no sense.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `max_concurrent` was zero: nothing could ever run.
    #[error("bulkhead max_concurrent must be at least 1")]
    ZeroConcurrency,
    /// A queue was configured but nobody may wait in it.
    #[error("bulkhead queue_timeout must be positive when max_queue is above 0")]
    ZeroQueueTimeout,
}

/// No permit was free and the caller could not wait: the queue was full (or, for
/// [`Bulkhead::try_acquire`], waiting was not asked for).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("bulkhead full: no permit free and no room to wait")]
pub struct BulkheadFull;

/// A caller waited in the bulkhead's queue for the whole queue timeout without a permit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("bulkhead queue timeout: no permit within {timeout:?}")]
pub struct QueueTimeout {
    /// The queue timeout that passed.
    pub timeout: Duration,
}

/// A concurrency limit with a bounded FIFO wait queue, shared by clones.
///
/// Cloning is cheap (an `Arc`); all clones share permits and queue.
#[derive(Clone)]
pub struct Bulkhead {
    shared: Arc<Shared>,
}

/// The right to run one call. Gives itself back to its [`Bulkhead`] when dropped.
#[must_use = "the permit is released as soon as it is dropped"]
pub struct BulkheadPermit {
    shared: Arc<Shared>,
}

// NOTE: `in_flight`, `limit` and `queued` are read and written with SeqCst. Two pairs rely
// on it (a Dekker-style handshake): a releaser decrements `in_flight` then reads `queued`,
// and a new waiter increments `queued` then reads `in_flight`; likewise `set_limit` writes
// `limit` then reads `queued`. In each pair at least one side sees the other's write, so
// either the releaser dispatches the waiter or the waiter finds the free permit itself:
// no wake-up is lost.
pub(crate) struct Shared {
    in_flight: AtomicU32,
    limit: AtomicU32,
    /// Mirror of `queue.waiters.len()`, readable without the lock.
    queued: AtomicUsize,
    max_queue: usize,
    queue_timeout: Duration,
    queue: Mutex<WaitQueue>,
}

/// Waiters in arrival order. Ids grow strictly, so the deque stays sorted by id and a waiter
/// finds itself by binary search.
struct WaitQueue {
    next_id: u64,
    waiters: VecDeque<Waiter>,
}

struct Waiter {
    id: u64,
    waker: Waker,
}

impl Bulkhead {
    /// A bulkhead with the given limits.
    pub fn new(config: BulkheadConfig) -> Result<Self, ConfigError> {
        Ok(Self::from_valid(&config.validated()?))
    }

    /// A bulkhead for a config already checked: cannot fail.
    pub fn from_valid(valid: &ValidBulkheadConfig) -> Self {
        let config = valid.config();
        Self {
            shared: Arc::new(Shared {
                in_flight: AtomicU32::new(0),
                limit: AtomicU32::new(config.max_concurrent),
                queued: AtomicUsize::new(0),
                max_queue: config.max_queue,
                queue_timeout: config.queue_timeout,
                queue: Mutex::new(WaitQueue {
                    next_id: 0,
                    // Enough for typical queues without growing; larger ones grow on demand.
                    waiters: VecDeque::with_capacity(config.max_queue.min(64)),
                }),
            }),
        }
    }

    /// Takes a permit if one is free and nobody is waiting; never waits.
    pub fn try_acquire(&self) -> Result<BulkheadPermit, BulkheadFull> {
        if self.shared.queued.load(Ordering::SeqCst) == 0 && self.shared.try_take() {
            Ok(self.shared.permit())
        } else {
            Err(BulkheadFull)
        }
    }

    /// Waits for a permit in FIFO order.
    ///
    /// The returned future takes a free permit when nobody waits, else joins the queue, or
    /// fails with [`BulkheadFull`] at its first poll when the queue is full. It applies no
    /// timeout itself: wrap it (`tokio::time::timeout(bulkhead.queue_timeout(), ..)`).
    /// Dropping it gives up its place, and any permit it was granted but never returned.
    pub fn acquire(&self) -> Acquire {
        Acquire::new(Arc::clone(&self.shared))
    }

    /// Moves the limit. Raising it grants queued waiters at once; lowering it revokes
    /// nothing, so [`in_flight`](Self::in_flight) may exceed it until calls finish.
    /// A limit of 0 admits nothing (waiters stay queued until it rises or they time out).
    pub fn set_limit(&self, limit: u32) {
        self.shared.limit.store(limit, Ordering::SeqCst);
        if self.shared.queued.load(Ordering::SeqCst) > 0 {
            self.shared.dispatch();
        }
    }

    /// The current limit.
    pub fn limit(&self) -> u32 {
        self.shared.limit.load(Ordering::SeqCst)
    }

    /// Permits held now.
    pub fn in_flight(&self) -> u32 {
        self.shared.in_flight.load(Ordering::SeqCst)
    }

    /// Callers waiting in the queue now.
    pub fn queued(&self) -> usize {
        self.shared.queued.load(Ordering::SeqCst)
    }

    /// The longest queue allowed.
    pub fn max_queue(&self) -> usize {
        self.shared.max_queue
    }

    /// How long a caller should wait in the queue (see [`BulkheadConfig::queue_timeout`]).
    pub fn queue_timeout(&self) -> Duration {
        self.shared.queue_timeout
    }
}

impl fmt::Debug for Bulkhead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bulkhead")
            .field("limit", &self.limit())
            .field("in_flight", &self.in_flight())
            .field("queued", &self.queued())
            .field("max_queue", &self.shared.max_queue)
            .finish()
    }
}

impl BulkheadPermit {
    /// Whether this permit belongs to `bulkhead`.
    pub fn is_from(&self, bulkhead: &Bulkhead) -> bool {
        Arc::ptr_eq(&self.shared, &bulkhead.shared)
    }
}

impl Drop for BulkheadPermit {
    fn drop(&mut self) {
        self.shared.release();
    }
}

impl fmt::Debug for BulkheadPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BulkheadPermit").finish_non_exhaustive()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, WaitQueue> {
        // The queue is consistent after every statement, so a panic elsewhere while the
        // lock was held leaves nothing half-done.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn permit(self: &Arc<Self>) -> BulkheadPermit {
        BulkheadPermit {
            shared: Arc::clone(self),
        }
    }

    /// Counts one more permit out if `in_flight < limit`.
    fn try_take(&self) -> bool {
        let limit = self.limit.load(Ordering::SeqCst);
        let mut current = self.in_flight.load(Ordering::SeqCst);
        while current < limit {
            match self.in_flight.compare_exchange_weak(
                current,
                current + 1,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return true,
                Err(actual) => current = actual,
            }
        }
        false
    }

    /// Gives one permit back and passes it on to the head of the queue, if any.
    fn release(&self) {
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        if self.queued.load(Ordering::SeqCst) > 0 {
            self.dispatch();
        }
    }

    /// Grants permits to waiters, head first, while permits are free. Wakes each granted
    /// waiter after dropping the lock, so a waker that polls inline cannot deadlock.
    fn dispatch(&self) {
        loop {
            let granted = {
                let mut queue = self.lock();
                if queue.waiters.is_empty() || !self.try_take() {
                    return;
                }
                let waiter = queue.waiters.pop_front();
                self.queued.fetch_sub(1, Ordering::SeqCst);
                waiter
            };
            if let Some(waiter) = granted {
                waiter.waker.wake();
            }
        }
    }
}
