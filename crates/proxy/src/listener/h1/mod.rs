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

mod body;
mod request;
#[cfg(test)]
mod stall_tests;
#[cfg(test)]
mod tests;

use std::future::{Future, poll_fn};
use std::io::{self, Write as _};
use std::num::NonZeroU32;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, Waker, ready};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use http::header;
use http::request::Parts;
use http::{Method, Response, StatusCode, Version};
use hyper::body::{Body as _, Frame};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, Sleep};

pub use self::body::{BodyError, RequestBody};
use self::body::{Channel, Demand};
pub use self::request::{RequestHead, take_head};
use super::checks::{self, Framing, HeadLimits, Rejection};
use super::pace::{Pace, PaceRule, Stall};
use super::side_wake::SideWake;
use crate::body::ProxyBody;
use crate::codec::{self, Decoded, Decoder, Delimit, encode_end, encode_frame, encode_line};
use crate::error::{self, ProxyError};

/// The HTTP/2 client connection preface (RFC 9113 §3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Answer bytes gathered before they are written.
const WRITE_HIGH_WATER: usize = 64 * 1024;
/// Write buffer room kept between answers.
const WRITE_KEPT: usize = 4 * 1024;
/// What is read and thrown away, at most, after answering a request whose body was not
/// read (see `close`).
const LINGER_BYTES: usize = 256 * 1024;
const LINGER_TIME: Duration = Duration::from_secs(2);
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

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

/// What follows an answered request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    Keep,
    /// Close; `linger` when the client may still be sending the request's body.
    Close {
        linger: bool,
    },
    /// Close at once, writing nothing more: the client stalled.
    Drop,
}

/// How an exchange's answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answered {
    Whole,
    /// Writing it failed.
    Failed,
    /// The client stalled a transfer.
    Stalled,
}

/// What waiting for a head gave.
#[derive(Debug)]
// NOTE: returned once per request and matched at once, never stored: boxing the head would
// cost an allocation per request to save a move.
#[allow(clippy::large_enum_variant)]
enum Awaited {
    Head(RequestHead),
    Refused(Rejection),
    Close,
    Http2,
}

/// A streaming request body's progress, as the connection sees it.
#[derive(Debug)]
enum Feed {
    /// Whole: nothing more to read for it.
    Done,
    /// Still coming through `channel`.
    Streaming {
        channel: Arc<Channel>,
        remaining: Remaining,
        received: u64,
        expect_continue: bool,
    },
    /// Its reader dropped it before its end.
    Abandoned,
    /// The client broke it off, or sent more than `max_request_body`.
    Failed { too_large: bool },
}

impl Drop for Feed {
    fn drop(&mut self) {
        // A reader on another task (an HTTP/2 upstream's) must hear that no more is coming,
        // however the exchange ended: answered early, a failed write, or cancelled.
        if let Feed::Streaming { channel, .. } = self {
            channel.end(Err(BodyError::Client(
                "the connection ended before the body did".to_owned(),
            )));
        }
    }
}

#[derive(Debug)]
enum Remaining {
    Length(u64),
    Chunked(Decoder),
}

/// Which transfer waits on the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// The request body.
    Body,
    /// The answer.
    Send,
}

/// An answer being written.
struct Writing {
    body: ProxyBody,
    delimit: Delimit,
    left: u64,
    trailers: bool,
    ended: bool,
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

    /// When the wait for the next head runs out.
    fn head_deadline(&self) -> Instant {
        match self.head_started {
            Some(started) => started + self.settings.header_read_timeout,
            None => self.idle_since + self.settings.idle_timeout,
        }
    }

