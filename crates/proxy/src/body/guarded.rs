//! A body that holds a guard until its stream ends, and tells the guard how it ended.
//!
//! Several things last as long as a body's stream, not as long as the head that came with
//! it: an endpoint counted in flight and the verdict on its attempt (`forward::answer`), an
//! admission slot (`admission::body`), the copy a stale-if-error route keeps
//! (`fallback::stale::capture`), what a streaming upload was doing when its attempt failed
//! (`pipeline::body`). Each rides in the body and needs the same three facts, so they are
//! decided here once, and each of those is only its guard:
//!
//! - **whole**: the body gave its end (`None`), or a frame after which it says
//!   `is_end_stream` (a server that sees that asks for nothing more, so waiting for the
//!   `None` would wait for ever);
//! - **failed**: the body gave an error;
//! - **dropped**: it went away before either (the client left, a reader stopped early).
//!   A body dropped while it says `is_end_stream` counts as whole: an HTTP/2 body can learn
//!   that it ended without being polled again.
//!
//! The guard is told exactly once and dropped right after, so whatever it holds (a slot, a
//! count) is given back the moment the stream ends, not when the body is dropped later.
//!
//! Zero cost: [`Guarded`] is generic over the body and the guard (no `dyn`, no box of its
//! own); a guard that only holds something implements [`Guard::ended`] alone, and the hooks it
//! leaves out are empty and inlined away.

use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::body::{Body, Frame, SizeHint};

/// What rides in a [`Guarded`] body until the body ends.
pub(crate) trait Guard<B: Body>: Sized {
    /// The body handed on `frame` (called before [`Guard::ended`] when it was the last).
    #[inline]
    fn frame(&mut self, _frame: &Frame<B::Data>) {}

    /// The body had nothing ready: its reader waits for it.
    #[inline]
    fn waiting(&mut self) {}

    /// The body ended so; the guard is dropped right after, in place.
    // NOTE: by reference, not by value: moving a large guard (a stale-cache copy holds a
    // response head) out of the body to hand it over costs a copy per request.
    fn ended(&mut self, end: End<'_, B::Error>);
}

/// How a body ended (see the module doc).
#[derive(Debug)]
pub(crate) enum End<'a, E> {
    /// It was read to its end.
    Whole,
    /// It failed with this error, which its reader gets too.
    Failed(&'a E),
    /// It was dropped short of its end.
    Dropped,
}

/// `inner`, with `guard` held until it ends.
#[derive(Debug)]
pub(crate) struct Guarded<B: Body, G: Guard<B>> {
    inner: B,
    /// `None` once told.
    guard: Option<G>,
}

impl<B: Body, G: Guard<B>> Guarded<B, G> {
    /// `inner` holding `guard`.
    #[inline]
    pub(crate) fn new(inner: B, guard: G) -> Self {
        Self {
            inner,
            guard: Some(guard),
        }
    }

    /// Tells the guard, once, and drops it.
    #[inline]
    fn end(&mut self, end: End<'_, B::Error>) {
        if let Some(guard) = &mut self.guard {
            guard.ended(end);
            self.guard = None;
        }
    }
}

impl<B, G> Body for Guarded<B, G>
where
    B: Body + Unpin,
    G: Guard<B> + Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Some(guard) = &mut this.guard {
            match &polled {
                Poll::Pending => guard.waiting(),
                Poll::Ready(Some(Ok(frame))) => {
                    guard.frame(frame);
                    if this.inner.is_end_stream() {
                        this.end(End::Whole);
                    }
                }
                Poll::Ready(Some(Err(error))) => this.end(End::Failed(error)),
                Poll::Ready(None) => this.end(End::Whole),
            }
        }
        polled
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B: Body, G: Guard<B>> Drop for Guarded<B, G> {
    fn drop(&mut self) {
        if self.guard.is_some() {
            let end = if self.inner.is_end_stream() {
                End::Whole
            } else {
                End::Dropped
            };
            self.end(end);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    use bytes::Bytes;
    use http_body_util::BodyExt;

    use super::*;

    /// One poll of a [`Script`].
    type Polled = Poll<Option<Result<Frame<Bytes>, &'static str>>>;

    /// A body of these polls, in order, then `Pending` for ever; it says it ended once its
    /// polls are used up and `ends` is set.
    struct Script {
        polls: VecDeque<Polled>,
        ends: bool,
    }

    impl Body for Script {
        type Data = Bytes;
        type Error = &'static str;

        fn poll_frame(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Polled {
            self.get_mut().polls.pop_front().unwrap_or(Poll::Pending)
        }

        fn is_end_stream(&self) -> bool {
            self.ends && self.polls.is_empty()
        }
    }

    fn data() -> Polled {
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"x")))))
    }

    /// Writes down what it is told.
    #[derive(Default)]
    struct Log(Arc<Mutex<Vec<String>>>);

    impl Guard<Script> for Log {
        fn frame(&mut self, _frame: &Frame<Bytes>) {
            self.0.lock().unwrap().push("frame".into());
        }

        fn waiting(&mut self) {
            self.0.lock().unwrap().push("waiting".into());
        }

        fn ended(&mut self, end: End<'_, &'static str>) {
            self.0.lock().unwrap().push(format!("{end:?}"));
        }
    }

    /// What the guard was told after `polls` polls of `script`, and after the body's drop.
    fn told(script: Script, polls: usize) -> Vec<String> {
        let log = Log::default();
        let told = log.0.clone();
        let mut body = Guarded::new(script, log);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        for _ in 0..polls {
            let _ = Pin::new(&mut body).poll_frame(&mut cx);
        }
        drop(body);
        told.lock().unwrap().clone()
    }

    fn script(polls: impl IntoIterator<Item = Polled>, ends: bool) -> Script {
        Script {
            polls: polls.into_iter().collect(),
            ends,
        }
    }

    #[test]
    fn a_body_read_to_its_end_tells_its_guard_whole_once() {
        let told = told(script([data(), Poll::Ready(None)], false), 3);
        assert_eq!(told, ["frame", "Whole"]);
    }

    #[test]
    fn a_frame_after_which_the_body_says_it_ended_is_its_end() {
        let told = told(script([data()], true), 1);
        assert_eq!(told, ["frame", "Whole"]);
    }

    #[test]
    fn a_failed_body_tells_its_guard_the_error() {
        let told = told(
            script([Poll::Pending, Poll::Ready(Some(Err("reset")))], false),
            3,
        );
        assert_eq!(told, ["waiting", r#"Failed("reset")"#]);
    }

    #[test]
    fn a_body_dropped_short_of_its_end_tells_its_guard_so() {
        assert_eq!(
            told(script([data(), data()], false), 1),
            ["frame", "Dropped"]
        );
        assert_eq!(told(script([], false), 0), ["Dropped"]);
    }

    #[test]
    fn a_body_dropped_when_it_says_it_ended_counts_as_whole() {
        assert_eq!(told(script([], true), 0), ["Whole"]);
    }

    #[tokio::test]
    async fn the_guarded_body_hands_on_every_frame_unchanged() {
        let body = Guarded::new(
            script([data(), data(), Poll::Ready(None)], false),
            Log::default(),
        );
        let collected = body.collect().await.unwrap().to_bytes();
        assert_eq!(collected, "xx");
    }
}
