//! How long one attempt may wait for its answer, learned from the answers: a multiple of
//! the recent p99, within a floor and a ceiling.
//!
//! # Why learn it
//!
//! A fixed per-try timeout is a guess made once for every state of the service. Set for the
//! slow days (500 ms), an attempt stuck on a hung replica costs the client half a second
//! before it is retried elsewhere; set for the fast days (20 ms), a service that slows down
//! under load turns every attempt into a timeout, and every timeout into a retry: a storm.
//! [`LearnedTimeout`] follows the service instead: `clamp(multiple × p99, floor, ceiling)`
//! over the last `window` of attempts.
//!
//! # Timeouts are evidence too
//!
//! An attempt that timed out after `t` took at least `t`: a censored sample. It is recorded
//! as `t`. Left out, a service that slowed from 5 ms to 60 ms would never show a latency
//! above the timeout it already has, and would time out for ever; recorded, once 1% of the
//! window's attempts timed out the p99 is at least the timeout, and the next timeout is
//! `multiple` times longer. So a slower service costs a short burst of timeouts (about 1% of
//! a window's attempts), not a storm. The price: a hung replica's timeouts lengthen the
//! timeout too, which is why the proxy takes hung replicas out of routing by other means
//! (stall detection) before they time out often.
//!
//! # Before it knows
//!
//! Until `min_samples` attempts are in the window the timeout is the ceiling: a timeout
//! guessed for an unknown service is the storm this avoids.
//!
//! [`LearnedTimeout`] is shared by every request of a route through `&self`: recording takes
//! a short lock (a counter increment, the p99 recomputed every 16 records and when the window
//! moves on), reading the timeout is one atomic load.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::backoff::nanos;
use crate::hedge::histogram::LatencyWindow;

#[cfg(test)]
mod tests;

/// The p99 is recomputed at least once every this many records.
const RECOMPUTE_EVERY: u32 = 16;

/// How many slices the latency window is cut into.
const WINDOW_SLICES: u32 = 4;

/// How a [`LearnedTimeout`] learns.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LearnedTimeoutConfig {
    /// The timeout is this many times the recent p99. Default 4.
    pub multiple: f64,
    /// Never shorter. Default 50 ms.
    pub floor: Duration,
    /// Never longer, and the timeout until `min_samples` are known.
    pub ceiling: Duration,
    /// Attempts needed in the window before the p99 is trusted. Default 100.
    pub min_samples: u32,
    /// How far back attempts count. Default 10 s.
    pub window: Duration,
}

impl LearnedTimeoutConfig {
    /// The defaults, with `ceiling` (the cluster's `request_timeout`, say); the floor is
    /// lowered to a ceiling under 50 ms.
    pub fn with_ceiling(ceiling: Duration) -> Self {
        Self {
            multiple: 4.0,
            floor: Duration::from_millis(50).min(ceiling),
            ceiling,
            min_samples: 100,
            window: Duration::from_secs(10),
        }
    }

    /// Checks every field.
    pub fn validate(&self) -> Result<(), LearnedTimeoutConfigError> {
        if !(self.multiple.is_finite() && self.multiple >= 1.0) {
            return Err(LearnedTimeoutConfigError::Multiple(self.multiple));
        }
        if self.floor.is_zero() || self.floor > self.ceiling {
            return Err(LearnedTimeoutConfigError::Bounds {
                floor: self.floor,
                ceiling: self.ceiling,
            });
        }
        if self.window < Duration::from_millis(1) {
            return Err(LearnedTimeoutConfigError::Window(self.window));
        }
        Ok(())
    }
}

/// A [`LearnedTimeoutConfig`] that makes no sense.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum LearnedTimeoutConfigError {
    /// The multiple is below 1 (or not a number): attempts would time out at their own p99.
    #[error("the multiple of the p99 must be at least 1, got {0}")]
    Multiple(f64),
    /// The floor is zero, or above the ceiling.
    #[error("the floor ({floor:?}) must be above zero and at most the ceiling ({ceiling:?})")]
    Bounds {
        /// The floor given.
        floor: Duration,
        /// The ceiling given.
        ceiling: Duration,
    },
    /// The window is shorter than a millisecond.
    #[error("the latency window must be at least 1ms, got {0:?}")]
    Window(Duration),
}

/// The window and when the timeout was last recomputed.
#[derive(Debug)]
struct Recorder {
    window: LatencyWindow,
    since_recompute: u32,
}

/// A per-try timeout learned from the attempts. See the [module docs](self).
#[derive(Debug)]
pub struct LearnedTimeout {
    config: LearnedTimeoutConfig,
    recorder: Mutex<Recorder>,
    /// The timeout now, in nanoseconds.
    timeout_nanos: AtomicU64,
}

impl LearnedTimeout {
    /// A timeout that has learned nothing yet (it is the ceiling).
    pub fn new(config: LearnedTimeoutConfig) -> Result<Self, LearnedTimeoutConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            recorder: Mutex::new(Recorder {
                window: LatencyWindow::new(config.window, WINDOW_SLICES),
                since_recompute: 0,
            }),
            timeout_nanos: AtomicU64::new(nanos(config.ceiling)),
        })
    }

    /// The config in force.
    pub fn config(&self) -> &LearnedTimeoutConfig {
        &self.config
    }

    /// How long an attempt sent now may wait for its answer.
    pub fn timeout(&self) -> Duration {
        Duration::from_nanos(self.timeout_nanos.load(Ordering::Acquire))
    }

    /// Records an attempt answered after `latency`, at `now`.
    pub fn record_answer(&self, latency: Duration, now: Instant) {
        self.record(latency, now);
    }

    /// Records an attempt that timed out after waiting `waited`, at `now`: a censored
    /// sample (it would have taken at least that).
    pub fn record_timeout(&self, waited: Duration, now: Instant) {
        self.record(waited, now);
    }

    fn record(&self, latency: Duration, now: Instant) {
        // A poisoned lock means a panic mid-record: the counts are still usable.
        let mut recorder = self.recorder.lock().unwrap_or_else(PoisonError::into_inner);
        let moved = recorder.window.record(latency, now);
        recorder.since_recompute += 1;
        let samples = recorder.window.len();
        let due = moved
            || samples == u64::from(self.config.min_samples)
            || recorder.since_recompute >= RECOMPUTE_EVERY;
        if !due {
            return;
        }
        recorder.since_recompute = 0;
        let timeout = if samples < u64::from(self.config.min_samples) {
            self.config.ceiling
        } else {
            let p99 = recorder
                .window
                .quantile(0.99)
                .unwrap_or(self.config.ceiling);
            Duration::try_from_secs_f64(p99.as_secs_f64() * self.config.multiple)
                .unwrap_or(self.config.ceiling)
                .clamp(self.config.floor, self.config.ceiling)
        };
        self.timeout_nanos.store(nanos(timeout), Ordering::Release);
    }
}
