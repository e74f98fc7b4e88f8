//! The body of a request read by the listener's HTTP/1.1 server.
//!
//! Most bodies are empty or arrive whole with their head: [`RequestBody`] then holds them
//! and nothing more is shared. A body still on its way streams through a [`Channel`]: the
//! body's reader (the pipeline, or an HTTP/2 upstream connection's own task) says it wants
//! more, and the connection, which owns the socket, reads and decodes the next piece and
//! hands it over. One piece at a time: a client cannot make the proxy hold more of a body
//! than the reader has asked for.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

use crate::body::BoxError;

/// A request body as the server hands it to whoever answers the request.
#[derive(Debug)]
pub(crate) struct RequestBody {
    state: State,
}

#[derive(Debug)]
enum State {
    Done,
    /// The whole body, read with its head.
    Full(Bytes),
    /// The rest comes from the connection through the channel; `left` is what the head
    /// announced and has not come yet, when it announced a length.
    Streaming {
        channel: Arc<Channel>,
        left: Option<u64>,
    },
}

impl RequestBody {
    pub(super) fn empty() -> Self {
        Self { state: State::Done }
    }

    pub(super) fn full(bytes: Bytes) -> Self {
        Self {
            state: State::Full(bytes),
        }
    }

    pub(super) fn streaming(channel: Arc<Channel>, length: Option<u64>) -> Self {
        Self {
            state: State::Streaming {
                channel,
                left: length,
            },
        }
    }
}

/// Why a request body ended before it was whole.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum BodyError {
    /// The client closed the connection, or sent what is not the body it announced.
    #[error("the client's request body failed: {0}")]
    Client(String),
    /// The body went past the listener's `max_request_body`.
    #[error("request body over the limit of {0} bytes")]
    TooLarge(u64),
    /// The client stopped sending it, or sent it too slowly (`request_body_timeout`,
    /// `min_data_rate`): the client's fault, never the endpoint's.
    #[error("the client's request body stalled: {0}")]
    Stalled(#[from] crate::listener::pace::Stall),
}

/// Where a streaming body's pieces pass from the connection to the body's reader.
#[derive(Debug, Default)]
pub(super) struct Channel {
    inner: Mutex<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    /// Pieces read and not yet taken: at most one data frame, and trailers after it.
    ready: VecDeque<Frame<Bytes>>,
    /// The body's end, once the connection knows it: `Ok` when whole.
    end: Option<Result<(), BodyError>>,
    /// The reader asked for more than `ready` holds.
    wanted: bool,
    /// The reader is gone: nothing more is read for it.
    dropped: bool,
    reader: Option<Waker>,
    connection: Option<Waker>,
}

/// What the connection is to do for a streaming body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Demand {
    /// Read and hand over the next piece.
    More,
    /// Nothing now: the connection's waker is kept, to be woken when that changes.
    Waiting,
    /// The reader dropped the body.
    Abandoned,
}

impl Channel {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the reader wants another piece.
    pub(super) fn demand(&self, connection: &Waker) -> Demand {
        let mut shared = self.lock();
        if shared.dropped {
            return Demand::Abandoned;
        }
        if shared.wanted && shared.ready.is_empty() {
            return Demand::More;
        }
        if !shared
            .connection
            .as_ref()
            .is_some_and(|known| known.will_wake(connection))
        {
            shared.connection = Some(connection.clone());
        }
        Demand::Waiting
    }

    /// Whether the reader has asked for anything yet (a client waiting for `100 Continue`
    /// is told to send only then).
    pub(super) fn asked(&self) -> bool {
        let shared = self.lock();
        shared.wanted || shared.dropped
    }

    /// Hands the reader a piece; `last` when it ends the body.
    pub(super) fn send(&self, frame: Frame<Bytes>, last: bool) {
        let mut shared = self.lock();
        shared.ready.push_back(frame);
        if last {
            shared.end = Some(Ok(()));
        }
        shared.wanted = false;
        if let Some(reader) = shared.reader.take() {
            reader.wake();
        }
    }

    /// Ends the body, whole (`Ok`) or failed.
    pub(super) fn end(&self, end: Result<(), BodyError>) {
        let mut shared = self.lock();
        shared.end.get_or_insert(end);
        if let Some(reader) = shared.reader.take() {
            reader.wake();
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match &mut this.state {
            State::Done => Poll::Ready(None),
            State::Full(_) => {
                let State::Full(bytes) = std::mem::replace(&mut this.state, State::Done) else {
                    unreachable!("matched just above");
                };
                Poll::Ready(Some(Ok(Frame::data(bytes))))
            }
            State::Streaming { channel, left } => {
                let mut shared = channel.lock();
                if let Some(frame) = shared.ready.pop_front() {
                    if let (Some(left), Some(data)) = (left.as_mut(), frame.data_ref()) {
                        *left = left.saturating_sub(data.len() as u64);
                    }
                    return Poll::Ready(Some(Ok(frame)));
                }
                match shared.end.clone() {
                    Some(Ok(())) => {
                        drop(shared);
                        this.state = State::Done;
                        Poll::Ready(None)
                    }
                    Some(Err(error)) => {
                        drop(shared);
                        this.state = State::Done;
                        Poll::Ready(Some(Err(Box::new(error))))
                    }
                    None => {
                        shared.wanted = true;
                        if !shared
                            .reader
                            .as_ref()
                            .is_some_and(|known| known.will_wake(cx.waker()))
                        {
                            shared.reader = Some(cx.waker().clone());
                        }
                        if let Some(connection) = shared.connection.take() {
                            connection.wake();
                        }
                        Poll::Pending
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match &self.state {
            State::Done => SizeHint::with_exact(0),
            State::Full(bytes) => SizeHint::with_exact(bytes.len() as u64),
            State::Streaming {
                left: Some(left), ..
            } => SizeHint::with_exact(*left),
            State::Streaming { left: None, .. } => SizeHint::default(),
        }
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        if let State::Streaming { channel, .. } = &self.state {
            let mut shared = channel.lock();
            shared.dropped = true;
            if let Some(connection) = shared.connection.take() {
                connection.wake();
            }
        }
    }
}
