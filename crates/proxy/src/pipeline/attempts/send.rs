//! Sending an attempt: the endpoint not tried yet, the request as that endpoint sees it,
//! the per-try timeout and what is left of the deadline, and the attempts in flight.

use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::ops::Deref;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use blastwall_policy::retry::FailureKind;
use blastwall_policy::timeout::LearnedTimeout;
use http::Response;
use http::request::Parts;
use smallvec::SmallVec;

use super::super::Context;
use super::super::body::{RequestBody, Upload, UploadState};
use super::super::deadline::{self, Deadline};
use super::{Attempted, Event, NotSent};
use crate::cluster::Cluster;
use crate::config::UpstreamProtocol;
use crate::config::fault::FaultAction;
use crate::endpoint::EndpointGuard;
use crate::error::{ProxyError, error_response};
use crate::fault::table::RuntimeRule;
use crate::fault::{Drawn, RuleEnd};
use crate::forward;
use crate::outcome::{AttemptOutcome, ClientCause};
use crate::record::Record;
use crate::telemetry::span::AttemptSpan;
use crate::upstream::{UpstreamBody, UpstreamError};

/// One attempt in flight.
pub(super) type InFlight<'a> = Pin<Box<dyn Future<Output = Finished> + Send + 'a>>;

/// One attempt, finished.
pub(super) struct Finished {
    pub(super) guard: EndpointGuard,
    pub(super) result: Result<Response<UpstreamBody>, SendFailure>,
    pub(super) latency: Duration,
    /// When it finished: the instant it is judged at.
    pub(super) at: Instant,
    /// The per-try timeout it had.
    pub(super) timeout: Duration,
    /// Its span, when the request is traced.
    pub(super) span: Option<AttemptSpan>,
}

pub(super) enum SendFailure {
    Upstream(UpstreamError),
    Timeout,
    /// The client's doing, not the endpoint's.
    Client(ClientCause, Option<UpstreamError>),
}

impl SendFailure {
    /// What a failed send means: the client's doing when the attempt ran out of the
    /// caller's own time (`callers_time`), or when its streaming body (`upload`) had the
    /// attempt waiting for the client or failed; the endpoint's otherwise.
    pub(super) fn of(error: UpstreamError, callers_time: bool, upload: Option<&Upload>) -> Self {
        let timed_out = error.kind() == FailureKind::Timeout;
        match upload.map(Upload::state) {
            Some(UploadState::Failed) => {
                return SendFailure::Client(ClientCause::BodyFailed, Some(error));
            }
            Some(UploadState::Waiting) if timed_out => {
                return SendFailure::Client(ClientCause::SlowBody, None);
            }
            _ => {}
        }
        match (timed_out, callers_time) {
            (true, true) => SendFailure::Client(ClientCause::Deadline, None),
            (true, false) => SendFailure::Timeout,
            (false, _) => SendFailure::Upstream(error),
        }
    }
}

/// The attempts of one request: those in flight, and the endpoints already tried.
// NOTE: kept inline up to two tried and one in flight (most requests take one attempt), so
// a request's attempts allocate nothing but the attempt's own future.
pub(super) struct AttemptSet<'c, 'a> {
    pub(super) context: &'c Context<'a>,
    pub(super) cluster: &'c Cluster,
    pub(super) parts: &'c mut Parts,
    pub(super) tried: SmallVec<[SocketAddr; 2]>,
    pub(super) in_flight: SmallVec<[InFlight<'c>; 1]>,
    pub(super) sent: u32,
    /// A request-level fault rule's that acts on each attempt's answer.
    pub(super) on_answer: Option<&'c Drawn<'c>>,
    /// Where the last fault done in an attempt is written: the request's record (its
    /// `fault`, and its `fault_rule` when an attempt-level rule did it; the request's own
    /// rule acting on the answer is there already).
    pub(super) record: &'c mut Record,
}

/// The fault done in one attempt: a config rule's or the request's, borrowed for the
/// request, or a runtime rule's, held (the table may drop it meanwhile).
enum AttemptFault<'c> {
    Borrowed(&'c FaultAction),
    Held(Arc<RuntimeRule>),
}

impl Deref for AttemptFault<'_> {
    type Target = FaultAction;

