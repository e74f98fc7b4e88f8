//! What one HTTP/2 connection's parts tell each other: the service and the task that drives
//! the connection share a [`Tracker`].
//!
//! The service counts requests in and out with a [`Ticket`] (held by the request body and
//! the response body, so a request is in flight until both are done); the driver reads that
//! when its timer fires to close connections idle for too long, and hears from it when a
//! connection reached its request quota. The bodies also count, per direction, the
//! transfers that wait on the client and how often one moved ([`Waits`]): the driver's
//! stall watch reads them, so that a client that opens no flow-control window, or sends
//! no more of a body, does not hold the connection and what its streams hold forever.

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

/// Transfers of one direction that wait on the client, and a count of their moves.
// NOTE: written by the bodies as they are polled (an answer on the connection's own task, a
// request body on its reader's): a few uncontended atomic operations per frame.
#[derive(Debug, Default)]
pub(super) struct Waits {
    waiting: AtomicUsize,
    moved: AtomicU64,
}

impl Waits {
    /// A transfer starts to wait on the client.
    pub(super) fn wait(&self) {
        self.waiting.fetch_add(1, Ordering::Relaxed);
    }

    /// A waiting transfer moved on (`moved`), or stopped waiting without moving (it ended).
    pub(super) fn resume(&self, moved: bool) {
        if moved {
            self.moved.fetch_add(1, Ordering::Relaxed);
        }
        self.waiting.fetch_sub(1, Ordering::Relaxed);
    }

    /// Whether any transfer waits, and the count of moves so far.
    pub(super) fn read(&self) -> (bool, u64) {
        (
            self.waiting.load(Ordering::Relaxed) > 0,
            self.moved.load(Ordering::Relaxed),
        )
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

/// The driver's look, tick after tick, at one direction's [`Waits`]: a stall is a transfer
/// waiting at two ticks `timeout` apart, and nothing of the direction moving in between.
///
/// Connection-wide, not per stream: a stream the client starves while it reads the others
/// is not seen (the cap on concurrent streams bounds what that holds).
#[derive(Debug)]
pub(super) struct StallWatch {
    last_tick: Instant,
    was_waiting: bool,
    last_moved: u64,
    /// The tick since which something waited and nothing moved.
    still_since: Option<Instant>,
}

impl StallWatch {
    pub(super) fn new(now: Instant) -> Self {
        Self {
            last_tick: now,
            was_waiting: false,
            last_moved: 0,
            still_since: None,
        }
    }

    /// Looks at `waits` at `now`: whether it stalled for `timeout`.
    pub(super) fn tick(&mut self, waits: &Waits, now: Instant, timeout: Duration) -> bool {
        let (waiting, moved) = waits.read();
        let still = waiting && self.was_waiting && moved == self.last_moved;
        let stalled = if still {
            let since = *self.still_since.get_or_insert(self.last_tick);
            now.saturating_duration_since(since) >= timeout
        } else {
            self.still_since = None;
            false
        };
        self.last_tick = now;
        self.was_waiting = waiting;
        self.last_moved = moved;
        stalled
    }
}

/// One request counted in flight until every holder (request body, response body) is gone.
#[derive(Debug)]
pub(super) struct Ticket {
    tracker: std::sync::Arc<Tracker>,
    /// The request's number on its connection, from 1.
    pub(super) number: u64,
    body_overflowed: AtomicBool,
}

impl Ticket {
    pub(super) fn new(tracker: std::sync::Arc<Tracker>, number: u64) -> Self {
        Self {
            tracker,
            number,
            body_overflowed: AtomicBool::new(false),
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

    #[tokio::test(start_paused = true)]
    async fn a_stall_is_something_waiting_and_nothing_moving_for_the_timeout() {
        let waits = Waits::default();
        let timeout = Duration::from_secs(8);
        let tick = Duration::from_secs(1);
        let mut watch = StallWatch::new(Instant::now());
        let mut stalled_after = None;
        waits.wait();
        for second in 1..=20u64 {
            tokio::time::advance(tick).await;
            if second == 4 {
                // Moved, and waits again for the next frame.
                waits.resume(true);
                waits.wait();
            }
            if watch.tick(&waits, Instant::now(), timeout) {
                stalled_after = Some(second);
                break;
            }
        }
        assert_eq!(stalled_after, Some(4 + 8), "timed from the move");
        waits.resume(false);
        tokio::time::advance(tick).await;
        assert!(
            !watch.tick(&waits, Instant::now(), timeout),
            "nothing waits"
        );
    }
}
