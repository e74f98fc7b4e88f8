//! Gradient2: the limit follows the ratio of long-term to short-term RTT.
//!
//! After Netflix concurrency-limits' `Gradient2Limit`. Each sample:
//!
//! 1. the long-term RTT, an exponential average over `long_window` samples (a plain mean
//!    for the first ten, so one early outlier cannot anchor it), absorbs the sample's RTT;
//!    if it has drifted above twice the sample it is cut by 5%, so that after a long
//!    overload the baseline comes back down faster than the average alone would allow;
//! 2. a sample from a request that started with fewer than half the limit in flight is
//!    app-limited: it says nothing about the limit, which stays put;
//! 3. `gradient = clamp(rtt_tolerance × long / short, 0.5, 1)`: 1 while the sample is within
//!    the tolerance of the baseline, falling as it rises, never below 0.5 so one outlier
//!    cannot halve the limit;
//! 4. `target = limit × gradient + queue_size`, and the limit moves `smoothing` of the way
//!    there, within `[min_limit, max_limit]`. At gradient 1 the limit grows by
//!    `smoothing × queue_size` per sample: the queue size is the headroom that probes for
//!    more capacity.
//!
//! Two choices differ from the Java original, both about drops. A dropped sample takes the
//! smallest gradient (0.5) even when app-limited, because a timeout is direct evidence of
//! overload; and its RTT (usually the timeout itself) is kept out of the long-term average,
//! which should describe the service, not our deadline.

use std::time::Instant;

use super::{ConfigError, LimitAlgorithm, Sample, check_limits, require};

/// How [`Gradient2`] moves its limit.
#[derive(Debug, Clone, PartialEq)]
pub struct Gradient2Config {
    /// The limit before any sample.
    pub initial_limit: u32,
    /// The limit never goes below this.
    pub min_limit: u32,
    /// The limit never goes above this.
    pub max_limit: u32,
    /// Fraction of the way to the target the limit moves per sample, in `(0, 1]`.
    pub smoothing: f64,
    /// How much slower than the long-term RTT a sample may be before the limit shrinks,
    /// as a ratio `>= 1` (1.5: up to 50% slower is fine).
    pub rtt_tolerance: f64,
    /// Samples the long-term RTT averages over.
    pub long_window: u32,
    /// Headroom added to the target: how fast the limit probes upwards.
    pub queue_size: u32,
}

impl Default for Gradient2Config {
    /// Netflix's defaults, except `min_limit` 5 (theirs is 20, equal to the initial limit,
    /// which would stop the limit from ever going below where it started).
    fn default() -> Self {
        Self {
            initial_limit: 20,
            min_limit: 5,
            max_limit: 200,
            smoothing: 0.2,
            rtt_tolerance: 1.5,
            long_window: 600,
            queue_size: 4,
        }
    }
}

/// A [`Gradient2Config`] whose checks passed.
///
/// Made only by [`Gradient2Config::validated`]; an algorithm built from it
/// ([`Gradient2::from_valid`]) cannot fail. A caller that validates once at load keeps this,
/// so building the algorithm later (on a reload) has no failure path to forget.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidGradient2Config(Gradient2Config);

impl ValidGradient2Config {
    /// The configuration as given.
    pub fn config(&self) -> &Gradient2Config {
        &self.0
    }
}

impl Gradient2Config {
    /// Checks the config and keeps it as checked; or the first setting that makes no sense.
    pub fn validated(self) -> Result<ValidGradient2Config, ConfigError> {
        self.validate()?;
        Ok(ValidGradient2Config(self))
    }

    /// Checks that the config makes sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_limits(self.min_limit, self.initial_limit, self.max_limit)?;
        let s = self.smoothing;
        require(s > 0.0 && s <= 1.0, "smoothing", s, "(0, 1]")?;
        let t = self.rtt_tolerance;
        require(t >= 1.0 && t.is_finite(), "rtt_tolerance", t, "[1, inf)")?;
        if self.long_window == 0 {
            return Err(ConfigError::Zero("long_window"));
        }
        Ok(())
    }
}

