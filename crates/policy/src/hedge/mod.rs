//! When to send a second copy of a request that has not been answered yet.
//!
//! Tail latency is mostly bad luck: a GC pause, a cold cache, a busy host. A request that is
//! slower than almost all others is likely stuck on such luck, and a copy sent elsewhere will
//! likely come back sooner ("The Tail at Scale", Dean and Barroso, 2013). Hedging sends that
//! copy after a delay and keeps whichever answer comes first. Sent too early it only doubles
//! the load; so the delay is a high percentile of recent latencies (p95 by default: at most
//! about 5% of requests get a hedge), and every hedge withdraws from the same
//! [`RetryBudget`] as retries, which caps the extra load when the whole cluster is slow.
//!
//! * [`HedgeDelay::Fixed`] hedges after a fixed delay.
//! * [`HedgeDelay::Percentile`] hedges after the chosen percentile of the latencies recorded
//!   over the last `window` (a log-linear histogram: O(1) to record, at most 12.5% above the
//!   true value, and never below it). Until `min_samples` latencies are in the window the
//!   percentile means little, so the `fallback` delay is used, or, with no fallback, no
//!   request is hedged: guessing a delay for an unknown service risks doubling its load.
//!
//! Hedge `k` of a request (1-based) is due `k * delay` after the request was sent, up to
//! `max_hedges`. A hedge whose budget withdrawal fails ends hedging for that request.
//!
//! [`HedgePolicy`] is shared by every request of a route through `&self`: recording takes a
//! short lock (a few counter increments; the percentile is recomputed every
//! [`RECOMPUTE_EVERY`] records, when the window moves on, and when `min_samples` is reached),
//! and reading the delay is one atomic load. The histogram moves on only when latencies are
//! recorded. Which latency to record is the caller's choice; the `HedgeLayer` (feature
//! `tower`) records, for each successful request, the time from sending the original to the
//! first answer. That is the original's latency cut short when a hedge wins, so slow originals
//! still count as slow and the percentile does not drift down as hedging succeeds.
//!
//! The per-request part is a small [`HedgeState`]; [`HedgePolicy::poll_hedge`] is its one
//! transition function.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::backoff::nanos;
use crate::budget::RetryBudget;

#[cfg(feature = "tower")]
mod future;
pub(crate) mod histogram;
#[cfg(feature = "tower")]
mod layer;
#[cfg(all(test, feature = "tower"))]
mod layer_tests;
#[cfg(test)]
mod tests;

#[cfg(feature = "tower")]
pub use future::ResponseFuture;
#[cfg(feature = "tower")]
pub use layer::{Hedge, HedgeLayer};

use histogram::LatencyWindow;

/// The percentile is recomputed at least once every this many records.
pub const RECOMPUTE_EVERY: u32 = 16;

/// How many slices the latency window is cut into.
const WINDOW_SLICES: u32 = 4;

/// Stands for "no delay: do not hedge" in the atomic delay.
const NO_HEDGE: u64 = u64::MAX;

/// How long to wait before hedging.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HedgeDelay {
    /// Always this long.
    Fixed(Duration),
    /// A quantile of recent latencies.
    Percentile {
        /// Which quantile, in `(0, 1]`: `0.95` is p95.
        quantile: f64,
        /// How many latencies the window must hold before the quantile is trusted.
        min_samples: u32,
        /// The delay until then; `None` hedges nothing until then.
        fallback: Option<Duration>,
    },
}

/// How a [`HedgePolicy`] behaves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HedgeConfig {
    /// When to hedge.
    pub delay: HedgeDelay,
    /// Hedges per request at most (besides the original).
    pub max_hedges: u32,
    /// How far back latencies count, for [`HedgeDelay::Percentile`].
    pub window: Duration,
}

impl Default for HedgeConfig {
    /// One hedge after p95 of the last 10 s, once 100 latencies are known; none before.
    fn default() -> Self {
        Self {
            delay: HedgeDelay::Percentile {
                quantile: 0.95,
                min_samples: 100,
                fallback: None,
            },
            max_hedges: 1,
            window: Duration::from_secs(10),
        }
    }
}

