//! The chunked transfer coding (RFC 9112 §7.1), decoded from a read buffer as it fills.
//!
//! Sans-IO: [`Decoder::decode`] takes what it can from the front of the buffer and says
//! what it found, or that it needs more bytes. Chunk data comes out as slices of the
//! buffer (no copy); sizes, line endings and trailers are held to the RFC, with bounds on
//! the lengths an endpoint controls.
//!
//! Line endings are CRLF and nothing else, in the chunk-size line, its extensions (which
//! httparse skips byte by byte, a bare LF included) and the trailer section (where httparse
//! takes a bare LF as a line end): a recipient that ends a line at a bare LF, as some do,
//! would see a different body, and that disagreement is what request smuggling is made of.
//! Trailers are filtered as they are read ([`super::trailer_allowed`]).

use bytes::{Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};

/// The longest chunk-size line taken, extensions included.
const MAX_SIZE_LINE: usize = 4096;
/// The largest trailer section taken.
const MAX_TRAILERS_BYTES: usize = 16 * 1024;
/// The most trailer fields taken.
const MAX_TRAILERS: usize = 64;

/// A byte RFC 9110 §5.5 allows nowhere in a line's text: a control byte other than HTAB.
fn is_control(byte: u8) -> bool {
    (byte < 0x20 && byte != b'\t') || byte == 0x7f
}

/// Where the decoder is in the coding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At a chunk-size line.
    Size,
    /// Inside a chunk's data, with this many bytes left.
    Data(u64),
    /// After a chunk's data, at its CRLF.
    DataEnd,
    /// After the last chunk, at the trailer section.
    Trailers,
    /// Past the end.
    Done,
}

/// What [`Decoder::decode`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// Body bytes.
    Data(Bytes),
    /// The trailer fields; the end comes next.
    Trailers(HeaderMap),
    /// The body is complete.
    End,
    /// Nothing can be taken until more bytes arrive.
    NeedMore,
}

/// Why a chunked body is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed chunked body: {0}")]
pub struct ChunkedError(pub &'static str);

/// A chunked body's decoder.
#[derive(Debug, Clone)]
pub struct Decoder {
    state: State,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// A decoder at the start of a chunked body.
    pub fn new() -> Self {
        Self { state: State::Size }
    }

    /// Whether the body has ended.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Takes the next piece of the body off the front of `buffer`.
    pub fn decode(&mut self, buffer: &mut BytesMut) -> Result<Decoded, ChunkedError> {
        loop {
            match self.state {
                State::Size => {
                    if !buffer.first().is_some_and(u8::is_ascii_hexdigit) {
                        if buffer.is_empty() {
                            return Ok(Decoded::NeedMore);
                        }
                        return Err(ChunkedError("chunk size is not a hex number"));
                    }
                    match httparse::parse_chunk_size(buffer) {
                        Ok(httparse::Status::Complete((len, size))) => {
                            // NOTE: the line ends in CRLF (httparse found it); before it,
                            // an extension may hold any byte httparse skipped.
                            if buffer[..len - 2].iter().any(|&byte| is_control(byte)) {
                                return Err(ChunkedError(
                                    "control character or bare LF in a chunk-size line",
                                ));
                            }
                            let _ = buffer.split_to(len);
                            self.state = if size == 0 {
                                State::Trailers
                            } else {
                                State::Data(size)
                            };
                        }
                        Ok(httparse::Status::Partial) => {
                            // Refused at once, not when the line ends (if it ever does).
                            let line = buffer.strip_suffix(b"\r").unwrap_or(buffer);
                            if line.iter().any(|&byte| is_control(byte)) {
                                return Err(ChunkedError("control byte in a chunk-size line"));
                            }
                            if buffer.len() > MAX_SIZE_LINE {
                                return Err(ChunkedError("chunk-size line too long"));
                            }
                            return Ok(Decoded::NeedMore);
                        }
                        Err(_) => return Err(ChunkedError("invalid chunk-size line")),
                    }
                }
                State::Data(left) => {
                    if buffer.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let take = usize::try_from(left)
                        .unwrap_or(usize::MAX)
                        .min(buffer.len());
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        State::DataEnd
                    } else {
                        State::Data(left)
                    };
                    return Ok(Decoded::Data(buffer.split_to(take).freeze()));
                }
                State::DataEnd => {
                    if buffer.len() < 2 {
                        if buffer.first().is_some_and(|&byte| byte != b'\r') {
                            return Err(ChunkedError("chunk data not followed by CRLF"));
                        }
                        return Ok(Decoded::NeedMore);
                    }
                    if &buffer[..2] != b"\r\n" {
                        return Err(ChunkedError("chunk data not followed by CRLF"));
                    }
                    let _ = buffer.split_to(2);
                    self.state = State::Size;
                }
                State::Trailers => return self.trailers(buffer),
                State::Done => return Ok(Decoded::End),
            }
        }
    }

    fn trailers(&mut self, buffer: &mut BytesMut) -> Result<Decoded, ChunkedError> {
        if buffer.starts_with(b"\r\n") {
            let _ = buffer.split_to(2);
            self.state = State::Done;
            return Ok(Decoded::End);
        }
        if buffer.first() == Some(&b'\n') {
            return Err(ChunkedError("bare LF after the last chunk"));
        }
        let mut slots = [httparse::EMPTY_HEADER; MAX_TRAILERS];
        let (len, fields) = match httparse::parse_headers(buffer, &mut slots) {
            Ok(httparse::Status::Complete((len, fields))) => (len, fields),
            Ok(httparse::Status::Partial) => {
                if buffer.len() > MAX_TRAILERS_BYTES {
                    return Err(ChunkedError("trailer section too large"));
                }
                return Ok(Decoded::NeedMore);
            }
            Err(httparse::Error::TooManyHeaders) => {
                return Err(ChunkedError("too many trailer fields"));
            }
            Err(_) => return Err(ChunkedError("malformed trailer section")),
        };
        if has_bare_lf(&buffer[..len]) {
            return Err(ChunkedError("bare LF in the trailer section"));
        }
        let mut trailers = HeaderMap::with_capacity(fields.len());
        for field in fields {
            let name = HeaderName::from_bytes(field.name.as_bytes())
                .map_err(|_| ChunkedError("invalid trailer name"))?;
            if !super::trailer_allowed(&name) {
                tracing::debug!(%name, "trailer field dropped");
                continue;
            }
            let value = HeaderValue::from_bytes(field.value)
                .map_err(|_| ChunkedError("invalid trailer value"))?;
            trailers.append(name, value);
        }
        let _ = buffer.split_to(len);
        self.state = State::Done;
        Ok(Decoded::Trailers(trailers))
    }
}

