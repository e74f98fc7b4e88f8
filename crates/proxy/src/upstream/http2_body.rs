//! A response body from hyper's HTTP/2 client, held to the cluster's `body_read_timeout`.
//!
//! hyper's client has no timer for a stream whose endpoint stops sending mid-body, so the
//! body keeps one of its own. It is made only the first time the body has to wait (most
//! answers of a few frames never do), and moved, not replaced, when data came since.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep};

use super::BodyStalled;
use crate::body::BoxError;

/// An HTTP/2 response body that fails with [`BodyStalled`] once nothing came for `timeout`.
#[derive(Debug)]
pub(crate) struct Http2Body {
    inner: Incoming,
    timeout: Duration,
    /// Frames taken so far, and how many there were when the timer was last set.
    frames: u64,
    timer: Option<(Pin<Box<Sleep>>, u64)>,
}

impl Http2Body {
    pub(super) fn new(inner: Incoming, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            frames: 0,
            timer: None,
        }
    }
}

impl Body for Http2Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            this.frames += 1;
            return Poll::Ready(frame.map(|frame| frame.map_err(BoxError::from)));
        }
        let frames = this.frames;
        let timer = match &mut this.timer {
            Some((timer, mark)) => {
                if *mark != frames {
                    timer.as_mut().reset(Instant::now() + this.timeout);
                    *mark = frames;
                }
                timer
            }
            None => {
                let timer = Box::pin(tokio::time::sleep(this.timeout));
                &mut this.timer.insert((timer, frames)).0
            }
        };
        ready!(timer.as_mut().poll(cx));
        this.timer = None;
        Poll::Ready(Some(Err(Box::new(BodyStalled {
            timeout: this.timeout,
        }))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
