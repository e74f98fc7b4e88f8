//! Passive outlier detection: which endpoints of a cluster to eject, and for how long.
//!
//! An [`OutlierDetector`] watches the outcomes of real calls to the endpoints of one cluster
//! and takes misbehaving endpoints out of load balancing for a while. Active health checks
//! see whether an endpoint answers a probe; outlier detection sees whether it answers
//! *traffic*, which catches the endpoint that is up but broken (bad deploy, full disk, a
//! dead dependency of its own).
//!
//! # Rules
//!
//! The rules and their semantics follow Envoy's, so that operators can reuse what they know:
//!
//! - **consecutive errors** (checked at [`record`](OutlierDetector::record), ejects at once):
//!   `consecutive_errors` failures of any kind in a row, or `consecutive_gateway_errors`
//!   gateway errors in a row (502/503/504, connection failures — the endpoint or the way to
//!   it is broken; a plain 500 breaks this run). A success ends both runs.
//! - **failure percentage** (checked every `interval` by [`tick`](OutlierDetector::tick)):
//!   an endpoint with at least `request_volume` calls in the interval, of which at least
//!   `threshold_percent` failed.
//! - **success rate** (every `interval`): among endpoints with at least `request_volume`
//!   calls — and only if there are at least `minimum_hosts` of them — those whose success
//!   rate is below `mean − stdev_factor × stdev`. Relative to the cluster, so a dependency
//!   failing for everybody ejects nobody.
//! - **slow calls** (optional): a call slower than `slow_call_threshold` counts as a
//!   failure in all of the above except the gateway-error run. The latency of a stuck
//!   endpoint is a failure the caller may not otherwise see.
//!
//! When the cap (below) lets only some interval candidates go, the ones with the worst
//! success rate go first.
//!
//! # Ejection time: backoff with memory
//!
//! The k-th ejection in a row lasts `k × base_ejection_time`, at most `max_ejection_time`. The
//! multiplier `k` rises by one per ejection and falls by one for each evaluation interval the
//! endpoint then serves without being ejected (Envoy's semantics): a flapping endpoint is kept
//! out longer and longer, a recovered one is forgiven. An ejection ends by itself: from
//! `until` on, [`is_ejected`](OutlierDetector::is_ejected) is false, and the next `tick`
//! reports [`Event::Unejected`] and resets the endpoint's error runs.
//!
//! # Overload is not failure, and ejection must never cause an outage
//!
//! **Product rule.** The caller does not record overload answers (429, a 503 that signals
//! overload or carries `Retry-After`) or client cancellations: an overloaded endpoint is
//! working, and ejecting it only moves its load onto endpoints that are as busy, which then
//! look overloaded in turn — an overload spiral turned into an outage by the very mechanism
//! meant to prevent one. Ejection is for endpoints that are *broken*.
//!
//! Classification can still be wrong, or a whole cluster can fail at once, so the cap is the
//! last line and it is absolute: at most
//! `clamp(floor(n × max_ejection_percent / 100), 1, n − 1)` of the `n` endpoints are ejected
//! at any instant ([`OutlierConfig::max_ejected`]). The "at least one" lets small clusters
//! (where 10 % rounds to zero) eject at all, as Envoy does; the "at most `n − 1`" is ours:
//! Envoy may eject every endpoint and relies on its balancer's panic mode, we never eject the
//! last one, so a cluster of one endpoint is never ejected and a cluster keeps serving from
//! at least one endpoint whatever the detector believes. A percentage of zero turns ejection
//! off. When the cap binds, the detector says so ([`Event::EjectionSuppressed`]) rather than
//! staying silent: a cluster at its cap is probably failing as a whole. Removing endpoints,
//! or a new configuration with a lower cap, un-ejects endpoints (earliest end first) until
//! the cap holds again.
//!
//! # Using it
//!
//! - Endpoints are identified by a small slot number the caller assigns (an index into its
//!   endpoint list); storage grows to the largest id, so ids are capped at
//!   [`MAX_ENDPOINT_ID`]. [`add`](OutlierDetector::add) and
//!   [`remove`](OutlierDetector::remove) follow reloads and DNS changes without touching the
//!   state of the other endpoints; adding an id that is present keeps its state. Outcomes
//!   for unknown ids (a call that outlived its endpoint) are ignored.
//! - [`record`](OutlierDetector::record) never allocates; [`tick`](OutlierDetector::tick),
//!   which allocates its list of events, should be called often (every second, say): it ends
//!   ejections that elapsed and runs the interval rules once per `interval`. Between an
//!   ejection's end and the `tick` that reports it the endpoint already routes, but its
//!   errors do not yet count toward a new consecutive run; a late `tick` never prolongs an
//!   ejection, it only delays that bookkeeping.
//! - Every change comes back as an [`Event`] carrying the [`EjectionReason`] and the numbers
//!   behind it; [`status`](OutlierDetector::status) answers for dashboards. A balancer
//!   usually keeps its own routable set, rebuilt from these events, rather than asking
//!   [`is_ejected`](OutlierDetector::is_ejected) on every pick.
//! - [`SharedOutlierDetector`] puts one detector per cluster behind a mutex for use through
//!   `&self`; the lock is short and never held across an `.await`.

