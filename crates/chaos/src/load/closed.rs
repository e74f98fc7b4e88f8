//! The closed loop of the max-throughput mode (`blastwall load --rate max`): each
//! connection sends its next request as soon as the previous one is answered, so the run
//! measures how many answers the server gives at most, over that many connections.
//!
//! This is what wrk and hey do, and it hides a stall (coordinated omission: a connection
//! waiting on a slow answer sends nothing meanwhile), which is why it is a mode apart
//! and reported as such, never the default. Latency counts from each request's send.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::schedule::ClassMix;

/// Hands out requests to send at once until the count or the time is up.
#[derive(Debug)]
pub(super) struct ClosedLoop {
    issued: AtomicU64,
    requests: Option<u64>,
    end: Option<Instant>,
    mix: Mutex<ClassMix>,
}

impl ClosedLoop {
    /// A loop from `start`, until `requests` are handed out or `duration` has passed
    /// (whichever comes first; at least one is given).
    pub(super) fn new(
        start: Instant,
        requests: Option<u64>,
        duration: Option<Duration>,
        mix: ClassMix,
    ) -> Self {
        Self {
            issued: AtomicU64::new(0),
            requests,
            end: duration.and_then(|duration| start.checked_add(duration)),
            mix: Mutex::new(mix),
        }
    }

    /// The class of the next request to send now, or `None` when the run is over.
    pub(super) fn next(&self, now: Instant) -> Option<usize> {
        if self.end.is_some_and(|end| now >= end) {
            return None;
        }
        if let Some(requests) = self.requests
            && self.issued.fetch_add(1, Ordering::Relaxed) >= requests
        {
            return None;
        }
        // A poisoned mix is still a valid weighted round robin.
        let mut mix = self
            .mix
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Some(mix.next_class())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_bound_hands_out_exactly_that_many_requests() {
        let now = Instant::now();
        let closed = ClosedLoop::new(now, Some(5), None, ClassMix::new(vec![1.0]));
        let handed = (0..20).filter_map(|_| closed.next(now)).count();
        assert_eq!(handed, 5);
    }

    #[test]
    fn a_time_bound_stops_handing_out_once_it_has_passed() {
        let start = Instant::now();
        let closed = ClosedLoop::new(
            start,
            None,
            Some(Duration::from_secs(1)),
            ClassMix::new(vec![1.0]),
        );
        assert!(closed.next(start).is_some());
        assert!(closed.next(start + Duration::from_millis(999)).is_some());
        assert!(closed.next(start + Duration::from_secs(1)).is_none());
    }

    #[test]
    fn requests_follow_the_class_mix() {
        let now = Instant::now();
        let closed = ClosedLoop::new(now, Some(4), None, ClassMix::new(vec![0.5, 0.5]));
        let classes: Vec<_> = (0..4).filter_map(|_| closed.next(now)).collect();
        assert_eq!(classes, [0, 1, 0, 1]);
    }
}
