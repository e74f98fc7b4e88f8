//! The request as the upstream should see it, and the response as the client should see it
//! (the answers the proxy makes itself are [`crate::error`]'s).
//!
//! Bodies stream both ways; nothing is buffered whole. The endpoint stays counted in flight
//! until the response body has been sent on, not just until its head arrives, so
//! least-request and peak-EWMA balancing see the real load (see [`answer`]).

pub(crate) mod answer;

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::BytesMut;
use http::header::{self, HeaderMap, HeaderName, HeaderValue, InvalidHeaderValue};
use http::{Request, Response, Uri, Version};
use http_body_util::BodyExt;

use self::answer::{Unjudged, holding_endpoint};
use crate::body::ProxyBody;
use crate::config::{EscapedSlashes, HeaderEdits, PathMatch, RouteConfig};
use crate::endpoint::EndpointGuard;
use crate::headers::forwarding::is_forwarding;
use crate::headers::{
    AddedHeaders, REQUEST_ID, X_FORWARDED_FOR, X_FORWARDED_PROTO, remove_hop_by_hop,
};
use crate::router::path::normalized;
use crate::router::path_match::RoutedPath;
use crate::upstream::UpstreamBody;

/// Room an attempt's header map keeps for forwarding headers and a route's edits.
pub(crate) const ATTEMPT_HEADER_ROOM: usize = 8;

/// Room a request's header map needs for what the proxy adds to it on the way: the request
/// id and a trace context, then [`ATTEMPT_HEADER_ROOM`]. A map made with it to spare does
/// not grow (rehash and reallocate, ~800 instructions) per request.
pub(crate) const HEADER_ROOM: usize = ATTEMPT_HEADER_ROOM + 2;

/// Who sent the request, as the listener saw it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Downstream {
    /// The client's address.
    pub peer: SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
}

/// `response` with the request id.
pub(crate) fn with_request_id(
    mut response: Response<ProxyBody>,
    request_id: &HeaderValue,
) -> Response<ProxyBody> {
    response
        .headers_mut()
        .insert(REQUEST_ID, request_id.clone());
    response
}

/// Keeps the client's request id, or creates one: unique within the process, and unlikely
/// to repeat across processes (the high half is random per process). `sent` says whether
/// the request has the header at all ([`Seen::request_id`]).
pub(crate) fn ensure_request_id(headers: &mut HeaderMap, sent: bool) -> HeaderValue {
    if sent
        && let Some(id) = headers.get(&REQUEST_ID)
        && !id.is_empty()
        && id.len() <= 128
    {
        return id.clone();
    }
    static NEXT: AtomicU64 = AtomicU64::new(0);
    // NOTE: the process's half, as hex digits, is written once, not for every request.
    static PROCESS: std::sync::LazyLock<[u8; 16]> = std::sync::LazyLock::new(|| {
        use std::hash::{BuildHasher, RandomState};
        let mut digits = [0u8; 16];
        hex(RandomState::new().hash_one(std::process::id()), &mut digits);
        digits
    });
    let mut id = [0u8; 32];
    id[..16].copy_from_slice(&*PROCESS);
    hex(NEXT.fetch_add(1, Ordering::Relaxed), &mut id[16..]);
    let id = shared_value(&id).expect("hex digits are a valid header value");
    headers.insert(REQUEST_ID, id.clone());
    id
}

/// A header value of `text` in memory shared with other values made on this thread.
// NOTE: values made per request (request ids, X-Forwarded-For) are cut from a chunk kept
// per thread rather than each copied into a buffer of its own: that costs an allocation,
// and a second one when the value is first cloned (a `Bytes` made from a `Vec` becomes
// shared then); here a clone only counts a reference. A chunk lives until the last value
// cut from it is dropped, so it is kept small.
pub(crate) fn shared_value(text: &[u8]) -> Result<HeaderValue, InvalidHeaderValue> {
    const CHUNK: usize = 1024;
    thread_local! {
        static CHUNKS: RefCell<BytesMut> = RefCell::new(BytesMut::new());
    }
    let bytes = CHUNKS.with_borrow_mut(|chunk| {
        if chunk.capacity() < text.len() {
            *chunk = BytesMut::with_capacity(CHUNK.max(text.len()));
        }
        chunk.extend_from_slice(text);
        chunk.split().freeze()
    });
    HeaderValue::from_maybe_shared(bytes)
}

