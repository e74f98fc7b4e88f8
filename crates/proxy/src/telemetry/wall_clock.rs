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
//! NOTE: it takes `&mut self`: the access log keeps it under the lock that a line is appended
//! under, which the line takes anyway, so it needs no synchronisation of its own.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long after its anchor an instant may be before the system clock is read again.
pub const ANCHOR_FOR: Duration = Duration::from_secs(1);

/// Wall-clock times of monotonic instants, from an anchor read at most once a second.
#[derive(Debug, Clone, Copy)]
pub struct WallClock {
    /// A monotonic instant…
    anchor: Instant,
    /// …and the wall-clock time then, read together.
    anchor_time: SystemTime,
}

impl WallClock {
    /// A clock anchored now.
    pub fn new() -> Self {
        let (anchor, anchor_time) = read_clocks();
        Self::anchored(anchor, anchor_time)
    }

    /// A clock anchored at `anchor`, which was `anchor_time` on the wall clock.
    pub fn anchored(anchor: Instant, anchor_time: SystemTime) -> Self {
        Self {
            anchor,
            anchor_time,
        }
    }

    /// The wall-clock time at `at`, reading the system clock again if `at` is more than
    /// [`ANCHOR_FOR`] past the anchor.
    pub fn time_of(&mut self, at: Instant) -> SystemTime {
        self.time_of_with(at, read_clocks)
    }

    /// [`Self::time_of`], with `read` to read the clocks (monotonic, wall) when it must.
    fn time_of_with(
        &mut self,
        at: Instant,
        read: impl FnOnce() -> (Instant, SystemTime),
    ) -> SystemTime {
        if let Some(after) = at.checked_duration_since(self.anchor) {
            if after < ANCHOR_FOR {
                return self.anchor_time + after;
            }
            (self.anchor, self.anchor_time) = read();
        }
        // `at` is before the anchor: a request that arrived before it was last read (a slow
        // one), or the anchor was read just now. Monotonic clocks never go back, so `at` is
        // not after a fresh anchor; `saturating` only spares a panic should a platform's be.
        let before = self.anchor.saturating_duration_since(at);
        self.anchor_time.checked_sub(before).unwrap_or(UNIX_EPOCH)
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
        let (mut clock, t0, wall) = anchored();
        for offset in [0, 1, 999_999, 999_999_999] {
            let at = t0 + Duration::from_nanos(offset);
            assert_eq!(
                clock.time_of_with(at, never_read),
                wall + Duration::from_nanos(offset)
            );
        }
    }

    #[test]
    fn an_instant_before_the_anchor_is_told_backwards_without_a_read() {
        let t0 = Instant::now();
        let wall = UNIX_EPOCH + Duration::from_secs(1_714_566_896);
        let later = t0 + Duration::from_secs(30);
        let mut clock = WallClock::anchored(later, wall + Duration::from_secs(30));
        assert_eq!(clock.time_of_with(t0, never_read), wall);
    }

    #[test]
    fn a_second_past_the_anchor_the_clocks_are_read_again() {
        let (mut clock, t0, wall) = anchored();
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
        // And the new anchor serves the next second.
        let next = at + Duration::from_millis(500);
        assert_eq!(
            clock.time_of_with(next, never_read),
            stepped + Duration::from_millis(500)
        );
    }

    #[test]
    fn the_time_told_is_the_system_clock_s_utc_time() {
        let mut clock = WallClock::new();
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
