//! Every request's outcome, one [`Sample`] each, for `blastwall verify` to judge afterwards
//! by window (its due time), route (its kind) and class (its optional headers).
//!
//! The aggregates of [`super::Summary`] cannot be cut by window or route after the fact;
//! samples can. A sample is a small `Copy` value (no strings: what it keeps of the
//! answer's headers is parsed into enums and integers as it arrives, so hostile header
//! values cost nothing and cannot panic). Samples go to a [`SampleLog`], a shared list the
//! caller may read while the run goes (progress; "did the steady state hold before the
//! fault?"): each request takes its lock once to push, a reader takes it to copy what is
//! new since its last read, and neither holds it across an await.
//!
//! Where an answer came from ([`Source`]) is read from Blastwall's decision headers, which
//! a proxy with `decision_headers = "on_request"` adds when the request carries
//! `x-blastwall-debug: 1` (the plan's `debug`).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use http::HeaderMap;

use super::stats::Outcome;

/// The header that asks a proxy to say what it decided.
pub const DEBUG_HEADER: &str = "x-blastwall-debug";
/// The header naming the fallback that answered.
pub const FALLBACK_HEADER: &str = "x-blastwall-fallback";
/// The header naming the error the proxy answered with itself.
pub const ERROR_HEADER: &str = "x-blastwall-error";
/// The header counting the upstream attempts the proxy made.
pub const ATTEMPTS_HEADER: &str = "x-blastwall-attempts";

/// One request's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// When it was due, from the run's start.
    pub due: Duration,
    /// From its due time to its outcome (from its send if sent a little early).
    pub latency: Duration,
    /// Its status, or how it failed.
    pub outcome: Outcome,
    /// The index of its kind in the plan.
    pub kind: u16,
    /// Bit `i` set: the plan's optional header `i` was sent.
    pub headers: u32,
    /// Who answered.
    pub source: Source,
    /// `x-blastwall-attempts` of the answer; 0 when absent or not a number.
    pub attempts: u16,
}

/// Who answered a request, as the proxy's decision headers say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// The upstream (no decision header).
    Upstream,
    /// A fallback (`x-blastwall-fallback`).
    Fallback(FallbackKind),
    /// The proxy refused it: shed or rate limited (`x-blastwall-error: shed|rate_limited`).
    Refused,
    /// The proxy answered with another error of its own (`x-blastwall-error`).
    ProxyError,
    /// No answer came.
    NoAnswer,
}

/// Which fallback answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FallbackKind {
    /// A static answer.
    Static,
    /// Another cluster.
    Cluster,
    /// A stale cached copy.
    Stale,
    /// A name this client does not know.
    Other,
}

impl Source {
    /// Who answered, from the answer's headers. A fallback header wins over an error
    /// header; values are compared as bytes, so any value is safe.
    pub fn of(headers: &HeaderMap) -> Self {
        if let Some(value) = headers.get(FALLBACK_HEADER) {
            return Self::Fallback(match value.as_bytes() {
                b"static" => FallbackKind::Static,
                b"cluster" => FallbackKind::Cluster,
                b"stale" => FallbackKind::Stale,
                _ => FallbackKind::Other,
            });
        }
        match headers.get(ERROR_HEADER).map(|value| value.as_bytes()) {
            Some(b"shed" | b"rate_limited") => Self::Refused,
            Some(_) => Self::ProxyError,
            None => Self::Upstream,
        }
    }
}

/// The attempts an answer's `x-blastwall-attempts` counts: 0 when absent, not a decimal
/// number, or above `u16::MAX`.
pub fn attempts_of(headers: &HeaderMap) -> u16 {
    headers
        .get(ATTEMPTS_HEADER)
        .and_then(|value| std::str::from_utf8(value.as_bytes()).ok())
        .and_then(|text| text.parse().ok())
        .unwrap_or(0)
}

/// The samples of a run, shared between the run and whoever watches it. Cloning is cheap
/// (one `Arc`); every clone sees the same list.
///
/// While the run goes, samples are in the order requests ended, not the order they were
/// due; [`super::run_sampled`] returns them sorted by due time.
#[derive(Debug, Clone, Default)]
pub struct SampleLog {
    samples: Arc<Mutex<Vec<Sample>>>,
}

