//! What a load run saw: counts by status and error kind, latency histograms, per traffic
//! class and over time.
//!
//! The recorder is fed offsets from the run's start (when a request was due, how long it
//! took), never reads a clock, and so is tested with made-up times. Latency is measured
//! from the time a request was due, not from when it was sent: time spent waiting for a
//! free connection is part of what the client saw. (The engine sends up to a timer tick
//! early rather than late; such a request counts from its send.)

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// How a request that got no HTTP answer failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ErrorKind {
    /// No connection could be opened (refused, unreachable).
    Connect,
    /// The connection was reset or closed before the whole answer arrived.
    Reset,
    /// No whole answer within the per-request timeout (counted from the due time).
    Timeout,
    /// The answer was not valid HTTP.
    Protocol,
}

impl ErrorKind {
    const ALL: [Self; 4] = [Self::Connect, Self::Reset, Self::Timeout, Self::Protocol];

    fn name(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Reset => "reset",
            Self::Timeout => "timeout",
            Self::Protocol => "protocol",
        }
    }
}

/// What one request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A whole answer with this status.
    Status(u16),
    /// No answer.
    Error(ErrorKind),
}

impl Outcome {
    /// Whether the client got what it asked for: a status below 400. Shed (503, 429) and
    /// failed requests are not.
    pub fn is_ok(self) -> bool {
        matches!(self, Self::Status(status) if status < 400)
    }
}

/// Latencies up to an hour are recorded exactly to 3 significant digits (in µs).
const HIGHEST_US: u64 = 3_600_000_000;

fn histogram(significant_digits: u8) -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIGHEST_US, significant_digits)
        .expect("constant bounds are valid")
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// Counts and latencies of one traffic class (or of all of them).
#[derive(Debug, Clone)]
struct Tally {
    statuses: BTreeMap<u16, u64>,
    errors: [u64; 4],
    ok: u64,
    failed: u64,
    latency: Histogram<u64>,
    ok_latency: Histogram<u64>,
}

impl Tally {
    fn new() -> Self {
        Self {
            statuses: BTreeMap::new(),
            errors: [0; 4],
            ok: 0,
            failed: 0,
            latency: histogram(3),
            ok_latency: histogram(3),
        }
    }

    fn record(&mut self, latency_us: u64, outcome: Outcome) {
        match outcome {
            Outcome::Status(status) => *self.statuses.entry(status).or_default() += 1,
            Outcome::Error(kind) => self.errors[kind as usize] += 1,
        }
        self.latency.saturating_record(latency_us);
        if outcome.is_ok() {
            self.ok += 1;
            self.ok_latency.saturating_record(latency_us);
        } else {
            self.failed += 1;
        }
    }

    fn summary(&self) -> TallySummary {
        let requests = self.ok + self.failed;
        TallySummary {
            requests,
            ok: self.ok,
            failed: self.failed,
            error_rate: if requests == 0 {
                0.0
            } else {
                self.failed as f64 / requests as f64
            },
            statuses: self
                .statuses
                .iter()
                .map(|(status, count)| (status.to_string(), *count))
                .collect(),
            errors: ErrorKind::ALL
                .iter()
                .map(|kind| (kind.name(), self.errors[*kind as usize]))
                .collect(),
            latency_us: Percentiles::of(&self.latency),
            ok_latency_us: Percentiles::of(&self.ok_latency),
        }
    }
}

/// One interval of the timeline, by the time requests were due.
#[derive(Debug, Clone)]
struct Bucket {
    ok: u64,
    failed: u64,
    latency: Histogram<u64>,
}

/// Percentiles of a latency histogram, in microseconds (all zero when it is empty).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest.
    pub max: u64,
    /// Mean.
    pub mean: f64,
}