/// Writes `value` as lower-case hex digits, zero padded to fill `out` (16 bytes for a u64).
// NOTE: by hand rather than `format!`: this runs for every request without an id.
fn hex(mut value: u64, out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for byte in out.iter_mut().rev() {
        *byte = DIGITS[(value & 0xf) as usize];
        value >>= 4;
    }
}

/// The request as the endpoint should see it, with the lines to add to its head; `None`
/// when its target cannot be rebuilt for the endpoint (never, then, forwarded anywhere
/// else).
pub(crate) fn upstream_request(
    downstream: Downstream,
    route: &RouteConfig,
    guard: &EndpointGuard,
    http2: bool,
    seen: Seen,
    mut parts: http::request::Parts,
    body: ProxyBody,
) -> Option<(Request<ProxyBody>, AddedHeaders)> {
    // Userinfo is never part of a host: `user@host` names `host`.
    let original_host = parts.uri.authority().and_then(|authority| {
        let host = authority.as_str().rsplit('@').next().unwrap_or_default();
        HeaderValue::from_str(host).ok()
    });
    parts.uri = upstream_uri(route, guard, &parts.uri)?;
    let via = via_entry(parts.version);
    let from_http2 = parts.version == Version::HTTP_2;
    parts.version = Version::HTTP_11;
    let headers = &mut parts.headers;
    remove_hop_by_hop(headers, &[&route.admission.trust.header]);
    if from_http2 && !http2 {
        join_cookies(headers);
    }
    if http2 {
        // HTTP/2 names the host in :authority, which is the endpoint's address here; a Host
        // that disagrees with it makes the request malformed (RFC 9113 §8.3.1), so the
        // client's host travels in X-Forwarded-Host instead.
        let host = headers.remove(header::HOST).or(original_host);
        if let Some(host) = host {
            headers.insert(HeaderName::from_static("x-forwarded-host"), host);
        }
    } else if !headers.contains_key(header::HOST)
        && let Some(host) = original_host
    {
        // An HTTP/2 client names the host in :authority; an HTTP/1.1 upstream needs Host.
        headers.insert(header::HOST, host);
    }
    let proto = HeaderValue::from_static(if downstream.tls { "https" } else { "http" });
    if seen.forwarded {
        // A trusted client's forwarding headers travel on (an untrusted one's were removed
        // as the request arrived, see `remove_forwarding`); this hop joins its `Forwarded`.
        append_forwarded(headers, downstream);
    }
    let mut added = AddedHeaders::default();
    let edits = &route.request_headers;
    if edits.is_empty() {
        match seen.forwarded_for {
            true => append_forwarded_for(headers, downstream.peer, true),
            false => added.push(X_FORWARDED_FOR, peer_value(downstream.peer.ip())),
        }
        match seen.forwarded_proto {
            true => drop(headers.insert(X_FORWARDED_PROTO, proto)),
            false => added.push(X_FORWARDED_PROTO, proto),
        }
        added.push(header::VIA, via);
    } else {
        // The route's edits may name any of these: they see them in the map.
        append_forwarded_for(headers, downstream.peer, seen.forwarded_for);
        headers.insert(X_FORWARDED_PROTO, proto);
        headers.append(header::VIA, via);
        apply(edits, headers);
    }
    Some((Request::from_parts(parts, body), added))
}

