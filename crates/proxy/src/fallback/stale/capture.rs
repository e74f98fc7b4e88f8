//! A response body that streams to the client unchanged while a copy of it, up to the
//! cache's `max_body`, is kept; the copy becomes a cache entry only when the body ended
//! cleanly.
//!
//! Frames are passed on as soon as they arrive (the copy never holds the client back). The
//! copy is dropped, and the body streams on uncopied, when it grows past `max_body`, when the
//! copies in flight of the whole route would pass `max_bytes`, when trailers arrive (a kept
//! response could not replay them), on an error, or when the client goes away first.
//!
//! An answer its URL's entry stands for ([`Standing`]) is compared instead: while its body
//! is the entry's, frame by frame, nothing is copied; from the first byte that differs, the
//! body is copied (the part that matched taken from the entry's), by the same rules, and
//! becomes the entry's body when it ends whole. A body that ends short of the entry's is
//! that much of it, no copy at all.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame};

use super::{Pending, StaleCache, Standing};
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

/// `body`, compared with the body of the entry that stands for it (see the module doc).
pub(crate) fn compare(body: ProxyBody, cache: Arc<StaleCache>, standing: Standing) -> ProxyBody {
    let mut comparison = Comparison {
        cache,
        standing,
        matched: 0,
        copy: None,
        given_up: false,
    };
    if body.is_end_stream() {
        comparison.ended(End::Whole);
        return body;
    }
    Guarded::new(body, comparison).boxed()
}

/// An answer's body against its entry's: how much matched, and the copy once it differed.
#[derive(Debug)]
struct Comparison {
    cache: Arc<StaleCache>,
    standing: Standing,
    /// Bytes equal to the entry's so far.
    matched: usize,
    /// From the first difference: the body so far (the matched part first).
    copy: Option<BytesMut>,
    /// Whether it may no longer become the entry's body (too large, trailers).
    given_up: bool,
}

impl Drop for Comparison {
    fn drop(&mut self) {
        if let Some(copy) = &self.copy {
            self.cache.release(copy.len() as u64);
        }
    }
}

impl Comparison {
    /// Takes `data`; false when the body may not become the entry's.
    fn take(&mut self, data: &Bytes) -> bool {
        if self.copy.is_none() {
            let end = self.matched + data.len();
            if self.standing.kept.get(self.matched..end) == Some(&data[..]) {
                self.matched = end;
                return true;
            }
            if !self.reserve(self.matched as u64) {
                return false;
            }
            self.copy = Some(BytesMut::from(&self.standing.kept[..self.matched]));
        }
        if !self.reserve(data.len() as u64) {
            return false;
        }
        self.copy
            .as_mut()
            .expect("NOTE: made above")
            .extend_from_slice(data);
        true
    }

    /// Reserves `len` more bytes of copy, within `max_body` and the route's copy budget.
    fn reserve(&mut self, len: u64) -> bool {
        let copied = self.copy.as_ref().map_or(0, |copy| copy.len() as u64);
        if copied + len > self.standing.max_body
            || !self.cache.reserve(len, self.standing.max_bytes)
        {
            self.cache.stats.stale_too_large.increment();
            return false;
        }
        true
    }
}

impl Guard<ProxyBody> for Comparison {
    fn frame(&mut self, frame: &Frame<Bytes>) {
        if self.given_up {
            return;
        }
        // Trailers could not be replayed: the entry stays as it is.
        if !frame.data_ref().is_some_and(|data| self.take(data)) {
            self.given_up = true;
        }
    }

    fn ended(&mut self, end: End<'_, BoxError>) {
        if self.given_up || !matches!(end, End::Whole) {
            return;
        }
        let body = match self.copy.take() {
            Some(copy) => {
                let body = copy.freeze();
                self.cache.release(body.len() as u64);
                body
            }
            None if self.matched == self.standing.kept.len() => return, // the same body
            None => self.standing.kept.slice(..self.matched),
        };
        self.cache.refresh(&self.standing, body);
    }
}
