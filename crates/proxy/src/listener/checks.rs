//! Request checks: what a request must be before the proxy forwards it.
//!
//! Two layers. [`check_head`] / [`locate_head`] read the raw bytes of an HTTP/1 request head
//! as the listener's server ([`super::h1`]) reads them off the socket, and refuse what
//! RFC 9112 calls ambiguous framing — the ground of request smuggling: both `Content-Length`
//! and `Transfer-Encoding`, conflicting or malformed lengths, `chunked` applied twice or
//! followed by another coding, `Transfer-Encoding` in HTTP/1.0, a look-alike of a framing
//! header (`Content_Length`, see [`crate::codec::framing_look_alike`]), header lines folded
//! (obs-fold) or with white space before the colon, and heads over the size or header-count
//! limits. They also say how the body is framed, so the server knows where the next head
//! starts.
//!
//! A transfer coding other than `chunked` (`gzip, chunked`) is refused with 501, as nginx
//! does (RFC 9112 §6.1 lets a server do so for a coding it does not implement): the proxy
//! decodes the chunked coding and writes the body out again, so it would have to undo and
//! redo the other coding too, or pass the body on without the coding it is in. Forwarding
//! `chunked` and dropping `gzip`, as the proxy did, hands the endpoint a body it cannot read.
//! [`check_parts`] runs on every request, HTTP/1 and HTTP/2 (from hyper) alike: Host must be
//! single, well formed and agree with an absolute-form target or `:authority`, no header may
//! be a look-alike of a framing header nor Content-Length come twice, the head must
//! fit the limits, and a declared body must fit `max_request_body`.
//!
//! Both are pure functions of their input, so they are unit tested here and fuzzed in
//! `fuzz/`.

use std::mem::MaybeUninit;

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Method, Version};

use crate::codec::{Span, Spans};
use crate::error::ProxyError;

/// Up to this many header lines are parsed into a stack array (the default limit is 100);
/// above, into a heap array.
const STACK_HEADERS: usize = 128;

/// The limits a request head is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadLimits {
    /// Largest head (request line and header lines), in bytes.
    pub max_header_bytes: usize,
    /// Most header lines.
    pub max_headers: usize,
    /// Largest declared body, in bytes.
    pub max_request_body: u64,
}

/// Why a request is refused, and what the client is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The kind, which decides the status.
    pub error: ProxyError,
    /// One line for the client and the log.
    pub reason: String,
}

impl Rejection {
    fn bad(reason: impl Into<String>) -> Self {
        Self {
            error: ProxyError::BadRequest,
            reason: reason.into(),
        }
    }

    fn not_implemented(reason: impl Into<String>) -> Self {
        Self {
            error: ProxyError::UnsupportedTransferCoding,
            reason: reason.into(),
        }
    }

    fn too_large(reason: impl Into<String>) -> Self {
        Self {
            error: ProxyError::RequestHeadersTooLarge,
            reason: reason.into(),
        }
    }
}

/// How the body after a head is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Exactly this many bytes (0: no body).
    Length(u64),
    /// Chunked: the end is found by decoding.
    Chunked,
    /// What follows may not be HTTP at all (CONNECT).
    Opaque,
}

/// The outcome of reading the bytes that start a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Head {
    /// The head is not complete yet, and so far within the limits.
    Partial,
    /// The head is the first `len` bytes, and its body is framed so.
    Complete {
        /// Bytes of the head, blank line included.
        len: usize,
        /// How the body is framed.
        framing: Framing,
    },
}

/// Checks the bytes that start an HTTP/1 request head (possibly with more after it).
pub fn check_head(bytes: &[u8], limits: &HeadLimits) -> Result<Head, Rejection> {
    locate_head(bytes, limits, &mut HeadPlaces::default())
}

/// Where the parts of a whole request head are in its bytes, to build the request from.
#[derive(Debug, Default)]
pub(crate) struct HeadPlaces {
    /// The method's range.
    pub method: std::ops::Range<usize>,
    /// The request target's range.
    pub target: std::ops::Range<usize>,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// Each header line's name and value.
    pub headers: Spans,
}

