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
//! Whom: a rule applies to its route's requests (or, made at run time, to a route's or to
//! every route of a cluster, see [`table`]), to those with a header from a trusted client,
//! to a percentage of them, to the first N only (`first`, then it is spent), within a time
//! window (config rules: wall-clock `from`/`until`; runtime rules: `after` and `ttl` from
//! their creation). The faults' kill switch removes the runtime rules and silences the
//! config's until the next reload.
//!
//! Cost when a route has no rule and nothing was made at run time: one branch on an empty
//! slice and one relaxed atomic load; no allocation, no clock read, no draw, no lock. The
//! draw uses [`crate::rng`], so unit tests reseed it.

#[cfg(test)]
mod table_tests;
#[cfg(test)]
mod tests;

pub(crate) mod runtime_rule;
pub(crate) mod table;

use std::num::NonZeroU64;
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant, SystemTime};

use blastwall_policy::latency::Latency;
use http::{HeaderMap, Response, header};
use rand::Rng;

use self::table::{FaultTable, RuntimeRule};
use crate::body::{ProxyBody, full};
use crate::config::fault::{AbortConfig, FaultAction, FaultRule};
use crate::headers::retry_after_value;
use crate::record::{FaultKind, FaultRuleId};

/// A route's fault rules: its config rules, in file order, and the runtime table.
#[derive(Debug, Default)]
pub(crate) struct RouteFaults {
    rules: Box<[ConfiguredFault]>,
    table: Arc<FaultTable>,
    /// The route's name and its cluster's, which runtime rules target.
    names: (Box<str>, Box<str>),
}

/// A config rule with what it keeps while it is in force: its id, its window on the
/// monotonic clock and how many requests it has faulted (for `first`).
#[derive(Debug)]
pub(crate) struct ConfiguredFault {
    /// `config:<route>:<n>` (n from 1, in file order).
    pub id: Box<str>,
    /// Its `n`.
    pub number: u32,
    /// The rule as the config gives it.
    pub rule: FaultRule,
    from: Option<Instant>,
    until: Option<Instant>,
    faulted: Arc<AtomicU64>,
}

impl ConfiguredFault {
    /// Whether it applies at `now` (its window; `first` not counted).
    pub(crate) fn live_at(&self, now: Instant) -> bool {
        self.from.is_none_or(|from| from <= now) && self.until.is_none_or(|until| now < until)
    }

    /// Requests it has faulted while in force (across reloads that keep it as it is).
    pub(crate) fn faulted(&self) -> u64 {
        self.faulted.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The fault a request drew: a config rule's or a runtime rule's; reads as its action.
#[derive(Debug)]
pub(crate) enum Drawn<'a> {
    /// A `[[route.fault]]` rule.
    Configured(&'a ConfiguredFault),
    /// A rule made through the admin API (held: the table may drop it meanwhile).
    Runtime(Arc<RuntimeRule>),
}

impl Drawn<'_> {
    /// The rule's id, as the access log writes it.
    pub(crate) fn rule_id(&self) -> FaultRuleId {
        match self {
            Drawn::Configured(rule) => FaultRuleId::Config(rule.number),
            Drawn::Runtime(rule) => FaultRuleId::Runtime(rule.number),
        }
    }
}

impl Deref for Drawn<'_> {
    type Target = FaultAction;

    fn deref(&self) -> &FaultAction {
        match self {
            Drawn::Configured(rule) => &rule.rule.action,
            Drawn::Runtime(rule) => &rule.rule.action,
        }
    }
}

/// Whether a rule's `first` has room for one more request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Take {
    /// Taken; more may follow.
    Taken,
    /// Taken, and it was the last.
    Last,
    /// None left.
    Spent,
}

impl RouteFaults {
    /// The rules of a route, as its config gives them, alone (no runtime table).
    #[cfg(test)]
    pub(crate) fn new(rules: &[FaultRule]) -> Self {
        Self::for_route(("", ""), rules, None, Arc::default())
    }

