//! The path of one request through the resilience mechanisms, in the order they apply.
//!
//! ```text
//! kill switch → admission (rate limit, shedding, bulkhead) → cluster breaker → fault
//!   → attempts (pick, per-try timeout, send, judge, retry / hedge) → fallback → response
//! ```
//!
//! Each mechanism lives in its own module ([`crate::admission`], [`crate::fallback`], the
//! cluster's breakers and outlier detection); this module only decides the order and carries
//! the request between them, so a reader sees in one place what happens to a request:
//! `serve_routed` is that order, `gates` the stages before the attempts, `fault` the fault a
//! route's rule drew.
//!
//! What happens is written, as it happens, into the request's [`Record`] (the error kind,
//! the fallback that answered, attempts, endpoint, times); the observers (the counters,
//! telemetry) read it once, at the end (`answered`), rather than being called along the
//! way or reading back the headers the client gets.

mod attempts;
mod body;
mod deadline;
mod fault;
mod gates;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::Response;
use http::header::HeaderValue;
use http_body_util::BodyExt;
use hyper::body::Body;

pub(crate) use self::body::RequestBody;
use self::gates::{Held, Refused, admit};
use crate::admission::{self, AdmissionPermit};
use crate::body::{BoxError, ProxyBody};
use crate::cluster::{Cluster, ClusterPermit};
use crate::config::fallback::FallbackReason;
use crate::config::{DecisionHeaders, RouteConfig};
use crate::counters::{self, RequestInFlight};
use crate::fallback::{FallbackRequest, Provenance};
use crate::forward::{self, Downstream, with_request_id};
use crate::headers::FALLBACK_HEADER;
use crate::live::LiveRoute;
use crate::outcome::{AttemptOutcome, ClientCause};
use crate::record::Record;
use crate::reload::Snapshot;
use crate::telemetry::{RequestNames, Started};

/// The header saying how many attempts a request took, hedges included.
pub(crate) const ATTEMPTS_HEADER: http::HeaderName =
    http::HeaderName::from_static("x-blastwall-attempts");

/// A request carrying this header gets decision headers under `decision_headers = "on_request"`.
pub(crate) const DEBUG_HEADER: http::HeaderName =
    http::HeaderName::from_static("x-blastwall-debug");

/// What every stage may need to know about the request being served.
#[derive(Debug)]
pub(crate) struct Context<'a> {
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

/// Serves a routed request: every stage above, and the response the client gets. The
/// observers (the counters, telemetry) read what happened once, at the end, from the
/// request's [`Record`].
pub(crate) async fn serve<B>(
    downstream: Downstream,
    snapshot: Arc<Snapshot>,
    route_index: usize,
    (mut parts, body): (http::request::Parts, B),
) -> Response<ProxyBody>
where
    B: Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    // Counted in flight until answered; its instant is the request's arrival for every stage
    // and observer (one clock read).
    let in_flight = counters::request_started(&snapshot.routes[route_index].stats);
    let arrived = in_flight.started();
    let route = &snapshot.config.routes[route_index];
    let seen = seen(&snapshot, route, downstream, &mut parts.headers);
    let request_id = forward::ensure_request_id(&mut parts.headers, seen.request_id);
    // The trace starts here, as its context travels upstream; `None` at no cost when off.
    let (started, trace) = snapshot.telemetry.start(&mut parts.headers, arrived);
    let method = parts.method.clone();
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
        decision_headers: decision_headers(&snapshot, seen),
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
    let mut record = Record::default();
    let response = serve_routed(&context, parts, body, &mut record, arrived).await;
    answered(&context, &method, started, record, in_flight, response)
}

/// The end of a request: the response gets the fallback's name (when decisions are shown;
/// when they are not, it carries none, not even its upstream's) and the request id, and the
/// observers (the counters, telemetry) read the record, once.
fn answered(
    context: &Context<'_>,
    method: &http::Method,
    started: Option<Started>,
    mut record: Record,
    in_flight: RequestInFlight<'_>,
    mut response: Response<ProxyBody>,
) -> Response<ProxyBody> {
    if context.decision_headers {
        if let Some(kind) = record.fallback {
            response
                .headers_mut()
                .insert(FALLBACK_HEADER, kind.header_value());
        }
    } else {
        // An upstream's own (a proxy behind this one that answered from its fallback, or
        // a kept copy of such an answer) is a decision too, and is not shown either.
        // NOTE: one lookup per request, and only where decisions are hidden (not the
        // default), as the released proxy has always paid there.
        response.headers_mut().remove(FALLBACK_HEADER);
    }
    record.total = counters::record_request(in_flight, response.status());
    let response = with_request_id(response, &context.request_id);
    let names = RequestNames {
        route: &context.route.name,
        cluster: context.cluster.name(),
        method,
        request_id: &context.request_id,
    };
    let trace = context.trace.as_ref();
    (context.snapshot.telemetry).finish(started, trace, &names, &record, &response);
    response
}

