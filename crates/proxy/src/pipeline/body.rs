//! A request body that can be sent more than once, within a bound.
//!
//! A retry or a hedge needs the request again, body included, but a proxy must not hold
//! arbitrary bodies in memory. So a body is kept only when it is small: one that announces
//! (Content-Length) or turns out to be at most the route's `buffer_limit` is read whole
//! before the first attempt and replayed for every attempt; a larger one streams through
//! as it arrives (the part read while finding out it is large goes first), and its request
//! gets one attempt.
//!
//! NOTE: reading a small body whole before forwarding costs the first attempt the time the
//! client takes to upload it; Envoy's retry buffering makes the same trade. Requests
//! without a body (most GETs) cost nothing here.
//!
//! A body that streams is watched ([`Upload`]) as its attempt sends it: when the attempt
//! fails, whether it was waiting for the client's next bytes, or the client's body failed,
//! tells whose doing the failure was (see [`ClientCause`](super::ClientCause)).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};

use crate::body::{BoxError, End, Guard, Guarded, ProxyBody, empty, full};

/// A request body, ready for one attempt or for many.
#[derive(Debug)]
pub(crate) enum RequestBody {
    /// No body at all.
    Empty,
    /// Read whole and kept: every attempt gets a copy.
    Kept {
        /// The data, in order.
        data: Bytes,
        /// Trailers, if the client sent any.
        trailers: Option<HeaderMap>,
    },
    /// Too large to keep: the one attempt streams it.
    Streaming(ProxyBody),
    /// A streaming body already given to its attempt.
    Spent,
}

impl RequestBody {
    /// Reads `body` whole when it is at most `limit` bytes; otherwise hands it on unread
    /// past the first `limit` bytes. Errors are the client's body failing (or exceeding the
    /// listener's size limit) while it is read.
    pub(crate) async fn prepare(body: ProxyBody, limit: u64) -> Result<Self, BoxError> {
        if body.is_end_stream() {
            return Ok(RequestBody::Empty);
        }
        if body.size_hint().lower() > limit {
            return Ok(RequestBody::Streaming(body));
        }
        let mut body = body;
        let mut chunks: VecDeque<Bytes> = VecDeque::new();
        let mut size: u64 = 0;
        while let Some(frame) = body.frame().await {
            let frame = frame?;
            match frame.into_data() {
                Ok(data) => {
                    size += data.len() as u64;
                    chunks.push_back(data);
                    if size > limit {
                        let prefix = Prefixed { chunks, rest: body };
                        return Ok(RequestBody::Streaming(prefix.boxed()));
                    }
                }
                Err(frame) => {
                    // Trailers end the body.
                    let trailers = frame.into_trailers().ok();
                    return Ok(RequestBody::Kept {
                        data: concat(chunks, size),
                        trailers,
                    });
                }
            }
        }
        Ok(RequestBody::Kept {
            data: concat(chunks, size),
            trailers: None,
        })
    }

    /// Whether another attempt can send it again.
    pub(crate) fn is_replayable(&self) -> bool {
        !matches!(self, RequestBody::Streaming(_) | RequestBody::Spent)
    }

    /// The body for one attempt: a copy when kept, the stream itself (once) otherwise,
    /// watched (see [`Upload`]). `None` when a streaming body has already been given to an
    /// attempt.
    pub(crate) fn for_attempt(&mut self) -> Option<(ProxyBody, Option<Upload>)> {
        match self {
            RequestBody::Empty => Some((empty(), None)),
            RequestBody::Kept {
                data,
                trailers: None,
            } => Some((full(data.clone()), None)),
            RequestBody::Kept {
                data,
                trailers: Some(trailers),
            } => Some((
                Replay {
                    data: Some(data.clone()),
                    trailers: Some(trailers.clone()),
                }
                .boxed(),
                None,
            )),
            RequestBody::Streaming(_) => match std::mem::replace(self, RequestBody::Spent) {
                RequestBody::Streaming(body) => {
                    let upload = Upload::default();
                    let watched = Guarded::new(body, upload.clone());
                    Some((watched.boxed(), Some(upload)))
                }
                _ => None,
            },
            RequestBody::Spent => None,
        }
    }
}

fn concat(mut chunks: VecDeque<Bytes>, size: u64) -> Bytes {
    if chunks.len() == 1 {
        return chunks.pop_front().unwrap_or_default();
    }
    let mut whole = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    for chunk in chunks {
        whole.extend_from_slice(&chunk);
    }
    Bytes::from(whole)
}

/// The chunks read so far, then the rest of the body.
struct Prefixed {
    chunks: VecDeque<Bytes>,
    rest: ProxyBody,
}

impl Body for Prefixed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Some(chunk) = this.chunks.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        Pin::new(&mut this.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let buffered: u64 = self.chunks.iter().map(|chunk| chunk.len() as u64).sum();
        let rest = self.rest.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower() + buffered);
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + buffered);
        }
        hint
    }
}

/// What the client's side of a streaming request body was doing when its attempt last
/// polled it: shared between the body, which the upstream client owns, and the attempt.
// NOTE: one allocation per request whose body streams (kept bodies and empty ones, nearly
// every request, are complete already and need no watching), and a relaxed store per poll.
#[derive(Debug, Clone, Default)]
pub(crate) struct Upload(Arc<AtomicU8>);

/// What [`Upload`] says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UploadState {
    /// Not polled yet, or its last poll gave data: the client was keeping up.
    Flowing,
    /// Its last poll found nothing: the attempt was waiting for the client.
    Waiting,
    /// It ended: the whole body was sent.
    Ended,
    /// It failed: the client left, or sent more than it may.
    Failed,
}

