//! Sliding windows of call outcomes, with running totals, writable by one owner or by many
//! threads at once.
//!
//! The rate conditions need "failures and slow calls among the last N calls" (or "in the last
//! T") after every recorded call. Recomputing that from a list would cost O(N) per call, so
//! both windows keep running totals and adjust them by what enters and what leaves:
//!
//! - the count window is a ring of one byte per call, indexed by a call counter; recording
//!   swaps its outcome into the oldest slot and adjusts the totals by what it replaced: O(1),
//!   and nothing at all to adjust when a success replaces a success;
//! - the time window is a ring of per-bucket counters indexed by "which bucket of time since
//!   the first call"; moving to a new bucket clears the buckets that fell out, at most one
//!   pass over the ring however long the idle gap: O(1) amortised.
//!
//! Every counter is an atomic, so one window serves both breaker forms. The plain
//! [`CircuitBreaker`](super::CircuitBreaker) owns its window and writes it with
//! [`Exclusive`] access: plain loads and stores, no locked instructions. [`SharedBreaker`]
//! records closed-state calls from many threads with [`Concurrent`] access: atomic
//! read-modify-writes, no lock. Only moving a time window to a new bucket needs exclusion
//! (the owner's `&mut`, or the shared breaker's lock); see [`Tally::roll_and_record`].
//!
//! # Why the concurrent totals stay right
//!
//! - *No outcome is lost or counted twice.* Each slot is changed only by an atomic `swap`,
//!   which hands back exactly the outcome it displaced, so every outcome written is subtracted
//!   at most once, by whoever displaced it. When the writes stop, the totals equal what the
//!   slots hold. Two recorders can land in the same slot only if a whole window of calls was
//!   recorded between their tickets; then the later ticket may keep its slot and the earlier
//!   one's outcome stays instead, which changes which call is "oldest", not the totals.
//! - *Totals never wrap below zero.* A writer adds an outcome to the totals before it
//!   publishes it (into a slot or a bucket), and a remover takes it out of the totals only
//!   after it has taken it out of the slot or bucket. So a reader racing them may see a total
//!   briefly too large by the outcomes in flight, never too small.
//! - *What is approximate.* A reader racing writers sees totals a few calls out of date: the
//!   calls counter moves first, the failure and slow totals a few instructions later. A call
//!   whose recorder passed its generation check just before the window was cleared (the
//!   breaker reset or closed at that instant) may be counted in the fresh window, or, if the
//!   clear lands between its steps, leave a total off by one until the next clear. Reads
//!   clamp every total to `0..=calls`, so such a straggler can never make a rate absurd.
//!
//! Both windows are allocated once, when the breaker is built; recording never allocates.

use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
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

/// How a window's atomics are written: by their one owner, or by many threads at once.
pub(crate) trait Access {
    /// Adds `by` to `a` and returns the new value.
    fn add(a: &AtomicU64, by: u64) -> u64;
    /// Subtracts `by` from `a`.
    fn sub(a: &AtomicU64, by: u64);
    /// Stores `value` in `cell` and returns what it held.
    fn swap(cell: &AtomicU8, value: u8) -> u8;
    /// Takes the value of `a`, leaving zero.
    fn take(a: &AtomicU64) -> u64;
    /// Adds one to a run counter, saturating, and returns the new value.
    fn bump(a: &AtomicU32) -> u32;
    /// The slot of the count window the next call goes in, and that call's ticket.
    fn next_slot(w: &CountWindow) -> (usize, u64);
}

/// The window's owner writes it (`&mut CircuitBreaker`): plain loads and stores.
///
/// NOTE: correct only while nobody else writes the same window; a [`SharedBreaker`]
/// (which shares its window) must never record through this.
///
/// [`SharedBreaker`]: super::SharedBreaker
pub(crate) enum Exclusive {}

/// Many threads write the window at once: atomic read-modify-writes. `SeqCst` costs nothing
/// more than weaker orders for read-modify-writes and loads on x86, and makes the argument in
/// the [module docs](self) a plain interleaving argument.
pub(crate) enum Concurrent {}

