//! Outlier detection for one cluster: the policy crate's detector, the slot number each
//! endpoint address has in it, and the cap that keeps ejection from causing an outage.
//!
//! # The cap
//!
//! The detector never ejects more than `max_ejection_percent` (at least one endpoint, never
//! the last). On top of that, an ejection must not push the cluster into panic: ejecting
//! endpoints until the healthy share falls under `panic_threshold` would crowd the traffic
//! onto the survivors, which is the cascade this product exists to stop. So the detector is
//! given the largest `max_ejection_percent` (up to the configured one) that still leaves at
//! least `max(1, ceil(panic_threshold × n))` endpoints that are healthy and whose breakers
//! are closed. This is recomputed whenever health or membership changes (and every tick);
//! when it falls, the detector itself un-ejects (earliest end first) until it holds. Counted
//! in endpoints, not weight, over the whole cluster rather than per priority level: simple,
//! and conservative for the usual single-level cluster.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use blastwall_policy::outlier::{
    EndpointId, Event, Outcome, OutlierConfig, SharedOutlierDetector, ValidOutlierConfig,
};

use crate::endpoint::Endpoint;
use crate::outcome::AttemptOutcome;
use crate::upstream::AuthorityHasher;

/// Each endpoint address's slot in the detector. Looked up on every attempt's outcome, so
/// hashed with FxHash: the addresses are the config's (or DNS's), never a client's, and
/// SipHash cost ~230 instructions a request here.
pub(super) type SlotIds = HashMap<SocketAddr, EndpointId, BuildHasherDefault<AuthorityHasher>>;

/// What an attempt's outcome means to outlier detection; `None` for what must not be
/// recorded at all: overload (a busy endpoint is not a broken one) and cancellation.
pub(super) fn outlier_outcome(outcome: AttemptOutcome) -> Option<Outcome> {
    match outcome {
        AttemptOutcome::Overloaded { .. }
        | AttemptOutcome::Cancelled
        | AttemptOutcome::ClientCaused(_) => None,
        AttemptOutcome::Success => Some(Outcome::Success),
        AttemptOutcome::ServerError(_) => Some(Outcome::ServerError),
        AttemptOutcome::GatewayError(_)
        | AttemptOutcome::Unavailable
        | AttemptOutcome::ConnectFailed
        | AttemptOutcome::Refused
        | AttemptOutcome::Reset
        | AttemptOutcome::Timeout
        | AttemptOutcome::BodyFailed(_) => Some(Outcome::GatewayError),
    }
}

/// One cluster's outlier detection.
#[derive(Debug)]
pub(super) struct Outliers {
    detector: SharedOutlierDetector,
    /// The config as written; the detector runs it with the cap lowered as needed.
    configured: ArcSwap<ValidOutlierConfig>,
    /// Each endpoint address's slot in the detector. Written under the detector's lock.
    ids: ArcSwap<SlotIds>,
}

impl Outliers {
    pub(super) fn new(config: &ValidOutlierConfig, now: Instant) -> Self {
        Self {
            detector: SharedOutlierDetector::from_valid(config.clone(), now),
            configured: ArcSwap::from_pointee(config.clone()),
            ids: ArcSwap::default(),
        }
    }

    /// Puts a new configuration in force, keeping every endpoint's state.
    pub(super) fn reconfigure(&self, config: &ValidOutlierConfig) {
        self.configured.store(Arc::new(config.clone()));
    }

    /// Records one attempt; `apply` sees the resulting event under the detector's lock, so
    /// events reach the endpoints in the order the detector made them.
    pub(super) fn record(
        &self,
        address: SocketAddr,
        outcome: Outcome,
        latency: Duration,
        now: Instant,
        apply: impl FnOnce(&SlotIds, Event),
    ) {
        let ids = self.ids.load();
        let Some(&id) = ids.get(&address) else {
            return;
        };
        self.detector.with(|detector| {
            if let Some(event) = detector.record(id, outcome, latency, now) {
                apply(&ids, event);
            }
        });
    }

    /// Ends ejections that are over and runs the interval rules when due; then makes the cap
    /// fit `endpoints` as they are now (see the module docs).
    pub(super) fn tick(
        &self,
        endpoints: &[Arc<Endpoint>],
        panic_threshold: f64,
        now: Instant,
        mut apply: impl FnMut(&SlotIds, Event),
    ) {
        let ids = self.ids.load();
        self.detector.with(|detector| {
            for event in detector.tick(now) {
                apply(&ids, event);
            }
        });
        self.fit(endpoints, panic_threshold, now, apply);
    }

