//! The gates a request passes before its attempts, in order: the route's kill switch, its
//! deadline, the route's admission (rate limit, shedding, bulkhead), the cluster's breaker
//! and concurrency limit, and its body, read whole when a retry may send it again.
//!
//! Each gate may end the request: it is then [`Refused`], with the proxy's answer and the
//! reason a fallback may answer in its place. A refusal keeps what the gates before it took
//! (the route's slots, the breaker's permit) until the fallback has answered, as a request
//! then still counts against them.

use std::time::Instant;

use http::Response;
use http::header::{self, HeaderValue};

use super::Context;
use super::body::RequestBody;
use super::deadline::{self, Deadline};
use crate::admission::{AdmissionPermit, Refusal};
use crate::body::ProxyBody;
use crate::cluster::ClusterPermit;
use crate::config::admission::Priority;
use crate::config::fallback::FallbackReason;
use crate::error::{ProxyError, error_response};
use crate::headers::retry_after_value;

/// What a request admitted to its attempts holds.
pub(super) struct Admitted {
    /// Its deadline, the route's or its caller's.
    pub(super) deadline: Option<Deadline>,
    /// Its route's (and cluster's) admission slots, held until its response ends.
    pub(super) permit: AdmissionPermit,
    /// The cluster breaker's permit, recorded with the attempts' outcome.
    pub(super) cluster_permit: ClusterPermit,
    /// Its body, as the attempts send it.
    pub(super) body: RequestBody,
}

/// A stage ended the request before its attempts: the proxy's answer, and the reason a
/// fallback may answer in its place.
// NOTE: boxed where it is returned: it holds the permits (some 360 bytes), which would make
// every admitted request's `Result` that much larger to move; a refusal allocates anyway.
pub(super) struct Refused {
    pub(super) error: ProxyError,
    pub(super) response: Response<ProxyBody>,
    /// `None`: the client's own mistake, which no fallback hides.
    pub(super) fallback: Option<FallbackReason>,
    /// What the stages before took, held until the fallback has answered.
    pub(super) held: Held,
}

/// Permits a refused or failed request still holds while its fallback answers: it still
/// counts against the route's concurrency (and a half-open breaker's probes) until then.
#[derive(Default)]
pub(super) struct Held {
    pub(super) permit: Option<AdmissionPermit>,
    pub(super) cluster_permit: Option<ClusterPermit>,
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
pub(super) async fn admit(
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
        Err(shed) => {
            let held = Held {
                permit: Some(permit),
                cluster_permit: Some(cluster_permit),
            };
            return Err(Refused::by(shed.into(), FallbackReason::Overloaded, held));
        }
    }
    cluster.retry_budget().deposit(now);
    // NOTE: most requests have no body, and for them the read is not even started: its
    // future would only be made, moved and polled once to say so.
    let body = if context.request_body_empty {
        RequestBody::Empty
    } else {
        request_body(context, body, deadline, now).await?
    };
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

/// A request body as the attempts send it: read whole first (within the deadline) when a
/// retry or hedge may send it again, streamed otherwise.
async fn request_body(
    context: &Context<'_>,
    body: ProxyBody,
    deadline: Option<Deadline>,
    now: Instant,
) -> Result<RequestBody, Box<Refused>> {
    let attempts = &context.route.attempts;
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
