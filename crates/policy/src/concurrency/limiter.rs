//! [`AdaptiveLimiter`]: a bulkhead whose limit an algorithm moves.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use super::{LimitAlgorithm, Outcome, Sample};
use crate::bulkhead::{self, Acquire, Bulkhead, BulkheadConfig, BulkheadFull, BulkheadPermit};

/// Permits from a [`Bulkhead`] whose limit a [`LimitAlgorithm`] moves as requests finish.
/// Clones share everything.
pub struct AdaptiveLimiter<A> {
    shared: Arc<Shared<A>>,
}

struct Shared<A> {
    bulkhead: Bulkhead,
    // NOTE: `bulkhead.set_limit` is called with this lock held, so limits reach the
    // bulkhead in the order the algorithm produced them. Lock order: algorithm, then the
    // bulkhead's queue; the bulkhead never calls back into us.
    algorithm: Mutex<A>,
}

impl<A> Clone for AdaptiveLimiter<A> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<A: LimitAlgorithm> AdaptiveLimiter<A> {
    /// A limiter that sheds at once when every permit is taken (no queue).
    pub fn new(algorithm: A) -> Self {
        Self::build(algorithm, 0, Duration::ZERO)
            .expect("a config without a queue and a limit of at least 1 is valid")
    }

    /// A limiter where up to `max_queue` callers of [`acquire`](Self::acquire) may wait,
    /// each for up to `queue_timeout` (applied by the waiter, as for [`Bulkhead`]).
    pub fn with_queue(
        algorithm: A,
        max_queue: usize,
        queue_timeout: Duration,
    ) -> Result<Self, bulkhead::ConfigError> {
        Self::build(algorithm, max_queue, queue_timeout)
    }

    fn build(
        algorithm: A,
        max_queue: usize,
        queue_timeout: Duration,
    ) -> Result<Self, bulkhead::ConfigError> {
        let limit = algorithm.limit();
        let bulkhead = Bulkhead::new(BulkheadConfig {
            max_concurrent: limit.max(1),
            max_queue,
            queue_timeout,
        })?;
        bulkhead.set_limit(limit);
        Ok(Self {
            shared: Arc::new(Shared {
                bulkhead,
                algorithm: Mutex::new(algorithm),
            }),
        })
    }

    /// Takes a permit if one is free and nobody waits; its RTT is measured from `now`.
    pub fn try_acquire(&self, now: Instant) -> Result<AdaptivePermit<A>, BulkheadFull> {
        let permit = self.shared.bulkhead.try_acquire()?;
        Ok(self.start(permit, now))
    }

    /// Waits in FIFO order for a permit (see [`Bulkhead::acquire`]). The result must be
    /// [started](Admitted::start) with the time the call begins.
    pub fn acquire(&self) -> AdaptiveAcquire<A> {
        AdaptiveAcquire {
            acquire: self.shared.bulkhead.acquire(),
            shared: Some(Arc::clone(&self.shared)),
        }
    }

    /// The limit now.
    pub fn limit(&self) -> u32 {
        self.shared.bulkhead.limit()
    }

    /// Permits held now.
    pub fn in_flight(&self) -> u32 {
        self.shared.bulkhead.in_flight()
    }

    /// Callers waiting now.
    pub fn queued(&self) -> usize {
        self.shared.bulkhead.queued()
    }

    /// The bulkhead holding the permits (to read its counters; its limit belongs to the
    /// algorithm, which will overwrite a limit set from outside at the next sample).
    pub fn bulkhead(&self) -> &Bulkhead {
        &self.shared.bulkhead
    }

    /// Runs `f` on the algorithm, under its lock (to read its state).
    pub fn with_algorithm<R>(&self, f: impl FnOnce(&A) -> R) -> R {
        f(&self.shared.lock())
    }

