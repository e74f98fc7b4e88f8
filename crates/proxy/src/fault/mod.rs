//! Faults injected on purpose: a route's `[[route.fault]]` rules delay its requests, answer
//! them in the upstream's place, reset or close the upstream connection, cut off or throttle
//! the upstream's answer, or take one of its endpoints down, so that its timeouts, retries,
//! hedges, breakers, outlier detection and fallbacks can be tested against a failure caused
//! on demand (Envoy's fault filter and Chaos Monkey are the models).
//!
//! # Where: `at = "request"` or `at = "attempt"`, and `endpoint`
//!
//! A request-level rule (the default) is drawn once, after admission and the cluster's
//! breaker, before the attempts (`pipeline::fault`): a faulted request has been admitted
//! and counted like any other. An attempt-level rule is drawn in each attempt the route
//! sends to its own cluster (retries and hedges included, not the fallback's alternate
//! cluster), once the attempt has picked its endpoint, inside the attempt's per-try timeout
//! (`pipeline::attempts::send`, through [`attempt`]): what it does is that attempt's
//! result, judged as a real one from that endpoint. A rule with an `endpoint` (one of the
//! cluster's, or `"random"`: picked when the config is loaded, logged as the route is built,
//! picked again by a reload) is done only in the attempts that pick it, so it is always an
//! attempt-level rule (an `at = "request"` is refused at load). Either way, what a fault
//! causes reaches the rest of the pipeline as the real failure it imitates would:
//!
//! - **Delay** (`delay`). *Request*: the request waits before its first attempt; the wait
//!   counts against the route's `timeout` and the caller's deadline and ends when the
//!   deadline comes (504 `deadline_exceeded`, or the `timeout` fallback, recorded in the
//!   cluster's breaker as a timeout). It holds its admission slots meanwhile. No per-try
//!   timeout nor hedge is triggered: they time attempts, and it comes before the first.
//!   *Attempt*: the attempt waits before it is sent, within its per-try timeout: a delay
//!   longer than that times the attempt out (a `Timeout` of that endpoint for its breaker
//!   and outlier detection, retried when the retry policy retries timeouts); a hedge goes
//!   when the attempt has been out for the hedge delay, as for a slow endpoint; the wait
//!   counts in the endpoint's latency (peak-EWMA steers away from it).
//! - **Abort** (`abort`). *Request*: its answer stands in for the attempts' answer, judged as
//!   an upstream's answer with that status ([`crate::outcome::AttemptOutcome::of_status`]):
//!   a 500 is a server error the cluster's breaker records and a fallback for
//!   `failed`/`server_error` may answer; a 503 or 429 is overload, which trips nothing. It
//!   is not retried (a retry would meet the same rule), and outlier detection does not see
//!   it, as no endpoint was asked. *Attempt*: it is the answer of the endpoint the attempt
//!   picked, without sending the request: retried by the retry policy (and its budget) as
//!   that status would be, recorded in that endpoint's breaker and outlier detection (a 5xx
//!   counts against it, 502/504 as gateway errors), and, as the last answer, in the
//!   cluster's breaker and answered by a fallback as the upstream's 5xx would be.
//! - **Reset** (`reset = true`) and **close before the head** (`close = "before_head"`): the
//!   upstream connection fails after the request was sent, with the error the HTTP/1.1
//!   client reports for a real reset or close (a `FailureKind::Reset`: the endpoint may have
//!   processed it). *Request*: the attempts' answer is the proxy's 502 `upstream_reset`,
//!   recorded in the cluster's breaker as a reset and answered by a `failed` fallback; not
//!   retried, not seen by outlier detection (no endpoint was asked). *Attempt*: that
//!   attempt's failure: retried when the method allows and `reset` is retried, counted
//!   against the endpoint (breaker, outlier detection as a gateway error); the last one is
//!   502 `upstream_reset` or the fallback's answer.
//! - **Close after the head** (`close = "after_head"`, `truncate_after`) and **throttle**
//!   (`throttle`) act on the upstream's answer: the request is sent and the real answer
//!   comes; its body is then cut off after `truncate_after` bytes with an error
//!   ([`body::Truncated`]), or handed on at the rate given ([`body::Throttled`]). Both wrap
//!   the endpoint's body below the guard that judges it (`forward::answer`), so a cut body
//!   is the endpoint's `BodyFailed`, exactly as a real upstream's truncated body is: its
//!   breaker and outlier detection count it, the cluster's breaker too (its permit waits for
//!   the body), and the client's connection sees the truncation (a short `Content-Length`
//!   body or a chunked one without its end, then the connection closed), not a clean end.
//!   Its head has gone to the client, so it is neither retried nor replaced by a fallback.
//!   A throttled body holds the endpoint in flight and the admission slots until it ends,
//!   as a slow upstream's does; the per-try timeout and hedges time the head only, so they
//!   do not fire for it. A client that goes away drops the body, which stops it.
//!   *Request*: every attempt of the faulted request has its answer altered. *Attempt*:
//!   drawn for each attempt.
//! - **Endpoint down** (`down = true`, `endpoint`): an attempt that picks that endpoint
//!   fails as a refused connection (`ConnectFailed`) without connecting: retried (even a
//!   POST, as it never left), counted against the endpoint in its breaker and in passive outlier detection,
//!   which ejects it so that the balancer stops picking it; the last failure is 502
//!   `connect_failed` or the fallback's answer. When the rule takes it down for every attempt
//!   (no `header`, 100 percent), the active health checks see it down too: as the config
//!   comes into force, the endpoint's state is marked (`Endpoint::set_down_by_fault`, a flag
//!   the state layer reads without knowing of faults) and its checks fail without
//!   connecting, so it turns unhealthy and the balancer leaves it; a config without the
//!   rule unmarks it and the checks bring it back. The health is the cluster's, so the
//!   endpoint is then out for every route to the cluster, as a killed instance would be. A
//!   rule limited by a header or a percentage leaves the checks alone (the endpoint is down
//!   only for some attempts).
//!
//! Every faulted request (or attempt) is counted by kind (`blastwall_fault_*_total`) and
//! its access-log line names the fault (`"fault"`: the request's rule, or the last fault
//! done in its attempts).
//!
//! Cost when a route has no rule: one branch on an empty slice before the attempts and one
//! in each attempt; no allocation, no clock read, no draw. A faulted attempt pays one
//! allocation for a body it alters. The draw uses [`crate::rng`], so unit tests reseed it.

