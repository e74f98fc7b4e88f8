//! Bodies that enforce a listener's limits and keep a request counted until it is done.
//!
//! [`LimitedBody`] stops a request body at `max_request_body`: a body that announced its
//! length was already refused before forwarding, so this catches chunked and HTTP/2 bodies
//! that grow past the limit mid-stream. It fails the body (which aborts the upstream request)
//! and marks the [`Ticket`], so the listener answers 413 instead of the 502 the aborted
//! attempt would give. It also drops the trailer fields no trailer may carry
//! ([`crate::codec::trailer_allowed`]), as the HTTP/1.1 server's decoder does for its own.
//! [`TrackedBody`] holds the ticket until the response is sent.
//!
//! Both tell the connection's tracker when they wait on the client (see [`Waits`]): a
//! request body its reader polls and the client has not sent, an answer hyper has not
//! asked for its first frame or for the next one after a frame it took (it asks only once
//! the client's flow-control window and the socket have room). And both hold their stream
//! to `min_data_rate` ([`StreamPace`]), judged when such a wait ends: an answer too slow
//! fails, which makes hyper reset its stream; a request body too slow fails and marks the
//! [`Ticket`], so the listener answers 408, and the pipeline counts the failure as the
//! client's.
//!
//! [`Waits`]: super::tracker::Waits

use std::error::Error;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::Instant;

use super::pace::Stall;
use super::stream_pace::StreamPace;
use super::tracker::{Ticket, WaitMark};
use crate::body::{BoxError, ProxyBody};
use crate::config::MinDataRate;

/// The request body went past the listener's `max_request_body`.
#[derive(Debug)]
pub(super) struct BodyTooLarge {
    limit: u64,
}

impl fmt::Display for BodyTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "request body over the limit of {} bytes", self.limit)
    }
}

impl Error for BodyTooLarge {}

/// A request body cut off past a size, counting its request in flight while it lives.
#[derive(Debug)]
pub(super) struct LimitedBody {
    inner: Incoming,
    limit: u64,
    left: u64,
    ticket: Arc<Ticket>,
    /// Counted among the transfers waiting on the client, in this bucket.
    waits: Option<WaitMark>,
    /// Held to `min_data_rate`.
    pace: StreamPace,
}

impl LimitedBody {
    pub(super) fn new(
        inner: Incoming,
        limit: u64,
        min_rate: Option<MinDataRate>,
        ticket: Arc<Ticket>,
    ) -> Self {
        Self {
            inner,
            limit,
            left: limit,
            ticket,
            waits: None,
            pace: StreamPace::new(min_rate),
        }
    }
}

