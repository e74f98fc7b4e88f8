//! A response body that streams to the client unchanged while a copy of it, up to the
//! cache's `max_body`, is kept; the copy becomes a cache entry only when the body ended
//! cleanly.
//!
//! Frames are passed on as soon as they arrive (the copy never holds the client back). The
//! copy is dropped, and the body streams on uncopied, when it grows past `max_body`, when the
//! copies in flight of the whole route would pass `max_bytes`, when trailers arrive (a kept
//! response could not replay them), on an error, or when the client goes away first.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame};

use super::{Pending, StaleCache};
use crate::body::{BoxError, End, Guard, Guarded, ProxyBody};

/// `body`, copied into `cache` as `pending`; kept at once if it is already complete.
pub(crate) fn wrap(body: ProxyBody, cache: Arc<StaleCache>, pending: Pending) -> ProxyBody {
    let mut copy = Copy {
        cache,
        pending: Some(pending),
        buffer: BytesMut::new(),
    };
    if body.is_end_stream() {
        copy.commit();
        return body;
    }
    Guarded::new(body, Capture(Some(copy))).boxed()
}

/// What a kept response's body holds: its copy, until the copy is given up.
#[derive(Debug)]
struct Capture(Option<Copy>);

impl Guard<ProxyBody> for Capture {
    fn frame(&mut self, frame: &Frame<Bytes>) {
        let Some(copy) = &mut self.0 else {
            return;
        };
        // Trailers could not be replayed: a body with them is not kept.
        if !frame.data_ref().is_some_and(|data| copy.extend(data)) {
            self.0 = None;
        }
    }

    fn ended(&mut self, end: End<'_, BoxError>) {
        if let (End::Whole, Some(copy)) = (end, &mut self.0) {
            copy.commit();
        }
    }
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

    /// Makes the copy a cache entry; what is left of it releases nothing more when dropped.
    // In place: the copy holds the response's head, which a move would copy.
    fn commit(&mut self) {
        let body = std::mem::take(&mut self.buffer).freeze();
        self.cache.release(body.len() as u64);
        // NOTE: the buffer is empty now, so the drop releases nothing more.
        if let Some(pending) = self.pending.take() {
            self.cache.commit(pending, body);
        }
    }
}
