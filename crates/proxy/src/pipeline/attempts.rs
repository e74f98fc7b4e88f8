//! The attempts of one request against one cluster: retries, hedges, per-try timeouts and
//! the request's deadline, decided by the policy crate's sans-IO machines.
//!
//! One loop waits for whichever comes first: an attempt finishing, the next retry's time,
//! the next hedge's time, or the deadline. Everything that changes state happens in that
//! loop, in one task, so there is no locking and no race between a hedge and a retry: the
//! loop is the request's state machine, and its states are its local variables.
//!
//! - A retry goes, after its backoff (or the upstream's `Retry-After`), to another endpoint
//!   when one can take it, and only when [`RetryPolicy::decide`] allows it: the failure is
//!   retryable, repeating it is safe for the method, attempts and time remain, and the
//!   cluster's budget has a retry to spend.
//! - A hedge goes to another endpoint when the first attempt has been out for the hedge
//!   delay; the first acceptable answer wins and the others are dropped (cancelled). While a
//!   hedge is out, a failure of one copy waits for the other rather than retrying at once.
//! - Every attempt is bounded by the per-try timeout and by what is left of the deadline,
//!   which also travels upstream in the deadline header.
//! - An attempt the client ended (its own deadline cut it short, it stalled or broke its
//!   body) is classified as it finishes ([`ClientCause`]): it is recorded as saying nothing
//!   about the endpoint, and it is not retried.

use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime};

use blastwall_policy::hedge::{HedgeDecision, HedgePolicy, NoHedge};
use blastwall_policy::retry::{
    Failure, FailureKind, GiveUp, Idempotency, RetryDecision, RetryState,
};
use http::request::Parts;
use http::{HeaderMap, Method, Response, header};
use smallvec::SmallVec;

use super::Context;
use super::body::{RequestBody, Upload, UploadState};
use super::deadline::{self, Deadline};
use crate::body::ProxyBody;
use crate::cluster::{Cluster, ClusterPermit};
use crate::config::UpstreamProtocol;
use crate::endpoint::EndpointGuard;
use crate::error::{ProxyError, error_response};
use crate::forward;
use crate::forward::answer::Unjudged;
use crate::outcome::{AttemptOutcome, ClientCause};
use crate::rng::with_rng;
use crate::telemetry::span::AttemptSpan;
use crate::upstream::{UpstreamBody, UpstreamError};

/// What the attempts came to.
#[derive(Debug)]
pub struct Attempted {
    /// The response for the client: `Ok` when an endpoint answered acceptably, `Err` when
    /// the request failed (the upstream's own error response, or the proxy's), which a
    /// fallback may replace.
    pub result: Result<Response<ProxyBody>, Response<ProxyBody>>,
    /// Why, when the failed answer is the proxy's own (not the upstream's).
    pub error: Option<ProxyError>,
    /// The outcome of the attempt whose answer this is.
    pub outcome: AttemptOutcome,
    /// Attempts sent, hedges included.
    pub sent: u32,
    /// Whether the request ran out of time (rather than out of attempts).
    pub timed_out: bool,
    /// The endpoint whose answer (or failure) this is, and its time to the response head.
    pub upstream: Option<(SocketAddr, Duration)>,
}

/// One attempt in flight.
type InFlight<'a> = Pin<Box<dyn Future<Output = Finished> + Send + 'a>>;

/// One attempt, finished.
struct Finished {
    guard: EndpointGuard,
    result: Result<Response<UpstreamBody>, SendFailure>,
    latency: Duration,
    /// When it finished: the instant it is judged at.
    at: Instant,
    /// The per-try timeout it had.
    timeout: Duration,
    /// Its span, when the request is traced.
    span: Option<AttemptSpan>,
}

enum SendFailure {
    Upstream(UpstreamError),
    Timeout,
    /// The client's doing, not the endpoint's.
    Client(ClientCause, Option<UpstreamError>),
}