impl Access for Exclusive {
    #[inline]
    fn add(a: &AtomicU64, by: u64) -> u64 {
        let value = a.load(Ordering::Relaxed).wrapping_add(by);
        a.store(value, Ordering::Relaxed);
        value
    }

    #[inline]
    fn sub(a: &AtomicU64, by: u64) {
        a.store(
            a.load(Ordering::Relaxed).wrapping_sub(by),
            Ordering::Relaxed,
        );
    }

    #[inline]
    fn swap(cell: &AtomicU8, value: u8) -> u8 {
        let old = cell.load(Ordering::Relaxed);
        cell.store(value, Ordering::Relaxed);
        old
    }

    #[inline]
    fn take(a: &AtomicU64) -> u64 {
        let value = a.load(Ordering::Relaxed);
        a.store(0, Ordering::Relaxed);
        value
    }

    #[inline]
    fn bump(a: &AtomicU32) -> u32 {
        let run = a.load(Ordering::Relaxed).saturating_add(1);
        a.store(run, Ordering::Relaxed);
        run
    }

    #[inline]
    fn next_slot(w: &CountWindow) -> (usize, u64) {
        // The owner keeps `next == tickets % len` as a second counter, so no division.
        let ticket = w.tickets.load(Ordering::Relaxed);
        w.tickets.store(ticket + 1, Ordering::Relaxed);
        let slot = w.next.load(Ordering::Relaxed);
        let after = if slot + 1 == w.slots.len() {
            0
        } else {
            slot + 1
        };
        w.next.store(after, Ordering::Relaxed);
        (slot, ticket)
    }
}

impl Access for Concurrent {
    #[inline]
    fn add(a: &AtomicU64, by: u64) -> u64 {
        a.fetch_add(by, Ordering::SeqCst).wrapping_add(by)
    }

    #[inline]
    fn sub(a: &AtomicU64, by: u64) {
        a.fetch_sub(by, Ordering::SeqCst);
    }

    #[inline]
    fn swap(cell: &AtomicU8, value: u8) -> u8 {
        cell.swap(value, Ordering::SeqCst)
    }

    #[inline]
    fn take(a: &AtomicU64) -> u64 {
        a.swap(0, Ordering::SeqCst)
    }

    #[inline]
    fn bump(a: &AtomicU32) -> u32 {
        let run = a.fetch_add(1, Ordering::SeqCst);
        if run == u32::MAX {
            // Four billion failures in a row with no limit set: stay at the top rather than
            // wrap to zero. Racing bumps may leave it a little below; nothing depends on it.
            a.store(u32::MAX, Ordering::SeqCst);
            return u32::MAX;
        }
        run + 1
    }

    #[inline]
    fn next_slot(w: &CountWindow) -> (usize, u64) {
        // A shared counter hands out tickets; the slot is the ticket modulo the window.
        let ticket = w.tickets.fetch_add(1, Ordering::SeqCst);
        (w.slot_of(ticket), ticket)
    }
}

/// What recording one call did, for deciding whether a trip condition needs judging.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Recorded {
    /// Calls in the window just after this one was added.
    pub(crate) calls: u64,
    /// Whether older calls left the window (a time window moved on), which can raise a rate
    /// even when the new call is a success.
    pub(crate) shed: bool,
    /// The run of consecutive failures just after this call.
    pub(crate) run: u32,
}

/// Everything the closed state counts: the window and the run of consecutive failures.
///
/// Held behind an `Arc` ([`TallyCell`]) so that a [`SharedBreaker`](super::SharedBreaker)
/// can record into it without taking the lock that guards the rest of the breaker.
#[derive(Debug)]
pub(crate) struct Tally {
    window: Window,
    consecutive_failures: AtomicU32,
}

impl Tally {
    fn new(kind: SlidingWindow) -> Self {
        Self {
            window: Window::new(kind),
            consecutive_failures: AtomicU32::new(0),
        }
    }

