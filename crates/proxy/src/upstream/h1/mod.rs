//! HTTP/1.1 to an endpoint, spoken here rather than through hyper's client.
//!
//! Why by hand: hyper's client runs every connection as a task of its own and passes each
//! request to it, and the response back, through channels. Per request that is a channel
//! send, a oneshot, a second task woken and scheduled, and a dispatcher between them: about
//! 5,000 instructions, an eighth of the proxy's CPU per proxied request. Here the request's
//! own task writes the request and reads the answer, and a body already in the read buffer
//! with its head (most small answers) hands the connection straight back to the pool.
//!
//! What it speaks: requests framed by their `Content-Length`, by the body's known length,
//! or chunked; answers framed as RFC 9112 §6.3 says (no body for `HEAD`, 204 and 304, then
//! `Transfer-Encoding`, then `Content-Length`, else until close), interim (1xx) answers
//! skipped, trailers passed on both ways. A connection carries one request at a time; it is
//! kept only when the answer allows it and ended exactly where its framing said, and handed
//! out again only if the endpoint has sent nothing since (a byte nobody asked for would be
//! read as the next request's answer, which may be another client's). A body that stops
//! coming for the cluster's `body_read_timeout` fails with [`BodyStalled`] (the endpoint's
//! fault) and its connection is dropped; the connection's one timer bounds it.
//!
//! What it leaves out, on purpose: upgrades (the proxy forwards no `Upgrade`), pipelining,
//! and waiting for `100 Continue` (the body follows the head at once, which RFC 9110
//! §10.1.1 allows).