impl Percentiles {
    fn of(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Self {
                p50: 0,
                p90: 0,
                p99: 0,
                p999: 0,
                max: 0,
                mean: 0.0,
            };
        }
        Self {
            p50: histogram.value_at_quantile(0.50),
            p90: histogram.value_at_quantile(0.90),
            p99: histogram.value_at_quantile(0.99),
            p999: histogram.value_at_quantile(0.999),
            max: histogram.max(),
            mean: histogram.mean(),
        }
    }
}

/// Counts and latencies of one traffic class, or of the whole run.
#[derive(Debug, Clone, Serialize)]
pub struct TallySummary {
    /// Requests that came to an outcome.
    pub requests: u64,
    /// Answered with a status below 400.
    pub ok: u64,
    /// Everything else: 4xx, 5xx and errors.
    pub failed: u64,
    /// `failed / requests`.
    pub error_rate: f64,
    /// Answers by status code.
    pub statuses: BTreeMap<String, u64>,
    /// Requests without an answer, by kind.
    pub errors: BTreeMap<&'static str, u64>,
    /// Latency of every request, failures included, from its due time.
    pub latency_us: Percentiles,
    /// Latency of the requests that were ok.
    pub ok_latency_us: Percentiles,
}

/// One point of the timeline.
#[derive(Debug, Clone, Serialize)]
pub struct TimelinePoint {
    /// Start of the interval, seconds from the start of the run (by due time).
    pub t: f64,
    /// Requests due in the interval that were ok.
    pub ok: u64,
    /// Requests due in the interval that failed.
    pub failed: u64,
    /// Median latency of the interval's requests, µs.
    pub p50_us: u64,
    /// 99th percentile latency of the interval's requests, µs.
    pub p99_us: u64,
}

/// Collects the outcome of every request of a run.
#[derive(Debug)]
pub struct Recorder {
    total: Tally,
    classes: Vec<Tally>,
    interval: Duration,
    timeline: Vec<Bucket>,
    send_delay: Histogram<u64>,
    expired_unsent: u64,
    last_send: Duration,
    answered: u64,
    last_answer: Duration,
    versions: BTreeMap<String, u64>,
}

impl Recorder {
    /// A recorder for `classes` traffic classes (1 when there is no mix) and a timeline
    /// of `interval` wide buckets.
    pub fn new(classes: usize, interval: Duration) -> Self {
        Self {
            total: Tally::new(),
            classes: vec![Tally::new(); classes.max(1)],
            interval: interval.max(Duration::from_millis(1)),
            timeline: Vec::new(),
            send_delay: histogram(3),
            expired_unsent: 0,
            last_send: Duration::ZERO,
            answered: 0,
            last_answer: Duration::ZERO,
            versions: BTreeMap::new(),
        }
    }

    /// A request due at `due` (from the start) was put on a connection `delay` after it
    /// was due.
    pub fn sent(&mut self, due: Duration, delay: Duration) {
        self.send_delay.saturating_record(micros(delay));
        self.last_send = self.last_send.max(due + delay);
    }

    /// A whole answer came in this HTTP version.
    pub fn version(&mut self, version: http::Version) {
        *self.versions.entry(format!("{version:?}")).or_default() += 1;
    }

    /// A request timed out before a connection was free to send it.
    pub fn expired_unsent(&mut self) {
        self.expired_unsent += 1;
    }

    /// A request of `class` due at `due` came to `outcome`, `latency` after it was due.
    pub fn record(&mut self, class: usize, due: Duration, latency: Duration, outcome: Outcome) {
        let latency_us = micros(latency);
        if let Outcome::Status(_) = outcome {
            self.answered += 1;
            self.last_answer = self.last_answer.max(due + latency);
        }
        self.total.record(latency_us, outcome);
        if let Some(tally) = self.classes.get_mut(class) {
            tally.record(latency_us, outcome);
        }
        let index = (due.as_nanos() / self.interval.as_nanos()) as usize;
        if self.timeline.len() <= index {
            self.timeline.resize_with(index + 1, || Bucket {
                ok: 0,
                failed: 0,
                latency: histogram(2),
            });
        }
        let bucket = &mut self.timeline[index];
        if outcome.is_ok() {
            bucket.ok += 1;
        } else {
            bucket.failed += 1;
        }
        bucket.latency.saturating_record(latency_us);
    }

