//! What a client gets when the route's cluster cannot answer, and kill switches.
//!
//! A route's `[route.fallback]` names the failures it covers (`on`) and what may answer in
//! the cluster's place. When several are given they are tried in this order, and the first
//! that answers wins:
//!
//! 1. the **stale-if-error cache** ([`stale`]): the last good response for the URL, if it is
//!    still within its window (the most faithful answer: what the upstream itself said),
//!    and only when the cluster really failed or the kill switch is on
//!    ([`FallbackReason::cluster_failed`], which counts the cluster's own concurrency limit
//!    refusing a request: a saturated cluster): never for a request the route's own limits
//!    shed, whose own deadline ran out, or that the application answered with a 500 of its
//!    own, which any client can arrange while the cluster answers;
//! 2. the **alternate cluster** ([`alternate`]): one attempt against another cluster
//!    (requests without a body only, until bodies are kept replayable);
//! 3. the **static response** ([`static_response`]): always answers.
//!
//! The kind that answered ([`FallbackKind`]) goes into the request's record, and the response
//! carries `x-blastwall-fallback: stale | cluster | static` when the proxy's decisions are
//! shown (`proxy.decision_headers`; written by the pipeline from the record). The **kill
//! switch** ([`kill_switch`]) sends every request to this path at once, without touching the
//! cluster; with nothing to answer, the client gets 503 `kill_switch`.
//!
//! The live state here (the cache, the switch, the counters) outlives a reload that keeps the
//! route: see [`RouteFallback::new`].

mod alternate;
mod kill_switch;
mod stale;
mod static_response;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use http::{Response, StatusCode, request::Parts};

use self::kill_switch::KillSwitch;
use self::stale::StaleCache;
use crate::body::ProxyBody;
use crate::cluster::{Cluster, ClusterPermit};
use crate::config::RouteConfig;
use crate::config::fallback::{FallbackConfig, FallbackReason};
use crate::counters::FallbackStats;
use crate::record::FallbackKind;

/// What the upstream's answer to a request may depend on besides the request's head: part
/// of the stale cache's key, with the method, host, target and the headers `Vary` names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Provenance {
    /// Whether the client came over TLS (the upstream hears it in `X-Forwarded-Proto`).
    pub tls: bool,
    /// Whether the request carries forwarding headers (`X-Forwarded-Host`, `-Port`,
    /// `-Prefix`, `Forwarded`) that travel upstream: only a trusted client's do.
    pub forwarded: bool,
}

/// What a fallback reads of the request it answers in its cluster's place.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FallbackRequest<'a> {
    /// The request's head.
    pub parts: &'a Parts,
    /// Its route's fallback config.
    pub config: &'a FallbackConfig,
    /// What the upstream's answer depends on besides the head (part of the stale cache's key).
    pub provenance: Provenance,
    /// Whether it has no body, so it can be sent again as it is (to the alternate cluster).
    pub body_empty: bool,
    /// The clusters in force, the alternate cluster among them.
    pub clusters: &'a [Arc<Cluster>],
}

/// What one attempt came to: the response (`Err`: the error response, the upstream's or the
/// proxy's), its outcome, and the cluster breaker's permit unless the attempt took it along
/// with a body still to come.
pub(crate) type Attempted = (
    Result<Response<ProxyBody>, Response<ProxyBody>>,
    crate::outcome::AttemptOutcome,
    Option<ClusterPermit>,
);

/// One attempt against a cluster, sent as the pipeline sends the route's own: given the
/// cluster, the request's head, a body and the cluster breaker's permit, what it came to.
pub(crate) trait Attempt<F: Future<Output = Attempted>>:
    FnOnce(Arc<Cluster>, Parts, ProxyBody, Option<ClusterPermit>) -> F
{
}

impl<A, F> Attempt<F> for A
where
    A: FnOnce(Arc<Cluster>, Parts, ProxyBody, Option<ClusterPermit>) -> F,
    F: Future<Output = Attempted>,
{
}

/// Whether an upstream's answer with this status is a failure the fallback covers: the
/// statuses RFC 5861 counts as errors for `stale-if-error` (500, 502, 503, 504).
pub(crate) fn is_failure_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 500 | 502 | 503 | 504)
}

/// No route of that name is in force.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no route named \"{0}\" is in force")]
pub struct UnknownRoute(pub String);

