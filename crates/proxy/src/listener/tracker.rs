//! What one HTTP/2 connection's parts tell each other: the service and the task that drives
//! the connection share a [`Tracker`].
//!
//! The service counts requests in and out with a [`Ticket`] (held by the request body and
//! the response body, so a request is in flight until both are done); the driver reads that
//! when its timer fires to close connections idle for too long, and hears from it when a
//! connection reached its request quota. The bodies also count, per direction, the
//! transfers that wait on the client by when they began to wait ([`Waits`]): the driver's
//! stall watch reads them, so that a client that opens a stream no flow-control window, or
//! sends no more of its body, does not hold the connection and what its streams hold
//! forever, even while it keeps its other streams moving.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// State one connection shares between its I/O, its service and its driver.
#[derive(Debug)]
pub(super) struct Tracker {
    started: AtomicU64,
    in_flight: AtomicUsize,
    idle_since: Mutex<Instant>,
    shutdown: AtomicBool,
    changed: Notify,
    /// Answers whose next frame waits for the client to take the last one.
    pub(super) sends: Waits,
    /// Request bodies their reader waits on the client for.
    pub(super) bodies: Waits,
}

/// Transfers of one direction that wait on the client, counted by when they began to wait.
///
/// Why by age and not by "something moved": a client can starve one stream (open it no
/// window, send no more of its body) while it keeps another moving; what must be seen is
/// the age of the OLDEST wait. The driver advances an epoch every eighth of the timeout
/// ([`StallWatch`]); a transfer that begins to wait counts itself in its epoch's bucket
/// (a ring of [`BUCKETS`]) and takes itself out of that same bucket when it stops. Before a
/// bucket is reused, the driver looks at it: anything still there has waited at least the
/// whole timeout. A fixed ring of counters, not a list of streams: no allocation, no lock,
/// and nothing to bound by the number of streams.
// NOTE: written by the bodies as they are polled (an answer on the connection's own task, a
// request body on its reader's): one relaxed load and one uncontended atomic add per wait.
#[derive(Debug, Default)]
pub(super) struct Waits {
    epoch: AtomicU64,
    waiting: [AtomicUsize; BUCKETS],
}

/// Epochs a timeout spans (the driver's tick is this fraction of the timeout).
pub(super) const EPOCHS_PER_TIMEOUT: u32 = 8;

/// Buckets in a [`Waits`] ring: the epochs of a whole timeout, the current one, and the one
/// being judged.
const BUCKETS: usize = EPOCHS_PER_TIMEOUT as usize + 2;

/// Which bucket of its [`Waits`] a waiting transfer counted itself in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct WaitMark(usize);

impl Waits {
    /// A transfer starts to wait on the client: its mark, to give back to [`Waits::resume`].
    pub(super) fn wait(&self) -> WaitMark {
        // NOTE: the bucket is judged when the driver steps to the epoch
        // `EPOCHS_PER_TIMEOUT` after the next one: a transfer that began to wait at the very
        // end of its epoch (or read the epoch just before a step) has waited the whole
        // timeout by then, one that began at its start an eighth more. Never early.
        let bucket = (self.epoch.load(Ordering::Relaxed) % BUCKETS as u64) as usize;
        self.waiting[bucket].fetch_add(1, Ordering::Relaxed);
        WaitMark(bucket)
    }

    /// A waiting transfer moved on, or stopped waiting (it ended).
    pub(super) fn resume(&self, mark: WaitMark) {
        self.waiting[mark.0].fetch_sub(1, Ordering::Relaxed);
    }

    /// The driver's step to the next epoch: whether a transfer still waits that began to
    /// wait [`EPOCHS_PER_TIMEOUT`] + 1 epochs ago (the bucket the step frees for reuse).
    fn advance(&self) -> bool {
        let next = self.epoch.load(Ordering::Relaxed) + 1;
        let oldest = ((next + 1) % BUCKETS as u64) as usize;
        let stalled = self.waiting[oldest].load(Ordering::Relaxed) > 0;
        self.epoch.store(next, Ordering::Relaxed);
        stalled
    }

    /// How many transfers wait now.
    #[cfg(test)]
    fn count(&self) -> usize {
        self.waiting
            .iter()
            .map(|bucket| bucket.load(Ordering::Relaxed))
            .sum()
    }
}

