//! The TOML shape of what traffic may say about endpoints: the cluster's circuit breaker, one
//! breaker per endpoint, and passive outlier detection. Validated in
//! `config::validate::passive` (the breakers in `validate::breaker`, outlier detection in
//! `validate::outlier`) into [`crate::config::PassiveConfig`].

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

use super::super::values::{DurationValue, LearnedDurationValue};

/// A circuit breaker: when calls fail (or are slow) too much, stop sending for
/// `open_duration`, then let `half_open_probes` probes test recovery.
///
/// Trip conditions: `consecutive_failures`, `failure_rate_percent`, `slow_call_percent`; any
/// one met trips. With none written, the breaker trips at a 50% failure rate over the window
/// once it holds `minimum_calls`. Overload answers (429, and a 503 from an endpoint that
/// still serves) and cancelled calls are never failures: they count for nothing. A 503 from
/// an endpoint that has served nothing for 250 ms (and 4 times its latency) is broken, and
/// is a failure.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CircuitBreakerSection {
    /// Trip after this many failures in a row (at least 1). Default: off.
    #[schemars(with = "Option<u32>")]
    pub consecutive_failures: Option<Spanned<u32>>,
    /// Trip when at least this percentage (1 to 100) of the calls in the window failed.
    /// Default 50 when no other condition is written, else off.
    #[schemars(with = "Option<u32>")]
    pub failure_rate_percent: Option<Spanned<u32>>,
    /// Trip when at least this percentage (1 to 100) of the calls in the window took
    /// `slow_call_duration` or more. Default: off.
    #[schemars(with = "Option<u32>")]
    pub slow_call_percent: Option<Spanned<u32>>,
    /// A call taking at least this long is slow. Default "1s".
    #[schemars(with = "Option<DurationValue>")]
    pub slow_call_duration: Option<Spanned<DurationValue>>,
    /// Rates are judged only once the window holds this many calls. Default 20 (at most
    /// `window_calls`).
    #[schemars(with = "Option<u32>")]
    pub minimum_calls: Option<Spanned<u32>>,
    /// A time window: rates over the calls of about the last this long (cut into 10
    /// buckets). Give this or `window_calls`, not both.
    #[schemars(with = "Option<DurationValue>")]
    pub window: Option<Spanned<DurationValue>>,
    /// A count window: rates over the last this many calls. Default 100.
    #[schemars(with = "Option<u32>")]
    pub window_calls: Option<Spanned<u32>>,
    /// How long the breaker stays open before probing. Default "5s".
    #[schemars(with = "Option<DurationValue>")]
    pub open_duration: Option<Spanned<DurationValue>>,
    /// Each failed round of probes doubles the open period, up to this. Default: the
    /// `open_duration` (no growth).
    #[schemars(with = "Option<DurationValue>")]
    pub max_open_duration: Option<Spanned<DurationValue>>,
    /// Probes let through at once when half-open; that many successes close it. Default 3.
    #[schemars(with = "Option<u32>")]
    pub half_open_probes: Option<Spanned<u32>>,
    /// What tests the dependency while the breaker is open. `"requests"` (the default):
    /// once `open_duration` has passed, `half_open_probes` real requests go through.
    /// `"health_check"`: the proxy sends the cluster's health check (to one endpoint, or to
    /// the endpoint of an endpoint breaker) every `open_duration`, and no request waits on
    /// a dependency that is probably still down; when a check passes, real requests probe
    /// as usual. Needs `[cluster.NAME.health_check]`.
    pub probe: Option<BreakerProbe>,
}

/// What tests an open breaker's dependency (`probe`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum BreakerProbe {
    /// Real requests, once the open period has passed.
    Requests,
    /// The cluster's health check, sent by the proxy every open period.
    HealthCheck,
}

