//! Where one HTTP/1 request ends and the next begins, in the bytes a client sends: the
//! framing the `http_error` toxic needs to answer a request instead of forwarding it.
//!
//! The cutter only frames, it never rewrites: every byte pushed comes out exactly once, in
//! order, as a head, body bytes (chunked framing included) or opaque bytes, whatever the
//! reads' sizes (a property test holds it to that). Heads are parsed by `httparse`; a body
//! is framed as RFC 9112 says, by `Content-Length` or `Transfer-Encoding: chunked`, and a
//! request with neither has none.
//!
//! Whatever it cannot frame with certainty turns the rest of the stream opaque: a head
//! `httparse` refuses or longer than [`MAX_HEAD`], both framings at once or a coding other
//! than chunked (the ambiguities request smuggling lives on), a bad chunk size, a chunk
//! not followed by CRLF, trailers longer than [`MAX_HEAD`], and whatever follows an
//! `Upgrade` or `CONNECT` request (another protocol may take over). The toxic decides what
//! opaque bytes mean; the cutter only promises never to guess. Its memory is bounded:
//! it holds at most one incomplete head, chunk-size line or trailer section.

use bytes::{Buf, Bytes, BytesMut};

/// The longest head (or trailer section) framed; past it, the stream is opaque.
pub const MAX_HEAD: usize = 64 * 1024;

/// The most header fields in a head.
const MAX_FIELDS: usize = 128;

/// The longest chunk-size line (extensions included).
const MAX_CHUNK_LINE: usize = 4096;

/// One piece of the client's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cut {
    /// A request's head, whole: request line and fields through the empty line.
    Head(Bytes),
    /// Bytes of the current request's body, as sent (chunk sizes and trailers included).
    Body(Bytes),
    /// The current request is over (right after its head when it has no body).
    End,
    /// Bytes that cannot be framed as requests; everything after them is opaque too.
    Opaque(Bytes),
}

/// How the request being read is framed now.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between requests, or inside a head.
    #[default]
    Head,
    /// In a body of known length: the bytes left.
    Length(u64),
    /// In a chunked body.
    Chunked(Chunk),
    /// Nothing more is framed.
    Opaque,
}

/// Where in a chunked body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Reading a chunk-size line.
    Size,
    /// Inside a chunk's data: the bytes left.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// The trailer section after the last chunk, through its empty line.
    Trailers,
}

/// What a head says about the body after it.
enum Framing {
    /// No body; the next request follows.
    None,
    /// This many bytes.
    Length(u64),
    /// Chunked coding.
    Chunked,
    /// No body, and the stream may change protocol after this request.
    Switch,
}

/// Cuts a client's bytes into requests, one push at a time.
#[derive(Debug, Default)]
pub struct RequestCutter {
    state: State,
    /// An incomplete head, chunk-size line, chunk end or trailer section.
    held: BytesMut,
    /// How far `held` was searched for the end of a head.
    scanned: usize,
    /// Bytes of the trailer section read so far.
    trailers: usize,
}

impl RequestCutter {
    /// Frames `input`, appending what it holds to `out`.
    pub fn push(&mut self, mut input: Bytes, out: &mut Vec<Cut>) {
        while !input.is_empty() {
            match self.state {
                State::Opaque => {
                    out.push(Cut::Opaque(input));
                    return;
                }
                State::Head => self.head(&mut input, out),
                State::Length(left) => {
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(input.len());
                    out.push(Cut::Body(input.split_to(take)));
                    let left = left - take as u64;
                    self.state = State::Length(left);
                    if left == 0 {
                        self.end(out);
                    }
                }
                State::Chunked(chunk) => self.chunked(chunk, &mut input, out),
            }
        }
    }

    /// Hands back the bytes of an incomplete piece it holds (the toxic is going away).
    pub fn take_held(&mut self) -> Bytes {
        self.scanned = 0;
        self.trailers = 0;
        self.held.split().freeze()
    }

    /// Whether a request is being read: a head begun, or a body not yet ended.
    pub fn in_request(&self) -> bool {
        match self.state {
            State::Head => !self.held.is_empty(),
            State::Length(_) | State::Chunked(_) => true,
            State::Opaque => false,
        }
    }

    fn end(&mut self, out: &mut Vec<Cut>) {
        out.push(Cut::End);
        self.state = State::Head;
    }

    /// Gives up framing: what is held and what is left go out as opaque.
    fn give_up(&mut self, input: &mut Bytes, out: &mut Vec<Cut>) {
        self.held.extend_from_slice(input);
        input.clear();
        self.scanned = 0;
        out.push(Cut::Opaque(self.held.split().freeze()));
        self.state = State::Opaque;
    }

    fn head(&mut self, input: &mut Bytes, out: &mut Vec<Cut>) {
        self.held.extend_from_slice(input);
        input.clear();
        let Some(end) = head_end(&self.held, self.scanned) else {
            // NOTE: only the new bytes are searched next time, so a head sent a byte at a
            // time costs its length, not its square.
            self.scanned = self.held.len();
            if self.held.len() > MAX_HEAD {
                self.give_up(input, out);
            }
            return;
        };
        if end > MAX_HEAD {
            self.give_up(input, out);
            return;
        }
        let Some(framing) = framing_of(&self.held[..end]) else {
            self.give_up(input, out);
            return;
        };
        self.scanned = 0;
        let head = self.held.split_to(end).freeze();
        *input = self.held.split().freeze();
        out.push(Cut::Head(head));
        match framing {
            Framing::None | Framing::Length(0) => self.end(out),
            Framing::Length(len) => self.state = State::Length(len),
            Framing::Chunked => self.state = State::Chunked(Chunk::Size),
            Framing::Switch => {
                out.push(Cut::End);
                self.state = State::Opaque;
            }
        }
    }

