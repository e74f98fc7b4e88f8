//! Latency estimators that decay with time: [`Ewma`] and [`PeakEwma`].
//!
//! # Why decay with time, not per sample
//!
//! The textbook EWMA, `v = α·sample + (1 − α)·v`, forgets per *sample*: an endpoint that
//! serves 10 000 requests a second forgets its past in a millisecond, one that serves a
//! request a minute remembers for an hour. A load balancer compares endpoints with very
//! different traffic, so both estimates must mean the same thing: "latency over the last few
//! seconds". Following Finagle and linkerd, each sample is therefore weighted by the time
//! since the previous one:
//!
//! ```text
//! w = exp(−Δt / τ)          v ← v·w + sample·(1 − w)
//! ```
//!
//! with a configured decay time `τ`. After `τ` without news an old value keeps `1/e` (37 %)
//! of its weight, after `3τ` 5 %. The estimate is an average over *time*, not over requests:
//! two samples at the same instant count as one moment (the second has weight zero), which
//! is exactly what a per-time average should do.
//!
//! # Why "peak"
//!
//! [`PeakEwma`] jumps to a sample that is above the estimate instead of averaging it in, and
//! only then decays toward lower samples with time. A load balancer must react to an endpoint
//! getting slow at once (every request sent there meanwhile suffers), while a single fast
//! answer proves little. Its [`cost`](PeakEwma::cost) multiplies the estimate by the number of
//! requests in flight plus one, as linkerd's `PeakEwma` load does, so that a fast endpoint
//! is not buried under all the traffic and an endpoint that stopped answering (many requests
//! in flight, no samples) becomes expensive even before its first timeout.
//!
//! # Forgetting when no samples arrive
//!
//! An endpoint that was slow stops being picked, so it receives no samples, so its estimate
//! never improves: with two endpoints and power-of-two-choices it would be starved forever.
//! Finagle and linkerd decay the estimate toward *zero* on every read. We decay the value
//! that the balancer reads ([`PeakEwma::get`]) toward the configured `default_rtt` instead,
//! and only from above, for two reasons:
//!
//! - toward zero, an endpoint idle for a few `τ` costs nothing whatever its in-flight count
//!   (`0 × (n + 1) = 0`), so power-of-two-choices sends it *every* request until its first
//!   answer comes back: a herd onto the endpoint that was the slowest. Decaying toward
//!   `default_rtt` means "we no longer know, assume the default", which the in-flight
//!   multiplier then spreads sensibly;
//! - a read that changes state (as in Finagle and linkerd) makes the estimate depend on how
//!   often the balancer happens to look. Here reads are pure: the same samples at the same
//!   instants give the same numbers, which is what lets the tests below compare with
//!   closed-form values.
//!
//! # Failures
//!
//! A failing endpoint often fails *fast* (connection refused in a millisecond, an immediate
//! 503): by latency alone it looks like the best endpoint and attracts ever more traffic (a
//! black hole). [`PeakEwma::observe_failure`] therefore records a failure as a peak of at
//! least `failure_penalty` (and never lower than the current estimate), so a failing
//! endpoint looks expensive for a few `τ`. Failures that are not the endpoint's fault
//! (overload answers, client cancellations) should be recorded with
//! [`observe`](PeakEwma::observe) or not at all.
//!
//! # Abandoned calls
//!
//! A call abandoned before its answer (a hedge won elsewhere, its client gave up) is a
//! *censored* sample: its latency is at least the time it was out.
//! [`PeakEwma::observe_censored`] takes it as a peak when it is above the estimate and
//! ignores it otherwise. An endpoint that stopped answering, whose calls are all abandoned,
//! then looks as slow as they were out, instead of keeping the estimate of its last answers.
//!
//! # Sharing
//!
//! The plain types take `&mut self`. [`SharedPeakEwma`] and [`SharedEwma`] wrap them in a
//! `std::sync::Mutex` for use through `&self` from many requests: the critical section is a
//! few floating-point operations and one `exp`, so an uncontended lock is some tens of
//! nanoseconds, the lock is per endpoint (contention is spread), and it is never held
//! across an `.await`. Packing estimate and timestamp into one atomic word would need a
//! 32-bit timestamp that wraps within weeks; a lock is simpler to trust.

