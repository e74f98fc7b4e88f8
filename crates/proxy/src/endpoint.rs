//! One endpoint and what is known of it now: health, requests in flight, latency, and what
//! traffic says of it (ejected by outlier detection, its breaker open).
//!
//! Requests read this state on every pick, so it lives in atomics (health, in flight,
//! ejected, tripped) or in a lock held for a few arithmetic operations (the latency estimate,
//! the health hysteresis), never across an `.await`. An endpoint outlives a config reload or
//! a DNS refresh that keeps it, so its state does too.
//!
//! It is a module of its own, below `balance` and `cluster`, because the balancers choose
//! among endpoints and the cluster keeps them: both need the type, and neither should need
//! the other to have it. Its health hysteresis is `health::state`'s; the checks that feed
//! it are the cluster's to schedule (`cluster::checks`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use arc_swap::ArcSwapOption;
use blastwall_policy::breaker::{Outcome, Permit, SharedBreaker};
use blastwall_policy::ewma::{PeakEwmaConfig, SharedPeakEwma};
use blastwall_policy::outlier::stall::{Silence, StallEvent, StallInput};
use http::uri::Authority;

use crate::config::EndpointConfig;
use crate::health::{HealthState, HealthStatus, Thresholds, Transition};

/// An endpoint's capacity before it answered busy: no limit known.
pub(crate) const UNKNOWN_CAPACITY: u32 = u32::MAX;
/// A learnt capacity grows (by an eighth) after this long without a busy answer.
pub(crate) const CAPACITY_GROWS_AFTER: std::time::Duration = std::time::Duration::from_secs(2);
/// A learnt capacity that grew past this is forgotten (no limit known).
pub(crate) const CAPACITY_FORGOTTEN: u32 = 100_000;

/// One endpoint and what is known of it now.
#[derive(Debug)]
pub(crate) struct Endpoint {
    address: SocketAddr,
    authority: Authority,
    config: EndpointConfig,
    /// Mirrors `health.status().is_healthy()` for lock-free reads.
    healthy: AtomicBool,
    health: Mutex<HealthState>,
    in_flight: AtomicUsize,
    latency: SharedPeakEwma,
    /// Ejected by outlier detection.
    ejected: AtomicBool,
    /// Its breaker is open: no traffic until it lets probes through.
    tripped: AtomicBool,
    /// Drained by an operator (admin API): no traffic, whatever health checks say.
    drained: AtomicBool,
    /// Stalled: busy and silent for too long (stall detection); no traffic until it answers.
    stalled: AtomicBool,
    /// Whether its cluster detects stalls: only then is its silence kept.
    watches_stalls: AtomicBool,
    /// How long it has been busy without answering (stall detection). Locked as it turns
    /// busy or idle, on each answer, and by the cluster's tick; never across an `.await`.
    silence: Mutex<Silence>,
    /// Taken down by a fault rule (`fault`, an endpoint down for every attempt): its active
    /// health checks fail without connecting, as its attempts do.
    down_by_fault: AtomicBool,
    /// Its breaker, if the cluster gives endpoints one.
    breaker: ArcSwapOption<SharedBreaker>,
    /// Which installation of `breaker` is current; a replaced breaker's transitions are
    /// ignored (see `passive`).
    pub(crate) breaker_epoch: AtomicU64,
    /// Bumped on every health change; shared by every endpoint of a cluster (and of the
    /// clusters that replace it on reload), so the cluster knows its routing is stale.
    changes: Arc<AtomicU64>,
    /// When it was created: [`last_success`](Self::last_success) counts from here.
    born: Instant,
    /// Nanoseconds from `born` to its last successful answer (0: none yet).
    last_success: AtomicU64,
    /// A moving average of its successes' latency, in nanoseconds (0: none yet). Unlike
    /// the balancer's estimate, failures never move it (they penalise that one by a second).
    success_latency: AtomicU64,
    /// Requests at once it showed it can take ([`UNKNOWN_CAPACITY`]: no sign of a limit).
    capacity: AtomicU32,
    /// Nanoseconds from `born` to when `capacity` may grow again.
    capacity_grows_at: AtomicU64,
    /// The most requests of ours it had at once when one of them succeeded, lately (the
    /// cluster's task forgets it every [`CAPACITY_GROWS_AFTER`]): it takes that many.
    served_at_once: AtomicU32,
    /// Nanoseconds from `born` to when `served_at_once` is next forgotten.
    served_forgotten_at: AtomicU64,
}

