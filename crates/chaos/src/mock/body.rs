//! The body of a mock's answer: whole, sent slowly, or broken off as a failing service's is.
//!
//! An endpoint that starts its answers and never finishes them is a failure of its own kind:
//! the head looks healthy, so only what happens to the body can tell. A broken body sends its
//! `Content-Length` and only some of its bytes (half, or the number asked for), waits a moment
//! (so that what was sent reaches the peer before the cut), then either fails, which makes
//! hyper close an HTTP/1.1 connection and reset an HTTP/2 stream, or never sends another
//! byte. A slow body sends its bytes at a given rate, in small chunks on a timetable, as a
//! congested link or a service streaming a large answer does.

use std::num::NonZeroU64;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::Sleep;

/// How long a cut body waits after its last byte before it breaks: long enough for the
/// bytes to be written out (hyper drops what an HTTP/2 stream still queues when it resets).
const BEFORE_THE_CUT: Duration = Duration::from_millis(20);

/// A slow body sends a chunk about this often (less often below ten bytes a second).
const PACE: Duration = Duration::from_millis(100);

/// How a body is broken off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// The connection is closed (HTTP/1.1) or the stream reset (HTTP/2).
    Fail,
    /// Nothing more is ever sent.
    Stall,
}

/// Where a broken body stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// After the first half (at least one byte of a body that has any).
    Half,
    /// After this many bytes (all of them, if the body is shorter).
    Bytes(usize),
}

/// How a body is sent: its pace, and whether and where it is broken off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shape {
    /// Bytes per second; `None` sends everything at once.
    pub rate: Option<NonZeroU64>,
    /// Where and how the body breaks; `None` sends it whole.
    pub cut: Option<(Keep, Cut)>,
}

/// The body of a mock's answer.
#[derive(Debug)]
pub struct MockBody {
    /// Bytes still to send.
    pending: Bytes,
    /// The length promised in the size hint.
    length: u64,
    rate: Option<NonZeroU64>,
    /// Set between two chunks of a slow body, and before a cut.
    timer: Option<Pin<Box<Sleep>>>,
    /// What happens once `pending` is sent.
    end: End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Done,
    Break(Cut),
    Stalled,
}

/// The error a cut body fails with.
#[derive(Debug, thiserror::Error)]
#[error("the mock broke off its answer's body")]
pub struct BrokenOff;

impl MockBody {
    /// All of `bytes`, at once.
    pub fn whole(bytes: Bytes) -> Self {
        Self::shaped(bytes, Shape::default())
    }

    /// `bytes` sent as `shape` says. Its size hint is the whole length, so the answer
    /// promises every byte even when it will not send them.
    pub fn shaped(bytes: Bytes, shape: Shape) -> Self {
        let length = bytes.len() as u64;
        let (pending, end) = match shape.cut {
            None => (bytes, End::Done),
            Some((keep, cut)) => {
                let kept = match keep {
                    Keep::Half => bytes.len().div_ceil(2),
                    Keep::Bytes(count) => count.min(bytes.len()),
                };
                (bytes.slice(..kept), End::Break(cut))
            }
        };
        Self {
            pending,
            length,
            rate: shape.rate,
            timer: None,
            end,
        }
    }

    /// The bytes of a body not polled yet, whatever its shape would have sent.
    pub fn into_pending(self) -> Bytes {
        self.pending
    }

