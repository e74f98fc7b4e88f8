//! Whether a request may start at all: rate limits, priorities, bulkheads and adaptive
//! concurrency limits, per route and per cluster.
//!
//! A request meets, in order: its route's rate limit ([`ratelimit`]; 429 with the GCRA's
//! `Retry-After`), then its route's concurrency limit, then (in the pipeline, once the
//! cluster's breaker let it through) its cluster's concurrency limit, which the cluster
//! holds ([`ClusterAdmission`](crate::cluster::ClusterAdmission)). Each concurrency limit
//! is a [`Bulkhead`](blastwall_policy::bulkhead::Bulkhead) or an
//! [`AdaptiveLimiter`](blastwall_policy::concurrency::AdaptiveLimiter) with a priority queue
//! on top (`cluster::limiter`, rules in `cluster::limiter::queue`: state that requests
//! share, so it stands in the state layer, below this stage); a refusal is 503 `shed` with
//! `Retry-After`.
//!
//! # Why per route and per cluster
//!
//! A route's limit is its bulkhead: a slow dependency fills only the slots of the routes
//! that call it, never the proxy's capacity for other routes. A cluster's limit protects
//! the upstream from all routes together, and an adaptive one follows what the upstream can
//! take: overload answers (503 / 429) and timeouts bring it down, AIMD-style.
//!
//! # Priorities
//!
//! A request's priority is its route's (`priority`, default normal), or the value of the
//! `[proxy] priority_header` when the client is in `trusted_clients`. See
//! `cluster::limiter::queue` for how
//! priorities share a limit; in short, lower priorities are shed first and can never take
//! the capacity kept for higher ones.
//!
//! # Reloads
//!
//! A reload that leaves a `concurrency` or `rate_limit` section unchanged keeps its state
//! (slots held, queue, learnt limit, client keys); the counters always survive.

mod body;
mod ratelimit;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header;
use http::request::Parts;

pub(crate) use self::body::hold_until_body_end;
use self::ratelimit::RouteRateLimit;
use crate::body::ProxyBody;
use crate::cluster::limiter::queue::ShedReason;
use crate::cluster::limiter::{LimitPermit, Limiter};
use crate::cluster::{ClusterShed, ConcurrencyPermit};
use crate::config::RouteConfig;
use crate::config::admission::{Priority, RouteAdmissionConfig};
use crate::counters::AdmissionStats;
use crate::error::{ProxyError, error_response};
use crate::forward::Downstream;
use crate::headers::retry_after_value;
use crate::outcome::AttemptOutcome;

/// What a shed client is told to wait: slots free up within a request's time, so soon.
const SHED_RETRY_AFTER: Duration = Duration::from_secs(1);

/// A route's admission state.
#[derive(Debug, Default)]
pub(crate) struct RouteAdmission {
    name: String,
    config: RouteAdmissionConfig,
    concurrency: Option<Arc<Limiter>>,
    rate_limit: Option<Arc<RouteRateLimit>>,
    stats: Arc<AdmissionStats>,
}

impl RouteAdmission {
    /// The state for `config`, keeping what is still valid of `previous`: the limiter and
    /// the rate limit whose sections did not change, and the counters.
    pub(crate) fn new(config: &RouteConfig, previous: Option<&RouteAdmission>) -> Self {
        let admission = &config.admission;
        let stats = previous.map_or_else(Default::default, |previous| previous.stats.clone());
        let concurrency = admission.concurrency.as_ref().map(|wanted| {
            previous
                .and_then(|previous| previous.concurrency.as_ref())
                .filter(|kept| kept.config() == wanted)
                .cloned()
                .unwrap_or_else(|| Arc::new(Limiter::new(wanted.clone(), stats.clone())))
        });
        let rate_limit = admission.rate_limit.as_ref().map(|wanted| {
            previous
                .and_then(|previous| previous.rate_limit.as_ref())
                .filter(|kept| kept.config() == wanted)
                .cloned()
                .unwrap_or_else(|| Arc::new(RouteRateLimit::new(wanted.clone())))
        });
        Self {
            name: config.name.clone(),
            config: admission.clone(),
            concurrency,
            rate_limit,
            stats,
        }
    }

    /// Admits a request or refuses it; the permit is held until the response is complete.
    pub(crate) async fn admit(
        &self,
        parts: &Parts,
        downstream: Downstream,
    ) -> Result<AdmissionPermit, Refusal> {
        self.admit_at(parts, downstream, Instant::now()).await
    }