impl Tracker {
    pub(super) fn new() -> Self {
        Self {
            started: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
            shutdown: AtomicBool::new(false),
            changed: Notify::new(),
            sends: Waits::default(),
            bodies: Waits::default(),
        }
    }

    /// Requests in flight now.
    pub(super) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Counts a request in; returns its 1-based number on the connection.
    pub(super) fn begin(&self) -> u64 {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.started.fetch_add(1, Ordering::AcqRel) + 1
    }

    fn end(&self) {
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            *self
                .idle_since
                .lock()
                .unwrap_or_else(|poison| poison.into_inner()) = Instant::now();
        }
    }

    /// When the connection will have been idle for `timeout`, if nothing is in flight.
    pub(super) fn idle_deadline(&self, timeout: Duration) -> Option<Instant> {
        if self.in_flight() > 0 {
            return None;
        }
        let since = *self
            .idle_since
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        Some(since + timeout)
    }

    /// Asks the driver to shut the connection down gracefully.
    pub(super) fn request_shutdown(&self) {
        self.shutdown.store(true, Ordering::Release);
        self.changed.notify_one();
    }

    /// Whether a graceful shutdown was asked for.
    pub(super) fn shutdown_requested(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    /// Resolves after a shutdown is asked for, or spuriously. Requests otherwise do not wake
    /// it: the driver's idle timer reads the counts when it fires.
    pub(super) async fn changed(&self) {
        self.changed.notified().await;
    }
}

/// The driver's clock for one direction's [`Waits`]: it steps the epoch once an eighth of
/// the timeout has passed, and says when the oldest wait reached the timeout. Per stream: a
/// stream the client starves is seen however busy its other streams are.
#[derive(Debug)]
pub(super) struct StallWatch {
    /// How long an epoch lasts: an eighth of the timeout.
    epoch: Duration,
    /// When the current epoch ends.
    next: Instant,
}

impl StallWatch {
    pub(super) fn new(now: Instant, timeout: Duration) -> Self {
        let epoch = timeout / EPOCHS_PER_TIMEOUT;
        Self {
            epoch,
            next: now + epoch,
        }
    }

    /// Looks at `waits` at `now`: whether a transfer has waited on the client for the
    /// whole timeout.
    // NOTE: one step at most per look, and the next epoch timed from now: a late timer makes
    // the epochs longer, never shorter, so a transfer is never judged early for it.
    pub(super) fn tick(&mut self, waits: &Waits, now: Instant) -> bool {
        if now < self.next {
            return false;
        }
        self.next = now + self.epoch;
        waits.advance()
    }
}

/// One request counted in flight until every holder (request body, response body) is gone.
#[derive(Debug)]
pub(super) struct Ticket {
    tracker: std::sync::Arc<Tracker>,
    /// The request's number on its connection, from 1.
    pub(super) number: u64,
    body_overflowed: AtomicBool,
    body_stalled: AtomicBool,
}

impl Ticket {
    pub(super) fn new(tracker: std::sync::Arc<Tracker>, number: u64) -> Self {
        Self {
            tracker,
            number,
            body_overflowed: AtomicBool::new(false),
            body_stalled: AtomicBool::new(false),
        }
    }

    /// Records that the request body went past the limit.
    pub(super) fn mark_body_overflowed(&self) {
        self.body_overflowed.store(true, Ordering::Release);
    }

    /// Whether the request body went past the limit.
    pub(super) fn body_overflowed(&self) -> bool {
        self.body_overflowed.load(Ordering::Acquire)
    }

    /// Records that the client sent the request body slower than `min_data_rate`.
    pub(super) fn mark_body_stalled(&self) {
        self.body_stalled.store(true, Ordering::Release);
    }

    /// Whether the client sent the request body too slowly.
    pub(super) fn body_stalled(&self) -> bool {
        self.body_stalled.load(Ordering::Acquire)
    }