    /// Adds one call at `now`, or `None` if a time window must first move to a newer bucket,
    /// which [`roll_and_record`](Self::roll_and_record) does.
    #[inline]
    pub(crate) fn record<A: Access>(
        &self,
        failed: bool,
        slow: bool,
        now: Instant,
    ) -> Option<Recorded> {
        let (calls, shed) = match &self.window {
            Window::Count(w) => (w.record::<A>(failed, slow), false),
            Window::Time(w) => (w.record::<A>(failed, slow, now)?, false),
        };
        Some(self.finish::<A>(failed, calls, shed))
    }

    /// Moves a time window to the bucket `now` falls in, then adds one call.
    ///
    /// NOTE: only one caller at a time may roll: the breaker's owner, or whoever holds a
    /// shared breaker's lock. Recorders without the lock may run alongside.
    pub(crate) fn roll_and_record<A: Access>(
        &self,
        failed: bool,
        slow: bool,
        now: Instant,
    ) -> Recorded {
        let (calls, shed) = match &self.window {
            Window::Count(w) => (w.record::<A>(failed, slow), false),
            Window::Time(w) => w.roll_and_record::<A>(failed, slow, now),
        };
        self.finish::<A>(failed, calls, shed)
    }

    #[inline]
    fn finish<A: Access>(&self, failed: bool, calls: u64, shed: bool) -> Recorded {
        let run = if failed {
            A::bump(&self.consecutive_failures)
        } else {
            // Most successes follow a success: read, and write only to break a run.
            if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
                self.consecutive_failures.store(0, Ordering::SeqCst);
            }
            0
        };
        Recorded { calls, shed, run }
    }

    /// The window's totals as of the last call recorded.
    #[inline]
    pub(crate) fn counts(&self) -> WindowCounts {
        match &self.window {
            Window::Count(w) => w.counts(),
            Window::Time(w) => w.counts(),
        }
    }

    /// The totals as they would be at `now` (a time window may have shed buckets since the
    /// last call), without changing the window.
    pub(crate) fn counts_at(&self, now: Instant) -> WindowCounts {
        match &self.window {
            Window::Count(w) => w.counts(),
            Window::Time(w) => w.counts_at(now),
        }
    }

    /// The current run of consecutive failures.
    pub(crate) fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures.load(Ordering::SeqCst)
    }

    /// Empties the window and ends the run. Called on every transition to closed.
    pub(crate) fn clear(&self) {
        self.consecutive_failures.store(0, Ordering::SeqCst);
        match &self.window {
            Window::Count(w) => w.clear(),
            Window::Time(w) => w.clear(),
        }
    }
}

impl Clone for Tally {
    fn clone(&self) -> Self {
        Self {
            window: self.window.clone(),
            consecutive_failures: AtomicU32::new(self.consecutive_failures()),
        }
    }
}

/// A [`Tally`] behind an `Arc`, so a shared breaker can reach it without its lock; cloning
/// copies the tally (a cloned breaker counts on its own), it does not share it.
#[derive(Debug)]
pub(crate) struct TallyCell(Arc<Tally>);

impl TallyCell {
    pub(crate) fn new(kind: SlidingWindow) -> Self {
        Self(Arc::new(Tally::new(kind)))
    }

    /// Another handle on the same tally, for the shared breaker's lock-free path.
    pub(crate) fn share(&self) -> Arc<Tally> {
        Arc::clone(&self.0)
    }
}

impl Clone for TallyCell {
    fn clone(&self) -> Self {
        Self(Arc::new(Tally::clone(&self.0)))
    }
}

impl std::ops::Deref for TallyCell {
    type Target = Tally;

    fn deref(&self) -> &Tally {
        &self.0
    }
}

/// One of the two window kinds; an enum rather than a trait object so recording is a
/// predictable branch and no allocation.
#[derive(Debug, Clone)]
enum Window {
    Count(CountWindow),
    Time(TimeWindow),
}

impl Window {
    fn new(kind: SlidingWindow) -> Self {
        match kind {
            SlidingWindow::Count { calls } => Window::Count(CountWindow::new(calls)),
            SlidingWindow::Time { span, buckets } => Window::Time(TimeWindow::new(span, buckets)),
        }
    }
}

