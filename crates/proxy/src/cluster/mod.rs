//! A cluster: its endpoints and their live state, where its traffic may go, and the tasks
//! that keep both current (health checks, DNS refresh).
//!
//! The state that many requests share (health, requests in flight, latency estimate) lives
//! on each [`Endpoint`] in atomics or short locks. Where traffic may go (priority level,
//! zone, panic) is a [`Routing`] computed once per change and read without a lock: every
//! health flip or membership change bumps a counter, and the next pick that sees a new count
//! rebuilds the routing (one request does it; the others keep the previous one meanwhile).
//!
//! # Reloads
//!
//! [`Cluster::new`] takes the cluster it replaces: an unchanged cluster is returned as it is
//! (tasks, pool and all); a changed one keeps every [`Endpoint`] whose address and settings
//! did not change (health, latency estimate, requests in flight), the connection pool when
//! its settings did not change, and the addresses its DNS names last resolved to.
//!
//! # Tasks
//!
//! Health checks (one task per endpoint, see `checks`), DNS refresh (one per cluster) and
//! the passive checks' clock (one per cluster with breakers or outlier detection) hold only
//! a weak reference to the cluster and a receiver that closes when it is dropped, so
//! replacing a cluster by a reload stops its tasks at once.

mod capacity;
mod checks;
mod concurrency;
mod dns;
pub(crate) mod limiter;
mod passive;
mod routing;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::{ArcSwap, Guard};
use blastwall_policy::budget::RetryBudget;
use tokio::sync::{Notify, watch};

pub(crate) use self::concurrency::{ClusterAdmission, ClusterShed, ConcurrencyPermit};
pub(crate) use self::passive::ClusterPermit;
use self::passive::Passive;
pub(crate) use self::routing::{Routing, RoutingRules};
use crate::balance::Balancer;
use crate::config::{ClusterConfig, EndpointAddress};
use crate::counters::ClusterStats;
use crate::endpoint::Endpoint;
use crate::health::HealthStatus;
use crate::upstream::UpstreamClient;

/// A cluster: its config, its endpoints, how it chooses among them, and its connection pool.
#[derive(Debug)]
pub(crate) struct Cluster {
    config: ClusterConfig,
    local_zone: Option<String>,
    endpoints: ArcSwap<Vec<Arc<Endpoint>>>,
    /// Bumped by every health or membership change (shared with the endpoints).
    changes: Arc<AtomicU64>,
    routing: ArcSwap<Routing>,
    /// Held by the one request that rebuilds the routing.
    rebuilding: Mutex<()>,
    balancer: Balancer,
    client: UpstreamClient,
    /// What retries and hedges to this cluster may spend, shared by every route to it.
    retry_budget: Arc<RetryBudget>,
    /// Whether DNS names have been resolved (or tried) once; true without DNS names.
    resolved_once: AtomicBool,
    /// Woken after every health check and DNS resolution, for [`Cluster::first_health_round`].
    progress: Notify,
    /// Closes when the cluster is dropped, which stops its tasks.
    alive: watch::Sender<()>,
    /// The cluster-wide concurrency limit.
    admission: ClusterAdmission,
    /// Set by [`Cluster::retire`]: it no longer judges endpoints.
    retired: AtomicBool,
    /// Breakers and outlier detection.
    passive: Passive,
    /// Counters; shared with the clusters that replace this one.
    stats: Arc<ClusterStats>,
}

