//! The HTTP/1 head guard: an I/O wrapper between the socket and hyper that sees every request
//! head as it arrives and holds it back until it is whole and checked.
//!
//! Why not let hyper alone parse: hyper accepts `Content-Length` together with
//! `Transfer-Encoding` and quietly drops one, answers its own parse errors with a bare status,
//! and its header timeout also cuts idle keep-alive connections. The guard follows message
//! boundaries itself (head, then exactly `Content-Length` body bytes, then the next head), so
//! for every head it knows where it starts, and:
//!
//! - withholds the head from hyper until it is complete, then runs [`check_head`] on it;
//! - refuses a bad head by handing hyper, in its place, a stand-in request whose answer the
//!   service takes from the [`Tracker`]: the client gets a normal response (400, 408, 431 with
//!   `x-blastwall-error`) written by hyper in order after any earlier response, then the
//!   connection closes;
//! - times a head from its first byte (a fresh connection from accept): a client that has
//!   not finished one within `header_read_timeout` while nothing is in flight gets 408 (or,
//!   having sent nothing, is closed).
//!
//! After a chunked body or an upgrade the guard can no longer tell where heads start without
//! decoding, so it stops checking and only times reads that arrive while the connection is
//! idle; hyper's own checks (which follow RFC 9112 too, with bare answers) cover what follows.
//! HTTP/2 (the prior-knowledge preface, or ALPN `h2`) passes through untouched.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::checks::{Framing, Head, HeadLimits, Rejection, check_head};
use super::tracker::Tracker;
use crate::forward::ProxyError;

/// The HTTP/2 client connection preface (RFC 9113 §3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The request hyper parses in place of a refused head; its answer is the rejection.
pub(super) const STAND_IN: &[u8] =
    b"GET / HTTP/1.1\r\nhost: blastwall.invalid\r\nconnection: close\r\n\r\n";

/// Where the guard is in the byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At or inside a head whose start is known.
    Head,
    /// Inside a body of this many more bytes.
    Body(u64),
    /// HTTP/1 whose message boundaries are no longer known.
    Untracked,
    /// HTTP/2: nothing to do.
    Http2,
    /// A head was refused: after the stand-in, hyper reads nothing more. Not the end of the
    /// stream, which hyper would take as the client leaving and drop the answer; the
    /// stand-in asks to close, so hyper closes once the answer is written.
    Refused,
    /// The connection timed out with no head to answer: end of stream for hyper.
    Closed,
}

/// The protocol a connection starts with, when the listener already knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Start {
    /// HTTP/1, or HTTP/2 with prior knowledge (recognised by its preface).
    Sniff,
    /// HTTP/2 negotiated by ALPN.
    Http2,
}

/// An I/O stream with the HTTP/1 head guard on its read side.
#[derive(Debug)]
pub(super) struct Guarded<S> {
    inner: S,
    tracker: Arc<Tracker>,
    limits: HeadLimits,
    header_read_timeout: Duration,
    state: State,
    /// Bytes of a head not yet complete, withheld from hyper.
    held: Vec<u8>,
    /// Bytes to hand hyper before reading more, and how many are already handed.
    out: Vec<u8>,
    out_at: usize,
    /// Heads handed to hyper whole; a stand-in for a refused head is number `heads + 1`.
    heads: u64,
    /// No head completed yet: the preface may still come, and the head timer runs from
    /// accept.
    fresh: bool,
    /// The head timer, while a head is awaited.
    deadline: Option<Pin<Box<Sleep>>>,
    /// In untracked mode, the request count when the awaited bytes began.
    untracked_since: Option<u64>,
}

impl<S> Guarded<S> {
    pub(super) fn new(
        inner: S,
        tracker: Arc<Tracker>,
        limits: HeadLimits,
        header_read_timeout: Duration,
        start: Start,
    ) -> Self {
        let (state, deadline) = match start {
            Start::Sniff => (
                State::Head,
                Some(Box::pin(tokio::time::sleep(header_read_timeout))),
            ),
            Start::Http2 => (State::Http2, None),
        };
        Self {
            inner,
            tracker,
            limits,
            header_read_timeout,
            state,
            held: Vec::new(),
            out: Vec::new(),
            out_at: 0,
            heads: 0,
            fresh: true,
            deadline,
            untracked_since: None,
        }
    }