/// A route's fallback state.
#[derive(Debug)]
pub(crate) struct RouteFallback {
    kill_switch: KillSwitch,
    stale: Option<Arc<StaleCache>>,
    stats: Arc<FallbackStats>,
}

impl Default for RouteFallback {
    fn default() -> Self {
        Self {
            kill_switch: KillSwitch::new(false, None),
            stale: None,
            stats: Arc::default(),
        }
    }
}

impl RouteFallback {
    /// The state for `config`, keeping what is still valid of `previous`: the counters; the
    /// stale cache and its entries when the route still has one (its new limits applied at
    /// once); the kill switch as [`kill_switch`] says.
    pub(crate) fn new(config: &RouteConfig, previous: Option<&RouteFallback>) -> Self {
        let fallback = &config.fallback;
        let stats = previous.map_or_else(Arc::default, |previous| previous.stats.clone());
        let stale = fallback.stale_if_error.map(|limits| {
            match previous.and_then(|previous| previous.stale.clone()) {
                Some(cache) => {
                    cache.reconfigure(limits);
                    cache
                }
                None => Arc::new(StaleCache::new(limits, stats.clone())),
            }
        });
        if stale.is_none() {
            stats.cache_entries.set(0);
            stats.cache_bytes.set(0);
        }
        Self {
            kill_switch: KillSwitch::new(
                fallback.kill_switch,
                previous.map(|previous| &previous.kill_switch),
            ),
            stale,
            stats,
        }
    }

    /// Whether the route's kill switch is on: every request takes the fallback.
    pub(crate) fn killed(&self) -> bool {
        self.kill_switch.is_on()
    }

    /// Turns the route's kill switch on or off at run time. It stays so across reloads that
    /// do not change the route's `kill_switch` key (see [`kill_switch`]).
    pub(crate) fn set_kill_switch(&self, on: bool) {
        self.kill_switch.set(on);
    }

    /// What the route's fallbacks and stale cache did.
    pub(crate) fn stats(&self) -> &Arc<FallbackStats> {
        &self.stats
    }

    /// The fallback response for a request that could not be served, if the route has one
    /// for `reason`, with the kind that answered. `None`: the client gets the proxy's error.
    /// `attempt` sends one attempt to a cluster (the alternate), as the pipeline sends them.
    pub(crate) async fn serve<F: Future<Output = Attempted>>(
        &self,
        reason: FallbackReason,
        request: FallbackRequest<'_>,
        attempt: impl Attempt<F>,
    ) -> Option<(Response<ProxyBody>, FallbackKind)> {
        let config = request.config;
        let answer = if config.on.contains(reason) {
            self.answer(reason, &request, attempt).await
        } else {
            None
        };
        match &answer {
            Some((_, kind)) => self.stats.served(*kind).increment(),
            None if reason == FallbackReason::KillSwitch => self.stats.killed.increment(),
            None if config.has_fallback() && config.on.contains(reason) => {
                self.stats.unserved.increment();
            }
            None => {}
        }
        answer
    }

    /// The first fallback that answers, in the order of the module doc.
    async fn answer<F: Future<Output = Attempted>>(
        &self,
        reason: FallbackReason,
        request: &FallbackRequest<'_>,
        attempt: impl Attempt<F>,
    ) -> Option<(Response<ProxyBody>, FallbackKind)> {
        let config = request.config;
        if let Some(cache) = &self.stale
            && (reason.cluster_failed() || reason == FallbackReason::KillSwitch)
            && let Some(response) = cache.lookup(request.parts, request.provenance, Instant::now())
        {
            return Some((response, FallbackKind::Stale));
        }
        if let Some(cluster) = config.cluster
            && let Some(response) = alternate::serve(request, cluster, attempt).await
        {
            return Some((response, FallbackKind::Cluster));
        }
        let response = static_response::response(config.static_response.as_ref()?);
        Some((response, FallbackKind::Static))
    }

    /// Sees every response the upstream gave (for the stale-if-error cache) and returns it,
    /// possibly with a body that copies what it streams.
    pub(crate) fn observe(
        &self,
        request: &Parts,
        provenance: Provenance,
        response: Response<ProxyBody>,
    ) -> Response<ProxyBody> {
        match &self.stale {
            Some(cache) => cache.capture(request, provenance, response, Instant::now()),
            None => response,
        }
    }
}

#[cfg(test)]
mod tests;
