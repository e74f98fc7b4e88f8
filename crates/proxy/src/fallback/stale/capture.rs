//! A response body that streams to the client unchanged while a copy of it, up to the
//! cache's `max_body`, is kept; the copy becomes a cache entry only when the body ended
//! cleanly.
//!
//! Frames are passed on as soon as they arrive (the copy never holds the client back). The
//! copy is dropped, and the body streams on uncopied, when it grows past `max_body`, when the
//! copies in flight of the whole route would pass `max_bytes`, when trailers arrive (a kept
//! response could not replay them), on an error, or when the client goes away first.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};

use super::{Pending, StaleCache};
use crate::body::{BoxError, ProxyBody};

/// The body a kept response streams through.
#[derive(Debug)]
pub(crate) struct CaptureBody {
    inner: ProxyBody,
    copy: Option<Copy>,
}

/// The copy so far, and the budget it holds.
#[derive(Debug)]
struct Copy {
    cache: Arc<StaleCache>,
    /// `None` only once committed.
    pending: Option<Pending>,
    buffer: BytesMut,
}

impl Drop for Copy {
    fn drop(&mut self) {
        self.cache.release(self.buffer.len() as u64);
    }
}

impl Copy {
    /// Adds `data`; false when it may not be kept whole.
    fn extend(&mut self, data: &Bytes) -> bool {
        let len = data.len() as u64;
        let Some(pending) = &self.pending else {
            return false;
        };
        if self.buffer.len() as u64 + len > pending.max_body
            || !self.cache.reserve(len, pending.max_bytes)
        {
            self.cache.stats.stale_too_large.increment();
            return false;
        }
        self.buffer.extend_from_slice(data);
        true
    }

    fn commit(mut self) {
        let body = std::mem::take(&mut self.buffer).freeze();
        self.cache.release(body.len() as u64);
        // NOTE: the buffer is empty now, so the drop releases nothing more.
        if let Some(pending) = self.pending.take() {
            self.cache.commit(pending, body);
        }
    }
}

impl CaptureBody {
    /// `body`, copied into `cache` as `pending`; kept at once if it is already complete.
    pub(crate) fn wrap(body: ProxyBody, cache: Arc<StaleCache>, pending: Pending) -> ProxyBody {
        let copy = Copy {
            cache,
            pending: Some(pending),
            buffer: BytesMut::new(),
        };
        if body.is_end_stream() {
            copy.commit();
            return body;
        }
        CaptureBody {
            inner: body,
            copy: Some(copy),
        }
        .boxed()
    }
}

impl Body for CaptureBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Pending => {}
            Poll::Ready(Some(Ok(frame))) => {
                let keep = match (frame.data_ref(), &mut this.copy) {
                    (Some(data), Some(copy)) => copy.extend(data),
                    (None, Some(_)) => false,
                    (_, None) => true,
                };
                if !keep {
                    this.copy = None;
                } else if this.inner.is_end_stream()
                    && let Some(copy) = this.copy.take()
                {
                    // The body says it is complete: whoever serves it may never poll again.
                    copy.commit();
                }
            }
            Poll::Ready(Some(Err(_))) => this.copy = None,
            Poll::Ready(None) => {
                if let Some(copy) = this.copy.take() {
                    copy.commit();
                }
            }
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
