//! The path of one request through the resilience mechanisms, in the order they apply.
//!
//! ```text
//! kill switch → admission (rate limit, shedding, bulkhead) → cluster breaker
//!   → attempts (pick, per-try timeout, send, judge, retry / hedge) → fallback → response
//! ```
//!
//! Each mechanism lives in its own module ([`crate::admission`], [`crate::fallback`], the
//! cluster's breakers and outlier detection); this module only decides the order and carries
//! the request between them, so a reader sees in one place what happens to a request:
//! `serve_routed` is that order, `admit` the stages before the attempts.
//!
//! What happens is written, as it happens, into the request's [`Record`] (the error kind,
//! the fallback that answered, attempts, endpoint, times); the observers (the counters,
//! telemetry) read it once, at the end (`answered`), rather than being called along the
//! way or reading back the headers the client gets.

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
use crate::admission::{self, AdmissionPermit, Refusal};
use crate::body::{BoxError, ProxyBody};
use crate::cluster::{Cluster, ClusterPermit};
use crate::config::admission::Priority;
use crate::config::{DecisionHeaders, RouteConfig};
use crate::counters::{self, RequestInFlight};
use crate::error::{ProxyError, error_response};
use crate::fallback::{FallbackReason, FallbackRequest, Provenance};
use crate::forward::{self, Downstream, with_request_id};
use crate::headers::{FALLBACK_HEADER, retry_after_value};
use crate::live::LiveRoute;
use crate::outcome::{AttemptOutcome, ClientCause};
use crate::record::Record;
use crate::reload::Snapshot;
use crate::telemetry::{RequestNames, Started};

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

/// Serves a routed request: every stage above, and the response the client gets. The
/// observers (the counters, telemetry) read what happened once, at the end, from the
/// request's [`Record`].
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

/// The end of a request: the response gets the fallback's name (when decisions are shown)
/// and the request id, and the observers (the counters, telemetry) read the record, once.
fn answered(
    context: &Context<'_>,
    method: &http::Method,
    started: Option<Started>,
    mut record: Record,
    in_flight: RequestInFlight<'_>,
    mut response: Response<ProxyBody>,
) -> Response<ProxyBody> {
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
        method,
        request_id: &context.request_id,
    };
    let trace = context.trace.as_ref();
    (context.snapshot.telemetry).finish(started, trace, &names, &record, &response);
    response
}

