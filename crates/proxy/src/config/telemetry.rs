//! What the proxy tells the world about the requests it served, typed: the access log and
//! tracing, each off when `None`.

use std::path::PathBuf;

/// `[access_log]` and `[tracing]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TelemetryConfig {
    /// One JSON line per request.
    pub access_log: Option<AccessLogConfig>,
    /// Trace context propagation and OTLP export.
    pub tracing: Option<TracingConfig>,
}

/// The access log.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessLogConfig {
    /// Where lines go.
    pub target: AccessLogTarget,
    /// The share of successful requests logged, in `0.0..=1.0`.
    pub sample: f64,
}

/// Where access log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogTarget {
    /// The process's standard output.
    Stdout,
    /// A file, appended to.
    File(PathBuf),
}

/// Tracing.
#[derive(Debug, Clone, PartialEq)]
pub struct TracingConfig {
    /// The collector's `host:port`.
    pub collector: String,
    /// The path spans are POSTed to, like `/v1/traces`.
    pub path: String,
    /// The share of new traces recorded, in `0.0..=1.0`.
    pub sample: f64,
    /// `service.name` of the spans.
    pub service_name: String,
}
