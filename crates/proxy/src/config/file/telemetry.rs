//! The TOML shape of `[access_log]` and `[tracing]`: what the proxy tells the world about the
//! requests it served. Validated in `config::validate::telemetry` into
//! [`crate::config::TelemetryConfig`].

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

/// One JSON line per request. Off unless `path` is set.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AccessLogSection {
    /// Where the lines go: a file (relative to the config file's folder; appended to, and
    /// opened again on SIGHUP or a reload, for log rotation), or "stdout". Unset: no access
    /// log.
    #[schemars(with = "Option<String>")]
    pub path: Option<Spanned<String>>,
    /// The share of requests logged, 0 to 1. Requests that failed (a 5xx, or an answer the
    /// proxy made itself) are always logged. Default 1.
    #[schemars(with = "Option<f64>", range(min = 0, max = 1))]
    pub sample: Option<Spanned<RatioValue>>,
}

/// W3C trace context propagation and spans exported over OTLP. Off unless `otlp_endpoint`
/// is set; when off, the client's `traceparent` and `tracestate` go upstream unchanged.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TracingSection {
    /// The OTLP/HTTP collector, like "http://127.0.0.1:4318" (spans are POSTed as JSON to
    /// its `/v1/traces`, or to the path given). Plain HTTP only.
    #[schemars(with = "Option<String>")]
    pub otlp_endpoint: Option<Spanned<String>>,
    /// The share of new traces recorded, 0 to 1; a request whose `traceparent` says whether
    /// it is sampled follows it. Default 1.
    #[schemars(with = "Option<f64>", range(min = 0, max = 1))]
    pub sample: Option<Spanned<RatioValue>>,
    /// `service.name` of the exported spans. Default "blastwall".
    pub service_name: Option<String>,
}

/// A ratio written as a float or an integer (`1` as well as `1.0`).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(untagged)]
pub(crate) enum RatioValue {
    /// Written with a decimal point.
    Float(f64),
    /// Written as a whole number.
    Integer(i64),
}

impl RatioValue {
    /// The value as a float.
    pub(crate) fn get(self) -> f64 {
        match self {
            RatioValue::Float(value) => value,
            // NOTE: only 0 and 1 are valid whole numbers; precision does not matter.
            #[allow(clippy::cast_precision_loss)]
            RatioValue::Integer(value) => value as f64,
        }
    }
}
