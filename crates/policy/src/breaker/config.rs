//! What a breaker is told at load time, and the checks that make it safe to run.
//!
//! [`BreakerConfig`] is plain data an operator (or the proxy's config parser) fills in;
//! [`BreakerConfig::validate`] turns it into the compiled form the breaker runs on, so
//! nothing on the request path re-checks or re-derives a setting. Ratios become integers in
//! parts per million, so a trip decision is two integer multiplications, exact and free of
//! floating-point rounding surprises.

use std::time::Duration;

use thiserror::Error;

/// The largest count window, and the most buckets a time window may have. A window is
/// allocated once, up front; this keeps a typo from allocating gigabytes.
pub const MAX_WINDOW_SLOTS: u32 = 1 << 20;

/// The longest open period, base or grown. Long enough for any sane policy; short enough
/// that `Instant + open period` can never overflow.
pub const MAX_OPEN_DURATION: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// How a circuit breaker decides to trip, how long it stays open and how it probes.
///
/// Every trip condition is optional and any one of them trips the breaker. With none set the
/// breaker never trips by itself and is only a manual switch ([`force_open`]).
///
/// [`force_open`]: super::CircuitBreaker::force_open
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerConfig {
    /// Trip after this many failures in a row. Successes break the run; ignored calls do not.
    pub consecutive_failures: Option<u32>,
    /// Trip when failures / calls in the window reaches this ratio, in `(0, 1]`.
    pub failure_rate: Option<f64>,
    /// Trip when slow calls / calls in the window reaches this ratio, in `(0, 1]`.
    pub slow_call_rate: Option<f64>,
    /// A call whose duration (from acquiring its permit to recording it) is at least this is
    /// slow. Slow calls are counted whatever their outcome; a slow failure is both.
    pub slow_call_duration: Duration,
    /// The calls the rate conditions look at.
    pub window: SlidingWindow,
    /// Rate conditions are judged only once the window holds at least this many calls.
    pub minimum_calls: u32,
    /// How long the breaker stays open before letting probes through.
    pub open_duration: Duration,
    /// Grow the open period each time probing fails, until the breaker closes again.
    pub open_backoff: Option<OpenBackoff>,
    /// How many probe calls half-open admits at once; that many successes close the breaker.
    pub half_open_probes: u32,
    /// If every probe slot is taken and no probe has started or finished for this long, the
    /// breaker gives up on them and opens again. A safety net for permits that were never
    /// recorded; `None` trusts callers to always record.
    pub probe_timeout: Option<Duration>,
    /// The caller probes the dependency by its own means (a health check) while the breaker
    /// is open, rather than letting calls through as probes: the open period then only says
    /// when the next probe is due ([`probe_due`]), and the breaker half-opens when one
    /// passes ([`probe_passed`]), never by time alone. Calls that would have been probes are
    /// rejected (and answered at once by a fallback) instead of waiting on a dependency that
    /// is probably still down.
    ///
    /// [`probe_due`]: super::CircuitBreaker::probe_due
    /// [`probe_passed`]: super::CircuitBreaker::probe_passed
    pub external_probes: bool,
}

/// The sliding window the rate conditions are computed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlidingWindow {
    /// The last `calls` recorded calls.
    Count {
        /// Window size in calls.
        calls: u32,
    },
    /// The calls recorded in roughly the last `span`, kept as `buckets` counters each
    /// covering `span / buckets`. The window covers between `span - span / buckets` and
    /// `span`: the oldest bucket leaves whole. More buckets, finer edge, more memory.
    Time {
        /// How far back the window reaches.
        span: Duration,
        /// How many counters the span is cut into.
        buckets: u32,
    },
}

/// Exponential growth of the open period while the breaker keeps failing its probes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpenBackoff {
    /// Each re-open from half-open multiplies the open period by this (at least 1).
    pub multiplier: f64,
    /// The open period never grows past this.
    pub max: Duration,
}