/// A [`HedgeConfig`] that makes no sense.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum HedgeConfigError {
    /// The quantile is not in `(0, 1]`.
    #[error("hedge quantile must be above 0 and at most 1, got {0}")]
    Quantile(f64),
    /// `max_hedges` is zero: leave the hedge layer out instead.
    #[error("max_hedges must be at least 1")]
    ZeroHedges,
    /// The latency window is shorter than a millisecond.
    #[error("hedge latency window must be at least 1ms, got {0:?}")]
    Window(Duration),
}

/// A [`HedgeConfig`] whose checks passed. Made only by [`HedgeConfig::validated`]; a policy
/// built from it ([`HedgePolicy::from_valid`]) cannot fail. A caller that validates once at
/// load keeps this, so building policies later (on a reload) has no failure path to forget.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValidHedgeConfig(HedgeConfig);

impl ValidHedgeConfig {
    /// The configuration as given.
    pub fn config(&self) -> &HedgeConfig {
        &self.0
    }
}

impl std::ops::Deref for ValidHedgeConfig {
    type Target = HedgeConfig;

    fn deref(&self) -> &HedgeConfig {
        &self.0
    }
}

impl HedgeConfig {
    /// Checks every field and keeps the configuration as checked.
    pub fn validated(self) -> Result<ValidHedgeConfig, HedgeConfigError> {
        self.validate()?;
        Ok(ValidHedgeConfig(self))
    }

    /// Checks every field; [`HedgePolicy::new`] calls this.
    pub fn validate(&self) -> Result<(), HedgeConfigError> {
        if let HedgeDelay::Percentile { quantile, .. } = self.delay
            && !(quantile > 0.0 && quantile <= 1.0)
        {
            return Err(HedgeConfigError::Quantile(quantile));
        }
        if self.max_hedges == 0 {
            return Err(HedgeConfigError::ZeroHedges);
        }
        if self.window < Duration::from_millis(1) {
            return Err(HedgeConfigError::Window(self.window));
        }
        Ok(())
    }
}

/// Why no (further) hedge will be sent for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NoHedge {
    /// Percentile mode with too few latencies recorded and no fallback delay.
    #[error("too few latencies recorded to hedge")]
    NotWarmedUp,
    /// The request has had all its hedges.
    #[error("all hedges sent")]
    MaxHedges,
    /// The retry budget is spent.
    #[error("retry budget exhausted")]
    BudgetExhausted,
}

/// What to do about a request that is still unanswered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HedgeDecision {
    /// Send a hedge now (it has been withdrawn from the budget).
    Send,
    /// Not yet: ask again at this instant.
    WaitUntil(Instant),
    /// No more hedges for this request.
    Stop(NoHedge),
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The next hedge goes at `due`.
    Armed { due: Instant },
    /// No more hedges.
    Done(NoHedge),
}

/// The per-request part of hedging. Make one per request with [`HedgePolicy::start`].
#[derive(Debug, Clone)]
pub struct HedgeState {
    delay: Duration,
    sent: u32,
    max: u32,
    phase: Phase,
}

impl HedgeState {
    /// When the next hedge is due, if one may still be sent.
    pub fn next_hedge_at(&self) -> Option<Instant> {
        match self.phase {
            Phase::Armed { due } => Some(due),
            Phase::Done(_) => None,
        }
    }

    /// Hedges sent so far.
    pub fn hedges_sent(&self) -> u32 {
        self.sent
    }
}

/// The latency window and when the delay was last recomputed.
#[derive(Debug)]
struct Recorder {
    window: LatencyWindow,
    since_recompute: u32,
}

/// Decides when to hedge; shared by all requests of a route. See the module docs.
#[derive(Debug)]
pub struct HedgePolicy {
    config: HedgeConfig,
    recorder: Mutex<Recorder>,
    /// The current delay in nanoseconds, or [`NO_HEDGE`].
    delay_nanos: AtomicU64,
}

impl HedgePolicy {
    /// A policy that has recorded no latency yet.
    pub fn new(config: HedgeConfig) -> Result<Self, HedgeConfigError> {
        Ok(Self::from_valid(config.validated()?))
    }

