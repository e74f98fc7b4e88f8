//! One kept response, and the rules that decide whether a response may be kept (RFC 9111
//! §3 with the shared-cache rules) and for how long it may be served on error (§4.2 with
//! RFC 5861's `stale-if-error`).

use std::borrow::Borrow;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, request, response};
use smallvec::SmallVec;

use super::cache_control::CacheControl;
use crate::fallback::Provenance;
use crate::headers::forwarding::FORWARDING;

/// Statuses kept: those RFC 9111 §4.2.2 calls heuristically cacheable, less 206 (a part is
/// not the resource), 405, 414 and 501 (errors about the request or the server, not a last
/// good answer).
const KEPT_STATUSES: [u16; 8] = [200, 203, 204, 300, 301, 308, 404, 410];

/// The longest a kept entry stands for its URL's later answers before one replaces it (see
/// [`Entry::stands_for`]); shorter for an entry whose whole window is short.
pub(crate) const REFRESH: Duration = Duration::from_secs(1);

/// The primary key of a response: method, scheme, host and target (path and query), and,
/// when a trusted client sent them, the forwarding headers that travel upstream (they name
/// the site the upstream answers for). The request headers its `Vary` names complete it
/// ([`Entry::matches`]).
///
/// NOTE: everything else the proxy sends that may change the answer is the proxy's own or
/// removed: `X-Forwarded-Proto` is the scheme keyed here; an untrusted client's forwarding
/// headers are removed as it arrives; `X-Forwarded-For` ends with the peer, and an answer
/// that depends on the client's address must say so (`Vary`, `private`), as it must to any
/// shared cache.
///
/// It is bytes, not text: a forwarding header's value is kept as sent. A key is looked up
/// as [`KeyBytes`], written on the stack, so that a look-up allocates nothing; it is boxed
/// only to be stored.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct CacheKey(Box<[u8]>);

/// A [`CacheKey`]'s bytes as a look-up writes them: inline up to a long URL.
pub(crate) type KeyBytes = SmallVec<[u8; 192]>;

// NOTE: the derived `Hash` and `Eq` are the boxed slice's, so a key and its bytes hash and
// compare alike, as `Borrow` requires.
impl Borrow<[u8]> for CacheKey {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

impl From<&[u8]> for CacheKey {
    fn from(bytes: &[u8]) -> Self {
        Self(bytes.into())
    }
}

impl CacheKey {
    /// The bytes of the key of a GET or HEAD request, without allocating for a usual URL;
    /// `None` for other methods, which are never kept.
    pub(crate) fn bytes(request: &request::Parts, provenance: Provenance) -> Option<KeyBytes> {
        let method = match request.method {
            Method::GET => b'G',
            Method::HEAD => b'H',
            _ => return None,
        };
        let host = request
            .uri
            .authority()
            .map(|authority| authority.as_str())
            .map(str::as_bytes)
            .or_else(|| request.headers.get(header::HOST).map(HeaderValue::as_bytes))
            .unwrap_or_default();
        let target = request
            .uri
            .path_and_query()
            .map_or("/", |target| target.as_str());
        let scheme = if provenance.tls {
            "https://"
        } else {
            "http://"
        };
        let mut key = KeyBytes::new();
        key.extend_from_slice(&[method, b' ']);
        key.extend_from_slice(scheme.as_bytes());
        let at = key.len();
        key.extend_from_slice(host);
        if host.iter().any(u8::is_ascii_uppercase) {
            key[at..].make_ascii_lowercase();
        }
        key.extend_from_slice(target.as_bytes());
        if provenance.forwarded {
            // After the target, each on a line of its own: neither can hold a newline.
            for name in &FORWARDING {
                for value in request.headers.get_all(name) {
                    key.push(b'\n');
                    key.extend_from_slice(name.as_str().as_bytes());
                    key.push(b':');
                    key.extend_from_slice(value.as_bytes());
                }
            }
        }
        Some(key)
    }