/// [`check_head`], noting in `places` where the parts of a whole head are.
pub(crate) fn locate_head(
    bytes: &[u8],
    limits: &HeadLimits,
    places: &mut HeadPlaces,
) -> Result<Head, Rejection> {
    // NOTE: uninitialised slots: this runs for every head, and filling 100 empty headers
    // first would cost more than parsing a small head.
    if limits.max_headers <= STACK_HEADERS {
        let mut headers = [const { MaybeUninit::uninit() }; STACK_HEADERS];
        parse_head(bytes, limits, &mut headers[..limits.max_headers], places)
    } else {
        let mut headers = Vec::with_capacity(limits.max_headers);
        headers.resize_with(limits.max_headers, MaybeUninit::uninit);
        parse_head(bytes, limits, &mut headers, places)
    }
}

fn parse_head<'b>(
    bytes: &'b [u8],
    limits: &HeadLimits,
    headers: &mut [MaybeUninit<httparse::Header<'b>>],
    places: &mut HeadPlaces,
) -> Result<Head, Rejection> {
    let mut request = httparse::Request::new(&mut []);
    match request.parse_with_uninit_headers(bytes, headers) {
        Ok(httparse::Status::Partial) => {
            if bytes.len() > limits.max_header_bytes {
                return Err(head_too_large(limits));
            }
            Ok(Head::Partial)
        }
        Ok(httparse::Status::Complete(len)) => {
            if len > limits.max_header_bytes {
                return Err(head_too_large(limits));
            }
            let framing = framing(&request)?;
            let start = bytes.as_ptr() as usize;
            let range = |text: &str| {
                let at = text.as_ptr() as usize - start;
                at..at + text.len()
            };
            places.method = request.method.map(range).unwrap_or_default();
            places.target = request.path.map(range).unwrap_or_default();
            places.minor_version = request.version.unwrap_or(1);
            places.headers.clear();
            (places.headers).extend(request.headers.iter().map(|header| Span::of(bytes, header)));
            Ok(Head::Complete { len, framing })
        }
        Err(httparse::Error::TooManyHeaders) => Err(Rejection::too_large(format!(
            "more than {} header lines",
            limits.max_headers
        ))),
        Err(error) => Err(Rejection::bad(format!(
            "malformed request head: {}",
            parse_error(error)
        ))),
    }
}

/// The refusal of a head over `max_header_bytes`.
pub(super) fn head_too_large(limits: &HeadLimits) -> Rejection {
    Rejection::too_large(format!(
        "request head larger than {} bytes",
        limits.max_header_bytes
    ))
}

fn parse_error(error: httparse::Error) -> &'static str {
    match error {
        httparse::Error::HeaderName => {
            "invalid header name (white space before the colon, or a folded line)"
        }
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Token => "invalid method or request target",
        httparse::Error::Version => "invalid HTTP version",
        httparse::Error::Status | httparse::Error::TooManyHeaders => "invalid request line",
    }
}

/// RFC 9112 §6: the body's framing, refusing every ambiguous form.
fn framing(request: &httparse::Request<'_, '_>) -> Result<Framing, Rejection> {
    let mut length: Option<u64> = None;
    let mut transfer_encoding = false;
    let mut chunked_last = false;
    for header in request.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            let value = content_length(header.value)
                .ok_or_else(|| Rejection::bad("malformed Content-Length"))?;
            if length.is_some_and(|earlier| earlier != value) {
                return Err(Rejection::bad("conflicting Content-Length values"));
            }
            length = Some(value);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            if request.version == Some(0) {
                return Err(Rejection::bad("Transfer-Encoding in an HTTP/1.0 request"));
            }
            // NOTE: each line must name a coding, wherever it comes: checking only that
            // one was seen so far refused an empty line before `chunked` but took it after.
            let mut line_names_one = false;
            for coding in header.value.split(|&byte| byte == b',') {
                let coding = coding.trim_ascii();
                if coding.is_empty() {
                    continue;
                }
                line_names_one = true;
                if chunked_last {
                    return Err(Rejection::bad(
                        "Transfer-Encoding applies a coding after chunked",
                    ));
                }
                if !coding.eq_ignore_ascii_case(b"chunked") {
                    return Err(Rejection::not_implemented(format!(
                        "Transfer-Encoding \"{}\": only chunked is supported",
                        String::from_utf8_lossy(header.value)
                    )));
                }
                chunked_last = true;
                transfer_encoding = true;
            }
            if !line_names_one {
                return Err(Rejection::bad("empty Transfer-Encoding"));
            }
        } else if crate::codec::framing_look_alike(header.name.as_bytes()) {
            return Err(look_alike(header.name));
        }
    }
    if transfer_encoding && length.is_some() {
        return Err(Rejection::bad(
            "both Content-Length and Transfer-Encoding (ambiguous framing)",
        ));
    }
    // NOTE: an Upgrade header changes nothing: the proxy forwards none and never switches
    // protocols, so the connection stays HTTP/1.1 and the body is framed as usual.
    if request.method == Some("CONNECT") {
        return Ok(Framing::Opaque);
    }
    Ok(if transfer_encoding {
        Framing::Chunked
    } else {
        Framing::Length(length.unwrap_or(0))
    })
}

