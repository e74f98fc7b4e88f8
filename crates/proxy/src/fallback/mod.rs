//! What a client gets when the upstream cannot answer: a static response, an alternate
//! cluster, or the last good response (stale-if-error); and kill switches.
//!
//! STUB from the skeleton commit: no fallback. The degradation helper builds it.

use http::{Response, request::Parts};

use crate::config::RouteConfig;
use crate::forward::ProxyBody;

/// Why a request is taking its fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FallbackReason {
    /// Every attempt failed.
    Failed,
    /// The cluster's breaker is open (or no endpoint can be tried).
    BreakerOpen,
    /// Admission refused the request (shed or rate limited).
    Shed,
    /// The route's deadline passed.
    Timeout,
    /// The route's kill switch is on.
    KillSwitch,
}

/// A route's fallback state.
#[derive(Debug, Default)]
pub struct RouteFallback {}

impl RouteFallback {
    /// The state for `config`, keeping what is still valid of `previous`.
    pub fn new(_config: &RouteConfig, _previous: Option<&RouteFallback>) -> Self {
        Self {}
    }

    /// Whether the route's kill switch is on: every request takes the fallback.
    pub fn killed(&self) -> bool {
        false
    }

    /// The fallback response for a request that could not be served, if the route has one
    /// for `reason`. `None`: the client gets the proxy's error.
    pub async fn serve(
        &self,
        _reason: FallbackReason,
        _request: &Parts,
        _context: &crate::pipeline::Context<'_>,
    ) -> Option<(Response<ProxyBody>, &'static str)> {
        None
    }

    /// Sees every response the upstream gave (for the stale-if-error cache) and returns it,
    /// possibly with a body that copies what it streams.
    pub fn observe(&self, _request: &Parts, response: Response<ProxyBody>) -> Response<ProxyBody> {
        response
    }
}
