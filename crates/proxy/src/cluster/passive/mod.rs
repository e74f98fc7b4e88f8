//! What traffic says about endpoints: per-endpoint and cluster circuit breakers, passive
//! outlier detection, and the picks that respect them.
//!
//! Active health checks ask an endpoint whether it is up; these watch what it does to real
//! requests. Every attempt's [`AttemptOutcome`] is recorded once, in
//! [`Cluster::record_outcome`] (or, for a success whose body still streams, in
//! [`Cluster::record_body_end`] when the body ends: an endpoint that starts its answers
//! and breaks them off fails), and each mechanism reads it the same way:
//!
//! - the **endpoint breaker** (`[cluster.X.endpoint_circuit_breaker]`) admits each attempt
//!   ([`Cluster::pick_avoiding`] takes a permit; the [`EndpointGuard`] carries it); while
//!   open, the endpoint is out of routing as if unhealthy, and its share goes to the others;
//!   half-open, it is routable again but admits only its probes;
//! - the **cluster breaker** (`[cluster.X.circuit_breaker]`) admits each request
//!   ([`Cluster::admit`]) and judges its final outcome ([`ClusterPermit::record`]); while
//!   open, requests fail fast without touching an endpoint;
//! - **outlier detection** (`[cluster.X.outlier_detection]`) ejects endpoints that fail,
//!   out of routing like an open breaker, for a time that grows with each ejection, within a
//!   cap (see [`outliers`]);
//! - **stall detection** (`outlier_detection.stall_after`) takes out an endpoint that has
//!   had requests out and answered nothing for a while, until it answers anything, within
//!   the same cap (see [`stalls`]): a hung endpoint fails nothing, so only its silence
//!   shows.
//!
//! # Overload is not failure; a broken 503 is
//!
//! A 429, or a 503 from an endpoint that still serves, is an endpoint saying it is busy. It
//! is `Ignored` by the breakers and never recorded to outlier detection: ejecting busy
//! replicas only moves their load onto the others, which then look busy in turn, until none
//! is left. Overload is handled by backing off and shedding (admission, retries honouring
//! Retry-After), never by removing capacity. But a 503 from an endpoint that has served
//! nothing for a while says it is broken ([`AttemptOutcome::Unavailable`], see
//! [`crate::outcome::broken_503`]): that one trips and ejects like a gateway error, so an
//! outage where every replica answers 503 is detected and answered by a fallback at once.
//!
//! # Probing by health check
//!
//! A breaker with `probe = "health_check"` is probed by the proxy's own health check while
//! open, never by a request (see [`probes`]).
//!
//! # Time
//!
//! Breakers move from open to half-open, and ejections end, without a request arriving: a
//! task per cluster calls [`Cluster::tick`] (holding only a weak reference, stopping when
//! the cluster is retired or dropped, like the health checks). Without it nothing would ever
//! route to an ejected endpoint or an open breaker again.
//!
//! # Reloads
//!
//! [`Passive::new`] keeps what the previous cluster knew when its settings are unchanged:
//! the cluster breaker, each kept endpoint's breaker, and the outlier detector (whose
//! configuration can change while keeping every endpoint's state). A retired cluster
//! stops recording to outlier detection, whose ejections would act on endpoints its
//! successor now judges.

#[cfg(test)]
mod body_tests;
mod breakers;
mod outcomes;
mod outliers;
mod probes;
#[cfg(test)]
mod stall_tests;
mod stalls;
mod task;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use blastwall_policy::breaker::{Permit, SharedBreaker};
use blastwall_policy::outlier::Event;
use http::request::Parts;
use rand::Rng;

use self::breakers::{
    breaker_outcome, cluster_breaker, install_endpoint_breaker, remove_endpoint_breaker,
};
use self::outliers::{Outliers, SlotIds, address_of};
pub(super) use self::task::spawn;
use super::Cluster;
use crate::config::{ClusterConfig, StallConfig};
use crate::counters::ClusterStats;
use crate::endpoint::{Endpoint, EndpointGuard, EndpointPermit};
use crate::outcome::AttemptOutcome;
use crate::rng::with_rng;

/// Draws from the balancer before falling back to a scan of every candidate: enough that
/// avoiding one failed endpoint rarely needs the scan, few enough to stay cheap.
const DRAWS: usize = 3;

