//! Choosing one endpoint in a pool of candidates, by the cluster's `balance` algorithm.
//!
//! The cluster first decides *which* endpoints may take a request (priority level, zone,
//! health, panic: see [`load`] and `cluster::routing`); that gives a [`Pool`], built once
//! per change of health or membership, never per request. The [`Balancer`] then picks in it:
//!
//! - `round_robin`: in turn, one atomic counter;
//! - `weighted_round_robin`: nginx's smooth weighted round robin (for weights 5, 1, 1 the
//!   order is a a b a c a a: heavy endpoints are interleaved, not bunched);
//! - `least_request`: power of two choices on requests in flight per unit of weight;
//! - `peak_ewma`: power of two choices on peak-EWMA cost per unit of weight;
//! - `consistent_hash`: a ring (see [`ring`]); a request without the key falls back to
//!   least request.
//!
//! Randomness comes from an RNG the caller passes (seeded in tests, `crate::rng`'s
//! thread-local one in the proxy), and a pick allocates nothing.

pub(crate) mod load;
pub(crate) mod ring;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use http::request::Parts;
use rand::Rng;

use crate::config::{BalanceConfig, ClusterConfig};
use crate::endpoint::Endpoint;
pub(crate) use ring::Ring;

/// A cluster's balancing algorithm.
#[derive(Debug, Clone)]
pub(crate) struct Balancer {
    config: BalanceConfig,
    /// The heaviest configured weight, which sizes the hash ring.
    max_weight: u32,
}

/// Endpoints that may take a request, with the balancer's state over them.
#[derive(Debug)]
pub(crate) struct Pool {
    endpoints: Vec<Arc<Endpoint>>,
    state: PoolState,
}

#[derive(Debug)]
enum PoolState {
    /// Round robin's next index.
    Counter(AtomicUsize),
    /// Smooth weighted round robin's current weights.
    Smooth(Mutex<SmoothWeighted>),
    /// Consistent hashing's ring.
    Ring(Ring),
    /// The power-of-two-choices algorithms keep no state here: they read the endpoints'.
    Stateless,
}

impl Balancer {
    /// The balancer a cluster's config asks for.
    pub(crate) fn new(config: &ClusterConfig) -> Self {
        Self {
            config: config.balance.clone(),
            max_weight: config
                .endpoints
                .iter()
                .map(|endpoint| endpoint.weight)
                .max()
                .unwrap_or(1),
        }
    }

    /// Whether requests carry a key that decides their endpoint.
    pub(crate) fn is_keyed(&self) -> bool {
        matches!(self.config, BalanceConfig::ConsistentHash(_))
    }

    /// The request's hash key, for consistent hashing.
    pub(crate) fn key(&self, request: &Parts) -> Option<u64> {
        match &self.config {
            BalanceConfig::ConsistentHash(key) => ring::request_key(key, request),
            _ => None,
        }
    }

    /// A pool over these endpoints, with fresh state.
    pub(crate) fn pool(&self, endpoints: Vec<Arc<Endpoint>>) -> Pool {
        let state = match self.config {
            BalanceConfig::RoundRobin => PoolState::Counter(AtomicUsize::new(0)),
            BalanceConfig::WeightedRoundRobin => {
                PoolState::Smooth(Mutex::new(SmoothWeighted::new(endpoints.len())))
            }
            BalanceConfig::ConsistentHash(_) => PoolState::Ring(Ring::new(
                endpoints
                    .iter()
                    .map(|endpoint| (endpoint.address(), endpoint.weight())),
                self.max_weight,
            )),
            BalanceConfig::LeastRequest | BalanceConfig::PeakEwma => PoolState::Stateless,
        };
        Pool { endpoints, state }
    }

