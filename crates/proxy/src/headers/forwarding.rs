//! The forwarding headers only a trusted client may send: where a request was first sent,
//! who sent it, what it first asked for.

use http::header::{self, HeaderMap, HeaderName};

/// Forwarding headers that name where the request was first sent, who sent it, or what it
/// first asked for (`X-Forwarded-Host`, `-Port`, `-Prefix`, `-Ssl`, `-Scheme`, `-Server`,
/// `Forwarded`, `X-Host`, `X-Original-Host`; `X-Real-IP`, `True-Client-IP`, `X-Client-IP`;
/// `X-Original-URL`, `X-Rewrite-URL`): upstreams (frameworks, IIS, Rack) build links,
/// redirects, access rules and even the routed path from them, so a client that could write
/// them could make the upstream answer for another site, address or path, an answer the
/// stale cache would then keep for everyone. They are taken only from `trusted_clients`
/// (like the deadline and priority headers), and are then part of the cache's key.
///
/// The other two are the proxy's to write for every client: `X-Forwarded-For` gets the
/// peer appended (an upstream trusts its last element, which is always the truth) and
/// `X-Forwarded-Proto` is replaced.
pub(crate) const FORWARDING: [HeaderName; 14] = [
    HeaderName::from_static("x-forwarded-host"),
    HeaderName::from_static("x-forwarded-port"),
    HeaderName::from_static("x-forwarded-prefix"),
    HeaderName::from_static("x-forwarded-ssl"),
    HeaderName::from_static("x-forwarded-scheme"),
    HeaderName::from_static("x-forwarded-server"),
    header::FORWARDED,
    HeaderName::from_static("x-host"),
    HeaderName::from_static("x-original-host"),
    HeaderName::from_static("x-real-ip"),
    HeaderName::from_static("true-client-ip"),
    HeaderName::from_static("x-client-ip"),
    HeaderName::from_static("x-original-url"),
    HeaderName::from_static("x-rewrite-url"),
];

/// Whether `name` is one of [`FORWARDING`], by its text (see `super::find_also`).
pub(crate) fn is_forwarding(name: &str) -> bool {
    matches!(
        name,
        "x-forwarded-host"
            | "x-forwarded-port"
            | "x-forwarded-prefix"
            | "x-forwarded-ssl"
            | "x-forwarded-scheme"
            | "x-forwarded-server"
            | "forwarded"
            | "x-host"
            | "x-original-host"
            | "x-real-ip"
            | "true-client-ip"
            | "x-client-ip"
            | "x-original-url"
            | "x-rewrite-url"
    )
}

/// Removes the [`FORWARDING`] headers: an untrusted client's, as its request arrives.
pub(crate) fn remove_forwarding(headers: &mut HeaderMap) {
    for name in &FORWARDING {
        headers.remove(name);
    }
}
