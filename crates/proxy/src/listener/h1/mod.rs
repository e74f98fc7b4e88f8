//! HTTP/1.1 to clients, spoken here rather than through hyper's server.
//!
//! Why by hand: behind hyper's server the proxy needed a guard of its own that parsed
//! every head before hyper parsed it again (hyper takes `Content-Length` with
//! `Transfer-Encoding`, answers its parse errors with a bare status and times idle
//! connections as slow heads), a boxed future per request, and a dispatcher between the
//! socket and the request: about 9,000 instructions per request, a third of the proxy's CPU.
//! Here one task per connection reads a head, checks and frames it once
//! ([`take_head`]), runs the request's future in place, and writes the answer; a body that
//! came with its head is handed over whole, and an answer read whole from the endpoint goes
//! out with its head in one write.
//!
//! What it speaks: RFC 9112 requests (pipelined ones are answered in order), bodies framed
//! by `Content-Length` or chunked with trailers, `Expect: 100-continue`, keep-alive for
//! HTTP/1.1 and for HTTP/1.0 clients that ask; answers framed by their length, chunked, or
//! until close for HTTP/1.0. A connection that opens with the HTTP/2 preface is handed back
//! to the listener, bytes read included, for hyper's HTTP/2 server.
//!
//! The listener's limits live here: head size and count (431), framing (400), a head not
//! whole within `header_read_timeout` of its first byte or of accept (408, or a silent close
//! when nothing came), `idle_timeout` between requests, `max_requests_per_connection`, a
//! request body past `max_request_body` (413), and the pace of what waits on the client
//! ([`pace`](super::pace)): a request body that stops coming or trickles (408 if the answer
//! has not begun, else the connection is dropped) and an answer the client does not read
//! (the connection is dropped, unflushed: a client that does not read would not take a
//! graceful close either). A stop closes an idle connection at once and lets a request
//! already begun finish with `Connection: close`.
//!
//! The files follow a connection's turn: [`take_head`] (`request.rs`) frames a head, which
//! `next_head` waits for; `exchange` runs one request against its answer, while `feed`
//! hands a streaming request body (`body`) to its reader and `answer` writes the answer;
//! `stalls` keeps the paces of what waits on the client; `close` ends the connection. This
//! file holds the connection's state, its socket and side signals, and the loop over
//! requests ([`serve`]).

mod answer;
mod body;
mod close;
mod exchange;
mod feed;
mod next_head;
mod request;
#[cfg(test)]
mod stall_tests;
mod stalls;
#[cfg(test)]
mod tests;

use std::future::{Future, poll_fn};
use std::io;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::Response;
use http::request::Parts;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, Sleep};

pub(crate) use self::body::{BodyError, RequestBody};
use self::exchange::Next;
use self::next_head::Awaited;
pub(crate) use self::request::RequestHead;
pub use self::request::take_head;
use super::checks::{self, HeadLimits};
use super::pace::{Pace, PaceRule};
use super::side_wake::SideWake;
use crate::body::ProxyBody;
use crate::codec;

/// Write buffer room kept between answers.
const WRITE_KEPT: usize = 4 * 1024;

/// What a connection is held to.
#[derive(Debug, Clone)]
pub(super) struct Settings {
    pub(super) head_limits: HeadLimits,
    pub(super) header_read_timeout: Duration,
    pub(super) idle_timeout: Duration,
    pub(super) max_requests: Option<NonZeroU32>,
    /// What a request body being read is held to.
    pub(super) body_pace: PaceRule,
    /// What an answer being written is held to.
    pub(super) send_pace: PaceRule,
}

/// How a connection's HTTP/1.1 ended.
#[derive(Debug)]
pub(super) enum Ended<S> {
    /// It is closed.
    Closed,
    /// It opened with the HTTP/2 preface: the stream, and the bytes already read from it.
    Http2(S, Bytes),
}

