//! Waiting for the next request head: reading until one is whole, under the header and
//! idle timers, the listener's stop, and the HTTP/2 preface on a connection's first bytes.

use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::{Connection, RequestHead, take_head};
use crate::error::ProxyError;
use crate::listener::checks::{self, Rejection};

/// The HTTP/2 client connection preface (RFC 9113 §3.4).
pub(super) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What waiting for a head gave.
#[derive(Debug)]
// NOTE: returned once per request and matched at once, never stored: boxing the head would
// cost an allocation per request to save a move.
#[allow(clippy::large_enum_variant)]
pub(super) enum Awaited {
    Head(RequestHead),
    Refused(Rejection),
    Close,
    Http2,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<'_, S> {
    /// When the wait for the next head runs out.
    fn head_deadline(&self) -> Instant {
        match self.head_started {
            Some(started) => started + self.settings.header_read_timeout,
            None => self.idle_since + self.settings.idle_timeout,
        }
    }

    /// Reads until a request head is whole, the client leaves, a timer runs out or the
    /// listener stops.
    pub(super) fn poll_head(&mut self, cx: &mut Context<'_>) -> Poll<Awaited> {
        loop {
            if !self.read.is_empty() {
                let preface = self.requests == 0 && self.read[0] == b'P';
                if preface && self.read.starts_with(PREFACE) {
                    return Poll::Ready(Awaited::Http2);
                }
                // NOTE: a head can only end on a line feed, so a trickling client costs one
                // parse per line, not one per read.
                let new_line = self.read[self.looked_at..].contains(&b'\n');
                self.looked_at = self.read.len();
                let limits = &self.settings.head_limits;
                if self.read.len() > limits.max_header_bytes && !new_line {
                    return Poll::Ready(Awaited::Refused(checks::head_too_large(limits)));
                }
                if new_line && !(preface && PREFACE.starts_with(&self.read)) {
                    match take_head(&mut self.read, limits) {
                        Ok(Some(head)) => {
                            self.head_started = None;
                            self.looked_at = 0;
                            return Poll::Ready(Awaited::Head(head));
                        }
                        Ok(None) => {}
                        Err(rejection) => return Poll::Ready(Awaited::Refused(rejection)),
                    }
                }
            }
            match self.poll_fill(cx) {
                Poll::Ready(Ok(0) | Err(_)) => return Poll::Ready(Awaited::Close),
                Poll::Ready(Ok(_)) => continue,
                Poll::Pending => {}
            }
            // Waiting: for a head that has begun, or for the next request.
            if !self.read.is_empty() && self.head_started.is_none() {
                self.head_started = Some(Instant::now());
            }
            if self.stopping && self.read.is_empty() {
                return Poll::Ready(Awaited::Close);
            }
            let deadline = self.head_deadline();
            if self.timer_elapsed || self.timer.deadline() > deadline {
                self.timer.as_mut().reset(deadline);
                self.timer_elapsed = false;
                // Polled once with the side waker, so that it wakes the task when it fires.
                let mut side_cx = Context::from_waker(&self.side_waker);
                if self.timer.as_mut().poll(&mut side_cx).is_ready() {
                    self.timer_elapsed = true;
                }
            }
            let (stopped, _) = self.poll_side(cx);
            if stopped && self.read.is_empty() {
                // Idle, or nothing sent yet: nothing to finish.
                return Poll::Ready(Awaited::Close);
            }
            if !self.timer_elapsed {
                return Poll::Pending;
            }
            if Instant::now() < deadline {
                // Fired at an older, earlier instant: moved to the real deadline above on
                // the next turn.
                continue;
            }
            if self.read.is_empty() {
                // Nothing of a request arrived: close without an answer.
                return Poll::Ready(Awaited::Close);
            }
            return Poll::Ready(Awaited::Refused(Rejection {
                error: ProxyError::HeaderReadTimeout,
                reason: format!(
                    "request head not complete within {:?}",
                    self.settings.header_read_timeout
                ),
            }));
        }
    }
}
