//! HTTP/2 floods: what hyper and `h2` already bound, the values we hold them to, and a guard
//! for the floods they leave open.
//!
//! An HTTP/2 client can make a server work without asking for anything: frames that open no
//! request and carry no data, each cheap to send and each read, parsed and often answered.
//! `h2` (0.4.20) bounds most such abuse itself and ends the connection with a GOAWAY
//! `ENHANCE_YOUR_CALM`; [`settings`] holds each of its knobs at an explicit value:
//!
//! - rapid reset (CVE-2023-44487): streams the client resets before hyper has taken them
//!   from `h2`'s accept queue count against `max_pending_accept_reset_streams`;
//! - CONTINUATION floods: a header block may span only so many frames;
//! - HPACK bombs: a header list decoded past four times `max_header_list_size` ends the
//!   connection, and the decoder's dynamic table is `header_table_size`;
//! - empty DATA frames: a budget of small DATA frames;
//! - errors forced on purpose ("MadeYouReset"), too many streams at once, stream ids that go
//!   backwards: `max_local_error_reset_streams`, `max_concurrent_streams`, protocol errors.
//!
//! What `h2` does not bound is the flood of frames it must only read or acknowledge: PING
//! and SETTINGS (each answered with an ACK; `h2` holds one pending ACK, so memory is bounded,
//! but not the time spent), PRIORITY, WINDOW_UPDATE, RST_STREAM and frames of unknown type.
//! A client sending them at line rate keeps a core busy for as long as it likes. Nor does it
//! bound rapid reset paced so that hyper has accepted each stream (and started forwarding
//! it) before the reset comes: then only `max_concurrent_streams` bounds the work, per
//! round trip. The [`FloodGuard`] bounds both: it sits between the socket and hyper, reads
//! the 9-byte head of each frame as the bytes go by (no copy, no allocation, no clock on the
//! normal path), and keeps a [`Ledger`] per connection: a [`Budget`](ledger::Budget) of
//! control frames and the share of requests cancelled ([`Resets`](ledger::Resets)). Past
//! either, the connection gets a GOAWAY `ENHANCE_YOUR_CALM` and is closed, as `h2` does for
//! the floods it knows.
//!
//! Why a budget that requests and responses earn, not a plain rate: a legitimate client
//! sends such frames in proportion to its traffic (a WINDOW_UPDATE for the data it reads,
//! a RST_STREAM for the request it cancels), and almost none when idle. The values follow
//! Envoy's flood limits (see [`HEADERS_EARN`](ledger::HEADERS_EARN) and
//! [`DATA_SENT_EARNS`](ledger::DATA_SENT_EARNS)).

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use hyper::server::conn::http2;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use frames::FrameScanner;
use ledger::{Flood, Ledger};

mod frames;
mod ledger;
#[cfg(test)]
mod tests;

/// Streams a client may have open at once. nginx's `http2_max_concurrent_streams` is 128
/// (hyper's own default 200, Go's 250); RFC 9113 advises no fewer than 100. Each one is a
/// request in the pipeline, so this is what one connection can ask of the upstreams at once.
const MAX_CONCURRENT_STREAMS: u32 = 128;

/// Streams the client may reset while we still hold them before the connection is closed
/// (rapid reset, CVE-2023-44487). `h2`'s default, 20: a client cancels a handful of requests
/// at once, an attack thousands.
const MAX_PENDING_ACCEPT_RESET_STREAMS: usize = 20;

/// Streams we may be made to reset for the client's protocol errors over a connection's
/// life ("MadeYouReset", CVE-2025-8671). hyper's and `h2`'s default, 1024.
const MAX_LOCAL_ERROR_RESET_STREAMS: usize = 1024;

/// The HPACK dynamic table our decoder keeps per connection: the RFC 7541 default, 4 KiB.
/// Larger tables only save a client bytes, and cost us memory per connection.
const HEADER_TABLE_SIZE: u32 = 4096;

/// The largest frame a client may send: 16 KiB, the protocol's minimum and everyone's
/// default; larger frames only let one frame hold the read loop longer.
const MAX_FRAME_SIZE: u32 = 16 * 1024;

/// Flow-control windows, per stream and for the connection: what one client can make us
/// buffer of request bodies before we read them. hyper's defaults (1 MiB; Envoy's stream
/// window is 256 MiB, nginx reads a body in 64 KiB): enough for a fast upload, and bounded
/// at 1 MiB a connection since the connection window caps all streams together.
const STREAM_WINDOW: u32 = 1024 * 1024;
const CONNECTION_WINDOW: u32 = 1024 * 1024;

/// What we buffer per stream of a response a client is slow to read: hyper's default,
/// ~400 KiB, about one bandwidth-delay product of a fast link.
const MAX_SEND_BUF_SIZE: usize = 400 * 1024;

