//! A request head off the wire: checked by [`locate_head`] (RFC 9112 framing, the limits)
//! and turned into the `http` types without copying a value (each is a slice of the head).

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Method, Request, Uri, Version};

use crate::forward;
use crate::listener::checks::{Framing, Head, HeadLimits, HeadPlaces, Rejection, locate_head};

/// A whole, checked request head.
#[derive(Debug)]
pub struct RequestHead {
    /// Method, target, version and headers, every header kept as the client sent it.
    pub parts: Parts,
    /// How its body is delimited.
    pub framing: Framing,
    /// Whether the client lets the connection carry another request after this one.
    pub keep_alive: bool,
    /// Whether the client waits for `100 Continue` before sending the body.
    pub expect_continue: bool,
    /// Whether the client takes trailers in a chunked response (`TE: trailers`).
    pub takes_trailers: bool,
}

/// Takes a request head off the front of `buffer`. `Ok(None)`: it is not whole yet (and so
/// far within the limits); read more and call again.
pub fn take_head(
    buffer: &mut BytesMut,
    limits: &HeadLimits,
) -> Result<Option<RequestHead>, Rejection> {
    let mut places = HeadPlaces::default();
    let (len, framing) = match locate_head(buffer, limits, &mut places)? {
        Head::Partial => return Ok(None),
        Head::Complete { len, framing } => (len, framing),
    };
    let bytes = buffer.split_to(len).freeze();
    build(&bytes, &places, framing).map(Some)
}

fn build(bytes: &Bytes, places: &HeadPlaces, framing: Framing) -> Result<RequestHead, Rejection> {
    let bad = |reason: &str| Rejection {
        error: crate::error::ProxyError::BadRequest,
        reason: format!("malformed request head: {reason}"),
    };
    let method =
        Method::from_bytes(&bytes[places.method.clone()]).map_err(|_| bad("invalid method"))?;
    let uri = Uri::from_maybe_shared(bytes.slice(places.target.clone()))
        .map_err(|_| bad("invalid request target"))?;
    let version = match places.minor_version {
        0 => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let mut headers = HeaderMap::with_capacity(places.headers.len() + forward::HEADER_ROOM);
    let (mut close, mut keep_alive_asked) = (false, false);
    let (mut expect_continue, mut takes_trailers) = (false, false);
    let mut length_kept = false;
    for &span in &places.headers {
        let name =
            HeaderName::from_bytes(&bytes[span.name()]).map_err(|_| bad("invalid header name"))?;
        let value = &bytes[span.value()];
        if name == header::CONNECTION {
            for option in value.split(|&byte| byte == b',').map(<[u8]>::trim_ascii) {
                close |= option.eq_ignore_ascii_case(b"close");
                keep_alive_asked |= option.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name == header::EXPECT {
            expect_continue |= value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
        } else if name == header::CONTENT_LENGTH {
            // Repeated equal lengths (`locate_head` refused unequal ones) go on as one.
            if length_kept {
                continue;
            }
            length_kept = true;
        } else if name == header::TE {
            takes_trailers |= value
                .split(|&byte| byte == b',')
                .any(|coding| coding.trim_ascii().eq_ignore_ascii_case(b"trailers"));
        }
        let value = HeaderValue::from_maybe_shared(bytes.slice(span.value()))
            .map_err(|_| bad("invalid header value"))?;
        headers.append(name, value);
    }
    // RFC 9110 §15.2: no interim answer goes to an HTTP/1.0 client.
    let expect_continue = expect_continue && version == Version::HTTP_11;
    let keep_alive = match version {
        Version::HTTP_10 => keep_alive_asked && !close,
        _ => !close,
    };
    let (mut parts, ()) = Request::new(()).into_parts();
    parts.method = method;
    parts.uri = uri;
    parts.version = version;
    parts.headers = headers;
    Ok(RequestHead {
        parts,
        framing,
        keep_alive,
        expect_continue,
        takes_trailers,
    })
}