/// The stages in their order, for a routed request: those that admit it (any of which may
/// refuse it, see `gates::admit`), its attempts, and what their answer becomes (the route's
/// fallback when they failed). What happened goes into `record`.
async fn serve_routed(
    context: &Context<'_>,
    mut parts: http::request::Parts,
    body: ProxyBody,
    record: &mut Record,
    arrived: Instant,
) -> Response<ProxyBody> {
    let mut admitted = match admit(context, &mut parts, body, arrived).await {
        Ok(admitted) => admitted,
        Err(refused) => return refuse(context, record, &parts, *refused).await,
    };
    let mut cluster_permit = Some(admitted.cluster_permit);
    let (cluster, deadline) = (context.cluster, admitted.deadline);
    let body = admitted.body;
    // NOTE: one branch and one relaxed load when there is no fault rule (see `crate::fault`).
    let faults = &context.live.fault;
    let drawn = if faults.idle() {
        None
    } else {
        faults.draw(&parts.headers, context.trusted())
    };
    let faulted = match &drawn {
        None => None,
        Some(fault) => {
            record.fault_rule = Some(fault.rule_id());
            fault::inject(context, fault, deadline, record).await
        }
    };
    let attempted = match faulted {
        Some(attempted) => attempted,
        None => {
            // A fault on the answer is done by the attempts, on each one's.
            let on_answer = drawn.as_ref().filter(|fault| fault.acts_on_answer());
            attempts::run(
                context,
                cluster,
                &mut parts,
                body,
                deadline,
                &mut cluster_permit,
                (on_answer, &mut *record),
            )
            .await
        }
    };
    settle(&attempted, cluster_permit, &mut admitted.permit, record);
    let mut response = match attempted.result {
        Ok(response) => {
            let fallback = &context.live.fallback;
            let response = fallback.observe(&parts, context.provenance(), response);
            // The slots stay taken until the body ends: a streaming answer still occupies
            // the upstream.
            admission::hold_until_body_end(response, admitted.permit)
        }
        Err(response) => match fallback_reason(&response, attempted.outcome, attempted.timed_out) {
            None => response,
            Some(reason) => {
                let held = Held {
                    permit: Some(admitted.permit),
                    cluster_permit: None,
                };
                fall_back(context, record, reason, &parts, response, held).await
            }
        },
    };
    if context.decision_headers {
        response
            .headers_mut()
            .insert(ATTEMPTS_HEADER, count_value(attempted.sent));
    }
    response
}

/// What the attempts came to, recorded: in the cluster's breaker and the admission limits
/// that measure outcomes, and in the request's record.
fn settle(
    attempted: &attempts::Attempted,
    cluster_permit: Option<ClusterPermit>,
    permit: &mut AdmissionPermit,
    record: &mut Record,
) {
    let now = Instant::now();
    if let Some(cluster_permit) = cluster_permit {
        cluster_permit.record(attempted.outcome, now);
    }
    permit.observe(attempted.outcome, now);
    (record.endpoint, record.upstream) = attempted.upstream.unzip();
    (record.attempts, record.error) = (attempted.sent, attempted.error);
}

/// The answer for a request a stage refused: the route's fallback for it when it has one,
/// the proxy's error otherwise; the error's kind goes into the record either way (the
/// fallback's kind replaces it when one answers).
// NOTE: boxed, as `fall_back` is (see there); a refusal the client caused (a bad deadline
// header, a body that could not be read) is boxed as well, which keeps it out of every
// request's future, at one allocation on a path that allocates its answer anyway.
fn refuse<'a>(
    context: &'a Context<'_>,
    record: &'a mut Record,
    parts: &'a http::request::Parts,
    refused: Refused,
) -> Pin<Box<dyn Future<Output = Response<ProxyBody>> + Send + 'a>> {
    record.error = Some(refused.error);
    match refused.fallback {
        Some(reason) => fall_back(
            context,
            record,
            reason,
            parts,
            refused.response,
            refused.held,
        ),
        None => Box::pin(std::future::ready(refused.response)),
    }
}

