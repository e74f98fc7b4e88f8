//! Latency distributions: how long a mock waits before it answers.
//!
//! Real services are not uniformly slow: most answers are quick and a few are very slow, and
//! a timeout or a hedge is tuned against that tail. A uniform jitter cannot show it; a
//! log-normal given by its median and its 99th percentile, the two numbers an operator reads
//! off a dashboard, can. Sampling takes its randomness as plain draws in `[0, 1)` from the
//! caller, so a seeded mock repeats its delays exactly and a test can name the draw it wants.

use std::f64::consts::TAU;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The standard normal's 99th percentile: `Φ⁻¹(0.99)`.
const Z_99: f64 = 2.326_347_874_040_840_8;

/// No delay is longer than this, whatever a distribution's tail draws.
pub const MAX_DELAY: Duration = Duration::from_secs(3600);

/// A distribution of delays, as JSON: `{"kind": "log_normal", "p50": "20ms", "p99": "400ms"}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Latency {
    /// Always `value`.
    Fixed {
        /// The delay.
        #[serde(with = "humantime_serde")]
        value: Duration,
    },
    /// Uniformly between `min` and `max`.
    Uniform {
        /// The shortest delay.
        #[serde(with = "humantime_serde")]
        min: Duration,
        /// The longest delay.
        #[serde(with = "humantime_serde")]
        max: Duration,
    },
    /// Normal around `mean`; a draw below zero waits zero.
    Normal {
        /// The mean delay.
        #[serde(with = "humantime_serde")]
        mean: Duration,
        /// The standard deviation.
        #[serde(with = "humantime_serde")]
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
        #[serde(with = "humantime_serde")]
        p50: Duration,
        /// The 99th percentile; at least `p50`.
        #[serde(with = "humantime_serde")]
        p99: Duration,
    },
}

/// A distribution that cannot be sampled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidLatency {
    /// A uniform range upside down.
    #[error("latency_distribution: uniform min ({min:?}) is more than max ({max:?})")]
    UniformRange {
        /// The minimum given.
        min: Duration,
        /// The maximum given.
        max: Duration,
    },
    /// A log-normal whose percentiles cannot be fitted.
    #[error(
        "latency_distribution: log_normal needs 0 < p50 <= p99, got p50 {p50:?} and p99 {p99:?}"
    )]
    LogNormal {
        /// The median given.
        p50: Duration,
        /// The 99th percentile given.
        p99: Duration,
    },
}

impl Latency {
    /// Checks that the distribution can be sampled.
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

    /// One delay, from two independent uniform draws in `[0, 1)`; never above [`MAX_DELAY`].
    pub fn sample(&self, draws: [f64; 2]) -> Duration {
        let seconds = match *self {
            Self::Fixed { value } => value.as_secs_f64(),
            Self::Uniform { min, max } => min.as_secs_f64() + (max - min).as_secs_f64() * draws[0],
            Self::Normal { mean, std_dev } => {
                mean.as_secs_f64() + std_dev.as_secs_f64() * standard_normal(draws)
            }
            Self::LogNormal { p50, p99 } => {
                let mu = p50.as_secs_f64().ln();
                let sigma = (p99.as_secs_f64() / p50.as_secs_f64()).ln() / Z_99;
                (mu + sigma * standard_normal(draws)).exp()
            }
        };
        Duration::try_from_secs_f64(seconds.max(0.0))
            .unwrap_or(MAX_DELAY)
            .min(MAX_DELAY)
    }
}

/// A standard normal draw from two uniform ones (Box–Muller).
fn standard_normal([first, second]: [f64; 2]) -> f64 {
    // `1 - first` is in (0, 1], so its logarithm is finite.
    (-2.0 * (1.0 - first).ln()).sqrt() * (TAU * second).cos()
}

#[cfg(test)]
mod tests {
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn quantiles(latency: Latency, count: usize) -> impl Fn(f64) -> Duration {
        let mut rng = SmallRng::seed_from_u64(17);
        let mut delays: Vec<Duration> = (0..count)
            .map(|_| latency.sample([rng.random(), rng.random()]))
            .collect();
        delays.sort();
        move |q| delays[((delays.len() as f64) * q) as usize]
    }

    fn near(found: Duration, expected: Duration, tolerance: f64) -> bool {
        (found.as_secs_f64() / expected.as_secs_f64() - 1.0).abs() < tolerance
    }

    #[test]
    fn fixed_is_always_its_value() {
        let fixed = Latency::Fixed { value: 30 * MS };
        assert_eq!(fixed.sample([0.0, 0.0]), 30 * MS);
        assert_eq!(fixed.sample([0.99, 0.5]), 30 * MS);
    }

    #[test]
    fn uniform_spans_its_range_by_the_first_draw() {
        let uniform = Latency::Uniform {
            min: 10 * MS,
            max: 20 * MS,
        };
        assert_eq!(uniform.sample([0.0, 0.9]), 10 * MS);
        assert_eq!(uniform.sample([0.5, 0.1]), 15 * MS);
    }

    #[test]
    fn log_normal_has_the_median_and_99th_percentile_it_was_given() {
        let quantile = quantiles(
            Latency::LogNormal {
                p50: 20 * MS,
                p99: 400 * MS,
            },
            100_000,
        );
        assert!(
            near(quantile(0.5), 20 * MS, 0.05),
            "p50 {:?}",
            quantile(0.5)
        );
        assert!(
            near(quantile(0.99), 400 * MS, 0.1),
            "p99 {:?}",
            quantile(0.99)
        );
    }

    #[test]
    fn normal_centres_on_its_mean_and_never_goes_below_zero() {
        let quantile = quantiles(
            Latency::Normal {
                mean: 100 * MS,
                std_dev: 80 * MS,
            },
            100_000,
        );
        assert!(
            near(quantile(0.5), 100 * MS, 0.05),
            "p50 {:?}",
            quantile(0.5)
        );
        assert_eq!(quantile(0.0), Duration::ZERO);
    }

    #[test]
    fn a_huge_tail_is_capped() {
        let wild = Latency::LogNormal {
            p50: Duration::from_secs(1000),
            p99: Duration::from_secs(1_000_000_000),
        };
        assert_eq!(wild.sample([0.999_999, 0.0]), MAX_DELAY);
    }

    #[test]
    fn unfittable_distributions_are_refused_with_their_values() {
        let upside_down = Latency::Uniform {
            min: 20 * MS,
            max: 10 * MS,
        };
        assert!(upside_down.validate().is_err());
        let zero_median = Latency::LogNormal {
            p50: Duration::ZERO,
            p99: MS,
        };
        let err = zero_median.validate().expect_err("p50 of zero");
        assert!(err.to_string().contains("0 < p50 <= p99"), "{err}");
    }

    #[test]
    fn json_names_the_kind_and_takes_human_durations() {
        let latency: Latency =
            serde_json::from_str(r#"{"kind":"log_normal","p50":"20ms","p99":"1s"}"#)
                .expect("valid");
        assert_eq!(
            latency,
            Latency::LogNormal {
                p50: 20 * MS,
                p99: Duration::from_secs(1)
            }
        );
        let err = serde_json::from_str::<Latency>(r#"{"kind":"fixed","valu":"1s"}"#)
            .expect_err("a misspelt field");
        assert!(err.to_string().contains("valu"), "{err}");
    }
}