    /// Reads until a request head is whole, the client leaves, a timer runs out or the
    /// listener stops.
    fn poll_head(&mut self, cx: &mut Context<'_>) -> Poll<Awaited> {
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

    /// Answers one request, and says whether the connection may carry another.
    async fn exchange<R, F>(&mut self, head: RequestHead, respond: &mut R) -> Next
    where
        R: FnMut(Parts, RequestBody) -> F,
        F: Future<Output = Response<ProxyBody>>,
    {
        let RequestHead {
            parts,
            framing,
            keep_alive,
            expect_continue,
            takes_trailers,
        } = head;
        let head_request = parts.method == Method::HEAD;
        let version = parts.version;
        let buffered = self.read.len() as u64;
        let (body, mut feed) = match framing {
            Framing::Length(0) | Framing::Opaque => (RequestBody::empty(), Feed::Done),
            Framing::Length(length) if buffered >= length => {
                let bytes = self.read.split_to(length as usize).freeze();
                (RequestBody::full(bytes), Feed::Done)
            }
            Framing::Length(length) => {
                let channel = Arc::new(Channel::default());
                let body = RequestBody::streaming(channel.clone(), Some(length));
                let feed = Feed::Streaming {
                    channel,
                    remaining: Remaining::Length(length),
                    received: 0,
                    expect_continue,
                };
                (body, feed)
            }
            Framing::Chunked => {
                let channel = Arc::new(Channel::default());
                let body = RequestBody::streaming(channel.clone(), None);
                let feed = Feed::Streaming {
                    channel,
                    remaining: Remaining::Chunked(Decoder::new()),
                    received: 0,
                    expect_continue,
                };
                (body, feed)
            }
        };
        let last = self
            .settings
            .max_requests
            .is_some_and(|max| self.requests >= max.get());
        let mut close = !keep_alive || last || self.stopping || framing == Framing::Opaque;
        // NOTE: in an `Option` so that a stalled body can drop the pipeline's future (and
        // the slots and connection it holds) before the 408 is written.
        let mut answer = pin!(Some(respond(parts, body)));
        let mut writing: Option<Writing> = None;
        let outcome = poll_fn(|cx| {
            loop {
                let mut progress = false;
                let (stopped, _) = self.poll_side(cx);
                close |= stopped;
                if writing.is_none()
                    && let Some(pending) = answer.as_mut().as_pin_mut()
                    && let Poll::Ready(response) = pending.poll(cx)
                {
                    answer.set(None);
                    let response = match feed {
                        Feed::Failed { too_large: true } => error::error_response(
                            ProxyError::RequestBodyTooLarge,
                            &format!(
                                "request body over the limit of {} bytes",
                                self.settings.head_limits.max_request_body
                            ),
                        ),
                        _ => response,
                    };
                    // A body not yet whole when the answer starts may never be: the
                    // connection cannot promise to carry another request.
                    close |= !matches!(feed, Feed::Done);
                    writing = Some(self.start_answer(
                        response,
                        head_request,
                        version,
                        takes_trailers,
                        &mut close,
                    ));
                    progress = true;
                }
                if let Some(answer) = &mut writing {
                    match self.poll_answer(cx, answer) {
                        Poll::Ready(Ok(())) => return Poll::Ready(Answered::Whole),
                        Poll::Ready(Err(error)) => {
                            tracing::debug!(%error, "writing the answer failed");
                            return Poll::Ready(Answered::Failed);
                        }
                        Poll::Pending => {}
                    }
                }
                if let Poll::Ready(()) = self.poll_feed(cx, &mut feed, writing.is_none()) {
                    progress = true;
                }
                if progress {
                    continue;
                }
                // About to wait: on the client, and for too long?
                let sending = writing.is_some() && !self.write.is_empty();
                match self.poll_pace(sending) {
                    Ok(()) => return Poll::Pending,
                    Err((Direction::Send, stall)) => {
                        tracing::debug!(%stall, "the client does not read its answer");
                        return Poll::Ready(Answered::Stalled);
                    }
                    Err((Direction::Body, stall)) => {
                        tracing::debug!(%stall, "the client does not send its request body");
                        if let Feed::Streaming { channel, .. } = &feed {
                            channel.end(Err(BodyError::Stalled(stall)));
                        }
                        feed = Feed::Failed { too_large: false };
                        if writing.is_some() {
                            return Poll::Ready(Answered::Stalled);
                        }
                        // Nothing of the answer went out yet: the client hears why. The
                        // pipeline is dropped unfinished, so the endpoint is not blamed.
                        answer.set(None);
                        close = true;
                        let response = error::error_response(
                            ProxyError::BodyReadTimeout,
                            &format!("the request body stalled: {stall}"),
                        );
                        writing = Some(self.start_answer(
                            response,
                            head_request,
                            version,
                            false,
                            &mut close,
                        ));
                    }
                }
            }
        })
        .await;
        self.body_pace.rest();
        self.send_pace.rest();
        let whole = matches!(feed, Feed::Done);
        match outcome {
            Answered::Stalled => Next::Drop,
            Answered::Whole if !close && whole => Next::Keep,
            _ => Next::Close { linger: !whole },
        }
    }

    /// Keeps the paces of what waits on the client (the answer's write when `sending`, the
    /// request body when `poll_feed` waits for it), and the timer at the first of their
    /// deadlines. `Err` when one of them stalled.
    fn poll_pace(&mut self, sending: bool) -> Result<(), (Direction, Stall)> {
        let settings = self.settings;
        let mut moved = false;
        if sending {
            moved |= self
                .send_pace
                .wait(self.moved_out, &settings.send_pace)
                .is_some();
        } else {
            self.send_pace.rest();
        }
        if self.feed_waits {
            moved |= self
                .body_pace
                .wait(self.moved_in, &settings.body_pace)
                .is_some();
        } else {
            self.body_pace.rest();
        }
        if !self.send_pace.is_waiting() && !self.body_pace.is_waiting() {
            return Ok(());
        }
        loop {
            if self.timer_elapsed {
                let now = Instant::now();
                self.send_pace
                    .check(now, self.moved_out, &settings.send_pace)
                    .map_err(|stall| (Direction::Send, stall))?;
                self.body_pace
                    .check(now, self.moved_in, &settings.body_pace)
                    .map_err(|stall| (Direction::Body, stall))?;
                moved = true;
            }
            let deadline = match (self.send_pace.deadline(), self.body_pace.deadline()) {
                (Some(send), Some(body)) => send.min(body),
                (Some(deadline), None) | (None, Some(deadline)) => deadline,
                (None, None) => return Ok(()),
            };
            if !moved && self.timer.deadline() == deadline {
                return Ok(());
            }
            moved = false;
            self.timer.as_mut().reset(deadline);
            self.timer_elapsed = false;
            // Polled once with the side waker, so that it wakes the task when it fires.
            let mut side_cx = Context::from_waker(&self.side_waker);
            if self.timer.as_mut().poll(&mut side_cx).is_pending() {
                return Ok(());
            }
            self.timer_elapsed = true;
        }
    }

    /// Writes `response`'s head into the write buffer, and says how its body follows.
    fn start_answer(
        &mut self,
        response: Response<ProxyBody>,
        head_request: bool,
        version: Version,
        takes_trailers: bool,
        close: &mut bool,
    ) -> Writing {
        let (parts, body) = response.into_parts();
        let status = parts.status;
        let no_body = status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED;
        let stated = if no_body {
            None
        } else {
            let mut values = parts.headers.get_all(header::CONTENT_LENGTH).iter();
            match (values.next(), values.next()) {
                (Some(value), None) => codec::content_length(value.as_bytes()),
                _ => None,
            }
        };
        // The framing headers are this connection's own, as are `Connection` and its
        // options; a stated length is kept when it is valid.
        let (delimit, own_length) = if no_body {
            (Delimit::None, None)
        } else if head_request {
            // The length a GET would have, when the answer has it and does not say it.
            let known = body.size_hint().exact().filter(|&length| length > 0);
            (Delimit::None, known.filter(|_| stated.is_none()))
        } else if let Some(length) = stated {
            (Delimit::Length(length), None)
        } else if let Some(length) = body.size_hint().exact() {
            (Delimit::Length(length), Some(length))
        } else if version == Version::HTTP_11 {
            (Delimit::Chunked, None)
        } else {
            *close = true;
            (Delimit::UntilClose, None)
        };
        let out = &mut self.write;
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(status.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
        out.extend_from_slice(b"\r\n");
        let keep_stated = head_request || stated.is_some();
        let mut dated = false;
        for (name, value) in &parts.headers {
            if *name == header::CONNECTION
                || *name == header::TRANSFER_ENCODING
                || name.as_str() == "keep-alive"
                || (*name == header::CONTENT_LENGTH && (!keep_stated || no_body))
            {
                continue;
            }
            dated |= *name == header::DATE;
            encode_line(out, name, value);
        }
        match (delimit, own_length) {
            (_, Some(length)) => {
                out.extend_from_slice(b"content-length: ");
                out.extend_from_slice(itoa::Buffer::new().format(length).as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            (Delimit::Chunked, _) => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
            _ => {}
        }
        if !dated {
            // Writing into a Vec cannot fail.
            let _ = write!(
                out,
                "date: {}\r\n",
                httpdate::HttpDate::from(SystemTime::now())
            );
        }
        if *close {
            out.extend_from_slice(b"connection: close\r\n");
        } else if version == Version::HTTP_10 {
            out.extend_from_slice(b"connection: keep-alive\r\n");
        }
        out.extend_from_slice(b"\r\n");
        let left = match delimit {
            Delimit::Length(length) => length,
            _ => 0,
        };
        Writing {
            body,
            delimit,
            left,
            trailers: takes_trailers,
            ended: matches!(delimit, Delimit::None | Delimit::Length(0)),
        }
    }

    /// Writes the answer's body after its head, gathering what the body has ready into one
    /// write.
    fn poll_answer(
        &mut self,
        cx: &mut Context<'_>,
        answer: &mut Writing,
    ) -> Poll<Result<(), crate::body::BoxError>> {
        loop {
            while !answer.ended && self.write.len() < WRITE_HIGH_WATER {
                match Pin::new(&mut answer.body).poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) => {
                        answer.ended = encode_frame(
                            &mut self.write,
                            frame,
                            answer.delimit,
                            &mut answer.left,
                            answer.trailers,
                        )?;
                    }
                    Poll::Ready(Some(Err(error))) => return Poll::Ready(Err(error)),
                    Poll::Ready(None) => {
                        answer.ended = true;
                        encode_end(&mut self.write, answer.delimit, answer.left, None)?;
                    }
                    Poll::Pending => break,
                }
            }
            if self.write.is_empty() {
                return if answer.ended {
                    Poll::Ready(Ok(()))
                } else {
                    Poll::Pending
                };
            }
            ready!(self.poll_flush(cx))?;
        }
    }

    /// Reads the next piece of a streaming request body when its reader wants one. Ready
    /// when something changed.
    fn poll_feed(&mut self, cx: &mut Context<'_>, feed: &mut Feed, may_continue: bool) -> Poll<()> {
        self.feed_waits = false;
        let Feed::Streaming {
            channel,
            remaining,
            received,
            expect_continue,
        } = feed
        else {
            return Poll::Pending;
        };
        match channel.demand(cx.waker()) {
            Demand::Waiting => return Poll::Pending,
            Demand::Abandoned => {
                *feed = Feed::Abandoned;
                return Poll::Ready(());
            }
            Demand::More => {}
        }
        if *expect_continue && self.read.is_empty() && may_continue && channel.asked() {
            // The client waits to be told to send the body (RFC 9110 §10.1.1).
            self.write.extend_from_slice(CONTINUE);
            *expect_continue = false;
        }
        if !self.write.is_empty() && may_continue {
            match self.poll_flush(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(error)) => {
                    channel.end(Err(BodyError::Client(error.to_string())));
                    *feed = Feed::Failed { too_large: false };
                    return Poll::Ready(());
                }
                Poll::Pending => {
                    // The client does not take the `100 Continue`: its body waits on it.
                    self.feed_waits = true;
                    return Poll::Pending;
                }
            }
        }
        let limit = self.settings.head_limits.max_request_body;
        loop {
            let step = match remaining {
                Remaining::Length(left) => {
                    if self.read.is_empty() {
                        None
                    } else {
                        let take = usize::try_from(*left)
                            .unwrap_or(usize::MAX)
                            .min(self.read.len());
                        *left -= take as u64;
                        let data = self.read.split_to(take).freeze();
                        Some(Ok((Frame::data(data), *left == 0)))
                    }
                }
                Remaining::Chunked(decoder) => match decoder.decode(&mut self.read) {
                    Ok(Decoded::Data(data)) => Some(Ok((Frame::data(data), false))),
                    Ok(Decoded::Trailers(trailers)) => Some(Ok((Frame::trailers(trailers), true))),
                    Ok(Decoded::End) => {
                        channel.end(Ok(()));
                        *feed = Feed::Done;
                        return Poll::Ready(());
                    }
                    Ok(Decoded::NeedMore) => None,
                    Err(error) => Some(Err(BodyError::Client(error.to_string()))),
                },
            };
            match step {
                Some(Ok((frame, last))) => {
                    if let Some(data) = frame.data_ref() {
                        *received += data.len() as u64;
                    }
                    if *received > limit {
                        channel.end(Err(BodyError::TooLarge(limit)));
                        *feed = Feed::Failed { too_large: true };
                    } else {
                        channel.send(frame, last);
                        if last {
                            *feed = Feed::Done;
                        }
                    }
                    return Poll::Ready(());
                }
                Some(Err(error)) => {
                    channel.end(Err(error));
                    *feed = Feed::Failed { too_large: false };
                    return Poll::Ready(());
                }
                None => {}
            }
            let Poll::Ready(filled) = self.poll_fill(cx) else {
                self.feed_waits = true;
                return Poll::Pending;
            };
            let error = match filled {
                Ok(0) => "the client closed the connection before the body ended".to_owned(),
                Ok(_) => continue,
                Err(error) => error.to_string(),
            };
            channel.end(Err(BodyError::Client(error)));
            *feed = Feed::Failed { too_large: false };
            return Poll::Ready(());
        }
    }

    /// Answers a refused head (or one not whole in time), then closes.
    async fn refuse(&mut self, rejection: &Rejection) {
        tracing::debug!(error = rejection.error.as_str(), reason = %rejection.reason, "request refused");
        let response = error::error_response(rejection.error, &rejection.reason);
        let mut close = true;
        let mut answer = self.start_answer(response, false, Version::HTTP_11, false, &mut close);
        let limit = self.settings.header_read_timeout;
        let written = poll_fn(|cx| self.poll_answer(cx, &mut answer));
        // A client that does not read its answer does not keep the connection.
        if tokio::time::timeout(limit, written).await.is_ok() {
            self.close(true).await;
        }
    }

    /// Writes what is pending and closes the sending side, within `header_read_timeout`
    /// for a client that does not read. With `linger`, what the client is still sending
    /// (a body the proxy answered without reading) is read and thrown away for a while:
    /// closed with unread bytes, the socket would send a reset, which can destroy the
    /// answer before the client reads it.
    async fn close(&mut self, linger: bool) {
        let limit = self.settings.header_read_timeout;
        let closed = poll_fn(|cx| {
            ready!(self.poll_flush(cx))?;
            Pin::new(&mut self.io).poll_shutdown(cx)
        });
        if !matches!(tokio::time::timeout(limit, closed).await, Ok(Ok(()))) || !linger {
            return;
        }
        let mut discarded = 0;
        let drained = poll_fn(|cx| {
            loop {
                self.read.clear();
                match ready!(self.poll_fill(cx)) {
                    Ok(n) if n > 0 && discarded < LINGER_BYTES => discarded += n,
                    _ => return Poll::Ready(()),
                }
            }
        });
        let _ = tokio::time::timeout(LINGER_TIME, drained).await;
    }
}