impl Default for BreakerConfig {
    /// Trips at a 50% failure rate over the last 100 calls once 20 have been seen, stays open
    /// 5 s (doubling up to 60 s while probes keep failing), and closes after 3 good probes.
    fn default() -> Self {
        Self {
            consecutive_failures: None,
            failure_rate: Some(0.5),
            slow_call_rate: None,
            slow_call_duration: Duration::from_secs(1),
            window: SlidingWindow::Count { calls: 100 },
            minimum_calls: 20,
            open_duration: Duration::from_secs(5),
            open_backoff: Some(OpenBackoff {
                multiplier: 2.0,
                max: Duration::from_secs(60),
            }),
            half_open_probes: 3,
            probe_timeout: Some(Duration::from_secs(60)),
            external_probes: false,
        }
    }
}

/// A breaker configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ConfigError {
    /// `consecutive_failures` was `Some(0)`.
    #[error("consecutive_failures must be at least 1")]
    ZeroConsecutiveFailures,
    /// `failure_rate` outside `(0, 1]`.
    #[error("failure_rate must be in (0, 1], got {0}")]
    FailureRateOutOfRange(f64),
    /// `slow_call_rate` outside `(0, 1]`.
    #[error("slow_call_rate must be in (0, 1], got {0}")]
    SlowCallRateOutOfRange(f64),
    /// Slow-call tripping is on but every call would count as slow.
    #[error("slow_call_duration must be greater than zero when slow_call_rate is set")]
    ZeroSlowCallDuration,
    /// A window of zero calls, zero span or zero buckets.
    #[error("the sliding window must hold at least one call, span and bucket")]
    EmptyWindow,
    /// More slots or buckets than [`MAX_WINDOW_SLOTS`].
    #[error("the sliding window may have at most {MAX_WINDOW_SLOTS} slots or buckets, got {0}")]
    WindowTooLarge(u32),
    /// Buckets shorter than a nanosecond.
    #[error("a time window's span must be at least one nanosecond per bucket")]
    BucketsTooFine,
    /// `minimum_calls` was zero.
    #[error("minimum_calls must be at least 1")]
    ZeroMinimumCalls,
    /// A count window smaller than `minimum_calls` could never judge a rate.
    #[error("minimum_calls ({minimum_calls}) exceeds the count window ({window_calls} calls)")]
    MinimumCallsExceedWindow {
        /// The configured minimum.
        minimum_calls: u32,
        /// The configured window size.
        window_calls: u32,
    },
    /// `open_duration` was zero.
    #[error("open_duration must be greater than zero")]
    ZeroOpenDuration,
    /// `open_duration` above [`MAX_OPEN_DURATION`].
    #[error("open periods may last at most one year")]
    OpenDurationTooLong,
    /// The backoff cap above [`MAX_OPEN_DURATION`].
    #[error("open periods may last at most one year")]
    BackoffMaxTooLong,
    /// Backoff multiplier below 1 or not finite.
    #[error("open_backoff.multiplier must be a finite number of at least 1, got {0}")]
    BackoffMultiplierOutOfRange(f64),
    /// Backoff cap below the base open period.
    #[error("open_backoff.max must be at least open_duration")]
    BackoffMaxBelowOpenDuration,
    /// `half_open_probes` was zero.
    #[error("half_open_probes must be at least 1")]
    ZeroHalfOpenProbes,
    /// `probe_timeout` was `Some(0)`.
    #[error("probe_timeout must be greater than zero")]
    ZeroProbeTimeout,
}

impl ConfigError {
    /// The field of [`BreakerConfig`] the error is about (`"open_backoff.max"`), so that a
    /// caller reading the settings from a file can point at the key that holds it.
    pub fn field(&self) -> &'static str {
        use ConfigError as E;
        match self {
            E::ZeroConsecutiveFailures => "consecutive_failures",
            E::FailureRateOutOfRange(_) => "failure_rate",
            E::SlowCallRateOutOfRange(_) => "slow_call_rate",
            E::ZeroSlowCallDuration => "slow_call_duration",
            E::EmptyWindow | E::WindowTooLarge(_) | E::BucketsTooFine => "window",
            E::ZeroMinimumCalls | E::MinimumCallsExceedWindow { .. } => "minimum_calls",
            E::ZeroOpenDuration | E::OpenDurationTooLong => "open_duration",
            E::BackoffMultiplierOutOfRange(_) => "open_backoff.multiplier",
            E::BackoffMaxBelowOpenDuration | E::BackoffMaxTooLong => "open_backoff.max",
            E::ZeroHalfOpenProbes => "half_open_probes",
            E::ZeroProbeTimeout => "probe_timeout",
        }
    }
}

