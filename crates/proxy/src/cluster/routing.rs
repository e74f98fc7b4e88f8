//! Which endpoints may take a request: priority level, zone, health and panic, worked out
//! once per change and read by every request without a lock.
//!
//! A [`Routing`] is rebuilt when an endpoint's health changes or the endpoint set changes
//! (the cluster notices by a change counter, see `Cluster::pick`), from the shares computed
//! by [`crate::balance::load`]. A request then draws one number to choose a level, one to
//! choose between the local zone and the others, and lets the balancer pick in that pool.
//!
//! An endpoint that is ejected or whose breaker is open counts as unhealthy in every share
//! (priority, zone, panic), and is never a member of a pool, not even in panic: panic spreads
//! traffic over endpoints health checks may be wrong about, but the passive checks have just
//! seen these fail real requests (and outlier detection never ejects so many that a level
//! would panic, see `passive`).
//!
//! Consistent hashing ignores zones (a key must land on the same endpoint whichever proxy
//! sees it) and chooses the level from the key itself, so a key sticks to its level too.

use std::sync::Arc;
use std::time::Instant;

use rand::Rng;

use crate::balance::load::{Capacity, in_panic, local_zone_share, priority_load};
use crate::balance::{Balancer, Pool, ring};
use crate::endpoint::Endpoint;

/// Where requests go, for one state of the cluster's endpoints.
#[derive(Debug)]
pub(crate) struct Routing {
    /// The change count this routing reflects.
    pub(crate) changes: u64,
    /// Levels that take traffic, in priority order.
    levels: Vec<LevelRoute>,
}

/// One priority level that takes traffic.
#[derive(Debug)]
struct LevelRoute {
    /// Upper end of this level's slice of `[0, 1)` (cumulative load).
    upto: f64,
    /// Share of the level's traffic for `local`.
    local_share: f64,
    /// Same-zone candidates (empty without zone awareness).
    local: Pool,
    /// Every other candidate.
    remote: Pool,
    /// Whether this level spreads over all its endpoints, healthy or not.
    panic: bool,
}

/// The inputs of a routing beyond the endpoints.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RoutingRules<'a> {
    /// The proxy's zone, if zone aware.
    pub local_zone: Option<&'a str>,
    /// Share (0 to 1) under which a level is in panic; 0 disables panic.
    pub panic_threshold: f64,
}

impl Routing {
    /// Works out where requests go; `changes` is the count read *before* the endpoints'
    /// health, so a change during the build makes the result stale rather than wrong.
    pub(crate) fn build(
        endpoints: &[Arc<Endpoint>],
        rules: RoutingRules<'_>,
        balancer: &Balancer,
        changes: u64,
    ) -> Self {
        let mut priorities: Vec<u32> = endpoints
            .iter()
            .map(|endpoint| endpoint.config().priority)
            .collect();
        priorities.sort_unstable();
        priorities.dedup();
        let routable: Vec<bool> = endpoints.iter().map(|e| e.is_routable()).collect();
        let healthy: Vec<bool> = endpoints
            .iter()
            .zip(&routable)
            .map(|(e, routable)| *routable && e.is_healthy())
            .collect();
        // Per level: the whole level's capacity, and its local zone's.
        let capacities: Vec<(Capacity, Capacity)> = priorities
            .iter()
            .map(|priority| {
                let (mut level, mut local) = (Capacity::default(), Capacity::default());
                for (endpoint, healthy) in endpoints.iter().zip(&healthy) {
                    if endpoint.config().priority == *priority {
                        level.add(endpoint.weight(), *healthy);
                        if is_local(endpoint, rules.local_zone) {
                            local.add(endpoint.weight(), *healthy);
                        }
                    }
                }
                (level, local)
            })
            .collect();
        let level_capacities: Vec<Capacity> = capacities.iter().map(|(level, _)| *level).collect();
        let load = priority_load(&level_capacities);
        let mut levels = Vec::new();
        let mut upto = 0.0;
        for ((priority, (capacity, local)), share) in
            priorities.iter().zip(&capacities).zip(&load.loads)
        {
            if *share <= 0.0 {
                continue;
            }
            upto += share;
            let panic = in_panic(*capacity, rules.panic_threshold, load.enough_capacity);
            let members = endpoints
                .iter()
                .zip(healthy.iter().zip(&routable))
                .filter(|(endpoint, (healthy, routable))| {
                    endpoint.config().priority == *priority && **routable && (panic || **healthy)
                })
                .map(|(endpoint, _)| endpoint);
            // Zone awareness needs healthy endpoints to prefer (not in panic), a key-free
            // balancer, and local endpoints in this level.
            let zone_aware = !panic && !balancer.is_keyed() && local.total > 0;
            let (local_members, remote_members): (Vec<Arc<Endpoint>>, Vec<Arc<Endpoint>>) = members
                .cloned()
                .partition(|endpoint| zone_aware && is_local(endpoint, rules.local_zone));
            let level = LevelRoute {
                upto,
                local_share: if zone_aware {
                    local_zone_share(*local, *capacity)
                } else {
                    0.0
                },
                local: balancer.pool(local_members),
                remote: balancer.pool(remote_members),
                panic,
            };
            if !level.local.is_empty() || !level.remote.is_empty() {
                levels.push(level);
            }
        }
        if let Some(last) = levels.last_mut() {
            // Close the interval against rounding, and against a level skipped for emptiness.
            last.upto = f64::INFINITY;
        }
        Self { changes, levels }
    }

    /// The pool for a request, given a number in `[0, 1)` for the level (from the key for
    /// keyed requests) and one for the zone.
    pub(crate) fn pool(&self, level_draw: f64, zone_draw: f64) -> Option<&Pool> {
        let level = self
            .levels
            .iter()
            .find(|level| level_draw < level.upto)
            .or(self.levels.last())?;
        let local =
            (zone_draw < level.local_share && !level.local.is_empty()) || level.remote.is_empty();
        Some(if local { &level.local } else { &level.remote })
    }

    /// Picks an endpoint for a request with hash key `key` (if the balancer is keyed).
    pub(crate) fn pick<'a>(
        &'a self,
        balancer: &Balancer,
        key: Option<u64>,
        now: Instant,
        rng: &mut impl Rng,
    ) -> Option<&'a Arc<Endpoint>> {
        let level_draw = match key {
            Some(key) => ring::unit_interval(key),
            None => rng.random::<f64>(),
        };
        let pool = self.pool(level_draw, rng.random::<f64>())?;
        balancer.pick(pool, key, now, rng)
    }

    /// Every endpoint that may take traffic now, level by level.
    pub(crate) fn endpoints(&self) -> impl Iterator<Item = &Arc<Endpoint>> {
        self.levels.iter().flat_map(|level| {
            level
                .local
                .endpoints()
                .iter()
                .chain(level.remote.endpoints())
        })
    }

    /// Whether any level is in panic (for status and logs).
    pub(crate) fn in_panic(&self) -> bool {
        self.levels.iter().any(|level| level.panic)
    }
}

fn is_local(endpoint: &Endpoint, local_zone: Option<&str>) -> bool {
    local_zone.is_some() && endpoint.config().zone.as_deref() == local_zone
}