    /// A policy that has recorded no latency yet, for a configuration already checked:
    /// cannot fail.
    pub fn from_valid(config: ValidHedgeConfig) -> Self {
        let config = config.0;
        let initial = match config.delay {
            HedgeDelay::Fixed(delay) => Some(delay),
            HedgeDelay::Percentile { fallback, .. } => fallback,
        };
        Self {
            config,
            recorder: Mutex::new(Recorder {
                window: LatencyWindow::new(config.window, WINDOW_SLICES),
                since_recompute: 0,
            }),
            delay_nanos: AtomicU64::new(encode(initial)),
        }
    }

    /// The config in force.
    pub fn config(&self) -> &HedgeConfig {
        &self.config
    }

    /// How long a request sent now would wait before its first hedge; `None`: no hedging.
    pub fn hedge_delay(&self) -> Option<Duration> {
        match self.delay_nanos.load(Ordering::Acquire) {
            NO_HEDGE => None,
            delay => Some(Duration::from_nanos(delay)),
        }
    }

    /// Records a latency observed at `now` (a no-op for a fixed delay).
    pub fn record(&self, latency: Duration, now: Instant) {
        let HedgeDelay::Percentile {
            quantile,
            min_samples,
            fallback,
        } = self.config.delay
        else {
            return;
        };
        // A poisoned lock means a panic mid-record: the counts are still usable.
        let mut recorder = self.recorder.lock().unwrap_or_else(PoisonError::into_inner);
        let moved = recorder.window.record(latency, now);
        recorder.since_recompute += 1;
        let samples = recorder.window.len();
        let due = moved
            || samples == u64::from(min_samples)
            || recorder.since_recompute >= RECOMPUTE_EVERY;
        if due {
            recorder.since_recompute = 0;
            let delay = if samples < u64::from(min_samples) {
                fallback
            } else {
                recorder.window.quantile(quantile).or(fallback)
            };
            self.delay_nanos.store(encode(delay), Ordering::Release);
        }
    }

    /// How many latencies the window holds now (moving it on to `now` first).
    pub fn samples(&self, now: Instant) -> u64 {
        let mut recorder = self.recorder.lock().unwrap_or_else(PoisonError::into_inner);
        recorder.window.advance(now);
        recorder.window.len()
    }

    /// The hedging state of a request sent at `now`, using the current delay.
    pub fn start(&self, now: Instant) -> HedgeState {
        let delay = self.hedge_delay();
        let phase = match delay.and_then(|delay| now.checked_add(delay)) {
            Some(due) => Phase::Armed { due },
            None => Phase::Done(NoHedge::NotWarmedUp),
        };
        HedgeState {
            delay: delay.unwrap_or(Duration::MAX),
            sent: 0,
            max: self.config.max_hedges,
            phase,
        }
    }

    /// For a request still unanswered at `now`: send a hedge (withdrawing it from `budget`),
    /// wait, or stop. The one place a [`HedgeState`] changes.
    pub fn poll_hedge(
        &self,
        state: &mut HedgeState,
        now: Instant,
        budget: &RetryBudget,
    ) -> HedgeDecision {
        match state.phase {
            // ## Done => Done
            Phase::Done(reason) => HedgeDecision::Stop(reason),
            // ## Armed => Armed (not due yet)
            Phase::Armed { due } if now < due => HedgeDecision::WaitUntil(due),
            Phase::Armed { due } => {
                if budget.withdraw(now).is_err() {
                    // ## Armed => Done (budget spent)
                    state.phase = Phase::Done(NoHedge::BudgetExhausted);
                    return HedgeDecision::Stop(NoHedge::BudgetExhausted);
                }
                state.sent += 1;
                // ## Armed => Armed (next hedge) | Done (all sent)
                state.phase = match due.checked_add(state.delay) {
                    Some(next) if state.sent < state.max => Phase::Armed { due: next },
                    _ => Phase::Done(NoHedge::MaxHedges),
                };
                HedgeDecision::Send
            }
        }
    }
}

fn encode(delay: Option<Duration>) -> u64 {
    // NOTE: a delay of u64::MAX ns (584 years) would read as "no hedge"; the same in practice.
    delay.map_or(NO_HEDGE, nanos)
}
