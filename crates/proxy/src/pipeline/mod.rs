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

mod attempts;
mod body;
mod deadline;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::Response;
use http::header::{self, HeaderValue};
use http_body_util::BodyExt;
use hyper::body::Body;

pub use self::attempts::{idempotency, retry_after};
pub use self::body::{RequestBody, Upload, UploadState};
pub use self::deadline::{BadDeadline, Deadline};
use crate::admission;
use crate::body::{BoxError, ProxyBody};
use crate::cluster::{Cluster, ClusterPermit};
use crate::config::admission::Priority;
use crate::config::{DecisionHeaders, RouteConfig};
use crate::counters;
use crate::error::{ProxyError, error_response};
use crate::fallback::{FallbackReason, Provenance};
use crate::forward::{self, Downstream, with_request_id};
use crate::headers::{FALLBACK_HEADER, retry_after_value};
use crate::live::LiveRoute;
use crate::outcome::{AttemptOutcome, ClientCause};
use crate::record::Record;
use crate::reload::Snapshot;
use crate::telemetry::RequestNames;

/// The header saying how many attempts a request took, hedges included.
pub const ATTEMPTS_HEADER: http::HeaderName = http::HeaderName::from_static("x-blastwall-attempts");

/// A request carrying this header gets decision headers under `decision_headers = "on_request"`.
pub const DEBUG_HEADER: http::HeaderName = http::HeaderName::from_static("x-blastwall-debug");

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
    /// Which of the headers the proxy reads it has.
    pub(crate) seen: forward::Seen,
    /// Whether the request has no body, so it can be sent again as it is (by a fallback).
    pub request_body_empty: bool,
    /// Its trace, when tracing is on.
    pub trace: Option<crate::telemetry::span::RequestTrace>,
    /// Whether its response says what the proxy decided (`proxy.decision_headers`).
    pub decision_headers: bool,
}

/// Serves a routed request: every stage above, and the response the client gets.
pub async fn serve<B>(
    downstream: Downstream,
    snapshot: Arc<Snapshot>,
    route_index: usize,
    (mut parts, body): (http::request::Parts, B),
) -> Response<ProxyBody>
where
    B: Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    // metrics: in flight until answered, then its duration and status class.
    let in_flight = counters::request_started(&snapshot.routes[route_index].stats);
    let route = &snapshot.config.routes[route_index];
    let mut seen = forward::Seen::of(
        &parts.headers,
        &snapshot.config.proxy.deadline_header,
        &route.admission.trust.header,
        &DEBUG_HEADER,
    );
    // Forwarding headers name the site the upstream answers for: only a trusted client's
    // travel on (see `headers::forwarding::FORWARDING`); from here on `seen.forwarded` means those.
    if seen.forwarded && !route.admission.trust.trusts(downstream.peer.ip()) {
        crate::headers::forwarding::remove_forwarding(&mut parts.headers);
        seen.forwarded = false;
    }
    let request_id = forward::ensure_request_id(&mut parts.headers, seen.request_id);
    // telemetry: arrival (the metrics' instant) and trace, `None` at no cost when off.
    let (started, trace) = snapshot
        .telemetry
        .start(&mut parts.headers, in_flight.started());
    let method = parts.method.clone();
    let mut record = Record::default();
    let decision_headers = match snapshot.config.proxy.decision_headers {
        DecisionHeaders::Always => true,
        DecisionHeaders::OnRequest => seen.debug,
        DecisionHeaders::Never => false,
    };
    let context = Context {
        downstream,
        snapshot: &snapshot,
        route,
        live: &snapshot.routes[route_index],
        cluster: &snapshot.clusters[route.cluster],
        request_id,
        seen,
        request_body_empty: body.is_end_stream(),
        trace,
        decision_headers,
    };
    context.live.stats.requests.increment();
    // NOTE: a body already at its end is dropped for an empty one, which boxes without
    // allocating: most requests have none, and `RequestBody::prepare` would drop it anyway.
    let body = if context.request_body_empty {
        drop(body);
        crate::body::empty()
    } else {
        body.map_err(Into::into).boxed()
    };
    let mut response = serve_routed(&context, parts, body, &mut record, in_flight.started()).await;
    if let Some(kind) = record.fallback
        && context.decision_headers
    {
        response
            .headers_mut()
            .insert(FALLBACK_HEADER, kind.header_value());
    }
    record.total = counters::record_request(in_flight, response.status());
    let response = with_request_id(response, &context.request_id);
    let names = RequestNames {
        route: &context.route.name,
        cluster: context.cluster.name(),
        method: &method,
        request_id: &context.request_id,
    };
    let trace = context.trace.as_ref();
    (snapshot.telemetry).finish(started, trace, &names, &record, &response);
    response
}

