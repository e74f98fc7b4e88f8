//! The `[[route.fault]]` sections as written: faults the proxy injects on a route.

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

use crate::config::file::delay::{DelaySchema, DelayValue};
use crate::config::values::DurationValue;

/// A fault injected into a route's requests: a `delay` before the attempts, or an `abort`
/// answered in the upstream's place (give one, not both).
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