    /// Bytes it takes.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

/// A kept response and what decides how long it may be served.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The request's values of each header the response's `Vary` names: a request matches
    /// only with the same values (RFC 9111 §4.1). One variant per key is kept, the latest.
    pub vary: Vec<(HeaderName, Vec<HeaderValue>)>,
    /// When the response head was received.
    pub received: Instant,
    /// Its age when received (its `Age` field).
    pub initial_age: Duration,
    /// How long it is fresh (`s-maxage`, `max-age`, or `Expires` minus `Date`; else zero).
    pub freshness: Duration,
    /// How long after becoming stale it may be served on error: its own `stale-if-error`;
    /// zero when `s-maxage` forbids serving it stale; `None` for the route's `max_age`.
    pub stale_window: Option<Duration>,
}

impl Entry {
    /// The entry for a response to `request`, without its body yet, if it may be kept.
    pub(crate) fn storable(
        request: &request::Parts,
        response: &response::Parts,
        now: Instant,
    ) -> Option<Self> {
        if !KEPT_STATUSES.contains(&response.status.as_u16())
            || CacheControl::of(&request.headers).no_store
            || response.headers.contains_key(header::SET_COOKIE)
        {
            return None;
        }
        let directives = CacheControl::of(&response.headers);
        if directives.no_store
            || directives.private
            || directives.no_cache
            || directives.must_revalidate
        {
            return None;
        }
        // RFC 9111 §3.5: a shared cache keeps an answer to an authorized request only when
        // the response says it may. An answer to a request with a cookie is as likely to
        // be that one user's: kept only when the response says it is for anyone.
        if request.headers.contains_key(header::AUTHORIZATION)
            && !directives.public
            && directives.s_maxage.is_none()
        {
            return None;
        }
        if request.headers.contains_key(header::COOKIE) && !directives.public {
            return None;
        }
        let vary = vary(request, &response.headers)?;
        let seconds = Duration::from_secs;
        let freshness = directives
            .s_maxage
            .or(directives.max_age)
            .map(seconds)
            .or_else(|| expires_lifetime(&response.headers))
            .unwrap_or_default();
        let stale_window = match (directives.stale_if_error, directives.s_maxage) {
            (Some(window), _) => Some(seconds(window)),
            // s-maxage carries proxy-revalidate (RFC 9111 §5.2.2.10): not stale, unless the
            // response itself allows it on error.
            (None, Some(_)) => Some(Duration::ZERO),
            (None, None) => None,
        };
        let initial_age = response
            .headers
            .get(header::AGE)
            .and_then(|age| age.to_str().ok()?.trim().parse::<u64>().ok())
            .map(seconds)
            .unwrap_or_default();
        let mut headers = response.headers.clone();
        headers.remove(header::AGE);
        Some(Self {
            status: response.status,
            headers,
            body: Bytes::new(),
            vary,
            received: now,
            initial_age,
            freshness,
            stale_window,
        })
    }

    /// Its age at `now` (RFC 9111 §4.2.3: its age when received plus the time kept; the
    /// `Date`-based apparent age is left out, as it depends on clocks agreeing).
    pub(crate) fn age(&self, now: Instant) -> Duration {
        self.initial_age + now.saturating_duration_since(self.received)
    }

    /// Whether it may be served on error at `now`, with `max_age` the route's window for
    /// responses that do not give their own.
    pub(crate) fn servable(&self, now: Instant, max_age: Duration) -> bool {
        let staleness = self.age(now).saturating_sub(self.freshness);
        staleness <= self.stale_window.unwrap_or(max_age)
    }

    /// How long after it was received it stands for its URL's later answers: [`REFRESH`],
    /// or a tenth of the time it may be served at all (fresh, then stale) if that is less,
    /// so that an entry never goes unreplaced for a large part of its window.
    pub(crate) fn refresh_interval(&self, max_age: Duration) -> Duration {
        let window = self.freshness + self.stale_window.unwrap_or(max_age);
        REFRESH.min(window / 10)
    }

