//! Hop-by-hop headers: what describes one connection, not the message, and so never travels
//! on (RFC 9110 §7.6.1), in requests and responses alike.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use super::{ERROR_HEADER, REQUEST_ID, X_FORWARDED_FOR, X_FORWARDED_PROTO};

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1), plus any the
/// `Connection` header names, and the credentials meant for this proxy
/// (`Proxy-Authorization`, which must not travel on). `Trailer` is end to end: removing it
/// would make hyper drop the trailers it announces.
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Headers a `Connection` option cannot remove. RFC 9110 §7.6.1 has a proxy remove the
/// fields its `Connection` header names, but a sender must not name a field meant for every
/// recipient, and these are: `Host` routes the message and `Content-Length` frames it (taking
/// either away would let a client, or an endpoint, change how the next hop reads the
/// message), `TE` and `Trailer` follow their own rules (`TE: trailers` goes on; `Trailer`
/// announces trailers end to end), and the rest are what the proxy itself writes or reads
/// for the next hop (the request id, forwarding headers, the trace context). A request or
/// response that names them is not refused: `Connection: TE` is what RFC 9110 §10.1.4 asks
/// of a client that sends `TE`, so real clients send it. The option is ignored instead.
// NOTE: `Transfer-Encoding` is missing: it is hop by hop, always removed, and each side
// writes its own framing.
const NOT_NAMEABLE: [HeaderName; 13] = [
    header::HOST,
    header::CONTENT_LENGTH,
    header::TE,
    header::TRAILER,
    REQUEST_ID,
    X_FORWARDED_FOR,
    X_FORWARDED_PROTO,
    HeaderName::from_static("x-forwarded-host"),
    header::FORWARDED,
    header::VIA,
    HeaderName::from_static("traceparent"),
    HeaderName::from_static("tracestate"),
    ERROR_HEADER,
];

/// Removes hop-by-hop headers; `TE: trailers` alone survives, as gRPC needs it end to end.
/// The headers `Connection` names go too, except those in [`NOT_NAMEABLE`] and `keep` (the
/// configured headers the proxy writes for the next hop, such as its priority header).
pub(crate) fn remove_hop_by_hop(headers: &mut HeaderMap, keep: &[&HeaderName]) {
    // NOTE: one pass over the names finds which of these headers are present (comparing
    // names is cheap; looking each one up would hash it), and only those are removed. Most
    // requests have none; most responses only `Connection`.
    let mut present = [false; 7];
    let mut te = false;
    for name in headers.keys() {
        match hop_by_hop_index(name.as_str()) {
            Some(index) if index < HOP_BY_HOP.len() => present[index] = true,
            Some(_) => te = true,
            None => {}
        }
    }
    // Index 0 is `Connection`: other headers it names go too (without allocating unless
    // one of them is there).
    let mut named: Vec<HeaderName> = Vec::new();
    if present[0] {
        // NOTE: the options nearly every message carries name no header to look for; an
        // unknown name would be parsed (and allocated) only to be found absent. A value that
        // is one of them alone, as most are, is not even split.
        let names_none = |option: &str| {
            option.eq_ignore_ascii_case("keep-alive") || option.eq_ignore_ascii_case("close")
        };
        for value in &headers.get_all(header::CONNECTION) {
            let Ok(value) = value.to_str() else {
                continue;
            };
            if names_none(value) {
                continue;
            }
            for option in value.split(',').map(str::trim) {
                if !names_none(option)
                    && let Ok(name) = HeaderName::from_bytes(option.as_bytes())
                    && !HOP_BY_HOP.contains(&name)
                    && !NOT_NAMEABLE.contains(&name)
                    && !keep.contains(&&name)
                    && headers.contains_key(&name)
                {
                    named.push(name);
                }
            }
        }
    }
    for name in &named {
        headers.remove(name);
    }
    for (name, present) in HOP_BY_HOP.iter().zip(present) {
        if present {
            headers.remove(name);
        }
    }
    if te {
        let keep_te_trailers = headers
            .get_all(header::TE)
            .iter()
            .any(|value| value.as_bytes().eq_ignore_ascii_case(b"trailers"));
        headers.remove(header::TE);
        if keep_te_trailers {
            headers.insert(header::TE, HeaderValue::from_static("trailers"));
        }
    }
}

/// `name`'s place in [`HOP_BY_HOP`], or `HOP_BY_HOP.len()` for `TE`; `None` for the rest.
// NOTE: by the name's text, which a match compares by length first: nearly every name is
// none of these, and comparing it to eight header names in turn cost about 80 instructions
// a name.
pub(crate) fn hop_by_hop_index(name: &str) -> Option<usize> {
    match name {
        "connection" => Some(0),
        "keep-alive" => Some(1),
        "proxy-connection" => Some(2),
        "proxy-authenticate" => Some(3),
        "proxy-authorization" => Some(4),
        "transfer-encoding" => Some(5),
        "upgrade" => Some(6),
        "te" => Some(7),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_removed() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        headers.insert("x-secret", HeaderValue::from_static("1"));
        headers.append(header::CONNECTION, HeaderValue::from_static("close"));
        headers.append(
            header::CONNECTION,
            HeaderValue::from_static("x-other ,Keep-Alive"),
        );
        headers.insert("x-other", HeaderValue::from_static("2"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert("x-kept", HeaderValue::from_static("1"));
        remove_hop_by_hop(&mut headers, &[]);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key("x-kept"));
    }

    #[test]
    fn connection_cannot_name_away_host_framing_or_the_proxys_own_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static(
                "host, content-length, TE, trailer, x-forwarded-for, x-request-id, \
                 traceparent, x-prio, x-secret",
            ),
        );
        for (name, value) in [
            ("host", "shop.example"),
            ("content-length", "5"),
            ("te", "trailers"),
            ("trailer", "x-sum"),
            ("x-forwarded-for", "10.0.0.1"),
            ("x-request-id", "abc"),
            (
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
            ("x-prio", "high"),
            ("x-secret", "1"),
        ] {
            headers.insert(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        // The route's priority header, which the proxy writes for the next hop.
        remove_hop_by_hop(&mut headers, &[&HeaderName::from_static("x-prio")]);
        assert!(
            !headers.contains_key("x-secret"),
            "an ordinary named header goes"
        );
        assert!(!headers.contains_key(header::CONNECTION));
        for name in [
            "host",
            "content-length",
            "te",
            "trailer",
            "x-forwarded-for",
            "x-request-id",
            "traceparent",
            "x-prio",
        ] {
            assert!(headers.contains_key(name), "{name} was removed");
        }
        assert_eq!(headers[header::TE], "trailers");
    }

    #[test]
    fn te_trailers_survives_other_te_values_do_not() {
        let mut headers = HeaderMap::new();
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
        remove_hop_by_hop(&mut headers, &[]);
        assert_eq!(headers[header::TE], "trailers");
        let mut headers = HeaderMap::new();
        headers.insert(header::TE, HeaderValue::from_static("gzip"));
        remove_hop_by_hop(&mut headers, &[]);
        assert!(!headers.contains_key(header::TE));
    }

    #[test]
    fn hop_by_hop_names_are_known_by_their_text() {
        for (index, name) in HOP_BY_HOP.iter().enumerate() {
            assert_eq!(hop_by_hop_index(name.as_str()), Some(index), "{name}");
        }
        assert_eq!(
            hop_by_hop_index(header::TE.as_str()),
            Some(HOP_BY_HOP.len())
        );
        for other in ["host", "user-agent", "connections", "t", "x-forwarded-for"] {
            assert_eq!(hop_by_hop_index(other), None, "{other}");
        }
    }
}
