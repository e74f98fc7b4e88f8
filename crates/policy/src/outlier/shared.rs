//! One cluster's detector behind a lock, for use through `&self`.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::{
    Ejection, EndpointId, EndpointIdTooLarge, EndpointStatus, Event, Outcome, OutlierConfig,
    OutlierConfigError, OutlierDetector, ValidOutlierConfig,
};

/// An [`OutlierDetector`] shared by all requests to one cluster.
///
/// `record` holds the lock for a few counter updates (plus, rarely, a scan of the cluster
/// when a run completes); `tick` for one pass over the endpoints. The lock is never held
/// across an `.await`.
#[derive(Debug)]
pub struct SharedOutlierDetector {
    inner: Mutex<OutlierDetector>,
}

impl SharedOutlierDetector {
    /// See [`OutlierDetector::new`].
    pub fn new(config: OutlierConfig, now: Instant) -> Result<Self, OutlierConfigError> {
        Ok(Self::from(OutlierDetector::new(config, now)?))
    }

    /// See [`OutlierDetector::from_valid`].
    pub fn from_valid(config: ValidOutlierConfig, now: Instant) -> Self {
        Self::from(OutlierDetector::from_valid(config, now))
    }

    /// See [`OutlierDetector::record`].
    pub fn record(
        &self,
        id: EndpointId,
        outcome: Outcome,
        latency: Duration,
        now: Instant,
    ) -> Option<Event> {
        self.lock().record(id, outcome, latency, now)
    }

    /// See [`OutlierDetector::tick`].
    pub fn tick(&self, now: Instant) -> Vec<Event> {
        self.lock().tick(now)
    }

    /// See [`OutlierDetector::is_ejected`].
    pub fn is_ejected(&self, id: EndpointId, now: Instant) -> bool {
        self.lock().is_ejected(id, now)
    }

    /// See [`OutlierDetector::ejection`].
    pub fn ejection(&self, id: EndpointId, now: Instant) -> Option<Ejection> {
        self.lock().ejection(id, now)
    }

    /// See [`OutlierDetector::status`].
    pub fn status(&self, id: EndpointId, now: Instant) -> Option<EndpointStatus> {
        self.lock().status(id, now)
    }

    /// See [`OutlierDetector::add`].
    pub fn add(&self, id: EndpointId) -> Result<bool, EndpointIdTooLarge> {
        self.lock().add(id)
    }

    /// See [`OutlierDetector::remove`].
    pub fn remove(&self, id: EndpointId, now: Instant) -> Vec<Event> {
        self.lock().remove(id, now)
    }

    /// See [`OutlierDetector::set_config`].
    pub fn set_config(
        &self,
        config: OutlierConfig,
        now: Instant,
    ) -> Result<Vec<Event>, OutlierConfigError> {
        self.lock().set_config(config, now)
    }

    /// See [`OutlierDetector::set_valid_config`].
    pub fn set_valid_config(&self, config: ValidOutlierConfig, now: Instant) -> Vec<Event> {
        self.lock().set_valid_config(config, now)
    }

    /// Runs `f` with the detector locked, for several reads or changes at once.
    pub fn with<R>(&self, f: impl FnOnce(&mut OutlierDetector) -> R) -> R {
        f(&mut self.lock())
    }

    fn lock(&self) -> MutexGuard<'_, OutlierDetector> {
        // NOTE: the detector's methods do not panic, so a poisoned lock (a panic elsewhere
        // while holding it through `with`) still guards a consistent detector.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl From<OutlierDetector> for SharedOutlierDetector {
    fn from(detector: OutlierDetector) -> Self {
        Self {
            inner: Mutex::new(detector),
        }
    }
}