impl Cluster {
    /// The live cluster for `config`, replacing `previous` (the cluster of the same name in
    /// the config being replaced, if any); `local_zone` is the proxy's `[proxy] zone`.
    ///
    /// Returns `previous` itself when nothing changed. Otherwise keeps what is still valid of
    /// it (see the module doc). Health-check and DNS tasks start here when a Tokio runtime
    /// is running (none are started without one, as in some unit tests).
    pub(crate) fn new(
        config: ClusterConfig,
        local_zone: Option<&str>,
        previous: Option<&Arc<Cluster>>,
        now: Instant,
    ) -> Arc<Cluster> {
        if let Some(previous) = previous
            && previous.config == config
            && previous.local_zone.as_deref() == local_zone
        {
            return previous.clone();
        }
        let changes = previous.map_or_else(Default::default, |previous| previous.changes.clone());
        let endpoints = endpoints_of(&config, previous, &changes, now);
        let client = match previous {
            Some(previous) if same_pool_settings(&previous.config, &config) => {
                previous.client.clone()
            }
            _ => UpstreamClient::new(&config),
        };
        let retry_budget = match previous {
            Some(previous) if previous.config.retry_budget == config.retry_budget => {
                previous.retry_budget.clone()
            }
            _ => Arc::new(RetryBudget::from_valid(config.retry_budget)),
        };
        let has_names = config
            .endpoints
            .iter()
            .any(|entry| matches!(entry.address, EndpointAddress::Dns { .. }));
        let resolved_once = !has_names
            || previous.is_some_and(|previous| previous.resolved_once.load(Ordering::Acquire));
        let balancer = Balancer::new(&config);
        let count = changes.load(Ordering::Acquire);
        let rules = RoutingRules {
            local_zone,
            panic_threshold: config.panic_threshold,
        };
        let stats = previous.map_or_else(Default::default, |previous| previous.stats.clone());
        let passive = Passive::new(
            &config,
            previous.map(|previous| (&previous.config, &previous.passive)),
            &endpoints,
            &stats,
            now,
        );
        let routing = Routing::build(&endpoints, rules, &balancer, count);
        let cluster = Arc::new(Self {
            local_zone: local_zone.map(str::to_owned),
            endpoints: ArcSwap::from_pointee(endpoints),
            changes,
            routing: ArcSwap::from_pointee(routing),
            rebuilding: Mutex::new(()),
            balancer,
            client,
            retry_budget,
            resolved_once: AtomicBool::new(resolved_once),
            progress: Notify::new(),
            alive: watch::Sender::new(()),
            admission: ClusterAdmission::new(
                &config.name,
                config.concurrency.as_ref(),
                previous.map(|previous| &previous.admission),
            ),
            retired: AtomicBool::new(false),
            passive,
            stats,
            config,
        });
        cluster.adopt_endpoints(now);
        cluster.start_tasks(has_names);
        cluster
    }

    /// The cluster's config.
    pub(crate) fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// The cluster's name.
    pub(crate) fn name(&self) -> &str {
        &self.config.name
    }

    /// The endpoints now (DNS names expanded to the addresses they resolve to).
    pub(crate) fn endpoints(&self) -> Arc<Vec<Arc<Endpoint>>> {
        self.endpoints.load_full()
    }

    /// The cluster-wide concurrency limit (`[cluster.NAME.concurrency]`).
    pub(crate) fn admission(&self) -> &ClusterAdmission {
        &self.admission
    }

    /// The pooled client to this cluster's endpoints.
    pub(crate) fn client(&self) -> &UpstreamClient {
        &self.client
    }

    /// The retry budget every route to this cluster spends from.
    pub(crate) fn retry_budget(&self) -> &RetryBudget {
        &self.retry_budget
    }

    /// What the cluster's mechanisms decided so far.
    pub(crate) fn stats(&self) -> &Arc<ClusterStats> {
        &self.stats
    }

    /// An endpoint for a request, as [`pick_avoiding`](Self::pick_avoiding) chooses it, with
    /// the time and randomness given, for deterministic tests.
    #[cfg(test)]
    pub(crate) fn pick_with(
        &self,
        request: &http::request::Parts,
        now: Instant,
        rng: &mut impl rand::Rng,
    ) -> Option<crate::endpoint::EndpointGuard> {
        self.pick_avoiding_with(request, &[], now, rng)
    }

    /// Where traffic goes now, rebuilt first if endpoints changed since it was computed.
    pub(crate) fn routing(&self) -> Guard<Arc<Routing>> {
        let current = self.routing.load();
        let changes = self.changes.load(Ordering::Acquire);
        if current.changes == changes {
            return current;
        }
        // One request rebuilds; the others go on with the routing they have.
        let Ok(_rebuilding) = self.rebuilding.try_lock() else {
            return current;
        };
        let rules = RoutingRules {
            local_zone: self.local_zone.as_deref(),
            panic_threshold: self.config.panic_threshold,
        };
        let endpoints = self.endpoints.load();
        let rebuilt = Routing::build(&endpoints, rules, &self.balancer, changes);
        self.routing.store(Arc::new(rebuilt));
        // Health or membership changed: so may what outlier detection can afford to eject.
        self.fit_ejection_cap(Instant::now());
        self.routing.load()
    }