/// Samples averaged plainly before the long-term RTT switches to an exponential average.
const WARMUP_SAMPLES: u32 = 10;

/// The long-term RTT, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
enum LongRtt {
    /// Fewer than [`WARMUP_SAMPLES`] seen: the plain mean.
    Warmup { sum: f64, count: u32 },
    /// An exponential average.
    Steady { value: f64 },
}

impl LongRtt {
    fn value(self) -> f64 {
        match self {
            Self::Warmup { count: 0, .. } => 0.0,
            Self::Warmup { sum, count } => sum / f64::from(count),
            Self::Steady { value } => value,
        }
    }

    /// The one transition: `Warmup => (Warmup | Steady)`, `Steady => Steady`.
    fn add(self, rtt: f64, window: u32) -> Self {
        match self {
            // ## Warmup => Warmup | Steady (after the last warm-up sample)
            Self::Warmup { sum, count } if count + 1 < WARMUP_SAMPLES => Self::Warmup {
                sum: sum + rtt,
                count: count + 1,
            },
            Self::Warmup { sum, count } => Self::Steady {
                value: (sum + rtt) / f64::from(count + 1),
            },
            // ## Steady => Steady
            Self::Steady { value } => {
                let factor = 2.0 / (f64::from(window) + 1.0);
                Self::Steady {
                    value: value * (1.0 - factor) + rtt * factor,
                }
            }
        }
    }

    fn scale(self, by: f64) -> Self {
        match self {
            Self::Warmup { sum, count } => Self::Warmup {
                sum: sum * by,
                count,
            },
            Self::Steady { value } => Self::Steady { value: value * by },
        }
    }
}

/// The Gradient2 algorithm (see the module doc).
#[derive(Debug, Clone)]
pub struct Gradient2 {
    config: Gradient2Config,
    /// The limit as a real number; [`LimitAlgorithm::limit`] is its floor.
    estimate: f64,
    long_rtt: LongRtt,
}

impl Gradient2 {
    /// An algorithm at `initial_limit`, with no RTT history.
    pub fn new(config: Gradient2Config) -> Result<Self, ConfigError> {
        Ok(Self::from_valid(&config.validated()?))
    }

    /// An algorithm at `initial_limit` for a config already checked: cannot fail.
    pub fn from_valid(valid: &ValidGradient2Config) -> Self {
        let config = valid.config().clone();
        Self {
            estimate: f64::from(config.initial_limit),
            long_rtt: LongRtt::Warmup { sum: 0.0, count: 0 },
            config,
        }
    }

    /// The long-term RTT in nanoseconds (0 before any sample).
    pub fn long_rtt_nanos(&self) -> f64 {
        self.long_rtt.value()
    }
}

impl LimitAlgorithm for Gradient2 {
    fn limit(&self) -> u32 {
        // NOTE: `estimate` is always within [min_limit, max_limit], so this cannot wrap.
        self.estimate as u32
    }

    fn on_sample(&mut self, sample: Sample, _now: Instant) -> u32 {
        let config = &self.config;
        // At least a nanosecond, so the ratio below is finite.
        let short = (sample.rtt.as_nanos() as f64).max(1.0);
        if !sample.dropped {
            self.long_rtt = self.long_rtt.add(short, config.long_window);
        }
        let long = self.long_rtt.value();
        if long / short > 2.0 {
            self.long_rtt = self.long_rtt.scale(0.95);
        }

        let gradient = if sample.dropped {
            0.5
        } else if f64::from(sample.in_flight) < self.estimate / 2.0 {
            return self.limit();
        } else {
            (config.rtt_tolerance * long / short).clamp(0.5, 1.0)
        };
        let target = self.estimate * gradient + f64::from(config.queue_size);
        let smoothed = self.estimate * (1.0 - config.smoothing) + target * config.smoothing;
        self.estimate = smoothed.clamp(f64::from(config.min_limit), f64::from(config.max_limit));
        self.limit()
    }
}
