//! The rate limiter as a `tower::Layer`.
//!
//! The check happens in `call`, not in `poll_ready`: a rate limit sheds requests, it does not
//! apply backpressure, so a rejected request becomes an error response ([`RateLimited`],
//! with its `retry_after`) while the service stays ready for the next one. `poll_ready` only
//! asks the inner service.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tower::{BoxError, Layer, Service};

use super::{RateLimited, RateLimiter};
use crate::clock::{Clock, TokioClock};

/// Wraps services in a shared [`RateLimiter`]: every service it makes draws on one budget.
#[derive(Debug, Clone)]
pub struct RateLimitLayer<C = TokioClock> {
    limiter: Arc<RateLimiter>,
    clock: C,
}

impl RateLimitLayer {
    /// A layer over `limiter`, reading tokio's clock.
    pub fn new(limiter: Arc<RateLimiter>) -> Self {
        Self {
            limiter,
            clock: TokioClock,
        }
    }
}

impl<C> RateLimitLayer<C> {
    /// The same layer reading time from `clock`.
    pub fn with_clock<C2: Clock>(self, clock: C2) -> RateLimitLayer<C2> {
        RateLimitLayer {
            limiter: self.limiter,
            clock,
        }
    }
}

impl<S, C: Clone> Layer<S> for RateLimitLayer<C> {
    type Service = RateLimitService<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService {
            inner,
            limiter: Arc::clone(&self.limiter),
            clock: self.clock.clone(),
        }
    }
}

/// A service that rejects calls over the rate with [`RateLimited`] (boxed; inner errors are
/// boxed as they are).
#[derive(Debug, Clone)]
pub struct RateLimitService<S, C = TokioClock> {
    inner: S,
    limiter: Arc<RateLimiter>,
    clock: C,
}

impl<S, C> RateLimitService<S, C> {
    /// The limiter this service draws on.
    pub fn limiter(&self) -> &Arc<RateLimiter> {
        &self.limiter
    }
}

impl<S, C, Req> Service<Req> for RateLimitService<S, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: Clock,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let state = match self.limiter.check(self.clock.now()) {
            Ok(()) => State::Called {
                future: self.inner.call(request),
            },
            Err(limited) => State::Rejected {
                error: Some(limited),
            },
        };
        ResponseFuture { state }
    }
}

pin_project! {
    /// The response of a [`RateLimitService`].
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Called {
            #[pin]
            future: F,
        },
        Rejected {
            error: Option<RateLimited>,
        },
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Called { future } => {
                Poll::Ready(ready!(future.poll(cx)).map_err(Into::into))
            }
            StateProj::Rejected { error } => {
                let error = error
                    .take()
                    .expect("rate limit ResponseFuture polled after completion");
                Poll::Ready(Err(error.into()))
            }
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
