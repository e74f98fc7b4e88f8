//! Recent latencies, in a fixed-size log-linear histogram over a sliding window.
//!
//! Values are microseconds. Below 16 µs each value has its own bucket; above, every power of
//! two is cut into 8 buckets, so a bucket is at most 12.5% wide relative to its values, up to
//! 2^33 µs (about 2.4 hours, where everything larger lands in the last bucket). That is 248
//! buckets, recorded into in O(1) with no allocation. The window is a ring of slices, each a
//! histogram of its own, plus a merged histogram of the live slices, so a quantile is one scan
//! of 248 counters and expiring a slice is one subtraction per bucket.

use std::time::{Duration, Instant};

use crate::backoff::nanos;

/// Values below this are counted exactly.
const LINEAR: u64 = 16;
/// Buckets per power of two above [`LINEAR`].
const SUB_BUCKETS: u64 = 8;
/// The largest power of two with buckets of its own.
const MAX_EXPONENT: u32 = 32;
/// How many buckets in all.
pub(super) const BUCKETS: usize = (LINEAR + (MAX_EXPONENT as u64 - 3) * SUB_BUCKETS) as usize;

/// The bucket a value in microseconds falls in.
pub(super) fn bucket_of(micros: u64) -> usize {
    if micros < LINEAR {
        return micros as usize;
    }
    let exponent = 63 - micros.leading_zeros(); // >= 4, as micros >= 16
    if exponent > MAX_EXPONENT {
        return BUCKETS - 1;
    }
    let sub = (micros >> (exponent - 3)) & (SUB_BUCKETS - 1);
    (LINEAR + u64::from(exponent - 4) * SUB_BUCKETS + sub) as usize
}

/// The smallest value, in microseconds, above every value of a bucket.
pub(super) fn bucket_end(bucket: usize) -> u64 {
    let bucket = bucket as u64;
    if bucket < LINEAR {
        return bucket + 1;
    }
    let exponent = 4 + (bucket - LINEAR) / SUB_BUCKETS;
    let sub = (bucket - LINEAR) % SUB_BUCKETS;
    (SUB_BUCKETS + sub + 1) << (exponent - 3)
}

/// Latencies recorded over the last `window`, in a ring of `slices`.
#[derive(Debug)]
pub(crate) struct LatencyWindow {
    slices: Box<[[u32; BUCKETS]]>,
    slice_totals: Box<[u64]>,
    merged: Box<[u64; BUCKETS]>,
    total: u64,
    slice_nanos: u64,
    origin: Option<Instant>,
    head: u64,
}

impl LatencyWindow {
    /// An empty window; `window / slices` must be at least a nanosecond.
    pub(crate) fn new(window: Duration, slices: u32) -> Self {
        let slices = slices.max(1);
        Self {
            slices: vec![[0; BUCKETS]; slices as usize].into_boxed_slice(),
            slice_totals: vec![0; slices as usize].into_boxed_slice(),
            merged: Box::new([0; BUCKETS]),
            total: 0,
            slice_nanos: nanos(window / slices).max(1),
            origin: None,
            head: 0,
        }
    }

    /// How many latencies are in the window.
    pub(crate) fn len(&self) -> u64 {
        self.total
    }

    /// Adds one latency, observed at `now`. Returns whether the window moved on (expiring
    /// old slices) first.
    pub(crate) fn record(&mut self, latency: Duration, now: Instant) -> bool {
        let moved = self.advance(now);
        let bucket = bucket_of(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
        let slot = (self.head % self.slices.len() as u64) as usize;
        let count = &mut self.slices[slot][bucket];
        // NOTE: a full counter drops the sample rather than wrap, keeping merged == sum(slices).
        if *count < u32::MAX {
            *count += 1;
            self.slice_totals[slot] += 1;
            self.merged[bucket] += 1;
            self.total += 1;
        }
        moved
    }

    /// The smallest bucket end at or above the `quantile` (0 < q <= 1) of the window's
    /// latencies: at most 12.5% above the true quantile. `None` when the window is empty.
    pub(crate) fn quantile(&self, quantile: f64) -> Option<Duration> {
        if self.total == 0 {
            return None;
        }
        let rank = ((quantile * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (bucket, count) in self.merged.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(Duration::from_micros(bucket_end(bucket)));
            }
        }
        None
    }

    /// Moves the ring forward to `now`, expiring slices that left the window.
    pub(crate) fn advance(&mut self, now: Instant) -> bool {
        let origin = *self.origin.get_or_insert(now);
        let slice = nanos(now.saturating_duration_since(origin)) / self.slice_nanos;
        if slice <= self.head {
            return false;
        }
        let len = self.slices.len() as u64;
        for k in 1..=(slice - self.head).min(len) {
            let slot = ((self.head + k) % len) as usize;
            for (merged, expired) in self.merged.iter_mut().zip(&self.slices[slot]) {
                *merged -= u64::from(*expired);
            }
            self.total -= self.slice_totals[slot];
            self.slices[slot] = [0; BUCKETS];
            self.slice_totals[slot] = 0;
        }
        self.head = slice;
        true
    }
}
