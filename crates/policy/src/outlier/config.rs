//! What the detector looks for, and its limits.

use std::time::Duration;

/// The longest ejection a configuration may ask for. Beyond this, an ejection is an outage of
/// that endpoint that somebody should look at, not a backoff.
pub const MAX_EJECTION_TIME_LIMIT: Duration = Duration::from_secs(7 * 24 * 3600);

/// How an [`OutlierDetector`](super::OutlierDetector) decides. The defaults follow Envoy's,
/// except that failure-percentage ejection is on (Envoy ships it off), because the
/// success-rate rule needs five busy endpoints and small clusters are common.
#[derive(Debug, Clone, PartialEq)]
pub struct OutlierConfig {
    /// How often failure percentage and success rate are evaluated, and the window they look
    /// at. Also the pace at which the ejection multiplier falls back. Default 10 s.
    pub interval: Duration,
    /// An endpoint's first ejection lasts this long; the k-th in a row `k × base`.
    /// Default 30 s.
    pub base_ejection_time: Duration,
    /// No ejection lasts longer. At least `base_ejection_time`. Default 300 s.
    pub max_ejection_time: Duration,
    /// At most this share of the cluster's endpoints is ejected at once (rounded down, but
    /// at least one endpoint, and never the last one; 0 turns ejection off). Default 10.
    pub max_ejection_percent: u8,
    /// Eject after this many failures in a row, of any kind ([`Outcome::ServerError`],
    /// [`Outcome::GatewayError`], slow calls). `None` turns the rule off. Default 5.
    ///
    /// [`Outcome::ServerError`]: super::Outcome::ServerError
    /// [`Outcome::GatewayError`]: super::Outcome::GatewayError
    pub consecutive_errors: Option<u32>,
    /// Eject after this many [`Outcome::GatewayError`]s in a row; any other outcome breaks
    /// the run. `None` turns the rule off. Default `None` (as Envoy, whose rule is present
    /// but not enforced by default).
    ///
    /// [`Outcome::GatewayError`]: super::Outcome::GatewayError
    pub consecutive_gateway_errors: Option<u32>,
    /// Eject endpoints whose failure percentage over an interval is too high. Default on.
    pub failure_percentage: Option<FailurePercentageConfig>,
    /// Eject endpoints whose success rate is far below the cluster's. Default on.
    pub success_rate: Option<SuccessRateConfig>,
    /// A call that takes longer than this counts as a failure (in every rule but the
    /// gateway-error run), whatever its outcome. `None` (the default) ignores latency.
    pub slow_call_threshold: Option<Duration>,
}

impl Default for OutlierConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(10),
            base_ejection_time: Duration::from_secs(30),
            max_ejection_time: Duration::from_secs(300),
            max_ejection_percent: 10,
            consecutive_errors: Some(5),
            consecutive_gateway_errors: None,
            failure_percentage: Some(FailurePercentageConfig::default()),
            success_rate: Some(SuccessRateConfig::default()),
            slow_call_threshold: None,
        }
    }
}

/// Ejection by an endpoint's own failure percentage over one interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailurePercentageConfig {
    /// Eject when at least this percentage of the interval's calls failed (1–100).
    /// Default 85.
    pub threshold_percent: u8,
    /// Only endpoints with at least this many calls in the interval are judged. Default 50.
    pub request_volume: u64,
}

impl Default for FailurePercentageConfig {
    fn default() -> Self {
        Self {
            threshold_percent: 85,
            request_volume: 50,
        }
    }
}

/// Ejection by success rate far below the cluster's (Envoy's `success_rate` rule).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SuccessRateConfig {
    /// Eject endpoints whose success rate is below `mean − stdev_factor × stdev` of the
    /// endpoints with enough volume. Default 1.9.
    pub stdev_factor: f64,
    /// Only endpoints with at least this many calls in the interval count. Default 100.
    pub request_volume: u64,
    /// The rule runs only when at least this many endpoints have enough volume. Default 5.
    pub minimum_hosts: usize,
}

impl Default for SuccessRateConfig {
    fn default() -> Self {
        Self {
            stdev_factor: 1.9,
            request_volume: 100,
            minimum_hosts: 5,
        }
    }
}

/// A configuration that makes no sense.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OutlierConfigError {
    /// The evaluation interval was zero.
    #[error("interval must be greater than zero")]
    ZeroInterval,
    /// The base ejection time was zero: ejections would end at once.
    #[error("base_ejection_time must be greater than zero")]
    ZeroBaseEjectionTime,
    /// The maximum ejection time was below the base.
    #[error("max_ejection_time ({max:?}) must be at least base_ejection_time ({base:?})")]
    MaxBelowBase {
        /// The configured base ejection time.
        base: Duration,
        /// The configured maximum ejection time.
        max: Duration,
    },
    /// The maximum ejection time was absurdly long.
    #[error("max_ejection_time ({0:?}) must be at most {MAX_EJECTION_TIME_LIMIT:?}")]
    MaxEjectionTimeTooLong(Duration),
    /// A percentage was over 100.
    #[error("{field} must be a percentage from 0 to 100, got {value}")]
    PercentOutOfRange {
        /// Which setting.
        field: &'static str,
        /// The value given.
        value: u8,
    },
    /// A threshold or volume that must be at least one was zero.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    /// The standard-deviation factor was negative or not a number.
    #[error("success_rate.stdev_factor must be a finite number >= 0, got {0}")]
    BadStdevFactor(f64),
}

