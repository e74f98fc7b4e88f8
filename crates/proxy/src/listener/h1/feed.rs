//! Feeding a streaming request body: the connection reads and decodes the next piece when
//! the body's reader asks for it, and answers `Expect: 100-continue` then.

use std::io;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use hyper::body::Frame;
use tokio::io::{AsyncRead, AsyncWrite};

use super::body::{Channel, Demand};
use super::{BodyError, Connection, RequestBody};
use crate::codec::{Decoded, Decoder};
use crate::listener::checks::Framing;
use crate::listener::pace::Stall;

pub(super) const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// A streaming request body's progress, as the connection sees it.
#[derive(Debug)]
pub(super) enum Feed {
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
pub(super) enum Remaining {
    Length(u64),
    Chunked(Decoder),
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<'_, S> {
    /// Reads the next piece of a streaming request body when its reader wants one. Ready
    /// when something changed.
    pub(super) fn poll_feed(
        &mut self,
        cx: &mut Context<'_>,
        feed: &mut Feed,
        may_continue: bool,
    ) -> Poll<()> {
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
        match self.poll_continue(cx, channel, expect_continue, may_continue) {
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
        let limit = self.settings.head_limits.max_request_body;
        loop {
            match remaining.next_piece(&mut self.read) {
                Piece::Frame(frame, last) => {
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
                Piece::End => {
                    channel.end(Ok(()));
                    *feed = Feed::Done;
                    return Poll::Ready(());
                }
                Piece::Broken(error) => {
                    channel.end(Err(error));
                    *feed = Feed::Failed { too_large: false };
                    return Poll::Ready(());
                }
                Piece::NeedMore => {}
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

    /// Writes the `100 Continue` a client waits for before it sends the body (RFC 9110
    /// §10.1.1), once the body's reader asked for it, and whatever else is to be written
    /// before the body is read. Pending while the client does not take it.
    fn poll_continue(
        &mut self,
        cx: &mut Context<'_>,
        channel: &Channel,
        expect_continue: &mut bool,
        may_continue: bool,
    ) -> Poll<io::Result<()>> {
        if !may_continue {
            return Poll::Ready(Ok(()));
        }
        if *expect_continue && self.read.is_empty() && channel.asked() {
            self.write.extend_from_slice(CONTINUE);
            *expect_continue = false;
        }
        if self.write.is_empty() {
            return Poll::Ready(Ok(()));
        }
        self.poll_flush(cx)
    }
}

/// What the read buffer holds next of a streaming body.
enum Piece {
    /// A frame; `true` when it is the last.
    Frame(Frame<Bytes>, bool),
    /// The end of a chunked body, with no trailers.
    End,
    /// Nothing whole yet.
    NeedMore,
    /// What the client sent is not the body it announced.
    Broken(BodyError),
}

impl Remaining {
    /// Takes the next piece of the body out of `read`.
    fn next_piece(&mut self, read: &mut BytesMut) -> Piece {
        match self {
            Remaining::Length(_) if read.is_empty() => Piece::NeedMore,
            Remaining::Length(left) => {
                let take = usize::try_from(*left).unwrap_or(usize::MAX).min(read.len());
                *left -= take as u64;
                Piece::Frame(Frame::data(read.split_to(take).freeze()), *left == 0)
            }
            Remaining::Chunked(decoder) => match decoder.decode(read) {
                Ok(Decoded::Data(data)) => Piece::Frame(Frame::data(data), false),
                Ok(Decoded::Trailers(trailers)) => Piece::Frame(Frame::trailers(trailers), true),
                Ok(Decoded::End) => Piece::End,
                Ok(Decoded::NeedMore) => Piece::NeedMore,
                Err(error) => Piece::Broken(BodyError::Client(error.to_string())),
            },
        }
    }
}

impl Feed {
    /// The body of a request framed so, and what the connection is to feed it: read whole
    /// from `read` when it came with its head.
    #[inline]
    pub(super) fn start(
        framing: Framing,
        expect_continue: bool,
        read: &mut BytesMut,
    ) -> (RequestBody, Feed) {
        let streaming = |length: Option<u64>, remaining: Remaining| {
            let channel = Arc::new(Channel::default());
            let body = RequestBody::streaming(channel.clone(), length);
            let feed = Feed::Streaming {
                channel,
                remaining,
                received: 0,
                expect_continue,
            };
            (body, feed)
        };
        match framing {
            Framing::Length(0) | Framing::Opaque => (RequestBody::empty(), Feed::Done),
            Framing::Length(length) if read.len() as u64 >= length => {
                let bytes = read.split_to(length as usize).freeze();
                (RequestBody::full(bytes), Feed::Done)
            }
            Framing::Length(length) => streaming(Some(length), Remaining::Length(length)),
            Framing::Chunked => streaming(None, Remaining::Chunked(Decoder::new())),
        }
    }

    /// The client stopped sending the body, or sent it too slowly: its reader hears so.
    pub(super) fn stalled(&mut self, stall: Stall) {
        if let Feed::Streaming { channel, .. } = self {
            channel.end(Err(BodyError::Stalled(stall)));
        }
        *self = Feed::Failed { too_large: false };
    }
}