    /// The next chunk of a slow body and how long to wait after it.
    fn next_chunk(&mut self, rate: NonZeroU64) -> (Bytes, Duration) {
        let per_pace = rate.get().div_ceil(1000 / PACE.as_millis() as u64).max(1);
        let size = usize::try_from(per_pace)
            .unwrap_or(usize::MAX)
            .min(self.pending.len());
        let wait = Duration::from_secs_f64(size as f64 / rate.get() as f64);
        (self.pending.split_to(size), wait)
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
        if let Some(timer) = &mut this.timer {
            ready!(timer.as_mut().poll(cx));
            this.timer = None;
        }
        if !this.pending.is_empty() {
            let chunk = match this.rate {
                None => std::mem::take(&mut this.pending),
                Some(rate) => {
                    let (chunk, wait) = this.next_chunk(rate);
                    this.timer = Some(Box::pin(tokio::time::sleep(wait)));
                    chunk
                }
            };
            if this.pending.is_empty() && matches!(this.end, End::Break(_)) && this.timer.is_none()
            {
                this.timer = Some(Box::pin(tokio::time::sleep(BEFORE_THE_CUT)));
            }
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        match this.end {
            End::Done => Poll::Ready(None),
            End::Break(Cut::Fail) => Poll::Ready(Some(Err(BrokenOff))),
            End::Break(Cut::Stall) | End::Stalled => {
                this.end = End::Stalled;
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.pending.is_empty() && self.end == End::Done
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.length)
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;
    use tokio::time::Instant;

    use super::*;

    fn data(frame: Option<Result<Frame<Bytes>, BrokenOff>>) -> Bytes {
        frame
            .expect("a frame")
            .expect("not broken")
            .into_data()
            .expect("data")
    }

    fn cut(keep: Keep, cut: Cut) -> Shape {
        Shape {
            rate: None,
            cut: Some((keep, cut)),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_cut_sends_half_then_fails() {
        let mut body = MockBody::shaped(Bytes::from_static(b"abcde"), cut(Keep::Half, Cut::Fail));
        assert_eq!(body.size_hint().exact(), Some(5));
        assert_eq!(data(body.frame().await), "abc");
        assert!(body.frame().await.expect("an end").is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalling_cut_sends_half_then_nothing() {
        let mut body = MockBody::shaped(Bytes::from_static(b"abcd"), cut(Keep::Half, Cut::Stall));
        assert_eq!(data(body.frame().await), "ab");
        let next = tokio::time::timeout(Duration::from_secs(3600), body.frame()).await;
        assert!(next.is_err(), "a stalled body never sends again");
    }

    #[tokio::test(start_paused = true)]
    async fn a_truncated_body_sends_the_bytes_asked_for_then_fails() {
        let mut body = MockBody::shaped(
            Bytes::from_static(b"abcdef"),
            cut(Keep::Bytes(2), Cut::Fail),
        );
        assert_eq!(body.size_hint().exact(), Some(6));
        assert_eq!(data(body.frame().await), "ab");
        assert!(body.frame().await.expect("an end").is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_truncation_past_the_end_sends_everything_then_fails() {
        let mut body =
            MockBody::shaped(Bytes::from_static(b"abc"), cut(Keep::Bytes(99), Cut::Fail));
        assert_eq!(data(body.frame().await), "abc");
        assert!(body.frame().await.expect("an end").is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_body_takes_its_length_over_its_rate() {
        let shape = Shape {
            rate: NonZeroU64::new(1000),
            cut: None,
        };
        let mut body = MockBody::shaped(Bytes::from(vec![b'x'; 3000]), shape);
        let start = Instant::now();
        let mut received = 0;
        while let Some(frame) = body.frame().await {
            let chunk = frame.expect("not broken").into_data().expect("data");
            assert_eq!(chunk.len(), 100, "a tenth of a second's worth at a time");
            received += chunk.len();
        }
        assert_eq!(received, 3000);
        // 30 chunks, a pace after each: the last pace is waited before the end is seen.
        assert_eq!(start.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_very_slow_body_sends_single_bytes_at_its_rate() {
        let shape = Shape {
            rate: NonZeroU64::new(2),
            cut: None,
        };
        let mut body = MockBody::shaped(Bytes::from_static(b"abcd"), shape);
        let start = Instant::now();
        assert_eq!(data(body.frame().await), "a");
        assert_eq!(data(body.frame().await), "b");
        assert_eq!(start.elapsed(), Duration::from_millis(500));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_body_can_be_cut_too() {
        let shape = Shape {
            rate: NonZeroU64::new(10),
            cut: Some((Keep::Bytes(2), Cut::Fail)),
        };
        let mut body = MockBody::shaped(Bytes::from_static(b"abcdef"), shape);
        assert_eq!(data(body.frame().await), "a");
        assert_eq!(data(body.frame().await), "b");
        assert!(body.frame().await.expect("an end").is_err());
    }
}