    fn deref(&self) -> &FaultAction {
        match self {
            AttemptFault::Borrowed(action) => action,
            AttemptFault::Held(rule) => rule.action(),
        }
    }
}

impl<'c> AttemptSet<'c, '_> {
    /// Sends an attempt to an endpoint not tried yet when one can take it. `Err` is the
    /// answer for the client when no attempt can be sent at all.
    pub(super) fn launch(
        &mut self,
        body: &mut RequestBody,
        deadline: Option<Deadline>,
        now: Instant,
    ) -> Result<(), NotSent> {
        let Some(guard) = self.cluster.pick_avoiding(self.parts, &self.tried, now) else {
            return Err(NotSent(
                ProxyError::NoHealthyEndpoint,
                format!(
                    "no endpoint of cluster \"{}\" can take requests",
                    self.cluster.name()
                ),
            ));
        };
        self.send(guard, body, deadline, now)
    }

    /// How long an attempt may wait for a response head: resolved at load for the route's
    /// own cluster and for its fallback's alternate.
    // NOTE: relies on the alternate being the only cluster a route attempts besides its own.
    // Chosen here rather than passed to `run`, which would make every request's future
    // larger for the sake of the rare fallback.
    fn per_try(&self) -> Duration {
        let route = self.context.route;
        match (route.fallback.cluster, self.learned_per_try()) {
            (Some(alternate), _) if !self.own_cluster() => alternate.per_try_timeout,
            (_, Some(learned)) => learned.timeout(),
            _ => route.attempts.per_try_timeout,
        }
    }

    /// Whether the attempts go to the route's own cluster (not a fallback's alternate).
    fn own_cluster(&self) -> bool {
        std::ptr::eq(self.cluster, &**self.context.cluster)
    }

    /// The route's learned per-try timeout (`per_try_timeout = "auto"`), for attempts to
    /// its own cluster: the alternate's attempts keep the alternate's.
    fn learned_per_try(&self) -> Option<&'c LearnedTimeout> {
        let context: &'c Context<'_> = self.context;
        context
            .live
            .per_try
            .as_deref()
            .filter(|_| self.own_cluster())
    }

    /// Sends a hedge to an endpoint that is not already working on this request; `false`
    /// when there is none.
    pub(super) fn hedge(
        &mut self,
        body: &mut RequestBody,
        deadline: Option<Deadline>,
        now: Instant,
    ) -> bool {
        let Some(guard) = self.cluster.pick_avoiding(self.parts, &self.tried, now) else {
            return false;
        };
        if self.tried.contains(&guard.endpoint().address()) {
            return false;
        }
        self.send(guard, body, deadline, now).is_ok()
    }

    fn send(
        &mut self,
        guard: EndpointGuard,
        body: &mut RequestBody,
        deadline: Option<Deadline>,
        now: Instant,
    ) -> Result<(), NotSent> {
        let context = self.context;
        let cluster = self.cluster;
        let per_try = self.per_try();
        let learned = self.learned_per_try();
        // Whether the attempt's time is the caller's: running out of it is then its doing.
        let (timeout, callers_time) = match deadline {
            Some(deadline) if deadline.at.saturating_duration_since(now) < per_try => {
                (deadline.at.saturating_duration_since(now), deadline.callers)
            }
            _ => (per_try, false),
        };
        let Some((attempt_body, upload)) = body.for_attempt() else {
            return Err(NotSent(
                ProxyError::UpstreamReset,
                "the request body was already sent and cannot be sent again".to_owned(),
            ));
        };
        let http2 = cluster.config().protocol == UpstreamProtocol::Http2;
        let mut parts = self.parts.clone();
        // NOTE: a cloned header map has no spare room (its entries are allocated to its
        // length), and forwarding may add headers to it (a trace context; the forwarding
        // headers when they replace a client's, or when the route edits headers). The
        // attempt takes the request's own map instead, which the listener made with
        // `forward::HEADER_ROOM` to spare, and the request keeps the exact copy, which is
        // only read from here on. The reservation covers a map that did not have the room
        // (a retry's: it gets the copy).
        std::mem::swap(&mut parts.headers, &mut self.parts.headers);
        parts.headers.reserve(forward::ATTEMPT_HEADER_ROOM);
        let Some((mut request, mut added)) = forward::upstream_request(
            context.downstream,
            context.route,
            &guard,
            http2,
            context.seen,
            parts,
            attempt_body,
        ) else {
            return Err(NotSent(
                ProxyError::BadRequest,
                "the request target cannot be forwarded".to_owned(),
            ));
        };
        // The endpoint's deadline replaces the caller's (and a route's).
        let deadline_header = context.snapshot.config.proxy.deadline_header.clone();
        let remaining = deadline::header_value(timeout);
        if context.seen.deadline || !context.route.request_headers.is_empty() {
            request.headers_mut().insert(deadline_header, remaining);
        } else {
            added.push(deadline_header, remaining);
        }
        // Drawn once the attempt is sure to go (the request keeps its exact headers).
        // NOTE: one branch when the route has no attempt-level rule and the request drew
        // no fault on the answer.
        let fault = if self.on_answer.is_none() && !context.live.fault.has_attempt_rules() {
            None
        } else {
            self.fault_for(guard.endpoint().address())
        };
        self.tried.push(guard.endpoint().address());
        self.sent += 1;
        // The attempt's span starts here because its id travels upstream as the parent.
        let span = (context.trace.as_ref()).map(|trace| {
            trace.attempt(request.headers_mut(), self.sent, guard.endpoint().address())
        });
        let client = cluster.client();
        let Some(fault) = fault else {
            // NOTE: the unfaulted attempt is written out rather than sent through `timed`:
            // the closure `timed` takes would move the request once more on every request
            // (callgrind: some 200 instructions of copying each).
            self.in_flight.push(Box::pin(async move {
                let started = tokio::time::Instant::now();
                let expires = expiry(started, timeout);
                let result = match client.send(request, added, expires).await {
                    Ok(response) => Ok(response),
                    Err(error) => Err(SendFailure::of(error, callers_time, upload.as_ref())),
                };
                Finished::at_end(guard, result, started, timeout, span).teach(learned)
            }));
            return Ok(());
        };
        // The fault is done inside the attempt's time, as the endpoint's own doing.
        let timing = Timing {
            timeout,
            callers_time,
            upload,
            learned,
        };
        let (fault, end) = fault;
        self.in_flight.push(Box::pin(timed(
            guard,
            span,
            timing,
            move |expires| async move {
                let send = client.send(request, added, expires);
                crate::fault::attempt(&fault, end, expires, send).await
            },
        )));
        Ok(())
    }

    /// The fault to do in an attempt to `endpoint` of the route's own cluster, and what ends
    /// its rule: an attempt-level rule's drawn now (counted, and named for the record), or
    /// else the request's fault on the answer.
    fn fault_for(&mut self, endpoint: SocketAddr) -> Option<(AttemptFault<'c>, RuleEnd)> {
        let context: &'c Context<'_> = self.context;
        // The alternate cluster of a fallback is not the route's: its rules leave it alone.
        let own_cluster = std::ptr::eq(self.cluster, &**context.cluster);
        let faults = &context.live.fault;
        let drawn = (own_cluster && faults.has_attempt_rules())
            .then(|| faults.draw_attempt(&self.parts.headers, context.trusted(), endpoint))
            .flatten();
        if let Some(drawn) = drawn {
            context.live.stats.fault(drawn.kind()).increment();
            self.record.fault = Some(drawn.kind());
            self.record.fault_rule = Some(drawn.rule_id());
            let end = faults.ending(&drawn);
            return Some(match drawn {
                Drawn::Configured(rule) => (AttemptFault::Borrowed(&rule.rule.action), end),
                Drawn::Runtime(rule) => (AttemptFault::Held(rule), end),
            });
        }
        let fault: &'c Drawn<'c> = self.on_answer?;
        self.record.fault = Some(fault.kind());
        Some((AttemptFault::Borrowed(fault), faults.ending(fault)))
    }

    /// The answer for a request whose attempt could not be sent.
    pub(super) fn failed(&self, NotSent(error, detail): NotSent) -> Attempted {
        Attempted {
            result: Err(error_response(error, &detail)),
            error: Some(error),
            outcome: AttemptOutcome::Cancelled,
            sent: self.sent,
            timed_out: false,
            upstream: None,
        }
    }

    /// The next attempt to finish, or `Woke` at `wake`.
    pub(super) async fn next(&mut self, wake: Option<Instant>) -> Event {
        let mut sleep = pin!(wake.map(|at| tokio::time::sleep_until(at.into())));
        let in_flight = &mut self.in_flight;
        poll_fn(|cx| {
            for index in 0..in_flight.len() {
                if let Poll::Ready(finished) = in_flight[index].as_mut().poll(cx) {
                    drop(in_flight.swap_remove(index));
                    return Poll::Ready(Event::Finished(finished));
                }
            }
            match sleep.as_mut().as_pin_mut().map(|sleep| sleep.poll(cx)) {
                Some(Poll::Ready(())) => Poll::Ready(Event::Woke),
                _ => Poll::Pending,
            }
        })
        .await
    }
}

