//! What the caller tells the detector (outcomes) and what it answers (events, reasons).

use std::fmt;
use std::time::{Duration, Instant};

/// The caller's index for an endpoint: a small slot number, reused when an endpoint goes.
pub type EndpointId = usize;

/// How a call to an endpoint ended, as the caller classified it.
///
/// Do not record overload (429, a 503 that says "overloaded" or carries `Retry-After`), nor
/// calls the client cancelled: an overloaded endpoint is working, and ejecting it moves its
/// load onto the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Any answer that is not a server error (2xx, 3xx, 4xx).
    Success,
    /// A server error that says nothing about reaching the endpoint: 500, 501, 505, ...
    ServerError,
    /// The endpoint, or the way to it, is broken: 502, 503 (not overload), 504, connection
    /// refused, connect timeout, reset, request timeout. Envoy's "gateway error" plus its
    /// local-origin errors.
    GatewayError,
}

/// Why an endpoint was (or would have been) ejected, with the numbers that decided it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EjectionReason {
    /// `count` failures of any kind in a row (`slow` of them slow calls).
    ConsecutiveErrors {
        /// Failures in the run.
        count: u32,
        /// Of those, calls counted as failures only for being slow.
        slow: u32,
    },
    /// `count` gateway errors in a row.
    ConsecutiveGatewayErrors {
        /// Gateway errors in the run.
        count: u32,
    },
    /// Too many of the interval's calls failed.
    FailurePercentage {
        /// Calls in the interval.
        requests: u64,
        /// Failed calls in the interval (slow ones included).
        failures: u64,
        /// Of those, calls counted as failures only for being slow.
        slow: u64,
        /// The configured threshold, in percent.
        threshold_percent: u8,
    },
    /// The interval's success rate was far below the cluster's.
    SuccessRate {
        /// Calls in the interval.
        requests: u64,
        /// Failed calls in the interval (slow ones included).
        failures: u64,
        /// Of those, calls counted as failures only for being slow.
        slow: u64,
        /// This endpoint's success rate, in percent.
        success_rate: f64,
        /// Mean success rate of the endpoints with enough volume, in percent.
        cluster_mean: f64,
        /// Their standard deviation, in percentage points.
        cluster_stdev: f64,
        /// `cluster_mean − stdev_factor × cluster_stdev`: rates below it were ejected.
        threshold: f64,
    },
}

impl fmt::Display for EjectionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::ConsecutiveErrors { count, slow } => {
                write!(f, "{count} consecutive errors ({slow} slow)")
            }
            Self::ConsecutiveGatewayErrors { count } => {
                write!(f, "{count} consecutive gateway errors")
            }
            Self::FailurePercentage {
                requests,
                failures,
                slow,
                threshold_percent,
            } => write!(
                f,
                "{failures} of {requests} calls failed ({slow} slow), threshold {threshold_percent}%"
            ),
            Self::SuccessRate {
                requests,
                success_rate,
                cluster_mean,
                threshold,
                ..
            } => write!(
                f,
                "success rate {success_rate:.2}% over {requests} calls, below {threshold:.2}% \
                 (cluster mean {cluster_mean:.2}%)"
            ),
        }
    }
}

/// One ejection of one endpoint.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ejection {
    /// The endpoint.
    pub id: EndpointId,
    /// Why.
    pub reason: EjectionReason,
    /// When it started.
    pub at: Instant,
    /// When it ends: from this instant the endpoint is no longer ejected.
    pub until: Instant,
    /// The backoff multiplier: the ejection lasts `multiplier × base_ejection_time` (capped).
    pub multiplier: u32,
}

impl Ejection {
    /// How long the ejection lasts.
    pub fn duration(&self) -> Duration {
        self.until.saturating_duration_since(self.at)
    }
}

/// A change the detector made, or refused to make.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Event {
    /// An endpoint was ejected.
    Ejected(Ejection),
    /// An endpoint's ejection ended (its time elapsed, or the cluster shrank below the cap).
    Unejected(Ejection),
    /// An endpoint met an ejection rule but was left in because `max_ejected` endpoints were
    /// already ejected. Worth a log line and a metric: the cluster may be failing as a whole.
    EjectionSuppressed {
        /// The endpoint.
        id: EndpointId,
        /// The rule it met.
        reason: EjectionReason,
        /// How many endpoints were ejected at the time.
        ejected: usize,
        /// The cap.
        max_ejected: usize,
    },
}

/// What the detector knows about one endpoint, for the admin API and dashboards.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EndpointStatus {
    /// The ejection in force at the instant asked about, if any.
    pub ejection: Option<Ejection>,
    /// The backoff multiplier the next ejection starts from (it falls by one per healthy
    /// interval).
    pub multiplier: u32,
    /// How many times the endpoint has been ejected since it was added.
    pub times_ejected: u64,
    /// The current run of failures of any kind.
    pub consecutive_errors: u32,
    /// The current run of gateway errors.
    pub consecutive_gateway_errors: u32,
    /// Calls recorded in the current interval.
    pub requests: u64,
    /// Failures recorded in the current interval (slow calls included).
    pub failures: u64,
    /// Calls recorded as slow in the current interval.
    pub slow: u64,
}
