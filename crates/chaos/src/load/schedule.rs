//! When each request is due, and which traffic class it belongs to.
//!
//! An open-loop client decides every send time before the run starts: request `i` is due at
//! `i / rate` seconds, whatever happened to the requests before it. A closed-loop client
//! (wrk) sends the next request when the previous answer arrives, so a server that stalls
//! is sent less and its stall hides in a few slow samples (coordinated omission). Here a
//! stall leaves requests due and waiting, and each one's latency counts from the time it
//! was due.
//!
//! Both types are plain values driven by the caller's clock (an elapsed [`Duration`]), so
//! the tests run them without sleeping.

use std::time::Duration;

/// How requests are sent: on a timetable (open loop), or as fast as the connections answer
/// (closed loop, the max-throughput mode).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Schedule {
    /// At a fixed rate, whatever the answers take.
    Open(Timetable),
    /// Each connection sends its next request when the previous is answered, until
    /// `requests` are sent or `duration` has passed (at least one is given).
    Closed {
        /// Requests to send at most.
        requests: Option<u64>,
        /// How long to keep sending at most.
        duration: Option<Duration>,
    },
}

/// The send times of a bounded run at a fixed rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timetable {
    rate: f64,
    total: u64,
}

impl Timetable {
    /// `rate` requests per second, until `requests` have been scheduled or `duration` has
    /// passed, whichever comes first. At least one of the two bounds must be given.
    pub fn new(rate: f64, requests: Option<u64>, duration: Option<Duration>) -> Self {
        debug_assert!(rate > 0.0 && rate.is_finite(), "validated by the caller");
        // Requests due strictly before the end of the duration: at 4/s over 1s, those at
        // 0, 250, 500 and 750 ms.
        let within = duration.map(|duration| (duration.as_secs_f64() * rate).ceil() as u64);
        let total = match (requests, within) {
            (Some(requests), Some(within)) => requests.min(within),
            (Some(requests), None) => requests,
            (None, Some(within)) => within,
            (None, None) => 0,
        };
        Self { rate, total }
    }

    /// How many requests the run sends.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The offered rate, requests per second.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// When request `index` is due, from the start of the run (rounded up to a
    /// nanosecond, so that [`Timetable::due_by`] of it always includes it).
    pub fn due(&self, index: u64) -> Duration {
        Duration::from_nanos((index as f64 * 1e9 / self.rate).ceil() as u64)
    }

    /// How many requests are due once `elapsed` has passed (all of them at the end).
    pub fn due_by(&self, elapsed: Duration) -> u64 {
        // A first guess from the rate, corrected against `due` itself so that rounding
        // can never leave a request due but not counted. Request 0 is due at once.
        let mut due = ((elapsed.as_secs_f64() * self.rate).floor() as u64 + 1).min(self.total);
        while due > 0 && self.due(due - 1) > elapsed {
            due -= 1;
        }
        while due < self.total && self.due(due) <= elapsed {
            due += 1;
        }
        due
    }

    /// The time from the first request's due time to the end of the schedule.
    pub fn span(&self) -> Duration {
        Duration::from_secs_f64(self.total as f64 / self.rate)
    }
}

/// Picks the class of each request so that every prefix of the run follows the weights
/// as closely as whole requests allow (smooth weighted round robin, as nginx balances).
///
/// Deterministic, unlike a random draw: a run of 100 requests at `high:0.5,low:0.5` sends
/// exactly 50 of each, so per-class counts can be compared between runs and proxies.
#[derive(Debug, Clone)]
pub struct ClassMix {
    weights: Vec<f64>,
    current: Vec<f64>,
    sum: f64,
}

impl ClassMix {
    /// A mix of classes with these positive weights (they need not add up to 1).
    pub fn new(weights: Vec<f64>) -> Self {
        debug_assert!(weights.iter().all(|weight| *weight > 0.0), "validated");
        let sum = weights.iter().sum();
        let current = vec![0.0; weights.len()];
        Self {
            weights,
            current,
            sum,
        }
    }

