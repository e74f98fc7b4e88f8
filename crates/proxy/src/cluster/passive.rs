//! What traffic says about endpoints: per-endpoint and cluster circuit breakers, passive
//! outlier detection.
//!
//! STUB from the skeleton commit: admits everything, records nothing. The breaker and
//! outlier helper builds it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::request::Parts;

use super::{Cluster, EndpointGuard};
use crate::pipeline::AttemptOutcome;

/// Leave from the cluster's breaker for one request; give it back with
/// [`ClusterPermit::record`] (dropping it counts as cancelled).
#[derive(Debug)]
pub struct ClusterPermit {}

impl ClusterPermit {
    /// Records how the request ended (its last attempt's outcome).
    pub fn record(self, _outcome: AttemptOutcome, _now: Instant) {}
}

/// The cluster's breaker is open: requests fail fast without touching an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the circuit breaker of the cluster is open")]
pub struct ClusterBreakerOpen {
    /// When it will let a probe through, if known.
    pub retry_after: Option<Duration>,
}

impl Cluster {
    /// Asks the cluster's breaker for leave to send one request.
    pub fn admit(&self, _now: Instant) -> Result<ClusterPermit, ClusterBreakerOpen> {
        Ok(ClusterPermit {})
    }

    /// Records one attempt's outcome against its endpoint: breaker, outlier detection,
    /// latency estimate.
    pub fn record_outcome(
        &self,
        guard: &EndpointGuard,
        outcome: AttemptOutcome,
        latency: Duration,
        now: Instant,
    ) {
        let endpoint = guard.endpoint();
        if outcome.is_failure() {
            endpoint.latency().observe_failure(latency, now);
        } else if outcome != AttemptOutcome::Cancelled {
            endpoint.latency().observe(latency, now);
        }
    }

    /// Chooses an endpoint for a request, avoiding the addresses in `avoid` (endpoints that
    /// already failed this request) while another endpoint can take it.
    pub fn pick_avoiding(&self, request: &Parts, _avoid: &[SocketAddr]) -> Option<EndpointGuard> {
        self.pick(request)
    }
}