/// A cluster's breakers and outlier detection.
#[derive(Debug, Default)]
pub(super) struct Passive {
    breaker: Option<SharedBreaker>,
    endpoint_breakers: bool,
    outliers: Option<Arc<Outliers>>,
    /// The breakers whose health-check probe is out (`None`: the cluster's; else the
    /// endpoint's address), see [`probes`].
    probing: Mutex<Vec<Option<SocketAddr>>>,
    /// Whose turn it is to be checked for the cluster's breaker.
    probe_turn: AtomicUsize,
    stall: Option<StallConfig>,
}

impl Passive {
    /// The passive state for `config` over `endpoints`, keeping what `previous` (the
    /// replaced cluster's config and state) had where the settings did not change.
    pub(super) fn new(
        config: &ClusterConfig,
        previous: Option<(&ClusterConfig, &Passive)>,
        endpoints: &[Arc<Endpoint>],
        stats: &Arc<ClusterStats>,
        now: Instant,
    ) -> Self {
        let settings = &config.passive;
        let breaker = settings
            .circuit_breaker
            .as_ref()
            .map(|wanted| match previous {
                Some((old, passive))
                    if old.passive.circuit_breaker.as_ref() == Some(wanted)
                        && let Some(breaker) = &passive.breaker =>
                {
                    breaker.clone()
                }
                _ => cluster_breaker(wanted, &config.name, stats),
            });
        let same_endpoint_breaker = previous.is_some_and(|(old, _)| {
            old.passive.endpoint_circuit_breaker == settings.endpoint_circuit_breaker
        });
        for endpoint in endpoints {
            match &settings.endpoint_circuit_breaker {
                Some(_) if same_endpoint_breaker && endpoint.breaker().is_some() => {}
                Some(wanted) => install_endpoint_breaker(endpoint, wanted, &config.name, stats),
                None => remove_endpoint_breaker(endpoint),
            }
        }
        let outliers = settings.outlier_detection.as_ref().map(|wanted| {
            match previous.and_then(|(_, passive)| passive.outliers.clone()) {
                Some(outliers) => {
                    outliers.reconfigure(wanted);
                    outliers
                }
                None => {
                    for endpoint in endpoints {
                        endpoint.set_ejected(false);
                    }
                    Arc::new(Outliers::new(wanted, now))
                }
            }
        });
        if outliers.is_none() {
            for endpoint in endpoints {
                endpoint.set_ejected(false);
            }
        }
        for endpoint in endpoints {
            endpoint.watch_stalls(settings.stall.is_some());
        }
        Self {
            breaker,
            endpoint_breakers: settings.endpoint_circuit_breaker.is_some(),
            outliers,
            probing: Mutex::default(),
            probe_turn: AtomicUsize::new(0),
            stall: settings.stall,
        }
    }

    /// Notes a probe out for `key`; false if one already is.
    fn probing_insert(&self, key: Option<SocketAddr>) -> bool {
        let mut probing = self.probing.lock().unwrap_or_else(PoisonError::into_inner);
        if probing.contains(&key) {
            return false;
        }
        probing.push(key);
        true
    }

    /// Notes the probe for `key` back.
    fn probing_remove(&self, key: Option<SocketAddr>) {
        let mut probing = self.probing.lock().unwrap_or_else(PoisonError::into_inner);
        probing.retain(|out| *out != key);
    }

    /// Whether anything here needs [`Cluster::tick`].
    pub(super) fn needs_ticks(&self) -> bool {
        self.breaker.is_some()
            || self.endpoint_breakers
            || self.outliers.is_some()
            || self.stall.is_some()
    }
}

/// Leave from the cluster's breaker for one request; give it back with
/// [`ClusterPermit::record`] (dropping it counts as cancelled).
#[derive(Debug)]
pub(crate) struct ClusterPermit {
    held: Option<(SharedBreaker, Permit)>,
}

impl ClusterPermit {
    /// Records how the request ended (its last attempt's outcome).
    pub(crate) fn record(mut self, outcome: AttemptOutcome, now: Instant) {
        if let Some((breaker, permit)) = self.held.take() {
            breaker.record(permit, breaker_outcome(outcome), now);
        }
    }
}

impl Drop for ClusterPermit {
    fn drop(&mut self) {
        if let Some((breaker, permit)) = self.held.take() {
            breaker.record(
                permit,
                blastwall_policy::breaker::Outcome::Ignored,
                Instant::now(),
            );
        }
    }
}