/// The URI the upstream is sent: the endpoint's authority, and the path (rewritten if the
/// route says so) and query of the request.
/// `None` when it cannot be built; the caller then refuses the request, since falling back
/// to the client's own URI would send an absolute-form request wherever the client names.
fn upstream_uri(route: &RouteConfig, guard: &EndpointGuard, uri: &Uri) -> Option<Uri> {
    let authority = guard.endpoint().authority().clone();
    // NOTE: without a rewrite the request's own path and query are reused as they are (a
    // shared buffer, not a copy), which is what building from their text would give.
    if route.rewrite_prefix.is_none()
        && let Some(path_and_query) = uri.path_and_query()
    {
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(http::uri::Scheme::HTTP);
        parts.authority = Some(authority.clone());
        parts.path_and_query = Some(path_and_query.clone());
        if let Ok(rebuilt) = Uri::from_parts(parts) {
            return Some(rebuilt);
        }
    }
    Uri::builder()
        .scheme("http")
        .authority(authority)
        .path_and_query(rewritten_path(route, uri)?)
        .build()
        .ok()
}

/// The path and query the endpoint gets on a route with `rewrite_prefix`: the route's prefix
/// replaced, the result normalized again. `None` when it would leave the replacement.
///
/// Why again: the client's path was normalized before routing, but a prefix that ends inside
/// a segment (`/r`) leaves the rest of that segment (`..` of `/r..`) to be joined to the
/// replacement, where it becomes a dot segment (`/api/` + `../admin`): the endpoint would
/// resolve it to a path outside the replacement, which the route never meant to reach.
fn rewritten_path(route: &RouteConfig, uri: &Uri) -> Option<String> {
    let path = uri.path();
    let rewritten = match (&route.rewrite_prefix, &route.matcher.path) {
        (Some(replacement), PathMatch::Prefix(prefix)) => {
            // Where the route's prefix ends however the path spelt it (parameters, case).
            let end = RoutedPath::new(path).prefix_end(prefix, route.matcher.case_sensitive);
            match end.and_then(|end| path.get(end..)) {
                Some(rest) => {
                    let mut joined = format!("{replacement}{rest}");
                    if !joined.starts_with('/') {
                        joined.insert(0, '/');
                    }
                    let replaced = joined.len() - rest.len();
                    // `%2F` was refused, decoded or kept by the listener already: kept.
                    match normalized(&joined, EscapedSlashes::Keep).ok()? {
                        None => joined,
                        Some(normal) if normal.starts_with(&joined[..replaced]) => normal,
                        Some(_) => return None,
                    }
                }
                None => path.to_owned(),
            }
        }
        _ => path.to_owned(),
    };
    Some(match uri.query() {
        Some(query) => format!("{rewritten}?{query}"),
        None => rewritten,
    })
}

/// The endpoint's response as the client should see it; its body holds `guard` and, when
/// the attempt is `unjudged`, records its verdict when it ends (see [`answer::HoldingEndpoint`]).
pub(crate) fn downstream_response(
    route: &RouteConfig,
    response: Response<UpstreamBody>,
    guard: EndpointGuard,
    unjudged: Option<Unjudged>,
) -> Response<ProxyBody> {
    let (mut parts, body) = response.into_parts();
    let via = via_entry(parts.version);
    // NOTE: an HTTP/1.1 head arrives without them (`upstream::h1` leaves them out as it
    // builds the map), which saves a walk over every response's headers.
    if !matches!(body, UpstreamBody::Http1(_)) {
        remove_hop_by_hop(&mut parts.headers, &[]);
    }
    parts.headers.append(header::VIA, via);
    apply(&route.response_headers, &mut parts.headers);
    let body = holding_endpoint(body, guard, unjudged);
    Response::from_parts(parts, body.boxed())
}

fn via_entry(version: Version) -> HeaderValue {
    HeaderValue::from_static(match version {
        Version::HTTP_2 => "2 blastwall",
        Version::HTTP_10 => "1.0 blastwall",
        _ => "1.1 blastwall",
    })
}

/// Which of the request headers the proxy reads a request has, found when it arrives.
// NOTE: so that the stages that read them do not look up (hashing the name of) headers
// most requests do not have; see `crate::headers`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Seen {
    /// `X-Request-Id`.
    pub request_id: bool,
    /// `X-Forwarded-For`.
    pub forwarded_for: bool,
    /// `X-Forwarded-Proto`.
    pub forwarded_proto: bool,
    /// Any of the forwarding headers only a trusted client may send ([`FORWARDING`](crate::headers::forwarding::FORWARDING)).
    pub forwarded: bool,
    /// The caller's deadline header (`proxy.deadline_header`).
    pub deadline: bool,
    /// The route's priority header.
    pub priority: bool,
    /// `X-Blastwall-Debug`.
    pub debug: bool,
}

