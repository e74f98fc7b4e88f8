//! The headers the proxy writes and reads: their names, the hop-by-hop rules
//! ([`hop_by_hop`]), and finding the few it reads (the request id, `X-Forwarded-For`, the
//! deadline and priority headers, `traceparent`, its own marks on a response) by comparing
//! names rather than hashing them.
//!
//! NOTE: `HeaderMap::get` hashes the name it looks for, and for a name the HTTP standard
//! does not define, as all of these are, that is a loop over its bytes: some 110–150
//! instructions a lookup, found or not, against about a dozen to compare the name of one
//! header. A request or response has a handful of headers, so up to [`SCAN_UP_TO`] of them
//! one pass compares every distinct name (and looks up the values of a name found, which is
//! rare); past that, lookups cost less and are used.

use std::net::Ipv4Addr;

use http::{HeaderMap, HeaderName, HeaderValue};

pub(crate) mod forwarding;
pub(crate) mod hop_by_hop;

pub(crate) use self::hop_by_hop::hop_by_hop_index;
pub(crate) use self::hop_by_hop::remove_hop_by_hop;

/// The request id header, kept when a client sends one and created otherwise.
pub(crate) const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Names why the proxy answered itself, on every response it makes.
pub(crate) const ERROR_HEADER: HeaderName = HeaderName::from_static("x-blastwall-error");

/// Names the fallback that answered ([`crate::record::FallbackKind`]), on the responses that
/// say what the proxy decided (`proxy.decision_headers`).
pub(crate) const FALLBACK_HEADER: HeaderName = HeaderName::from_static("x-blastwall-fallback");

/// Who the request came through: the proxy appends the peer for every client.
pub(crate) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// The client's scheme: the proxy writes it for every client.
pub(crate) const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Header lines the proxy adds to a request for its endpoint, kept out of the request's
/// header map: the HTTP/1.1 client writes them after the map's own lines, and the HTTP/2
/// client appends them to the map. Only lines that replace nothing go here (the request
/// has no header of the name, or the header is a list, as `Via` is), and only when the
/// route's own header edits leave the name alone.
// NOTE: kept apart because inserting into the map costs ~230 instructions a header
// (hashing the name, probing, a bucket), four headers a request, where writing a line out
// costs the same from here as from the map. A `Vec`, not an inline array: the lines travel
// inside futures that are moved (copied) several times, and one allocation costs less.
#[derive(Debug, Default)]
pub(crate) struct AddedHeaders(Vec<(HeaderName, HeaderValue)>);

impl AddedHeaders {
    /// Adds a line after those already added.
    pub(crate) fn push(&mut self, name: HeaderName, value: HeaderValue) {
        self.0.push((name, value));
    }

    /// The lines, in the order they were added.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
        self.0.iter().map(|(name, value)| (name, value))
    }

    /// Moves the lines into `headers`, each appended after any of its name.
    pub(crate) fn append_to(self, headers: &mut HeaderMap) {
        for (name, value) in self.0 {
            headers.append(name, value);
        }
    }
}

/// Headers up to which [`find`] compares names rather than looking them up.
pub(crate) const SCAN_UP_TO: usize = 16;

/// What [`find`] found of one name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Found<'a> {
    /// Its first value.
    pub first: Option<&'a HeaderValue>,
    /// Whether it has more than one.
    pub repeated: bool,
}

/// Each of `names` in `headers`.
pub(crate) fn find<'a, const N: usize>(
    headers: &'a HeaderMap,
    names: [&HeaderName; N],
) -> [Found<'a>; N] {
    if headers.len() > SCAN_UP_TO {
        return names.map(|name| lookup(headers, name));
    }
    let mut found = [Found::default(); N];
    // Each name once (its values, in the rare case it is there, by lookup).
    for name in headers.keys() {
        if let Some(at) = names.iter().position(|wanted| *wanted == name) {
            found[at] = lookup(headers, names[at]);
        }
    }
    found
}