/// A [`BreakerConfig`] whose checks passed, with the compiled form the breaker runs on.
///
/// Made only by [`BreakerConfig::validated`]; a breaker built from it
/// ([`CircuitBreaker::from_valid`](super::CircuitBreaker::from_valid)) cannot fail. A caller that
/// validates once at load (the proxy's config) keeps this, not the plain config, so that
/// building breakers later (on a reload, for a new endpoint) has no failure path to forget.
#[derive(Debug, Clone)]
pub struct ValidBreakerConfig {
    config: BreakerConfig,
    pub(crate) compiled: Compiled,
}

impl ValidBreakerConfig {
    /// The configuration as given.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }
}

impl std::ops::Deref for ValidBreakerConfig {
    type Target = BreakerConfig;

    fn deref(&self) -> &BreakerConfig {
        &self.config
    }
}

impl PartialEq for ValidBreakerConfig {
    /// Equal when the configurations are: the compiled form follows from it.
    fn eq(&self, other: &Self) -> bool {
        self.config == other.config
    }
}

/// A rate threshold in parts per million, and the ratio it came from (for messages).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RateThreshold {
    ppm: u64,
    pub(crate) ratio: f64,
}

impl RateThreshold {
    /// `count / calls >= threshold`, exactly, in integers.
    #[inline]
    pub(crate) fn reached(self, count: u64, calls: u64) -> bool {
        count.saturating_mul(1_000_000) >= self.ppm.saturating_mul(calls)
    }
}

/// The configuration in the form the breaker runs on.
#[derive(Debug, Clone)]
pub(crate) struct Compiled {
    pub(crate) consecutive_failures: Option<u32>,
    pub(crate) failure_rate: Option<RateThreshold>,
    pub(crate) slow_call_rate: Option<RateThreshold>,
    pub(crate) slow_call_duration: Duration,
    pub(crate) minimum_calls: u64,
    pub(crate) open_duration: Duration,
    pub(crate) open_backoff: Option<OpenBackoff>,
    pub(crate) half_open_probes: u32,
    pub(crate) probe_timeout: Option<Duration>,
    pub(crate) external_probes: bool,
}

impl Compiled {
    /// The open period after `reopens` failed rounds of probing since the breaker last closed.
    pub(crate) fn open_period(&self, reopens: u32) -> Duration {
        let Some(backoff) = self.open_backoff else {
            return self.open_duration;
        };
        let exponent = i32::try_from(reopens).unwrap_or(i32::MAX);
        let secs = self.open_duration.as_secs_f64() * backoff.multiplier.powi(exponent);
        // NOTE: `secs` may be infinite; comparing before converting keeps `from_secs_f64`
        // from panicking.
        if secs >= backoff.max.as_secs_f64() {
            backoff.max
        } else {
            Duration::from_secs_f64(secs)
        }
    }
}

/// The refusal of a ratio outside `(0, 1]` (NaN included).
fn rate_error(value: Option<f64>, error: fn(f64) -> ConfigError) -> Option<ConfigError> {
    value
        .filter(|value| !(*value > 0.0 && *value <= 1.0))
        .map(error)
}

impl RateThreshold {
    /// A checked ratio (in `(0, 1]`) in parts per million.
    fn new(ratio: f64) -> Self {
        // `ratio` is in (0, 1], so this is in (0, 1e6] and the cast is exact after rounding.
        let ppm = (ratio * 1_000_000.0).round() as u64;
        Self {
            ppm: ppm.max(1),
            ratio,
        }
    }
}

impl BreakerConfig {
    /// Checks the configuration, keeping it with its compiled form; or the first setting
    /// that makes no sense (the first of [`errors`](Self::errors)).
    pub fn validated(self) -> Result<ValidBreakerConfig, ConfigError> {
        let compiled = self.validate()?;
        Ok(ValidBreakerConfig {
            config: self,
            compiled,
        })
    }

