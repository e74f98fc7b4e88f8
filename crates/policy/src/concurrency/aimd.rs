//! AIMD: additive increase, multiplicative decrease.
//!
//! The TCP congestion-control rule applied to a concurrency limit, as in Netflix
//! concurrency-limits' `AIMDLimit`. A drop, or a sample slower than `timeout`, multiplies the
//! limit by `backoff_ratio`; a success while the limit is being used (at least half of it in
//! flight when the request started) adds `increase_by`. A success with the limit mostly idle
//! teaches nothing: raising a limit nobody reaches would let it drift to `max_limit` during a
//! quiet spell and then admit a burst the upstream has never shown it can take.
//!
//! AIMD needs no latency baseline, so it suits upstreams whose RTT varies with the request
//! more than with load; it reacts only to clear failure, so it runs closer to the edge than
//! [`Gradient2`](super::Gradient2).

use std::time::{Duration, Instant};

use super::{ConfigError, LimitAlgorithm, Sample, check_limits, require};

/// How [`Aimd`] moves its limit.
#[derive(Debug, Clone, PartialEq)]
pub struct AimdConfig {
    /// The limit before any sample.
    pub initial_limit: u32,
    /// The limit never goes below this.
    pub min_limit: u32,
    /// The limit never goes above this.
    pub max_limit: u32,
    /// Added to the limit on a success while the limit is in use.
    pub increase_by: u32,
    /// The limit is multiplied by this on a drop, in `(0, 1)`.
    pub backoff_ratio: f64,
    /// A sample slower than this counts as a drop.
    pub timeout: Duration,
}

impl Default for AimdConfig {
    /// Netflix's defaults (ratio 0.9, timeout 5 s), with `min_limit` 5 so the limit can
    /// fall below where it starts.
    fn default() -> Self {
        Self {
            initial_limit: 20,
            min_limit: 5,
            max_limit: 200,
            increase_by: 1,
            backoff_ratio: 0.9,
            timeout: Duration::from_secs(5),
        }
    }
}

/// An [`AimdConfig`] whose checks passed.
///
/// Made only by [`AimdConfig::validated`]; an algorithm built from it ([`Aimd::from_valid`])
/// cannot fail. A caller that validates once at load keeps this, so building the algorithm
/// later (on a reload) has no failure path to forget.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidAimdConfig(AimdConfig);

impl ValidAimdConfig {
    /// The configuration as given.
    pub fn config(&self) -> &AimdConfig {
        &self.0
    }
}

impl AimdConfig {
    /// Checks the config and keeps it as checked; or the first setting that makes no sense.
    pub fn validated(self) -> Result<ValidAimdConfig, ConfigError> {
        self.validate()?;
        Ok(ValidAimdConfig(self))
    }

    /// Checks that the config makes sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_limits(self.min_limit, self.initial_limit, self.max_limit)?;
        let r = self.backoff_ratio;
        require(r > 0.0 && r < 1.0, "backoff_ratio", r, "(0, 1)")?;
        if self.increase_by == 0 {
            return Err(ConfigError::Zero("increase_by"));
        }
        if self.timeout.is_zero() {
            return Err(ConfigError::Zero("timeout"));
        }
        Ok(())
    }
}

/// The AIMD algorithm (see the module doc).
#[derive(Debug, Clone)]
pub struct Aimd {
    config: AimdConfig,
    limit: u32,
}

impl Aimd {
    /// An algorithm at `initial_limit`.
    pub fn new(config: AimdConfig) -> Result<Self, ConfigError> {
        Ok(Self::from_valid(&config.validated()?))
    }

    /// An algorithm at `initial_limit` for a config already checked: cannot fail.
    pub fn from_valid(valid: &ValidAimdConfig) -> Self {
        let config = valid.config().clone();
        Self {
            limit: config.initial_limit,
            config,
        }
    }
}

impl LimitAlgorithm for Aimd {
    fn limit(&self) -> u32 {
        self.limit
    }

    fn on_sample(&mut self, sample: Sample, _now: Instant) -> u32 {
        let config = &self.config;
        let next = if sample.dropped || sample.rtt > config.timeout {
            // ## drop => multiplicative decrease (floor: always at least one lower)
            (f64::from(self.limit) * config.backoff_ratio) as u32
        } else if u64::from(sample.in_flight) * 2 >= u64::from(self.limit) {
            // ## busy success => additive increase
            self.limit.saturating_add(config.increase_by)
        } else {
            // ## idle success => unchanged
            self.limit
        };
        self.limit = next.clamp(config.min_limit, config.max_limit);
        self.limit
    }
}
