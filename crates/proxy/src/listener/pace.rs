//! Whether a transfer that waits on the client still moves fast enough: the rule behind
//! `request_body_timeout`, `send_timeout` and `min_data_rate`.
//!
//! Why a rule of its own: a timer per read or write would cost a timer registration per
//! piece (tokio takes the driver's lock for each), and a client that trickles one byte just
//! inside each timeout would still hold its connection forever. So the connection keeps one
//! timer and a [`Pace`] per direction, told only when the transfer is about to wait (never
//! on a read or write that completes at once), and asked again only when the timer fires.
//! The [`Pace`] answers the instant by which the transfer must have moved again:
//!
//! - no progress for `timeout` since the last time it was seen to move: [`Stall::NoProgress`];
//! - with a minimum rate, once `grace` has passed since the transfer first waited, fewer
//!   bytes than `rate` times the time since then: [`Stall::TooSlow`]. The average is taken
//!   over the whole transfer, as Kestrel's `MinRequestBodyDataRate` does: a client that
//!   read fast earlier has earned the time, one that trickles has not.
//!
//! Progress is seen lazily: bytes moved between two waits are credited at the second, so
//! the deadline is never earlier than the rule says, and at most as late as one wait.

use std::time::Duration;

use tokio::time::Instant;

use crate::config::MinDataRate;

/// Why a transfer waiting on the client was given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Stall {
    /// Nothing moved for the whole timeout.
    #[error("nothing moved for {0:?}")]
    NoProgress(Duration),
    /// It moved, but slower on average than the listener's `min_data_rate`.
    #[error("slower than the minimum of {0} bytes a second")]
    TooSlow(u64),
}

/// What one direction of a connection is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PaceRule {
    pub(crate) timeout: Duration,
    pub(crate) min_rate: Option<MinDataRate>,
}

/// One direction's transfer while it waits on the client.
#[derive(Debug, Default)]
pub(crate) struct Pace {
    /// While waiting: what it was measured from.
    waiting: Option<Waiting>,
}

#[derive(Debug, Clone, Copy)]
struct Waiting {
    /// When it first waited, and the bytes moved then: the rate is measured from there.
    since: Instant,
    moved_since: u64,
    /// When it was last seen to move, and the bytes moved then.
    moved_at: Instant,
    moved: u64,
    /// By when it must have moved again, as of the last look.
    deadline: Instant,
}

impl Pace {
    /// The transfer is about to wait, `moved` bytes into the connection: the instant the
    /// timer must fire by, or `None` when it is unchanged since the last call (no clock is
    /// read then).
    pub(crate) fn wait(&mut self, moved: u64, rule: &PaceRule) -> Option<Instant> {
        match &mut self.waiting {
            Some(waiting) if waiting.moved == moved => None,
            Some(waiting) => {
                waiting.moved = moved;
                waiting.moved_at = Instant::now();
                waiting.deadline = waiting.compute_deadline(rule);
                Some(waiting.deadline)
            }
            None => {
                let now = Instant::now();
                let mut waiting = Waiting {
                    since: now,
                    moved_since: moved,
                    moved_at: now,
                    moved,
                    deadline: now,
                };
                waiting.deadline = waiting.compute_deadline(rule);
                self.waiting = Some(waiting);
                Some(waiting.deadline)
            }
        }
    }

    /// The transfer does not wait on the client now (done, or waiting on the proxy's own
    /// side): its clock starts again when it next waits.
    pub(crate) fn rest(&mut self) {
        self.waiting = None;
    }

    /// Whether it is waiting on the client.
    pub(crate) fn is_waiting(&self) -> bool {
        self.waiting.is_some()
    }

    /// By when it must move again, while it waits.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.waiting.map(|waiting| waiting.deadline)
    }

    /// The timer fired at `now`, `moved` bytes into the connection: the stall, or the new
    /// instant to fire by.
    pub(crate) fn check(
        &mut self,
        now: Instant,
        moved: u64,
        rule: &PaceRule,
    ) -> Result<Option<Instant>, Stall> {
        let Some(waiting) = &mut self.waiting else {
            return Ok(None);
        };
        if waiting.moved != moved {
            waiting.moved = moved;
            waiting.moved_at = now;
        }
        let deadline = waiting.compute_deadline(rule);
        waiting.deadline = deadline;
        if now < deadline {
            return Ok(Some(deadline));
        }
        if now >= waiting.moved_at + rule.timeout {
            Err(Stall::NoProgress(rule.timeout))
        } else {
            let rate = rule.min_rate.map_or(0, |rate| rate.bytes_per_second);
            Err(Stall::TooSlow(rate))
        }
    }
}

impl Waiting {
    fn compute_deadline(&self, rule: &PaceRule) -> Instant {
        let silent = self.moved_at + rule.timeout;
        let Some(rate) = rule.min_rate else {
            return silent;
        };
        // The instant by which the average since the first wait falls under the rate.
        let moved = self.moved.saturating_sub(self.moved_since);
        let earned = Duration::from_secs_f64(moved as f64 / rate.bytes_per_second as f64);
        silent.min(self.since + earned.max(rate.grace))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(rate: Option<u64>) -> PaceRule {
        PaceRule {
            timeout: Duration::from_secs(30),
            min_rate: rate.map(|bytes_per_second| MinDataRate {
                bytes_per_second,
                grace: Duration::from_secs(10),
            }),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_transfer_that_moves_again_gets_the_whole_timeout_again() {
        let rule = rule(None);
        let mut pace = Pace::default();
        let start = Instant::now();
        assert_eq!(pace.wait(0, &rule), Some(start + rule.timeout));
        assert_eq!(
            pace.wait(0, &rule),
            None,
            "unchanged: the clock is not read"
        );
        tokio::time::advance(Duration::from_secs(20)).await;
        let now = Instant::now();
        assert_eq!(pace.check(now, 100, &rule), Ok(Some(now + rule.timeout)));
        tokio::time::advance(rule.timeout).await;
        assert_eq!(
            pace.check(Instant::now(), 100, &rule),
            Err(Stall::NoProgress(rule.timeout))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_inside_the_timeout_is_cut_off_by_the_rate_after_the_grace() {
        let rule = rule(Some(256));
        let mut pace = Pace::default();
        let start = Instant::now();
        assert_eq!(pace.wait(0, &rule), Some(start + Duration::from_secs(10)));
        // A byte every 5 s: never silent for 30 s, far under 256 bytes a second.
        let mut moved = 0;
        let stalled = loop {
            tokio::time::advance(Duration::from_secs(5)).await;
            moved += 1;
            if let Some(deadline) = pace.wait(moved, &rule)
                && deadline <= Instant::now()
            {
                break pace.check(Instant::now(), moved, &rule);
            }
        };
        assert_eq!(stalled, Err(Stall::TooSlow(256)));
        assert_eq!(start.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_transfer_at_the_rate_is_never_judged_too_slow() {
        let rule = rule(Some(256));
        let mut pace = Pace::default();
        pace.wait(0, &rule);
        for second in 1..=100u64 {
            tokio::time::advance(Duration::from_secs(1)).await;
            assert!(pace.check(Instant::now(), second * 300, &rule).is_ok());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_rested_transfer_starts_its_clock_again() {
        let rule = rule(None);
        let mut pace = Pace::default();
        pace.wait(0, &rule);
        tokio::time::advance(Duration::from_secs(29)).await;
        pace.rest();
        assert!(!pace.is_waiting());
        assert_eq!(pace.check(Instant::now(), 0, &rule), Ok(None));
        let now = Instant::now();
        assert_eq!(pace.wait(0, &rule), Some(now + rule.timeout));
    }
}