/// Which of the headers the proxy reads the request has. Forwarding headers name the site
/// the upstream answers for: only a trusted client's travel on (see
/// `headers::forwarding::FORWARDING`), so an untrusted client's are removed here, and from
/// here on `seen.forwarded` means those that travel.
fn seen(
    snapshot: &Snapshot,
    route: &RouteConfig,
    downstream: Downstream,
    headers: &mut http::HeaderMap,
) -> forward::Seen {
    let mut seen = forward::Seen::of(
        headers,
        &snapshot.config.proxy.deadline_header,
        &route.admission.trust.header,
        &DEBUG_HEADER,
    );
    if seen.forwarded && !route.admission.trust.trusts(downstream.peer.ip()) {
        crate::headers::forwarding::remove_forwarding(headers);
        seen.forwarded = false;
    }
    seen
}

/// Whether the response says what the proxy decided (`proxy.decision_headers`).
fn decision_headers(snapshot: &Snapshot, seen: forward::Seen) -> bool {
    match snapshot.config.proxy.decision_headers {
        DecisionHeaders::Always => true,
        DecisionHeaders::OnRequest => seen.debug,
        DecisionHeaders::Never => false,
    }
}

/// The fallback reason of the attempts' failed answer, when it is one a fallback may hide.
/// An upstream's 429 goes to the client as it is, Retry-After and all: only 5xx answers
/// are errors a fallback may hide (RFC 5861).
fn fallback_reason(
    failed: &Response<ProxyBody>,
    outcome: AttemptOutcome,
    timed_out: bool,
) -> Option<FallbackReason> {
    if !crate::fallback::is_failure_status(failed.status()) {
        return None;
    }
    Some(match outcome {
        AttemptOutcome::ClientCaused(ClientCause::Deadline) => FallbackReason::CallerDeadline,
        _ if timed_out => FallbackReason::Timeout,
        AttemptOutcome::ServerError(_) => FallbackReason::ServerError,
        _ => FallbackReason::Failed,
    })
}

impl Context<'_> {
    /// Whether the client is in `trusted_clients`: only then are the headers by which a
    /// client steers the proxy (priority, deadline, forwarding) taken from it.
    pub(crate) fn trusted(&self) -> bool {
        self.route.admission.trust.trusts(self.downstream.peer.ip())
    }

    /// What the upstream's answer depends on besides the request's head.
    pub(crate) fn provenance(&self) -> Provenance {
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
async fn attempt(
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
        (None, &mut Record::default()),
    )
    .await;
    (attempted.result, attempted.outcome)
}

/// The route's fallback for `reason` if it has one, its kind kept in the record (in place of
/// the error it hides); otherwise `error`. What the request `held` is let go after.
// NOTE: boxed. Its future is ~1.9 KB, and inline it would make every request's future that
// much larger, which is copied whole at each level on its way into hyper's connection task
// (~1,000 instructions per request); a fallback is rare, one allocation then is nothing.
fn fall_back<'a>(
    context: &'a Context<'_>,
    record: &'a mut Record,
    reason: FallbackReason,
    parts: &'a http::request::Parts,
    error: Response<ProxyBody>,
    held: Held,
) -> Pin<Box<dyn Future<Output = Response<ProxyBody>> + Send + 'a>> {
    let request = FallbackRequest {
        parts,
        config: &context.route.fallback,
        provenance: context.provenance(),
        body_empty: context.request_body_empty,
        clusters: &context.snapshot.clusters,
    };
    // The alternate cluster's attempt is sent as the route's own are.
    let attempt = move |cluster: Arc<Cluster>, parts, body, mut permit| async move {
        let (result, outcome) = attempt(context, &cluster, parts, body, &mut permit).await;
        (result, outcome, permit)
    };
    Box::pin(async move {
        let answer = match context.live.fallback.serve(reason, request, attempt).await {
            Some((response, kind)) => {
                record.error = None;
                record.fallback = Some(kind);
                response
            }
            None => error,
        };
        // Let go only now: the request counted against them while its fallback answered.
        let Held {
            permit,
            cluster_permit,
        } = held;
        drop((permit, cluster_permit));
        answer
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
