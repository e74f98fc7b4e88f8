//! The `[[route.fault]]` sections as written: faults the proxy injects on a route.

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

use crate::config::file::delay::{DelaySchema, DelayValue};
use crate::config::values::{ByteSizeValue, DurationValue};

/// A fault injected into a route's requests: one of `delay`, `abort`, `reset`, `close`,
/// `throttle` or `down`, done once per request before the attempts or in each attempt
/// (`at`).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FaultSection {
    /// Hold the request this long before its attempts: a duration ("200ms"), or a
    /// distribution each request's delay is drawn from: { p50, p99 } (log-normal),
    /// { min, max } (uniform) or { mean, stddev } (normal). It counts against the route's
    /// `timeout`.
    #[schemars(with = "Option<DelaySchema>")]
    pub delay: Option<Spanned<DelayValue>>,
    /// Answer with this status instead of sending the request.
    #[schemars(with = "Option<AbortSection>")]
    pub abort: Option<Spanned<AbortSection>>,
    /// The share of matching requests faulted, 0 to 100 (fractions allowed). Default 100.
    #[schemars(with = "Option<f64>")]
    pub percent: Option<Spanned<f64>>,
    /// Only requests carrying this header: `"name"` (any value) or `"name=value"`, read only
    /// from `[proxy] trusted_clients`. Default: every request of the route.
    #[schemars(with = "Option<String>")]
    pub header: Option<Spanned<String>>,
    /// Fault only the first this many requests the rule draws (after `header` and
    /// `percent`), then the rule is spent. Default: no limit.
    #[schemars(with = "Option<u64>")]
    pub first: Option<Spanned<u64>>,
    /// Apply from this time on, RFC 3339 (e.g. "2026-12-07T21:00:00Z"). A wall-clock time,
    /// so a reload does not restart the window. Default: from the load.
    #[schemars(with = "Option<String>")]
    pub from: Option<Spanned<String>>,
    /// Apply until this time, RFC 3339. Default: for as long as the rule is in the file.
    #[schemars(with = "Option<String>")]
    pub until: Option<Spanned<String>>,
    /// Where the fault is drawn and done: `request` (once, before the attempts) or
    /// `attempt` (in each attempt, retries and hedges included, within its per-try
    /// timeout). Default `request`; a rule with `endpoint` (and so `down`) always acts on
    /// attempts.
    #[schemars(with = "Option<FaultAt>")]
    pub at: Option<Spanned<FaultAt>>,
    /// `true`: the upstream connection is reset before an answer (502, or retried as a
    /// reset is).
    #[schemars(with = "Option<bool>")]
    pub reset: Option<Spanned<bool>>,
    /// The upstream closes the connection: `before_head` (no answer at all) or
    /// `after_head` (its answer's body breaks off after `truncate_after`).
    #[schemars(with = "Option<CloseAt>")]
    pub close: Option<Spanned<CloseAt>>,
    /// With `close = "after_head"`: the body bytes passed on before it breaks off.
    /// Default "0B".
    #[schemars(with = "Option<ByteSizeValue>")]
    pub truncate_after: Option<Spanned<ByteSizeValue>>,
    /// The upstream's answer's body comes at this rate, a size per second: "10KiB" (or
    /// "10KiB/s").
    #[schemars(with = "Option<String>")]
    pub throttle: Option<Spanned<String>>,
    /// `true`: attempts that pick `endpoint` fail as refused connections, without a
    /// connection made (passive outlier detection then ejects it).
    #[schemars(with = "Option<bool>")]
    pub down: Option<Spanned<bool>>,
    /// Only attempts that pick this endpoint (the rule is then done per attempt); needed by
    /// `down`. One of the cluster's endpoints given by address, `"ip:port"`, or `"random"`
    /// (one of those, picked when the config is loaded, and logged). Default: every
    /// endpoint.
    #[schemars(with = "Option<String>")]
    pub endpoint: Option<Spanned<String>>,
}

/// Where a fault is drawn and done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum FaultAt {
    /// Once per request, before the attempts.
    Request,
    /// In each attempt, within its per-try timeout.
    Attempt,
}

/// When the upstream closes the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum CloseAt {
    /// Before any byte of an answer.
    BeforeHead,
    /// After the answer's head: its body breaks off.
    AfterHead,
}

/// The answer of an abort fault.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AbortSection {
    /// Its status, 400 to 599.
    #[schemars(with = "u16")]
    pub status: Spanned<u16>,
    /// Its body, as text. Default: empty.
    pub body: Option<String>,
    /// Its `Retry-After`, whole seconds (e.g. "5s").
    #[schemars(with = "Option<DurationValue>")]
    pub retry_after: Option<Spanned<DurationValue>>,
}
