//! Per-route live state: what a route's mechanisms remember between requests (admission
//! queues and rate limits, the stale-if-error cache, kill switches, hedging latencies,
//! counters).
//!
//! Like a [`crate::cluster::Cluster`], a [`LiveRoute`] outlives a reload that keeps the route
//! (known by name): each part decides from the old and new config what it carries over, so a
//! reload that only edits a header rule does not reset a rate limiter or empty a cache.

use std::sync::Arc;

use blastwall_policy::hedge::HedgePolicy;
use blastwall_policy::retry::RetryPolicy;
use blastwall_policy::timeout::LearnedTimeout;

use crate::admission::RouteAdmission;
use crate::config::RouteConfig;
use crate::counters::RouteStats;
use crate::fallback::RouteFallback;
use crate::fault::RouteFaults;
use crate::fault::table::FaultTable;

/// One route's live state.
#[derive(Debug)]
pub(crate) struct LiveRoute {
    /// Rate limits, priority shedding, bulkhead.
    pub admission: RouteAdmission,
    /// Fallbacks, stale-if-error cache, kill switch.
    pub fallback: RouteFallback,
    /// Its fault rules.
    pub fault: RouteFaults,
    /// Counters.
    pub stats: Arc<RouteStats>,
    /// When to retry.
    pub retry: RetryPolicy,
    /// When to hedge, with the route's recent latencies (kept across reloads while the
    /// hedge settings do not change).
    pub hedge: Option<Arc<HedgePolicy>>,
    /// The per-try timeout learned from the route's attempts (`per_try_timeout = "auto"`),
    /// kept across reloads while its settings do not change.
    pub per_try: Option<Arc<LearnedTimeout>>,
}

impl LiveRoute {
    /// The live state for `config` (whose cluster is `cluster`), keeping what is still
    /// valid of `previous` (the route of the same name in the config being replaced); its
    /// faults read the runtime fault rules of `faults`.
    pub(crate) fn new(
        config: &RouteConfig,
        cluster: &str,
        previous: Option<&LiveRoute>,
        faults: &Arc<FaultTable>,
    ) -> Self {
        Self {
            admission: RouteAdmission::new(config, previous.map(|previous| &previous.admission)),
            fallback: RouteFallback::new(config, previous.map(|previous| &previous.fallback)),
            fault: RouteFaults::for_route(
                (&config.name, cluster),
                &config.faults,
                previous.map(|previous| &previous.fault),
                faults.clone(),
            ),
            stats: previous.map_or_else(Default::default, |previous| previous.stats.clone()),
            retry: config.attempts.retry.clone(),
            hedge: config.attempts.hedge.map(|hedge| {
                previous
                    .and_then(|previous| previous.hedge.as_ref())
                    .filter(|kept| kept.config() == hedge.config())
                    .cloned()
                    .unwrap_or_else(|| Arc::new(HedgePolicy::from_valid(hedge)))
            }),
            per_try: config.attempts.learned_per_try.and_then(|learned| {
                let kept = previous
                    .and_then(|previous| previous.per_try.as_ref())
                    .filter(|kept| *kept.config() == learned)
                    .cloned();
                // NOTE: checked at load (a floor within the ceiling, the defaults' multiple
                // and window), so it is never refused here.
                kept.or_else(|| LearnedTimeout::new(learned).ok().map(Arc::new))
            }),
        }
    }
}