/// Applies the flood limits to hyper's HTTP/2 server. Call it before listener-specific
/// settings, which then win (`max_header_list_size` comes from the listener's head limits).
pub(super) fn settings(builder: &mut http2::Builder<TokioExecutor>) {
    builder
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .max_pending_accept_reset_streams(MAX_PENDING_ACCEPT_RESET_STREAMS)
        .max_local_error_reset_streams(MAX_LOCAL_ERROR_RESET_STREAMS)
        .header_table_size(HEADER_TABLE_SIZE)
        .max_frame_size(MAX_FRAME_SIZE)
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_send_buf_size(MAX_SEND_BUF_SIZE)
        // NOTE: no adaptive window: it pings the client to measure the link, and a
        // window that grows with what a client claims is not one we bound.
        .adaptive_window(false)
        // No keep-alive PINGs: `idle_timeout` closes idle connections already, and a
        // timer per connection is a cost on every one.
        .keep_alive_interval(None);
}

/// Where the guard is in a connection's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Frames pass.
    Open,
    /// The client has flooded: hyper has been given the frames before the one too many and
    /// gets nothing more; the next read sends the GOAWAY and fails.
    Flooded(Flood),
    /// The GOAWAY has been sent (or could not be): every read and write fails.
    Closed,
}

/// Sits between an HTTP/2 connection's stream and hyper, and closes the connection with a
/// GOAWAY `ENHANCE_YOUR_CALM` when the client floods it (see [`Ledger`]).
#[derive(Debug)]
pub(super) struct FloodGuard<S> {
    inner: S,
    inbound: FrameScanner,
    outbound: FrameScanner,
    ledger: Ledger,
    state: State,
}

impl<S> FloodGuard<S> {
    /// Guards a stream on which the client's connection preface is still to be read.
    pub(super) fn new(inner: S) -> Self {
        Self {
            inner,
            inbound: FrameScanner::inbound(),
            outbound: FrameScanner::outbound(),
            ledger: Ledger::new(Instant::now()),
            state: State::Open,
        }
    }

    /// Notes frames we sent.
    fn sent(&mut self, bytes: &[u8]) {
        let ledger = &mut self.ledger;
        self.outbound.scan(bytes, |head| {
            ledger.outbound(head);
            true
        });
    }
}

/// What hyper hears when the guard closes the connection (and logs at debug).
fn flooded() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "closed for an HTTP/2 flood (too many control frames or cancelled requests)",
    )
}

impl<S: AsyncRead + AsyncWrite + Unpin> FloodGuard<S> {
    /// Sends the GOAWAY if it can go now, without waiting: a client that does not read its
    /// answers gets the close without it. Not if one of our frames is half written, since
    /// its rest will never follow.
    fn send_goaway(&mut self, cx: &mut Context<'_>, flood: Flood) {
        self.state = State::Closed;
        if !self.outbound.at_boundary() {
            return;
        }
        let (frame, len) = self.ledger.goaway(flood);
        let mut written = 0;
        while written < len {
            match Pin::new(&mut self.inner).poll_write(cx, &frame[written..len]) {
                Poll::Ready(Ok(n)) if n > 0 => written += n,
                _ => return,
            }
        }
        let _ = Pin::new(&mut self.inner).poll_flush(cx);
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for FloodGuard<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.state {
            State::Open => {}
            State::Flooded(flood) => {
                this.send_goaway(cx, flood);
                return Poll::Ready(Err(flooded()));
            }
            State::Closed => return Poll::Ready(Err(flooded())),
        }
        let before = buf.filled().len();
        std::task::ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        let (ledger, mut flood) = (&mut this.ledger, None);
        let cut = this.inbound.scan(&buf.filled()[before..], |head| {
            flood = ledger.inbound(head, Instant::now).err();
            flood.is_none()
        });
        let (Some(cut), Some(flood)) = (cut, flood) else {
            return Poll::Ready(Ok(()));
        };
        this.state = State::Flooded(flood);
        buf.set_filled(before + cut);
        if cut > 0 {
            // hyper reads the frames before the one too many, and hears of the flood next.
            return Poll::Ready(Ok(()));
        }
        this.send_goaway(cx, flood);
        Poll::Ready(Err(flooded()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for FloodGuard<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.state == State::Closed {
            return Poll::Ready(Err(flooded()));
        }
        let written = std::task::ready!(Pin::new(&mut this.inner).poll_write(cx, data))?;
        this.sent(&data[..written]);
        Poll::Ready(Ok(written))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.state == State::Closed {
            return Poll::Ready(Err(flooded()));
        }
        let written = std::task::ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, bufs))?;
        let mut left = written;
        for buf in bufs {
            if left == 0 {
                break;
            }
            let part = buf.len().min(left);
            this.sent(&buf[..part]);
            left -= part;
        }
        Poll::Ready(Ok(written))
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
