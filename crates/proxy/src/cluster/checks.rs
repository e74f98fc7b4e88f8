//! The schedule of a cluster's active health checks, and where their results go.
//!
//! Each endpoint of a cluster with `health_check` configured gets one task, started when
//! the cluster is built or DNS adds the endpoint: it checks at once, then every `interval`
//! plus up to `jitter` (so a large cluster is not checked all in the same millisecond), and
//! hands each result to [`Cluster::record_check`], which feeds it through the endpoint's
//! hysteresis (`health::state`). The task holds only a weak reference to its cluster and
//! stops when the cluster is retired or dropped (a reload replaced it) or no longer lists
//! the endpoint (DNS removed it).
//!
//! The schedule is the cluster's, not `health`'s, because it needs the cluster (its config,
//! its members, where results go): `health` stands below the endpoint and the cluster and
//! keeps what needs neither, the probe, the hysteresis and the event of a change.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::watch;

use super::Cluster;
use crate::config::{HealthCheckConfig, UpstreamProtocol};
use crate::endpoint::{Endpoint, EndpointGuard};
use crate::health::{self, ProbeFailure, Thresholds, probe};
use crate::rng::with_rng;

/// Starts checking `endpoint` of `cluster` (which must have health checks configured).
pub(super) fn spawn(cluster: &Arc<Cluster>, endpoint: Arc<Endpoint>) {
    let Some(check) = cluster.config().health_check.clone() else {
        return;
    };
    let protocol = cluster.config().protocol;
    let alive = cluster.alive();
    let weak = Arc::downgrade(cluster);
    tokio::spawn(check_loop(weak, endpoint, check, protocol, alive));
}

async fn check_loop(
    cluster: Weak<Cluster>,
    endpoint: Arc<Endpoint>,
    check: HealthCheckConfig,
    protocol: UpstreamProtocol,
    mut alive: watch::Receiver<()>,
) {
    loop {
        let Some(result) = check_once(&endpoint, &check, protocol, &mut alive).await else {
            return;
        };
        match cluster.upgrade() {
            Some(cluster) if cluster.contains(&endpoint) => cluster.record_check(&endpoint, result),
            _ => return,
        }
        tokio::select! {
            () = tokio::time::sleep(with_rng(|rng| next_delay(&check, rng))) => {}
            _ = alive.changed() => return,
        }
    }
}

/// One check of `endpoint`; `None` if the cluster went away meanwhile. An endpoint a fault
/// rule takes down refuses its checks as it refuses attempts.
pub(super) async fn check_once(
    endpoint: &Arc<Endpoint>,
    check: &HealthCheckConfig,
    protocol: UpstreamProtocol,
    alive: &mut watch::Receiver<()>,
) -> Option<Result<(), ProbeFailure>> {
    if endpoint.is_down_by_fault() {
        return Some(Err(ProbeFailure::FaultDown));
    }
    // The check is one of our requests at the endpoint while it runs: an endpoint that
    // refuses a request because the check holds one of its slots must not be taken to have
    // less capacity than it has (`cluster::capacity`).
    let mut held = EndpointGuard::with_permit(endpoint.clone(), None, Instant::now());
    held.finish();
    tokio::select! {
        result = probe(check, protocol, endpoint.address(), endpoint.authority()) => Some(result),
        _ = alive.changed() => None,
    }
}

/// The time until the next check: the interval plus a uniform share of the jitter.
fn next_delay(check: &HealthCheckConfig, rng: &mut impl Rng) -> Duration {
    check.interval + check.jitter.mul_f64(rng.random::<f64>())
}

impl Cluster {
    /// Takes in one health check result for `endpoint`, logging a change of status.
    pub(crate) fn record_check(&self, endpoint: &Endpoint, result: Result<(), ProbeFailure>) {
        let Some(check) = &self.config.health_check else {
            return;
        };
        let thresholds = Thresholds {
            healthy: check.healthy_threshold,
            unhealthy: check.unhealthy_threshold,
        };
        if result.is_ok() {
            self.heard_from(endpoint, None, Instant::now());
        }
        if let Some(transition) = endpoint.observe_health(result.is_ok(), thresholds) {
            // NOTE: an active check that finds the endpoint healthy again is better evidence
            // than the breaker's open timer (Envoy unejects on it likewise): without this, an
            // endpoint that came back would wait out an open period that may have grown long
            // while it was down.
            if transition.to.is_healthy()
                && endpoint.is_tripped()
                && let Some(breaker) = endpoint.breaker()
            {
                breaker.reset(Instant::now());
            }
            self.stats.events.push(health::event(
                self.name(),
                endpoint.address(),
                transition,
                &result,
            ));
            match &result {
                Ok(()) => tracing::info!(
                    cluster = self.name(), endpoint = %endpoint.address(),
                    from = %transition.from, to = %transition.to,
                    "endpoint health changed"
                ),
                Err(reason) => tracing::warn!(
                    cluster = self.name(), endpoint = %endpoint.address(),
                    from = %transition.from, to = %transition.to, %reason,
                    "endpoint health changed"
                ),
            }
        }
        self.progress.notify_waiters();
    }
}