impl Endpoint {
    /// A new endpoint at `address` configured by `config`, starting with `status`; `changes`
    /// is the cluster's change counter.
    pub(crate) fn new(
        address: SocketAddr,
        config: EndpointConfig,
        status: HealthStatus,
        changes: Arc<AtomicU64>,
        now: Instant,
    ) -> Self {
        let authority = Authority::try_from(address.to_string().as_str())
            .expect("a socket address is always a valid authority");
        Self {
            address,
            authority,
            config,
            healthy: AtomicBool::new(status.is_healthy()),
            health: Mutex::new(HealthState::new(status)),
            in_flight: AtomicUsize::new(0),
            latency: SharedPeakEwma::new(&PeakEwmaConfig::default(), now)
                .expect("the default peak-EWMA config is valid"),
            ejected: AtomicBool::new(false),
            tripped: AtomicBool::new(false),
            drained: AtomicBool::new(false),
            stalled: AtomicBool::new(false),
            watches_stalls: AtomicBool::new(false),
            silence: Mutex::new(Silence::new()),
            down_by_fault: AtomicBool::new(false),
            breaker: ArcSwapOption::empty(),
            breaker_epoch: AtomicU64::new(0),
            changes,
            born: now,
            last_success: AtomicU64::new(0),
            success_latency: AtomicU64::new(0),
            capacity: AtomicU32::new(UNKNOWN_CAPACITY),
            capacity_grows_at: AtomicU64::new(0),
            served_at_once: AtomicU32::new(0),
            served_forgotten_at: AtomicU64::new(0),
        }
    }

    fn nanos_since_birth(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.born).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Learns from a busy answer (503 or 429) to a request sent while it had
    /// `in_flight_at_send` requests of ours (that one included): it takes fewer than that
    /// at once. Returns whether what it is known to take changed.
    ///
    /// Our count can run a moment behind the endpoint's (it may still hold a slot for an
    /// answer we already have), so a refusal never teaches less than the most it was seen
    /// to serve at once lately.
    pub(crate) fn learn_refusal(&self, in_flight_at_send: u32, now: Instant) -> bool {
        let served = self.served_at_once.load(Ordering::Acquire);
        let learnt = in_flight_at_send.saturating_sub(1).max(served).max(1);
        self.capacity_grows_at.store(
            self.nanos_since_birth(now + CAPACITY_GROWS_AFTER),
            Ordering::Relaxed,
        );
        self.capacity.fetch_min(learnt, Ordering::AcqRel) > learnt
    }

