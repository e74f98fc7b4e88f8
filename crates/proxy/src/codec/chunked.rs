//! The chunked transfer coding (RFC 9112 §7.1), decoded from a read buffer as it fills.
//!
//! Sans-IO: [`Decoder::decode`] takes what it can from the front of the buffer and says
//! what it found, or that it needs more bytes. Chunk data comes out as slices of the
//! buffer (no copy); sizes, line endings and trailers are held to the RFC, with bounds on
//! the lengths an endpoint controls.

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
                            // httparse takes any byte but CR in an extension; a bare LF
                            // there ends the line early for a laxer reader.
                            if buffer[..len - 2].iter().any(|&byte| is_control(byte)) {
                                return Err(ChunkedError("control byte in a chunk-size line"));
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
        let mut trailers = HeaderMap::with_capacity(fields.len());
        for field in fields {
            let name = HeaderName::from_bytes(field.name.as_bytes())
                .map_err(|_| ChunkedError("invalid trailer name"))?;
            let value = HeaderValue::from_bytes(field.value)
                .map_err(|_| ChunkedError("invalid trailer value"))?;
            trailers.append(name, value);
        }
        let _ = buffer.split_to(len);
        self.state = State::Done;
        Ok(Decoded::Trailers(trailers))
    }
}