/// Whether `bytes` has an LF that no CR comes right before.
fn has_bare_lf(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .enumerate()
        .any(|(at, &byte)| byte == b'\n' && (at == 0 || bytes[at - 1] != b'\r'))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `wire` whole: the data, and the trailers if any; or why it was refused.
    fn decode_all(wire: &[u8]) -> Result<(Vec<u8>, Option<HeaderMap>), ChunkedError> {
        let mut buffer = BytesMut::from(wire);
        let mut decoder = Decoder::new();
        let (mut data, mut trailers) = (Vec::new(), None);
        loop {
            match decoder.decode(&mut buffer)? {
                Decoded::Data(bytes) => data.extend_from_slice(&bytes),
                Decoded::Trailers(fields) => trailers = Some(fields),
                Decoded::End => return Ok((data, trailers)),
                Decoded::NeedMore => return Err(ChunkedError("incomplete")),
            }
        }
    }

    #[test]
    fn a_chunked_body_with_extensions_and_trailers_decodes() {
        let (data, trailers) =
            decode_all(b"3;name=\"va;l\"\r\nabc\r\n2\r\nde\r\n0\r\nx-sum: 9\r\n\r\n").unwrap();
        assert_eq!(data, b"abcde");
        assert_eq!(trailers.unwrap()["x-sum"], "9");
        assert_eq!(decode_all(b"0\r\n\r\n").unwrap(), (Vec::new(), None));
    }

    #[test]
    fn a_bare_lf_or_a_control_character_in_a_chunk_extension_is_refused() {
        for wire in [
            &b"3;a\nb\r\nabc\r\n0\r\n\r\n"[..],
            b"3;\n\r\nabc\r\n0\r\n\r\n",
            b"3;a=\x00\r\nabc\r\n0\r\n\r\n",
            b"0;x\n\r\n\r\n",
        ] {
            let refused = decode_all(wire);
            assert!(refused.is_err(), "{:?}", String::from_utf8_lossy(wire));
            assert_ne!(refused, Err(ChunkedError("incomplete")));
        }
        assert!(decode_all(b"3;a=\tb\r\nabc\r\n0\r\n\r\n").is_ok());
    }

    #[test]
    fn a_last_chunk_ended_by_a_bare_lf_is_refused() {
        for wire in [
            &b"0\r\n\n"[..],
            b"3\r\nabc\r\n0\r\n\n",
            b"0\r\nx-sum: 1\n\r\n",
            b"0\r\nx-sum: 1\r\n\n",
        ] {
            let refused = decode_all(wire);
            assert!(refused.is_err(), "{:?}", String::from_utf8_lossy(wire));
            assert_ne!(refused, Err(ChunkedError("incomplete")));
        }
    }

    #[test]
    fn trailers_that_would_frame_route_or_authorize_are_dropped() {
        let (_, trailers) = decode_all(
            b"0\r\nContent-Length: 99\r\nHost: evil\r\nx-sum: 1\r\nTransfer-Encoding: chunked\r\n\
              Authorization: Basic eA==\r\nCookie: a=b\r\nContent-Type: text/x\r\n\
              Content_Length: 5\r\nConnection: close\r\nTE: trailers\r\ngrpc-status: 0\r\n\r\n",
        )
        .unwrap();
        let trailers = trailers.unwrap();
        let names: Vec<_> = trailers.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["x-sum", "grpc-status"]);
    }
}