/// The refusal of a header named like a framing header, `_` for `-`.
fn look_alike(name: &str) -> Rejection {
    Rejection::bad(format!(
        "header \"{name}\" is a look-alike of a framing header (`_` for `-`)"
    ))
}

/// A Content-Length value: decimal digits only (no sign, no list), as hyper reads it.
fn content_length(value: &[u8]) -> Option<u64> {
    let value = value.trim_ascii();
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    value.iter().try_fold(0u64, |total, digit| {
        total.checked_mul(10)?.checked_add(u64::from(digit - b'0'))
    })
}

/// Checks a request as hyper parsed it (HTTP/1 or HTTP/2).
pub(crate) fn check_parts(parts: &Parts, limits: &HeadLimits) -> Result<(), Rejection> {
    check_method_and_target(parts)?;
    let headers = HeaderSummary::of(parts);
    check_host(parts, &headers)?;
    if let Some(name) = headers.look_alike {
        return Err(look_alike(name.as_str()));
    }
    if headers.lengths_repeated {
        // RFC 9110 §8.6 lets a recipient refuse a repeated length, or replace it with one.
        // An HTTP/1.1 head was already left with one line (`h1::take_head`), so only an
        // HTTP/2 request gets here, and it is refused rather than edited on the way.
        return Err(Rejection::bad("more than one Content-Length"));
    }
    if parts.headers.len() > limits.max_headers {
        return Err(Rejection::too_large(format!(
            "more than {} header lines",
            limits.max_headers
        )));
    }
    if headers.head_size > limits.max_header_bytes {
        return Err(head_too_large(limits));
    }
    if let Some(length) = headers
        .content_length
        .and_then(|value| content_length(value.as_bytes()))
        && length > limits.max_request_body
    {
        return Err(Rejection {
            error: ProxyError::RequestBodyTooLarge,
            reason: format!(
                "Content-Length {length} is over the limit of {} bytes",
                limits.max_request_body
            ),
        });
    }
    Ok(())
}

/// What [`check_parts`] needs of the headers.
// NOTE: gathered in one walk over the headers, which the head size needs anyway: looking
// Host and Content-Length up in the map instead hashes each name, and costs more than
// comparing them on the way for the few headers a request has.
struct HeaderSummary<'a> {
    /// The first Host value.
    host: Option<&'a HeaderValue>,
    /// Whether there is more than one Host value.
    hosts_repeated: bool,
    /// The first Content-Length value.
    content_length: Option<&'a HeaderValue>,
    /// Whether Content-Length is there more than once (hyper's HTTP/2 server reads only the
    /// first, and passes them all on).
    lengths_repeated: bool,
    /// A header named like a framing header, `_` for `-`.
    look_alike: Option<&'a header::HeaderName>,
    /// The size of the head as it would be written in HTTP/1.1.
    head_size: usize,
}

