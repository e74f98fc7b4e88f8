//! The two faults that act on an upstream's answer rather than in its place: a body cut off
//! after some bytes ([`Truncated`]) and a body handed on at a set rate ([`Throttled`]).
//!
//! Both wrap the endpoint's own body, below the guard that judges the attempt by how its
//! body ends (`forward::answer`): a cut body fails with an error, which that guard records
//! as the endpoint's `BodyFailed` and the client's connection sees as a truncation, as a
//! real upstream's broken body is; a throttled one only takes longer. Neither spins: the
//! throttle sleeps on the runtime's timer between pieces, and a body the client stops
//! reading or drops is not polled, so it does nothing more. A throttle ends with its rule
//! ([`Throttled::until`]): the rest of the body is then handed on as it comes; a cut
//! already decided stands (the answer's length is the cut's).

use std::future::Future;
use std::num::NonZeroU64;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::body::BoxError;

/// The error a cut body ends with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the endpoint's answer broke off after {after} bytes of its body (injected by a fault rule)"
)]
pub(crate) struct CutOff {
    /// Body bytes handed on before it broke off.
    pub(crate) after: u64,
}

/// A body that breaks off with [`CutOff`] after `truncate_after` bytes. A body that ends
/// before is handed on whole: there is nothing to cut.
#[derive(Debug)]
pub(crate) struct Truncated<B> {
    inner: B,
    /// Bytes still to hand on before the cut.
    left: u64,
    /// The bytes it may hand on in all.
    after: u64,
    /// Whether part of a frame was held back (the body can no longer end whole).
    short: bool,
    /// Whether it has failed.
    cut: bool,
}

impl<B> Truncated<B> {
    /// `inner`, cut after `truncate_after` bytes of body.
    pub(crate) fn new(inner: B, truncate_after: u64) -> Self {
        Self {
            inner,
            left: truncate_after,
            after: truncate_after,
            short: false,
            cut: false,
        }
    }
}

impl<B> Body for Truncated<B>
where
    B: Body<Data = Bytes, Error = BoxError> + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.cut || (!this.short && this.inner.is_end_stream()) {
            return Poll::Ready(None);
        }
        if this.left == 0 {
            this.cut = true;
            let cut = CutOff { after: this.after };
            return Poll::Ready(Some(Err(Box::new(cut))));
        }
        let frame = match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => frame,
            other => return Poll::Ready(other),
        };
        Poll::Ready(Some(Ok(match frame.into_data() {
            Ok(mut data) => {
                let len = data.len() as u64;
                if len > this.left {
                    // In range: less than the frame's length.
                    #[allow(clippy::cast_possible_truncation)]
                    data.truncate(this.left as usize);
                    this.short = true;
                }
                this.left -= data.len() as u64;
                Frame::data(data)
            }
            Err(trailers) => trailers,
        })))
    }

    fn is_end_stream(&self) -> bool {
        self.cut || (!self.short && self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        // What the head promised: the cut is a failure, not a shorter answer.
        self.inner.size_hint()
    }
}

/// Largest piece handed on at once: a fast rate is paced in pieces this small, so the body
/// does not come in bursts of a second's worth.
const MAX_PIECE: u64 = 16 * 1024;

/// What ends a throttle early: its rule's end, as the body holds it.
type Ended = Pin<Box<dyn Future<Output = ()> + Send + Sync>>;

/// A body handed on at `rate` bytes a second: each piece (a tenth of a second's worth, at
/// most [`MAX_PIECE`]) after the time it takes at that rate; once its rule has ended, as
/// it comes.
pub(crate) struct Throttled<B> {
    inner: B,
    rate: NonZeroU64,
    /// Taken from `inner`, not handed on yet.
    pending: Bytes,
    /// The timer, made at the first wait (inside the runtime) and reset after.
    wait: Option<Pin<Box<Sleep>>>,
    /// Whether the timer is set for the next piece.
    armed: bool,
    /// Its rule's end, while the rule lasts; `None` once it has ended (or with no rule).
    ended: Option<Ended>,
    /// Whether the rule has ended: no more throttling.
    released: bool,
}

impl<B: std::fmt::Debug> std::fmt::Debug for Throttled<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttled")
            .field("inner", &self.inner)
            .field("rate", &self.rate)
            .field("pending", &self.pending.len())
            .field("released", &self.released)
            .finish_non_exhaustive()
    }
}

impl<B> Throttled<B> {
    /// `inner`, handed on at `rate` bytes a second.
    pub(crate) fn new(inner: B, rate: NonZeroU64) -> Self {
        Self {
            inner,
            rate,
            pending: Bytes::new(),
            wait: None,
            armed: false,
            ended: None,
            released: false,
        }
    }

    /// The same, throttled only until `ended` is done (its rule's end), then handed on at
    /// full speed.
    pub(crate) fn until(mut self, ended: impl Future<Output = ()> + Send + Sync + 'static) -> Self {
        self.ended = Some(Box::pin(ended));
        self
    }

    /// Whether its rule has ended by now (polled while a piece waits, so that the end
    /// wakes the body).
    fn released(&mut self, cx: &mut Context<'_>) -> bool {
        if let Some(ended) = &mut self.ended
            && ended.as_mut().poll(cx).is_ready()
        {
            self.ended = None;
            self.released = true;
            self.wait = None;
        }
        self.released
    }

    /// The next piece's size and how long it takes at the rate.
    fn piece(&self) -> (usize, Duration) {
        let size = (self.rate.get() / 10).clamp(1, MAX_PIECE);
        let size = size.min(self.pending.len() as u64);
        let nanos = u128::from(size) * 1_000_000_000 / u128::from(self.rate.get());
        let nanos = u64::try_from(nanos).unwrap_or(u64::MAX);
        // At most MAX_PIECE, so it fits.
        #[allow(clippy::cast_possible_truncation)]
        (size as usize, Duration::from_nanos(nanos))
    }
}

impl<B> Body for Throttled<B>
where
    B: Body<Data = Bytes, Error = BoxError> + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        while this.pending.is_empty() {
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => this.pending = data,
                    Err(trailers) => return Poll::Ready(Some(Ok(trailers))),
                },
                other => return Poll::Ready(other),
            }
        }
        if this.released(cx) {
            return Poll::Ready(Some(Ok(Frame::data(std::mem::take(&mut this.pending)))));
        }
        let (size, takes) = this.piece();
        if !this.armed {
            let until = Instant::now() + takes;
            match &mut this.wait {
                Some(wait) => wait.as_mut().reset(until),
                None => this.wait = Some(Box::pin(tokio::time::sleep_until(until))),
            }
            this.armed = true;
        }
        if let Some(wait) = &mut this.wait {
            ready!(wait.as_mut().poll(cx));
        }
        this.armed = false;
        Poll::Ready(Some(Ok(Frame::data(this.pending.split_to(size)))))
    }

    fn is_end_stream(&self) -> bool {
        self.pending.is_empty() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let inner = self.inner.size_hint();
        let pending = self.pending.len() as u64;
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower().saturating_add(pending));
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper.saturating_add(pending));
        }
        hint
    }
}
