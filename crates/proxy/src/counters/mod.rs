//! The proxy's counters: what it decided and what its requests came to, per route and per
//! cluster, in one place.
//!
//! Plain relaxed atomics, one field per counter: the request path only adds, and readers
//! (the admin API, the Prometheus exposition in [`crate::metrics`], tests) only load, so no
//! ordering between counters is promised or needed. They live on [`crate::live::LiveRoute`]
//! and [`crate::cluster::Cluster`], so they survive a reload exactly when the route or
//! cluster does.
//!
//! Nothing is counted twice: the mechanisms add to their own counters here, and the request
//! path adds only what no mechanism keeps: each request's duration, its status class and an
//! in-flight gauge on the route's [`RouteStats`] ([`request_started`], [`record_request`]),
//! and each attempt's duration on the cluster's; a few relaxed atomic adds per request, no
//! lock, no allocation (see [`histogram`]).

pub(crate) mod histogram;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::StatusCode;

pub(crate) use self::histogram::{Histogram, InFlight, StatusClasses};
use crate::record::{FallbackKind, FaultKind};

/// One monotonically increasing counter.
#[derive(Debug, Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub(crate) fn increment(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n`.
    pub(crate) fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The count so far.
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down (a size, a queue's depth, a limit), last written wins.
#[derive(Debug, Default)]
pub(crate) struct Gauge(AtomicU64);

impl Gauge {
    /// Sets the value.
    pub(crate) fn set(&self, value: u64) {
        self.0.store(value, Ordering::Relaxed);
    }

    /// The value now.
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// What a route's fallbacks and stale-if-error cache did. Kept on
/// [`crate::fallback::RouteFallback`] (see `RouteFallback::stats`), across reloads that keep
/// the route.
#[derive(Debug, Default)]
pub(crate) struct FallbackStats {
    /// Requests answered from the stale-if-error cache.
    pub served_stale: Counter,
    /// Requests answered by the alternate cluster.
    pub served_cluster: Counter,
    /// Requests answered with the static response.
    pub served_static: Counter,
    /// Requests that wanted a fallback (the reason is one the route takes) but nothing could
    /// answer: they got the proxy's error.
    pub unserved: Counter,
    /// Requests answered 503 `kill_switch` because the switch is on and nothing else answered.
    pub killed: Counter,
    /// Stale cache look-ups that found a response it may serve.
    pub stale_hits: Counter,
    /// Stale cache look-ups that found none (absent, another variant, or too old).
    pub stale_misses: Counter,
    /// Responses stored (or refreshed) in the stale cache.
    pub stale_stored: Counter,
    /// Responses dropped from the stale cache to stay within its limits.
    pub stale_evicted: Counter,
    /// Cacheable responses not stored because their body was over `max_body`, or the bodies
    /// being copied were over `max_bytes`.
    pub stale_too_large: Counter,
    /// Responses in the stale cache now.
    pub cache_entries: Gauge,
    /// Bytes the stale cache holds now (bodies, headers and keys).
    pub cache_bytes: Gauge,
}

impl FallbackStats {
    /// The counter of requests served by the fallback of this kind.
    pub(crate) fn served(&self, kind: FallbackKind) -> &Counter {
        match kind {
            FallbackKind::Stale => &self.served_stale,
            FallbackKind::Cluster => &self.served_cluster,
            FallbackKind::Static => &self.served_static,
        }
    }
}

/// What happened to a route's requests.
#[derive(Debug, Default)]
pub(crate) struct RouteStats {
    /// Requests the route took.
    pub requests: Counter,
    /// Attempts after the first (retries), over all requests.
    pub retries: Counter,
    /// Hedged copies sent.
    pub hedges: Counter,
    /// Retries or hedges refused because the cluster's retry budget was spent.
    pub budget_exhausted: Counter,
    /// Requests that ran out of their deadline.
    pub deadline_exceeded: Counter,
    /// Requests a fault rule delayed.
    pub faults_delayed: Counter,
    /// Requests a fault rule answered in the upstream's place.
    pub faults_aborted: Counter,
    /// Requests (or attempts) whose upstream connection a fault rule reset.
    pub faults_reset: Counter,
    /// Requests (or attempts) whose upstream a fault rule closed before any answer.
    pub faults_closed: Counter,
    /// Requests (or attempts) whose answer's body a fault rule cut off after its head.
    pub faults_truncated: Counter,
    /// Requests (or attempts) whose answer's body a fault rule throttled.
    pub faults_throttled: Counter,
    /// Attempts that failed on an endpoint a fault rule took down.
    pub faults_endpoint_down: Counter,
    /// Responses by status class (see [`record_request`]).
    pub responses: StatusClasses,
    /// Time from routing to the response headers.
    pub duration: Histogram,
    /// Requests routed and not yet answered.
    pub in_flight: InFlight,
}

impl RouteStats {
    /// The counter of faults of this kind.
    pub(crate) fn fault(&self, kind: FaultKind) -> &Counter {
        match kind {
            FaultKind::Delay => &self.faults_delayed,
            FaultKind::Abort => &self.faults_aborted,
            FaultKind::Reset => &self.faults_reset,
            FaultKind::CloseBeforeHead => &self.faults_closed,
            FaultKind::CloseAfterHead => &self.faults_truncated,
            FaultKind::Throttle => &self.faults_throttled,
            FaultKind::EndpointDown => &self.faults_endpoint_down,
        }
    }
}

/// What happened to a cluster's requests.
#[derive(Debug, Default)]
pub(crate) struct ClusterStats {
    /// Attempts sent to the cluster's endpoints.
    pub attempts: Counter,
    /// Attempts that failed (any outcome but success or overload), those whose body failed
    /// included.
    pub attempt_failures: Counter,
    /// Attempts whose head said success but whose body then failed: cut short, stalled past
    /// `body_read_timeout`, malformed, or reset (never a client that stopped reading).
    pub attempt_body_failures: Counter,
    /// Attempts answered with overload (503 / 429).
    pub overloaded: Counter,
    /// Times the cluster's breaker opened (from closed or half-open).
    pub breaker_opened: Counter,
    /// Times the cluster's breaker closed again after probes succeeded.
    pub breaker_closed: Counter,
    /// Requests refused at once because the cluster's breaker was open (or its half-open
    /// probes were all taken).
    pub fast_failures: Counter,
    /// Times an endpoint's breaker opened.
    pub endpoint_breaker_opened: Counter,
    /// Times an endpoint's breaker closed again.
    pub endpoint_breaker_closed: Counter,
    /// Endpoints ejected by outlier detection.
    pub ejections: Counter,
    /// Ejections that ended (the endpoint takes traffic again).
    pub ejections_ended: Counter,
    /// Ejections refused because the cap (`max_ejection_percent`, the panic threshold, the
    /// last endpoint) was reached: the cluster may be failing as a whole.
    pub ejections_suppressed: Counter,
    /// Endpoints stalled: busy, and silent for `stall_after`.
    pub stalls: Counter,
    /// Stalled endpoints that answered again.
    pub stalls_ended: Counter,
    /// Stalls refused because the cap was reached (once per silent spell).
    pub stalls_suppressed: Counter,
    /// Recent breaker, ejection and health events, for the admin API.
    pub events: crate::events::EventLog,
    /// Duration of each attempt against an endpoint.
    pub attempt_duration: Histogram,
}

/// What admission decided for a route or a cluster (see [`crate::admission`]). Owned by the
/// route's or cluster's admission state, and carried over by reloads that keep it.
#[derive(Debug, Default)]
pub(crate) struct AdmissionStats {
    /// Requests admitted.
    pub admitted: Counter,
    /// Requests shed with 503, for any of the reasons below.
    pub shed: Counter,
    /// Shed because every slot its priority may use was taken and the queue was full (or
    /// there is no queue).
    pub queue_full: Counter,
    /// Shed at once because the queue ahead of it could not be served within the queue
    /// timeout at the current pace.
    pub queue_hopeless: Counter,
    /// Shed after waiting the whole queue timeout.
    pub queue_timeout: Counter,
    /// Shed from the queue to make room for a higher-priority request.
    pub displaced: Counter,
    /// Refused with 429 by the rate limit.
    pub rate_limited: Counter,
    /// Requests waiting in the queue now.
    pub queued: Gauge,
    /// The concurrency limit now (moves with an adaptive limit).
    pub limit: Gauge,
    /// Client keys the rate limit tracks now.
    pub rate_limit_keys: Gauge,
}

/// A routed request being served: counted in flight until it is recorded or dropped (a
/// client that goes away drops the request's future).
#[derive(Debug)]
#[must_use = "record the request with `record_request` when its response is ready"]
pub(crate) struct RequestInFlight<'a> {
    stats: &'a RouteStats,
    started: Instant,
}

/// Starts counting a request of the route whose counters are `stats`.
pub(crate) fn request_started(stats: &RouteStats) -> RequestInFlight<'_> {
    stats.in_flight.enter();
    RequestInFlight {
        stats,
        started: Instant::now(),
    }
}

/// Records a request's response: its status class and its duration (to the response
/// headers; a streaming body may go on), which it returns for the access log.
pub(crate) fn record_request(request: RequestInFlight<'_>, status: StatusCode) -> Duration {
    let duration = request.started.elapsed();
    request.stats.responses.record(status);
    request.stats.duration.observe(duration);
    duration
}

impl RequestInFlight<'_> {
    /// When the request started: the instant telemetry tells its arrival from, so that a
    /// request reads the clock once for both.
    pub(crate) fn started(&self) -> Instant {
        self.started
    }
}

impl Drop for RequestInFlight<'_> {
    fn drop(&mut self) {
        self.stats.in_flight.leave();
    }
}