    /// [`admit`](Self::admit) at a given time (for tests; the queue timeout still runs on
    /// Tokio's clock).
    pub(crate) async fn admit_at(
        &self,
        parts: &Parts,
        downstream: Downstream,
        now: Instant,
    ) -> Result<AdmissionPermit, Refusal> {
        if let Some(rate_limit) = &self.rate_limit
            && let Err(limited) =
                rate_limit.check(&parts.headers, downstream.peer.ip(), now, &self.stats)
        {
            self.stats.rate_limited.increment();
            return Err(Refusal {
                error: ProxyError::RateLimited,
                retry_after: Some(limited.retry_after),
                reason: format!("route \"{}\" is over its rate limit", self.name),
            });
        }
        let priority = self.priority(parts, downstream);
        let route = match &self.concurrency {
            None => None,
            Some(limiter) => Some(
                limiter
                    .acquire(priority, now)
                    .await
                    .map_err(|reason| Refusal::shed("route", &self.name, priority, reason))?,
            ),
        };
        Ok(AdmissionPermit {
            priority,
            route,
            cluster: None,
        })
    }

    /// The request's priority: the header's, from a trusted client, else the route's.
    pub(crate) fn priority(&self, parts: &Parts, downstream: Downstream) -> Priority {
        let trust = &self.config.trust;
        if !trust.trusted.is_empty()
            && let Some(value) = parts.headers.get(&trust.header)
            && trust.trusts(downstream.peer.ip())
            && let Some(priority) = Priority::from_header(value.as_bytes())
        {
            return priority;
        }
        self.config.priority
    }

    /// What admission decided so far.
    pub(crate) fn stats(&self) -> &Arc<AdmissionStats> {
        &self.stats
    }

    /// The concurrency limit now, requests holding a slot, and requests waiting; `None`
    /// without a `concurrency` section.
    pub(crate) fn concurrency(&self) -> Option<(u32, u32, usize)> {
        self.concurrency
            .as_ref()
            .map(|limiter| (limiter.limit(), limiter.in_flight(), limiter.queued()))
    }
}

/// Held while an admitted request is in progress (body included): its route's slot and,
/// once [held](Self::hold), its cluster's.
///
/// Tell it what the request came to with [`observe`](Self::observe), so adaptive limits
/// learn; attach it to the response with [`hold_until_body_end`].
#[derive(Debug)]
pub(crate) struct AdmissionPermit {
    priority: Priority,
    route: Option<LimitPermit>,
    cluster: Option<LimitPermit>,
}

impl AdmissionPermit {
    /// The request's priority, as admission decided it.
    pub(crate) fn priority(&self) -> Priority {
        self.priority
    }

    /// Holds the cluster's slot too, released with this permit.
    pub(crate) fn hold(&mut self, cluster: ConcurrencyPermit) {
        self.cluster = cluster.0;
    }

    /// What the request came to (its last attempt's outcome) and when its response head
    /// arrived: adaptive limits learn latency from it, and lower the limit on overload
    /// (503 / 429 from the upstream) or a timeout.
    pub(crate) fn observe(&mut self, outcome: AttemptOutcome, at: Instant) {
        for permit in [&mut self.route, &mut self.cluster].into_iter().flatten() {
            permit.observe(outcome, at);
        }
    }

    /// Whether it holds any slot (otherwise there is nothing to hold until the body ends).
    pub(crate) fn holds_slots(&self) -> bool {
        self.route.is_some() || self.cluster.is_some()
    }
}

/// Why a request was not admitted.
#[derive(Debug, Clone)]
pub(crate) struct Refusal {
    /// [`ProxyError::Shed`] or [`ProxyError::RateLimited`].
    pub error: ProxyError,
    /// When the client may try again, sent as `Retry-After`.
    pub retry_after: Option<Duration>,
    /// One line for the client and the log.
    pub reason: String,
}

impl Refusal {
    fn shed(owner: &str, name: &str, priority: Priority, reason: ShedReason) -> Self {
        Refusal {
            error: ProxyError::Shed,
            retry_after: Some(SHED_RETRY_AFTER),
            reason: reason.explain(owner, name, priority),
        }
    }

    /// The response a client gets: 503 `shed` or 429 `rate_limited`, with `Retry-After`.
    pub(crate) fn into_response(self) -> http::Response<ProxyBody> {
        let mut response = error_response(self.error, &self.reason);
        if let Some(retry_after) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, retry_after_value(retry_after));
        }
        response
    }
}

impl From<ClusterShed> for Refusal {
    fn from(shed: ClusterShed) -> Self {
        Refusal {
            error: ProxyError::Shed,
            retry_after: Some(SHED_RETRY_AFTER),
            reason: shed.reason,
        }
    }
}