impl SampleLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Sample>> {
        // A poisoned list is still a list of whole samples: a push cannot half happen.
        self.samples
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds one sample.
    pub fn push(&self, sample: Sample) {
        self.lock().push(sample);
    }

    /// How many samples there are so far.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether there are none yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of the samples from index `from` on: a watcher keeps the length it has
    /// read and asks only for what is new.
    pub fn read_from(&self, from: usize) -> Vec<Sample> {
        self.lock()
            .get(from..)
            .map(<[Sample]>::to_vec)
            .unwrap_or_default()
    }

    /// Takes every sample out, leaving the log empty.
    pub fn take(&self) -> Vec<Sample> {
        std::mem::take(&mut *self.lock())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::ErrorKind;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &[u8])]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                *name,
                HeaderValue::from_bytes(value).expect("a valid test value"),
            );
        }
        map
    }

    #[test]
    fn an_answer_without_decision_headers_is_the_upstreams() {
        assert_eq!(Source::of(&HeaderMap::new()), Source::Upstream);
        assert_eq!(
            Source::of(&headers(&[("x-other", b"shed")])),
            Source::Upstream
        );
    }

    #[test]
    fn each_fallback_name_is_its_kind_and_any_other_is_other() {
        for (value, kind) in [
            (&b"static"[..], FallbackKind::Static),
            (b"cluster", FallbackKind::Cluster),
            (b"stale", FallbackKind::Stale),
            (b"STATIC", FallbackKind::Other),
            (b"", FallbackKind::Other),
            (b"\xff\xfe garbage", FallbackKind::Other),
        ] {
            let map = headers(&[(FALLBACK_HEADER, value)]);
            assert_eq!(Source::of(&map), Source::Fallback(kind), "{value:?}");
        }
    }

    #[test]
    fn shed_and_rate_limited_are_refusals_and_other_errors_the_proxys() {
        let of = |value: &[u8]| Source::of(&headers(&[(ERROR_HEADER, value)]));
        assert_eq!(of(b"shed"), Source::Refused);
        assert_eq!(of(b"rate_limited"), Source::Refused);
        assert_eq!(of(b"no_route"), Source::ProxyError);
        assert_eq!(of(b"\x80\xff"), Source::ProxyError);
        assert_eq!(of(b""), Source::ProxyError);
    }

    #[test]
    fn a_fallback_header_wins_over_an_error_header() {
        let map = headers(&[(ERROR_HEADER, b"shed"), (FALLBACK_HEADER, b"stale")]);
        assert_eq!(Source::of(&map), Source::Fallback(FallbackKind::Stale));
    }

    #[test]
    fn attempts_are_read_as_a_number_and_anything_else_is_zero() {
        let of = |value: &[u8]| attempts_of(&headers(&[(ATTEMPTS_HEADER, value)]));
        assert_eq!(of(b"3"), 3);
        assert_eq!(of(b"65535"), 65535);
        assert_eq!(of(b"65536"), 0);
        assert_eq!(of(b"-1"), 0);
        assert_eq!(of(b"two"), 0);
        assert_eq!(of(b"\xff"), 0);
        assert_eq!(of(&[b'9'; 4000]), 0);
        assert_eq!(attempts_of(&HeaderMap::new()), 0);
    }

    #[test]
    fn a_watcher_reads_only_what_is_new() {
        let log = SampleLog::new();
        let sample = |kind| Sample {
            due: Duration::ZERO,
            latency: Duration::ZERO,
            outcome: Outcome::Error(ErrorKind::Timeout),
            kind,
            headers: 0,
            source: Source::NoAnswer,
            attempts: 0,
        };
        log.push(sample(0));
        log.push(sample(1));
        let watcher = log.clone();
        assert_eq!(watcher.read_from(0).len(), 2);
        log.push(sample(2));
        let new = watcher.read_from(2);
        assert_eq!(new.iter().map(|s| s.kind).collect::<Vec<_>>(), [2]);
        assert!(watcher.read_from(10).is_empty());
        assert_eq!(log.take().len(), 3);
        assert!(watcher.is_empty());
    }
}