    fn start(&self, permit: BulkheadPermit, now: Instant) -> AdaptivePermit<A> {
        AdaptivePermit {
            in_flight: self.shared.bulkhead.in_flight(),
            started: now,
            _permit: permit,
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<A: LimitAlgorithm> Shared<A> {
    fn lock(&self) -> MutexGuard<'_, A> {
        // An algorithm that panicked mid-update still holds a usable number; keep going.
        self.algorithm
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn learn(&self, sample: Sample, now: Instant) -> u32 {
        let mut algorithm = self.lock();
        let limit = algorithm.on_sample(sample, now);
        if limit != self.bulkhead.limit() {
            self.bulkhead.set_limit(limit);
        }
        limit
    }
}

impl<A> fmt::Debug for AdaptiveLimiter<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptiveLimiter")
            .field("bulkhead", &self.shared.bulkhead)
            .finish_non_exhaustive()
    }
}

/// Waits for a permit of an [`AdaptiveLimiter`]; yields an [`Admitted`] to be started.
#[must_use = "futures do nothing unless polled"]
pub struct AdaptiveAcquire<A> {
    acquire: Acquire,
    shared: Option<Arc<Shared<A>>>,
}

impl<A> Future for AdaptiveAcquire<A> {
    type Output = Result<Admitted<A>, BulkheadFull>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let permit = ready!(Pin::new(&mut this.acquire).poll(cx))?;
        let shared = this
            .shared
            .take()
            .expect("AdaptiveAcquire polled after completion");
        Poll::Ready(Ok(Admitted { permit, shared }))
    }
}

impl<A> fmt::Debug for AdaptiveAcquire<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptiveAcquire")
            .field("acquire", &self.acquire)
            .finish_non_exhaustive()
    }
}

/// A permit won in the queue whose call has not started yet. Dropping it gives it back.
#[must_use = "the permit is released as soon as it is dropped"]
pub struct Admitted<A> {
    permit: BulkheadPermit,
    shared: Arc<Shared<A>>,
}

impl<A: LimitAlgorithm> Admitted<A> {
    /// The call starts at `now`: its RTT is measured from here, so queueing time does not
    /// count as upstream latency.
    pub fn start(self, now: Instant) -> AdaptivePermit<A> {
        AdaptivePermit {
            in_flight: self.shared.bulkhead.in_flight(),
            started: now,
            _permit: self.permit,
            shared: self.shared,
        }
    }
}

impl<A> fmt::Debug for Admitted<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admitted").finish_non_exhaustive()
    }
}

/// The right to run one call under an [`AdaptiveLimiter`]. [`record`](Self::record) it
/// when the call ends; dropping it unrecorded releases it and teaches nothing.
#[must_use = "the permit is released as soon as it is dropped"]
pub struct AdaptivePermit<A> {
    /// Released when this is dropped, after `record` has fed the algorithm.
    _permit: BulkheadPermit,
    shared: Arc<Shared<A>>,
    started: Instant,
    in_flight: u32,
}

impl<A: LimitAlgorithm> AdaptivePermit<A> {
    /// Ends the call at `now`: feeds the algorithm (unless `Ignored`), moves the limit,
    /// releases the permit, and returns the limit in force after.
    pub fn record(self, outcome: Outcome, now: Instant) -> u32 {
        let dropped = match outcome {
            Outcome::Success => false,
            Outcome::Dropped => true,
            Outcome::Ignored => return self.shared.bulkhead.limit(),
        };
        let sample = Sample {
            rtt: now.saturating_duration_since(self.started),
            in_flight: self.in_flight,
            dropped,
        };
        self.shared.learn(sample, now)
    }

    /// When the call started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Requests in flight when this one started, itself included.
    pub fn in_flight_at_start(&self) -> u32 {
        self.in_flight
    }
}

impl<A> fmt::Debug for AdaptivePermit<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptivePermit")
            .field("started", &self.started)
            .field("in_flight", &self.in_flight)
            .finish_non_exhaustive()
    }
}
