//! Our HTTP/1.1 request head parser against httparse, and our chunked decoder against a
//! strict reading of RFC 9112 §7.1, on the same bytes.
//!
//! Why differential: a proxy and the server behind it that disagree on where a request ends
//! are the ground of request smuggling. Ours (`listener::checks::check_head` and
//! `listener::h1::take_head`) is built on httparse, and must never be more lenient than
//! it: it may refuse what httparse takes (it is stricter on purpose), but whatever it
//! takes, it must take exactly where httparse says the head ends, and frame the body
//! exactly as RFC 9112 §6.3 reads the headers httparse found.
//!
//! Fails when, for the same bytes:
//! - ours takes a head (or waits for more) where httparse finds it malformed;
//! - both take a head but end it at different places, or ours waits for more bytes of a
//!   head httparse says is whole;
//! - ours frames the body otherwise than the model below reads the headers, or takes a
//!   head whose framing the model refuses;
//! - ours refuses a head that httparse and the model take, for none of the allowed reasons;
//! - for a chunked body, our decoder ends it at another byte, with other data, than the
//!   strict reference decoder, or takes a body the reference refuses.
//!
//! Allowed differences (each deliberate, each where ours is the stricter):
//! 1. Limits: ours refuses heads over `max_header_bytes` or with more than `max_headers`
//!    lines (httparse here is given room for any number).
//! 2. Both `Content-Length` and `Transfer-Encoding`: RFC 9112 §6.3 lets TE override; ours
//!    (and the model) refuse, since the two framings are the classic smuggling pair.
//! 3. `Content-Length` as a list (`5, 5`), with a sign or not decimal: ours refuses what is
//!    not `1*DIGIT` (RFC 9110 §8.6 allows either taking identical lists or refusing);
//!    repeated equal `Content-Length` lines are kept as one.
//! 4. A `Transfer-Encoding` line naming no coding (wherever it comes; RFC 9110 §5.6.1
//!    would skip empty list elements), naming `chunked` before another coding, or codings
//!    not ending in `chunked`: refused (RFC 9112 §6.3 says a request so framed is
//!    answered 400); and any coding besides `chunked` alone (`gzip, chunked`): refused with
//!    501, since the proxy re-chunks the body and could not keep the other coding.
//! 5. The request line after httparse: ours refuses a method or target that `http` cannot
//!    hold (`Method::from_bytes`, `Uri::from_maybe_shared`), and a header name or value
//!    that `http` cannot hold.
//! 6. Chunked: ours refuses a size line over 4 KiB, a trailer section over 16 KiB or over
//!    64 fields, and a chunk size of more than 16 hex digits (leading zeros included).
//! 7. Chunked, where ours is the more lenient and it is harmless: white space after the
//!    chunk size without an extension (`5 \r\n`, httparse's "implied LWS"). The proxy
//!    decodes the body and encodes it afresh on the way to the endpoint, so no extension
//!    and no size line of the client's reaches anyone else.
//! 8. A header named like a framing header with `_` for `-` (`Transfer_Encoding`):
//!    refused, since a server that maps `-` and `_` to one name (CGI's `HTTP_*`) would
//!    read it as a second, unchecked framing header.
#![no_main]

use blastwall_proxy::fuzzing::{Decoded, Decoder};
use blastwall_proxy::fuzzing::{Framing, Head, HeadLimits, check_head};
use blastwall_proxy::fuzzing::take_head;
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

const LIMITS: HeadLimits = HeadLimits {
    max_header_bytes: 8192,
    max_headers: 32,
    max_request_body: 1 << 20,
};
/// httparse's room: more header lines than any input libFuzzer makes can hold.
const REFERENCE_HEADERS: usize = 4096;

/// What httparse and the model make of the bytes.
#[derive(Debug)]
enum Reference {
    Partial,
    Malformed,
    Complete {
        len: usize,
        headers: usize,
        /// `None`: the model refuses the framing.
        framing: Option<Framing>,
    },
}

fn reference(data: &[u8]) -> Reference {
    let mut slots = vec![httparse::EMPTY_HEADER; REFERENCE_HEADERS];
    let mut request = httparse::Request::new(&mut slots);
    match request.parse(data) {
        Ok(httparse::Status::Partial) => Reference::Partial,
        Ok(httparse::Status::Complete(len)) => Reference::Complete {
            len,
            headers: request.headers.len(),
            framing: model_framing(&request),
        },
        Err(_) => Reference::Malformed,
    }
}

/// `value` without the optional white space (SP, HTAB) around it.
fn trim(mut value: &[u8]) -> &[u8] {
    let ows = |byte: &u8| *byte == b' ' || *byte == b'\t';
    while value.first().is_some_and(ows) {
        value = &value[1..];
    }
    while value.last().is_some_and(ows) {
        value = &value[..value.len() - 1];
    }
    value
}