#[cfg(test)]
mod action_tests;
mod attempt;
pub(crate) mod body;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::{HeaderMap, Response, header};
use rand::Rng;

pub(crate) use self::attempt::attempt;
use crate::body::{ProxyBody, full};
use crate::config::fault::{AbortConfig, FaultAction, FaultRule, FaultStage};
use crate::headers::retry_after_value;
use crate::record::FaultKind;

/// A route's fault rules, in file order: those drawn once per request, and those drawn in
/// each attempt.
#[derive(Debug, Default)]
pub(crate) struct RouteFaults {
    rules: Box<[FaultRule]>,
    attempt_rules: Box<[FaultRule]>,
}

impl RouteFaults {
    /// The rules of a route, as its config gives them.
    pub(crate) fn new(rules: &[FaultRule]) -> Self {
        let (attempt_rules, rules): (Vec<FaultRule>, Vec<FaultRule>) =
            (rules.iter().cloned()).partition(|rule| rule.at == FaultStage::Attempt);
        Self {
            rules: rules.into(),
            attempt_rules: attempt_rules.into(),
        }
    }

    /// The rules of route `route`, its endpoints taken down said in the log.
    pub(crate) fn for_route(route: &str, rules: &[FaultRule]) -> Self {
        for rule in rules {
            if let Some(endpoint) = &rule.endpoint {
                let picked = if endpoint.random {
                    "picked at random"
                } else {
                    "named"
                };
                let kind = rule.action.kind().as_str();
                tracing::info!(route, endpoint = %endpoint.address, picked, fault = kind, "fault rule: on the attempts that pick this endpoint");
            }
        }
        Self::new(rules)
    }

    /// Whether any rule is drawn in the attempts.
    #[inline]
    pub(crate) fn has_attempt_rules(&self) -> bool {
        !self.attempt_rules.is_empty()
    }

    /// The fault for an attempt of a request with these headers that picked `endpoint`:
    /// the first attempt-level rule that matches (a rule with an endpoint only on that
    /// endpoint) and wins its draw, as [`RouteFaults::draw`] chooses.
    pub(crate) fn draw_attempt(
        &self,
        headers: &HeaderMap,
        trusted: bool,
        endpoint: SocketAddr,
    ) -> Option<&FaultAction> {
        self.attempt_rules
            .iter()
            .find(|rule| {
                let on_endpoint = rule.endpoint.is_none_or(|only| only.address == endpoint);
                on_endpoint && matches(rule, headers, trusted) && drawn(rule.per_million)
            })
            .map(|rule| &rule.action)
    }

    /// The fault for a request with these headers: the first request-level rule whose
    /// header matches and whose percentage the draw falls in. A rule with a header matches
    /// only a `trusted` client's request: anyone else could fault their own requests at will
    /// and trip the cluster's breaker for every user. `None`, at one branch, when there are
    /// no rules.
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

/// Whether `rules` take the endpoint at `address` down for every attempt, whoever sends it
/// (no header, 100 percent): then its active health checks should see it down too (see
/// [`crate::endpoint::Endpoint::set_down_by_fault`]).
pub(crate) fn takes_down(rules: &[FaultRule], address: SocketAddr) -> bool {
    rules.iter().any(|rule| {
        rule.action == FaultAction::EndpointDown
            && rule.header.is_none()
            && rule.per_million >= 1_000_000
            && rule
                .endpoint
                .is_some_and(|endpoint| endpoint.address == address)
    })
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
            FaultAction::Reset => FaultKind::Reset,
            FaultAction::CloseBeforeHead => FaultKind::CloseBeforeHead,
            FaultAction::CloseAfterHead { .. } => FaultKind::CloseAfterHead,
            FaultAction::Throttle(_) => FaultKind::Throttle,
            FaultAction::EndpointDown => FaultKind::EndpointDown,
        }
    }

    /// Whether it acts on the upstream's answer (its body), rather than in its place.
    pub(crate) fn acts_on_answer(&self) -> bool {
        matches!(
            self,
            FaultAction::CloseAfterHead { .. } | FaultAction::Throttle(_)
        )
    }
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