const FAILED: u8 = 0b01;
const SLOW: u8 = 0b10;

/// Reads a total that racing writers may have left briefly out of step: never below zero
/// (a wrapped value), never above the calls it is a share of.
#[inline]
fn clamp(total: u64, calls: u64) -> u64 {
    if total > u64::MAX >> 1 {
        0
    } else {
        total.min(calls)
    }
}

/// The last `slots.len()` calls, one byte each.
#[derive(Debug)]
pub(crate) struct CountWindow {
    slots: Box<[AtomicU8]>,
    /// Calls recorded since the last clear; call `t` went in slot `t % len`.
    tickets: AtomicU64,
    /// `tickets % len`, kept by the exclusive owner to avoid a division per call.
    next: AtomicUsize,
    /// `2^64 / len`, rounded up: turns `ticket % len` into two multiplications.
    reciprocal: u64,
    failures: AtomicU64,
    slow: AtomicU64,
}

impl CountWindow {
    fn new(calls: u32) -> Self {
        let len = usize::try_from(calls).expect("window size is validated to at most 2^20");
        Self {
            slots: (0..len).map(|_| AtomicU8::new(0)).collect(),
            tickets: AtomicU64::new(0),
            next: AtomicUsize::new(0),
            reciprocal: (u64::MAX / u64::from(calls)).wrapping_add(1),
            failures: AtomicU64::new(0),
            slow: AtomicU64::new(0),
        }
    }

    /// `ticket % len`. For tickets below 2^32 (the first four billion calls after a clear)
    /// Lemire's multiply-and-shift, which is exact there; a division after that.
    #[inline]
    fn slot_of(&self, ticket: u64) -> usize {
        let len = self.slots.len() as u64;
        let slot = if ticket >> 32 == 0 {
            let low = self.reciprocal.wrapping_mul(ticket);
            ((u128::from(low) * u128::from(len)) >> 64) as u64
        } else {
            ticket % len
        };
        slot as usize
    }

    /// Adds one call; returns the calls in the window after it.
    #[inline]
    fn record<A: Access>(&self, failed: bool, slow: bool) -> u64 {
        let (slot, ticket) = A::next_slot(self);
        let outcome = (u8::from(failed) * FAILED) | (u8::from(slow) * SLOW);
        let cell = &self.slots[slot];
        // NOTE: slots are zero (a fast success) after a clear, so a slot not yet written
        // since holds nothing to subtract. Writing what the slot already holds would change
        // nothing: the common success-after-success case touches no total at all.
        if cell.load(Ordering::Relaxed) != outcome {
            // Add before publishing, subtract after displacing: totals never dip below the
            // slots' contents (see the module docs).
            if outcome & FAILED != 0 {
                A::add(&self.failures, 1);
            }
            if outcome & SLOW != 0 {
                A::add(&self.slow, 1);
            }
            let old = A::swap(cell, outcome);
            if old & FAILED != 0 {
                A::sub(&self.failures, 1);
            }
            if old & SLOW != 0 {
                A::sub(&self.slow, 1);
            }
        }
        (ticket + 1).min(self.slots.len() as u64)
    }

    fn counts(&self) -> WindowCounts {
        let calls = self
            .tickets
            .load(Ordering::SeqCst)
            .min(self.slots.len() as u64);
        WindowCounts {
            calls,
            failures: clamp(self.failures.load(Ordering::SeqCst), calls),
            slow: clamp(self.slow.load(Ordering::SeqCst), calls),
        }
    }

    fn clear(&self) {
        self.tickets.store(0, Ordering::SeqCst);
        self.next.store(0, Ordering::SeqCst);
        for slot in &self.slots[..] {
            slot.store(0, Ordering::Relaxed);
        }
        self.failures.store(0, Ordering::SeqCst);
        self.slow.store(0, Ordering::SeqCst);
    }
}