/// The cluster's breaker is open: requests fail fast without touching an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the circuit breaker of the cluster is open")]
pub(crate) struct ClusterBreakerOpen {
    /// When it will let a probe through, if known.
    pub retry_after: Option<Duration>,
}

impl Cluster {
    /// The cluster's breaker, if it has one (for the metrics and the admin API).
    pub(crate) fn breaker(&self) -> Option<&SharedBreaker> {
        self.passive.breaker.as_ref()
    }

    /// Asks the cluster's breaker for leave to send one request.
    pub(crate) fn admit(&self, now: Instant) -> Result<ClusterPermit, ClusterBreakerOpen> {
        let Some(breaker) = &self.passive.breaker else {
            return Ok(ClusterPermit { held: None });
        };
        match breaker.try_acquire(now) {
            Ok(permit) => Ok(ClusterPermit {
                held: Some((breaker.clone(), permit)),
            }),
            Err(open) => {
                self.stats.fast_failures.increment();
                Err(ClusterBreakerOpen {
                    retry_after: open.retry_after(),
                })
            }
        }
    }

    /// Chooses an endpoint for a request, avoiding the addresses in `avoid` (endpoints that
    /// already failed this request) while another endpoint can take it. Never an ejected
    /// endpoint or one whose breaker is open; a half-open one only while it has a probe slot.
    /// `now` is the caller's reading of the clock (it has one at hand).
    pub(crate) fn pick_avoiding(
        &self,
        request: &Parts,
        avoid: &[SocketAddr],
        now: Instant,
    ) -> Option<EndpointGuard> {
        with_rng(|rng| self.pick_avoiding_with(request, avoid, now, rng))
    }

    /// [`pick_avoiding`](Self::pick_avoiding) with the time and randomness given.
    pub(crate) fn pick_avoiding_with(
        &self,
        request: &Parts,
        avoid: &[SocketAddr],
        now: Instant,
        rng: &mut impl Rng,
    ) -> Option<EndpointGuard> {
        let key = self.balancer.key(request);
        let routing = self.routing();
        // The balancer's own choice first, so its distribution holds.
        for _ in 0..DRAWS {
            let endpoint = routing.pick(&self.balancer, key, now, rng)?;
            if !avoid.contains(&endpoint.address())
                && !endpoint.is_full()
                && let Some(guard) = admit_endpoint(endpoint, now)
            {
                return Some(guard);
            }
        }
        // Then the least loaded candidate that is not avoided (one below the capacity it
        // showed first, see `capacity`); then a healthy endpoint of a
        // priority that takes no traffic now (a retry whose every candidate failed spills
        // over to the standby, as Envoy's previous-priorities retry does); and only then one
        // already tried: better the endpoint that failed than none.
        let mut candidates: Vec<&Arc<Endpoint>> = routing.endpoints().collect();
        candidates.sort_by_key(|endpoint| {
            (
                avoid.contains(&endpoint.address()),
                endpoint.is_full(),
                endpoint.in_flight(),
            )
        });
        if let Some(guard) = candidates
            .iter()
            .filter(|endpoint| !avoid.contains(&endpoint.address()))
            .find_map(|endpoint| admit_endpoint(endpoint, now))
        {
            return Some(guard);
        }
        let everyone = self.endpoints();
        let mut standby: Vec<&Arc<Endpoint>> = everyone
            .iter()
            .filter(|endpoint| {
                endpoint.is_healthy()
                    && endpoint.is_routable()
                    && !avoid.contains(&endpoint.address())
            })
            .collect();
        standby.sort_by_key(|endpoint| (endpoint.config().priority, endpoint.in_flight()));
        standby
            .into_iter()
            .chain(candidates)
            .find_map(|endpoint| admit_endpoint(endpoint, now))
    }