/// One client connection's HTTP/1.1 state: its socket, buffers and timer.
struct Connection<'a, S> {
    io: S,
    settings: &'a Settings,
    read: BytesMut,
    write: Vec<u8>,
    written: usize,
    /// Bounds the wait for a head, or for the next request on an idle connection.
    // NOTE: one timer for the connection's life. It is moved earlier only for a head that
    // does not come whole in one read; otherwise it fires at its old instant and is then
    // moved to the real deadline, so requests do not touch it.
    timer: Pin<Box<Sleep>>,
    timer_elapsed: bool,
    /// When the head being awaited began (accept, for the first).
    head_started: Option<Instant>,
    idle_since: Instant,
    /// How much of the read buffer was already looked at for the end of a head.
    looked_at: usize,
    /// Told to stop: the connection closes after the request it has begun, if any.
    stopping: bool,
    /// Bytes read from and written to the socket so far: what the paces measure.
    moved_in: u64,
    moved_out: u64,
    /// A streaming request body's pace, while it waits on the client.
    body_pace: Pace,
    /// An answer's pace, while its write waits on the client.
    send_pace: Pace,
    /// Set by `poll_feed` when it waits for the client to send more of the body.
    feed_waits: bool,
    /// Heads taken so far; none yet, the HTTP/2 preface may still come.
    requests: u32,
    // NOTE: the stop signal and the timer are polled with their own waker, and only after
    // it fired (see `side_wake`): the task wakes several times per request, and they almost
    // never have anything to say.
    side: Arc<SideWake>,
    side_waker: Waker,
    task_waker: Option<Waker>,
    stop: Pin<Box<dyn Future<Output = ()> + Send + 'a>>,
}

/// Serves HTTP/1.1 on `io` until the connection closes, answering each request with
/// `respond`. `stop` resolves when the listener stops.
pub(super) async fn serve<'a, S, R, F>(
    io: S,
    settings: &'a Settings,
    stop: impl Future<Output = ()> + Send + 'a,
    mut respond: R,
) -> Ended<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
    R: FnMut(Parts, RequestBody) -> F,
    F: Future<Output = Response<ProxyBody>>,
{
    let now = Instant::now();
    let side = Arc::new(SideWake::new());
    let mut connection = Connection {
        io,
        settings,
        read: BytesMut::new(),
        write: Vec::new(),
        written: 0,
        timer: Box::pin(tokio::time::sleep_until(now + settings.header_read_timeout)),
        timer_elapsed: false,
        head_started: Some(now),
        idle_since: now,
        looked_at: 0,
        stopping: false,
        moved_in: 0,
        moved_out: 0,
        body_pace: Pace::default(),
        send_pace: Pace::default(),
        feed_waits: false,
        requests: 0,
        side_waker: Waker::from(side.clone()),
        side,
        task_waker: None,
        stop: Box::pin(stop),
    };
    loop {
        let head = match poll_fn(|cx| connection.poll_head(cx)).await {
            Awaited::Head(head) => head,
            Awaited::Refused(rejection) => {
                connection.refuse(&rejection).await;
                return Ended::Closed;
            }
            Awaited::Close => {
                connection.close(false).await;
                return Ended::Closed;
            }
            Awaited::Http2 => return Ended::Http2(connection.io, connection.read.freeze()),
        };
        connection.requests = connection.requests.saturating_add(1);
        if let Err(rejection) = checks::check_parts(&head.parts, &settings.head_limits) {
            connection.refuse(&rejection).await;
            return Ended::Closed;
        }
        match connection.exchange(head, &mut respond).await {
            Next::Keep => {}
            Next::Close { linger } => {
                connection.close(linger).await;
                return Ended::Closed;
            }
            Next::Drop => return Ended::Closed,
        }
        connection.idle_since = Instant::now();
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<'_, S> {
    /// Reads what the socket has into the read buffer; `Ok(0)` at the end of the stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        codec::make_room(&mut self.read);
        let filled = tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.read);
        if let Poll::Ready(Ok(n)) = filled {
            self.moved_in += n as u64;
        }
        filled
    }

    /// Writes out the write buffer.
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.write.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.write[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
            self.moved_out += n as u64;
        }
        // NOTE: TLS holds records it could not write yet until it is flushed; a plain
        // socket holds nothing.
        ready!(Pin::new(&mut self.io).poll_flush(cx))?;
        self.write.clear();
        self.written = 0;
        // A large answer frame is copied in whole; its room is not kept while idle.
        self.write.shrink_to(WRITE_KEPT);
        Poll::Ready(Ok(()))
    }

    /// Polls the side signals if they may have fired: whether the stop came, whether the
    /// timer ran out.
    fn poll_side(&mut self, cx: &Context<'_>) -> (bool, bool) {
        self.side.register(&mut self.task_waker, cx.waker());
        if !self.side.take_fired() {
            return (false, false);
        }
        let mut side_cx = Context::from_waker(&self.side_waker);
        let stopped = !self.stopping && self.stop.as_mut().poll(&mut side_cx).is_ready();
        if stopped {
            self.stopping = true;
        }
        let elapsed = !self.timer_elapsed && self.timer.as_mut().poll(&mut side_cx).is_ready();
        if elapsed {
            self.timer_elapsed = true;
        }
        (stopped, elapsed)
    }
}