impl Clone for CountWindow {
    fn clone(&self) -> Self {
        let copy = |a: &AtomicU64| AtomicU64::new(a.load(Ordering::SeqCst));
        Self {
            slots: self
                .slots
                .iter()
                .map(|s| AtomicU8::new(s.load(Ordering::SeqCst)))
                .collect(),
            tickets: copy(&self.tickets),
            next: AtomicUsize::new(self.next.load(Ordering::SeqCst)),
            reciprocal: self.reciprocal,
            failures: copy(&self.failures),
            slow: copy(&self.slow),
        }
    }
}

/// One bucket's counters (or a time window's running totals).
#[derive(Debug, Default)]
struct Bucket {
    calls: AtomicU64,
    failures: AtomicU64,
    slow: AtomicU64,
}

impl Bucket {
    #[inline]
    fn add<A: Access>(&self, failed: bool, slow: bool) -> u64 {
        let calls = A::add(&self.calls, 1);
        if failed {
            A::add(&self.failures, 1);
        }
        if slow {
            A::add(&self.slow, 1);
        }
        calls
    }

    fn load(&self) -> WindowCounts {
        WindowCounts {
            calls: self.calls.load(Ordering::SeqCst),
            failures: self.failures.load(Ordering::SeqCst),
            slow: self.slow.load(Ordering::SeqCst),
        }
    }

    fn store(&self, counts: WindowCounts) {
        self.calls.store(counts.calls, Ordering::SeqCst);
        self.failures.store(counts.failures, Ordering::SeqCst);
        self.slow.store(counts.slow, Ordering::SeqCst);
    }
}

impl Clone for Bucket {
    fn clone(&self) -> Self {
        let copy = Bucket::default();
        copy.store(self.load());
        copy
    }
}

/// Per-bucket counters over a span of time.
///
/// Bucket `e` covers `[origin + e·width, origin + (e+1)·width)` and lives in ring slot
/// `e mod len`. The window holds buckets `head - len + 1 ..= head`, where `head` is the
/// bucket of the latest call. Only a roller (see [`Tally::roll_and_record`]) writes `origin`,
/// `head`, `head_slot` and `head_end`; recorders read them.
#[derive(Debug, Clone)]
pub(crate) struct TimeWindow {
    buckets: Box<[Bucket]>,
    width_nanos: u64,
    /// Set by the first call, so building a breaker needs no clock.
    origin: OnceLock<Instant>,
    /// The bucket number of the latest call, and its ring slot.
    head: AtomicU64Cell,
    head_slot: AtomicU64Cell,
    /// When the head bucket ends, in nanoseconds from the origin (0 before the first call);
    /// until then a call needs no bucket arithmetic and no lock.
    head_end: AtomicU64Cell,
    totals: Bucket,
}

/// An `AtomicU64` that clones by value.
#[derive(Debug, Default)]
struct AtomicU64Cell(AtomicU64);

impl AtomicU64Cell {
    #[inline]
    fn get(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    fn set(&self, value: u64) {
        self.0.store(value, Ordering::SeqCst);
    }
}

impl Clone for AtomicU64Cell {
    fn clone(&self) -> Self {
        Self(AtomicU64::new(self.get()))
    }
}

/// Nanoseconds from `origin` to `now`; 0 if `now` is earlier, `u64::MAX` centuries on.
#[inline]
fn nanos_since(origin: Instant, now: Instant) -> u64 {
    let elapsed = now.saturating_duration_since(origin);
    u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
}

impl TimeWindow {
    fn new(span: Duration, buckets: u32) -> Self {
        let len = usize::try_from(buckets).expect("bucket count is validated to at most 2^20");
        let span_nanos = u64::try_from(span.as_nanos()).unwrap_or(u64::MAX);
        Self {
            buckets: (0..len).map(|_| Bucket::default()).collect(),
            // Validation guarantees span >= buckets nanoseconds, so this is at least 1.
            width_nanos: (span_nanos / u64::from(buckets)).max(1),
            origin: OnceLock::new(),
            head: AtomicU64Cell::default(),
            head_slot: AtomicU64Cell::default(),
            head_end: AtomicU64Cell::default(),
            totals: Bucket::default(),
        }
    }

