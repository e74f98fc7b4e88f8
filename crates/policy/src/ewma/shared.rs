//! The estimators behind a per-endpoint lock, for use through `&self`.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::{Ewma, EwmaConfigError, PeakEwma, PeakEwmaConfig};

/// A [`PeakEwma`] that many requests can update and read through `&self`.
///
/// One per endpoint, typically in an `Arc` next to the endpoint's in-flight counter. The
/// lock is held for a few arithmetic operations and never across an `.await`.
#[derive(Debug)]
pub struct SharedPeakEwma {
    inner: Mutex<PeakEwma>,
}

impl SharedPeakEwma {
    /// See [`PeakEwma::new`].
    pub fn new(config: &PeakEwmaConfig, now: Instant) -> Result<Self, EwmaConfigError> {
        Ok(Self {
            inner: Mutex::new(PeakEwma::new(config, now)?),
        })
    }

    /// See [`PeakEwma::observe`].
    pub fn observe(&self, rtt: Duration, now: Instant) {
        self.lock().observe(rtt, now);
    }

    /// See [`PeakEwma::observe_failure`].
    pub fn observe_failure(&self, rtt: Duration, now: Instant) {
        self.lock().observe_failure(rtt, now);
    }

    /// See [`PeakEwma::observe_censored`].
    pub fn observe_censored(&self, at_least: Duration, now: Instant) {
        self.lock().observe_censored(at_least, now);
    }

    /// See [`PeakEwma::estimate`].
    pub fn estimate(&self) -> Duration {
        self.lock().estimate()
    }

    /// See [`PeakEwma::get`].
    pub fn get(&self, now: Instant) -> Duration {
        self.lock().get(now)
    }

    /// See [`PeakEwma::forget`].
    pub fn forget(&self, now: Instant) {
        self.lock().forget(now);
    }

    /// Whether any latency has been observed yet (before, the estimate is the default).
    pub fn has_samples(&self) -> bool {
        self.lock().has_samples()
    }

    /// See [`PeakEwma::cost`].
    pub fn cost(&self, now: Instant, in_flight: usize) -> f64 {
        self.lock().cost(now, in_flight)
    }

    /// A copy of the estimator as it is now.
    pub fn snapshot(&self) -> PeakEwma {
        self.lock().clone()
    }

    fn lock(&self) -> MutexGuard<'_, PeakEwma> {
        // NOTE: nothing panics while the lock is held (plain arithmetic), so a poisoned lock
        // still guards a consistent estimator.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// An [`Ewma`] that many requests can update and read through `&self`.
#[derive(Debug)]
pub struct SharedEwma {
    inner: Mutex<Ewma>,
}

impl SharedEwma {
    /// See [`Ewma::new`].
    pub fn new(decay: Duration) -> Result<Self, EwmaConfigError> {
        Ok(Self {
            inner: Mutex::new(Ewma::new(decay)?),
        })
    }

    /// See [`Ewma::observe`].
    pub fn observe(&self, sample: Duration, now: Instant) {
        self.lock().observe(sample, now);
    }

    /// See [`Ewma::get`].
    pub fn get(&self) -> Option<Duration> {
        self.lock().get()
    }

    /// A copy of the estimator as it is now.
    pub fn snapshot(&self) -> Ewma {
        self.lock().clone()
    }

    fn lock(&self) -> MutexGuard<'_, Ewma> {
        // NOTE: as above, the critical section cannot panic.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
