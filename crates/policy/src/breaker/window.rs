//! Sliding windows of call outcomes, with running totals.
//!
//! The rate conditions need "failures and slow calls among the last N calls" (or "in the last
//! T") after every recorded call. Recomputing that from a list would cost O(N) per call, so
//! both windows keep running totals and adjust them by what enters and what leaves:
//!
//! - the count window is a ring of one byte per call; recording overwrites the oldest slot
//!   and subtracts what it held: O(1);
//! - the time window is a ring of per-bucket counters indexed by "which bucket of time since
//!   the first call"; moving to a new bucket clears the buckets that fell out, at most one
//!   pass over the ring however long the idle gap: O(1) amortised.
//!
//! Both are allocated once, when the breaker is built; recording never allocates.

use std::time::{Duration, Instant};

use super::config::SlidingWindow;

/// What a window holds right now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowCounts {
    /// Calls recorded (ignored calls are never recorded).
    pub calls: u64,
    /// Of those, failures.
    pub failures: u64,
    /// Of those, slow calls (a slow failure counts here and in `failures`).
    pub slow: u64,
}

impl WindowCounts {
    #[inline]
    fn add(&mut self, failed: bool, slow: bool) {
        self.calls += 1;
        self.failures += u64::from(failed);
        self.slow += u64::from(slow);
    }
}

/// One of the two window kinds; an enum rather than a trait object so recording is a
/// predictable branch and no allocation.
#[derive(Debug, Clone)]
pub(crate) enum Window {
    Count(CountWindow),
    Time(TimeWindow),
}

impl Window {
    pub(crate) fn new(kind: SlidingWindow) -> Self {
        match kind {
            SlidingWindow::Count { calls } => Window::Count(CountWindow::new(calls)),
            SlidingWindow::Time { span, buckets } => Window::Time(TimeWindow::new(span, buckets)),
        }
    }

    /// Adds one call recorded at `now`.
    #[inline]
    pub(crate) fn record(&mut self, failed: bool, slow: bool, now: Instant) {
        match self {
            Window::Count(w) => w.record(failed, slow),
            Window::Time(w) => w.record(failed, slow, now),
        }
    }

    /// The totals as of the last `record`.
    #[inline]
    pub(crate) fn counts(&self) -> WindowCounts {
        match self {
            Window::Count(w) => w.counts,
            Window::Time(w) => w.counts,
        }
    }

    /// The totals as they would be at `now` (a time window may have shed buckets since the
    /// last call), without changing the window.
    pub(crate) fn counts_at(&self, now: Instant) -> WindowCounts {
        match self {
            Window::Count(w) => w.counts,
            Window::Time(w) => w.counts_at(now),
        }
    }

    /// Empties the window.
    pub(crate) fn clear(&mut self) {
        match self {
            Window::Count(w) => w.clear(),
            Window::Time(w) => w.clear(),
        }
    }
}

const FAILED: u8 = 0b01;
const SLOW: u8 = 0b10;

/// The last `slots.len()` calls, one byte each.
#[derive(Debug, Clone)]
pub(crate) struct CountWindow {
    slots: Box<[u8]>,
    /// Where the next call goes; once the ring is full, also the oldest call.
    next: usize,
    counts: WindowCounts,
}

impl CountWindow {
    fn new(calls: u32) -> Self {
        let len = usize::try_from(calls).expect("window size is validated to at most 2^20");
        Self {
            slots: vec![0; len].into_boxed_slice(),
            next: 0,
            counts: WindowCounts::default(),
        }
    }

    #[inline]
    fn record(&mut self, failed: bool, slow: bool) {
        let len = self.slots.len();
        // NOTE: slots are read only once the ring is full, i.e. after every slot has been
        // written since the last clear; that is why `clear` need not zero them.
        if self.counts.calls as usize == len {
            let old = self.slots[self.next];
            self.counts.calls -= 1;
            self.counts.failures -= u64::from(old & FAILED);
            self.counts.slow -= u64::from((old & SLOW) >> 1);
        }
        self.slots[self.next] = (u8::from(failed) * FAILED) | (u8::from(slow) * SLOW);
        self.counts.add(failed, slow);
        self.next += 1;
        if self.next == len {
            self.next = 0;
        }
    }