impl<'a> HeaderSummary<'a> {
    fn of(parts: &'a Parts) -> Self {
        let target = parts
            .uri
            .path_and_query()
            .map_or(1, |path| path.as_str().len());
        let request_line = parts.method.as_str().len() + target + " HTTP/1.1\r\n".len() + 1;
        let mut summary = Self {
            host: None,
            hosts_repeated: false,
            content_length: None,
            lengths_repeated: false,
            look_alike: None,
            head_size: request_line + 2,
        };
        // NOTE: `iter` yields a name's values in order, so the first met is what `get`
        // would return.
        for (name, value) in &parts.headers {
            summary.head_size += name.as_str().len() + value.len() + ": \r\n".len();
            if name == header::HOST {
                summary.hosts_repeated |= summary.host.is_some();
                summary.host.get_or_insert(value);
            } else if name == header::CONTENT_LENGTH {
                summary.lengths_repeated |= summary.content_length.is_some();
                summary.content_length.get_or_insert(value);
            } else if crate::codec::framing_look_alike(name.as_str().as_bytes()) {
                summary.look_alike.get_or_insert(name);
            }
        }
        summary
    }
}

/// CONNECT is not forwarded: the proxy tunnels nothing, and forwarded as a request it would
/// reach the endpoint with a target rewritten to the endpoint's own address (501). The
/// asterisk target (`*`) is OPTIONS's alone (RFC 9112 §3.2.4): with any other method it is
/// malformed (400).
fn check_method_and_target(parts: &Parts) -> Result<(), Rejection> {
    if parts.method == Method::CONNECT {
        return Err(Rejection {
            error: ProxyError::UnsupportedMethod,
            reason: "CONNECT is not forwarded: the proxy tunnels nothing".to_owned(),
        });
    }
    if parts.uri.path() == "*" && parts.method != Method::OPTIONS {
        return Err(Rejection::bad(format!(
            "the asterisk target is for OPTIONS only, not {}",
            parts.method
        )));
    }
    Ok(())
}

/// RFC 9112 §3.2 and RFC 9113 §8.3.1: one Host, well formed, agreeing with the target.
fn check_host(parts: &Parts, headers: &HeaderSummary<'_>) -> Result<(), Rejection> {
    if headers.hosts_repeated {
        return Err(Rejection::bad("more than one Host header"));
    }
    let Some(host) = headers.host else {
        if parts.version == Version::HTTP_11 {
            return Err(Rejection::bad("HTTP/1.1 request without a Host header"));
        }
        return Ok(());
    };
    let host = host.as_bytes();
    if !valid_host(host) {
        return Err(Rejection::bad("invalid Host header"));
    }
    if let Some(target) = parts.uri.authority()
        && parts.method != Method::CONNECT
        && !target.as_str().as_bytes().eq_ignore_ascii_case(host)
    {
        return Err(Rejection::bad(format!(
            "Host \"{}\" disagrees with the request target's authority \"{target}\"",
            String::from_utf8_lossy(host)
        )));
    }
    Ok(())
}

/// Whether a Host value is an authority without userinfo and with a host: what
/// `http::uri::Authority::try_from` accepts, less `@` and an empty host.
// NOTE: by hand, because `Authority::try_from` copies the value into a new buffer, one
// allocation per request only to be dropped. A test checks it against `Authority` on
// arbitrary input.
fn valid_host(value: &[u8]) -> bool {
    // `Authority` allows at most 8 colons inside brackets, and one port colon after.
    const MAX_COLONS: u32 = 8;
    let Some(&first) = value.first() else {
        return false;
    };
    if first == b':' {
        // No host before the port.
        return false;
    }
    let mut colons = 0;
    let (mut open, mut closed, mut percent) = (false, false, false);
    for &byte in value {
        match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => {}
            b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b'-' | b'.' | b';'
            | b'=' | b'_' | b'~' => {}
            // Only inside an IPv6 literal, where it starts a zone identifier.
            b'%' => percent = true,
            b':' => {
                if colons >= MAX_COLONS {
                    return false;
                }
                colons += 1;
            }
            b'[' => {
                if percent || open {
                    return false;
                }
                open = true;
            }
            b']' => {
                if !open || closed {
                    return false;
                }
                closed = true;
                colons = 0;
                percent = false;
            }
            // Userinfo, a path, a query, a fragment, or not a URI character at all.
            _ => return false,
        }
    }
    open == closed && colons <= 1 && !percent
}

#[cfg(test)]
mod tests;