/// The stages in their order, for a routed request: those that admit it (any of which may
/// refuse it, see [`admit`]), its attempts, and what their answer becomes (the route's
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
    let attempted = attempts::run(
        context,
        cluster,
        &mut parts,
        body,
        deadline,
        &mut cluster_permit,
    )
    .await;
    settle(&attempted, cluster_permit, &mut admitted.permit, record);
    let reason = fallback_reason(&attempted);
    let mut response = match (attempted.result, reason) {
        (Ok(response), _) => {
            let fallback = &context.live.fallback;
            let response = fallback.observe(&parts, context.provenance(), response);
            // The slots stay taken until the body ends: a streaming answer still occupies
            // the upstream.
            admission::hold_until_body_end(response, admitted.permit)
        }
        (Err(response), None) => response,
        (Err(response), Some(reason)) => {
            let held = Held {
                permit: Some(admitted.permit),
                cluster_permit: None,
            };
            fall_back(context, record, reason, &parts, response, held).await
        }
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

/// What a request admitted to its attempts holds.
struct Admitted {
    /// Its deadline, the route's or its caller's.
    deadline: Option<Deadline>,
    /// Its route's (and cluster's) admission slots, held until its response ends.
    permit: AdmissionPermit,
    /// The cluster breaker's permit, recorded with the attempts' outcome.
    cluster_permit: ClusterPermit,
    /// Its body, as the attempts send it.
    body: RequestBody,
}

/// A stage ended the request before its attempts: the proxy's answer, and the reason a
/// fallback may answer in its place.
// NOTE: boxed where it is returned: it holds the permits (some 360 bytes), which would make
// every admitted request's `Result` that much larger to move; a refusal allocates anyway.
struct Refused {
    error: ProxyError,
    response: Response<ProxyBody>,
    /// `None`: the client's own mistake, which no fallback hides.
    fallback: Option<FallbackReason>,
    /// What the stages before took, held until the fallback has answered.
    held: Held,
}

/// Permits a refused or failed request still holds while its fallback answers: it still
/// counts against the route's concurrency (and a half-open breaker's probes) until then.
#[derive(Default)]
struct Held {
    permit: Option<AdmissionPermit>,
    cluster_permit: Option<ClusterPermit>,
}

impl Refused {
    /// The proxy's answer for `error`.
    fn new(error: ProxyError, detail: &str, fallback: Option<FallbackReason>) -> Box<Self> {
        Box::new(Refused {
            error,
            response: error_response(error, detail),
            fallback,
            held: Held::default(),
        })
    }

    /// Admission's refusal, which a fallback for `reason` may hide.
    fn by(refusal: Refusal, reason: FallbackReason, held: Held) -> Box<Self> {
        Box::new(Refused {
            error: refusal.error,
            response: refusal.into_response(),
            fallback: Some(reason),
            held,
        })
    }
}

/// The stages that admit a request to its attempts, in order: the kill switch, the
/// deadline, the route's admission (rate limit, shedding, bulkhead), the cluster's breaker
/// and concurrency limit, and the request body read when a retry may need it again.
async fn admit(
    context: &Context<'_>,
    parts: &mut http::request::Parts,
    body: ProxyBody,
    now: Instant,
) -> Result<Admitted, Box<Refused>> {
    if context.live.fallback.killed() {
        let reason = Some(FallbackReason::KillSwitch);
        let detail = "the route's kill switch is on";
        return Err(Refused::new(ProxyError::KillSwitch, detail, reason));
    }
    // NOTE: the deadline counts from the request's arrival, the instant its counters read:
    // one clock read less, and only the microseconds spent getting here earlier.
    let deadline = request_deadline(context, parts, now)?;
    let mut permit = match context
        .live
        .admission
        .admit(parts, context.downstream)
        .await
    {
        Ok(permit) => permit,
        Err(refusal) => return Err(Refused::by(refusal, FallbackReason::Shed, Held::default())),
    };
    carry_priority(context, parts, permit.priority());
    let cluster = context.cluster;
    let cluster_permit = match cluster.admit(now) {
        Ok(cluster_permit) => cluster_permit,
        Err(open) => {
            let detail = format!(
                "the circuit breaker of cluster \"{}\" is open",
                cluster.name()
            );
            let reason = Some(FallbackReason::BreakerOpen);
            let mut refused = Refused::new(ProxyError::BreakerOpen, &detail, reason);
            if let Some(retry_after) = open.retry_after {
                (refused.response.headers_mut())
                    .insert(header::RETRY_AFTER, retry_after_value(retry_after));
            }
            refused.held.permit = Some(permit);
            return Err(refused);
        }
    };
    match cluster.admission().admit(permit.priority()).await {
        Ok(slot) => permit.hold(slot),
        Err(refusal) => {
            let held = Held {
                permit: Some(permit),
                cluster_permit: Some(cluster_permit),
            };
            return Err(Refused::by(refusal, FallbackReason::Overloaded, held));
        }
    }
    cluster.retry_budget().deposit(now);
    let body = request_body(context, body, deadline, now).await?;
    Ok(Admitted {
        deadline,
        permit,
        cluster_permit,
        body,
    })
}

/// The request's deadline: the route's timeout, or the caller's own when sooner (only from a
/// trusted client: see [`deadline`]). One that has passed already ends the request.
fn request_deadline(
    context: &Context<'_>,
    parts: &http::request::Parts,
    now: Instant,
) -> Result<Option<Deadline>, Box<Refused>> {
    let deadline_header = &context.snapshot.config.proxy.deadline_header;
    // (Most requests have no such header, and pay nothing for the check.)
    let callers = (context.seen.deadline && context.trusted())
        .then(|| parts.headers.get(deadline_header))
        .flatten();
    let timeout = context.route.attempts.timeout;
    let deadline = match deadline::deadline(callers, deadline_header, timeout, now) {
        Ok(deadline) => deadline,
        Err(bad) => return Err(Refused::new(ProxyError::BadRequest, &bad.to_string(), None)),
    };
    if let Some(deadline) = deadline.filter(|deadline| deadline.at <= now) {
        context.live.stats.deadline_exceeded.increment();
        let reason = if deadline.callers {
            FallbackReason::CallerDeadline
        } else {
            FallbackReason::Timeout
        };
        let detail = "the caller's deadline had passed when the request arrived";
        return Err(Refused::new(
            ProxyError::DeadlineExceeded,
            detail,
            Some(reason),
        ));
    }
    Ok(deadline)
}

/// The next hop may trust this proxy's priority header: it carries the priority this
/// request was admitted with, never what an untrusted client wrote. (Absent and normal, the
/// default everywhere, it is left absent: one header insert less per request.)
fn carry_priority(context: &Context<'_>, parts: &mut http::request::Parts, priority: Priority) {
    if priority != Priority::Normal || context.seen.priority {
        parts.headers.insert(
            context.route.admission.trust.header.clone(),
            HeaderValue::from_static(priority.name()),
        );
    }
}

/// The request body as the attempts send it: read whole first (within the deadline) when a
/// retry or hedge may send it again, streamed otherwise.
async fn request_body(
    context: &Context<'_>,
    body: ProxyBody,
    deadline: Option<Deadline>,
    now: Instant,
) -> Result<RequestBody, Box<Refused>> {
    let attempts = &context.route.attempts;
    // NOTE: most requests have no body; for them the timed read below would only wrap a
    // future that is ready at once (~150 instructions of moving it and its timer about).
    if context.request_body_empty {
        return Ok(RequestBody::Empty);
    }
    if !attempts.may_repeat() {
        return Ok(RequestBody::Streaming(body));
    }
    let read_by = deadline.map_or(now + context.cluster.config().request_timeout, |deadline| {
        deadline.at
    });
    let prepared = tokio::time::timeout_at(
        read_by.into(),
        RequestBody::prepare(body, attempts.buffer_limit),
    )
    .await;
    match prepared {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(error)) => {
            let detail = format!("the request body could not be read: {error}");
            Err(Refused::new(ProxyError::BadRequest, &detail, None))
        }
        Err(_elapsed) => {
            let detail = "the request body did not arrive in time";
            Err(Refused::new(ProxyError::BodyReadTimeout, detail, None))
        }
    }
}

/// The fallback reason of the attempts' answer, when it is a failure a fallback may hide.
/// An upstream's 429 goes to the client as it is, Retry-After and all: only 5xx answers
/// are errors a fallback may hide (RFC 5861).
fn fallback_reason(attempted: &attempts::Attempted) -> Option<FallbackReason> {
    let response = attempted.result.as_ref().err()?;
    if !crate::fallback::is_failure_status(response.status()) {
        return None;
    }
    Some(match attempted.outcome {
        AttemptOutcome::ClientCaused(ClientCause::Deadline) => FallbackReason::CallerDeadline,
        _ if attempted.timed_out => FallbackReason::Timeout,
        AttemptOutcome::ServerError(_) => FallbackReason::ServerError,
        _ => FallbackReason::Failed,
    })
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