impl SendFailure {
    /// What a failed send means: the client's doing when the attempt ran out of the
    /// caller's own time (`callers_time`), or when its streaming body (`upload`) had the
    /// attempt waiting for the client or failed; the endpoint's otherwise.
    fn of(error: UpstreamError, callers_time: bool, upload: Option<&Upload>) -> Self {
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

/// What happens next after an attempt finished.
enum Verdict {
    /// This is the answer.
    Done(Attempted),
    /// A failure, returned if nothing better comes: wait for the other attempts in flight,
    /// or retry at `retry_at`.
    Continue {
        failed: Attempted,
        retry_at: Option<Instant>,
    },
}

/// Runs the attempts of a request against `cluster` until one answers acceptably, the retry
/// policy gives up, or the deadline passes. A success whose body is still to come takes the
/// cluster breaker's `permit` along, to be recorded when the body ends; otherwise the
/// caller records it with the outcome.
pub async fn run(
    context: &Context<'_>,
    cluster: &Arc<Cluster>,
    parts: &mut Parts,
    mut body: RequestBody,
    deadline: Option<Deadline>,
    permit: &mut Option<ClusterPermit>,
) -> Attempted {
    let live = context.live;
    let now = Instant::now();
    let idempotency = idempotency(parts);
    let mut retry = live
        .retry
        .start(idempotency, deadline.map(|deadline| deadline.at));
    let mut hedge = live
        .hedge
        .as_ref()
        .filter(|_| idempotency == Idempotency::Idempotent && body.is_replayable())
        .map(|policy| (policy, policy.start(now)));
    let mut attempt_set = AttemptSet {
        context,
        cluster,
        parts,
        tried: SmallVec::new(),
        in_flight: SmallVec::new(),
        sent: 0,
    };
    if let Err(not_sent) = attempt_set.launch(&mut body, deadline, now) {
        return attempt_set.failed(not_sent);
    }
    let mut next_retry: Option<Instant> = None;
    // The last failed answer, returned if nothing better comes.
    let mut last: Option<Attempted> = None;
    loop {
        let hedge_due = hedge
            .as_ref()
            .and_then(|(_, state)| state.next_hedge_at())
            .filter(|_| !attempt_set.in_flight.is_empty());
        let wake = [next_retry, hedge_due, deadline.map(|deadline| deadline.at)]
            .into_iter()
            .flatten()
            .min();
        match attempt_set.next(wake).await {
            Event::Finished(finished) => {
                let others = !attempt_set.in_flight.is_empty();
                let judged = Judged {
                    context,
                    cluster,
                    others_in_flight: others,
                    replayable: body.is_replayable(),
                    sent: attempt_set.sent,
                };
                let verdict = judged.judge(
                    finished,
                    &mut retry,
                    hedge.as_ref().map(|(policy, _)| &***policy),
                    permit,
                );
                match verdict {
                    Verdict::Done(attempted) => return attempted,
                    Verdict::Continue { failed, retry_at } => {
                        next_retry = retry_at.or(next_retry);
                        last = Some(failed);
                    }
                }
            }
            Event::Woke => {
                let now = Instant::now();
                if deadline.is_some_and(|deadline| now >= deadline.at) {
                    live.stats.deadline_exceeded.increment();
                    return timed_out(cluster, attempt_set.sent, deadline, now);
                }
                if next_retry.is_some_and(|at| now >= at) {
                    next_retry = None;
                    live.stats.retries.increment();
                    if let Err(not_sent) = attempt_set.launch(&mut body, deadline, now) {
                        return last.unwrap_or_else(|| attempt_set.failed(not_sent));
                    }
                }
                if let Some((policy, state)) = hedge.as_mut()
                    && state.next_hedge_at().is_some_and(|at| now >= at)
                    && !attempt_set.in_flight.is_empty()
                {
                    match policy.poll_hedge(state, now, cluster.retry_budget()) {
                        HedgeDecision::Send => {
                            if attempt_set.hedge(&mut body, deadline, now) {
                                live.stats.hedges.increment();
                            }
                        }
                        HedgeDecision::Stop(NoHedge::BudgetExhausted) => {
                            live.stats.budget_exhausted.increment();
                        }
                        HedgeDecision::WaitUntil(_) | HedgeDecision::Stop(_) => {}
                    }
                }
            }
        }
        if attempt_set.in_flight.is_empty() && next_retry.is_none() {
            // Every attempt failed and no retry is coming: the last failure stands.
            return last.unwrap_or_else(|| Attempted {
                result: Err(error_response(
                    ProxyError::NoHealthyEndpoint,
                    &format!("no endpoint of cluster \"{}\" answered", cluster.name()),
                )),
                error: Some(ProxyError::NoHealthyEndpoint),
                outcome: AttemptOutcome::Cancelled,
                sent: attempt_set.sent,
                timed_out: false,
                upstream: None,
            });
        }
    }
}

/// Why an attempt could not be sent, and the detail for the client.
struct NotSent(ProxyError, String);

// NOTE: the finished attempt is moved, not boxed: a few hundred bytes copied cost less than
// the allocation and free on every request.
#[allow(clippy::large_enum_variant)]
enum Event {
    Finished(Finished),
    Woke,
}

/// The attempts of one request: those in flight, and the endpoints already tried.
// NOTE: kept inline up to two tried and one in flight (most requests take one attempt), so
// a request's attempts allocate nothing but the attempt's own future.
struct AttemptSet<'c, 'a> {
    context: &'c Context<'a>,
    cluster: &'c Cluster,
    parts: &'c mut Parts,
    tried: SmallVec<[SocketAddr; 2]>,
    in_flight: SmallVec<[InFlight<'c>; 1]>,
    sent: u32,
}

impl<'c> AttemptSet<'c, '_> {
    /// Sends an attempt to an endpoint not tried yet when one can take it. `Err` is the
    /// answer for the client when no attempt can be sent at all.
    fn launch(
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
        match route.fallback.cluster {
            Some(alternate) if !std::ptr::eq(self.cluster, &**self.context.cluster) => {
                alternate.per_try_timeout
            }
            _ => route.attempts.per_try_timeout,
        }
    }

    /// Sends a hedge to an endpoint that is not already working on this request; `false`
    /// when there is none.
    fn hedge(&mut self, body: &mut RequestBody, deadline: Option<Deadline>, now: Instant) -> bool {
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
        self.tried.push(guard.endpoint().address());
        self.sent += 1;
        // The attempt's span starts here because its id travels upstream as the parent.
        let span = (context.trace.as_ref()).map(|trace| {
            trace.attempt(request.headers_mut(), self.sent, guard.endpoint().address())
        });
        let client = cluster.client();
        self.in_flight.push(Box::pin(async move {
            // NOTE: one clock read starts both the latency and the per-try timeout, and the
            // one at the end is also the instant the attempt is judged at. A timeout too
            // long for an instant to hold waits 30 years, in effect forever.
            let started = tokio::time::Instant::now();
            let expires = started
                .checked_add(timeout)
                .unwrap_or_else(|| started + Duration::from_secs(86400 * 365 * 30));
            let result = match client.send(request, added, expires).await {
                Ok(response) => Ok(response),
                Err(error) => Err(SendFailure::of(error, callers_time, upload.as_ref())),
            };
            let finished = tokio::time::Instant::now();
            Finished {
                guard,
                result,
                latency: finished.saturating_duration_since(started),
                at: finished.into_std(),
                timeout,
                span,
            }
        }));
        Ok(())
    }

    /// The answer for a request whose attempt could not be sent.
    fn failed(&self, NotSent(error, detail): NotSent) -> Attempted {
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
    async fn next(&mut self, wake: Option<Instant>) -> Event {
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

/// What [`Judged::judge`] needs to know about the request besides the attempt.
struct Judged<'c, 'a> {
    context: &'c Context<'a>,
    cluster: &'c Arc<Cluster>,
    /// Whether other attempts (hedges) are still out.
    others_in_flight: bool,
    /// Whether the body can be sent again.
    replayable: bool,
    /// Attempts sent so far.
    sent: u32,
}

impl Judged<'_, '_> {
    /// Records what a finished attempt says about its endpoint and decides what follows.
    fn judge(
        &self,
        finished: Finished,
        retry: &mut RetryState,
        hedge: Option<&HedgePolicy>,
        permit: &mut Option<ClusterPermit>,
    ) -> Verdict {
        let Finished {
            guard,
            result,
            latency,
            at: now,
            timeout,
            span,
        } = finished;
        let (outcome, failure) = classify(&result);
        let unjudged = self.record(&guard, &result, outcome, latency, now, permit);
        if let (Some(trace), Some(span)) = (&self.context.trace, span) {
            // The attempt's span ends with its answer (it began as the attempt was sent, its
            // id upstream as the parent).
            trace.end_attempt(
                span,
                result.as_ref().ok().map(|answer| answer.status().as_u16()),
            );
        }
        let endpoint = guard.endpoint().address();
        let upstream = Some((endpoint, latency));
        let (response, error) = match result {
            Ok(response) if outcome == AttemptOutcome::Success => {
                if let Some(hedge) = hedge {
                    hedge.record(latency, now);
                }
                let route = self.context.route;
                return Verdict::Done(Attempted {
                    result: Ok(forward::downstream_response(
                        route, response, guard, unjudged,
                    )),
                    error: None,
                    outcome,
                    sent: self.sent,
                    timed_out: false,
                    upstream,
                });
            }
            Ok(response) => {
                let route = self.context.route;
                (
                    forward::downstream_response(route, response, guard, None),
                    None,
                )
            }
            Err(failed) => self.failed_answer(failed, endpoint, timeout),
        };
        let failed = Attempted {
            result: Err(response),
            error,
            outcome,
            sent: self.sent,
            timed_out: outcome == AttemptOutcome::ClientCaused(ClientCause::Deadline),
            upstream,
        };
        self.after_failure(failed, failure, retry, now)
    }

    /// Records the attempt's outcome for its endpoint and cluster; a success whose body is
    /// still to come is judged when the body ends (see [`forward::answer`]), and is returned
    /// unjudged.
    fn record(
        &self,
        guard: &EndpointGuard,
        result: &Result<Response<UpstreamBody>, SendFailure>,
        outcome: AttemptOutcome,
        latency: Duration,
        now: Instant,
        permit: &mut Option<ClusterPermit>,
    ) -> Option<Unjudged> {
        let cluster = self.cluster;
        match result {
            Ok(response)
                if outcome == AttemptOutcome::Success && !response.body().is_complete() =>
            {
                cluster.record_streaming_head(guard, latency, now);
                // A success ends the request: the cluster's breaker waits for the body too.
                Some(Unjudged {
                    cluster: Arc::clone(cluster),
                    latency,
                    permit: permit.take(),
                })
            }
            _ => {
                cluster.record_outcome(guard, outcome, latency, now);
                None
            }
        }
    }

    /// The proxy's answer for an attempt that failed to get a response.
    // NOTE: what the client reads names the cluster, never the endpoint nor the error's own
    // text (an I/O or TLS error may name an address or a host): those go to the log here,
    // and to the access log and the admin API as the attempt's upstream.
    fn failed_answer(
        &self,
        failed: SendFailure,
        endpoint: SocketAddr,
        timeout: Duration,
    ) -> (Response<ProxyBody>, Option<ProxyError>) {
        let cluster = self.cluster;
        match failed {
            SendFailure::Timeout => {
                tracing::debug!(cluster = cluster.name(), %endpoint, ?timeout, "upstream request timed out");
                let detail = format!(
                    "an endpoint of cluster \"{}\" did not answer within {timeout:?}",
                    cluster.name()
                );
                own_error(ProxyError::UpstreamTimeout, &detail)
            }
            SendFailure::Upstream(error) => {
                tracing::debug!(cluster = cluster.name(), %endpoint, %error, "upstream request failed");
                let (proxy_error, what) = if error.kind().never_processed() {
                    (ProxyError::ConnectFailed, "could not be reached")
                } else {
                    (
                        ProxyError::UpstreamReset,
                        "failed before its answer was complete",
                    )
                };
                let detail = format!("an endpoint of cluster \"{}\" {what}", cluster.name());
                own_error(proxy_error, &detail)
            }
            SendFailure::Client(cause, error) => client_caused(cause, error.as_ref()),
        }
    }

    /// What follows a failed attempt: wait for a hedge still out, give up, or retry when
    /// the retry policy allows.
    fn after_failure(
        &self,
        failed: Attempted,
        failure: Failure,
        retry: &mut RetryState,
        now: Instant,
    ) -> Verdict {
        if self.others_in_flight {
            // A hedge may still answer; decide about retrying when every copy is back.
            return Verdict::Continue {
                failed,
                retry_at: None,
            };
        }
        // The client's doing is not the endpoint's: another endpoint would fare no better.
        if !self.replayable || matches!(failed.outcome, AttemptOutcome::ClientCaused(_)) {
            return Verdict::Done(failed);
        }
        let cluster = self.cluster;
        let live = self.context.live;
        let decision =
            with_rng(|rng| (live.retry).decide(retry, &failure, now, rng, cluster.retry_budget()));
        match decision {
            RetryDecision::RetryAfter(wait) => Verdict::Continue {
                failed,
                retry_at: Some(now + wait),
            },
            RetryDecision::GiveUp(reason) => {
                if reason == GiveUp::BudgetExhausted {
                    live.stats.budget_exhausted.increment();
                }
                Verdict::Done(failed)
            }
        }
    }
}

/// What a finished attempt came to, and the failure the retry policy judges (with an
/// overloaded answer's `Retry-After`).
fn classify(result: &Result<Response<UpstreamBody>, SendFailure>) -> (AttemptOutcome, Failure) {
    let (outcome, kind, retry_after) = match result {
        Ok(response) => {
            // Only an overloaded answer's Retry-After matters (to retry or not): the clock
            // and the header lookup are not paid on every response.
            let overloaded = matches!(response.status().as_u16(), 429 | 503);
            let retry_after = overloaded
                .then(|| retry_after(response.headers(), SystemTime::now()))
                .flatten();
            let outcome = AttemptOutcome::of_status(response.status(), retry_after);
            (
                outcome,
                FailureKind::Status(response.status().as_u16()),
                retry_after,
            )
        }
        Err(SendFailure::Timeout) => (AttemptOutcome::Timeout, FailureKind::Timeout, None),
        Err(SendFailure::Upstream(error)) => {
            (AttemptOutcome::of_failure(error.kind()), error.kind(), None)
        }
        Err(SendFailure::Client(cause, _)) => (
            AttemptOutcome::ClientCaused(*cause),
            FailureKind::Other,
            None,
        ),
    };
    let mut failure = Failure::new(kind);
    failure.retry_after = retry_after;
    (outcome, failure)
}

/// The proxy's own answer for `error`, with its kind for the request's record.
fn own_error(error: ProxyError, detail: &str) -> (Response<ProxyBody>, Option<ProxyError>) {
    (error_response(error, detail), Some(error))
}

/// The answer for an attempt the client ended.
fn client_caused(
    cause: ClientCause,
    error: Option<&UpstreamError>,
) -> (Response<ProxyBody>, Option<ProxyError>) {
    match cause {
        ClientCause::Deadline => own_error(
            ProxyError::DeadlineExceeded,
            "no answer came within the time the request's caller gave it",
        ),
        ClientCause::SlowBody => own_error(
            ProxyError::BodyReadTimeout,
            "the request body did not arrive in time",
        ),
        ClientCause::BodyFailed => own_error(
            ProxyError::BadRequest,
            &match error {
                Some(error) => format!("the request body could not be read: {error}"),
                None => "the request body could not be read".to_owned(),
            },
        ),
    }
}

/// The answer when the deadline passed before any attempt answered: the caller's doing
/// when the deadline was its own.
fn timed_out(cluster: &Cluster, sent: u32, deadline: Option<Deadline>, now: Instant) -> Attempted {
    let late = deadline.map_or(Duration::ZERO, |deadline| {
        now.saturating_duration_since(deadline.at)
    });
    let outcome = match deadline {
        Some(Deadline { callers: true, .. }) => AttemptOutcome::ClientCaused(ClientCause::Deadline),
        _ => AttemptOutcome::Timeout,
    };
    Attempted {
        result: Err(error_response(
            ProxyError::DeadlineExceeded,
            &format!(
                "no endpoint of cluster \"{}\" answered before the request's deadline ({sent} attempts; {late:?} past it)",
                cluster.name()
            ),
        )),
        error: Some(ProxyError::DeadlineExceeded),
        outcome,
        sent,
        timed_out: true,
        upstream: None,
    }
}

const IDEMPOTENCY_KEY: http::HeaderName = http::HeaderName::from_static("idempotency-key");

/// Whether repeating the request is harmless: the methods RFC 9110 §9.2.2 calls idempotent,
/// or any request carrying an `Idempotency-Key` (the server then deduplicates).
pub fn idempotency(parts: &Parts) -> Idempotency {
    let idempotent = matches!(
        parts.method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    ) || parts.headers.contains_key(IDEMPOTENCY_KEY);
    if idempotent {
        Idempotency::Idempotent
    } else {
        Idempotency::NonIdempotent
    }
}

/// The delay a `Retry-After` asks for: delta-seconds, or an HTTP date (a date in the past
/// asks for no delay). `None` when absent or unreadable.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use http::{HeaderValue, Request};

    use super::*;

    fn parts(method: Method) -> Parts {
        Request::builder()
            .method(method)
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    #[test]
    fn idempotent_methods_or_an_idempotency_key_make_a_request_repeatable() {
        assert_eq!(idempotency(&parts(Method::GET)), Idempotency::Idempotent);
        assert_eq!(idempotency(&parts(Method::PUT)), Idempotency::Idempotent);
        assert_eq!(
            idempotency(&parts(Method::POST)),
            Idempotency::NonIdempotent
        );
        let mut keyed = parts(Method::POST);
        keyed
            .headers
            .insert("idempotency-key", HeaderValue::from_static("abc"));
        assert_eq!(idempotency(&keyed), Idempotency::Idempotent);
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let mut headers = HeaderMap::new();
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(3)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(10));
        headers.insert(header::RETRY_AFTER, HeaderValue::from_str(&later).unwrap());
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(10)));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(10));
        headers.insert(
            header::RETRY_AFTER,
            HeaderValue::from_str(&earlier).unwrap(),
        );
        assert_eq!(retry_after(&headers, now), Some(Duration::ZERO));
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers, now), None);
    }
}
