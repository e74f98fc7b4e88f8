//! The read side of an HTTP/1.1 connection over bytes in memory, for the fuzzer.
//!
//! Why: whether a connection may carry another request is decided by the head parser, the
//! body's framing and the keep decision together, and a mistake there hands one client's
//! answer to another. [`replay`] runs exactly those pieces ([`take_head`], `start_body`,
//! `Remaining::take`, `reusable`) over reads given as byte slices, answer after answer,
//! so that "kept only when the framing ended exactly at the last byte read" can be checked
//! on any bytes. Not part of the proxy's interface.

use bytes::BytesMut;

use super::{Error, Framing, Start, Step, reusable, start_body, take_head};

/// What one answer came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    /// The final status.
    pub status: u16,
    /// How its body was framed.
    pub framing: Framing,
    /// Its body's bytes.
    pub body: Vec<u8>,
    /// The bytes the answer took: interim heads, its head and its body.
    pub taken: usize,
    /// The bytes the connection had read when the answer ended.
    pub read: usize,
    /// Whether the connection would carry another request.
    pub kept: bool,
}

/// Reads one answer (to a `HEAD` request if `head_request`) from `reads`, each what one
/// read from the socket brought; an empty read, or none left, is the endpoint closing.
/// Reads are taken only while the answer needs more bytes, as a connection does.
pub fn replay<'a>(
    reads: &mut impl Iterator<Item = &'a [u8]>,
    head_request: bool,
) -> Result<Replayed, Error> {
    let mut buffer = BytesMut::new();
    let mut read = 0;
    let mut fill = |buffer: &mut BytesMut| match reads.next() {
        Some(bytes) if !bytes.is_empty() => {
            buffer.extend_from_slice(bytes);
            read += bytes.len();
            true
        }
        _ => false,
    };
    let head = loop {
        if !buffer.is_empty()
            && let Some(head) = take_head(&mut buffer, head_request)?
        {
            break head;
        }
        if !fill(&mut buffer) {
            return Err(if buffer.is_empty() {
                Error::ClosedBeforeAnswer
            } else {
                Error::ClosedInHead
            });
        }
    };
    let (status, framing, keep_alive) = (head.status.as_u16(), head.framing, head.keep_alive);
    let (body, kept) = match start_body(framing, keep_alive, &mut buffer) {
        Start::Whole { body, reusable } => (body.map(|bytes| bytes.to_vec()), reusable),
        Start::Streaming(mut remaining) => {
            let mut body = Vec::new();
            loop {
                let step = match remaining.take(&mut buffer)? {
                    Some(step) => step,
                    None if fill(&mut buffer) => continue,
                    None => remaining.at_close()?,
                };
                match step {
                    Step::Frame(frame) => {
                        if let Ok(data) = frame.into_data() {
                            body.extend_from_slice(&data);
                        }
                    }
                    Step::Last(frame) => {
                        if let Ok(data) = frame.into_data() {
                            body.extend_from_slice(&data);
                        }
                        break;
                    }
                    Step::End => break,
                }
            }
            (Some(body), reusable(keep_alive, &buffer))
        }
    };
    Ok(Replayed {
        status,
        framing,
        body: body.unwrap_or_default(),
        taken: read - buffer.len(),
        read,
        kept,
    })
}
