//! Counting what is in flight, so a drain can say what it waited for and what it cut.
//!
//! A drain (SIGTERM, or a listener a reload removed) stops accepting at once and waits for
//! connections to finish; the operator's question afterwards is "did anything get cut?".
//! Two relaxed atomic counters answer it without a lock on the request path.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Connections and requests in flight across every listener.
#[derive(Debug, Default)]
pub(crate) struct Traffic {
    connections: AtomicUsize,
    requests: AtomicUsize,
}

impl Traffic {
    /// Counts a downstream connection until the guard drops.
    pub(crate) fn connection(&self) -> ConnectionGuard<'_> {
        self.connections.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard(self)
    }

    /// Counts a request until the guard drops (the listener holds it until the response
    /// head is ready).
    pub(crate) fn request(&self) -> RequestGuard<'_> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        RequestGuard(self)
    }

    /// Downstream connections open now.
    pub(crate) fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Requests being handled now.
    pub(crate) fn requests(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
    }
}

/// Holds one connection in the count.
#[derive(Debug)]
pub(crate) struct ConnectionGuard<'a>(&'a Traffic);

impl Drop for ConnectionGuard<'_> {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Holds one request in the count.
#[derive(Debug)]
pub(crate) struct RequestGuard<'a>(&'a Traffic);

impl Drop for RequestGuard<'_> {
    fn drop(&mut self) {
        self.0.requests.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a drain waited for and how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainReport {
    /// Connections open when the drain began.
    pub connections: usize,
    /// Requests in flight when the drain began.
    pub requests: usize,
    /// Connections still open when the drain timeout cut them (0 when all finished).
    pub cut_connections: usize,
    /// Requests still in flight when the drain timeout cut them.
    pub cut_requests: usize,
    /// How long the drain took.
    pub elapsed: Duration,
}

impl DrainReport {
    /// Whether everything in flight finished before the timeout.
    pub fn completed(&self) -> bool {
        self.cut_connections == 0 && self.cut_requests == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_count_while_held() {
        let traffic = Traffic::default();
        let connection = traffic.connection();
        let first = traffic.request();
        let second = traffic.request();
        assert_eq!((traffic.connections(), traffic.requests()), (1, 2));
        drop(first);
        drop(connection);
        assert_eq!((traffic.connections(), traffic.requests()), (0, 1));
        drop(second);
        assert_eq!(traffic.requests(), 0);
    }
}
