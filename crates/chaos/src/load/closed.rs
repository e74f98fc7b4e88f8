//! The closed loop of the max-throughput mode (`blastwall load --rate max`): each
//! connection sends its next request as soon as the previous one is answered, so the run
//! measures how many answers the server gives at most, over that many connections.
//!
//! This is what wrk and hey do, and it hides a stall (coordinated omission: a connection
//! waiting on a slow answer sends nothing meanwhile), which is why it is a mode apart
//! and reported as such, never the default. Latency counts from each request's send.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// Hands out requests to send at once until the count or the time is up.
#[derive(Debug)]
pub(super) struct ClosedLoop {
    issued: AtomicU64,
    requests: Option<u64>,
    end: Option<Instant>,
}

impl ClosedLoop {
    /// A loop from `start`, until `requests` are handed out or `duration` has passed
    /// (whichever comes first; at least one is given).
    pub(super) fn new(start: Instant, requests: Option<u64>, duration: Option<Duration>) -> Self {
        Self {
            issued: AtomicU64::new(0),
            requests,
            end: duration.and_then(|duration| start.checked_add(duration)),
        }
    }

    /// Whether another request may be sent now: false once the run is over.
    pub(super) fn next(&self, now: Instant) -> bool {
        if self.end.is_some_and(|end| now >= end) {
            return false;
        }
        match self.requests {
            Some(requests) => self.issued.fetch_add(1, Ordering::Relaxed) < requests,
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_bound_hands_out_exactly_that_many_requests() {
        let now = Instant::now();
        let closed = ClosedLoop::new(now, Some(5), None);
        let handed = (0..20).filter(|_| closed.next(now)).count();
        assert_eq!(handed, 5);
    }

    #[test]
    fn a_time_bound_stops_handing_out_once_it_has_passed() {
        let start = Instant::now();
        let closed = ClosedLoop::new(start, None, Some(Duration::from_secs(1)));
        assert!(closed.next(start));
        assert!(closed.next(start + Duration::from_millis(999)));
        assert!(!closed.next(start + Duration::from_secs(1)));
    }
}