    /// Makes the detector's membership the addresses of `endpoints` (new ones start afresh,
    /// gone ones are forgotten), and its cap fit them.
    pub(super) fn sync(
        &self,
        endpoints: &[Arc<Endpoint>],
        panic_threshold: f64,
        now: Instant,
        mut apply: impl FnMut(&SlotIds, Event),
    ) {
        self.detector.with(|detector| {
            let old = self.ids.load_full();
            let mut ids = SlotIds::default();
            for endpoint in endpoints {
                if let Some(&id) = old.get(&endpoint.address()) {
                    ids.insert(endpoint.address(), id);
                }
            }
            for (address, &id) in old.iter() {
                if !ids.contains_key(address) {
                    for event in detector.remove(id, now) {
                        apply(&old, event);
                    }
                }
            }
            for endpoint in endpoints {
                let address = endpoint.address();
                if ids.contains_key(&address) {
                    continue;
                }
                let id = (0..).find(|id| !detector.contains(*id)).unwrap_or(0);
                // NOTE: ids are the smallest free slots, so they stay below the endpoint
                // count, far under the detector's limit.
                if detector.add(id).is_ok() {
                    ids.insert(address, id);
                    // A new address starts serving, whatever an endpoint that had it before
                    // had come to.
                    endpoint.set_ejected(false);
                }
            }
            self.ids.store(Arc::new(ids));
        });
        self.fit(endpoints, panic_threshold, now, apply);
    }

    /// Lowers (or restores) the detector's cap to what `endpoints` can afford now.
    pub(super) fn fit(
        &self,
        endpoints: &[Arc<Endpoint>],
        panic_threshold: f64,
        now: Instant,
        mut apply: impl FnMut(&SlotIds, Event),
    ) {
        let configured = self.configured.load();
        let ids = self.ids.load();
        self.detector.with(|detector| {
            // NOTE: un-ejecting to meet a lower cap may free an endpoint that cannot serve
            // anyway (its breaker is open), which lowers the cap again: repeat until it
            // holds, at most once per endpoint.
            for _ in 0..=endpoints.len() {
                let available = |endpoint: &&Arc<Endpoint>| {
                    endpoint.is_healthy() && !endpoint.is_tripped() && !endpoint.is_stalled()
                };
                let serving = endpoints.iter().filter(available).count();
                // Ejected endpoints that could not serve anyway cost nothing to keep ejected.
                let spare = endpoints
                    .iter()
                    .filter(|endpoint| endpoint.is_ejected() && !available(endpoint))
                    .count();
                let cap = affordable_percent(
                    &configured,
                    endpoints.len(),
                    serving,
                    spare,
                    panic_threshold,
                );
                let wanted = configured.with_ejection_cap(cap);
                if detector.config() == wanted.config() {
                    return;
                }
                let events = detector.set_valid_config(wanted, now);
                for event in events {
                    apply(&ids, event);
                }
            }
        });
    }
}

/// The largest `max_ejection_percent`, up to the configured one, that leaves at least
/// `max(1, ceil(panic_threshold × total))` of the `serving` endpoints (healthy, breaker not
/// open) serving, counting `spare` ejected endpoints that cannot serve anyway as free.
pub(super) fn affordable_percent(
    config: &OutlierConfig,
    total: usize,
    serving: usize,
    spare: usize,
    panic_threshold: f64,
) -> u8 {
    let keep = ((panic_threshold * total as f64).ceil() as usize).max(1);
    let affordable = serving.saturating_sub(keep) + spare;
    (0..=config.max_ejection_percent)
        .rev()
        .find(|percent| {
            let config = OutlierConfig {
                max_ejection_percent: *percent,
                ..config.clone()
            };
            config.max_ejected(total) <= affordable
        })
        .unwrap_or(0)
}

/// The address whose slot is `id`.
pub(super) fn address_of(ids: &SlotIds, id: EndpointId) -> Option<SocketAddr> {
    ids.iter()
        .find(|(_, slot)| **slot == id)
        .map(|(address, _)| *address)
}
