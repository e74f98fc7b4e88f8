//! The file's sections for attempts: deadlines, retries, hedging and retry budgets.

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

use crate::config::values::{ByteSizeValue, DurationValue};

/// Retries of a route's requests. Without this section a request is retried once, on
/// another endpoint, only when its first attempt provably never reached the upstream
/// (connection refused, HTTP/2 refused stream): safe for any method.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RetrySection {
    /// Attempts in all, counting the first; 1 turns retries off. Default 3, at most 10.
    #[schemars(with = "Option<u32>")]
    pub attempts: Option<Spanned<u32>>,
    /// The wait between attempts: exponential from `base`, capped at `max`, randomised by
    /// `jitter`. Default: from "25ms" doubling to "250ms", full jitter.
    pub backoff: Option<BackoffSection>,
    /// Which failures are retried. Default: every one but `server_error`.
    #[schemars(with = "Option<Vec<RetryCondition>>")]
    pub on: Option<Spanned<Vec<RetryCondition>>>,
    /// Further response statuses that are retried, like `[500]`.
    #[schemars(with = "Option<Vec<u16>>")]
    pub statuses: Option<Spanned<Vec<u16>>>,
    /// Retry requests that are not idempotent (POST, PATCH, without an `Idempotency-Key`)
    /// even when they may have reached the upstream. Default false: they are retried only
    /// when they provably never did, so a POST is never applied twice.
    pub non_idempotent: Option<bool>,
    /// An upstream's `Retry-After` is waited for (on another endpoint, it may be sooner) when
    /// it asks for at most this; when it asks for more, its answer goes to the client as it
    /// is. Default "1s".
    #[schemars(with = "Option<DurationValue>")]
    pub retry_after_max: Option<Spanned<DurationValue>>,
    /// Request bodies up to this size are kept so that they can be sent again; a larger body
    /// streams through, and its request is then retried only if it never left. Default
    /// "64KiB", at most "16MiB".
    #[schemars(with = "Option<ByteSizeValue>")]
    pub buffer_limit: Option<Spanned<ByteSizeValue>>,
}

/// Exponential backoff between attempts.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BackoffSection {
    /// The first wait's ceiling. Default "25ms".
    #[schemars(with = "Option<DurationValue>")]
    pub base: Option<Spanned<DurationValue>>,
    /// No wait is longer. Default "250ms".
    #[schemars(with = "Option<DurationValue>")]
    pub max: Option<Spanned<DurationValue>>,
    /// How the wait is randomised under its ceiling. Default `full`.
    pub jitter: Option<JitterKind>,
}

/// How a wait is randomised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum JitterKind {
    /// Exactly the ceiling.
    None,
    /// Anywhere from zero to the ceiling.
    Full,
    /// Half the ceiling plus up to the other half.
    Equal,
    /// From `base` to three times the previous wait, capped.
    Decorrelated,
}

/// A failure that may be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RetryCondition {
    /// No connection could be made.
    ConnectFailure,
    /// The upstream refused the request unprocessed (HTTP/2 `REFUSED_STREAM`).
    Refused,
    /// The connection failed after the request was sent.
    Reset,
    /// No response within the per-try timeout.
    Timeout,
    /// 502 or 504 from the upstream.
    GatewayError,
    /// 503 or 429 from the upstream: it is saturated. Retried on another endpoint, after
    /// its `Retry-After` when it sends one.
    Overloaded,
    /// Any 5xx.
    ServerError,
}

/// Hedging: for a request still unanswered after a delay, a copy goes to another endpoint,
/// and the first answer wins (the other is cancelled). Only idempotent requests whose body
/// is kept (see `retry.buffer_limit`) are hedged; each hedge spends from the cluster's
/// retry budget.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct HedgeSection {
    /// Hedge after this long. Give this or `percentile`.
    #[schemars(with = "Option<DurationValue>")]
    pub after: Option<Spanned<DurationValue>>,
    /// Hedge after this percentile (1 to 100) of the route's recent latency (the last 10s),
    /// once `min_samples` latencies are known; none before.
    #[schemars(with = "Option<f64>")]
    pub percentile: Option<Spanned<f64>>,
    /// Latencies needed before `percentile` is trusted. Default 100.
    pub min_samples: Option<u32>,
    /// Hedges per request at most. Default 1, at most 5.
    #[schemars(with = "Option<u32>")]
    pub max: Option<Spanned<u32>>,
}

/// The cluster's retry budget: retries and hedges of every route to the cluster together
/// may add at most `ratio` of its requests, plus `min_per_second`, over the last 10s. Under
/// a total outage this bounds the extra load retries bring (no retry storm).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RetryBudgetSection {
    /// Retries per request, 0 to 1. Default 0.2.
    #[schemars(with = "Option<f64>")]
    pub ratio: Option<Spanned<f64>>,
    /// Retries per second allowed whatever the traffic, so a quiet cluster can still retry.
    /// Default 10.
    pub min_per_second: Option<u32>,
}
