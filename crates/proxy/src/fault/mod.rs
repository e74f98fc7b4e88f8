//! Faults injected on purpose: a route's `[[route.fault]]` rules delay its requests or
//! answer them in the upstream's place, so that its timeouts, retries, breakers and
//! fallbacks can be tested against a failure caused on demand (Envoy's fault filter is the
//! model).
//!
//! Where it sits: after admission and the cluster's breaker, before the attempts. A faulted
//! request has been admitted and counted like any other, and what the fault causes reaches
//! the rest of the pipeline as a real failure of the upstream would:
//! - **Delay**: the request waits before its first attempt, for a time drawn from the
//!   rule's distribution (fixed, uniform, normal or log-normal by p50/p99: the policy crate's
//!   [`Latency`], the one the mock draws from too), and the wait counts against the
//!   route's `timeout` and the caller's deadline: it ends when the deadline comes, and the
//!   request is then answered as one that ran out of time (504 `deadline_exceeded`, or the
//!   `timeout` fallback), recorded in the cluster's breaker as a timeout. While it waits it
//!   holds its admission slots, as a request to a slow upstream does. The per-try timeout
//!   and hedges are not triggered by it: they time attempts, and the delay comes before the
//!   first (a delay on the answer, which would, is not built yet).
//! - **Abort**: its answer stands in for the attempts' answer, judged as an upstream's answer
//!   with that status is ([`crate::outcome::AttemptOutcome::of_status`]): a 500 is a server
//!   error that the cluster's breaker records as a failure and that a fallback for
//!   `failed`/`server_error` may answer; a 503 or 429 is overload, which trips no breaker.
//!   It is drawn once per request, not per attempt: it is not retried (a retry would only
//!   meet the same rule), and outlier detection, which judges endpoints, does not see it,
//!   as no endpoint was asked.
//!
//! Cost when a route has no rule: one branch on an empty slice; no allocation, no clock
//! read, no draw. The draw uses [`crate::rng`], so unit tests reseed it.

#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

use blastwall_policy::latency::Latency;
use http::{HeaderMap, Response, header};
use rand::Rng;

use crate::body::{ProxyBody, full};
use crate::config::fault::{AbortConfig, FaultAction, FaultRule};
use crate::headers::retry_after_value;
use crate::record::FaultKind;

/// A route's fault rules, in file order.
#[derive(Debug, Default)]
pub(crate) struct RouteFaults {
    rules: Box<[FaultRule]>,
}

impl RouteFaults {
    /// The rules of a route, as its config gives them.
    pub(crate) fn new(rules: &[FaultRule]) -> Self {
        Self {
            rules: rules.into(),
        }
    }

    /// The fault for a request with these headers: the first rule whose header matches and
    /// whose percentage the draw falls in. A rule with a header matches only a `trusted`
    /// client's request: anyone else could fault their own requests at will and trip the
    /// cluster's breaker for every user. `None`, at one branch, when there are no rules.
    pub(crate) fn draw(&self, headers: &HeaderMap, trusted: bool) -> Option<&FaultAction> {
        if self.rules.is_empty() {
            return None;
        }
        self.rules
            .iter()
            .find(|rule| matches(rule, headers, trusted) && drawn(rule.per_million))
            .map(|rule| &rule.action)
    }
}

/// Whether the request carries the rule's header (with its value, when the rule gives one)
/// from a trusted client.
fn matches(rule: &FaultRule, headers: &HeaderMap, trusted: bool) -> bool {
    match &rule.header {
        None => true,
        Some(_) if !trusted => false,
        Some((name, None)) => headers.contains_key(name),
        Some((name, Some(value))) => headers.get_all(name).iter().any(|given| given == value),
    }
}

/// Whether this request falls in `per_million` (no draw at the bounds).
fn drawn(per_million: u32) -> bool {
    match per_million {
        0 => false,
        1_000_000.. => true,
        share => crate::rng::with_rng(|rng| rng.random_range(0..1_000_000)) < share,
    }
}

impl FaultAction {
    /// The kind the record and the counters keep.
    pub(crate) fn kind(&self) -> FaultKind {
        match self {
            FaultAction::Delay(_) => FaultKind::Delay,
            FaultAction::Abort(_) => FaultKind::Abort,
        }
    }
}

/// The delay of one faulted request, drawn from its rule's distribution with [`crate::rng`]
/// (a fixed delay draws nothing).
pub(crate) fn draw_delay(latency: &Latency) -> Duration {
    crate::rng::with_rng(|rng| latency.sample_with(rng))
}

/// Waits out a delay fault of `delay` from `now`, or until `deadline`, whichever is first.
pub(crate) async fn delay(delay: Duration, now: Instant, deadline: Option<Instant>) {
    let until = now + delay;
    let until = deadline.map_or(until, |deadline| deadline.min(until));
    tokio::time::sleep_until(until.into()).await;
}

/// The answer of an abort fault.
pub(crate) fn abort_response(abort: &AbortConfig) -> Response<ProxyBody> {
    let mut response = Response::new(full(abort.body.clone()));
    *response.status_mut() = abort.status;
    if !abort.body.is_empty() {
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("text/plain"),
        );
    }
    if let Some(retry_after) = abort.retry_after {
        (response.headers_mut()).insert(header::RETRY_AFTER, retry_after_value(retry_after));
    }
    response
}