    /// The faults of the route `names` (its name, its cluster's): its config `rules`, and
    /// the runtime `table`. A rule that `previous` (the same route before a reload) had at
    /// the same place, unchanged, keeps its count of faulted requests, so a reload does not
    /// give a `first` rule its requests again.
    pub(crate) fn for_route(
        names: (&str, &str),
        rules: &[FaultRule],
        previous: Option<&RouteFaults>,
        table: Arc<FaultTable>,
    ) -> Self {
        let (now, wall) = (Instant::now(), SystemTime::now());
        let rules = rules
            .iter()
            .enumerate()
            .map(|(index, rule)| {
                let faulted = previous
                    .and_then(|previous| previous.rules.get(index))
                    .filter(|kept| kept.rule == *rule)
                    .map_or_else(Arc::default, |kept| kept.faulted.clone());
                ConfiguredFault {
                    number: u32::try_from(index + 1).unwrap_or(u32::MAX),
                    id: format!("config:{}:{}", names.0, index + 1).into(),
                    rule: rule.clone(),
                    from: rule.window.from.map(|at| instant_of(at, now, wall)),
                    until: rule.window.until.map(|at| instant_of(at, now, wall)),
                    faulted,
                }
            })
            .collect();
        Self {
            rules,
            table,
            names: (names.0.into(), names.1.into()),
        }
    }

    /// The route's config rules.
    pub(crate) fn configured(&self) -> &[ConfiguredFault] {
        &self.rules
    }

    /// The fault for a request with these headers (see [`RouteFaults::draw_at`]). `None`,
    /// at one branch on the route's rules and one relaxed load of the runtime table's
    /// count, when there are no rules.
    pub(crate) fn draw(&self, headers: &HeaderMap, trusted: bool) -> Option<Drawn<'_>> {
        if self.rules.is_empty() && self.table.is_empty() {
            return None;
        }
        self.draw_at(headers, trusted, Instant::now())
    }

    /// The fault for a request with these headers at `now`: a runtime rule first (an
    /// operator's experiment overrides the file), then the first config rule in its window
    /// whose header matches, whose percentage the draw falls in and whose `first` has room.
    /// A rule with a header matches only a `trusted` client's request: anyone else could
    /// fault their own requests at will and trip the cluster's breaker for every user. The
    /// kill switch silences the config rules.
    pub(crate) fn draw_at(
        &self,
        headers: &HeaderMap,
        trusted: bool,
        now: Instant,
    ) -> Option<Drawn<'_>> {
        if !self.table.is_empty() {
            let names = (&*self.names.0, &*self.names.1);
            if let Some(rule) = self.table.draw(names, headers, trusted, now) {
                return Some(Drawn::Runtime(rule));
            }
        }
        if self.rules.is_empty() || self.table.silenced() {
            return None;
        }
        self.rules
            .iter()
            .find(|configured| {
                configured.live_at(now)
                    && matches(&configured.rule, headers, trusted)
                    && drawn(configured.rule.per_million)
                    && take(&configured.faulted, configured.rule.first) != Take::Spent
            })
            .map(Drawn::Configured)
    }
}

/// One request taken from a rule's `first`, counted in `faulted`.
fn take(faulted: &AtomicU64, first: Option<NonZeroU64>) -> Take {
    let Some(first) = first else {
        faulted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return Take::Taken;
    };
    let taken = faulted.fetch_update(
        std::sync::atomic::Ordering::Relaxed,
        std::sync::atomic::Ordering::Relaxed,
        |count| (count < first.get()).then_some(count + 1),
    );
    match taken {
        Ok(count) if count + 1 == first.get() => Take::Last,
        Ok(_) => Take::Taken,
        Err(_) => Take::Spent,
    }
}

/// The monotonic instant of the wall-clock time `at`, given one moment on both clocks (a
/// time too far back for the monotonic clock is `now`: already passed either way).
fn instant_of(at: SystemTime, now: Instant, wall: SystemTime) -> Instant {
    match at.duration_since(wall) {
        Ok(ahead) => now + ahead,
        Err(behind) => now.checked_sub(behind.duration()).unwrap_or(now),
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
