//! How long to wait before the next attempt.
//!
//! A retry that goes out at once hits a dependency that has just failed, at the moment every
//! other client is retrying too. Backoff spaces attempts out; jitter spreads clients apart so
//! their retries stop arriving in synchronised waves. The kinds here are the ones measured in
//! the AWS Architecture Blog post "Exponential Backoff And Jitter" (Marc Brooker, 2015), with
//! `ceiling(n) = min(cap, base * multiplier^n)` for the `n`-th retry (counting from 0):
//!
//! | [`Jitter`] | delay before retry `n` |
//! |---|---|
//! | `None` | `ceiling(n)` (with `multiplier = 1`: a constant delay) |
//! | `Full` | uniform in `[0, ceiling(n)]` |
//! | `Equal` | `ceiling(n) / 2` + uniform in `[0, ceiling(n) / 2]` |
//! | `Decorrelated` | `min(cap, uniform in [base, prev * multiplier])`; `prev`: last delay, or `base` |
//!
//! The blog's decorrelated jitter multiplies the previous delay by 3; here it is the configured
//! `multiplier` (set it to 3 to get the blog's formula exactly), so one knob means "how fast the
//! delays grow" whatever the jitter. Full jitter is the default: the blog found it does the
//! least work for the same completion time.
//!
//! Decorrelated jitter depends on the previous delay, so the per-request state is a small
//! [`Backoff`] value that hands out delays one at a time, like an iterator that takes the
//! random number generator as an argument. The generator is the caller's (`&mut impl Rng`), so
//! a test seeds it and gets exact delays, and nothing here reads a thread-local generator.
//!
//! Every delay is at most `cap`, and no attempt number overflows: growth is computed in `f64`,
//! where a huge exponent becomes infinity and is clamped to the cap, and attempt counters
//! saturate.

use std::time::Duration;

use rand::Rng;

#[cfg(test)]
mod tests;

/// How the delay is randomised around the exponential ceiling. See the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Jitter {
    /// No randomness: exactly the ceiling.
    None,
    /// Uniform between zero and the ceiling.
    #[default]
    Full,
    /// Half the ceiling, plus uniform between zero and the other half.
    Equal,
    /// Uniform between `base` and the previous delay times the multiplier, capped.
    Decorrelated,
}

/// What a [`Backoff`] does. Plain data: check it with [`validate`](Self::validate) (which
/// [`Backoff::new`] does) when it comes from a user.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffConfig {
    /// The first delay (and, for decorrelated jitter, the smallest one).
    pub base: Duration,
    /// How much each delay grows over the previous ceiling; `1.0` gives a constant delay.
    pub multiplier: f64,
    /// No delay is ever longer than this.
    pub cap: Duration,
    /// How the delay is randomised.
    pub jitter: Jitter,
}

impl Default for BackoffConfig {
    /// Envoy's retry defaults: 25 ms doubling up to 250 ms, fully jittered.
    fn default() -> Self {
        Self {
            base: Duration::from_millis(25),
            multiplier: 2.0,
            cap: Duration::from_millis(250),
            jitter: Jitter::Full,
        }
    }
}

/// A [`BackoffConfig`] that makes no sense.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum BackoffConfigError {
    /// The multiplier is below one, infinite or not a number.
    #[error("backoff multiplier must be a finite number of at least 1, got {0}")]
    Multiplier(f64),
    /// The cap is shorter than the base delay.
    #[error("backoff cap ({cap:?}) must not be shorter than its base ({base:?})")]
    CapBelowBase {
        /// The configured base.
        base: Duration,
        /// The configured cap.
        cap: Duration,
    },
}

impl BackoffConfig {
    /// The same delay every time, without jitter.
    pub fn constant(delay: Duration) -> Self {
        Self {
            base: delay,
            multiplier: 1.0,
            cap: delay,
            jitter: Jitter::None,
        }
    }