use std::time::{Duration, Instant};

mod peak;
mod shared;
#[cfg(test)]
mod tests;

pub use peak::{PeakEwma, PeakEwmaConfig};
pub use shared::{SharedEwma, SharedPeakEwma};

/// A configuration for an estimator that makes no sense.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EwmaConfigError {
    /// The decay time was zero: the estimate would forget everything at once.
    #[error("the decay time must be greater than zero")]
    ZeroDecay,
}

/// A latency estimate weighted by time: recent samples count more, by `exp(−age / τ)`.
///
/// Before the first sample there is no estimate ([`get`](Ewma::get) returns `None`); the
/// first sample is taken as it is. The estimate always lies between the smallest and the
/// largest sample seen.
#[derive(Debug, Clone)]
pub struct Ewma {
    decay_nanos: f64,
    state: Option<Sampled>,
}

/// The estimate and when it last changed.
#[derive(Debug, Clone, Copy)]
struct Sampled {
    nanos: f64,
    at: Instant,
}

impl Ewma {
    /// An estimator with decay time `decay` (τ) and no samples yet.
    pub fn new(decay: Duration) -> Result<Self, EwmaConfigError> {
        Ok(Self {
            decay_nanos: decay_nanos(decay)?,
            state: None,
        })
    }

    /// The decay time τ.
    pub fn decay(&self) -> Duration {
        from_nanos(self.decay_nanos)
    }

    /// Adds a sample observed at `now`; it weighs `1 − exp(−Δt / τ)` where `Δt` is the time
    /// since the previous sample.
    pub fn observe(&mut self, sample: Duration, now: Instant) {
        let sample = nanos(sample);
        self.state = Some(match self.state {
            None => Sampled {
                nanos: sample,
                at: now,
            },
            Some(prev) => {
                let w = weight(prev.at, now, self.decay_nanos);
                Sampled {
                    nanos: mix(prev.nanos, sample, w),
                    at: later(prev.at, now),
                }
            }
        });
    }

    /// The current estimate, or `None` before the first sample.
    ///
    /// It takes no `now`: without new samples there is no new information, and an estimator
    /// used for timeouts or hedging must not drift on its own. (The load-balancing cost,
    /// which must forget, is [`PeakEwma::get`].)
    pub fn get(&self) -> Option<Duration> {
        self.state.map(|s| from_nanos(s.nanos))
    }

    /// When the estimate last changed, or `None` before the first sample.
    pub fn updated_at(&self) -> Option<Instant> {
        self.state.map(|s| s.at)
    }
}

/// Validates τ and returns it in nanoseconds.
fn decay_nanos(decay: Duration) -> Result<f64, EwmaConfigError> {
    if decay.is_zero() {
        return Err(EwmaConfigError::ZeroDecay);
    }
    Ok(nanos(decay))
}

/// The weight the old estimate keeps after the time from `then` to `now`:
/// `exp(−Δt / τ)`, `1` when time did not move (or went backwards between threads).
fn weight(then: Instant, now: Instant, decay_nanos: f64) -> f64 {
    let elapsed = nanos(now.saturating_duration_since(then));
    (-elapsed / decay_nanos).exp()
}

/// `old·w + sample·(1 − w)`, written so that the result never leaves `[min, max]` of the two
/// by rounding.
fn mix(old: f64, sample: f64, w: f64) -> f64 {
    let v = sample + (old - sample) * w;
    v.clamp(old.min(sample), old.max(sample))
}

/// The later of two instants: a sample that arrives "late" from another thread must not move
/// the clock of the estimate backwards.
fn later(a: Instant, b: Instant) -> Instant {
    if b > a { b } else { a }
}

fn nanos(d: Duration) -> f64 {
    d.as_nanos() as f64
}

/// Nanoseconds back to a `Duration`, rounding to the nearest nanosecond (the cast saturates,
/// and NaN, which cannot arise here, would become zero).
fn from_nanos(n: f64) -> Duration {
    Duration::from_nanos(n.round() as u64)
}