/// [`find`], and whether any header not among `names` is one whose name `also` accepts: for
/// names only checked for (none of their values is read) that nearly every request lacks.
// NOTE: `also` is meant to be a `match` on the name's text, which compares by length first,
// so most names cost next to nothing; each name added to `find` instead costs a comparison
// for every header (four more names measured at more than twice the cost of the walk).
pub(crate) fn find_also<'a, const N: usize>(
    headers: &'a HeaderMap,
    names: [&HeaderName; N],
    also: impl Fn(&str) -> bool,
) -> ([Found<'a>; N], bool) {
    if headers.len() > SCAN_UP_TO {
        let any = headers.keys().any(|name| also(name.as_str()));
        return (names.map(|name| lookup(headers, name)), any);
    }
    let mut found = [Found::default(); N];
    let mut any = false;
    for name in headers.keys() {
        if let Some(at) = names.iter().position(|wanted| *wanted == name) {
            found[at] = lookup(headers, names[at]);
        } else if also(name.as_str()) {
            any = true;
        }
    }
    (found, any)
}

/// What `headers` holds of `name`, looked up.
fn lookup<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Found<'a> {
    let mut values = headers.get_all(name).iter();
    Found {
        first: values.next(),
        repeated: values.next().is_some(),
    }
}

/// A `Retry-After` value in whole seconds, rounded up (a client told 0 would retry at once).
pub(crate) fn retry_after_value(delay: std::time::Duration) -> HeaderValue {
    let seconds = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
    HeaderValue::from(seconds.max(1))
}

/// An IPv4 address in dotted decimal, as `Display` writes it, without the formatting
/// machinery (this runs for every request).
pub(crate) fn ipv4_text(ip: Ipv4Addr, buffer: &mut [u8; 15]) -> &[u8] {
    let mut len = 0;
    for (index, octet) in ip.octets().into_iter().enumerate() {
        if index > 0 {
            buffer[len] = b'.';
            len += 1;
        }
        if octet >= 100 {
            buffer[len] = b'0' + octet / 100;
            len += 1;
        }
        if octet >= 10 {
            buffer[len] = b'0' + octet / 10 % 10;
            len += 1;
        }
        buffer[len] = b'0' + octet % 10;
        len += 1;
    }
    &buffer[..len]
}

#[cfg(test)]
mod tests {
    use http::header;

    use super::*;

    const WANTED: HeaderName = HeaderName::from_static("x-wanted");
    const TWICE: HeaderName = HeaderName::from_static("x-twice");
    const ABSENT: HeaderName = HeaderName::from_static("x-absent");

    #[test]
    fn ipv4_text_is_what_display_writes() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.30.40",
            "255.255.255.255",
            "1.100.9.99",
        ] {
            let ip: Ipv4Addr = ip.parse().unwrap();
            let mut buffer = [0u8; 15];
            assert_eq!(ipv4_text(ip, &mut buffer), ip.to_string().as_bytes());
        }
    }

    #[test]
    fn comparing_names_finds_what_lookups_find_with_few_or_many_headers() {
        for others in [0, 3, SCAN_UP_TO - 4, SCAN_UP_TO, 40] {
            let mut headers = HeaderMap::new();
            headers.insert(header::SERVER, HeaderValue::from_static("nginx"));
            headers.append(TWICE, HeaderValue::from_static("1"));
            headers.insert(WANTED, HeaderValue::from_static("yes"));
            headers.append(TWICE, HeaderValue::from_static("2"));
            for n in 0..others {
                let name = HeaderName::try_from(format!("x-other-{n}")).unwrap();
                headers.insert(name, HeaderValue::from_static("other"));
            }
            let [wanted, twice, absent] = find(&headers, [&WANTED, &TWICE, &ABSENT]);
            let with = headers.len();
            assert_eq!(
                wanted.first,
                Some(&HeaderValue::from_static("yes")),
                "{with}"
            );
            assert!(!wanted.repeated, "{with}");
            assert_eq!(twice.first, Some(&HeaderValue::from_static("1")), "{with}");
            assert!(twice.repeated, "{with}");
            assert_eq!(absent, Found::default(), "{with}");
            let also = |name: &str| matches!(name, "server" | "x-other-0");
            let ([wanted_too], any) = find_also(&headers, [&WANTED], also);
            assert_eq!(wanted_too, wanted, "{with}");
            assert!(any, "{with}");
            let (_, none) = find_also(&headers, [&WANTED], |name| name == "x-absent");
            assert!(!none, "{with}");
        }
    }
}