impl LimitedBody {
    /// Tells the tracker and the pace whether the body now waits on the client, or stopped
    /// waiting (with what came): whether the wait that ended left the body too slow.
    fn note_wait(
        &mut self,
        polled: &Poll<Option<Result<Frame<Bytes>, hyper::Error>>>,
    ) -> Result<(), Stall> {
        let bodies = &self.ticket.tracker().bodies;
        match (polled, self.waits) {
            (Poll::Pending, None) => {
                self.waits = Some(bodies.wait());
                self.pace.wait(Instant::now);
                Ok(())
            }
            (Poll::Ready(ready), Some(mark)) => {
                self.waits = None;
                bodies.resume(mark);
                if let Some(Ok(frame)) = ready
                    && let Some(data) = frame.data_ref()
                {
                    self.pace.moved(data.len() as u64);
                }
                self.pace.resume(Instant::now)
            }
            (Poll::Ready(Some(Ok(frame))), None) => {
                if let Some(data) = frame.data_ref() {
                    self.pace.moved(data.len() as u64);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

impl Body for LimitedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Err(stall) = this.note_wait(&polled) {
            // The client's doing: the pipeline sees a failed request body, never the
            // endpoint's failure, and the listener answers 408.
            this.ticket.mark_body_stalled();
            return Poll::Ready(Some(Err(Box::new(stall))));
        }
        match polled {
            Poll::Ready(Some(Ok(mut frame))) => {
                if let Some(trailers) = frame.trailers_mut() {
                    crate::codec::keep_allowed_trailers(trailers);
                }
                if let Some(data) = frame.data_ref() {
                    let size = data.len() as u64;
                    if size > this.left {
                        this.left = 0;
                        this.ticket.mark_body_overflowed();
                        return Poll::Ready(Some(Err(Box::new(BodyTooLarge {
                            limit: this.limit,
                        }))));
                    }
                    this.left -= size;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(error.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LimitedBody {
    fn drop(&mut self) {
        if let Some(mark) = self.waits {
            self.ticket.tracker().bodies.resume(mark);
        }
    }
}

/// A response body that keeps its request counted in flight until it is sent or dropped.
pub(super) struct TrackedBody {
    inner: ProxyBody,
    ticket: Arc<Ticket>,
    /// Counted among the transfers waiting on the client, in this bucket: a frame was
    /// handed to hyper and it has not asked for the next.
    waits: Option<WaitMark>,
    /// Held to `min_data_rate`.
    pace: StreamPace,
}

impl TrackedBody {
    pub(super) fn new(
        inner: ProxyBody,
        min_rate: Option<MinDataRate>,
        ticket: Arc<Ticket>,
    ) -> Self {
        // NOTE: it waits from the start: hyper asks for a first frame only once the client's
        // window has room, so a client that opens none from the start is seen too. The rate
        // is measured from the first frame: the wait for the head is the upstream's.
        let waits = (!inner.is_end_stream()).then(|| ticket.tracker().sends.wait());
        Self {
            inner,
            ticket,
            waits,
            pace: StreamPace::new(min_rate),
        }
    }
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        if let Some(mark) = self.waits {
            self.ticket.tracker().sends.resume(mark);
        }
    }
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let sends = &this.ticket.tracker().sends;
        // NOTE: the clock is read at most once per poll, and only around a handed frame.
        let mut now = None;
        if let Some(mark) = this.waits.take() {
            // Asked again: the client took the last frame.
            sends.resume(mark);
            // Returning an error makes hyper reset this stream, and only it.
            this.pace.resume(|| *now.get_or_insert_with(Instant::now))?;
        }
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
            && !this.inner.is_end_stream()
        {
            this.waits = Some(sends.wait());
            this.pace.moved(data.len() as u64);
            this.pace.wait(|| *now.get_or_insert_with(Instant::now));
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::time::Duration;

    use http_body_util::BodyExt;

    use super::*;
    use crate::listener::tracker::Tracker;

    /// An upstream answer of pieces of ten bytes, each ready `every` after it is asked for.
    struct Pieces {
        left: usize,
        every: Duration,
        sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    }

    impl Body for Pieces {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            let this = self.get_mut();
            if this.left == 0 {
                return Poll::Ready(None);
            }
            let every = this.every;
            let sleep = this
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(every)));
            std::task::ready!(sleep.as_mut().poll(cx));
            this.sleep = None;
            this.left -= 1;
            Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"0123456789")))))
        }
    }

    /// An answer of `pieces` pieces, each `every` apart upstream, held to 1000 bytes a
    /// second after 2 s.
    fn answer(pieces: usize, every: Duration) -> TrackedBody {
        let tracker = Arc::new(Tracker::new());
        let ticket = Arc::new(Ticket::new(tracker.clone(), tracker.begin()));
        let rate = MinDataRate {
            bytes_per_second: 1000,
            grace: Duration::from_secs(2),
        };
        let upstream = Pieces {
            left: pieces,
            every,
            sleep: None,
        };
        TrackedBody::new(upstream.boxed(), Some(rate), ticket)
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_the_client_takes_too_slowly_fails_after_the_grace() {
        let mut body = answer(1000, Duration::ZERO);
        let started = Instant::now();
        let failed = loop {
            match body.frame().await {
                // The client takes each piece 100 ms after it was handed: 100 bytes a second.
                Some(Ok(_)) => tokio::time::advance(Duration::from_millis(100)).await,
                Some(Err(error)) => break error,
                None => panic!("the whole answer was taken"),
            }
        };
        assert!(failed.is::<Stall>(), "{failed}");
        assert_eq!(started.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_whose_upstream_is_slow_is_not_judged_for_it() {
        // Ten bytes every 100 ms from upstream, taken at once by the client.
        let mut body = answer(1000, Duration::from_millis(100));
        let mut taken = 0;
        while let Some(frame) = body.frame().await {
            assert!(frame.is_ok());
            taken += 1;
        }
        assert_eq!(taken, 1000);
    }
}
