//! Adaptive concurrency limits: a limit that follows what the upstream can take.
//!
//! A fixed bulkhead limit is a guess made at config time; it is too low when the upstream is
//! fast (shedding load it could serve) and too high when it slows down (queueing requests
//! inside it until they time out). An adaptive limit is moved by what each request observes:
//! its round-trip time (RTT), how many requests were in flight when it started, and whether
//! it was dropped (timed out, or rejected as overloaded). This is Little's law used as a
//! control loop: while RTT stays at its no-load level there is no queue upstream and the
//! limit may grow; when RTT rises, requests are queueing somewhere and the limit shrinks.
//!
//! Two algorithms, behind one small trait, [`LimitAlgorithm`]:
//!
//! - [`Gradient2`], after Netflix concurrency-limits' `Gradient2Limit`: compares a short-term
//!   RTT (this sample) to a long-term exponential average; their ratio, scaled by a
//!   tolerance and clamped to `[0.5, 1]`, is the gradient that shrinks the limit, and a fixed
//!   queue-size headroom lets it grow. Smooth, and needs no RTT threshold from the operator.
//! - [`Aimd`]: additive increase while the limit is being used, multiplicative decrease on
//!   a drop or an RTT above a timeout. Coarse, but robust when RTT is noisy or meaningless.
//!
//! Both are plain structs fed `(Sample, now)`; neither reads time or locks. The shared form
//! is [`AdaptiveLimiter`], which owns a [`Bulkhead`](crate::bulkhead::Bulkhead) for the
//! permits and an algorithm behind a `Mutex` that is taken once per completed request (never
//! across an `.await`), and moves the bulkhead's limit whenever the algorithm does. Each
//! [`AdaptivePermit`] measures its own RTT and reports it when recorded; a permit dropped
//! without a record (a cancelled request) teaches the algorithm nothing.
//!
//! Behind the `tower` feature, `AdaptiveConcurrencyLayer` does the same around a service.

mod aimd;
mod gradient2;
#[cfg(feature = "tower")]
mod layer;
mod limiter;
#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

pub use aimd::{Aimd, AimdConfig, ValidAimdConfig};
pub use gradient2::{Gradient2, Gradient2Config, ValidGradient2Config};
#[cfg(feature = "tower")]
pub use layer::{
    AdaptiveConcurrencyLayer, AdaptiveConcurrencyService, ClassifyOutcome, DefaultClassifier,
    ResponseFuture,
};
pub use limiter::{AdaptiveAcquire, AdaptiveLimiter, AdaptivePermit, Admitted};

/// What one finished request observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// From holding a permit to the response.
    pub rtt: Duration,
    /// Requests in flight when this one started, itself included.
    pub in_flight: u32,
    /// The request was dropped: timed out, or rejected upstream as overloaded.
    pub dropped: bool,
}

/// How a finished request should count towards the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It completed; its RTT is a measurement of the upstream.
    Success,
    /// It timed out or was shed upstream: a sign of overload.
    Dropped,
    /// It says nothing about load (a client error, a cancelled call): no sample.
    Ignored,
}

/// An algorithm that moves a concurrency limit from samples.
pub trait LimitAlgorithm: Send {
    /// The limit now.
    fn limit(&self) -> u32;

    /// Learns from one finished request and returns the new limit.
    fn on_sample(&mut self, sample: Sample, now: Instant) -> u32;
}

impl<A: LimitAlgorithm + ?Sized> LimitAlgorithm for Box<A> {
    fn limit(&self) -> u32 {
        (**self).limit()
    }

    fn on_sample(&mut self, sample: Sample, now: Instant) -> u32 {
        (**self).on_sample(sample, now)
    }
}

/// A [`Gradient2Config`] or [`AimdConfig`] that makes no sense.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// `min_limit` was zero: the limiter could shut every request out for good.
    #[error("min_limit must be at least 1")]
    ZeroMinLimit,
    /// The limits were not ordered `min_limit <= initial_limit <= max_limit`.
    #[error(
        "limits must satisfy min_limit ({min}) <= initial_limit ({initial}) <= max_limit ({max})"
    )]
    LimitsOutOfOrder {
        /// `min_limit`.
        min: u32,
        /// `initial_limit`.
        initial: u32,
        /// `max_limit`.
        max: u32,
    },
    /// A ratio was outside its range.
    #[error("{name} must be in {range}, got {value}")]
    OutOfRange {
        /// The config field.
        name: &'static str,
        /// The allowed range, in words.
        range: &'static str,
        /// The value given.
        value: f64,
    },
    /// A count or duration that must be positive was zero.
    #[error("{0} must be positive")]
    Zero(&'static str),
}

/// Checks `min <= initial <= max` and `min >= 1`.
fn check_limits(min: u32, initial: u32, max: u32) -> Result<(), ConfigError> {
    if min == 0 {
        return Err(ConfigError::ZeroMinLimit);
    }
    if !(min <= initial && initial <= max) {
        return Err(ConfigError::LimitsOutOfOrder { min, initial, max });
    }
    Ok(())
}

/// `Ok` if `ok`, else the out-of-range error for `name` (write `ok` so that NaN fails).
fn require(
    ok: bool,
    name: &'static str,
    value: f64,
    range: &'static str,
) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(ConfigError::OutOfRange { name, range, value })
    }
}
