//! A response head off the wire: parsed by httparse, framed as RFC 9112 §6.3 says, and
//! turned into the `http` types without copying a value (each is a slice of the head).
//!
//! Held to the rules the listener holds requests to, where they matter to the client: a
//! transfer coding other than `chunked` alone is refused (the proxy writes the body out in
//! its own framing, so `gzip, chunked` would reach the client without its `gzip`), repeated
//! equal lengths go on as one, and a `Connection` header cannot name away the
//! `Content-Length` or `Trailer` of the answer ([`headers::remove_hop_by_hop`]).

use std::mem::MaybeUninit;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{StatusCode, Version};

use crate::codec::{self, Span, Spans};
use crate::headers;

/// The largest response head taken, in bytes (hyper's client takes about 400 KiB; nginx
/// 4–8 KiB by default). Big enough for any sane set of cookies.
pub(super) const MAX_HEAD_BYTES: usize = 64 * 1024;
/// The most header lines a response head may have.
pub(super) const MAX_HEADERS: usize = 128;

/// Headers a response usually gains in the proxy.
const ADDED_ON_THE_WAY_BACK: usize = 4;

/// How the body after a response head is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body: the answer to `HEAD`, a 204, a 304.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Everything until the endpoint closes the connection.
    UntilClose,
}

/// A final (non-interim) response head.
#[derive(Debug)]
pub struct Head {
    /// The status.
    pub status: StatusCode,
    /// HTTP/1.0 or HTTP/1.1.
    pub version: Version,
    /// The end-to-end headers only: those that describe this connection (RFC 9110 §7.6.1),
    /// and those its `Connection` header names, are left out.
    pub headers: HeaderMap,
    /// How its body is delimited.
    pub framing: Framing,
    /// Whether the connection may carry another request after this response.
    pub keep_alive: bool,
}

/// Why a response head is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    /// Not HTTP/1 as RFC 9112 writes it, or framed ambiguously.
    #[error("malformed response head: {0}")]
    Malformed(&'static str),
    /// Over [`MAX_HEAD_BYTES`].
    #[error("response head larger than {MAX_HEAD_BYTES} bytes")]
    TooLarge,
    /// Over [`MAX_HEADERS`] header lines.
    #[error("more than {MAX_HEADERS} response header lines")]
    TooManyHeaders,
}

/// Takes the final response head off the front of `buffer`, dropping interim (1xx) heads
/// before it. `Ok(None)`: it is not whole yet; read more and call again.
pub fn take_head(buffer: &mut BytesMut, head_request: bool) -> Result<Option<Head>, HeadError> {
    // NOTE: the spans live here and are filled in place: returned inside a `Located` they
    // were copied (half a kilobyte) on each of the ways out.
    let mut spans = Spans::new();
    loop {
        spans.clear();
        let Some(located) = locate(buffer, &mut spans)? else {
            if buffer.len() > MAX_HEAD_BYTES {
                return Err(HeadError::TooLarge);
            }
            return Ok(None);
        };
        let bytes = buffer.split_to(located.len).freeze();
        match located.status {
            101 => {
                // Never asked for: the proxy forwards no Upgrade header.
                return Err(HeadError::Malformed(
                    "101 Switching Protocols without an upgrade asked for",
                ));
            }
            100..=199 => continue,
            _ => return build(&bytes, &located, &spans, head_request).map(Some),
        }
    }
}

/// The status line of a whole head found at the front of a buffer, and its length.
#[derive(Debug, Clone, Copy)]
struct Located {
    len: usize,
    status: u16,
    minor_version: u8,
}

/// Parses the head at the front of `buffer`, its header lines' places into `spans`.
fn locate(buffer: &[u8], spans: &mut Spans) -> Result<Option<Located>, HeadError> {
    // NOTE: uninitialised slots, as the request checks do: filling 128 empty headers first
    // would cost more than parsing a small head.
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut response,
        buffer,
        &mut slots,
    ) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
        Err(httparse::Error::Status) => return Err(HeadError::Malformed("invalid status")),
        Err(httparse::Error::Version) => {
            return Err(HeadError::Malformed("invalid HTTP version"));
        }
        Err(httparse::Error::HeaderName) => {
            return Err(HeadError::Malformed("invalid header name"));
        }
        Err(httparse::Error::HeaderValue) => {
            return Err(HeadError::Malformed("invalid header value"));
        }
        Err(httparse::Error::NewLine | httparse::Error::Token) => {
            return Err(HeadError::Malformed("invalid status line"));
        }
    };
    if len > MAX_HEAD_BYTES {
        return Err(HeadError::TooLarge);
    }
    spans.extend(
        response
            .headers
            .iter()
            .map(|header| Span::of(buffer, header)),
    );
    Ok(Some(Located {
        len,
        status: response.code.unwrap_or_default(),
        minor_version: response.version.unwrap_or_default(),
    }))
}