    /// Lets what it is known to take grow by an eighth (at least one) once
    /// [`CAPACITY_GROWS_AFTER`] has passed without a busy answer: a capacity learnt once
    /// must not cap it forever (it may have been scaled up). Past [`CAPACITY_FORGOTTEN`] it
    /// is forgotten. Returns whether it grew.
    pub(crate) fn grow_capacity(&self, now: Instant) -> bool {
        let capacity = self.capacity.load(Ordering::Acquire);
        if self.nanos_since_birth(now) >= self.served_forgotten_at.load(Ordering::Relaxed) {
            // What it served lately, not once long ago: a capacity may shrink too.
            self.served_at_once.store(0, Ordering::Release);
            self.served_forgotten_at.store(
                self.nanos_since_birth(now + CAPACITY_GROWS_AFTER),
                Ordering::Relaxed,
            );
        }
        if capacity == UNKNOWN_CAPACITY
            || self.nanos_since_birth(now) < self.capacity_grows_at.load(Ordering::Relaxed)
        {
            return false;
        }
        let grown = capacity.saturating_add((capacity / 8).max(1));
        let grown = if grown > CAPACITY_FORGOTTEN {
            UNKNOWN_CAPACITY
        } else {
            grown
        };
        self.capacity_grows_at.store(
            self.nanos_since_birth(now + CAPACITY_GROWS_AFTER),
            Ordering::Relaxed,
        );
        // A refusal learnt meanwhile wins.
        self.capacity
            .compare_exchange(capacity, grown, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Notes that a request sent while it had `in_flight_at_send` of ours succeeded (only
    /// once it has shown a limit: nothing to bound before).
    pub(crate) fn note_served_at_once(&self, in_flight_at_send: u32) {
        if self.capacity.load(Ordering::Relaxed) != UNKNOWN_CAPACITY {
            self.served_at_once
                .fetch_max(in_flight_at_send, Ordering::AcqRel);
        }
    }

    /// Requests at once it showed it can take; `None` while it has shown no limit.
    pub(crate) fn capacity(&self) -> Option<u32> {
        Some(self.capacity.load(Ordering::Acquire)).filter(|c| *c != UNKNOWN_CAPACITY)
    }

    /// Whether it holds as many requests as it showed it can take.
    pub(crate) fn is_full(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) >= self.capacity.load(Ordering::Relaxed) as usize
    }

    /// Notes a successful answer at `now`, `latency` after it was sent.
    pub(crate) fn note_success(&self, latency: std::time::Duration, now: Instant) {
        self.last_success
            .store(self.nanos_since_birth(now), Ordering::Relaxed);
        let sample = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX).max(1);
        let previous = self.success_latency.load(Ordering::Relaxed);
        // An average over about 8 successes; racing updates lose a sample, which is fine.
        let next = if previous == 0 {
            sample
        } else {
            previous - previous / 8 + sample / 8
        };
        self.success_latency.store(next.max(1), Ordering::Relaxed);
    }

    /// Its successes' usual latency (zero before the first).
    pub(crate) fn success_latency(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(self.success_latency.load(Ordering::Relaxed))
    }

    /// How long it has served nothing at `now`: since its last successful answer, or since
    /// it was created if it never answered well.
    pub(crate) fn serving_nothing_for(&self, now: Instant) -> std::time::Duration {
        let last =
            self.born + std::time::Duration::from_nanos(self.last_success.load(Ordering::Relaxed));
        now.saturating_duration_since(last)
    }

    /// Where it is.
    pub(crate) fn address(&self) -> SocketAddr {
        self.address
    }

    /// Its address as a URI authority.
    pub(crate) fn authority(&self) -> &Authority {
        &self.authority
    }

    /// Its configured weight, zone and priority (and the address as written, which for a DNS
    /// endpoint is the name it was resolved from).
    pub(crate) fn config(&self) -> &EndpointConfig {
        &self.config
    }

    /// Its weight, 1 to 1000.
    pub(crate) fn weight(&self) -> u32 {
        self.config.weight
    }

    /// Whether it may take traffic (outside of panic).
    pub(crate) fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    /// Whether routing may send it traffic: not ejected, not stalled, its breaker not open,
    /// not drained.
    /// Health is separate ([`is_healthy`](Self::is_healthy)): panic may use unhealthy
    /// endpoints, never these.
    pub(crate) fn is_routable(&self) -> bool {
        !self.ejected.load(Ordering::Acquire)
            && !self.stalled.load(Ordering::Acquire)
            && !self.tripped.load(Ordering::Acquire)
            && !self.drained.load(Ordering::Acquire)
    }

    /// Whether an operator drained it.
    pub(crate) fn is_drained(&self) -> bool {
        self.drained.load(Ordering::Acquire)
    }

    /// Takes it out of routing (or puts it back) on an operator's order, apart from health:
    /// health checks go on judging it, and cannot bring a drained endpoint back. Returns
    /// whether that changed anything.
    pub(crate) fn set_drained(&self, drained: bool) -> bool {
        self.set_flag(&self.drained, drained)
    }

    /// Whether a fault rule in force takes it down (its health checks then fail).
    pub(crate) fn is_down_by_fault(&self) -> bool {
        self.down_by_fault.load(Ordering::Acquire)
    }

    /// Marks it taken down by a fault rule, or no longer; set as a config comes into force.
    pub(crate) fn set_down_by_fault(&self, down: bool) {
        self.down_by_fault.store(down, Ordering::Release);
    }

    /// Whether outlier detection has ejected it.
    pub(crate) fn is_ejected(&self) -> bool {
        self.ejected.load(Ordering::Acquire)
    }

    /// Whether stall detection has taken it out of routing.
    pub(crate) fn is_stalled(&self) -> bool {
        self.stalled.load(Ordering::Acquire)
    }

    /// Marks it stalled or not; returns whether that changed anything.
    pub(crate) fn set_stalled(&self, stalled: bool) -> bool {
        self.set_flag(&self.stalled, stalled)
    }

    /// Starts (or stops) keeping its silence, as its cluster detects stalls or not. Stopping
    /// puts a stalled endpoint back and forgets its silence.
    pub(crate) fn watch_stalls(&self, watch: bool) {
        if self.watches_stalls.swap(watch, Ordering::AcqRel) == watch {
            return;
        }
        let mut silence = self.lock_silence();
        *silence = Silence::new();
        if watch {
            silence.transition(StallInput::Busy(self.in_flight() > 0), Instant::now());
        } else {
            drop(silence);
            self.set_stalled(false);
        }
    }

    /// Whether its silence is kept (its cluster detects stalls).
    pub(crate) fn watches_stalls(&self) -> bool {
        self.watches_stalls.load(Ordering::Relaxed)
    }

    /// Feeds its silence one input (see the policy's `outlier::stall`); what the operator
    /// should hear of comes back. The routing flag is the caller's to set.
    pub(crate) fn stall_transition(&self, input: StallInput, now: Instant) -> Option<StallEvent> {
        self.lock_silence().transition(input, now)
    }

    /// Tells its silence whether it is busy, as its in-flight count is now: called as the
    /// count leaves or reaches zero. The count is read under the lock, so whichever of two
    /// racing changes comes last leaves the right state.
    fn busy_changed(&self, now: Instant) {
        let mut silence = self.lock_silence();
        let busy = self.in_flight.load(Ordering::Acquire) > 0;
        silence.transition(StallInput::Busy(busy), now);
    }

    fn lock_silence(&self) -> std::sync::MutexGuard<'_, Silence> {
        self.silence.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether its breaker is open.
    pub(crate) fn is_tripped(&self) -> bool {
        self.tripped.load(Ordering::Acquire)
    }

    /// Its breaker, if any.
    pub(crate) fn breaker(&self) -> Option<Arc<SharedBreaker>> {
        self.breaker.load_full()
    }

    /// Its breaker, without touching the reference count (the pick path).
    pub(crate) fn breaker_ref(&self) -> arc_swap::Guard<Option<Arc<SharedBreaker>>> {
        self.breaker.load()
    }

    pub(crate) fn set_breaker(&self, breaker: Option<Arc<SharedBreaker>>) {
        self.breaker.store(breaker);
    }

    /// Marks it ejected or not; returns whether that changed anything.
    pub(crate) fn set_ejected(&self, ejected: bool) -> bool {
        self.set_flag(&self.ejected, ejected)
    }

    /// Marks its breaker open or not; returns whether that changed anything.
    pub(crate) fn set_tripped(&self, tripped: bool) -> bool {
        self.set_flag(&self.tripped, tripped)
    }

    /// Sets a routing flag; a change is published like a health change (the flag first,
    /// then the change counter). Coming back, the latency estimate is forgotten: penalties
    /// earned while failing would keep peak-EWMA from sending it the traffic that proves it
    /// recovered.
    fn set_flag(&self, flag: &AtomicBool, value: bool) -> bool {
        if flag.swap(value, Ordering::AcqRel) == value {
            return false;
        }
        if !value {
            self.latency.forget(Instant::now());
        }
        self.changes.fetch_add(1, Ordering::AcqRel);
        true
    }

    /// What health checks have concluded.
    pub(crate) fn health(&self) -> HealthStatus {
        self.lock_health().status()
    }

    /// Marks it healthy or not, outright (an operator's override; health checks go through
    /// their hysteresis instead). The cluster's routing follows at the next pick.
    #[cfg(test)]
    pub(crate) fn set_healthy(&self, healthy: bool) -> Option<Transition> {
        let status = if healthy {
            HealthStatus::Healthy
        } else {
            HealthStatus::Unhealthy
        };
        self.force_health(status)
    }

    /// Sets the health status outright.
    pub(crate) fn force_health(&self, status: HealthStatus) -> Option<Transition> {
        let mut health = self.lock_health();
        let transition = health.force(status);
        self.publish(transition)
    }

    /// Takes in one health check result, through the hysteresis.
    pub(crate) fn observe_health(
        &self,
        passed: bool,
        thresholds: Thresholds,
    ) -> Option<Transition> {
        let mut health = self.lock_health();
        let transition = health.observe(passed, thresholds);
        self.publish(transition)
    }

    /// Requests it is serving now.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Its latency estimate.
    pub(crate) fn latency(&self) -> &SharedPeakEwma {
        &self.latency
    }

    fn lock_health(&self) -> std::sync::MutexGuard<'_, HealthState> {
        self.health.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes a transition visible: the flag first, then the change counter, so whoever sees
    /// the new count also sees the new flag.
    fn publish(&self, transition: Option<Transition>) -> Option<Transition> {
        if let Some(transition) = transition {
            // NOTE: latency measured before an outage (failure penalties included) says
            // nothing about the endpoint that came back; without forgetting it, peak-EWMA
            // would keep a recovered endpoint idle for as long as the penalty takes to decay.
            if transition.to.is_healthy() && !transition.from.is_healthy() {
                self.latency.forget(Instant::now());
            }
            self.healthy
                .store(transition.to.is_healthy(), Ordering::Release);
            self.changes.fetch_add(1, Ordering::AcqRel);
        }
        transition
    }
}

/// A request's hold on an endpoint: counts it in flight until dropped, and holds the
/// endpoint breaker's permit until the outcome is recorded (dropped unrecorded, the permit
/// counts for nothing, which frees a half-open probe slot).
///
/// Dropped before its attempt finished (a hedge won elsewhere, the client left), it tells
/// the latency estimate that the endpoint took at least the time it was out: a censored
/// sample, which only ever raises the estimate. A hung endpoint whose attempts are all
/// cancelled would otherwise keep the estimate of its last answers, and its share of the
/// traffic. Breakers and outlier detection still hear nothing of it.
#[derive(Debug)]
pub(crate) struct EndpointGuard {
    endpoint: Arc<Endpoint>,
    /// The endpoint's requests in flight as this one was sent, itself included.
    in_flight_at_send: u32,
    /// When the attempt was sent (picked).
    since: Instant,
    /// Whether its attempt finished (answered or failed); unset, the drop is a cancellation.
    finished: bool,
    /// NOTE: a lock only for `&self` access from `Cluster::record_outcome`; one owner, so
    /// never contended (one atomic to take, one to release).
    permit: Option<Mutex<Option<EndpointPermit>>>,
}

impl EndpointGuard {
    #[cfg(test)]
    pub(crate) fn new(endpoint: Arc<Endpoint>) -> Self {
        Self::with_permit(endpoint, None, Instant::now())
    }