impl Seen {
    pub(crate) fn of(
        headers: &HeaderMap,
        deadline: &HeaderName,
        priority: &HeaderName,
        debug: &HeaderName,
    ) -> Self {
        let (found, forwarded) = crate::headers::find_also(
            headers,
            [
                &REQUEST_ID,
                &X_FORWARDED_FOR,
                &X_FORWARDED_PROTO,
                deadline,
                priority,
                debug,
            ],
            is_forwarding,
        );
        let [
            request_id,
            forwarded_for,
            forwarded_proto,
            deadline,
            priority,
            debug,
        ] = found.map(|found| found.first.is_some());
        Self {
            request_id,
            forwarded_for,
            forwarded_proto,
            forwarded,
            deadline,
            priority,
            debug,
        }
    }
}

/// Adds this hop (`for=` the peer, `proto=` the client's scheme) to a trusted client's
/// `Forwarded` list, if it sent one (RFC 7239 §7.1); as `X-Forwarded-For` is extended.
fn append_forwarded(headers: &mut HeaderMap, downstream: Downstream) {
    let Some(earlier) = headers
        .get(header::FORWARDED)
        .and_then(|value| value.to_str().ok())
    else {
        return;
    };
    let proto = if downstream.tls { "https" } else { "http" };
    // An IPv6 address is quoted and bracketed (RFC 7239 §6).
    let hop = match downstream.peer.ip() {
        IpAddr::V4(ip) => format!("for={ip};proto={proto}"),
        IpAddr::V6(ip) => format!("for=\"[{ip}]\";proto={proto}"),
    };
    let value = if earlier.trim().is_empty() {
        HeaderValue::from_str(&hop)
    } else {
        HeaderValue::from_str(&format!("{earlier}, {hop}"))
    };
    if let Ok(value) = value {
        headers.insert(header::FORWARDED, value);
    }
}

/// Joins the `Cookie` fields an HTTP/2 client may split into one, with `"; "`, as RFC 9113
/// §8.2.3 asks before the request goes on over HTTP/1.1 (where a second `Cookie` line is
/// not allowed, and servers read only one of them).
fn join_cookies(headers: &mut HeaderMap) {
    let mut cookies = headers.get_all(header::COOKIE).iter();
    let (Some(first), Some(_)) = (cookies.next(), cookies.next()) else {
        return;
    };
    let mut joined = first.as_bytes().to_vec();
    for cookie in headers.get_all(header::COOKIE).iter().skip(1) {
        joined.extend_from_slice(b"; ");
        joined.extend_from_slice(cookie.as_bytes());
    }
    // NOTE: each part was a valid value, and "; " is too, so the whole is one.
    if let Ok(joined) = HeaderValue::from_bytes(&joined) {
        headers.insert(header::COOKIE, joined);
    }
}

/// Appends the peer to `X-Forwarded-For`; `sent` says whether the request has the header
/// at all ([`Seen::forwarded_for`]).
fn append_forwarded_for(headers: &mut HeaderMap, peer: SocketAddr, sent: bool) {
    let earlier = if sent {
        headers
            .get(X_FORWARDED_FOR)
            .and_then(|value| value.to_str().ok())
    } else {
        None
    };
    let value = match earlier {
        Some(earlier) if !earlier.trim().is_empty() => {
            HeaderValue::from_str(&format!("{earlier}, {}", peer.ip()))
        }
        _ => Ok(peer_value(peer.ip())),
    };
    if let Ok(value) = value {
        headers.insert(X_FORWARDED_FOR, value);
    }
}