/// How an attempt is timed and what its failure means.
struct Timing<'a> {
    /// Its per-try timeout (or what is left of the deadline).
    timeout: Duration,
    /// Whether that time is the caller's own.
    callers_time: bool,
    /// Its streaming upload, when it has one.
    upload: Option<Upload>,
    /// The learned per-try timeout its time tells, if the route learns one.
    learned: Option<&'a LearnedTimeout>,
}

/// An attempt, timed: `send` is given the instant its time ends.
async fn timed<S, F>(
    guard: EndpointGuard,
    span: Option<AttemptSpan>,
    timing: Timing<'_>,
    send: S,
) -> Finished
where
    S: FnOnce(tokio::time::Instant) -> F,
    F: Future<Output = Result<Response<UpstreamBody>, UpstreamError>>,
{
    let Timing {
        timeout,
        callers_time,
        upload,
        learned,
    } = timing;
    let started = tokio::time::Instant::now();
    let expires = expiry(started, timeout);
    let result = match send(expires).await {
        Ok(response) => Ok(response),
        Err(error) => Err(SendFailure::of(error, callers_time, upload.as_ref())),
    };
    Finished::at_end(guard, result, started, timeout, span).teach(learned)
}

/// When an attempt started at `started` runs out of time. One clock read starts both the
/// latency and the per-try timeout (and the one at the end is also the instant the attempt
/// is judged at). A timeout too long for an instant to hold waits 30 years, in effect
/// forever.
fn expiry(started: tokio::time::Instant, timeout: Duration) -> tokio::time::Instant {
    started
        .checked_add(timeout)
        .unwrap_or_else(|| started + Duration::from_secs(86400 * 365 * 30))
}

impl Finished {
    /// Tells the route's learned per-try timeout, if any, what this attempt took: an answer
    /// its latency, a timeout the time it waited (a censored sample: at least that). Other
    /// failures (refused, reset, the client's doing) say nothing of how long answers take.
    #[inline]
    fn teach(self, learned: Option<&LearnedTimeout>) -> Self {
        if let Some(learned) = learned {
            match &self.result {
                Ok(_) => learned.record_answer(self.latency, self.at),
                Err(SendFailure::Timeout) => learned.record_timeout(self.latency, self.at),
                Err(_) => {}
            }
        }
        self
    }

    /// An attempt that started at `started` and finished now with `result`.
    #[inline]
    fn at_end(
        mut guard: EndpointGuard,
        result: Result<Response<UpstreamBody>, SendFailure>,
        started: tokio::time::Instant,
        timeout: Duration,
        span: Option<AttemptSpan>,
    ) -> Self {
        let finished = tokio::time::Instant::now();
        guard.finish();
        Finished {
            guard,
            result,
            latency: finished.saturating_duration_since(started),
            at: finished.into_std(),
            timeout,
            span,
        }
    }
}