async fn serve_routed(
    context: &Context<'_>,
    mut parts: http::request::Parts,
    body: ProxyBody,
    record: &mut Record,
    arrived: Instant,
) -> Response<ProxyBody> {
    let fallback = &context.live.fallback;
    if fallback.killed() {
        let error = own_error(
            record,
            ProxyError::KillSwitch,
            "the route's kill switch is on",
        );
        return fall_back(context, record, FallbackReason::KillSwitch, &parts, error).await;
    }
    // NOTE: the deadline counts from the request's arrival, the instant its metrics read:
    // one clock read less, and only the microseconds spent getting here earlier.
    let now = arrived;
    let attempts = &context.route.attempts;
    let deadline_header = &context.snapshot.config.proxy.deadline_header;
    // The caller's deadline only from a trusted client: see `deadline`. (Most requests have
    // no such header, and pay nothing for the check.)
    let callers = (context.seen.deadline && context.trusted())
        .then(|| parts.headers.get(deadline_header))
        .flatten();
    let deadline = match deadline::deadline(callers, deadline_header, attempts.timeout, now) {
        Ok(deadline) => deadline,
        Err(bad) => return own_error(record, ProxyError::BadRequest, &bad.to_string()),
    };
    if let Some(deadline) = deadline.filter(|deadline| deadline.at <= now) {
        context.live.stats.deadline_exceeded.increment();
        let error = own_error(
            record,
            ProxyError::DeadlineExceeded,
            "the caller's deadline had passed when the request arrived",
        );
        let reason = if deadline.callers {
            FallbackReason::CallerDeadline
        } else {
            FallbackReason::Timeout
        };
        return fall_back(context, record, reason, &parts, error).await;
    }
    let mut admitted = match context
        .live
        .admission
        .admit(&parts, context.downstream)
        .await
    {
        Ok(permit) => permit,
        Err(refusal) => {
            record.error = Some(refusal.error);
            let response = refusal.into_response();
            return fall_back(context, record, FallbackReason::Shed, &parts, response).await;
        }
    };
    // The next hop may trust this proxy's priority header: it carries the priority this
    // request was admitted with, never what an untrusted client wrote. (Absent and normal,
    // the default everywhere, it is left absent: one header insert less per request.)
    let priority_header = &context.route.admission.trust.header;
    if admitted.priority() != Priority::Normal || context.seen.priority {
        parts.headers.insert(
            priority_header.clone(),
            HeaderValue::from_static(admitted.priority().name()),
        );
    }
    let cluster = context.cluster;
    let permit = match cluster.admit(now) {
        Ok(permit) => permit,
        Err(open) => {
            let mut response = own_error(
                record,
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
            return fall_back(
                context,
                record,
                FallbackReason::BreakerOpen,
                &parts,
                response,
            )
            .await;
        }
    };
    match cluster.admission().admit(admitted.priority()).await {
        Ok(slot) => admitted.hold(slot),
        Err(refusal) => {
            record.error = Some(refusal.error);
            let response = refusal.into_response();
            return fall_back(
                context,
                record,
                FallbackReason::Overloaded,
                &parts,
                response,
            )
            .await;
        }
    }
    cluster.retry_budget().deposit(now);
    // NOTE: most requests have no body; for them the timed read below would only wrap a
    // future that is ready at once (~150 instructions of moving it and its timer about).
    let body = if context.request_body_empty {
        RequestBody::Empty
    } else if attempts.may_repeat() {
        let read_by = deadline.map_or(now + cluster.config().request_timeout, |deadline| {
            deadline.at
        });
        let prepared = tokio::time::timeout_at(
            read_by.into(),
            RequestBody::prepare(body, attempts.buffer_limit),
        )
        .await;
        match prepared {
            Ok(Ok(body)) => body,
            Ok(Err(error)) => {
                return own_error(
                    record,
                    ProxyError::BadRequest,
                    &format!("the request body could not be read: {error}"),
                );
            }
            Err(_elapsed) => {
                return own_error(
                    record,
                    ProxyError::BodyReadTimeout,
                    "the request body did not arrive in time",
                );
            }
        }
    } else {
        RequestBody::Streaming(body)
    };
    let mut permit = Some(permit);
    let attempted = attempts::run(context, cluster, &mut parts, body, deadline, &mut permit).await;
    (record.endpoint, record.upstream) = attempted.upstream.unzip();
    record.attempts = attempted.sent;
    let now = Instant::now();
    if let Some(permit) = permit {
        permit.record(attempted.outcome, now);
    }
    admitted.observe(attempted.outcome, now);
    let mut response = match attempted.result {
        Ok(response) => {
            let response = fallback.observe(&parts, context.provenance(), response);
            // The slots stay taken until the body ends: a streaming answer still occupies
            // the upstream.
            admission::hold_until_body_end(response, admitted)
        }
        // An upstream's 429 goes to the client as it is, Retry-After and all: only 5xx
        // answers are errors a fallback may hide (RFC 5861).
        Err(response) if !crate::fallback::is_failure_status(response.status()) => {
            record.error = attempted.error;
            response
        }
        Err(response) => {
            record.error = attempted.error;
            let reason = match attempted.outcome {
                AttemptOutcome::ClientCaused(ClientCause::Deadline) => {
                    FallbackReason::CallerDeadline
                }
                _ if attempted.timed_out => FallbackReason::Timeout,
                AttemptOutcome::ServerError(_) => FallbackReason::ServerError,
                _ => FallbackReason::Failed,
            };
            fall_back(context, record, reason, &parts, response).await
        }
    };
    if context.decision_headers {
        response
            .headers_mut()
            .insert(ATTEMPTS_HEADER, count_value(attempted.sent));
    }
    response
}

impl Context<'_> {
    /// Whether the client is in `trusted_clients`: only then are the headers by which a
    /// client steers the proxy (priority, deadline, forwarding) taken from it.
    pub fn trusted(&self) -> bool {
        self.route.admission.trust.trusts(self.downstream.peer.ip())
    }

    /// What the upstream's answer depends on besides the request's head.
    pub fn provenance(&self) -> Provenance {
        Provenance {
            tls: self.downstream.tls,
            forwarded: self.seen.forwarded,
        }
    }
}