    /// Whether it stands for `response`, a new answer to `request` at `now`: it is younger
    /// than its [refresh interval](Self::refresh_interval), the new answer has the same
    /// status and the same fields (bar `Date`; so no `Age`, which a kept head has not), and
    /// `request` is of the same variant (it matches the `Vary`) and carries none of the
    /// fields that decide whether an answer may be kept (`Cookie`, `Authorization`,
    /// `Cache-Control`). Then the new answer's head is not copied nor its rules read again:
    /// only its body is compared with the entry's as it streams, and becomes the entry's
    /// body if it differs.
    ///
    /// This is what keeps the cache off a healthy route's fast path: a URL asked for again
    /// and again is copied when its answer changes or once per interval, not once per
    /// answer. The price: within an interval the entry keeps its first `Date` and its
    /// window counts from the first answer, up to one interval early.
    pub(crate) fn stands_for(
        &self,
        request: &request::Parts,
        response: &response::Parts,
        now: Instant,
        max_age: Duration,
    ) -> bool {
        now.saturating_duration_since(self.received) < self.refresh_interval(max_age)
            && self.status == response.status
            && same_fields(&self.headers, &response.headers)
            && !request.headers.keys().any(|name| {
                name == header::COOKIE
                    || name == header::AUTHORIZATION
                    || name == header::CACHE_CONTROL
            })
            && self.matches(request)
    }

    /// Whether `request` selects this variant.
    pub(crate) fn matches(&self, request: &request::Parts) -> bool {
        self.vary
            .iter()
            .all(|(name, values)| request.headers.get_all(name).iter().eq(values.iter()))
    }

    /// Memory it takes, roughly: body, headers (with a per-field overhead), key, and the
    /// entry itself.
    pub(crate) fn size(&self, key: &CacheKey) -> u64 {
        const FIELD_OVERHEAD: usize = 32;
        let fields: usize = self
            .headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + FIELD_OVERHEAD)
            .sum();
        let vary: usize = self
            .vary
            .iter()
            .map(|(name, values)| {
                name.as_str().len()
                    + values
                        .iter()
                        .map(|value| value.len() + FIELD_OVERHEAD)
                        .sum::<usize>()
            })
            .sum();
        (self.body.len() + fields + vary + 2 * key.len() + size_of::<Self>()) as u64
    }
}

/// Whether `kept` (a kept head) and `new` hold the same fields in the same order, `Date`
/// aside: one walk, no look-up.
fn same_fields(kept: &HeaderMap, new: &HeaderMap) -> bool {
    kept.iter()
        .filter(|(name, _)| *name != header::DATE)
        .eq(new.iter().filter(|(name, _)| *name != header::DATE))
}

/// Request headers whose value the endpoint sees is the proxy's, written per client or per
/// request (the peer appended to `X-Forwarded-For` and `Forwarded`, this hop's `Via`, a
/// fresh request id or trace context), not the client's. A response that varies on one of
/// them depends on who asked (its address, say): matched on the client's own values, two
/// clients that sent none would share it, so it is not kept.
const PER_CLIENT: [&str; 8] = [
    "x-forwarded-for",
    "forwarded",
    "x-real-ip",
    "via",
    "x-request-id",
    "traceparent",
    "tracestate",
    "x-forwarded-proto",
];

/// The request's values of the headers the response's `Vary` names; `None` (not kept) for
/// `Vary: *`, a name that is not a field name, or one of [`PER_CLIENT`].
fn vary(
    request: &request::Parts,
    response: &HeaderMap,
) -> Option<Vec<(HeaderName, Vec<HeaderValue>)>> {
    let mut selected = Vec::new();
    for value in response.get_all(header::VARY) {
        for name in value.to_str().ok()?.split(',') {
            let name = name.trim();
            if name.is_empty() {
                continue;
            }
            if name == "*" {
                return None;
            }
            let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
            if PER_CLIENT.contains(&name.as_str()) {
                return None;
            }
            let values = request.headers.get_all(&name).iter().cloned().collect();
            selected.push((name, values));
        }
    }
    Some(selected)
}

/// `Expires` minus `Date`; zero when `Expires` is not a valid date (RFC 9111 §5.3: already
/// expired), `None` without both.
fn expires_lifetime(headers: &HeaderMap) -> Option<Duration> {
    let expires = headers.get(header::EXPIRES)?;
    let date = headers
        .get(header::DATE)
        .and_then(|date| httpdate::parse_http_date(date.to_str().ok()?).ok())?;
    let Some(expires) = expires
        .to_str()
        .ok()
        .and_then(|expires| httpdate::parse_http_date(expires).ok())
    else {
        return Some(Duration::ZERO);
    };
    Some(expires.duration_since(date).unwrap_or_default())
}
