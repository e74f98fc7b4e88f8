//! Admission sections as written: `[route.concurrency]`, `[route.rate_limit]`, route
//! `priority`, `[cluster.NAME.concurrency]`, and the `[proxy]` priority keys.

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

use crate::config::values::DurationValue;

/// A concurrency limit with a bounded queue. Give either `limit` (a bulkhead), or `adaptive`
/// with optional `min`, `max`, `initial`.
///
/// Requests of each priority may hold only a share of the limit, so that lower priorities
/// cannot take the capacity higher ones need: low 50%, normal 75%, high 90%, critical 100%
/// (rounded up, at least 1). A full queue makes room for a higher-priority request by
/// shedding the newest waiter of the lowest priority below it.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConcurrencySection {
    /// Requests served at once (a bulkhead). Not with `adaptive`.
    pub limit: Option<u32>,
    /// A limit that follows the upstream: `gradient2` (from latency), `aimd` (lowered
    /// on overload answers and timeouts, raised while used) or, on a cluster, `capacity`
    /// (the sum of what its endpoints showed they take).
    pub adaptive: Option<AdaptiveAlgorithm>,
    /// Lowest adaptive limit. Default 1.
    pub min: Option<u32>,
    /// Highest adaptive limit. Default 1000.
    pub max: Option<u32>,
    /// Adaptive limit at start. Default 20, within `min` and `max`.
    pub initial: Option<u32>,
    /// Requests that may wait for a slot; past this they are shed with 503. Default 0
    /// (shed at once when every slot is taken).
    pub queue: Option<u32>,
    /// How long a request may wait in the queue before it is shed. A request that could not
    /// be served within this time at the current pace is shed at once. Default "100ms".
    #[schemars(with = "Option<DurationValue>")]
    pub queue_timeout: Option<Spanned<DurationValue>>,
    /// The lowest priority that may wait in the queue (`low`, `normal`, `high`,
    /// `critical`); lower priorities are shed at once, with Retry-After, when no slot is
    /// free for them. Default "low" (every priority may wait).
    pub queue_from: Option<String>,
}

/// An adaptive limit's algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum AdaptiveAlgorithm {
    /// Netflix's Gradient2: shrinks as latency rises above its long-term average.
    Gradient2,
    /// Additive increase, multiplicative decrease on overload (503 / 429) and timeouts.
    Aimd,
    /// Only on a cluster: the sum of what its endpoints showed they take. An endpoint that
    /// answers busy (503, 429) to a request sent while it had N in flight takes at most
    /// N - 1; unbounded (up to `max`) until one refuses; a learnt capacity grows by an
    /// eighth after two seconds without a refusal.
    Capacity,
}

/// A rate limit: `rate` requests per `per`, with bursts of up to `burst`. Past it: 429 with
/// `Retry-After` saying when the next request would be admitted.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RateLimitSection {
    /// Requests per `per`, at least 1.
    pub rate: u32,
    /// The period. Default "1s".
    #[schemars(with = "Option<DurationValue>")]
    pub per: Option<Spanned<DurationValue>>,
    /// Requests admitted at once after a quiet spell. Default: `rate`.
    pub burst: Option<u32>,
    /// Whose requests share a limit: `"client_ip"`, or `{ header = "x-api-key" }` (requests
    /// without the header are counted by client address). Unset: one limit for the route.
    pub key: Option<RateLimitKeySection>,
    /// Most client keys tracked at once. Keys idle long enough to have their whole burst
    /// back are forgotten (that changes nothing); past the cap, new keys share one limit
    /// until some are. Default 10000.
    pub max_keys: Option<u32>,
}

/// Whose requests share a rate limit.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub(crate) enum RateLimitKeySection {
    /// `"client_ip"`.
    Named(String),
    /// `{ header = "NAME" }`.
    Header {
        /// The header whose value is the key.
        header: String,
    },
}

/// How important a route's requests are; under overload lower ones are shed first.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum PrioritySection {
    /// Never limited by a priority share (may use all of a concurrency limit).
    Critical,
    /// May use 90% of a concurrency limit.
    High,
    /// May use 75% of a concurrency limit.
    #[default]
    Normal,
    /// May use half of a concurrency limit; shed first.
    Low,
}
