//! The path of one request through the resilience mechanisms, in the order they apply.
//!
//! ```text
//! kill switch → admission (rate limit, shedding, bulkhead) → cluster breaker
//!   → attempts (pick, per-try timeout, send, judge, retry / hedge) → fallback → response
//! ```
//!
//! Each mechanism lives in its own module ([`crate::admission`], [`crate::fallback`], the
//! cluster's breakers and outlier detection); this module only decides the order and carries
//! the request between them, so a reader sees in one place what happens to a request.

mod outcome;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Body;

pub use self::outcome::AttemptOutcome;
use crate::cluster::Cluster;
use crate::config::{RouteConfig, UpstreamProtocol};
use crate::fallback::FallbackReason;
use crate::forward::{
    self, BoxError, Downstream, ProxyBody, ProxyError, error_response, with_request_id,
};
use crate::live::LiveRoute;
use crate::reload::Snapshot;

/// The header naming which fallback answered, when one did.
pub const FALLBACK_HEADER: http::HeaderName = http::HeaderName::from_static("x-blastwall-fallback");

/// What every stage may need to know about the request being served.
#[derive(Debug)]
pub struct Context<'a> {
    /// Who sent it.
    pub downstream: Downstream,
    /// The config in force for it.
    pub snapshot: &'a Snapshot,
    /// Its route.
    pub route: &'a RouteConfig,
    /// Its route's live state.
    pub live: &'a LiveRoute,
    /// Its route's cluster.
    pub cluster: &'a Arc<Cluster>,
    /// Its request id.
    pub request_id: HeaderValue,
    /// Whether the request has no body, so it can be sent again as it is (by a fallback).
    pub request_body_empty: bool,
}

/// Serves a routed request: every stage above, and the response the client gets.
pub async fn serve<B>(
    downstream: Downstream,
    snapshot: &Snapshot,
    route_index: usize,
    request: Request<B>,
) -> Response<ProxyBody>
where
    B: Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    let (mut parts, body) = request.into_parts();
    let request_id = forward::ensure_request_id(&mut parts.headers);
    let route = &snapshot.config.routes[route_index];
    let context = Context {
        downstream,
        snapshot,
        route,
        live: &snapshot.routes[route_index],
        cluster: &snapshot.clusters[route.cluster],
        request_id,
        request_body_empty: body.is_end_stream(),
    };
    context.live.stats.requests.increment();
    let response = serve_routed(&context, parts, body.map_err(Into::into).boxed()).await;
    with_request_id(response, &context.request_id)
}

async fn serve_routed(
    context: &Context<'_>,
    parts: http::request::Parts,
    body: ProxyBody,
) -> Response<ProxyBody> {
    let fallback = &context.live.fallback;
    if fallback.killed() {
        return fall_back(
            context,
            FallbackReason::KillSwitch,
            &parts,
            error_response(ProxyError::KillSwitch, "the route's kill switch is on"),
        )
        .await;
    }
    let _admitted = match context
        .live
        .admission
        .admit(&parts, context.downstream)
        .await
    {
        Ok(permit) => permit,
        Err(refusal) => {
            let mut response = error_response(refusal.error, &refusal.reason);
            if let Some(retry_after) = refusal.retry_after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, retry_after_value(retry_after));
            }
            return fall_back(context, FallbackReason::Shed, &parts, response).await;
        }
    };
    let cluster = context.cluster;
    let permit = match cluster.admit(Instant::now()) {
        Ok(permit) => permit,
        Err(open) => {
            let mut response = error_response(
                ProxyError::BreakerOpen,
                &format!(
                    "the circuit breaker of cluster \"{}\" is open",
                    cluster.name()
                ),
            );
            if let Some(retry_after) = open.retry_after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, retry_after_value(retry_after));
            }
            return fall_back(context, FallbackReason::BreakerOpen, &parts, response).await;
        }
    };
    let (result, outcome) = attempt(context, cluster, parts.clone(), body).await;
    permit.record(outcome, Instant::now());
    match result {
        Ok(response) if crate::fallback::is_failure_status(response.status()) => {
            fall_back(context, FallbackReason::Failed, &parts, response).await
        }
        Ok(response) => fallback.observe(&parts, response),
        Err(response) => fall_back(context, FallbackReason::Failed, &parts, response).await,
    }
}