    /// A hold taken at `now`, with the breaker's `permit` if it has one.
    pub(crate) fn with_permit(
        endpoint: Arc<Endpoint>,
        permit: Option<EndpointPermit>,
        now: Instant,
    ) -> Self {
        let before = endpoint.in_flight.fetch_add(1, Ordering::Relaxed);
        if before == 0 && endpoint.watches_stalls() {
            endpoint.busy_changed(now);
        }
        Self {
            endpoint,
            in_flight_at_send: u32::try_from(before).unwrap_or(u32::MAX).saturating_add(1),
            since: now,
            finished: false,
            permit: permit.map(|permit| Mutex::new(Some(permit))),
        }
    }

    /// Marks its attempt finished: dropped from now on, it is not a cancellation.
    pub(crate) fn finish(&mut self) {
        self.finished = true;
    }

    /// The breaker permit, once (the outcome is recorded on it).
    pub(crate) fn take_permit(&self) -> Option<EndpointPermit> {
        self.permit
            .as_ref()?
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// The endpoint held.
    pub(crate) fn endpoint(&self) -> &Arc<Endpoint> {
        &self.endpoint
    }

    /// The endpoint's requests in flight as this one was sent, itself included.
    pub(crate) fn in_flight_at_send(&self) -> u32 {
        self.in_flight_at_send
    }
}

impl Drop for EndpointGuard {
    fn drop(&mut self) {
        let endpoint = &self.endpoint;
        // NOTE: the clock is read only for a cancellation or the last request out leaving.
        if !self.finished {
            let now = Instant::now();
            let out_for = now.saturating_duration_since(self.since);
            endpoint.latency.observe_censored(out_for, now);
        }
        if endpoint.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 && endpoint.watches_stalls() {
            endpoint.busy_changed(Instant::now());
        }
    }
}

/// A permit of an endpoint's breaker, recorded once: with the attempt's outcome, or as
/// ignored when dropped unrecorded (so a cancelled probe frees its slot).
#[derive(Debug)]
pub(crate) struct EndpointPermit {
    breaker: SharedBreaker,
    permit: Option<Permit>,
}

impl EndpointPermit {
    pub(crate) fn new(breaker: SharedBreaker, permit: Permit) -> Self {
        Self {
            breaker,
            permit: Some(permit),
        }
    }

    /// Records what the attempt's outcome means to the breaker, at `now`.
    pub(crate) fn record(mut self, outcome: Outcome, now: Instant) {
        if let Some(permit) = self.permit.take() {
            self.breaker.record(permit, outcome, now);
        }
    }
}

impl Drop for EndpointPermit {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            self.breaker
                .record(permit, Outcome::Ignored, Instant::now());
        }
    }
}
