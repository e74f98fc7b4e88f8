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
//! picked again by a reload; for a rule made at run time, picked once as it is made and
//! shown in its JSON) is done only in the attempts that pick it, so it is always an
//! attempt-level rule (an `at = "request"` is refused at load, and by the admin API). Either way, what a fault
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
//!   `connect_failed` or the fallback's answer. When the rule takes it down for every
//!   attempt (no `header`, 100 percent, no `first`), the active health checks see it down
//!   too: as the config comes into force, the endpoint's state is marked (`Endpoint::set_down_by_fault`, a flag
//!   the state layer reads without knowing of faults) and its checks fail without
//!   connecting, so it turns unhealthy and the balancer leaves it; a config without the
//!   rule unmarks it and the checks bring it back. A rule made at run time marks it the
//!   same way while it is in force (not with a `first` either, being down only for some
//!   attempts): as it is made, deleted or cleared by the kill switch, at once, and as it
//!   starts (`after`) or expires, within the sweeper's period; the kill switch unmarks the
//!   config's too while it silences them (`reload::Snapshot::mark_endpoints_down` decides,
//!   from every rule in force, so several rules on one endpoint keep it marked until the
//!   last goes, and a reload marks the endpoints it rebuilds). The health is the cluster's, so the
//!   endpoint is then out for every route to the cluster, as a killed instance would be. A
//!   rule limited by a header or a percentage leaves the checks alone (the endpoint is down
//!   only for some attempts).
//!
//! Every faulted request (or attempt) is counted by kind (`blastwall_fault_*_total`) and
//! its access-log line names the fault (`"fault"`: the request's rule, or the last fault
//! done in its attempts) and its rule (`"fault_rule"`, the one that did that fault).
//!
//! Whom: a rule applies to its route's requests (or, made at run time, to a route's or to
//! every route of a cluster, see [`table`]; drawn before the config's, per request or per
//! attempt alike), to those with a header from a trusted client,
//! to a percentage of them, to the first N only (`first`, then it is spent), within a time
//! window (config rules: wall-clock `from`/`until`; runtime rules: `after` and `ttl` from
//! their creation). The faults' kill switch removes the runtime rules and silences the
//! config's until the next reload.
//!
//! # Safety: a fault in progress ends with its rule
//!
//! A delay (up to an hour) and a throttled body (as long as its body takes) last after
//! they are drawn, holding the request's admission slots; they must not outlive their
//! rule, or a kill switch or a `ttl` would leave other users refused by a route's
//! concurrency limit for as long. So each waits on its rule's end as well ([`ending`]):
//! a delay, request- or attempt-level, waits until the earliest of its drawn time, the
//! deadline (or the attempt's time), its rule's expiry (a runtime rule's `ttl`, a config
//! rule's `until`), the kill switch (which ends every fault in progress, config or runtime,
//! a spent rule's too) and the rule's removal by an operator's delete or a reload that
//! takes its target away; then the request goes on to its attempts (or the attempt is
//! sent). A throttled body then hands the rest on as it comes. A cut (`truncate_after`)
//! stands: the answer's length was decided with it. A rule spent by its `first` lets its
//! last faults finish; a reload that changes a config rule does not end its faults in
//! progress (their time, and the kill switch, still do). What ends them is a
//! `tokio::sync::watch` channel of the table's, subscribed to only by a faulted request and
//! waited on with the fault's own timer: a request without a fault does not look at it.
//!
//! Cost when a route has no rule and nothing was made at run time: one branch on an empty
//! slice and one relaxed atomic load before the attempts, and the same in each attempt (the
//! table counts its attempt-level rules apart); no allocation, no clock read, no draw, no
//! lock. A faulted attempt pays one allocation for a
//! body it alters. The draw uses [`crate::rng`], so unit tests reseed it.

#[cfg(test)]
mod action_tests;
mod attempt;
pub(crate) mod body;
mod ending;
#[cfg(test)]
mod ending_tests;
#[cfg(test)]
mod table_attempt_tests;
#[cfg(test)]
mod table_bounds_tests;
#[cfg(test)]
mod table_tests;
#[cfg(test)]
mod tests;

mod rules;
pub(crate) mod runtime_rule;
pub(crate) mod table;

use std::future::Future;
use std::time::{Duration, Instant};

use blastwall_policy::latency::Latency;
use http::{Response, header};

pub(crate) use self::attempt::attempt;
pub(crate) use self::ending::RuleEnd;
pub(crate) use self::rules::{ConfiguredFault, Drawn, RouteFaults, takes_down};
use self::rules::{Take, drawn, matches, take};
use crate::body::{ProxyBody, full};
use crate::config::fault::{AbortConfig, FaultAction};
use crate::headers::retry_after_value;
use crate::record::FaultKind;

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

    /// A line for a person: `delay 2s`, `abort 503`.
    pub(crate) fn summary(&self) -> String {
        match self {
            FaultAction::Delay(Latency::Fixed { value }) => format!("delay {value:?}"),
            FaultAction::Delay(Latency::Uniform { min, max }) => {
                format!("delay uniform {min:?} to {max:?}")
            }
            FaultAction::Delay(Latency::Normal { mean, std_dev }) => {
                format!("delay normal mean {mean:?} stddev {std_dev:?}")
            }
            FaultAction::Delay(Latency::LogNormal { p50, p99 }) => {
                format!("delay p50 {p50:?} p99 {p99:?}")
            }
            FaultAction::Abort(abort) => format!("abort {}", abort.status.as_u16()),
            FaultAction::Reset => "reset".into(),
            FaultAction::CloseBeforeHead => "close before the head".into(),
            FaultAction::CloseAfterHead { truncate_after } => {
                format!("close after the head, {truncate_after} body bytes")
            }
            FaultAction::Throttle(rate) => format!("throttle {rate} B/s"),
            FaultAction::EndpointDown => "endpoint down".into(),
        }
    }
}

/// The delay of one faulted request, drawn from its rule's distribution with [`crate::rng`]
/// (a fixed delay draws nothing).
pub(crate) fn draw_delay(latency: &Latency) -> Duration {
    crate::rng::with_rng(|rng| latency.sample_with(rng))
}

/// Waits out a delay fault of `delay` from `now`, or until `deadline`, or until its rule
/// has `ended` (see [`RuleEnd::ended`]), whichever is first.
pub(crate) async fn delay(
    delay: Duration,
    now: Instant,
    deadline: Option<Instant>,
    ended: impl Future<Output = ()>,
) {
    let until = now + delay;
    let until = deadline.map_or(until, |deadline| deadline.min(until));
    tokio::select! {
        () = tokio::time::sleep_until(until.into()) => {}
        () = ended => {}
    }
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