/// `ip` as a header value.
// NOTE: the last one made on this thread is kept and shared (a reference count): a sidecar
// hears one client, and a proxy behind a load balancer a few, so most requests come from
// the address the one before came from, and writing it out anew costs ~250 instructions.
fn peer_value(ip: IpAddr) -> HeaderValue {
    thread_local! {
        static LAST: RefCell<Option<(IpAddr, HeaderValue)>> = const { RefCell::new(None) };
    }
    last_made(&LAST, ip, |ip| {
        let mut buffer = [0u8; 15];
        match ip {
            IpAddr::V4(ip) => shared_value(crate::headers::ipv4_text(ip, &mut buffer)),
            IpAddr::V6(ip) => shared_value(ip.to_string().as_bytes()),
        }
        .expect("an address's text is a valid header value")
    })
}

/// The value made for `key` the last time on this thread, kept in `last`, or, for another
/// key, `make(key)`, which is then kept instead. For values that repeat from one request to
/// the next: a clone only counts a reference.
pub(crate) fn last_made<K: Copy + PartialEq>(
    last: &'static std::thread::LocalKey<RefCell<Option<(K, HeaderValue)>>>,
    key: K,
    make: impl FnOnce(K) -> HeaderValue,
) -> HeaderValue {
    last.with_borrow_mut(|last| match last {
        Some((kept, value)) if *kept == key => value.clone(),
        _ => last.insert((key, make(key))).1.clone(),
    })
}