impl OutlierConfigError {
    /// The field of [`OutlierConfig`] the error is about, as the error names it
    /// (`"failure_percentage.threshold_percent"`): so that a caller reading the settings from a
    /// file can point at the key that holds it.
    pub fn field(&self) -> &'static str {
        match self {
            OutlierConfigError::ZeroInterval => "interval",
            OutlierConfigError::ZeroBaseEjectionTime => "base_ejection_time",
            OutlierConfigError::MaxBelowBase { .. }
            | OutlierConfigError::MaxEjectionTimeTooLong(_) => "max_ejection_time",
            OutlierConfigError::PercentOutOfRange { field, .. }
            | OutlierConfigError::Zero(field) => field,
            OutlierConfigError::BadStdevFactor(_) => "success_rate.stdev_factor",
        }
    }
}

impl OutlierConfig {
    /// Checks the configuration, naming the first setting that makes no sense (the first of
    /// [`errors`](Self::errors)).
    pub fn validate(&self) -> Result<(), OutlierConfigError> {
        match self.errors().into_iter().next() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// Every setting that makes no sense, in the order of the fields (empty, and nothing
    /// allocated, when the configuration is valid). A caller that reads the settings from a
    /// file reports them all at once, each at its own key: [`OutlierConfigError::field`].
    pub fn errors(&self) -> Vec<OutlierConfigError> {
        use OutlierConfigError as E;
        let mut errors = Vec::new();
        if self.interval.is_zero() {
            errors.push(E::ZeroInterval);
        }
        if self.base_ejection_time.is_zero() {
            errors.push(E::ZeroBaseEjectionTime);
        }
        if self.max_ejection_time < self.base_ejection_time {
            errors.push(E::MaxBelowBase {
                base: self.base_ejection_time,
                max: self.max_ejection_time,
            });
        }
        if self.max_ejection_time > MAX_EJECTION_TIME_LIMIT {
            errors.push(E::MaxEjectionTimeTooLong(self.max_ejection_time));
        }
        errors.extend(percent("max_ejection_percent", self.max_ejection_percent));
        if self.consecutive_errors == Some(0) {
            errors.push(E::Zero("consecutive_errors"));
        }
        if self.consecutive_gateway_errors == Some(0) {
            errors.push(E::Zero("consecutive_gateway_errors"));
        }
        if let Some(fp) = &self.failure_percentage {
            let field = "failure_percentage.threshold_percent";
            errors.extend(percent(field, fp.threshold_percent));
            if fp.threshold_percent == 0 {
                errors.push(E::Zero(field));
            }
            if fp.request_volume == 0 {
                errors.push(E::Zero("failure_percentage.request_volume"));
            }
        }
        if let Some(sr) = &self.success_rate {
            if !sr.stdev_factor.is_finite() || sr.stdev_factor < 0.0 {
                errors.push(E::BadStdevFactor(sr.stdev_factor));
            }
            if sr.request_volume == 0 {
                errors.push(E::Zero("success_rate.request_volume"));
            }
            if sr.minimum_hosts == 0 {
                errors.push(E::Zero("success_rate.minimum_hosts"));
            }
        }
        if self.slow_call_threshold == Some(Duration::ZERO) {
            errors.push(E::Zero("slow_call_threshold"));
        }
        errors
    }

    /// Checks the configuration and keeps it as checked; or the first setting that makes no
    /// sense.
    pub fn validated(self) -> Result<ValidOutlierConfig, OutlierConfigError> {
        self.validate()?;
        Ok(ValidOutlierConfig(self))
    }

    /// How many of `endpoints` may be ejected at once.
    ///
    /// `floor(endpoints × max_ejection_percent / 100)`, raised to one so that small clusters
    /// can eject at all (as Envoy does), and lowered to `endpoints − 1` so that the last
    /// endpoint always serves (unlike Envoy, which relies on its load balancer's panic mode).
    /// Zero when the percentage is zero or there is at most one endpoint.
    pub fn max_ejected(&self, endpoints: usize) -> usize {
        if endpoints <= 1 || self.max_ejection_percent == 0 {
            return 0;
        }
        let by_percent = endpoints.saturating_mul(usize::from(self.max_ejection_percent)) / 100;
        by_percent.clamp(1, endpoints - 1)
    }
}

/// An [`OutlierConfig`] whose checks passed.
///
/// Made only by [`OutlierConfig::validated`]; a detector built from it
/// ([`OutlierDetector::from_valid`](super::OutlierDetector::from_valid)) or given it
/// ([`set_valid_config`](super::OutlierDetector::set_valid_config)) cannot fail. A caller that
/// validates once at load keeps this, not the plain config, so that later changes (a reload,
/// a lowered cap) have no failure path to forget.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidOutlierConfig(pub(super) OutlierConfig);

impl ValidOutlierConfig {
    /// The configuration as given.
    pub fn config(&self) -> &OutlierConfig {
        &self.0
    }

    /// The same configuration with `max_ejection_percent` at most `percent`: lowering the
    /// cap keeps a valid configuration valid (0 turns ejection off).
    pub fn with_ejection_cap(&self, percent: u8) -> Self {
        Self(OutlierConfig {
            max_ejection_percent: percent.min(self.0.max_ejection_percent),
            ..self.0.clone()
        })
    }
}

impl std::ops::Deref for ValidOutlierConfig {
    type Target = OutlierConfig;

    fn deref(&self) -> &OutlierConfig {
        &self.0
    }
}

fn percent(field: &'static str, value: u8) -> Option<OutlierConfigError> {
    (value > 100).then_some(OutlierConfigError::PercentOutOfRange { field, value })
}