/// RFC 9112 §6.1 and §6.3 for a request, read strictly (differences 2 to 4, and 8).
fn model_framing(request: &httparse::Request<'_, '_>) -> Option<Framing> {
    let mut length: Option<u64> = None;
    let mut codings: Vec<&[u8]> = Vec::new();
    let mut transfer_encoding = false;
    for header in request.headers.iter() {
        let dashed = header.name.replace('_', "-");
        if header.name.contains('_')
            && (dashed.eq_ignore_ascii_case("content-length")
                || dashed.eq_ignore_ascii_case("transfer-encoding"))
        {
            // Difference 8: a look-alike of a framing header.
            return None;
        }
        if header.name.eq_ignore_ascii_case("content-length") {
            let value = trim(header.value);
            if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let mut this: u64 = 0;
            for digit in value {
                this = this.checked_mul(10)?.checked_add(u64::from(digit - b'0'))?;
            }
            if length.is_some_and(|earlier| earlier != this) {
                return None;
            }
            length = Some(this);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
            let before = codings.len();
            codings.extend(
                header
                    .value
                    .split(|&byte| byte == b',')
                    .map(trim)
                    .filter(|coding| !coding.is_empty()),
            );
            if codings.len() == before {
                // Difference 4: a line naming no coding.
                return None;
            }
        }
    }
    if transfer_encoding {
        let chunked = |coding: &&[u8]| coding.eq_ignore_ascii_case(b"chunked");
        let last_is_chunked = codings.last().is_some_and(chunked);
        let chunked_before_last = codings[..codings.len().saturating_sub(1)]
            .iter()
            .any(chunked);
        // Difference 4: any coding besides `chunked` (the proxy decodes and re-chunks the
        // body, so it could not pass another coding on intact: 501).
        let only_chunked = codings.len() == 1;
        if request.version == Some(0)
            || length.is_some()
            || !last_is_chunked
            || chunked_before_last
            || !only_chunked
        {
            return None;
        }
    }
    if request.method == Some("CONNECT") {
        return Some(Framing::Opaque);
    }
    Some(if transfer_encoding {
        Framing::Chunked
    } else {
        Framing::Length(length.unwrap_or(0))
    })
}

/// What a chunked body decoder made of the bytes after a head.
#[derive(Debug, PartialEq, Eq)]
enum Chunked {
    /// The body ended after this many bytes, with this data.
    End(usize, Vec<u8>),
    /// Not ended yet.
    Partial,
    Malformed,
}

/// RFC 9112 §7.1 read strictly: `chunk-size [ chunk-ext ] CRLF`, the extension free of
/// control bytes but HTAB; white space allowed before each `;` (BWS); trailer lines ended
/// by CRLF.
fn reference_chunked(body: &[u8]) -> Chunked {
    let mut at = 0;
    let mut data = Vec::new();
    loop {
        // The size line.
        let Some(end) = body[at..].windows(2).position(|pair| pair == b"\r\n") else {
            // No CRLF yet: partial unless what is there is already wrong.
            let line = &body[at..];
            if line.first().is_some_and(|byte| !byte.is_ascii_hexdigit()) {
                // A size line starts with a hex digit: a lone CR already is not one.
                return Chunked::Malformed;
            }
            return if line_is_bad(line.strip_suffix(b"\r").unwrap_or(line), true) {
                Chunked::Malformed
            } else {
                Chunked::Partial
            };
        };
        let line = &body[at..at + end];
        if line_is_bad(line, false) {
            return Chunked::Malformed;
        }
        let digits = line
            .iter()
            .take_while(|byte| byte.is_ascii_hexdigit())
            .count();
        let Ok(size) = u64::from_str_radix(
            std::str::from_utf8(&line[..digits]).expect("hex digits are ASCII"),
            16,
        ) else {
            return Chunked::Malformed;
        };
        at += end + 2;
        if size == 0 {
            // Trailers: field lines up to an empty line, each ended by CRLF (httparse also
            // takes a bare LF, which RFC 9112 §7.1 does not: `0\r\n\n` is refused). Ours
            // judges the section once it is whole, so a partial one is only partial.
            let mut slots = [httparse::EMPTY_HEADER; 256];
            let bare_lf = |bytes: &[u8]| {
                bytes
                    .iter()
                    .enumerate()
                    .any(|(i, &byte)| byte == b'\n' && (i == 0 || bytes[i - 1] != b'\r'))
            };
            return match httparse::parse_headers(&body[at..], &mut slots) {
                Ok(httparse::Status::Complete((len, _))) if bare_lf(&body[at..at + len]) => {
                    Chunked::Malformed
                }
                Ok(httparse::Status::Complete((len, _))) => Chunked::End(at + len, data),
                Ok(httparse::Status::Partial) => Chunked::Partial,
                Err(_) => Chunked::Malformed,
            };
        }
        let Some(chunk) = usize::try_from(size)
            .ok()
            .and_then(|size| body.get(at..at.checked_add(size)?))
        else {
            return Chunked::Partial;
        };
        data.extend_from_slice(chunk);
        at += chunk.len();
        match body.get(at..at + 2) {
            Some(b"\r\n") => at += 2,
            Some(_) => return Chunked::Malformed,
            None if body.get(at).is_some_and(|&byte| byte != b'\r') => {
                return Chunked::Malformed;
            }
            None => return Chunked::Partial,
        }
    }
}

