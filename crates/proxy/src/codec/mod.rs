//! HTTP/1.1 on the wire, as both ends of the proxy speak it: the listener's server
//! ([`crate::listener`]) and the client to endpoints ([`crate::upstream`]).
//!
//! Sans-IO: [`Decoder`] takes the chunked coding apart from a read buffer, and
//! [`Delimit`] with [`encode_frame`] / [`encode_end`] write a body's frames as its head
//! announced them (a length, chunked, or until the connection closes). Each side owns its
//! socket and its buffers; only the byte formats live here.

mod chunked;
mod fields;
mod read_buffer;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::body::Frame;
use smallvec::SmallVec;

pub(crate) use self::chunked::ChunkedError;
pub use self::chunked::{Decoded, Decoder};
pub(crate) use self::fields::{framing_look_alike, keep_allowed_trailers, trailer_allowed};
pub(crate) use self::read_buffer::make_room;

/// How a body is delimited on the wire, as its head announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delimit {
    /// No body.
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// The chunked coding.
    Chunked,
    /// Everything until the connection closes (an answer to an HTTP/1.0 client).
    UntilClose,
}

/// Where a parsed header's name and value are in its head, so that the head can be frozen
/// into `Bytes` and each value taken as a slice of it, without a copy.
// NOTE: offsets, not the parser's slices: those borrow the buffer that is split off and
// frozen afterwards. 32 bits, as every head the proxy takes is far below 4 GiB.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Span {
    name_at: u32,
    name_len: u32,
    value_at: u32,
    value_len: u32,
}

/// The header places of one head; most heads fit inline.
pub(crate) type Spans = SmallVec<[Span; 16]>;

impl Span {
    /// The place in `head` (which the parser was given) of `header` (which it returned).
    pub(crate) fn of(head: &[u8], header: &httparse::Header<'_>) -> Self {
        let start = head.as_ptr() as usize;
        let at = |slice: &[u8]| (slice.as_ptr() as usize - start) as u32;
        Self {
            name_at: at(header.name.as_bytes()),
            name_len: header.name.len() as u32,
            value_at: at(header.value),
            value_len: header.value.len() as u32,
        }
    }

    /// The name's range in the head.
    pub(crate) fn name(self) -> std::ops::Range<usize> {
        self.name_at as usize..(self.name_at + self.name_len) as usize
    }

    /// The value's range in the head.
    pub(crate) fn value(self) -> std::ops::Range<usize> {
        self.value_at as usize..(self.value_at + self.value_len) as usize
    }
}

/// A body that did not match the length its head announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the body does not match its Content-Length of {0} bytes")]
pub struct LengthMismatch(pub u64);

/// Appends one header line.
pub(crate) fn encode_line(out: &mut Vec<u8>, name: &HeaderName, value: &HeaderValue) {
    out.extend_from_slice(name.as_str().as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends a body frame as `delimit` says; `left` counts down an announced length.
/// `Ok(true)` when the frame ended the body (trailers come last). Trailers go out only in
/// the chunked coding and when `trailers` allows; otherwise they are dropped, as hyper does.
pub(crate) fn encode_frame(
    out: &mut Vec<u8>,
    frame: Frame<Bytes>,
    delimit: Delimit,
    left: &mut u64,
    trailers: bool,
) -> Result<bool, LengthMismatch> {
    match frame.into_data() {
        Ok(data) => {
            if data.is_empty() {
                return Ok(false);
            }
            match delimit {
                Delimit::Chunked => {
                    write_hex(out, data.len());
                    out.extend_from_slice(b"\r\n");
                    out.extend_from_slice(&data);
                    out.extend_from_slice(b"\r\n");
                }
                Delimit::Length(length) => {
                    *left = left
                        .checked_sub(data.len() as u64)
                        .ok_or(LengthMismatch(length))?;
                    out.extend_from_slice(&data);
                }
                Delimit::UntilClose => out.extend_from_slice(&data),
                Delimit::None => {}
            }
            Ok(false)
        }
        Err(frame) => match frame.into_trailers() {
            Ok(fields) => {
                let fields = trailers.then_some(&fields);
                encode_end(out, delimit, *left, fields).map(|()| true)
            }
            Err(_) => Ok(false),
        },
    }
}

/// Appends the end of a body: the last chunk (and trailers), or nothing once an announced
/// length is complete.
pub(crate) fn encode_end(
    out: &mut Vec<u8>,
    delimit: Delimit,
    left: u64,
    trailers: Option<&HeaderMap>,
) -> Result<(), LengthMismatch> {
    match delimit {
        Delimit::Chunked => {
            out.extend_from_slice(b"0\r\n");
            for (name, value) in trailers.into_iter().flatten() {
                encode_line(out, name, value);
            }
            out.extend_from_slice(b"\r\n");
            Ok(())
        }
        Delimit::Length(length) if left > 0 => Err(LengthMismatch(length)),
        _ => Ok(()),
    }
}

/// Appends a chunk size.
fn write_hex(out: &mut Vec<u8>, mut value: usize) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = DIGITS[value & 0xf];
        value >>= 4;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// A Content-Length value: decimal digits, or a list of the same repeated (RFC 9110
/// §8.6 lets a recipient take `42, 42` as 42).
pub(crate) fn content_length(value: &[u8]) -> Option<u64> {
    let mut length: Option<u64> = None;
    for item in value.split(|&byte| byte == b',').map(<[u8]>::trim_ascii) {
        if item.is_empty() || item.len() > 19 || !item.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let this = item
            .iter()
            .fold(0u64, |total, digit| total * 10 + u64::from(digit - b'0'));
        if length.is_some_and(|earlier| earlier != this) {
            return None;
        }
        length = Some(this);
    }
    length
}
