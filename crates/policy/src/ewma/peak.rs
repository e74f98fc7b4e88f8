//! The peak-sensitive estimator the balancer reads.

use std::time::{Duration, Instant};

use super::{EwmaConfigError, decay_nanos, from_nanos, later, mix, nanos, weight};

/// How a [`PeakEwma`] weighs and forgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeakEwmaConfig {
    /// Decay time τ: a sample `τ` old keeps `1/e` of its weight. Default 10 s (Finagle's and
    /// linkerd's).
    pub decay: Duration,
    /// The latency assumed for an endpoint with no samples yet, and the value toward which
    /// a high estimate falls back when no samples arrive. Default 30 ms (linkerd's).
    pub default_rtt: Duration,
    /// The least latency a failure counts for (see
    /// [`observe_failure`](PeakEwma::observe_failure)). Default 1 s; zero means a failure
    /// only refreshes the current estimate.
    pub failure_penalty: Duration,
}

impl Default for PeakEwmaConfig {
    fn default() -> Self {
        Self {
            decay: Duration::from_secs(10),
            default_rtt: Duration::from_millis(30),
            failure_penalty: Duration::from_secs(1),
        }
    }
}

impl PeakEwmaConfig {
    /// Checks the configuration: the decay time must not be zero.
    pub fn validate(&self) -> Result<(), EwmaConfigError> {
        decay_nanos(self.decay).map(|_| ())
    }
}

/// A peak-sensitive, time-decayed latency estimate and the load-balancing cost built on it.
///
/// - A sample above the estimate replaces it at once; a lower one is averaged in with weight
///   `1 − exp(−Δt / τ)`, `Δt` being the time since the previous sample.
/// - Before the first sample the estimate is `default_rtt`; the first sample replaces it.
/// - [`get`](Self::get) (what the balancer reads) falls back from an estimate above
///   `default_rtt` toward `default_rtt` while no samples arrive: `d + (e − d)·exp(−idle / τ)`.
///   Estimates at or below `default_rtt` do not move without samples.
/// - [`cost`](Self::cost) is `get(now) × (in_flight + 1)`.
#[derive(Debug, Clone)]
pub struct PeakEwma {
    decay_nanos: f64,
    default_nanos: f64,
    penalty_nanos: f64,
    /// The estimate as of `at`, in nanoseconds.
    estimate: f64,
    /// When the estimate last changed (creation, before the first sample).
    at: Instant,
    /// Whether `estimate` comes from samples or is still `default_rtt`.
    sampled: bool,
}

impl PeakEwma {
    /// An estimator created at `now`, estimating `default_rtt` until the first sample.
    pub fn new(config: &PeakEwmaConfig, now: Instant) -> Result<Self, EwmaConfigError> {
        let default_nanos = nanos(config.default_rtt);
        Ok(Self {
            decay_nanos: decay_nanos(config.decay)?,
            default_nanos,
            penalty_nanos: nanos(config.failure_penalty),
            estimate: default_nanos,
            at: now,
            sampled: false,
        })
    }

    /// Records the latency of a call that completed at `now` (a success, or a failure that is
    /// not the endpoint's fault).
    pub fn observe(&mut self, rtt: Duration, now: Instant) {
        let rtt = nanos(rtt);
        self.estimate = if !self.sampled || rtt >= self.estimate {
            // A peak (or the first real sample, which replaces the default): take it whole.
            rtt
        } else {
            mix(self.estimate, rtt, weight(self.at, now, self.decay_nanos))
        };
        self.at = later(self.at, now);
        self.sampled = true;
    }

    /// Records a call that failed at `now` after `rtt`, as a peak of
    /// `max(rtt, failure_penalty, current estimate)`.
    ///
    /// A failure never makes the endpoint look cheaper than it did, however fast it failed,
    /// so a fast-failing endpoint cannot attract traffic.
    pub fn observe_failure(&mut self, rtt: Duration, now: Instant) {
        self.estimate = nanos(rtt).max(self.penalty_nanos).max(self.estimate);
        self.at = later(self.at, now);
        self.sampled = true;
    }

    /// Records a call abandoned at `now` after `at_least` without an answer (a hedge that
    /// lost, a call its client gave up on): its latency is unknown but at least that, a
    /// *censored* sample. It can only raise the estimate, as a peak: a censored sample shorter
    /// than the estimate says nothing, since the call might have taken as long.
    ///
    /// Without it an endpoint that answers nothing, whose calls are all abandoned, keeps the
    /// estimate of its last answers and goes on looking as good as ever.
    pub fn observe_censored(&mut self, at_least: Duration, now: Instant) {
        let at_least = nanos(at_least);
        if self.sampled && at_least <= self.estimate {
            return;
        }
        if !self.sampled && at_least <= self.default_nanos {
            return;
        }
        self.estimate = at_least;
        self.at = later(self.at, now);
        self.sampled = true;
    }

    /// The estimate as of the last sample, without the fall-back of idle time: the
    /// time-weighted peak average of the samples (or `default_rtt` before any).
    pub fn estimate(&self) -> Duration {
        from_nanos(self.estimate)
    }

    /// Forgets every sample: the estimate is `default_rtt` again, as if created at `now`.
    /// For an endpoint whose past no longer describes it, such as one back from an outage.
    pub fn forget(&mut self, now: Instant) {
        self.estimate = self.default_nanos;
        self.at = now;
        self.sampled = false;
    }

    /// Whether any sample has been recorded.
    pub fn has_samples(&self) -> bool {
        self.sampled
    }

    /// The latency the balancer should assume at `now`: the estimate, falling back toward
    /// `default_rtt` (from above only) the longer no samples arrive.
    pub fn get(&self, now: Instant) -> Duration {
        from_nanos(self.get_nanos(now))
    }

    /// The load-balancing cost at `now` with `in_flight` requests outstanding to this
    /// endpoint: `get(now)` in nanoseconds × `(in_flight + 1)`. Lower is better.
    pub fn cost(&self, now: Instant, in_flight: usize) -> f64 {
        self.get_nanos(now) * (in_flight as f64 + 1.0)
    }

    fn get_nanos(&self, now: Instant) -> f64 {
        let floor = self.estimate.min(self.default_nanos);
        floor + (self.estimate - floor) * weight(self.at, now, self.decay_nanos)
    }
}