    /// Whether DNS names have been resolved once and every endpoint has had its first health
    /// check (always true for a cluster without names or checks). Readiness waits for this.
    pub(crate) fn first_health_round_done(&self) -> bool {
        self.resolved_once.load(Ordering::Acquire)
            && (self.config.health_check.is_none()
                || self
                    .endpoints
                    .load()
                    .iter()
                    .all(|endpoint| endpoint.health() != HealthStatus::Unknown))
    }

    /// Resolves once [`first_health_round_done`](Self::first_health_round_done) is true.
    #[cfg(test)]
    pub(crate) async fn first_health_round(&self) {
        loop {
            let progress = self.progress.notified();
            let mut progress = std::pin::pin!(progress);
            progress.as_mut().enable();
            if self.first_health_round_done() {
                return;
            }
            progress.await;
        }
    }

    /// Whether `endpoint` is still one of the cluster's endpoints.
    pub(crate) fn contains(&self, endpoint: &Arc<Endpoint>) -> bool {
        self.endpoints
            .load()
            .iter()
            .any(|member| Arc::ptr_eq(member, endpoint))
    }

    /// A receiver that changes when the cluster is retired and closes when it is dropped;
    /// its background tasks end on either.
    pub(crate) fn alive(&self) -> watch::Receiver<()> {
        self.alive.subscribe()
    }

    /// Stops the cluster's health-check and DNS tasks because a reload replaced it. Requests
    /// still holding it finish, but it no longer judges endpoints it may share with its
    /// successor, whose own tasks (and config) now decide their health.
    pub(crate) fn retire(&self) {
        self.retired.store(true, Ordering::Release);
        self.alive.send_replace(());
    }

    /// Whether a reload replaced it.
    pub(crate) fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    fn start_tasks(self: &Arc<Self>, has_names: bool) {
        if tokio::runtime::Handle::try_current().is_err() {
            tracing::debug!(
                cluster = self.name(),
                "no async runtime: health checks and DNS refresh not started"
            );
            return;
        }
        if self.config.health_check.is_some() {
            for endpoint in self.endpoints().iter() {
                checks::spawn(self, endpoint.clone());
            }
        }
        if has_names {
            dns::spawn(self);
        }
        passive::spawn(self);
    }
}

/// The endpoints of `config`: those `previous` had are kept with what is known of them, new
/// ones start as its health checks say (unknown until checked, or healthy without checks).
/// Until DNS answers, names keep the addresses they had in the previous cluster.
fn endpoints_of(
    config: &ClusterConfig,
    previous: Option<&Arc<Cluster>>,
    changes: &Arc<AtomicU64>,
    now: Instant,
) -> Vec<Arc<Endpoint>> {
    let initial = if config.health_check.is_some() {
        HealthStatus::Unknown
    } else {
        HealthStatus::Healthy
    };
    let current = previous
        .map(|previous| previous.endpoints())
        .unwrap_or_default();
    let resolved = dns::static_addresses(&config.endpoints);
    let endpoints = dns::merge(&config.endpoints, &resolved, &current, |address, entry| {
        Arc::new(Endpoint::new(
            address,
            entry.clone(),
            initial,
            changes.clone(),
            now,
        ))
    });
    if let Some(previous) = previous {
        match (
            previous.config.health_check.is_some(),
            config.health_check.is_some(),
        ) {
            // Checks removed: nothing will ever take a kept endpoint out again.
            (true, false) => force_all(&endpoints, HealthStatus::Healthy),
            // Checks added: what was assumed is not known.
            (false, true) => force_all(&endpoints, HealthStatus::Unknown),
            _ => {}
        }
    }
    endpoints
}

fn force_all(endpoints: &[Arc<Endpoint>], status: HealthStatus) {
    for endpoint in endpoints {
        endpoint.force_health(status);
    }
}

/// Whether two configs would build the same connection pool.
fn same_pool_settings(old: &ClusterConfig, new: &ClusterConfig) -> bool {
    old.connect_timeout == new.connect_timeout
        && old.max_idle_per_endpoint == new.max_idle_per_endpoint
        && old.protocol == new.protocol
}

#[cfg(test)]
mod tests;