    /// The class of the next request (0 when there is no mix).
    pub fn next_class(&mut self) -> usize {
        if self.weights.len() <= 1 {
            return 0;
        }
        let mut best = 0;
        for (index, weight) in self.weights.iter().enumerate() {
            self.current[index] += weight;
            if self.current[index] > self.current[best] {
                best = index;
            }
        }
        self.current[best] -= self.sum;
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(value: u64) -> Duration {
        Duration::from_millis(value)
    }

    #[test]
    fn requests_are_due_at_even_intervals_from_zero() {
        let table = Timetable::new(4.0, None, Some(Duration::from_secs(1)));
        assert_eq!(table.total(), 4);
        let due: Vec<_> = (0..4).map(|index| table.due(index)).collect();
        assert_eq!(due, [ms(0), ms(250), ms(500), ms(750)]);
        assert_eq!(table.span(), Duration::from_secs(1));
    }

    #[test]
    fn the_smaller_of_count_and_duration_bounds_the_run() {
        let table = Timetable::new(100.0, Some(50), Some(Duration::from_secs(10)));
        assert_eq!(table.total(), 50);
        let table = Timetable::new(100.0, Some(5000), Some(Duration::from_secs(2)));
        assert_eq!(table.total(), 200);
        let table = Timetable::new(100.0, Some(7), None);
        assert_eq!(table.total(), 7);
    }

    #[test]
    fn a_fractional_last_slot_still_counts_within_the_duration() {
        // 3/s over 1.5s: due at 0, 333, 667, 1000 and 1333 ms.
        let table = Timetable::new(3.0, None, Some(ms(1500)));
        assert_eq!(table.total(), 5);
    }

    #[test]
    fn due_by_counts_requests_whose_time_has_come_and_stops_at_the_total() {
        let table = Timetable::new(10.0, Some(20), None);
        assert_eq!(table.due_by(ms(0)), 1);
        assert_eq!(table.due_by(ms(99)), 1);
        assert_eq!(table.due_by(ms(100)), 2);
        assert_eq!(table.due_by(ms(950)), 10);
        // A dispatcher that woke late sends everything that became due meanwhile.
        assert_eq!(table.due_by(ms(1_999)), 20);
        assert_eq!(table.due_by(Duration::from_secs(3600)), 20);
    }

    #[test]
    fn every_request_is_due_by_the_time_the_next_one_is_scheduled() {
        let table = Timetable::new(1234.5, Some(5000), None);
        for index in 0..table.total() {
            assert!(table.due_by(table.due(index)) > index, "request {index}");
        }
    }

    #[test]
    fn an_even_mix_alternates() {
        let mut mix = ClassMix::new(vec![0.5, 0.5]);
        let classes: Vec<_> = (0..6).map(|_| mix.next_class()).collect();
        assert_eq!(classes, [0, 1, 0, 1, 0, 1]);
    }

    #[test]
    fn an_uneven_mix_is_exact_over_each_cycle_and_spread_within_it() {
        let mut mix = ClassMix::new(vec![3.0, 1.0]);
        let classes: Vec<_> = (0..8).map(|_| mix.next_class()).collect();
        assert_eq!(classes, [0, 0, 1, 0, 0, 0, 1, 0]);
    }

    #[test]
    fn every_prefix_follows_the_weights_within_one_request() {
        let weights = [0.1, 0.6, 0.3];
        let mut mix = ClassMix::new(weights.to_vec());
        let mut counts = [0u64; 3];
        for sent in 1..=1000u64 {
            counts[mix.next_class()] += 1;
            for (class, weight) in weights.iter().enumerate() {
                let expected = weight * sent as f64;
                assert!(
                    (counts[class] as f64 - expected).abs() <= 1.0,
                    "class {class} after {sent}: {} against {expected}",
                    counts[class]
                );
            }
        }
    }

    #[test]
    fn no_mix_is_always_class_zero() {
        let mut mix = ClassMix::new(vec![1.0]);
        assert!((0..10).all(|_| mix.next_class() == 0));
    }
}
