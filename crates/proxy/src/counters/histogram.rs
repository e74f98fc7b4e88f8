//! The hot-path side of the metrics: a latency histogram with fixed buckets, responses by
//! status class and an in-flight gauge, each a handful of relaxed atomics.
//!
//! Fixed buckets (not a sketch, not per-request samples) because Prometheus aggregates
//! buckets across proxies and over time, and because recording must stay two atomic adds:
//! no lock, no allocation, nothing a busy core could contend on for long. The buckets are
//! not cumulative in memory (one add per observation); the exposition sums them.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, in nanoseconds: 1ms to 30s, roughly 1-2.5-5 per
/// decade, like the Prometheus client defaults stretched to the proxy's timeouts.
pub(crate) const BUCKET_BOUNDS_NANOS: [u64; 14] = [
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
    30_000_000_000,
];

/// The same bounds as `le` label values, in seconds (written once here, not formatted per
/// scrape).
pub(crate) const BUCKET_LABELS: [&str; 14] = [
    "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5",
    "10", "30",
];

/// A latency histogram with the fixed buckets above and one overflow bucket (`+Inf`).
#[derive(Debug, Default)]
pub(crate) struct Histogram {
    /// Observations per bucket, not cumulative; the last is above every bound.
    buckets: [AtomicU64; BUCKET_BOUNDS_NANOS.len() + 1],
    /// Sum of the observations, in nanoseconds (overflows after 584 years of latency).
    sum_nanos: AtomicU64,
}

/// A histogram as read at one moment: cumulative counts, ready to write out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HistogramSnapshot {
    /// Observations at or under each bound of [`BUCKET_BOUNDS_NANOS`], cumulative.
    pub cumulative: [u64; BUCKET_BOUNDS_NANOS.len()],
    /// Every observation (the `+Inf` bucket and `_count`).
    pub count: u64,
    /// Sum of the observations, in nanoseconds.
    pub sum_nanos: u64,
}

impl Histogram {
    /// Records one duration: two relaxed atomic adds.
    pub(crate) fn observe(&self, duration: Duration) {
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        let bucket = BUCKET_BOUNDS_NANOS
            .iter()
            .position(|&bound| nanos <= bound)
            .unwrap_or(BUCKET_BOUNDS_NANOS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Reads it. Each bucket is loaded once, so the cumulative counts never decrease along
    /// the bounds and `count` is their total, even while requests record concurrently (the
    /// sum may include an observation whose bucket was read just before it landed).
    pub(crate) fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = [0; BUCKET_BOUNDS_NANOS.len()];
        let mut running = 0u64;
        for (slot, bucket) in cumulative.iter_mut().zip(&self.buckets) {
            running += bucket.load(Ordering::Relaxed);
            *slot = running;
        }
        let count = running + self.buckets[BUCKET_BOUNDS_NANOS.len()].load(Ordering::Relaxed);
        HistogramSnapshot {
            cumulative,
            count,
            sum_nanos: self.sum_nanos.load(Ordering::Relaxed),
        }
    }
}

/// Status classes, as the `class` label writes them.
pub(crate) const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Responses counted by status class.
#[derive(Debug, Default)]
pub(crate) struct StatusClasses([AtomicU64; STATUS_CLASSES.len()]);

impl StatusClasses {
    /// Counts one response.
    pub(crate) fn record(&self, status: http::StatusCode) {
        // NOTE: `StatusCode` is always 100..=999; 6xx-9xx (non-standard) count as 5xx, so
        // every response lands in some class.
        let class = usize::from(status.as_u16() / 100).clamp(1, STATUS_CLASSES.len()) - 1;
        self.0[class].fetch_add(1, Ordering::Relaxed);
    }

    /// Responses of each class of [`STATUS_CLASSES`], in that order.
    pub(crate) fn counts(&self) -> [u64; STATUS_CLASSES.len()] {
        std::array::from_fn(|class| self.0[class].load(Ordering::Relaxed))
    }
}

/// Requests in progress: up when one starts, down when it ends.
#[derive(Debug, Default)]
pub(crate) struct InFlight(AtomicI64);

impl InFlight {
    /// The count now (never negative once every start has its end).
    pub(crate) fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }

    pub(super) fn enter(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn leave(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