    /// `base * multiplier^n`, capped at `cap`, without jitter (add it with
    /// [`with_jitter`](Self::with_jitter)).
    pub fn exponential(base: Duration, multiplier: f64, cap: Duration) -> Self {
        Self {
            base,
            multiplier,
            cap,
            jitter: Jitter::None,
        }
    }

    /// The same config with another jitter.
    pub fn with_jitter(self, jitter: Jitter) -> Self {
        Self { jitter, ..self }
    }

    /// Rejects a multiplier below one (delays that shrink) or that is not finite, and a cap
    /// below the base.
    pub fn validate(&self) -> Result<(), BackoffConfigError> {
        if !(self.multiplier.is_finite() && self.multiplier >= 1.0) {
            return Err(BackoffConfigError::Multiplier(self.multiplier));
        }
        if self.cap < self.base {
            return Err(BackoffConfigError::CapBelowBase {
                base: self.base,
                cap: self.cap,
            });
        }
        Ok(())
    }

    /// The delay before retry `retry` (counting from 0) without jitter:
    /// `min(cap, base * multiplier^retry)`. Never panics, whatever `retry` is.
    pub fn ceiling(&self, retry: u32) -> Duration {
        Duration::from_nanos(self.ceiling_nanos(retry))
    }

    fn ceiling_nanos(&self, retry: u32) -> u64 {
        let base = nanos(self.base);
        let cap = nanos(self.cap);
        if base == 0 {
            return 0;
        }
        // NOTE: f64 keeps this overflow-free: a huge power is +inf, and `as u64` saturates.
        let grown = base as f64 * self.multiplier.powf(f64::from(retry));
        (grown as u64).min(cap)
    }
}

/// The backoff of one request: hands out the delay before each retry in turn.
///
/// Cheap to create (a few words, no allocation); make one per request.
#[derive(Debug, Clone)]
pub struct Backoff {
    config: BackoffConfig,
    retries: u32,
    previous: Duration,
}

impl Backoff {
    /// A backoff that has handed out no delay yet.
    pub fn new(config: BackoffConfig) -> Result<Self, BackoffConfigError> {
        config.validate()?;
        Ok(Self::from_valid(config))
    }

    /// For callers that validated `config` already (a policy checks it once, at load).
    /// An invalid config still never panics or exceeds its cap; the delays are just odd.
    pub(crate) fn from_valid(config: BackoffConfig) -> Self {
        Self {
            config,
            retries: 0,
            previous: config.base,
        }
    }

    /// The delay before the next retry; advances the state.
    pub fn next_delay<R: Rng + ?Sized>(&mut self, rng: &mut R) -> Duration {
        let cap = nanos(self.config.cap);
        let delay = match self.config.jitter {
            Jitter::None => self.config.ceiling_nanos(self.retries),
            Jitter::Full => rng.random_range(0..=self.config.ceiling_nanos(self.retries)),
            Jitter::Equal => {
                let ceiling = self.config.ceiling_nanos(self.retries);
                let half = ceiling / 2;
                // `ceiling - half` rounds up, so the largest delay is exactly the ceiling.
                half + rng.random_range(0..=ceiling - half)
            }
            Jitter::Decorrelated => {
                let base = nanos(self.config.base);
                let grown = (nanos(self.previous) as f64 * self.config.multiplier) as u64;
                rng.random_range(base..=grown.max(base)).min(cap)
            }
        };
        // NOTE: every arm above is `<= cap` for a valid config; this keeps the promise even
        // for one that skipped validation.
        let delay = Duration::from_nanos(delay.min(cap));
        self.previous = delay;
        self.retries = self.retries.saturating_add(1);
        delay
    }

    /// How many delays this backoff has handed out.
    pub fn retries(&self) -> u32 {
        self.retries
    }

    /// Forgets the delays handed out, as if new.
    pub fn reset(&mut self) {
        self.retries = 0;
        self.previous = self.config.base;
    }

    /// The config this backoff follows.
    pub fn config(&self) -> &BackoffConfig {
        &self.config
    }
}

/// A duration in nanoseconds, saturating at `u64::MAX` (584 years).
pub(crate) fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}
