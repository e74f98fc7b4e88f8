//! A request's deadline: the route's timeout, shortened by what the caller has left.
//!
//! Between proxies the remaining time travels as a relative number of milliseconds (like
//! gRPC's `grpc-timeout`), not as a wall-clock instant, so clocks that disagree between
//! machines do not matter. A caller can only shorten a request's time this way, never
//! lengthen it past the route's own timeout.
//!
//! Shortening is still power: an attempt cut short by the caller's time looks, from here,
//! like an endpoint too slow to answer. So the header is read only from `trusted_clients`
//! (the pipeline checks, as admission does for the priority header), and a [`Deadline`]
//! remembers whose it is: running out of the caller's time is the caller's doing
//! ([`ClientCause::Deadline`](super::ClientCause::Deadline)), never held against an endpoint.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use http::{HeaderName, HeaderValue};

/// The caller's deadline header could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {header} header must be a whole number of milliseconds, got {value:?}")]
pub(super) struct BadDeadline {
    /// The header's name.
    pub header: HeaderName,
    /// What it held (lossily).
    pub value: String,
}

/// The longest a caller may announce: a day. Longer is read as a day, which is longer than
/// any route's timeout would allow anyway.
const LONGEST: Duration = Duration::from_secs(24 * 3600);

/// When a request runs out of time, and whose time it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Deadline {
    /// The instant.
    pub at: Instant,
    /// Whether it is the caller's (its header asked for less than the route's timeout):
    /// running out of it then says nothing about the upstream.
    pub callers: bool,
}

impl Deadline {
    /// The route's own deadline.
    fn routes(at: Instant) -> Self {
        Self { at, callers: false }
    }
}

/// The request's deadline: the earlier of `now + route_timeout` and the caller's remaining
/// time in `value`, the request's `header` (the caller's only when it is the earlier).
/// `Ok(None)` when neither bounds it.
pub(super) fn deadline(
    value: Option<&HeaderValue>,
    header: &HeaderName,
    route_timeout: Option<Duration>,
    now: Instant,
) -> Result<Option<Deadline>, BadDeadline> {
    let own = route_timeout.map(|timeout| now + timeout);
    let Some(value) = value else {
        return Ok(own.map(Deadline::routes));
    };
    let remaining = value
        .to_str()
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
        .ok_or_else(|| BadDeadline {
            header: header.clone(),
            value: String::from_utf8_lossy(value.as_bytes()).into_owned(),
        })?;
    let theirs = now + Duration::from_millis(remaining).min(LONGEST);
    Ok(Some(match own {
        Some(own) if own <= theirs => Deadline::routes(own),
        _ => Deadline {
            at: theirs,
            callers: true,
        },
    }))
}

/// The header value announcing `remaining` to the next hop: whole milliseconds, rounded
/// down so the next hop never believes it has more time than this one will wait, and at
/// least 1 (0 would say "already too late" of a request still being attempted).
pub(super) fn header_value(remaining: Duration) -> HeaderValue {
    let millis = u64::try_from(remaining.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    // NOTE: without a caller's deadline or a route timeout, every attempt of a route
    // announces the same value (its per-try timeout). The last value made on this thread is
    // kept and shared (a reference count) instead of formatting and allocating anew.
    thread_local! {
        static LAST: RefCell<Option<(u64, HeaderValue)>> = const { RefCell::new(None) };
    }
    crate::forward::last_made(&LAST, millis, HeaderValue::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;

    const HEADER: HeaderName = HeaderName::from_static("x-blastwall-timeout-ms");

    fn with(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(HEADER, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn the_earlier_of_the_route_timeout_and_the_callers_time_wins() {
        let now = Instant::now();
        let route = Some(Duration::from_secs(2));
        let callers = |at| Some(Deadline { at, callers: true });
        let shorter = deadline(with("500").get(&HEADER), &HEADER, route, now).unwrap();
        assert_eq!(shorter, callers(now + Duration::from_millis(500)));
        let longer = deadline(with("9000").get(&HEADER), &HEADER, route, now).unwrap();
        assert_eq!(longer, Some(Deadline::routes(now + Duration::from_secs(2))));
        let none = deadline(None, &HEADER, None, now).unwrap();
        assert_eq!(none, None);
        let own_only = deadline(None, &HEADER, route, now).unwrap();
        assert_eq!(
            own_only,
            Some(Deadline::routes(now + Duration::from_secs(2)))
        );
        let theirs_only = deadline(with("250").get(&HEADER), &HEADER, None, now).unwrap();
        assert_eq!(theirs_only, callers(now + Duration::from_millis(250)));
    }

    #[test]
    fn a_deadline_that_is_not_a_number_is_refused() {
        let error = deadline(with("soon").get(&HEADER), &HEADER, None, Instant::now()).unwrap_err();
        assert_eq!(error.value, "soon");
        assert!(deadline(with("-5").get(&HEADER), &HEADER, None, Instant::now()).is_err());
    }

    #[test]
    fn announced_time_rounds_down_but_never_to_zero() {
        assert_eq!(header_value(Duration::from_micros(1500)), "1");
        assert_eq!(header_value(Duration::from_micros(300)), "1");
        assert_eq!(header_value(Duration::from_millis(2500)), "2500");
    }

    #[test]
    fn the_announced_value_is_whole_milliseconds_whether_kept_or_new() {
        for (remaining, text) in [
            (Duration::from_millis(1500), "1500"),
            (Duration::from_millis(1500), "1500"),
            (Duration::from_micros(2_999_999), "2999"),
            (Duration::from_micros(10), "1"),
            (Duration::from_millis(1500), "1500"),
        ] {
            assert_eq!(header_value(remaining), text);
        }
    }
}