    /// Adds one call if `now` falls in the head bucket; `None` if the window must roll first.
    #[inline]
    fn record<A: Access>(&self, failed: bool, slow: bool, now: Instant) -> Option<u64> {
        let origin = *self.origin.get()?;
        // Most calls land in the current bucket: one comparison, no division (an `Instant`
        // addition inlines; a subtraction is a call into std).
        let end = origin.checked_add(Duration::from_nanos(self.head_end.get()))?;
        if now >= end {
            return None;
        }
        Some(self.add::<A>(failed, slow))
    }

    #[inline]
    fn add<A: Access>(&self, failed: bool, slow: bool) -> u64 {
        // NOTE: totals first, bucket second; a roll takes the bucket first and the totals
        // second, so the totals never fall below the buckets (see the module docs). A
        // recorder that read the head just before a roll adds to a bucket that is now one
        // older, still in the window.
        let calls = self.totals.add::<A>(failed, slow);
        let slot = self.head_slot.get() as usize;
        self.buckets[slot].add::<A>(failed, slow);
        calls
    }

    /// Moves the head to the bucket `now` falls in, then adds one call. Returns the calls
    /// after, and whether buckets were shed.
    fn roll_and_record<A: Access>(&self, failed: bool, slow: bool, now: Instant) -> (u64, bool) {
        let origin = *self.origin.get_or_init(|| now);
        let bucket = nanos_since(origin, now) / self.width_nanos;
        let head = self.head.get();
        // A call stamped earlier than the latest one (callers racing to record) lands in the
        // newest bucket rather than rewriting history.
        let shed = bucket > head;
        if shed {
            self.advance_to::<A>(head, bucket);
        }
        let end = self
            .head
            .get()
            .saturating_add(1)
            .saturating_mul(self.width_nanos);
        self.head_end.set(end);
        (self.add::<A>(failed, slow), shed)
    }

    /// Makes `bucket` the head, dropping every bucket that falls out of the window.
    fn advance_to<A: Access>(&self, head: u64, bucket: u64) {
        let len = self.buckets.len();
        let steps = (bucket - head).min(len as u64);
        let mut slot = self.head_slot.get() as usize;
        for _ in 0..steps {
            slot += 1;
            if slot == len {
                slot = 0;
            }
            let gone = &self.buckets[slot];
            A::sub(&self.totals.calls, A::take(&gone.calls));
            A::sub(&self.totals.failures, A::take(&gone.failures));
            A::sub(&self.totals.slow, A::take(&gone.slow));
        }
        self.head_slot.set(slot as u64);
        self.head.set(bucket);
    }

    fn counts(&self) -> WindowCounts {
        let totals = self.totals.load();
        let calls = clamp(totals.calls, u64::MAX >> 1);
        WindowCounts {
            calls,
            failures: clamp(totals.failures, calls),
            slow: clamp(totals.slow, calls),
        }
    }

    fn counts_at(&self, now: Instant) -> WindowCounts {
        let Some(&origin) = self.origin.get() else {
            return self.counts();
        };
        let bucket = nanos_since(origin, now) / self.width_nanos;
        let len = self.buckets.len();
        let steps = bucket.saturating_sub(self.head.get()).min(len as u64);
        let mut counts = self.totals.load();
        let mut slot = self.head_slot.get() as usize;
        for _ in 0..steps {
            slot = (slot + 1) % len;
            let gone = self.buckets[slot].load();
            counts.calls = counts.calls.wrapping_sub(gone.calls);
            counts.failures = counts.failures.wrapping_sub(gone.failures);
            counts.slow = counts.slow.wrapping_sub(gone.slow);
        }
        let calls = clamp(counts.calls, u64::MAX >> 1);
        WindowCounts {
            calls,
            failures: clamp(counts.failures, calls),
            slow: clamp(counts.slow, calls),
        }
    }

    fn clear(&self) {
        for bucket in &self.buckets[..] {
            bucket.store(WindowCounts::default());
        }
        self.totals.store(WindowCounts::default());
    }
}