/// One attempt against one endpoint of `cluster`: the response (or the proxy's error
/// response) and what it says about the endpoint.
pub async fn attempt(
    context: &Context<'_>,
    cluster: &Cluster,
    parts: http::request::Parts,
    body: ProxyBody,
) -> (
    Result<Response<ProxyBody>, Response<ProxyBody>>,
    AttemptOutcome,
) {
    let Some(guard) = cluster.pick_avoiding(&parts, &[]) else {
        return (
            Err(error_response(
                ProxyError::NoHealthyEndpoint,
                &format!(
                    "no endpoint of cluster \"{}\" can take requests",
                    cluster.name()
                ),
            )),
            AttemptOutcome::Cancelled,
        );
    };
    let http2 = cluster.config().protocol == UpstreamProtocol::Http2;
    let Some(upstream) = forward::upstream_request(
        context.downstream,
        context.route,
        &guard,
        http2,
        parts,
        body,
    ) else {
        return (
            Err(error_response(
                ProxyError::BadRequest,
                "the request target cannot be forwarded",
            )),
            AttemptOutcome::Cancelled,
        );
    };
    let endpoint = guard.endpoint().clone();
    let started = Instant::now();
    let timeout = cluster.config().request_timeout;
    let sent = tokio::time::timeout(timeout, cluster.client().send(upstream)).await;
    let now = Instant::now();
    let latency = now.saturating_duration_since(started);
    let (result, outcome) = match sent {
        Ok(Ok(response)) => {
            let outcome = AttemptOutcome::of_status(response.status(), None);
            cluster.record_outcome(&guard, outcome, latency, now);
            (
                Ok(forward::downstream_response(context.route, response, guard)),
                outcome,
            )
        }
        Ok(Err(error)) => {
            let outcome = AttemptOutcome::of_failure(error.kind());
            cluster.record_outcome(&guard, outcome, latency, now);
            let kind = if error.kind().never_processed() {
                ProxyError::ConnectFailed
            } else {
                ProxyError::UpstreamReset
            };
            tracing::debug!(cluster = cluster.name(), endpoint = %endpoint.address(), %error, "upstream request failed");
            let detail = format!(
                "endpoint {} of cluster \"{}\": {error}",
                endpoint.address(),
                cluster.name()
            );
            (Err(error_response(kind, &detail)), outcome)
        }
        Err(_) => {
            let outcome = AttemptOutcome::Timeout;
            cluster.record_outcome(&guard, outcome, latency, now);
            let detail = format!(
                "endpoint {} of cluster \"{}\" did not answer within {timeout:?}",
                endpoint.address(),
                cluster.name(),
            );
            (
                Err(error_response(ProxyError::UpstreamTimeout, &detail)),
                outcome,
            )
        }
    };
    (result, outcome)
}

/// The route's fallback for `reason` if it has one, marked with [`FALLBACK_HEADER`];
/// otherwise `error`.
async fn fall_back(
    context: &Context<'_>,
    reason: FallbackReason,
    parts: &http::request::Parts,
    error: Response<ProxyBody>,
) -> Response<ProxyBody> {
    match context.live.fallback.serve(reason, parts, context).await {
        Some((mut response, kind)) => {
            response
                .headers_mut()
                .insert(FALLBACK_HEADER, HeaderValue::from_static(kind));
            response
        }
        None => error,
    }
}

/// A `Retry-After` value in whole seconds, rounded up (a client told 0 would retry at once).
pub fn retry_after_value(delay: std::time::Duration) -> HeaderValue {
    let seconds = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
    HeaderValue::from(seconds.max(1))
}