use std::time::{Duration, Instant};

mod config;
mod endpoint;
mod event;
mod interval;
mod shared;
pub mod stall;
#[cfg(test)]
mod tests;

pub use config::{
    FailurePercentageConfig, MAX_EJECTION_TIME_LIMIT, OutlierConfig, OutlierConfigError,
    SuccessRateConfig, ValidOutlierConfig,
};
pub use event::{Ejection, EjectionReason, EndpointId, EndpointStatus, Event, Outcome};
pub use shared::SharedOutlierDetector;

use endpoint::{Change, Endpoint, Health, Window};

/// The largest endpoint id accepted: ids index a table, they are not hashes.
pub const MAX_ENDPOINT_ID: EndpointId = (1 << 20) - 1;

/// An endpoint id above [`MAX_ENDPOINT_ID`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("endpoint id {0} is above {MAX_ENDPOINT_ID}: ids are slot numbers, not keys")]
pub struct EndpointIdTooLarge(pub EndpointId);

/// Outlier detection for the endpoints of one cluster. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct OutlierDetector {
    config: OutlierConfig,
    endpoints: Vec<Option<Endpoint>>,
    /// How many slots hold an endpoint.
    len: usize,
    /// How many endpoints are in the `Ejected` state, including ones whose time has elapsed
    /// but that no `tick` has un-ejected yet. An upper bound of the ejections in force.
    ejected_states: usize,
    next_evaluation: Instant,
}

impl OutlierDetector {
    /// A detector with no endpoints; the first interval evaluation is at `now + interval`.
    pub fn new(config: OutlierConfig, now: Instant) -> Result<Self, OutlierConfigError> {
        Ok(Self::from_valid(config.validated()?, now))
    }

