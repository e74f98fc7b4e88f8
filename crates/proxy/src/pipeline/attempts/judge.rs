//! Judging a finished attempt: what it says about its endpoint and cluster (recorded at
//! once, or when a streaming body ends), the answer it makes for the client, and what
//! follows: done, wait for a hedge, or retry when the retry policy allows.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use blastwall_policy::hedge::HedgePolicy;
use blastwall_policy::retry::{Failure, FailureKind, GiveUp, RetryDecision, RetryState};
use http::Response;

use super::super::Context;
use super::repeat::retry_after;
use super::send::{Finished, SendFailure};
use super::{Attempted, Verdict};
use crate::body::ProxyBody;
use crate::cluster::{Cluster, ClusterPermit};
use crate::endpoint::{Endpoint, EndpointGuard};
use crate::error::{ProxyError, error_response};
use crate::forward;
use crate::forward::answer::Unjudged;
use crate::outcome::{AttemptOutcome, ClientCause};
use crate::rng::with_rng;
use crate::upstream::{UpstreamBody, UpstreamError};

/// What [`Judged::judge`] needs to know about the request besides the attempt.
pub(super) struct Judged<'c, 'a> {
    pub(super) context: &'c Context<'a>,
    pub(super) cluster: &'c Arc<Cluster>,
    /// Whether other attempts (hedges) are still out.
    pub(super) others_in_flight: bool,
    /// Whether the body can be sent again.
    pub(super) replayable: bool,
    /// Attempts sent so far.
    pub(super) sent: u32,
}

impl Judged<'_, '_> {
    /// Records what a finished attempt says about its endpoint and decides what follows.
    pub(super) fn judge(
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
        let (outcome, failure) = classify(&result, guard.endpoint(), now);
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
                guard
                    .endpoint()
                    .note_served_at_once(guard.in_flight_at_send());
                cluster.record_streaming_head(guard, latency, now);
                // A success ends the request: the cluster's breaker waits for the body too.
                Some(Unjudged {
                    cluster: Arc::clone(cluster),
                    latency,
                    permit: permit.take(),
                })
            }
            _ => {
                match outcome {
                    AttemptOutcome::Overloaded { .. } => cluster.learn_refusal(guard, now),
                    AttemptOutcome::Success => {
                        guard
                            .endpoint()
                            .note_served_at_once(guard.in_flight_at_send());
                    }
                    _ => {}
                }
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

/// What a finished attempt at `endpoint` came to, and the failure the retry policy judges
/// (with an overloaded answer's `Retry-After`). A 503 is told busy or broken by what the
/// endpoint has served lately (see [`crate::outcome::broken_503`]).
fn classify(
    result: &Result<Response<UpstreamBody>, SendFailure>,
    endpoint: &Endpoint,
    now: Instant,
) -> (AttemptOutcome, Failure) {
    let (outcome, kind, retry_after) = match result {
        Ok(response) => {
            // Only an overloaded answer's Retry-After matters (to retry or not): the clock
            // and the header lookup are not paid on every response.
            let status = response.status().as_u16();
            let overloaded = matches!(status, 429 | 503);
            let retry_after = overloaded
                .then(|| retry_after(response.headers(), SystemTime::now()))
                .flatten();
            let outcome = if status == 503 {
                AttemptOutcome::of_503(
                    retry_after,
                    endpoint.serving_nothing_for(now),
                    endpoint.success_latency(),
                )
            } else {
                AttemptOutcome::of_status(response.status(), retry_after)
            };
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
