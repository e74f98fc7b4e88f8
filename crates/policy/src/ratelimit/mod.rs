//! A rate limiter: the generic cell rate algorithm (GCRA) with a burst.
//!
//! A [`RateLimiter`] admits `rate` cells per `period` on average and up to `burst` cells at
//! once. A rejection is [`RateLimited`], which says exactly when the next cell would be
//! admitted (`retry_after`), so a proxy can answer `429` with a `Retry-After` header. It sheds
//! at once and never queues: callers that want to wait can sleep for `retry_after`.
//!
//! # Why GCRA
//!
//! GCRA is a token bucket written as one number: the theoretical arrival time (TAT) of the
//! next cell. A cell arriving at `t` is admitted when `max(TAT, t) + T - t <= burst × T`
//! (with `T = period / rate`, the emission interval), and then moves TAT to
//! `max(TAT, t) + T`. There is no refill step and no timer: the whole state is one `u64`,
//! kept as nanoseconds since an origin `Instant`, and updated with a compare-and-swap. That
//! makes [`RateLimiter::check`] lock-free through `&self`, a load and a CAS on the hot path,
//! and the limiter cheap to create (no allocation, a few words), which matters because the
//! proxy keeps one per client key.
//!
//! # Why not wrap `governor`
//!
//! `governor` implements the same algorithm the same way (its `InMemoryState` is this
//! `AtomicU64`). Wrapping it would buy little and cost two things. First, its time comes
//! from its own `Clock` trait with its own instant types, while every policy in this crate
//! takes a plain `now: Instant` from the caller (sans-IO); adapting one to the other means a
//! clock object that returns a value stashed by the caller, per call. Second, the core
//! crate promises no dependencies beyond `rand` and `thiserror`; `governor` brings its own
//! tree (and its keyed store, quanta, etc.) that we do not use. The algorithm is about forty
//! lines and is checked here against a naive token bucket by property tests.
//!
//! # Rounding
//!
//! `T` is whole nanoseconds, rounded up, so the limiter never admits more than the configured
//! rate (at worst a hair less: under one nanosecond per cell). A rate finer than one cell per
//! nanosecond is rejected as a config error.

#[cfg(feature = "tower")]
mod layer;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[cfg(feature = "tower")]
pub use layer::{RateLimitLayer, RateLimitService, ResponseFuture};

/// How many cells per period, and how many at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Cells admitted per `period`, on average.
    pub rate: u32,
    /// The period `rate` is counted over.
    pub period: Duration,
    /// Cells that may be admitted at once after a quiet spell (the bucket size).
    pub burst: u32,
}

impl Default for RateLimitConfig {
    /// 100 per second, with bursts of up to 100.
    fn default() -> Self {
        Self {
            rate: 100,
            period: Duration::from_secs(1),
            burst: 100,
        }
    }
}

/// A [`RateLimitConfig`] whose checks passed, with the intervals it comes to. Made only by
/// [`RateLimitConfig::validated`]; a limiter built from it ([`RateLimiter::from_valid`])
/// cannot fail, and costs no division. A caller that validates once at load keeps this, so
/// building limiters later (for each new key, on a reload) has no failure path to forget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidRateLimitConfig {
    config: RateLimitConfig,
    emission: u64,
    tolerance: u64,
}

impl ValidRateLimitConfig {
    /// The configuration as given.
    pub fn config(&self) -> &RateLimitConfig {
        &self.config
    }
}

impl RateLimitConfig {
    /// Checks the config and keeps it as checked, with its intervals.
    pub fn validated(self) -> Result<ValidRateLimitConfig, ConfigError> {
        let (emission, tolerance) = self.intervals()?;
        Ok(ValidRateLimitConfig {
            config: self,
            emission,
            tolerance,
        })
    }

    /// Checks that the config makes sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.intervals().map(|_| ())
    }

    /// The emission interval `T` and the tolerance `burst × T`, in nanoseconds.
    fn intervals(&self) -> Result<(u64, u64), ConfigError> {
        if self.rate == 0 {
            return Err(ConfigError::ZeroRate);
        }
        if self.burst == 0 {
            return Err(ConfigError::ZeroBurst);
        }
        if self.period.is_zero() {
            return Err(ConfigError::ZeroPeriod);
        }
        let period = u64::try_from(self.period.as_nanos()).map_err(|_| ConfigError::TooSlow)?;
        let rate = u64::from(self.rate);
        if period < rate {
            return Err(ConfigError::TooFast);
        }
        let emission = period.div_ceil(rate);
        let tolerance = emission
            .checked_mul(u64::from(self.burst))
            .ok_or(ConfigError::TooSlow)?;
        Ok((emission, tolerance))
    }
}