    /// The connection's tracker.
    pub(super) fn tracker(&self) -> &Tracker {
        &self.tracker
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.tracker.end();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_connection_is_idle_only_when_every_ticket_is_gone() {
        let tracker = Arc::new(Tracker::new());
        let timeout = Duration::from_secs(5);
        assert!(tracker.idle_deadline(timeout).is_some());
        let ticket = Arc::new(Ticket::new(tracker.clone(), tracker.begin()));
        let body_holder = ticket.clone();
        assert_eq!(tracker.idle_deadline(timeout), None);
        drop(ticket);
        assert_eq!(
            tracker.idle_deadline(timeout),
            None,
            "the body still holds it"
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        drop(body_holder);
        assert_eq!(
            tracker.idle_deadline(timeout),
            Some(Instant::now() + timeout)
        );
    }

    /// Ticks `watch` every `tick` until it sees a stall or `limit` ticks passed, calling
    /// `each` before every tick: the tick it saw the stall at.
    async fn ticks_to_stall(
        watch: &mut StallWatch,
        waits: &Waits,
        tick: Duration,
        limit: u32,
        mut each: impl FnMut(u32),
    ) -> Option<u32> {
        for n in 1..=limit {
            tokio::time::advance(tick).await;
            each(n);
            if watch.tick(waits, Instant::now()) {
                return Some(n);
            }
        }
        None
    }

    #[tokio::test(start_paused = true)]
    async fn a_stall_is_a_transfer_waiting_for_the_whole_timeout() {
        let waits = Waits::default();
        let timeout = Duration::from_secs(8);
        let tick = timeout / EPOCHS_PER_TIMEOUT;
        let mut watch = StallWatch::new(Instant::now(), timeout);
        let mut mark = waits.wait();
        let stalled = ticks_to_stall(&mut watch, &waits, tick, 40, |n| {
            if n == 4 {
                // Moved, and waits again for the next frame.
                waits.resume(mark);
                mark = waits.wait();
            }
        })
        .await;
        // It waits again from tick 4; judged once it waited 8 s, within one tick more.
        let stalled = stalled.expect("the wait was never judged");
        assert!((4 + 8..=4 + 9).contains(&stalled), "judged at {stalled}");
        waits.resume(mark);
        assert_eq!(waits.count(), 0);
        let quiet = ticks_to_stall(&mut watch, &waits, tick, 40, |_| {}).await;
        assert_eq!(quiet, None, "nothing waits");
    }

    #[tokio::test(start_paused = true)]
    async fn a_starved_transfer_is_seen_while_another_keeps_moving() {
        let waits = Waits::default();
        let timeout = Duration::from_secs(8);
        let tick = timeout / EPOCHS_PER_TIMEOUT;
        let mut watch = StallWatch::new(Instant::now(), timeout);
        let starved = waits.wait();
        let mut busy = waits.wait();
        let stalled = ticks_to_stall(&mut watch, &waits, tick, 40, |_| {
            waits.resume(busy);
            busy = waits.wait();
        })
        .await;
        let stalled = stalled.expect("the starved transfer was never seen");
        assert!((8..=9).contains(&stalled), "judged at {stalled}");
        waits.resume(starved);
        waits.resume(busy);
        assert_eq!(waits.count(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn transfers_that_keep_moving_are_never_judged() {
        let waits = Waits::default();
        let timeout = Duration::from_secs(8);
        let tick = timeout / EPOCHS_PER_TIMEOUT;
        let mut watch = StallWatch::new(Instant::now(), timeout);
        let mut marks = [waits.wait(), waits.wait(), waits.wait()];
        let stalled = ticks_to_stall(&mut watch, &waits, tick, 200, |n| {
            // Each moves every seventh tick, just inside the timeout, at its own phase.
            for (index, mark) in marks.iter_mut().enumerate() {
                if (n as usize + index * 2).is_multiple_of(7) {
                    waits.resume(*mark);
                    *mark = waits.wait();
                }
            }
        })
        .await;
        assert_eq!(stalled, None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_timer_never_judges_a_wait_early() {
        let waits = Waits::default();
        let timeout = Duration::from_secs(8);
        let started = Instant::now();
        let mut watch = StallWatch::new(started, timeout);
        let mark = waits.wait();
        // The driver's timer fires at odd, late moments.
        let mut judged = None;
        for step in [
            700u64, 1900, 1100, 3000, 1300, 2500, 900, 1700, 2200, 1200, 4000,
        ] {
            tokio::time::advance(Duration::from_millis(step)).await;
            if watch.tick(&waits, Instant::now()) {
                judged = Some(started.elapsed());
                break;
            }
        }
        let judged = judged.expect("never judged");
        assert!(judged >= timeout, "judged after {judged:?}");
        waits.resume(mark);
    }
}