fn build(
    bytes: &Bytes,
    located: &Located,
    spans: &Spans,
    head_request: bool,
) -> Result<Head, HeadError> {
    let status =
        StatusCode::from_u16(located.status).map_err(|_| HeadError::Malformed("invalid status"))?;
    let version = match located.minor_version {
        0 => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    // NOTE: room for the headers the proxy adds on the way back (`Via`, the request id,
    // a route's own): growing the map for them rehashes it and reallocates, ~900
    // instructions, once per request.
    let mut headers = HeaderMap::with_capacity(spans.len() + ADDED_ON_THE_WAY_BACK);
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut connection = ConnectionOptions::default();
    for &span in spans {
        let name = HeaderName::from_bytes(&bytes[span.name()])
            .map_err(|_| HeadError::Malformed("invalid header name"))?;
        let value = &bytes[span.value()];
        if name == header::CONTENT_LENGTH {
            let this = codec::content_length(value)
                .ok_or(HeadError::Malformed("invalid Content-Length"))?;
            match length {
                Some(earlier) if earlier != this => {
                    return Err(HeadError::Malformed("conflicting Content-Length values"));
                }
                // The same length again: one line of it goes on.
                Some(_) => continue,
                None => length = Some(this),
            }
        }
        match headers::hop_by_hop_index(name.as_str()) {
            None => {}
            Some(0) => {
                connection.read(value);
                if !connection.names_others {
                    continue;
                }
            }
            Some(5) => {
                chunked = transfer_coding(value, chunked)?;
                continue;
            }
            Some(_) => continue,
        }
        let value = HeaderValue::from_maybe_shared(bytes.slice(span.value()))
            .map_err(|_| HeadError::Malformed("invalid header value"))?;
        headers.append(name, value);
    }
    let no_body =
        head_request || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED;
    let framing = match (chunked, length) {
        _ if no_body => Framing::Empty,
        (true, _) => Framing::Chunked,
        (false, Some(length)) => Framing::Length(length),
        (false, None) => Framing::UntilClose,
    };
    if chunked && length.is_some() {
        // RFC 9112 §6.3: Transfer-Encoding overrides, and the length must not be passed on.
        headers.remove(header::CONTENT_LENGTH);
    }
    if connection.names_others {
        // The headers `Connection` names are this connection's too; with them gone the map
        // holds only end-to-end headers, and the proxy need not look again.
        headers::remove_hop_by_hop(&mut headers, &[]);
    }
    let keep_alive = framing != Framing::UntilClose
        && !(chunked && length.is_some())
        && match version {
            Version::HTTP_10 => connection.keep_alive && !connection.close,
            _ => !connection.close,
        };
    Ok(Head {
        status,
        version,
        headers,
        framing,
        keep_alive,
    })
}

/// What the `Connection` fields of a head say.
#[derive(Debug, Default)]
struct ConnectionOptions {
    close: bool,
    /// `keep-alive`, which an HTTP/1.0 answer needs to keep its connection.
    keep_alive: bool,
    /// Other options: the names of headers that are this connection's own.
    names_others: bool,
}

impl ConnectionOptions {
    /// Reads one `Connection` field's value.
    #[inline]
    fn read(&mut self, value: &[u8]) {
        for option in value.split(|&byte| byte == b',').map(<[u8]>::trim_ascii) {
            if option.eq_ignore_ascii_case(b"close") {
                self.close = true;
            } else if option.eq_ignore_ascii_case(b"keep-alive") {
                self.keep_alive = true;
            } else if !option.is_empty() {
                self.names_others = true;
            }
        }
    }
}

/// Reads one `Transfer-Encoding` field's value (`chunked` once the fields read so far said
/// it): `chunked`, once, and nothing else, is all an answer may say.
fn transfer_coding(value: &[u8], chunked: bool) -> Result<bool, HeadError> {
    let mut seen = chunked;
    for coding in value.split(|&byte| byte == b',').map(<[u8]>::trim_ascii) {
        if coding.is_empty() {
            continue;
        }
        if seen || !coding.eq_ignore_ascii_case(b"chunked") {
            return Err(HeadError::Malformed(
                "a transfer coding other than chunked alone",
            ));
        }
        seen = true;
    }
    if !seen {
        return Err(HeadError::Malformed("empty Transfer-Encoding"));
    }
    Ok(seen)
}
