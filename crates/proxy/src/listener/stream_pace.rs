//! `min_data_rate` for one HTTP/2 stream: whether the client moves a stream's transfer (its
//! request body, or the answer it opens its window for) fast enough.
//!
//! Why not [`Pace`](super::pace::Pace): an HTTP/1.1 connection has one transfer per
//! direction and a timer for it, and the rule averages over the wall time since the
//! transfer first waited. A stream has neither: hyper does not poll an answer while its
//! window is shut, and a stream's upstream may itself be slow (a server sending an event a
//! minute must not make its reader look slow). So a stream counts only the time it waited
//! on the CLIENT, and is judged when such a wait ends, by the body that waited:
//!
//! - too slow: once it waited `grace` in all, it moved fewer bytes than `rate` times the
//!   time it waited. A client that read or sent fast earlier has earned the time.
//! - a wait that never ends is not judged here: the driver's stall watch
//!   ([`StallWatch`](super::tracker::StallWatch)) ends it at the timeout.
//!
//! The clock is read only when a wait begins or ends: never for a frame that was ready at
//! once, and not at all without a rate.

use std::time::Duration;

use tokio::time::Instant;

use super::pace::Stall;
use crate::config::MinDataRate;

/// One stream's transfer, as the rate rule sees it.
#[derive(Debug)]
pub(super) struct StreamPace {
    /// The rule; `None`: nothing is measured.
    rate: Option<MinDataRate>,
    /// Bytes moved so far.
    moved: u64,
    /// Time waited on the client so far, not counting a wait under way.
    waited: Duration,
    /// When the wait under way began.
    since: Option<Instant>,
}

impl StreamPace {
    pub(super) fn new(rate: Option<MinDataRate>) -> Self {
        Self {
            rate,
            moved: 0,
            waited: Duration::ZERO,
            since: None,
        }
    }

    /// Credits bytes the transfer moved.
    pub(super) fn moved(&mut self, bytes: u64) {
        self.moved = self.moved.saturating_add(bytes);
    }

    /// The transfer begins to wait on the client, at `now` (read only with a rate).
    pub(super) fn wait(&mut self, now: impl FnOnce() -> Instant) {
        if self.rate.is_some() && self.since.is_none() {
            self.since = Some(now());
        }
    }

    /// The wait under way ended at `now` (its bytes already credited; read only if a wait
    /// was under way): whether the transfer is too slow.
    pub(super) fn resume(&mut self, now: impl FnOnce() -> Instant) -> Result<(), Stall> {
        let (Some(rate), Some(since)) = (self.rate, self.since.take()) else {
            return Ok(());
        };
        self.waited += now().saturating_duration_since(since);
        if self.waited < rate.grace {
            return Ok(());
        }
        // In whole numbers: bytes × 1 s against rate × the time waited, both in nanoseconds.
        let moved = u128::from(self.moved) * 1_000_000_000;
        let due = u128::from(rate.bytes_per_second) * self.waited.as_nanos();
        if moved < due {
            return Err(Stall::TooSlow(rate.bytes_per_second));
        }
        Ok(())
    }

    /// Whether a wait is under way.
    #[cfg(test)]
    fn is_waiting(&self) -> bool {
        self.since.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate() -> Option<MinDataRate> {
        Some(MinDataRate {
            bytes_per_second: 1000,
            grace: Duration::from_secs(2),
        })
    }

    /// Waits `wait`, then moves `bytes`, `times` times: when it was judged too slow.
    async fn trickle(
        pace: &mut StreamPace,
        wait: Duration,
        bytes: u64,
        times: u32,
    ) -> Option<Duration> {
        let started = Instant::now();
        for _ in 0..times {
            pace.wait(Instant::now);
            tokio::time::advance(wait).await;
            pace.moved(bytes);
            if pace.resume(Instant::now).is_err() {
                return Some(started.elapsed());
            }
        }
        None
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_trickled_below_the_rate_is_judged_once_the_grace_is_waited() {
        let mut pace = StreamPace::new(rate());
        let judged = trickle(&mut pace, Duration::from_millis(100), 10, 100).await;
        assert_eq!(judged, Some(Duration::from_secs(2)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_at_the_rate_is_never_judged() {
        let mut pace = StreamPace::new(rate());
        let judged = trickle(&mut pace, Duration::from_millis(100), 100, 1000).await;
        assert_eq!(judged, None);
    }

    #[tokio::test(start_paused = true)]
    async fn time_not_spent_waiting_on_the_client_is_not_counted() {
        let mut pace = StreamPace::new(rate());
        for _ in 0..100 {
            // The upstream takes 10 s to send 10 bytes; the client takes them at once.
            tokio::time::advance(Duration::from_secs(10)).await;
            pace.moved(10);
            pace.wait(Instant::now);
            tokio::time::advance(Duration::from_millis(1)).await;
            assert_eq!(pace.resume(Instant::now), Ok(()));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_rate_nothing_is_measured() {
        let mut pace = StreamPace::new(None);
        pace.wait(|| unreachable!("the clock is not read without a rate"));
        assert!(!pace.is_waiting());
        assert_eq!(
            trickle(&mut pace, Duration::from_secs(1), 1, 100).await,
            None
        );
    }
}