    /// Checks the configuration and compiles it for the breaker; or the first refusal.
    pub(crate) fn validate(&self) -> Result<Compiled, ConfigError> {
        if let Some(error) = self.errors().into_iter().next() {
            return Err(error);
        }
        Ok(Compiled {
            consecutive_failures: self.consecutive_failures,
            failure_rate: self.failure_rate.map(RateThreshold::new),
            slow_call_rate: self.slow_call_rate.map(RateThreshold::new),
            slow_call_duration: self.slow_call_duration,
            minimum_calls: u64::from(self.minimum_calls),
            open_duration: self.open_duration,
            open_backoff: self.open_backoff,
            half_open_probes: self.half_open_probes,
            probe_timeout: self.probe_timeout,
            external_probes: self.external_probes,
        })
    }

    /// Every setting that makes no sense, in the order they are checked (the fields', but
    /// `minimum_calls` before the window it is compared with), at most one per field (empty, and nothing allocated, when the configuration is valid). A caller that reads
    /// the settings from a file reports them all at once, each at its own key:
    /// [`ConfigError::field`].
    pub fn errors(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        if self.consecutive_failures == Some(0) {
            errors.push(ConfigError::ZeroConsecutiveFailures);
        }
        errors.extend(rate_error(
            self.failure_rate,
            ConfigError::FailureRateOutOfRange,
        ));
        let slow_call_rate = rate_error(self.slow_call_rate, ConfigError::SlowCallRateOutOfRange);
        errors.extend(slow_call_rate);
        if self.slow_call_rate.is_some() && self.slow_call_duration.is_zero() {
            errors.push(ConfigError::ZeroSlowCallDuration);
        }
        if self.minimum_calls == 0 {
            errors.push(ConfigError::ZeroMinimumCalls);
        }
        errors.extend(self.window_error());
        self.open_errors(&mut errors);
        if self.half_open_probes == 0 {
            errors.push(ConfigError::ZeroHalfOpenProbes);
        }
        if self.probe_timeout.is_some_and(|t| t.is_zero()) {
            errors.push(ConfigError::ZeroProbeTimeout);
        }
        errors
    }

    /// What is wrong with the window, or with `minimum_calls` against a count window.
    fn window_error(&self) -> Option<ConfigError> {
        match self.window {
            SlidingWindow::Count { calls: 0 } => Some(ConfigError::EmptyWindow),
            SlidingWindow::Count { calls } if calls > MAX_WINDOW_SLOTS => {
                Some(ConfigError::WindowTooLarge(calls))
            }
            SlidingWindow::Count { calls } if self.minimum_calls > calls => {
                Some(ConfigError::MinimumCallsExceedWindow {
                    minimum_calls: self.minimum_calls,
                    window_calls: calls,
                })
            }
            SlidingWindow::Count { .. } => None,
            SlidingWindow::Time { span, buckets } if span.is_zero() || buckets == 0 => {
                Some(ConfigError::EmptyWindow)
            }
            SlidingWindow::Time { buckets, .. } if buckets > MAX_WINDOW_SLOTS => {
                Some(ConfigError::WindowTooLarge(buckets))
            }
            SlidingWindow::Time { span, buckets } if span.as_nanos() < u128::from(buckets) => {
                Some(ConfigError::BucketsTooFine)
            }
            SlidingWindow::Time { .. } => None,
        }
    }

    fn open_errors(&self, errors: &mut Vec<ConfigError>) {
        if self.open_duration.is_zero() {
            errors.push(ConfigError::ZeroOpenDuration);
        } else if self.open_duration > MAX_OPEN_DURATION {
            errors.push(ConfigError::OpenDurationTooLong);
        }
        if let Some(backoff) = self.open_backoff {
            if !(backoff.multiplier.is_finite() && backoff.multiplier >= 1.0) {
                errors.push(ConfigError::BackoffMultiplierOutOfRange(backoff.multiplier));
            }
            if backoff.max < self.open_duration {
                errors.push(ConfigError::BackoffMaxBelowOpenDuration);
            } else if backoff.max > MAX_OPEN_DURATION {
                errors.push(ConfigError::BackoffMaxTooLong);
            }
        }
    }
}
