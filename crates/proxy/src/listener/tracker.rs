//! What one HTTP/2 connection's parts tell each other: the service and the task that drives
//! the connection share a [`Tracker`].
//!
//! The service counts requests in and out with a [`Ticket`] (held by the request body and
//! the response body, so a request is in flight until both are done); the driver reads that
//! when its timer fires to close connections idle for too long, and hears from it when a
//! connection reached its request quota.

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
}

impl Tracker {
    pub(super) fn new() -> Self {
        Self {
            started: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
            shutdown: AtomicBool::new(false),
            changed: Notify::new(),
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
}
