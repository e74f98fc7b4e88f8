//! The `http_error` toxic on one connection: the requests a client sends are cut apart
//! ([`cutter`]), and to its toxicity's share of them the proxy answers a status itself
//! instead of forwarding them (Toxiproxy has no such toxic; its users asked for one).
//!
//! Decided here, and documented for users in the README:
//! - The draw is per request (toxicity is the share of requests answered), not per
//!   connection, and the answer is written when the whole request was read (so a client
//!   that sends `Expect: 100-continue` and then its body is answered after the body).
//! - The answer keeps the connection open (`content-length`, no `connection: close`), so a
//!   keep-alive client sends its next request on it, judged afresh. It travels back to
//!   the client through the downstream stream's toxics, as the upstream's answer would
//!   (a downstream latency delays it).
//! - Bytes the cutter cannot frame (not HTTP/1, an oversized head, a bad chunk size, an
//!   upgraded connection) pass through untouched, with one log line per connection: the
//!   toxic breaks requests, it is not a firewall, and the upstream judges those bytes as it
//!   would without the proxy. Only when the bytes stop making sense inside a request
//!   being answered (its body is being dropped) does the connection close, with its own
//!   log line, since forwarding the rest of a body without its head would be worse.
//! - The answer goes back without waiting for the upstream: a client that pipelines (sends a request before the
//!   answer to the previous one came) may see it before the upstream's answer to an
//!   earlier request. No common client pipelines; framing the answers to fix this would
//!   mean parsing the upstream's side too.

pub mod cutter;
#[cfg(test)]
mod tests;

use bytes::Bytes;
use rand::Rng;
use rand::rngs::SmallRng;

use super::toxic::HttpError;
use cutter::{Cut, RequestCutter};

/// What one `http_error` toxic knows of one connection.
#[derive(Debug, Default)]
pub struct HttpFaults {
    cutter: RequestCutter,
    /// Whether the request being read is answered by the toxic; `None` between requests.
    answering: Option<bool>,
    /// Whether the connection was already logged as not framed.
    said_opaque: bool,
}

/// What a chunk of the client's bytes came to.
#[derive(Debug, Default, PartialEq)]
pub struct Filtered {
    /// Bytes to forward to the upstream, in order.
    pub forward: Vec<Bytes>,
    /// Answers to write back to the client, in order.
    pub answers: Vec<Bytes>,
    /// The connection must close (it stopped making sense inside an answered request).
    pub close: bool,
}

/// What is left when the toxic goes away from an open connection.
#[derive(Debug, PartialEq)]
pub enum Release {
    /// Bytes it held (part of a head, a chunk line): they go to the upstream.
    Forward(Bytes),
    /// It was dropping an answered request's body: the rest of it must not reach the
    /// upstream as if it were a request, so the connection closes.
    Close,
}

impl HttpFaults {
    /// Runs one chunk from the client through the toxic.
    pub fn filter(
        &mut self,
        chunk: Bytes,
        attrs: &HttpError,
        toxicity: f64,
        rng: &mut SmallRng,
        out: &mut Filtered,
    ) {
        let mut cuts = Vec::new();
        self.cutter.push(chunk, &mut cuts);
        for cut in cuts {
            match cut {
                Cut::Head(head) => {
                    let answer = rng.random::<f64>() < toxicity;
                    self.answering = Some(answer);
                    if !answer {
                        out.forward.push(head);
                    }
                }
                Cut::Body(body) => {
                    if self.answering != Some(true) {
                        out.forward.push(body);
                    }
                }
                Cut::End => {
                    if self.answering.take() == Some(true) {
                        out.answers.push(attrs.answer());
                    }
                }
                Cut::Opaque(bytes) => {
                    if self.answering == Some(true) {
                        tracing::info!(
                            "http_error: the body of a request being answered cannot be framed; closing the connection"
                        );
                        out.close = true;
                        return;
                    }
                    if !self.said_opaque {
                        self.said_opaque = true;
                        tracing::info!(
                            "http_error: the client's bytes are not HTTP/1 requests it can frame; passing them through untouched"
                        );
                    }
                    out.forward.push(bytes);
                }
            }
        }
    }

    /// Ends the toxic's part in the connection (it was removed).
    pub fn release(mut self) -> Release {
        if self.answering == Some(true) && self.cutter.in_request() {
            Release::Close
        } else {
            Release::Forward(self.cutter.take_held())
        }
    }
}

impl HttpError {
    /// The answer written for one request: the status, `content-length`, the body.
    pub fn answer(&self) -> Bytes {
        let reason = http::StatusCode::from_u16(self.status)
            .ok()
            .and_then(|status| status.canonical_reason())
            .unwrap_or("");
        let head = format!(
            "HTTP/1.1 {} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nx-blastwall-toxic: http_error\r\n\r\n",
            self.status,
            self.body.len()
        );
        let mut answer = head.into_bytes();
        answer.extend_from_slice(self.body.as_bytes());
        Bytes::from(answer)
    }
}
