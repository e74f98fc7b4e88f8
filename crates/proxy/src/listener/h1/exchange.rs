//! One request and its answer on a connection: the request's future runs in place while its
//! answer is written and its body is fed to it, until the answer is out, the client stalls,
//! or the stop comes.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::Poll;

use http::request::Parts;
use http::{Method, Response};
use tokio::io::{AsyncRead, AsyncWrite};

use super::answer::Writing;
use super::feed::Feed;
use super::stalls::Direction;
use super::{Connection, RequestBody, RequestHead};
use crate::body::ProxyBody;
use crate::error::{self, ProxyError};
use crate::listener::checks::Framing;
use crate::listener::pace::Stall;

/// What follows an answered request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    Keep,
    /// Close; `linger` when the client may still be sending the request's body.
    Close {
        linger: bool,
    },
    /// Close at once, writing nothing more: the client stalled.
    Drop,
}

/// How an exchange's answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answered {
    Whole,
    /// Writing it failed.
    Failed,
    /// The client stalled a transfer.
    Stalled,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<'_, S> {
    /// Answers one request, and says whether the connection may carry another.
    pub(super) async fn exchange<R, F>(&mut self, head: RequestHead, respond: &mut R) -> Next
    where
        R: FnMut(Parts, RequestBody) -> F,
        F: Future<Output = Response<ProxyBody>>,
    {
        let RequestHead {
            parts,
            framing,
            keep_alive,
            expect_continue,
            takes_trailers,
        } = head;
        let head_request = parts.method == Method::HEAD;
        let version = parts.version;
        let (body, mut feed) = Feed::start(framing, expect_continue, &mut self.read);
        let last = self
            .settings
            .max_requests
            .is_some_and(|max| self.requests >= max.get());
        let mut close = !keep_alive || last || self.stopping || framing == Framing::Opaque;
        // NOTE: in an `Option` so that a stalled body can drop the pipeline's future (and
        // the slots and connection it holds) before the 408 is written.
        let mut answer = pin!(Some(respond(parts, body)));
        let mut writing: Option<Writing> = None;
        let outcome = poll_fn(|cx| {
            loop {
                let mut progress = false;
                let (stopped, _) = self.poll_side(cx);
                close |= stopped;
                if writing.is_none()
                    && let Some(pending) = answer.as_mut().as_pin_mut()
                    && let Poll::Ready(response) = pending.poll(cx)
                {
                    answer.set(None);
                    let response = match feed {
                        Feed::Failed { too_large: true } => self.body_too_large(),
                        _ => response,
                    };
                    // A body not yet whole when the answer starts may never be: the
                    // connection cannot promise to carry another request.
                    close |= !matches!(feed, Feed::Done);
                    writing = Some(self.start_answer(
                        response,
                        head_request,
                        version,
                        takes_trailers,
                        &mut close,
                    ));
                    progress = true;
                }
                if let Some(answer) = &mut writing {
                    match self.poll_answer(cx, answer) {
                        Poll::Ready(Ok(())) => return Poll::Ready(Answered::Whole),
                        Poll::Ready(Err(error)) => {
                            tracing::debug!(%error, "writing the answer failed");
                            return Poll::Ready(Answered::Failed);
                        }
                        Poll::Pending => {}
                    }
                }
                if let Poll::Ready(()) = self.poll_feed(cx, &mut feed, writing.is_none()) {
                    progress = true;
                }
                if progress {
                    continue;
                }
                // About to wait: on the client, and for too long?
                let sending = writing.is_some() && !self.write.is_empty();
                match self.poll_pace(sending) {
                    Ok(()) => return Poll::Pending,
                    Err((Direction::Send, stall)) => {
                        tracing::debug!(%stall, "the client does not read its answer");
                        return Poll::Ready(Answered::Stalled);
                    }
                    Err((Direction::Body, stall)) => {
                        tracing::debug!(%stall, "the client does not send its request body");
                        feed.stalled(stall);
                        if writing.is_some() {
                            return Poll::Ready(Answered::Stalled);
                        }
                        // Nothing of the answer went out yet: the client hears why. The
                        // pipeline is dropped unfinished, so the endpoint is not blamed.
                        answer.set(None);
                        close = true;
                        let response = stalled_body_answer(&stall);
                        writing = Some(self.start_answer(
                            response,
                            head_request,
                            version,
                            false,
                            &mut close,
                        ));
                    }
                }
            }
        })
        .await;
        self.body_pace.rest();
        self.send_pace.rest();
        let whole = matches!(feed, Feed::Done);
        match outcome {
            Answered::Stalled => Next::Drop,
            Answered::Whole if !close && whole => Next::Keep,
            _ => Next::Close { linger: !whole },
        }
    }

    /// The answer to a request whose body went past `max_request_body` while it was read.
    fn body_too_large(&self) -> Response<ProxyBody> {
        error::error_response(
            ProxyError::RequestBodyTooLarge,
            &format!(
                "request body over the limit of {} bytes",
                self.settings.head_limits.max_request_body
            ),
        )
    }
}

/// The answer to a request whose body the client stopped sending, or sent too slowly.
fn stalled_body_answer(stall: &Stall) -> Response<ProxyBody> {
    error::error_response(
        ProxyError::BodyReadTimeout,
        &format!("the request body stalled: {stall}"),
    )
}