/// Passive outlier detection: endpoints that fail real traffic are ejected (take no
/// traffic) for a while, longer each time they are ejected again.
///
/// Only the rules written are on (`consecutive_errors`, `consecutive_gateway_errors`,
/// `failure_percentage`, `success_rate`, `slow_call`, `stall_after`); a section with none is
/// an error.
/// Overload answers (429, a 503 from an endpoint that still serves) and cancelled calls are
/// never recorded: a busy endpoint is not a broken one. A 503 from an endpoint that has
/// served nothing for 250 ms (and 4 times its latency) is a gateway error.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OutlierDetectionSection {
    /// Eject after this many failures of any kind in a row (5xx other than a busy 503,
    /// connection failures, resets, timeouts, slow calls).
    #[schemars(with = "Option<u32>")]
    pub consecutive_errors: Option<Spanned<u32>>,
    /// Eject after this many gateway errors in a row (502, 504, a broken 503, connection
    /// failures, resets, timeouts); a 500 breaks the run.
    #[schemars(with = "Option<u32>")]
    pub consecutive_gateway_errors: Option<Spanned<u32>>,
    /// How often failure percentage and success rate are judged, over the calls of the
    /// interval. Default "10s".
    #[schemars(with = "Option<DurationValue>")]
    pub interval: Option<Spanned<DurationValue>>,
    /// The first ejection lasts this long, the k-th in a row k times as long. Default "30s".
    #[schemars(with = "Option<DurationValue>")]
    pub base_ejection_time: Option<Spanned<DurationValue>>,
    /// No ejection lasts longer (at most a week). Default "300s", or `base_ejection_time`
    /// if that is longer.
    #[schemars(with = "Option<DurationValue>")]
    pub max_ejection_time: Option<Spanned<DurationValue>>,
    /// At most this percentage (0 to 100) of the endpoints is ejected at once, but at least
    /// one and never the last; nor so many that the healthy share falls under
    /// `panic_threshold`. 0 turns ejection off. Default 10.
    #[schemars(with = "Option<u32>")]
    pub max_ejection_percent: Option<Spanned<u32>>,
    /// Eject an endpoint when too many of its calls in an interval failed.
    pub failure_percentage: Option<FailurePercentageSection>,
    /// Eject endpoints whose success rate is far below the cluster's.
    pub success_rate: Option<SuccessRateSection>,
    /// Count calls slower than this as failures in every rule but the gateway-error run.
    pub slow_call: Option<SlowCallSection>,
    /// Stall detection: an endpoint that has had requests out and has answered nothing (no
    /// response head, nor a passing health check) for this long in all is stalled: it takes
    /// no new requests until it answers anything again. `"auto"` learns it per endpoint:
    /// 10 × the average latency of its answers, at least "25ms" (300ms before its first
    /// answer). Within `max_ejection_percent` and `panic_threshold`, as ejections are. A rule
    /// of its own: it may be the section's only one. Default: off.
    #[schemars(with = "Option<LearnedDurationValue>")]
    pub stall_after: Option<Spanned<LearnedDurationValue>>,
}

/// `failure_percentage = { threshold = 85, request_volume = 50 }`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FailurePercentageSection {
    /// Eject when at least this percentage (1 to 100) of the interval's calls failed.
    /// Default 85.
    #[schemars(with = "Option<u32>")]
    pub threshold: Option<Spanned<u32>>,
    /// Only endpoints with at least this many calls in the interval are judged. Default 50.
    #[schemars(with = "Option<u64>")]
    pub request_volume: Option<Spanned<u64>>,
}

/// `success_rate = { stdev_factor = 1.9, request_volume = 100, minimum_hosts = 5 }`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SuccessRateSection {
    /// Eject endpoints whose success rate is below the mean minus this many standard
    /// deviations. Default 1.9.
    #[schemars(with = "Option<f64>")]
    pub stdev_factor: Option<Spanned<f64>>,
    /// Only endpoints with at least this many calls in the interval count. Default 100.
    #[schemars(with = "Option<u64>")]
    pub request_volume: Option<Spanned<u64>>,
    /// The rule runs only when at least this many endpoints have the volume. Default 5.
    #[schemars(with = "Option<u32>")]
    pub minimum_hosts: Option<Spanned<u32>>,
}

/// `slow_call = { threshold = "1s" }`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SlowCallSection {
    /// A call taking longer than this counts as a failure.
    #[schemars(with = "DurationValue")]
    pub threshold: Spanned<DurationValue>,
}