/// Whether a chunk-size line (without its CRLF) is malformed; `partial`: more may follow.
fn line_is_bad(line: &[u8], partial: bool) -> bool {
    let digits = line
        .iter()
        .take_while(|byte| byte.is_ascii_hexdigit())
        .count();
    if digits == 0 {
        return !(partial && line.is_empty());
    }
    if digits > 16 {
        // Difference 6: at most 16 digits (a u64, leading zeros included), as httparse.
        return true;
    }
    let mut rest = &line[digits..];
    // Difference 7: white space after the size, with or without an extension.
    while let [b' ' | b'\t', tail @ ..] = rest {
        rest = tail;
    }
    match rest {
        [] => false,
        [b';', ext @ ..] => ext
            .iter()
            .any(|&byte| (byte < 0x20 && byte != b'\t') || byte == 0x7f),
        _ => true,
    }
}

/// Our decoder over `body` as the listener runs it.
fn ours_chunked(body: &[u8]) -> Result<Chunked, &'static str> {
    let mut decoder = Decoder::new();
    let mut buffer = BytesMut::from(body);
    let mut data = Vec::new();
    loop {
        match decoder.decode(&mut buffer) {
            Ok(Decoded::Data(bytes)) => data.extend_from_slice(&bytes),
            Ok(Decoded::Trailers(_)) => {}
            Ok(Decoded::End) => return Ok(Chunked::End(body.len() - buffer.len(), data)),
            Ok(Decoded::NeedMore) => return Ok(Chunked::Partial),
            Err(error) => return Err(error.0),
        }
    }
}

fn compare_chunked(body: &[u8]) {
    let reference = reference_chunked(body);
    match ours_chunked(body) {
        Ok(ours) => assert_eq!(ours, reference, "our chunked decoder disagrees"),
        Err(reason) => {
            // Difference 6, or the reference refuses too.
            let allowed = matches!(reference, Chunked::Malformed)
                || reason.contains("too long")
                || reason.contains("too large")
                || reason.contains("trailer");
            assert!(
                allowed,
                "ours refused a chunked body ({reason}) the reference takes: {reference:?}"
            );
        }
    }
}

/// How many lines of a head are `Content-Length` fields.
fn content_length_lines(head: &[u8]) -> usize {
    head.split(|&byte| byte == b'\n')
        .filter(|line| line.len() > 15 && line[..15].eq_ignore_ascii_case(b"content-length:"))
        .count()
}

fuzz_target!(|data: &[u8]| {
    let ours = check_head(data, &LIMITS);
    match reference(data) {
        Reference::Malformed => {
            assert!(ours.is_err(), "httparse refuses, ours says {ours:?}");
        }
        Reference::Partial => {
            assert!(
                !matches!(ours, Ok(Head::Complete { .. })),
                "httparse waits for more, ours says {ours:?}"
            );
        }
        Reference::Complete {
            len,
            headers,
            framing,
        } => match ours {
            Ok(Head::Complete {
                len: our_len,
                framing: our_framing,
            }) => {
                assert_eq!(our_len, len, "the head ends elsewhere");
                assert_eq!(Some(our_framing), framing, "framed otherwise");
                let mut buffer = BytesMut::from(data);
                if let Ok(Some(head)) = take_head(&mut buffer, &LIMITS) {
                    assert_eq!(buffer.len(), data.len() - len, "taken elsewhere");
                    assert_eq!(head.framing, our_framing);
                    // Repeated equal `Content-Length` lines are kept as one (difference 3).
                    let lengths = content_length_lines(&data[..len]);
                    assert_eq!(
                        head.parts.headers.len(),
                        headers - lengths.saturating_sub(1)
                    );
                }
                if our_framing == Framing::Chunked {
                    compare_chunked(&data[len..]);
                }
            }
            Ok(Head::Partial) => panic!("httparse has a whole head of {len} bytes, ours waits"),
            Err(rejection) => {
                // Differences 1 to 4, and 8.
                let allowed = len > LIMITS.max_header_bytes
                    || headers > LIMITS.max_headers
                    || framing.is_none();
                assert!(
                    allowed,
                    "ours refused a head httparse and the model take: {}",
                    rejection.reason
                );
            }
        },
    }
});
