//! Active health checks (HTTP and TCP) and their schedule.
//!
//! Each endpoint of a cluster with `health_check` configured gets one task: it checks at
//! once, then every `interval` plus up to `jitter` (so a large cluster is not checked all in
//! the same millisecond), and feeds each result through the hysteresis of [`state`]. The
//! task holds only a weak reference to its cluster and stops when the cluster is dropped (a
//! reload replaced it) or no longer lists the endpoint (DNS removed it).
//!
//! Checks use a fresh connection each time rather than the request pool: a check must prove
//! that the endpoint accepts connections now, not that an old keep-alive connection survives.

mod probe;
pub mod state;

use std::hash::{BuildHasher, RandomState};
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;

pub use self::probe::{ProbeFailure, probe};
pub use self::state::{HealthState, HealthStatus, Thresholds, Transition};
use crate::cluster::{Cluster, Endpoint};
use crate::config::HealthCheckConfig;
use crate::events::{Event, EventKind};

/// Starts checking `endpoint` of `cluster` (which must have health checks configured).
pub(crate) fn spawn(cluster: &Arc<Cluster>, endpoint: Arc<Endpoint>) {
    let Some(check) = cluster.config().health_check.clone() else {
        return;
    };
    let protocol = cluster.config().protocol;
    let alive = cluster.alive();
    let weak = Arc::downgrade(cluster);
    tokio::spawn(async move {
        let seed = RandomState::new().hash_one(endpoint.address());
        let mut rng = SmallRng::seed_from_u64(seed);
        check_loop(weak, endpoint, check, protocol, alive, &mut rng).await;
    });
}

async fn check_loop(
    cluster: Weak<Cluster>,
    endpoint: Arc<Endpoint>,
    check: HealthCheckConfig,
    protocol: crate::config::UpstreamProtocol,
    mut alive: watch::Receiver<()>,
    rng: &mut SmallRng,
) {
    loop {
        let result = tokio::select! {
            result = probe(&check, protocol, endpoint.address(), endpoint.authority()) => result,
            _ = alive.changed() => return,
        };
        match cluster.upgrade() {
            Some(cluster) if cluster.contains(&endpoint) => cluster.record_check(&endpoint, result),
            _ => return,
        }
        tokio::select! {
            () = tokio::time::sleep(next_delay(&check, rng)) => {}
            _ = alive.changed() => return,
        }
    }
}

/// The time until the next check: the interval plus a uniform share of the jitter.
pub fn next_delay(check: &HealthCheckConfig, rng: &mut impl Rng) -> Duration {
    check.interval + check.jitter.mul_f64(rng.random::<f64>())
}
/// The event of a health status change of `endpoint` in `cluster`, with the failed
/// check's reason.
pub fn event<E: std::fmt::Display>(
    cluster: &str,
    endpoint: SocketAddr,
    transition: Transition,
    result: &Result<(), E>,
) -> Event {
    let detail = match result {
        Ok(()) => format!("health {} → {}", transition.from, transition.to),
        Err(reason) => format!("health {} → {}: {reason}", transition.from, transition.to),
    };
    let mut event =
        Event::now(EventKind::HealthChanged, detail).in_cluster(cluster, Some(endpoint));
    event.failure = !transition.to.is_healthy();
    event
}