    fn clear(&mut self) {
        self.next = 0;
        self.counts = WindowCounts::default();
    }
}

/// Per-bucket counters over a span of time.
///
/// Bucket `e` covers `[origin + e·width, origin + (e+1)·width)` and lives in ring slot
/// `e mod len`. The window holds buckets `head - len + 1 ..= head`, where `head` is the
/// bucket of the latest call.
#[derive(Debug, Clone)]
pub(crate) struct TimeWindow {
    buckets: Box<[WindowCounts]>,
    width_nanos: u64,
    /// Set by the first call, so building a breaker needs no clock.
    origin: Option<Instant>,
    /// The bucket number of the latest call, and its ring slot.
    head: u64,
    head_slot: usize,
    /// When the head bucket ends; until then a call needs no bucket arithmetic.
    head_end: Option<Instant>,
    counts: WindowCounts,
}

impl TimeWindow {
    fn new(span: Duration, buckets: u32) -> Self {
        let len = usize::try_from(buckets).expect("bucket count is validated to at most 2^20");
        let span_nanos = u64::try_from(span.as_nanos()).unwrap_or(u64::MAX);
        Self {
            buckets: vec![WindowCounts::default(); len].into_boxed_slice(),
            // Validation guarantees span >= buckets nanoseconds, so this is at least 1.
            width_nanos: (span_nanos / u64::from(buckets)).max(1),
            origin: None,
            head: 0,
            head_slot: 0,
            head_end: None,
            counts: WindowCounts::default(),
        }
    }

    /// The bucket number `now` falls in. Instants before the origin fall in bucket 0.
    #[inline]
    fn bucket_of(&self, origin: Instant, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(origin);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        nanos / self.width_nanos
    }

    #[inline]
    fn record(&mut self, failed: bool, slow: bool, now: Instant) {
        // Most calls land in the current bucket: one comparison, no division.
        if self.head_end.is_none_or(|end| now >= end) {
            self.roll(now);
        }
        self.buckets[self.head_slot].add(failed, slow);
        self.counts.add(failed, slow);
    }

    /// Moves the head to the bucket `now` falls in.
    fn roll(&mut self, now: Instant) {
        let origin = *self.origin.get_or_insert(now);
        let bucket = self.bucket_of(origin, now);
        // A call stamped earlier than the latest one (callers racing to record) lands in the
        // newest bucket rather than rewriting history.
        if bucket > self.head {
            self.advance_to(bucket);
        }
        let end_nanos = self.head.saturating_add(1).saturating_mul(self.width_nanos);
        // `None` only centuries from the origin; then every call takes this slower path.
        self.head_end = origin.checked_add(Duration::from_nanos(end_nanos));
    }

    /// Makes `bucket` the head, dropping every bucket that falls out of the window.
    fn advance_to(&mut self, bucket: u64) {
        let len = self.buckets.len();
        let steps = (bucket - self.head).min(len as u64);
        for _ in 0..steps {
            self.head_slot += 1;
            if self.head_slot == len {
                self.head_slot = 0;
            }
            let gone = std::mem::take(&mut self.buckets[self.head_slot]);
            self.counts.calls -= gone.calls;
            self.counts.failures -= gone.failures;
            self.counts.slow -= gone.slow;
        }
        self.head = bucket;
    }

    fn counts_at(&self, now: Instant) -> WindowCounts {
        let Some(origin) = self.origin else {
            return self.counts;
        };
        let bucket = self.bucket_of(origin, now);
        let len = self.buckets.len();
        let steps = bucket.saturating_sub(self.head).min(len as u64);
        let mut counts = self.counts;
        let mut slot = self.head_slot;
        for _ in 0..steps {
            slot = (slot + 1) % len;
            let gone = self.buckets[slot];
            counts.calls -= gone.calls;
            counts.failures -= gone.failures;
            counts.slow -= gone.slow;
        }
        counts
    }

    fn clear(&mut self) {
        self.buckets.fill(WindowCounts::default());
        self.counts = WindowCounts::default();
    }
}