    /// The counts so far, for a live progress line, `elapsed` into the run.
    pub fn progress(&self, elapsed: Duration) -> Progress {
        Progress {
            elapsed,
            sent: self.send_delay.len(),
            answered: self.answered,
            failed: self.total.failed,
            p99_us: Percentiles::of(&self.total.latency).p99,
        }
    }

    /// Everything recorded, for a run whose schedule spanned `span` and which took
    /// `elapsed` in all.
    pub fn summary(&self, span: Duration, elapsed: Duration) -> Summary {
        let sent = self.send_delay.len();
        // A client that fell behind sent over a longer time than scheduled.
        let sending_time = span.max(self.last_send).as_secs_f64();
        let answering_time = span.max(self.last_answer).as_secs_f64();
        Summary {
            elapsed_s: elapsed.as_secs_f64(),
            sent,
            achieved_rate: if sending_time > 0.0 {
                sent as f64 / sending_time
            } else {
                0.0
            },
            answered: self.answered,
            versions: self.versions.clone(),
            answer_rate: if answering_time > 0.0 {
                self.answered as f64 / answering_time
            } else {
                0.0
            },
            expired_unsent: self.expired_unsent,
            send_delay_us: Percentiles::of(&self.send_delay),
            total: self.total.summary(),
            classes: self.classes.iter().map(Tally::summary).collect(),
            timeline_interval_s: self.interval.as_secs_f64(),
            timeline: self
                .timeline
                .iter()
                .enumerate()
                .map(|(index, bucket)| TimelinePoint {
                    t: (self.interval * index as u32).as_secs_f64(),
                    ok: bucket.ok,
                    failed: bucket.failed,
                    p50_us: Percentiles::of(&bucket.latency).p50,
                    p99_us: Percentiles::of(&bucket.latency).p99,
                })
                .collect(),
        }
    }
}

/// How far a run has come, for a live progress line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Time since the run started.
    pub elapsed: Duration,
    /// Requests put on a connection so far.
    pub sent: u64,
    /// Requests answered so far, whatever the status.
    pub answered: u64,
    /// Requests that failed so far (4xx, 5xx, no answer).
    pub failed: u64,
    /// The 99th percentile latency of every request so far, µs.
    pub p99_us: u64,
}

/// What a run measured; [`super::Report`] adds what it was asked to do.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Wall time of the whole run, the wait for the last answers included.
    pub elapsed_s: f64,
    /// Requests put on a connection.
    pub sent: u64,
    /// `sent` per second of sending (the schedule's span, or longer if the client fell
    /// behind).
    pub achieved_rate: f64,
    /// Requests that got a whole HTTP answer, whatever its status.
    pub answered: u64,
    /// Whole answers by HTTP version (`HTTP/1.1`, `HTTP/2.0`): what ALPN agreed over TLS.
    pub versions: BTreeMap<String, u64>,
    /// `answered` per second, from the start to the last answer (or the schedule's span
    /// if longer): the throughput the server achieved, where `achieved_rate` is the
    /// client's.
    pub answer_rate: f64,
    /// Requests that timed out waiting for a free connection, never sent (counted as
    /// timeouts in `total` too).
    pub expired_unsent: u64,
    /// How late requests were put on a connection after they were due: large values mean
    /// too few connections for the rate and the server's latency.
    pub send_delay_us: Percentiles,
    /// Every request.
    pub total: TallySummary,
    /// Per traffic class, in the order of the mix.
    pub classes: Vec<TallySummary>,
    /// Width of a timeline point, seconds.
    pub timeline_interval_s: f64,
    /// Per interval of due time.
    pub timeline: Vec<TimelinePoint>,
}

#[cfg(test)]
#[path = "stats_tests.rs"]
mod tests;
