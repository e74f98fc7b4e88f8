//! Which header fields may travel where, by name: the rules both ends of the proxy share
//! for fields a sender may not use to change how the message is framed, routed or handled.
//!
//! Trailers ([`trailer_allowed`]): RFC 9110 §6.5.1 lets a trailer carry only what can be
//! processed after the content. A recipient that merges trailers into the header section
//! (as many servers and frameworks do) would otherwise let a field the proxy never checked
//! — a second `Content-Length`, a `Host` the route was not chosen by, credentials, a
//! `Content-Type` the content was not read as — arrive after the checks. So the trailers
//! the proxy passes on, either way, are filtered by name where they are born: framing,
//! routing, hop-by-hop, authentication, cookies, the fields that say how to process the
//! content, request modifiers and response control data are dropped; anything else goes on.
//!
//! Look-alikes ([`framing_look_alike`]): a name that differs from `Content-Length` or
//! `Transfer-Encoding` only by `_` for `-`. Servers that map names to CGI-style variables
//! (`HTTP_CONTENT_LENGTH`) read both names as one, so a look-alike is a second, unchecked
//! framing header for them. nginx drops every name with `_` by default; the proxy refuses
//! only these two (with 400), as other names with `_` are legal and in use.
//!
//! Every check compares the name's length first, so a name that is none of these costs a
//! comparison or two.

use http::HeaderMap;
use http::header::HeaderName;

/// Whether a field of this name may be passed on as a trailer (RFC 9110 §6.5.1).
pub(crate) fn trailer_allowed(name: &HeaderName) -> bool {
    let name = name.as_str();
    // NOTE: `HeaderName`s are lower case, so the text compares exactly.
    if name.starts_with("proxy-") || name.starts_with("if-") {
        // Proxy credentials and hop-by-hop fields; conditionals.
        return false;
    }
    if framing_look_alike(name.as_bytes()) {
        return false;
    }
    !matches!(
        name,
        // Framing and routing.
        "content-length" | "transfer-encoding" | "host" | "trailer"
        // How to process the content. (`Content-Digest` is not among them: RFC 9530 has
        // it sent as a trailer when the content is streamed.)
        | "content-type" | "content-encoding" | "content-range" | "content-location"
        | "content-language" | "content-disposition"
        // Hop by hop.
        | "connection" | "keep-alive" | "te" | "upgrade"
        // Authentication and cookies.
        | "authorization" | "www-authenticate" | "authentication-info" | "cookie"
        | "set-cookie"
        // Request modifiers.
        | "cache-control" | "expect" | "max-forwards" | "pragma" | "range"
        // Response control data.
        | "age" | "expires" | "date" | "location" | "retry-after" | "vary" | "warning"
    )
}

/// Drops from `trailers` every field [`trailer_allowed`] refuses (without touching a map
/// that has none).
pub(crate) fn keep_allowed_trailers(trailers: &mut HeaderMap) {
    if trailers.keys().all(trailer_allowed) {
        return;
    }
    let all = std::mem::take(trailers);
    // `into_iter` names a field before its first value, and gives `None` for the rest.
    let mut current: Option<HeaderName> = None;
    for (name, value) in all {
        if let Some(name) = name {
            current = trailer_allowed(&name).then_some(name);
        }
        if let Some(name) = &current {
            trailers.append(name.clone(), value);
        }
    }
}

/// Whether `name` is `content-length` or `transfer-encoding` with `_` for some `-` (any
/// case), but not the name itself.
pub(crate) fn framing_look_alike(name: &[u8]) -> bool {
    const NAMES: [&[u8]; 2] = [b"content-length", b"transfer-encoding"];
    NAMES.iter().any(|wanted| {
        name.len() == wanted.len()
            && name.contains(&b'_')
            && name.iter().zip(wanted.iter()).all(|(&byte, &wanted)| {
                byte.eq_ignore_ascii_case(&wanted) || (byte == b'_' && wanted == b'-')
            })
    })
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn framing_routing_credentials_and_processing_fields_are_not_trailers() {
        for name in [
            "content-length",
            "transfer-encoding",
            "host",
            "trailer",
            "connection",
            "keep-alive",
            "te",
            "upgrade",
            "proxy-authorization",
            "proxy-connection",
            "authorization",
            "cookie",
            "set-cookie",
            "content-type",
            "content-encoding",
            "content-range",
            "cache-control",
            "if-none-match",
            "content_length",
            "transfer_encoding",
        ] {
            let name = HeaderName::from_static(name);
            assert!(!trailer_allowed(&name), "{name}");
        }
        for name in [
            "grpc-status",
            "grpc-message",
            "x-checksum",
            "server-timing",
            "content-digest",
        ] {
            let name = HeaderName::from_static(name);
            assert!(trailer_allowed(&name), "{name}");
        }
    }

    #[test]
    fn filtering_trailers_keeps_every_value_of_the_allowed_ones_in_order() {
        let mut trailers = HeaderMap::new();
        trailers.append("x-sum", HeaderValue::from_static("1"));
        trailers.append("content-length", HeaderValue::from_static("5"));
        trailers.append("x-sum", HeaderValue::from_static("2"));
        trailers.append("host", HeaderValue::from_static("evil"));
        trailers.append("grpc-status", HeaderValue::from_static("0"));
        keep_allowed_trailers(&mut trailers);
        assert_eq!(trailers.len(), 3);
        let sums: Vec<_> = trailers.get_all("x-sum").iter().collect();
        assert_eq!(sums, ["1", "2"]);
        assert_eq!(trailers["grpc-status"], "0");
    }

    #[test]
    fn look_alikes_of_the_framing_headers_are_told_apart_from_them() {
        for name in [
            "content_length",
            "Content_Length",
            "transfer_encoding",
            "Transfer_encoding",
        ] {
            let expected = name.contains('_');
            assert_eq!(framing_look_alike(name.as_bytes()), expected, "{name}");
        }
        for name in [
            "content-length",
            "x_content_length",
            "content_lengths",
            "x_y",
        ] {
            assert!(!framing_look_alike(name.as_bytes()), "{name}");
        }
    }
}
