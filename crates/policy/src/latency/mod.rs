//! Latency distributions: how long an injected delay lasts.
//!
//! Real services are not uniformly slow: most answers are quick and a few are very slow, and
//! a timeout or a hedge is tuned against that tail. A fixed delay or a uniform jitter cannot
//! show it; a log-normal given by its median and its 99th percentile, the two numbers an
//! operator reads off a dashboard, can. Both places that cause delays on purpose draw from
//! this one type: the mock service (`blastwall mock`, its `latency_distribution`) and the
//! proxy's fault stage (`[[route.fault]] delay = { p50 = "50ms", p99 = "2s" }`), so a delay
//! means the same thing in both.
//!
//! Sampling is pure: [`Latency::sample`] takes its randomness as two plain draws in `[0, 1)`
//! from the caller, so a seeded mock repeats its delays exactly and a test can name the draw
//! it wants; [`Latency::sample_with`] takes them from a generator the caller owns. Whatever
//! the draws and the parameters (even ones [`Latency::validate`] refuses), a sample is never
//! negative (a normal draw below zero waits zero), never above [`MAX_DELAY`], and never
//! panics.
//!
//! With the `serde` feature, a distribution reads and writes as the mock's JSON:
//! `{"kind": "log_normal", "p50": "20ms", "p99": "400ms"}`, durations as humantime text.
//!
//! ```
//! use std::time::Duration;
//! use blastwall_policy::latency::Latency;
//!
//! let tail = Latency::LogNormal {
//!     p50: Duration::from_millis(20),
//!     p99: Duration::from_millis(400),
//! };
//! tail.validate().expect("0 < p50 <= p99");
//! // A standard normal draw of zero is the median.
//! let median = tail.sample([0.5, 0.25]);
//! assert!(median.abs_diff(Duration::from_millis(20)) < Duration::from_micros(1));
//! ```

#[cfg(test)]
mod tests;

use std::f64::consts::TAU;
use std::time::Duration;

use rand::Rng;

/// The standard normal's 99th percentile: `Φ⁻¹(0.99)`.
const Z_99: f64 = 2.326_347_874_040_840_8;

/// No delay is longer than this, whatever a distribution's tail draws.
pub const MAX_DELAY: Duration = Duration::from_secs(3600);

/// A distribution of delays. Plain data: check one that comes from a user with
/// [`validate`](Self::validate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)
)]
pub enum Latency {
    /// Always `value`.
    Fixed {
        /// The delay.
        #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
        value: Duration,
    },
    /// Uniformly between `min` and `max`.
    Uniform {
        /// The shortest delay.
        #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
        min: Duration,
        /// The longest delay; at least `min`.
        #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
        max: Duration,
    },
    /// Normal around `mean`; a draw below zero waits zero.
    Normal {
        /// The mean delay.
        #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
        mean: Duration,
        /// The standard deviation.
        #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
        std_dev: Duration,
    },
    /// Log-normal with median `p50` and 99th percentile `p99`.
    ///
    /// A log-normal delay is `exp(μ + σZ)` seconds with `Z` standard normal. Its median is
    /// `exp(μ)`, so `μ = ln(p50)`; its 99th percentile is `exp(μ + σ·z₉₉)` with
    /// `z₉₉ = Φ⁻¹(0.99) ≈ 2.3263`, so `σ = ln(p99 / p50) / z₉₉`. `p99 = p50` gives
    /// `σ = 0`, a fixed delay.
    LogNormal {
        /// The median delay; more than zero.
        #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
        p50: Duration,
        /// The 99th percentile; at least `p50`.
        #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
        p99: Duration,
    },
}

/// A distribution that cannot be sampled as it says; the message names the values given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidLatency {
    /// A uniform range upside down.
    #[error("uniform min ({min:?}) is more than max ({max:?})")]
    UniformRange {
        /// The minimum given.
        min: Duration,
        /// The maximum given.
        max: Duration,
    },
    /// A log-normal whose percentiles cannot be fitted.
    #[error("log_normal needs 0 < p50 <= p99, got p50 {p50:?} and p99 {p99:?}")]
    LogNormal {
        /// The median given.
        p50: Duration,
        /// The 99th percentile given.
        p99: Duration,
    },
}

impl Latency {
    /// Checks that the distribution is what it says: a uniform's `min <= max`, a
    /// log-normal's `0 < p50 <= p99`.
    pub fn validate(&self) -> Result<(), InvalidLatency> {
        match *self {
            Self::Uniform { min, max } if min > max => {
                Err(InvalidLatency::UniformRange { min, max })
            }
            Self::LogNormal { p50, p99 } if p50.is_zero() || p99 < p50 => {
                Err(InvalidLatency::LogNormal { p50, p99 })
            }
            _ => Ok(()),
        }
    }

    /// Whether every sample is zero: a delay that never delays (a fixed zero, a uniform up to
    /// zero, a normal around zero without spread).
    pub fn is_always_zero(&self) -> bool {
        match *self {
            Self::Fixed { value } => value.is_zero(),
            Self::Uniform { max, .. } => max.is_zero(),
            Self::Normal { mean, std_dev } => mean.is_zero() && std_dev.is_zero(),
            Self::LogNormal { p99, .. } => p99.is_zero(),
        }
    }

    /// One delay, from two independent uniform draws in `[0, 1)` (a uniform reads only the
    /// first); never negative, never above [`MAX_DELAY`].
    pub fn sample(&self, draws: [f64; 2]) -> Duration {
        let delay = match *self {
            Self::Fixed { value } => value,
            Self::Uniform { min, max } => {
                let offset = max.saturating_sub(min).as_secs_f64() * draws[0];
                // Rounding to nanoseconds must not step outside the range.
                seconds(min.as_secs_f64() + offset).clamp(min, max.max(min))
            }
            Self::Normal { mean, std_dev } => {
                seconds(mean.as_secs_f64() + std_dev.as_secs_f64() * standard_normal(draws))
            }
            Self::LogNormal { p50, p99 } => {
                let mu = p50.as_secs_f64().ln();
                let sigma = (p99.as_secs_f64() / p50.as_secs_f64()).ln() / Z_99;
                seconds((mu + sigma * standard_normal(draws)).exp())
            }
        };
        delay.min(MAX_DELAY)
    }

    /// One delay, its draws taken from `rng` (none for a fixed delay).
    pub fn sample_with(&self, rng: &mut impl Rng) -> Duration {
        match *self {
            Self::Fixed { value } => value.min(MAX_DELAY),
            _ => self.sample([rng.random(), rng.random()]),
        }
    }
}

/// `seconds` as a duration: below zero (or not a number) is zero, too large is the cap.
fn seconds(seconds: f64) -> Duration {
    Duration::try_from_secs_f64(seconds.max(0.0)).unwrap_or(MAX_DELAY)
}

/// A standard normal draw from two uniform ones (Box–Muller).
fn standard_normal([first, second]: [f64; 2]) -> f64 {
    // `1 - first` is in (0, 1], so its logarithm is finite.
    (-2.0 * (1.0 - first).ln()).sqrt() * (TAU * second).cos()
}