/// A [`RateLimitConfig`] that makes no sense.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `rate` was zero: nothing would ever be admitted.
    #[error("rate limit rate must be at least 1")]
    ZeroRate,
    /// `burst` was zero: nothing would ever be admitted.
    #[error("rate limit burst must be at least 1")]
    ZeroBurst,
    /// `period` was zero.
    #[error("rate limit period must be positive")]
    ZeroPeriod,
    /// More than one cell per nanosecond.
    #[error("rate limit rate is above one per nanosecond")]
    TooFast,
    /// `period` or `burst × period / rate` does not fit in 584 years of nanoseconds.
    #[error("rate limit period or burst is too long to represent")]
    TooSlow,
}

/// A cell was not admitted; one will be at `now + retry_after` (if nobody else takes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("rate limited: retry after {retry_after:?}")]
pub struct RateLimited {
    /// How long until the cells asked for would be admitted.
    pub retry_after: Duration,
}

/// Why [`RateLimiter::check_n`] did not admit a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BatchRejected {
    /// Not now; the batch fits after `retry_after`.
    #[error(transparent)]
    RateLimited(#[from] RateLimited),
    /// The batch is larger than the burst and will never be admitted whole.
    #[error("batch of {requested} exceeds the burst of {burst}")]
    ExceedsBurst {
        /// Cells asked for.
        requested: u32,
        /// The most that can ever be admitted at once.
        burst: u32,
    },
}

/// A GCRA rate limiter, lock-free and usable through `&self` from many threads.
///
/// Share it with an `Arc`; it is not `Clone` so that two copies can never silently keep
/// separate budgets.
pub struct RateLimiter {
    /// Set by the first check; all times are kept as nanoseconds since it.
    origin: OnceLock<Instant>,
    /// Theoretical arrival time of the next cell, in nanoseconds since `origin`.
    tat: OwnCacheLine,
    /// `T`: nanoseconds per cell.
    emission: u64,
    /// `burst × T`: how far TAT may run ahead of now.
    tolerance: u64,
    config: RateLimitConfig,
}

/// The one word every check writes, alone on its cache line (128 bytes: adjacent-line
/// prefetch pairs lines on x86): under contention, a write by one thread then does not
/// evict the read-only fields (`emission`, `tolerance`, `origin`) the other threads read.
#[derive(Debug)]
#[repr(align(128))]
struct OwnCacheLine(AtomicU64);

impl RateLimiter {
    /// A limiter with a full burst available.
    pub fn new(config: RateLimitConfig) -> Result<Self, ConfigError> {
        Ok(Self::from_valid(&config.validated()?))
    }

    /// A limiter with a full burst available, for a config already checked: cannot fail.
    pub fn from_valid(valid: &ValidRateLimitConfig) -> Self {
        Self {
            origin: OnceLock::new(),
            tat: OwnCacheLine(AtomicU64::new(0)),
            emission: valid.emission,
            tolerance: valid.tolerance,
            config: valid.config.clone(),
        }
    }

    /// Admits one cell at `now`, or says when one will be admitted.
    pub fn check(&self, now: Instant) -> Result<(), RateLimited> {
        self.admit(self.emission, now)
    }

    /// Admits `n` cells at `now`, all or none. `n == 0` is always admitted.
    pub fn check_n(&self, n: u32, now: Instant) -> Result<(), BatchRejected> {
        if n > self.config.burst {
            return Err(BatchRejected::ExceedsBurst {
                requested: n,
                burst: self.config.burst,
            });
        }
        if n == 0 {
            return Ok(());
        }
        // n <= burst, so this is at most `tolerance`, which fits.
        self.admit(u64::from(n) * self.emission, now)?;
        Ok(())
    }

    /// The config this limiter was built from.
    pub fn config(&self) -> &RateLimitConfig {
        &self.config
    }

    /// The emission interval: the time one cell costs.
    pub fn emission_interval(&self) -> Duration {
        Duration::from_nanos(self.emission)
    }

    /// The GCRA step: move TAT forward by `cost` if that stays within the tolerance.
    fn admit(&self, cost: u64, now: Instant) -> Result<(), RateLimited> {
        let t = self.nanos_since_origin(now);
        let mut tat = self.tat.0.load(Ordering::Acquire);
        loop {
            let new_tat = tat.max(t).saturating_add(cost);
            // Admitted iff new_tat - t <= tolerance, i.e. t >= new_tat - tolerance.
            let earliest = new_tat.saturating_sub(self.tolerance);
            if earliest > t {
                return Err(RateLimited {
                    retry_after: Duration::from_nanos(earliest - t),
                });
            }
            match self.tat.0.compare_exchange_weak(
                tat,
                new_tat,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(()),
                Err(actual) => tat = actual,
            }
        }
    }

    fn nanos_since_origin(&self, now: Instant) -> u64 {
        let origin = *self.origin.get_or_init(|| now);
        // A `now` a little older than the origin (another thread's, read just before the
        // first check) counts as the origin itself.
        u64::try_from(now.saturating_duration_since(origin).as_nanos()).unwrap_or(u64::MAX)
    }
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("config", &self.config)
            .field("tat_nanos", &self.tat.0.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}