    /// Does what time alone does: half-opens breakers whose open period is over, ends
    /// ejections whose time is up, runs outlier detection's interval rules, fits its cap
    /// to the endpoints' health, and stalls endpoints silent for too long. Called by the
    /// cluster's task; public for tests and tools.
    pub(crate) fn tick(&self, now: Instant) {
        if let Some(breaker) = &self.passive.breaker {
            breaker.advance(now);
        }
        let endpoints = self.endpoints();
        if self.passive.endpoint_breakers {
            for endpoint in endpoints.iter().filter(|endpoint| endpoint.is_tripped()) {
                if let Some(breaker) = endpoint.breaker() {
                    breaker.advance(now);
                }
            }
        }
        if let Some(outliers) = &self.passive.outliers
            && !self.is_retired()
        {
            outliers.tick(
                &endpoints,
                self.config.panic_threshold,
                now,
                |ids, event| {
                    self.apply_outlier_event(ids, event);
                },
            );
        }
        if let Some(stall) = &self.passive.stall
            && !self.is_retired()
        {
            self.check_stalls(stall, now);
        }
    }

    /// Makes outlier detection follow a change of endpoints (reload, DNS) and gives new
    /// endpoints their breaker.
    pub(super) fn adopt_endpoints(&self, now: Instant) {
        let endpoints = self.endpoints();
        if let Some(config) = &self.config.passive.endpoint_circuit_breaker {
            for endpoint in endpoints.iter().filter(|e| e.breaker().is_none()) {
                install_endpoint_breaker(endpoint, config, &self.config.name, &self.stats);
            }
        }
        for endpoint in endpoints.iter() {
            endpoint.watch_stalls(self.passive.stall.is_some());
        }
        if let Some(outliers) = &self.passive.outliers {
            outliers.sync(
                &endpoints,
                self.config.panic_threshold,
                now,
                |ids, event| {
                    self.apply_outlier_event(ids, event);
                },
            );
        }
    }

    /// After the routing is rebuilt (health changed): the ejection cap follows.
    pub(super) fn fit_ejection_cap(&self, now: Instant) {
        if let Some(outliers) = &self.passive.outliers
            && !self.is_retired()
        {
            let endpoints = self.endpoints();
            outliers.fit(
                &endpoints,
                self.config.panic_threshold,
                now,
                |ids, event| {
                    self.apply_outlier_event(ids, event);
                },
            );
        }
    }

    /// Puts one of the detector's events in force: the endpoint's routing flag, a log line,
    /// a counter. Runs under the detector's lock, so flags follow the detector's order.
    fn apply_outlier_event(&self, ids: &SlotIds, event: Event) {
        let (id, ejected) = match &event {
            Event::Ejected(ejection) => (ejection.id, Some(true)),
            Event::Unejected(ejection) => (ejection.id, Some(false)),
            Event::EjectionSuppressed { id, .. } => (*id, None),
        };
        let Some(address) = address_of(ids, id) else {
            return;
        };
        if let Some(ejected) = ejected {
            for endpoint in self.endpoints().iter() {
                if endpoint.address() == address {
                    endpoint.set_ejected(ejected);
                }
            }
        }
        let cluster = self.name();
        if let Some(event) = crate::events::outlier_event(cluster, address, &event) {
            self.stats.events.push(event);
        }
        match event {
            Event::Ejected(ejection) => {
                self.stats.ejections.increment();
                tracing::warn!(
                    cluster, endpoint = %address, reason = %ejection.reason,
                    duration = ?ejection.duration(), multiplier = ejection.multiplier,
                    "endpoint ejected"
                );
            }
            Event::Unejected(ejection) => {
                self.stats.ejections_ended.increment();
                tracing::info!(
                    cluster, endpoint = %address, after = ?ejection.duration(),
                    "endpoint returned from ejection"
                );
            }
            Event::EjectionSuppressed {
                reason,
                ejected,
                max_ejected,
                ..
            } => {
                self.stats.ejections_suppressed.increment();
                tracing::warn!(
                    cluster, endpoint = %address, %reason, ejected, max_ejected,
                    "ejection refused: the cap is reached (is the whole cluster failing?)"
                );
            }
        }
    }
}

/// A hold on `endpoint` if its breaker (if any) admits an attempt now.
fn admit_endpoint(endpoint: &Arc<Endpoint>, now: Instant) -> Option<EndpointGuard> {
    let Some(breaker) = endpoint
        .breaker_ref()
        .as_ref()
        .map(|breaker| SharedBreaker::clone(breaker))
    else {
        return Some(EndpointGuard::with_permit(endpoint.clone(), None, now));
    };
    let permit = breaker.try_acquire(now).ok()?;
    Some(EndpointGuard::with_permit(
        endpoint.clone(),
        Some(EndpointPermit::new(breaker, permit)),
        now,
    ))
}
