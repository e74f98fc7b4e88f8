//! The body of a mock's answer: whole, or broken off half-way as a failing service's is.
//!
//! An endpoint that starts its answers and never finishes them is a failure of its own kind:
//! the head looks healthy, so only what happens to the body can tell. A cut body sends its
//! `Content-Length` and the first half of its bytes, waits a moment (so that what was sent
//! reaches the peer before the cut), then either fails, which makes hyper close an HTTP/1.1
//! connection and reset an HTTP/2 stream, or never sends another byte.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::Sleep;

/// How long a cut body waits after its first half before it breaks: long enough for the
/// half to be written out (hyper drops what an HTTP/2 stream still queues when it resets).
const BEFORE_THE_CUT: Duration = Duration::from_millis(20);

/// How a body is broken off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// The connection is closed (HTTP/1.1) or the stream reset (HTTP/2).
    Fail,
    /// Nothing more is ever sent.
    Stall,
}

/// The body of a mock's answer.
#[derive(Debug)]
pub struct MockBody {
    state: State,
}

#[derive(Debug)]
enum State {
    Whole(Option<Bytes>),
    /// The first half is still to be sent.
    Half(Bytes, Cut, u64),
    /// The half was sent; the cut comes when the timer ends.
    Cutting(Pin<Box<Sleep>>, Cut),
    Stalled,
}

/// The error a cut body fails with.
#[derive(Debug, thiserror::Error)]
#[error("the mock broke off its answer's body")]
pub struct BrokenOff;

impl MockBody {
    /// All of `bytes`.
    pub fn whole(bytes: Bytes) -> Self {
        Self {
            state: State::Whole(Some(bytes)),
        }
    }

    /// The bytes of a whole body not polled yet (none for any other).
    pub fn into_whole(self) -> Bytes {
        match self.state {
            State::Whole(bytes) => bytes.unwrap_or_default(),
            _ => Bytes::new(),
        }
    }

    /// The first half of `bytes` (at least one byte of a body that has any), then `cut`. Its
    /// size hint is the whole length, so the answer promises every byte.
    pub fn cut(bytes: Bytes, cut: Cut) -> Self {
        let length = bytes.len() as u64;
        let half = bytes.slice(..bytes.len().div_ceil(2));
        Self {
            state: State::Half(half, cut, length),
        }
    }
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = BrokenOff;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BrokenOff>>> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                State::Whole(bytes) => return Poll::Ready(bytes.take().map(Frame::data).map(Ok)),
                State::Half(half, cut, _) => {
                    let (half, cut) = (std::mem::take(half), *cut);
                    this.state = State::Cutting(Box::pin(tokio::time::sleep(BEFORE_THE_CUT)), cut);
                    return Poll::Ready(Some(Ok(Frame::data(half))));
                }
                State::Cutting(timer, cut) => {
                    ready!(timer.as_mut().poll(cx));
                    match cut {
                        Cut::Fail => return Poll::Ready(Some(Err(BrokenOff))),
                        Cut::Stall => this.state = State::Stalled,
                    }
                }
                State::Stalled => return Poll::Pending,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Whole(None))
    }

    fn size_hint(&self) -> SizeHint {
        match &self.state {
            State::Whole(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |bytes| bytes.len() as u64))
            }
            State::Half(_, _, length) => SizeHint::with_exact(*length),
            State::Cutting(..) | State::Stalled => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_failing_cut_sends_half_then_fails() {
        let mut body = MockBody::cut(Bytes::from_static(b"abcde"), Cut::Fail);
        assert_eq!(body.size_hint().exact(), Some(5));
        let first = body.frame().await.expect("a frame").expect("data");
        assert_eq!(first.into_data().expect("data"), "abc");
        assert!(body.frame().await.expect("an end").is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalling_cut_sends_half_then_nothing() {
        let mut body = MockBody::cut(Bytes::from_static(b"abcd"), Cut::Stall);
        let first = body.frame().await.expect("a frame").expect("data");
        assert_eq!(first.into_data().expect("data"), "ab");
        let next = tokio::time::timeout(Duration::from_secs(3600), body.frame()).await;
        assert!(next.is_err(), "a stalled body never sends again");
    }
}
