//! A cluster's concurrency limit, over all the routes that send to it
//! (`[cluster.NAME.concurrency]`).
//!
//! A route's limit is its bulkhead; a cluster's protects the upstream from all routes
//! together, and an adaptive one follows what the upstream can take. It is the cluster's
//! state, not the admission stage's: every route to the cluster shares it, and a reload
//! that keeps the section keeps it (slots held, queue, learnt limit) with the cluster. The
//! pipeline asks it for a slot once the cluster's breaker let a request through; the
//! admission stage turns a refusal into its answer (`admission::Refusal`).

use std::sync::Arc;
use std::time::Instant;

use super::limiter::queue::ShedReason;
use super::limiter::{LimitPermit, Limiter};
use crate::config::admission::{ConcurrencyConfig, Priority};
use crate::counters::AdmissionStats;

/// A cluster's concurrency limit, over all the routes that send to it.
#[derive(Debug, Default)]
pub(crate) struct ClusterAdmission {
    name: String,
    limiter: Option<Arc<Limiter>>,
    stats: Arc<AdmissionStats>,
}

impl ClusterAdmission {
    /// The state for the cluster `name` with `config`, keeping `previous`'s limiter when
    /// its config is unchanged, and its counters.
    pub(crate) fn new(
        name: &str,
        config: Option<&ConcurrencyConfig>,
        previous: Option<&ClusterAdmission>,
    ) -> Self {
        let stats = previous.map_or_else(Default::default, |previous| previous.stats.clone());
        let limiter = config.map(|wanted| {
            previous
                .and_then(|previous| previous.limiter.as_ref())
                .filter(|kept| kept.config() == wanted)
                .cloned()
                .unwrap_or_else(|| Arc::new(Limiter::new(wanted.clone(), stats.clone())))
        });
        Self {
            name: name.to_owned(),
            limiter,
            stats,
        }
    }

    /// A slot in the cluster for a request of `priority` (the priority admission gave it);
    /// the admission permit holds it until the response ends.
    pub(crate) async fn admit(&self, priority: Priority) -> Result<ConcurrencyPermit, ClusterShed> {
        let Some(limiter) = &self.limiter else {
            return Ok(ConcurrencyPermit(None));
        };
        limiter
            .acquire(priority, Instant::now())
            .await
            .map(|permit| ConcurrencyPermit(Some(permit)))
            .map_err(|reason: ShedReason| ClusterShed {
                reason: reason.explain("cluster", &self.name, priority),
            })
    }

    /// Sets a capacity-following limit (see [`Limiter::follow_capacity`]).
    pub(crate) fn follow_capacity(&self, capacity: Option<u32>) {
        if let Some(limiter) = &self.limiter {
            limiter.follow_capacity(capacity);
        }
    }

    /// Whether its limit follows the endpoints' capacities (the cluster's task then grows
    /// them).
    pub(crate) fn follows_capacity(&self) -> bool {
        self.limiter
            .as_ref()
            .is_some_and(|limiter| limiter.follows_capacity())
    }

    /// What admission decided so far.
    pub(crate) fn stats(&self) -> &Arc<AdmissionStats> {
        &self.stats
    }

    /// The concurrency limit now, requests holding a slot, and requests waiting.
    pub(crate) fn concurrency(&self) -> Option<(u32, u32, usize)> {
        self.limiter
            .as_ref()
            .map(|limiter| (limiter.limit(), limiter.in_flight(), limiter.queued()))
    }
}

/// A cluster's slot for one request; see [`ClusterAdmission::admit`].
#[derive(Debug)]
pub(crate) struct ConcurrencyPermit(pub(crate) Option<LimitPermit>);

/// The cluster's concurrency limit shed a request.
#[derive(Debug, Clone)]
pub(crate) struct ClusterShed {
    /// One line for the client and the log.
    pub reason: String,
}