    /// A detector with no endpoints, for a configuration already checked: cannot fail.
    pub fn from_valid(config: ValidOutlierConfig, now: Instant) -> Self {
        let config = config.0;
        let next_evaluation = now + config.interval;
        Self {
            config,
            endpoints: Vec::new(),
            len: 0,
            ejected_states: 0,
            next_evaluation,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &OutlierConfig {
        &self.config
    }

    /// Replaces the configuration, keeping every endpoint's state. Ejections in force keep
    /// their end; if the new cap is lower, endpoints are un-ejected until it holds (returned
    /// as events).
    pub fn set_config(
        &mut self,
        config: OutlierConfig,
        now: Instant,
    ) -> Result<Vec<Event>, OutlierConfigError> {
        Ok(self.set_valid_config(config.validated()?, now))
    }

    /// [`set_config`](Self::set_config) for a configuration already checked: cannot fail.
    pub fn set_valid_config(&mut self, config: ValidOutlierConfig, now: Instant) -> Vec<Event> {
        self.config = config.0;
        let mut events = Vec::new();
        self.enforce_cap(now, &mut events);
        events
    }

    /// Adds an endpoint. Returns `false`, keeping its state, if `id` is already present.
    pub fn add(&mut self, id: EndpointId) -> Result<bool, EndpointIdTooLarge> {
        if id > MAX_ENDPOINT_ID {
            return Err(EndpointIdTooLarge(id));
        }
        if self.endpoints.len() <= id {
            self.endpoints.resize_with(id + 1, || None);
        }
        let slot = &mut self.endpoints[id];
        if slot.is_some() {
            return Ok(false);
        }
        *slot = Some(Endpoint::new());
        self.len += 1;
        Ok(true)
    }

    /// Removes an endpoint and forgets its state. If the smaller cluster's cap is now
    /// exceeded, endpoints are un-ejected (earliest end first) until it holds; those
    /// un-ejections are returned. No event is reported for the removed endpoint itself.
    pub fn remove(&mut self, id: EndpointId, now: Instant) -> Vec<Event> {
        let mut events = Vec::new();
        let Some(endpoint) = self.endpoints.get_mut(id).and_then(Option::take) else {
            return events;
        };
        self.len -= 1;
        if matches!(endpoint.health, Health::Ejected(_)) {
            self.ejected_states -= 1;
        }
        while self.endpoints.last().is_some_and(Option::is_none) {
            self.endpoints.pop();
        }
        self.enforce_cap(now, &mut events);
        events
    }

    /// Whether `id` is a known endpoint.
    pub fn contains(&self, id: EndpointId) -> bool {
        self.endpoint(id).is_some()
    }

    /// How many endpoints the cluster has.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the cluster has no endpoints.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The known endpoint ids, in increasing order.
    pub fn ids(&self) -> impl Iterator<Item = EndpointId> + '_ {
        self.endpoints
            .iter()
            .enumerate()
            .filter_map(|(id, slot)| slot.as_ref().map(|_| id))
    }

    /// Records how a call to `id` that took `latency` ended at `now`. Returns the ejection
    /// (or the suppressed ejection) if the call completed a consecutive-errors run.
    ///
    /// Never allocates. Do not record overload or cancelled calls (see the module docs).
    pub fn record(
        &mut self,
        id: EndpointId,
        outcome: Outcome,
        latency: Duration,
        now: Instant,
    ) -> Option<Event> {
        let config = &self.config;
        let endpoint = self.endpoints.get_mut(id)?.as_mut()?;
        let reason = endpoint.record(config, outcome, latency)?;
        let ejected = self.ejected_count(now);
        self.try_eject(id, reason, ejected, now)
    }

    /// Ends ejections whose time has come and, once per `interval`, evaluates the failure
    /// percentage and success-rate rules over the interval's calls and starts a new interval.
    pub fn tick(&mut self, now: Instant) -> Vec<Event> {
        let mut events = Vec::new();
        for id in 0..self.endpoints.len() {
            let elapsed = self
                .endpoint(id)
                .is_some_and(|e| matches!(e.health, Health::Ejected(j) if now >= j.until));
            if elapsed {
                events.extend(self.apply(id, Change::Uneject, now));
            }
        }
        if now >= self.next_evaluation {
            self.evaluate(now, &mut events);
            self.next_evaluation = now + self.config.interval;
        }
        events
    }

    /// Whether `id` is ejected at `now` (false for unknown ids).
    pub fn is_ejected(&self, id: EndpointId, now: Instant) -> bool {
        self.ejection(id, now).is_some()
    }

    /// The ejection of `id` in force at `now`, with its reason.
    pub fn ejection(&self, id: EndpointId, now: Instant) -> Option<Ejection> {
        self.endpoint(id)?.ejection(now)
    }

    /// Everything the detector knows about `id`, as of `now`.
    pub fn status(&self, id: EndpointId, now: Instant) -> Option<EndpointStatus> {
        let e = self.endpoint(id)?;
        Some(EndpointStatus {
            ejection: e.ejection(now),
            multiplier: e.multiplier,
            times_ejected: e.times_ejected,
            consecutive_errors: e.consecutive_errors(),
            consecutive_gateway_errors: e.consecutive_gateway_errors(),
            requests: e.window.requests,
            failures: e.window.failures,
            slow: e.window.slow,
        })
    }

    /// How many endpoints are ejected at `now`.
    pub fn ejected_count(&self, now: Instant) -> usize {
        if self.ejected_states == 0 {
            return 0;
        }
        self.endpoints
            .iter()
            .flatten()
            .filter(|e| e.ejection(now).is_some())
            .count()
    }

    /// How many endpoints may be ejected at once now (see [`OutlierConfig::max_ejected`]).
    pub fn max_ejected(&self) -> usize {
        self.config.max_ejected(self.len)
    }

    fn endpoint(&self, id: EndpointId) -> Option<&Endpoint> {
        self.endpoints.get(id)?.as_ref()
    }

    /// Runs the interval rules and starts a new window for every endpoint.
    fn evaluate(&mut self, now: Instant, events: &mut Vec<Event>) {
        let interval = self.config.interval;
        let mut serving = Vec::new();
        for (id, slot) in self.endpoints.iter_mut().enumerate() {
            let Some(endpoint) = slot else { continue };
            endpoint.decay_multiplier(interval, now);
            if matches!(endpoint.health, Health::Serving { .. }) {
                serving.push((id, endpoint.window));
            }
            endpoint.window = Window::default();
        }
        let mut ejected = self.ejected_count(now);
        for candidate in interval::candidates(&self.config, &serving) {
            let event = self.try_eject(candidate.id, candidate.reason, ejected, now);
            if matches!(event, Some(Event::Ejected(_))) {
                ejected += 1;
            }
            events.extend(event);
        }
    }

    /// Ejects `id` for `reason` unless `ejected` (the ejections in force) is at the cap.
    fn try_eject(
        &mut self,
        id: EndpointId,
        reason: EjectionReason,
        ejected: usize,
        now: Instant,
    ) -> Option<Event> {
        let max_ejected = self.max_ejected();
        if ejected >= max_ejected {
            return Some(Event::EjectionSuppressed {
                id,
                reason,
                ejected,
                max_ejected,
            });
        }
        self.apply(id, Change::Eject(reason), now)
    }

    /// Un-ejects endpoints, earliest end first, while more are ejected than the cap allows.
    fn enforce_cap(&mut self, now: Instant, events: &mut Vec<Event>) {
        let max_ejected = self.max_ejected();
        let mut ejected = self.ejected_count(now);
        while ejected > max_ejected {
            let earliest = self
                .endpoints
                .iter()
                .enumerate()
                .filter_map(|(id, slot)| Some((id, slot.as_ref()?.ejection(now)?.until)))
                .min_by_key(|&(id, until)| (until, id));
            let Some((id, _)) = earliest else { break };
            events.extend(self.apply(id, Change::Uneject, now));
            ejected -= 1;
        }
    }

    /// Applies a change to one endpoint and keeps `ejected_states` in step.
    fn apply(&mut self, id: EndpointId, change: Change, now: Instant) -> Option<Event> {
        let config = &self.config;
        let endpoint = self.endpoints.get_mut(id)?.as_mut()?;
        let event = endpoint.transition(id, change, config, now);
        match event {
            Some(Event::Ejected(_)) => self.ejected_states += 1,
            Some(Event::Unejected(_)) => self.ejected_states -= 1,
            _ => {}
        }
        event
    }
}