    fn chunked(&mut self, chunk: Chunk, input: &mut Bytes, out: &mut Vec<Cut>) {
        match chunk {
            Chunk::Size => {
                let Some(line) = self.line(input, MAX_CHUNK_LINE, out) else {
                    return;
                };
                match httparse::parse_chunk_size(&line) {
                    Ok(httparse::Status::Complete((len, size))) if len == line.len() => {
                        out.push(Cut::Body(line));
                        self.state = State::Chunked(if size == 0 {
                            Chunk::Trailers
                        } else {
                            Chunk::Data(size)
                        });
                    }
                    _ => self.give_up_with(line, input, out),
                }
            }
            Chunk::Data(left) => {
                let take = usize::try_from(left).unwrap_or(usize::MAX).min(input.len());
                out.push(Cut::Body(input.split_to(take)));
                let left = left - take as u64;
                self.state = State::Chunked(if left == 0 {
                    Chunk::DataEnd
                } else {
                    Chunk::Data(left)
                });
            }
            Chunk::DataEnd => {
                let need = 2 - self.held.len();
                let take = need.min(input.len());
                self.held.extend_from_slice(&input.split_to(take));
                if self.held.len() < 2 {
                    return;
                }
                if &self.held[..] == b"\r\n" {
                    out.push(Cut::Body(self.held.split().freeze()));
                    self.state = State::Chunked(Chunk::Size);
                } else {
                    self.give_up(input, out);
                }
            }
            Chunk::Trailers => {
                let Some(line) = self.line(input, MAX_HEAD, out) else {
                    return;
                };
                self.trailers += line.len();
                if self.trailers > MAX_HEAD {
                    self.give_up_with(line, input, out);
                    return;
                }
                let last = &line[..] == b"\r\n" || &line[..] == b"\n";
                out.push(Cut::Body(line));
                if last {
                    self.trailers = 0;
                    self.end(out);
                }
            }
        }
    }

    /// `line`, already taken out of `held`, goes out opaque with the rest.
    fn give_up_with(&mut self, line: Bytes, input: &mut Bytes, out: &mut Vec<Cut>) {
        let mut rest = BytesMut::from(&line[..]);
        rest.extend_from_slice(input);
        input.clear();
        self.held.clear();
        self.scanned = 0;
        out.push(Cut::Opaque(rest.freeze()));
        self.state = State::Opaque;
    }

    /// One whole line (through its LF) from what is held and `input`; `None` while it is
    /// incomplete, or when it grew past `limit` (then the stream was given up).
    fn line(&mut self, input: &mut Bytes, limit: usize, out: &mut Vec<Cut>) -> Option<Bytes> {
        match input.iter().position(|&b| b == b'\n') {
            Some(at) => {
                self.held.extend_from_slice(&input[..=at]);
                input.advance(at + 1);
                if self.held.len() > limit {
                    self.give_up(input, out);
                    return None;
                }
                Some(self.held.split().freeze())
            }
            None => {
                self.held.extend_from_slice(input);
                input.clear();
                if self.held.len() > limit {
                    self.give_up(input, out);
                }
                None
            }
        }
    }
}

/// Where the head in `held` ends (just past its empty line), searching from `from`.
fn head_end(held: &[u8], from: usize) -> Option<usize> {
    let start = from.saturating_sub(3);
    let window = held.get(start..)?;
    window.windows(2).enumerate().find_map(|(i, pair)| {
        let at = start + i;
        match pair {
            b"\n\n" => Some(at + 2),
            b"\n\r" if held.get(at + 2) == Some(&b'\n') => Some(at + 3),
            _ => None,
        }
    })
}

/// How the body after this head is framed; `None` when it cannot be told for sure.
fn framing_of(head: &[u8]) -> Option<Framing> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
    let mut request = httparse::Request::new(&mut fields);
    match request.parse(head) {
        Ok(httparse::Status::Complete(len)) if len == head.len() => {}
        _ => return None,
    }
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut upgrade = request.method == Some("CONNECT");
    for field in request.headers.iter() {
        let value = std::str::from_utf8(field.value).ok()?.trim();
        if field.name.eq_ignore_ascii_case("content-length") {
            let parsed = parse_length(value)?;
            if length.is_some_and(|seen| seen != parsed) {
                return None;
            }
            length = Some(parsed);
        } else if field.name.eq_ignore_ascii_case("transfer-encoding") {
            if chunked || !value.eq_ignore_ascii_case("chunked") {
                return None;
            }
            chunked = true;
        } else if field.name.eq_ignore_ascii_case("upgrade") {
            upgrade = true;
        }
    }
    Some(match (length, chunked) {
        (Some(_), true) => return None,
        // A request that may switch protocols and has a body: where the new protocol
        // begins depends on the answer, which the cutter does not see.
        (Some(1..), _) | (_, true) if upgrade => return None,
        _ if upgrade => Framing::Switch,
        (None, true) => Framing::Chunked,
        (Some(len), false) => Framing::Length(len),
        (None, false) => Framing::None,
    })
}

/// A Content-Length value: digits only (no sign, no spaces, no list).
fn parse_length(value: &str) -> Option<u64> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}