impl Upload {
    const STATES: [UploadState; 4] = [
        UploadState::Flowing,
        UploadState::Waiting,
        UploadState::Ended,
        UploadState::Failed,
    ];

    /// What the body was doing when last polled.
    pub(crate) fn state(&self) -> UploadState {
        Self::STATES[usize::from(self.0.load(Ordering::Relaxed)) % Self::STATES.len()]
    }

    fn set(&self, state: UploadState) {
        self.0.store(state as u8, Ordering::Relaxed);
    }
}

/// A streaming body says what it was doing in its [`Upload`].
impl Guard<ProxyBody> for Upload {
    #[inline]
    fn frame(&mut self, _frame: &Frame<Bytes>) {
        self.set(UploadState::Flowing);
    }

    #[inline]
    fn waiting(&mut self) {
        self.set(UploadState::Waiting);
    }

    fn ended(&mut self, end: End<'_, BoxError>) {
        match end {
            End::Whole => self.set(UploadState::Ended),
            End::Failed(_) => self.set(UploadState::Failed),
            // The attempt that dropped it is done with it: nothing more to tell.
            End::Dropped => {}
        }
    }
}

/// A kept body with trailers, sent again.
struct Replay {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl Body for Replay {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Some(data) = this.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        Poll::Ready(
            this.trailers
                .take()
                .map(|trailers| Ok(Frame::trailers(trailers))),
        )
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body of these frames, with no size hint (like a chunked upload).
    struct Frames(VecDeque<Frame<Bytes>>);

    impl Body for Frames {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            Poll::Ready(self.get_mut().0.pop_front().map(Ok))
        }
    }

    fn chunked(chunks: &[&'static str]) -> ProxyBody {
        Frames(
            chunks
                .iter()
                .map(|chunk| Frame::data(Bytes::from_static(chunk.as_bytes())))
                .collect(),
        )
        .boxed()
    }

    async fn collect(body: ProxyBody) -> Bytes {
        body.collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn a_small_body_is_kept_and_replayed_for_every_attempt() {
        let mut body = RequestBody::prepare(chunked(&["ab", "cd"]), 10)
            .await
            .unwrap();
        assert!(body.is_replayable());
        assert_eq!(collect(body.for_attempt().unwrap().0).await, "abcd");
        assert_eq!(collect(body.for_attempt().unwrap().0).await, "abcd");
    }

    #[tokio::test]
    async fn a_large_body_streams_whole_once() {
        let mut body = RequestBody::prepare(chunked(&["abc", "def", "ghi"]), 4)
            .await
            .unwrap();
        assert!(!body.is_replayable());
        assert_eq!(collect(body.for_attempt().unwrap().0).await, "abcdefghi");
        assert!(body.for_attempt().is_none());
    }

    #[tokio::test]
    async fn a_body_announced_larger_than_the_limit_is_not_read() {
        let mut body = RequestBody::prepare(full("0123456789"), 4).await.unwrap();
        assert!(!body.is_replayable());
        assert_eq!(collect(body.for_attempt().unwrap().0).await, "0123456789");
    }

    #[tokio::test]
    async fn no_body_is_empty_and_replayable() {
        let mut body = RequestBody::prepare(empty(), 4).await.unwrap();
        assert!(matches!(body, RequestBody::Empty));
        assert_eq!(collect(body.for_attempt().unwrap().0).await, "");
    }

    /// A body that gives `first`, then finds nothing more (the client stalls), or fails.
    struct Stalling(Option<Bytes>, bool);

    impl Body for Stalling {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            let this = self.get_mut();
            match this.0.take() {
                Some(data) => Poll::Ready(Some(Ok(Frame::data(data)))),
                None if this.1 => Poll::Ready(Some(Err("the client left".into()))),
                None => Poll::Pending,
            }
        }
    }

    #[tokio::test]
    async fn a_streaming_body_tells_whether_its_attempt_waits_for_the_client() {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        for (fails, last) in [(false, UploadState::Waiting), (true, UploadState::Failed)] {
            let source = Stalling(Some(Bytes::from_static(b"ab")), fails).boxed();
            let mut body = RequestBody::Streaming(source);
            let (mut sent, upload) = body.for_attempt().unwrap();
            let upload = upload.expect("a streaming body is watched");
            assert_eq!(upload.state(), UploadState::Flowing);
            assert!(Pin::new(&mut sent).poll_frame(&mut cx).is_ready());
            assert_eq!(upload.state(), UploadState::Flowing);
            let _ = Pin::new(&mut sent).poll_frame(&mut cx);
            assert_eq!(upload.state(), last);
        }
        let mut whole = RequestBody::Streaming(chunked(&["abc"]));
        let (sent, upload) = whole.for_attempt().unwrap();
        assert_eq!(collect(sent).await, "abc");
        assert_eq!(upload.unwrap().state(), UploadState::Ended);
        let mut kept = RequestBody::prepare(chunked(&["ab"]), 10).await.unwrap();
        assert!(
            kept.for_attempt().unwrap().1.is_none(),
            "a kept body is whole"
        );
    }

    #[tokio::test]
    async fn trailers_are_kept_with_the_body() {
        let mut trailers = HeaderMap::new();
        trailers.insert("x-checksum", "1".parse().unwrap());
        let source = Frames(VecDeque::from([
            Frame::data(Bytes::from_static(b"ab")),
            Frame::trailers(trailers.clone()),
        ]))
        .boxed();
        let mut body = RequestBody::prepare(source, 10).await.unwrap();
        for _ in 0..2 {
            let collected = body.for_attempt().unwrap().0.collect().await.unwrap();
            assert_eq!(collected.trailers(), Some(&trailers));
            assert_eq!(collected.to_bytes(), "ab");
        }
    }
}