fn apply(edits: &HeaderEdits, headers: &mut HeaderMap) {
    for name in &edits.remove {
        headers.remove(name);
    }
    for (name, value) in &edits.add {
        headers.insert(name.clone(), value.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::headers::forwarding::FORWARDING;

    #[test]
    fn an_http2_clients_cookie_fields_go_to_http1_as_one() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("a=1"));
        join_cookies(&mut headers);
        assert_eq!(headers[header::COOKIE], "a=1");
        headers.append(header::COOKIE, HeaderValue::from_static("b=2"));
        headers.append(header::COOKIE, HeaderValue::from_static("c=3"));
        join_cookies(&mut headers);
        assert_eq!(headers.get_all(header::COOKIE).iter().count(), 1);
        assert_eq!(headers[header::COOKIE], "a=1; b=2; c=3");
    }

    #[test]
    fn forwarded_for_appends_the_client() {
        let mut headers = HeaderMap::new();
        let peer: SocketAddr = "10.1.2.3:5555".parse().unwrap();
        append_forwarded_for(&mut headers, peer, false);
        assert_eq!(headers["x-forwarded-for"], "10.1.2.3");
        append_forwarded_for(&mut headers, "192.0.2.9:1".parse().unwrap(), true);
        assert_eq!(headers["x-forwarded-for"], "10.1.2.3, 192.0.2.9");
    }

    #[test]
    fn a_trusted_clients_forwarded_list_gets_this_hop_appended() {
        let mut headers = HeaderMap::new();
        let plain = Downstream {
            peer: "10.1.2.3:5555".parse().unwrap(),
            tls: false,
        };
        append_forwarded(&mut headers, plain);
        assert!(
            headers.is_empty(),
            "nothing is added to a request without one"
        );
        headers.insert(header::FORWARDED, HeaderValue::from_static("for=192.0.2.1"));
        append_forwarded(&mut headers, plain);
        assert_eq!(
            headers[header::FORWARDED],
            "for=192.0.2.1, for=10.1.2.3;proto=http"
        );
        let v6 = Downstream {
            peer: "[2001:db8::1]:443".parse().unwrap(),
            tls: true,
        };
        append_forwarded(&mut headers, v6);
        assert_eq!(
            headers[header::FORWARDED],
            "for=192.0.2.1, for=10.1.2.3;proto=http, for=\"[2001:db8::1]\";proto=https"
        );
        crate::headers::forwarding::remove_forwarding(&mut headers);
        assert!(headers.is_empty());
        for name in &FORWARDING {
            assert!(is_forwarding(name.as_str()), "{name}");
        }
        for other in [
            "x-forwarded-for",
            "x-forwarded-proto",
            "x-forwarded",
            "forward",
        ] {
            assert!(!is_forwarding(other), "{other}");
        }
    }

    const DEADLINE: HeaderName = HeaderName::from_static("x-deadline-ms");
    const PRIORITY: HeaderName = HeaderName::from_static("x-prio");
    const DEBUG: HeaderName = HeaderName::from_static("x-debug");

    /// What [`Seen::of`] should find, by looking each header up.
    fn seen_by_lookup(headers: &HeaderMap) -> Seen {
        Seen {
            request_id: headers.contains_key(REQUEST_ID),
            forwarded_for: headers.contains_key(X_FORWARDED_FOR),
            forwarded_proto: headers.contains_key(X_FORWARDED_PROTO),
            forwarded: FORWARDING.iter().any(|name| headers.contains_key(name)),
            deadline: headers.contains_key(DEADLINE),
            priority: headers.contains_key(PRIORITY),
            debug: headers.contains_key(DEBUG),
        }
    }

    #[test]
    fn seen_finds_the_headers_a_lookup_finds() {
        let mut headers = HeaderMap::new();
        let none = Seen::of(&headers, &DEADLINE, &PRIORITY, &DEBUG);
        assert_eq!(none, Seen::default());
        for name in [
            "x-request-id",
            "X-Forwarded-For",
            "x-forwarded-proto",
            "x-deadline-ms",
            "x-prio",
            "x-debug",
            "x-forwarded-prefix",
        ] {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_static("1"),
            );
        }
        headers.append(header::HOST, HeaderValue::from_static("a"));
        let seen = Seen::of(&headers, &DEADLINE, &PRIORITY, &DEBUG);
        assert_eq!(seen, seen_by_lookup(&headers));
        assert!(
            seen.request_id
                && seen.forwarded_for
                && seen.forwarded_proto
                && seen.deadline
                && seen.priority
                && seen.debug
                && seen.forwarded
        );
    }

    proptest::proptest! {
        #[test]
        fn seen_agrees_with_lookups(names in proptest::collection::vec(
            proptest::sample::select(vec![
                "x-request-id", "x-forwarded-for", "x-forwarded-proto", "x-deadline-ms", "x-prio",
                "x-debug",
                "connection", "keep-alive", "proxy-connection", "proxy-authenticate",
                "proxy-authorization", "transfer-encoding", "upgrade", "te", "host",
                "x-request-ie", "x-forwarded-fo", "x-prix", "accept", "x-debugs", "trailer",
                "x-forwarded-host", "x-forwarded-port", "x-forwarded-prefix", "forwarded",
                "x-forwarded-hos", "forwarde",
            ]),
            // Past `SCAN_UP_TO` distinct names, `find` looks them up instead.
            0..24,
        )) {
            let mut headers = HeaderMap::new();
            for name in names {
                headers.append(HeaderName::from_static(name), HeaderValue::from_static("1"));
            }
            let seen = Seen::of(&headers, &DEADLINE, &PRIORITY, &DEBUG);
            proptest::prop_assert_eq!(seen, seen_by_lookup(&headers));
        }
    }

    #[test]
    fn the_peer_value_is_the_address_of_each_peer() {
        for ip in [
            "10.0.0.1",
            "10.0.0.1",
            "::1",
            "192.0.2.7",
            "::1",
            "10.0.0.1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(peer_value(ip), ip.to_string());
        }
    }

    #[test]
    fn request_ids_are_kept_or_created_unique() {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID, HeaderValue::from_static("abc"));
        assert_eq!(ensure_request_id(&mut headers, true), "abc");
        let (mut first, mut second) = (HeaderMap::new(), HeaderMap::new());
        let (a, b) = (
            ensure_request_id(&mut first, false),
            ensure_request_id(&mut second, false),
        );
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert_eq!(first[REQUEST_ID], a);
    }

    #[test]
    fn values_stay_whole_across_the_chunks_they_are_cut_from() {
        let long = [b'a'; 3000];
        assert_eq!(shared_value(&long).unwrap().as_bytes(), &long[..]);
        assert!(shared_value(b"bad\n").is_err());
        let ids: Vec<HeaderValue> = (0..1000)
            .map(|_| ensure_request_id(&mut HeaderMap::new(), false))
            .collect();
        let distinct: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
        for id in &ids {
            assert_eq!(id.len(), 32);
            assert!(id.as_bytes().iter().all(u8::is_ascii_hexdigit));
        }
    }
}