    /// Picks an endpoint of `pool`; `None` only when the pool is empty.
    pub(crate) fn pick<'a>(
        &self,
        pool: &'a Pool,
        key: Option<u64>,
        now: Instant,
        rng: &mut impl Rng,
    ) -> Option<&'a Arc<Endpoint>> {
        let endpoints = &pool.endpoints;
        if endpoints.len() <= 1 {
            return endpoints.first();
        }
        let index = match (&pool.state, key) {
            (PoolState::Counter(next), _) => next.fetch_add(1, Ordering::Relaxed) % endpoints.len(),
            (PoolState::Smooth(weights), _) => weights
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .next(endpoints.iter().map(|endpoint| endpoint.weight())),
            (PoolState::Ring(ring), Some(key)) => ring.get(key).unwrap_or(0),
            _ if self.config == BalanceConfig::PeakEwma => {
                let (first, second) = two_distinct(endpoints.len(), rng);
                let (a, b) = (&endpoints[first], &endpoints[second]);
                if peak_ewma_cost(b, a, now) < peak_ewma_cost(a, b, now) {
                    second
                } else {
                    first
                }
            }
            // Least request, and consistent hashing for requests without a key.
            _ => two_choices(endpoints.len(), rng, |index| {
                let endpoint = &endpoints[index];
                (endpoint.in_flight() as f64 + 1.0) / f64::from(endpoint.weight())
            }),
        };
        endpoints.get(index)
    }
}

impl Pool {
    /// The endpoints in the pool.
    pub(crate) fn endpoints(&self) -> &[Arc<Endpoint>] {
        &self.endpoints
    }

    /// Whether the pool has no endpoint.
    pub(crate) fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }
}

/// Peak-EWMA cost of `endpoint` per unit of weight, compared against `peer`.
///
/// An endpoint never measured borrows its peer's latency, so the choice between them falls
/// to requests in flight: a new endpoint is tried at once rather than starved behind a
/// pessimistic default estimate, and is not flooded either (its own in-flight count rises).
fn peak_ewma_cost(endpoint: &Endpoint, peer: &Endpoint, now: Instant) -> f64 {
    let latency = if endpoint.latency().has_samples() || !peer.latency().has_samples() {
        endpoint.latency().get(now)
    } else {
        peer.latency().get(now)
    };
    latency.as_nanos() as f64 * (endpoint.in_flight() as f64 + 1.0) / f64::from(endpoint.weight())
}

/// Two distinct random indices below `count` (≥ 2).
fn two_distinct(count: usize, rng: &mut impl Rng) -> (usize, usize) {
    let first = rng.random_range(0..count);
    let mut second = rng.random_range(0..count - 1);
    if second >= first {
        second += 1;
    }
    (first, second)
}

/// Power of two choices: the cheaper of two distinct random indices below `count` (≥ 2).
pub(crate) fn two_choices(count: usize, rng: &mut impl Rng, cost: impl Fn(usize) -> f64) -> usize {
    let (first, second) = two_distinct(count, rng);
    if cost(second) < cost(first) {
        second
    } else {
        first
    }
}

/// nginx's smooth weighted round robin: each pick adds every weight to its current value,
/// takes the largest, and subtracts the total from it.
#[derive(Debug, Clone)]
pub(crate) struct SmoothWeighted {
    current: Vec<i64>,
}

impl SmoothWeighted {
    /// State for `count` endpoints.
    pub(crate) fn new(count: usize) -> Self {
        Self {
            current: vec![0; count],
        }
    }

    /// The next index, given the weights in the same order (as many as `count`).
    pub(crate) fn next(&mut self, weights: impl Iterator<Item = u32>) -> usize {
        let mut total = 0_i64;
        let mut best: Option<usize> = None;
        for (index, weight) in weights.enumerate().take(self.current.len()) {
            self.current[index] += i64::from(weight);
            total += i64::from(weight);
            if best.is_none_or(|best| self.current[index] > self.current[best]) {
                best = Some(index);
            }
        }
        let best = best.unwrap_or(0);
        if let Some(chosen) = self.current.get_mut(best) {
            *chosen -= total;
        }
        best
    }
}

#[cfg(test)]
mod tests;