mod head;
#[doc(hidden)]
pub(super) mod replay;
#[cfg(test)]
mod tests;

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker, ready};

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap};
use http::request::Parts;
use http::uri::Authority;
use http::{Method, Request, Response};
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::io::{AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

pub use self::head::{Framing, take_head};
pub(super) use self::head::{Head, HeadError};
use super::{BodyStalled, Shared};
use crate::body::{BoxError, ProxyBody};
use crate::codec::{
    self, ChunkedError, Decoded, Decoder, Delimit, LengthMismatch, encode_end, encode_frame,
    encode_line,
};
use crate::headers::AddedHeaders;

/// Request body bytes gathered before they are written.
const WRITE_HIGH_WATER: usize = 64 * 1024;

/// One HTTP/1.1 connection to an endpoint, with its buffers and its timer.
#[derive(Debug)]
pub(super) struct Connection {
    io: TcpStream,
    read: BytesMut,
    write: Vec<u8>,
    /// Bounds each request's wait for its answer.
    // NOTE: one timer for the connection's life, moved to each request's expiry: tokio
    // moves a registered timer to a later instant without touching its wheel (it re-files
    // the entry when the earlier instant comes), where a timer per request is registered
    // and removed under the driver's lock every time.
    timer: Pin<Box<Sleep>>,
    /// How much of `write` is already written.
    written: usize,
    /// Whether any byte of the current request has been written.
    sent_any: bool,
    /// Bytes read so far: what a streaming body's timer measures progress by.
    moved: u64,
}

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("writing the request failed: {0}")]
    Write(#[source] io::Error),
    #[error("reading the response failed: {0}")]
    Read(#[source] io::Error),
    #[error("the endpoint closed the connection without answering")]
    ClosedBeforeAnswer,
    #[error("the endpoint closed the connection in the middle of the response head")]
    ClosedInHead,
    #[error("the endpoint closed the connection before the response body ended")]
    ClosedInBody,
    #[error(transparent)]
    Head(#[from] HeadError),
    #[error(transparent)]
    Chunked(#[from] ChunkedError),
    #[error("the request body failed: {0}")]
    RequestBody(#[source] BoxError),
    #[error("the request {0}")]
    LengthMismatch(#[from] LengthMismatch),
    #[error("no answer within the attempt's timeout")]
    TimedOut,
    #[error(transparent)]
    BodyStalled(#[from] BodyStalled),
}

/// A request that got no answer, and whether the endpoint can have seen any of it.
#[derive(Debug)]
pub(super) enum Failure {
    /// Not a byte of it was written. The request comes back when its body is untouched, so
    /// that it can go out as it is on another connection.
    NotSent(Option<Box<Request<ProxyBody>>>, Error),
    /// It may have been (partly) received.
    Sent(Error),
}

/// Where a connection goes back to when the body that holds it ends.
#[derive(Debug)]
pub(super) struct Home {
    pub(super) shared: Arc<Shared>,
    pub(super) authority: Authority,
}

impl Home {
    fn keep(self, connection: Box<Connection>) {
        (self.shared.pool).give_back_http1(self.authority.as_str(), connection);
    }
}

/// How a request's body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RequestFraming {
    /// No body.
    None,
    /// This many bytes, stated by the request's own `Content-Length`.
    Declared(u64),
    /// This many bytes (the body's known size), stated in a `Content-Length` added here.
    Known(u64),
    /// Chunked.
    Chunked,
}

impl RequestFraming {
    fn delimit(self) -> Delimit {
        match self {
            RequestFraming::None => Delimit::None,
            RequestFraming::Declared(length) | RequestFraming::Known(length) => {
                Delimit::Length(length)
            }
            RequestFraming::Chunked => Delimit::Chunked,
        }
    }
}

impl Connection {
    pub(super) fn new(io: TcpStream) -> Box<Self> {
        Box::new(Self {
            io,
            read: BytesMut::new(),
            write: Vec::new(),
            timer: Box::pin(tokio::time::sleep_until(far_future())),
            written: 0,
            sent_any: false,
            moved: 0,
        })
    }

    /// Whether the connection may carry a request now: the endpoint has neither closed it
    /// nor sent a byte since its last answer ended. A byte nobody asked for is the tail of
    /// an answer that ran past its framing (a body after a 204, more than its
    /// `Content-Length`, a second answer to one request): read as the next request's
    /// answer, it would hand one client what belongs to another. Such a connection, like a
    /// closed one, is never used again.
    // NOTE: no system call unless the runtime has heard of something. tokio's readiness is
    // edge-based: cleared only when a read finds the socket empty (`WouldBlock`, or a read
    // shorter than the room given, see `poll_fill`), set again when epoll reports a byte
    // or a FIN. Not readable therefore means nothing came since the last read, and the
    // peek returns `Pending` at once; readable means something may have, and one
    // non-blocking peek says what (`WouldBlock` clears the readiness, so the next check is
    // free again). A peek, not a read: a connection found unusable stays so however often
    // it is asked. A byte that has arrived but that the I/O driver has not yet reported is
    // not seen: hyper's client has the same blind spot.
    pub(super) fn is_reusable(&self) -> bool {
        let mut byte = [0u8; 1];
        let mut peeked = ReadBuf::new(&mut byte);
        // Ready: a byte nobody asked for, the end of the stream, or an error.
        (self.io)
            .poll_peek(&mut Context::from_waker(Waker::noop()), &mut peeked)
            .is_pending()
    }

    /// Reads what the socket has into the read buffer; `Ok(0)` at the end of the stream.
    // NOTE: through `AsyncRead`, not `try_read_buf`: tokio clears the readiness after a
    // read shorter than the room it was given (the socket is then empty, under epoll),
    // which keeps `is_reusable` free of a system call after most answers.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        codec::make_room(&mut self.read);
        let result = ready!(tokio_util::io::poll_read_buf(
            Pin::new(&mut self.io),
            cx,
            &mut self.read
        ));
        if let Ok(n) = result {
            self.moved += n as u64;
        }
        Poll::Ready(result)
    }

    /// Writes out the write buffer.
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.write.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.write[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
            self.sent_any = true;
        }
        self.write.clear();
        self.written = 0;
        // A large body frame (a kept request body comes as one) is copied in whole; its
        // room is not kept with the pooled connection.
        self.write.shrink_to(WRITE_HIGH_WATER);
        Poll::Ready(Ok(()))
    }

    /// `Pending` when the timer has not run out (and will wake the task when it does).
    // NOTE: polled only when the request is about to wait, not on every poll: each poll
    // registers the waker again and takes a scheduling budget unit, ~120 instructions.
    fn poll_timed_out(&mut self, cx: &mut Context<'_>) -> Poll<Error> {
        self.timer.as_mut().poll(cx).map(|()| Error::TimedOut)
    }

    /// Reads until a final response head is whole.
    async fn read_head(&mut self, head_request: bool) -> Result<Head, Error> {
        poll_fn(|cx| {
            loop {
                if !self.read.is_empty()
                    && let Some(head) = take_head(&mut self.read, head_request)?
                {
                    return Poll::Ready(Ok(head));
                }
                let Poll::Ready(filled) = self.poll_fill(cx) else {
                    return self.poll_timed_out(cx).map(Err);
                };
                match filled {
                    Ok(0) if self.read.is_empty() => {
                        return Poll::Ready(Err(Error::ClosedBeforeAnswer));
                    }
                    Ok(0) => return Poll::Ready(Err(Error::ClosedInHead)),
                    Ok(_) => {}
                    Err(error) => return Poll::Ready(Err(Error::Read(error))),
                }
            }
        })
        .await
    }

    /// Writes the request's body after its head (already in the write buffer), gathering
    /// what the body has ready into one write.
    async fn write_request(
        &mut self,
        body: &mut ProxyBody,
        framing: RequestFraming,
        body_taken: &mut bool,
    ) -> Result<(), Error> {
        let delimit = framing.delimit();
        let mut ended = delimit == Delimit::None;
        let mut left = match delimit {
            Delimit::Length(length) => length,
            _ => 0,
        };
        poll_fn(|cx| {
            loop {
                while !ended && self.write.len() < WRITE_HIGH_WATER {
                    match Pin::new(&mut *body).poll_frame(cx) {
                        Poll::Ready(Some(Ok(frame))) => {
                            *body_taken = true;
                            ended = encode_frame(&mut self.write, frame, delimit, &mut left, true)?;
                        }
                        Poll::Ready(Some(Err(error))) => {
                            *body_taken = true;
                            return Poll::Ready(Err(Error::RequestBody(error)));
                        }
                        Poll::Ready(None) => {
                            *body_taken = true;
                            ended = true;
                            encode_end(&mut self.write, delimit, left, None)?;
                        }
                        Poll::Pending => break,
                    }
                }
                if self.write.is_empty() {
                    return if ended {
                        Poll::Ready(Ok(()))
                    } else {
                        self.poll_timed_out(cx).map(Err)
                    };
                }
                let Poll::Ready(flushed) = self.poll_flush(cx) else {
                    return self.poll_timed_out(cx).map(Err);
                };
                flushed.map_err(Error::Write)?;
            }
        })
        .await
    }
}

/// Sends `request` (its target in origin form, with `Host`) on `connection` and reads the
/// response head, unless `expires` comes first. With the response comes the connection
/// when it can take another request now (the body was already read whole); otherwise the
/// body holds it and gives it back to `home` when it ends.
pub(super) async fn send(
    mut connection: Box<Connection>,
    request: Request<ProxyBody>,
    added: &AddedHeaders,
    expires: Instant,
    home: impl FnOnce() -> Home,
) -> Result<(Response<Body>, Option<Box<Connection>>), Failure> {
    connection.timer.as_mut().reset(expires);
    let (parts, mut body) = request.into_parts();
    let framing = request_framing(&parts.headers, &body);
    connection.sent_any = false;
    connection.written = 0;
    connection.write.clear();
    encode_head(&mut connection.write, &parts, added, framing);
    let head_request = parts.method == Method::HEAD;
    let mut body_taken = false;
    let written = connection
        .write_request(&mut body, framing, &mut body_taken)
        .await;
    let head = match written {
        Ok(()) => connection.read_head(head_request).await,
        Err(error) if !connection.sent_any && !matches!(error, Error::TimedOut) => {
            let request = (!body_taken).then(|| Box::new(Request::from_parts(parts, body)));
            return Err(Failure::NotSent(request, error));
        }
        Err(error @ Error::Write(_)) => {
            // The endpoint may have answered before closing (a 413 to a body it will not
            // take): that answer is better than the error.
            match connection.read_head(head_request).await {
                Ok(mut head) => {
                    head.keep_alive = false;
                    Ok(head)
                }
                Err(_) => Err(error),
            }
        }
        Err(error) => Err(error),
    };
    let head = head.map_err(Failure::Sent)?;
    let Head {
        status,
        version,
        headers,
        framing,
        keep_alive,
    } = head;
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    *response.version_mut() = version;
    *response.headers_mut() = headers;
    let (body, kept) = match start_body(framing, keep_alive, &mut connection.read) {
        Start::Whole { body, reusable } => (body.map_or_else(Body::empty, Body::full), reusable),
        Start::Streaming(remaining) => {
            let streaming = Streaming {
                connection,
                remaining,
                keep_alive,
                home: home(),
                timer_mark: None,
            };
            *response.body_mut() = Body {
                state: State::Streaming(Box::new(streaming)),
            };
            return Ok((response, None));
        }
    };
    *response.body_mut() = body;
    Ok((response, kept.then_some(connection)))
}

/// How a response body starts, given what was read with its head.
#[derive(Debug)]
enum Start {
    /// It is all there (`None`: there is none), and the connection may carry another
    /// request at once if `reusable`.
    Whole { body: Option<Bytes>, reusable: bool },
    /// The rest is still to come from the connection.
    Streaming(Remaining),
}

/// The body after a head framed so, from `read` (what came with the head) if it is there.
fn start_body(framing: Framing, keep_alive: bool, read: &mut BytesMut) -> Start {
    let buffered = read.len() as u64;
    match framing {
        Framing::Empty | Framing::Length(0) => Start::Whole {
            body: None,
            reusable: reusable(keep_alive, read),
        },
        Framing::Length(length) if buffered >= length => {
            let bytes = read.split_to(length as usize).freeze();
            Start::Whole {
                body: Some(bytes),
                reusable: reusable(keep_alive, read),
            }
        }
        Framing::Length(length) => Start::Streaming(Remaining::Length(length)),
        Framing::Chunked => Start::Streaming(Remaining::Chunked(Decoder::new())),
        Framing::UntilClose => Start::Streaming(Remaining::UntilClose),
    }
}

/// Whether a connection may carry another request once an answer has ended: the answer
/// allowed it, and its framing ended exactly at the last byte read.
// NOTE: the one place this is decided; bytes that come after it (an endpoint answering
// twice, or sending more than it framed, a moment late) are caught as the connection is
// handed out again, by `Connection::is_reusable`.
fn reusable(keep_alive: bool, read: &BytesMut) -> bool {
    keep_alive && read.is_empty()
}

/// How the request's body goes on the wire: as its `Content-Length` says, as its known
/// size says, or chunked.
fn request_framing(headers: &HeaderMap, body: &ProxyBody) -> RequestFraming {
    if body.is_end_stream() {
        return RequestFraming::None;
    }
    let mut declared: Option<u64> = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        match value
            .to_str()
            .ok()
            .and_then(|text| text.trim().parse().ok())
        {
            Some(length) if declared.is_none_or(|earlier| earlier == length) => {
                declared = Some(length);
            }
            _ => {
                declared = None;
                break;
            }
        }
    }
    match (declared, body.size_hint().exact()) {
        (Some(length), _) => RequestFraming::Declared(length),
        (None, Some(length)) => RequestFraming::Known(length),
        (None, None) => RequestFraming::Chunked,
    }
}

/// Writes the request line and headers, `added` after the map's; the framing headers are
/// this connection's own: a declared length is written once, as one number, however the
/// map holds it (repeated equal values go on as one).
fn encode_head(out: &mut Vec<u8>, parts: &Parts, added: &AddedHeaders, framing: RequestFraming) {
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    let target = match parts.uri.path_and_query() {
        Some(path) => path.as_str(),
        None => parts.uri.authority().map_or("/", Authority::as_str),
    };
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in &parts.headers {
        if *name == header::TRANSFER_ENCODING || *name == header::CONTENT_LENGTH {
            continue;
        }
        encode_line(out, name, value);
    }
    for (name, value) in added.iter() {
        encode_line(out, name, value);
    }
    match framing {
        RequestFraming::Known(length) | RequestFraming::Declared(length) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(itoa::Buffer::new().format(length).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        RequestFraming::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        RequestFraming::None => {}
    }
    out.extend_from_slice(b"\r\n");
}

/// An instant no request waits for: about 30 years ahead, which `Instant` always holds.
pub(super) fn far_future() -> Instant {
    Instant::now() + std::time::Duration::from_secs(86400 * 365 * 30)
}

/// A response body from an HTTP/1.1 endpoint.
#[derive(Debug)]
pub(crate) struct Body {
    state: State,
}

#[derive(Debug)]
enum State {
    Done,
    /// The whole body, read with the head.
    Full(Bytes),
    /// The rest comes from the connection, which the body holds until it ends.
    Streaming(Box<Streaming>),
}

#[derive(Debug)]
struct Streaming {
    connection: Box<Connection>,
    remaining: Remaining,
    keep_alive: bool,
    home: Home,
    /// The bytes read when the timer was last moved to `body_read_timeout` ahead; `None`
    /// while it still bounds the head.
    timer_mark: Option<u64>,
}

#[derive(Debug)]
enum Remaining {
    Length(u64),
    Chunked(Decoder),
    UntilClose,
}

/// What the next poll of a streaming body gave.
enum Step {
    Frame(Frame<Bytes>),
    /// The last frame: the body ends with it.
    Last(Frame<Bytes>),
    End,
}

impl Body {
    fn empty() -> Self {
        Self { state: State::Done }
    }

    fn full(bytes: Bytes) -> Self {
        Self {
            state: State::Full(bytes),
        }
    }

    /// Whether the rest of the body is in hand (none of it is still to be read).
    pub(crate) fn is_in_hand(&self) -> bool {
        !matches!(self.state, State::Streaming(_))
    }

    /// Ends the body: its connection goes back to the pool if it ended cleanly where the
    /// framing said and may carry another request.
    fn finish(&mut self) {
        if let State::Streaming(streaming) = std::mem::replace(&mut self.state, State::Done) {
            let Streaming {
                connection,
                keep_alive,
                home,
                ..
            } = *streaming;
            if reusable(keep_alive, &connection.read) {
                home.keep(connection);
            }
        }
    }
}

impl Remaining {
    /// Takes the next piece of the body off the front of `read`; `None` until more bytes
    /// come.
    fn take(&mut self, read: &mut BytesMut) -> Result<Option<Step>, Error> {
        Ok(match self {
            Remaining::Length(left) => {
                if read.is_empty() {
                    return Ok(None);
                }
                let take = usize::try_from(*left).unwrap_or(usize::MAX).min(read.len());
                *left -= take as u64;
                let frame = Frame::data(read.split_to(take).freeze());
                Some(if *left == 0 {
                    Step::Last(frame)
                } else {
                    Step::Frame(frame)
                })
            }
            Remaining::Chunked(decoder) => match decoder.decode(read)? {
                Decoded::Data(data) => Some(Step::Frame(Frame::data(data))),
                Decoded::Trailers(trailers) => Some(Step::Last(Frame::trailers(trailers))),
                Decoded::End => Some(Step::End),
                Decoded::NeedMore => None,
            },
            Remaining::UntilClose => {
                (!read.is_empty()).then(|| Step::Frame(Frame::data(read.split().freeze())))
            }
        })
    }

    /// What the endpoint closing the connection here means.
    fn at_close(&self) -> Result<Step, Error> {
        match self {
            Remaining::UntilClose => Ok(Step::End),
            _ => Err(Error::ClosedInBody),
        }
    }
}

impl Streaming {
    fn poll_step(&mut self, cx: &mut Context<'_>) -> Poll<Result<Step, Error>> {
        loop {
            if let Some(step) = self.remaining.take(&mut self.connection.read)? {
                return Poll::Ready(Ok(step));
            }
            let Poll::Ready(filled) = self.connection.poll_fill(cx) else {
                return self.poll_stalled(cx);
            };
            match filled {
                Ok(0) => return Poll::Ready(self.remaining.at_close()),
                Ok(_) => {}
                Err(error) => return Poll::Ready(Err(Error::Read(error))),
            }
        }
    }
}

impl Streaming {
    /// The body waits for the endpoint: `Pending`, or the stall once nothing came for
    /// `body_read_timeout`.
    // NOTE: the connection's own timer, moved only when bytes came since it was last set
    // (a clock read and a move to a later instant, which tokio does without its lock); a
    // body read whole without waiting never touches it.
    fn poll_stalled(&mut self, cx: &mut Context<'_>) -> Poll<Result<Step, Error>> {
        let timeout = self.home.shared.body_read_timeout;
        let connection = &mut self.connection;
        if self.timer_mark != Some(connection.moved) {
            self.timer_mark = Some(connection.moved);
            connection.timer.as_mut().reset(Instant::now() + timeout);
        }
        ready!(connection.timer.as_mut().poll(cx));
        Poll::Ready(Err(BodyStalled { timeout }.into()))
    }
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = self.get_mut();
        let streaming = match &mut this.state {
            State::Done => return Poll::Ready(None),
            State::Full(_) => {
                let State::Full(bytes) = std::mem::replace(&mut this.state, State::Done) else {
                    unreachable!("matched just above");
                };
                return Poll::Ready(Some(Ok(Frame::data(bytes))));
            }
            State::Streaming(streaming) => streaming,
        };
        let step = ready!(streaming.poll_step(cx));
        Poll::Ready(match step {
            Ok(Step::Frame(frame)) => Some(Ok(frame)),
            Ok(Step::Last(frame)) => {
                this.finish();
                Some(Ok(frame))
            }
            Ok(Step::End) => {
                this.finish();
                None
            }
            Err(error) => {
                // The connection is in an unknown state: dropped, not kept.
                this.state = State::Done;
                Some(Err(error))
            }
        })
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match &self.state {
            State::Done => SizeHint::with_exact(0),
            State::Full(bytes) => SizeHint::with_exact(bytes.len() as u64),
            State::Streaming(streaming) => match streaming.remaining {
                Remaining::Length(left) => SizeHint::with_exact(left),
                _ => SizeHint::default(),
            },
        }
    }
}
