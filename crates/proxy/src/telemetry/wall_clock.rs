//! The wall-clock time at which a request arrived, told from the monotonic instant the
//! pipeline already took, without reading the system clock for every access log line.
//!
//! An access log line needs its request's arrival in wall-clock time (UTC), and the pipeline
//! reads the monotonic clock when a request arrives anyway (for the duration metric). A
//! [`WallClock`] keeps an *anchor*, a monotonic instant and the wall time read together, and
//! tells the wall time of an instant as the anchor's plus (or minus) the monotonic time
//! between them: a subtraction and an addition instead of a clock read.
//!
//! Why that stays correct: both clocks tick at the rate NTP slews them to, so between the
//! anchor and an instant a second later they cannot part by more than a few microseconds; and
//! the anchor is read again once an instant is a second past it, so a step of the system clock
//! (an operator, NTP stepping) shows in the log within a second of traffic, as it would have
//! with a clock read per line.
//!
//! NOTE: lock-free, read through `&self` by every request: the anchor is kept as the offset
//! between the clocks (the wall time at a fixed `base` instant), one atomic word, so there is
//! no pair to tear. Two requests that both find the anchor stale both read the clocks and
//! store offsets that differ by the nanoseconds between their reads; either is right.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long after its anchor an instant may be before the system clock is read again.
pub(crate) const ANCHOR_FOR: Duration = Duration::from_secs(1);

/// Wall-clock times of monotonic instants, from an anchor read at most once a second.
#[derive(Debug)]
pub(crate) struct WallClock {
    /// The instant every other is measured from (when the clock was made).
    base: Instant,
    /// The wall-clock time at `base`, in nanoseconds since the Unix epoch, as the last anchor
    /// tells it.
    base_time: AtomicU64,
    /// When the clocks were last read, in nanoseconds after `base`.
    anchored: AtomicU64,
}

impl WallClock {
    /// A clock anchored now.
    pub(crate) fn new() -> Self {
        let (now, time) = read_clocks();
        Self::anchored(now, time)
    }

    /// A clock anchored at `anchor`, which was `time` on the wall clock.
    pub(crate) fn anchored(anchor: Instant, time: SystemTime) -> Self {
        Self {
            base: anchor,
            base_time: AtomicU64::new(since_epoch(time)),
            anchored: AtomicU64::new(0),
        }
    }

    /// The wall-clock time at `at`, reading the system clock again if `at` is more than
    /// [`ANCHOR_FOR`] past the anchor. (An instant before the clock was made, which no request
    /// of the access log that owns it has, is told as that moment.)
    pub(crate) fn time_of(&self, at: Instant) -> SystemTime {
        self.time_of_with(at, read_clocks)
    }

    /// [`Self::time_of`], with `read` to read the clocks (monotonic, wall) when it must.
    fn time_of_with(
        &self,
        at: Instant,
        read: impl FnOnce() -> (Instant, SystemTime),
    ) -> SystemTime {
        let after = nanos(at.saturating_duration_since(self.base));
        if after.saturating_sub(self.anchored.load(Ordering::Relaxed)) >= nanos(ANCHOR_FOR) {
            let (now, time) = read();
            let now = nanos(now.saturating_duration_since(self.base));
            let base_time = since_epoch(time).saturating_sub(now);
            self.base_time.store(base_time, Ordering::Relaxed);
            self.anchored.store(now, Ordering::Relaxed);
        }
        let base_time = self.base_time.load(Ordering::Relaxed);
        UNIX_EPOCH + Duration::from_nanos(base_time.saturating_add(after))
    }
}

impl Default for WallClock {
    fn default() -> Self {
        Self::new()
    }
}

/// The monotonic and the wall clock, read together.
fn read_clocks() -> (Instant, SystemTime) {
    (Instant::now(), SystemTime::now())
}

/// `duration` in nanoseconds (enough for 584 years).
fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// `time` in nanoseconds since the Unix epoch (none before it).
fn since_epoch(time: SystemTime) -> u64 {
    nanos(time.duration_since(UNIX_EPOCH).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A clock anchored at `t0`, 2024-05-01T12:34:56.000Z, and its wall time.
    fn anchored() -> (WallClock, Instant, SystemTime) {
        let t0 = Instant::now();
        let wall = UNIX_EPOCH + Duration::from_secs(1_714_566_896);
        (WallClock::anchored(t0, wall), t0, wall)
    }

    fn never_read() -> (Instant, SystemTime) {
        panic!("the clock was read although the anchor was fresh")
    }

    #[test]
    fn an_instant_within_a_second_of_the_anchor_is_told_from_it_without_a_read() {
        let (clock, t0, wall) = anchored();
        for offset in [0, 1, 999_999, 999_999_999] {
            let at = t0 + Duration::from_nanos(offset);
            assert_eq!(
                clock.time_of_with(at, never_read),
                wall + Duration::from_nanos(offset)
            );
        }
    }

    #[test]
    fn a_second_past_the_anchor_the_clocks_are_read_again() {
        let (clock, t0, wall) = anchored();
        let at = t0 + ANCHOR_FOR;
        // The system clock was stepped back by an hour meanwhile; the fresh anchor, read
        // 2ms after `at`, says so.
        let stepped = wall + ANCHOR_FOR - Duration::from_secs(3600);
        let read = || {
            (
                at + Duration::from_millis(2),
                stepped + Duration::from_millis(2),
            )
        };
        assert_eq!(clock.time_of_with(at, read), stepped);
        // The new anchor serves the next second…
        let next = at + Duration::from_millis(500);
        assert_eq!(
            clock.time_of_with(next, never_read),
            stepped + Duration::from_millis(500)
        );
        // …and an instant before it (a slow request's arrival) is told backwards from it.
        let early = t0 + Duration::from_millis(10);
        assert_eq!(
            clock.time_of_with(early, never_read),
            stepped - ANCHOR_FOR + Duration::from_millis(10)
        );
    }

    #[test]
    fn the_time_told_is_the_system_clock_s_utc_time() {
        let clock = WallClock::new();
        let before = SystemTime::now();
        let at = Instant::now();
        let after = SystemTime::now();
        let told = clock.time_of(at);
        // Within the reads around it, give or take what two clock reads may differ by.
        let slack = Duration::from_millis(1);
        assert!(told + slack >= before && told <= after + slack, "{told:?}");
        // UTC: the Unix epoch is the origin, with no zone offset added.
        let since_epoch = told.duration_since(UNIX_EPOCH).expect("after 1970");
        let expected = before.duration_since(UNIX_EPOCH).expect("after 1970");
        assert!(since_epoch.abs_diff(expected) < Duration::from_secs(1));
    }
}