/// One attempt against an endpoint of `cluster` (another cluster than the route's, for a
/// fallback): the response, or the error response when it failed, and what it says about
/// the endpoint. The body streams; it is not retried. The cluster breaker's `permit` is
/// taken when a success's body is still to come (see [`attempts::run`]).
pub async fn attempt(
    context: &Context<'_>,
    cluster: &Arc<Cluster>,
    mut parts: http::request::Parts,
    body: ProxyBody,
    permit: &mut Option<ClusterPermit>,
) -> (
    Result<Response<ProxyBody>, Response<ProxyBody>>,
    AttemptOutcome,
) {
    let attempted = attempts::run(
        context,
        cluster,
        &mut parts,
        RequestBody::Streaming(body),
        None,
        permit,
    )
    .await;
    (attempted.result, attempted.outcome)
}

/// The proxy's own answer for `error`, which the record keeps.
fn own_error(record: &mut Record, error: ProxyError, detail: &str) -> Response<ProxyBody> {
    record.error = Some(error);
    error_response(error, detail)
}

/// The route's fallback for `reason` if it has one, its kind kept in the record (in place of
/// the error it hides); otherwise `error`.
// NOTE: boxed. Its future is ~1.9 KB, and inline it would make every request's future that
// much larger, which is copied whole at each level on its way into hyper's connection task
// (~1,000 instructions per request); a fallback is rare, one allocation then is nothing.
fn fall_back<'a>(
    context: &'a Context<'_>,
    record: &'a mut Record,
    reason: FallbackReason,
    parts: &'a http::request::Parts,
    error: Response<ProxyBody>,
) -> Pin<Box<dyn Future<Output = Response<ProxyBody>> + Send + 'a>> {
    Box::pin(async move {
        match context.live.fallback.serve(reason, parts, context).await {
            Some((response, kind)) => {
                record.error = None;
                record.fallback = Some(kind);
                response
            }
            None => error,
        }
    })
}

/// A small count as a header value: the common ones (every response says how many attempts
/// it took) are static, so they cost no allocation.
fn count_value(count: u32) -> HeaderValue {
    const COUNTS: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
    match COUNTS.get(count as usize) {
        Some(text) => HeaderValue::from_static(text),
        None => HeaderValue::from(count),
    }
}

#[cfg(test)]
mod count_tests {
    #[test]
    fn counts_read_as_their_decimal_text() {
        for count in [0u32, 1, 9, 10, 11, 4_000_000_000] {
            assert_eq!(super::count_value(count), count.to_string().as_str());
        }
    }
}