    /// Walks `data` (bytes in stream order, starting where the guard is), advancing the
    /// state. Returns how many leading bytes hyper may have; the rest is the start of a head
    /// to withhold. On a refused head, returns how many bytes before it hyper may still have.
    fn observe(&mut self, data: &[u8]) -> Result<usize, (usize, Rejection)> {
        let mut at = 0;
        while at < data.len() {
            match self.state {
                State::Http2 | State::Untracked | State::Refused | State::Closed => {
                    return Ok(data.len());
                }
                State::Body(left) => {
                    let take = usize::try_from(left)
                        .unwrap_or(usize::MAX)
                        .min(data.len() - at);
                    at += take;
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        State::Head
                    } else {
                        State::Body(left)
                    };
                }
                State::Head => {
                    let head = &data[at..];
                    if self.fresh && head.first() == Some(&b'P') {
                        if head.len() >= PREFACE.len() && head.starts_with(PREFACE) {
                            self.state = State::Http2;
                            self.deadline = None;
                            return Ok(data.len());
                        }
                        if PREFACE.starts_with(head) {
                            return Ok(at);
                        }
                    }
                    match check_head(head, &self.limits) {
                        Ok(Head::Partial) => return Ok(at),
                        Ok(Head::Complete { len, framing }) => {
                            at += len;
                            self.heads += 1;
                            self.fresh = false;
                            self.deadline = None;
                            self.state = match framing {
                                Framing::Length(0) => State::Head,
                                Framing::Length(length) => State::Body(length),
                                Framing::Chunked | Framing::Opaque => State::Untracked,
                            };
                        }
                        Err(rejection) => return Err((at, rejection)),
                    }
                }
            }
        }
        Ok(at)
    }

    /// Refuses the head being read: hyper gets the stand-in request, whose answer is
    /// `rejection`, and then the end of the stream.
    fn refuse(&mut self, rejection: Rejection) {
        tracing::debug!(error = rejection.error.as_str(), reason = %rejection.reason, "request head refused");
        self.tracker.reject(self.heads + 1, rejection);
        self.held = Vec::new();
        self.out.extend_from_slice(STAND_IN);
        self.state = State::Refused;
        self.deadline = None;
    }

    /// Arms the head timer when a head starts being withheld (it runs from the head's first
    /// byte, or from accept for the first head).
    fn arm_if_new_head(&mut self) {
        if !self.held.is_empty() && self.deadline.is_none() {
            self.deadline = Some(Box::pin(tokio::time::sleep(self.header_read_timeout)));
        }
    }

    /// Polls the head timer when it applies; true when it has run out.
    fn head_timed_out(&mut self, cx: &mut Context<'_>) -> bool {
        if self.tracker.in_flight() > 0 {
            return false;
        }
        let awaited = match self.state {
            State::Head => !self.held.is_empty() || self.fresh,
            State::Untracked => self.untracked_since == Some(self.tracker.started()),
            _ => false,
        };
        if !awaited {
            return false;
        }
        match &mut self.deadline {
            Some(deadline) => deadline.as_mut().poll(cx).is_ready(),
            None => false,
        }
    }

    /// In untracked mode, bytes arriving while idle start the head timer.
    fn note_untracked_read(&mut self) {
        if self.state == State::Untracked && self.tracker.in_flight() == 0 {
            let started = self.tracker.started();
            if self.untracked_since != Some(started) {
                self.untracked_since = Some(started);
                self.deadline = Some(Box::pin(tokio::time::sleep_until(
                    Instant::now() + self.header_read_timeout,
                )));
            }
        }
    }

    fn drain_out(&mut self, buf: &mut ReadBuf<'_>) -> bool {
        if self.out_at >= self.out.len() {
            return false;
        }
        let n = (self.out.len() - self.out_at).min(buf.remaining());
        buf.put_slice(&self.out[self.out_at..self.out_at + n]);
        self.out_at += n;
        if self.out_at == self.out.len() {
            self.out.clear();
            self.out_at = 0;
        }
        true
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.drain_out(buf) {
                return Poll::Ready(Ok(()));
            }
            match this.state {
                State::Closed => return Poll::Ready(Ok(())),
                State::Refused => return Poll::Pending,
                _ => {}
            }
            if this.state == State::Http2 {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            let before = buf.filled().len();
            match Pin::new(&mut this.inner).poll_read(cx, buf) {
                Poll::Pending => {
                    if !this.head_timed_out(cx) {
                        return Poll::Pending;
                    }
                    if this.held.is_empty() && this.state != State::Untracked {
                        // Nothing of a request arrived: close without an answer.
                        this.state = State::Closed;
                    } else if this.state == State::Untracked {
                        // Part of the head is already with hyper; only closing is safe.
                        this.state = State::Closed;
                    } else {
                        this.refuse(Rejection {
                            error: ProxyError::HeaderReadTimeout,
                            reason: format!(
                                "request head not complete within {:?}",
                                this.header_read_timeout
                            ),
                        });
                    }
                    continue;
                }
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Ready(Ok(())) => {}
            }
            let read = buf.filled().len() - before;
            if read == 0 {
                // The client closed; a withheld partial head dies with the connection.
                return Poll::Ready(Ok(()));
            }
            this.tracker.note_bytes_received();
            this.note_untracked_read();
            if !this.held.is_empty() {
                // The head began in an earlier read: judge it with this read appended, and
                // hand hyper what is settled from the held bytes.
                let new_line = buf.filled()[before..].contains(&b'\n');
                this.held.extend_from_slice(&buf.filled()[before..]);
                buf.set_filled(before);
                if !new_line {
                    // NOTE: a head can only end on a line feed, so a trickling client costs
                    // one parse per line, not one per read.
                    if this.held.len() > this.limits.max_header_bytes {
                        this.refuse(Rejection {
                            error: ProxyError::RequestHeadersTooLarge,
                            reason: format!(
                                "request head larger than {} bytes",
                                this.limits.max_header_bytes
                            ),
                        });
                    }
                    continue;
                }
                let held = std::mem::take(&mut this.held);
                match this.observe(&held) {
                    Ok(settled) => {
                        this.out.extend_from_slice(&held[..settled]);
                        this.held = held[settled..].to_vec();
                    }
                    Err((settled, rejection)) => {
                        this.out.extend_from_slice(&held[..settled]);
                        this.refuse(rejection);
                    }
                }
            } else {
                let chunk_end = buf.filled().len();
                let result = this.observe(&buf.filled()[before..chunk_end]);
                match result {
                    Ok(settled) => {
                        this.held = buf.filled()[before + settled..].to_vec();
                        buf.set_filled(before + settled);
                    }
                    Err((settled, rejection)) => {
                        buf.set_filled(before + settled);
                        this.refuse(rejection);
                    }
                }
            }
            this.arm_if_new_head();
            if buf.filled().len() > before {
                return Poll::Ready(Ok(()));
            }
            // Everything read was withheld or queued: hand over the queue, or read on.
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
