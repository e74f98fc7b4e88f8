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
//!
//! The parts: [`send`] sends an attempt and keeps those in flight, [`judge`] decides what a
//! finished one means and what follows, [`repeat`] reads what the request says about
//! repeating it.

mod judge;
mod repeat;
mod send;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use blastwall_policy::hedge::{HedgeDecision, NoHedge};
use blastwall_policy::retry::Idempotency;
use http::Response;
use http::request::Parts;
use smallvec::SmallVec;

use self::judge::Judged;
pub(super) use self::repeat::idempotency;
use self::send::{AttemptSet, Finished};
use super::Context;
use super::body::RequestBody;
use super::deadline::Deadline;
use crate::body::ProxyBody;
use crate::cluster::{Cluster, ClusterPermit};
use crate::error::{ProxyError, error_response};
use crate::fault::Drawn;
use crate::outcome::{AttemptOutcome, ClientCause};
use crate::record::Record;

/// What the attempts came to.
#[derive(Debug)]
pub(super) struct Attempted {
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
///
/// `on_answer` is a request-level fault rule's that acts on the answer: it is done on each
/// attempt's (see [`crate::fault`]); attempt-level rules are drawn as each attempt is sent,
/// and the last fault done is written into `record`.
pub(super) async fn run(
    context: &Context<'_>,
    cluster: &Arc<Cluster>,
    parts: &mut Parts,
    mut body: RequestBody,
    deadline: Option<Deadline>,
    permit: &mut Option<ClusterPermit>,
    (on_answer, record): (Option<&Drawn<'_>>, &mut Record),
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
        on_answer,
        record,
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
                    let decision = policy.poll_hedge(state, now, cluster.retry_budget());
                    hedge_if_due(decision, &mut attempt_set, &mut body, deadline, now);
                }
            }
        }
        if attempt_set.in_flight.is_empty() && next_retry.is_none() {
            // Every attempt failed and no retry is coming: the last failure stands.
            return last.unwrap_or_else(|| unanswered(cluster, attempt_set.sent));
        }
    }
}

/// Sends the hedge `decision` asks for, counting it (or the budget that refused it).
fn hedge_if_due(
    decision: HedgeDecision,
    attempt_set: &mut AttemptSet<'_, '_>,
    body: &mut RequestBody,
    deadline: Option<Deadline>,
    now: Instant,
) {
    let stats = &attempt_set.context.live.stats;
    match decision {
        HedgeDecision::Send => {
            if attempt_set.hedge(body, deadline, now) {
                stats.hedges.increment();
            }
        }
        HedgeDecision::Stop(NoHedge::BudgetExhausted) => stats.budget_exhausted.increment(),
        HedgeDecision::WaitUntil(_) | HedgeDecision::Stop(_) => {}
    }
}

/// The answer when every attempt ended without one to give (each was cancelled).
fn unanswered(cluster: &Cluster, sent: u32) -> Attempted {
    Attempted {
        result: Err(error_response(
            ProxyError::NoHealthyEndpoint,
            &format!("no endpoint of cluster \"{}\" answered", cluster.name()),
        )),
        error: Some(ProxyError::NoHealthyEndpoint),
        outcome: AttemptOutcome::Cancelled,
        sent,
        timed_out: false,
        upstream: None,
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

/// The answer when the deadline passed before any attempt answered: the caller's doing
/// when the deadline was its own.
pub(super) fn timed_out(
    cluster: &Cluster,
    sent: u32,
    deadline: Option<Deadline>,
    now: Instant,
) -> Attempted {
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
