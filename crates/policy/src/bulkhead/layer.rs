//! The bulkhead as a `tower::Layer`.
//!
//! The permit is taken in `call`, never in `poll_ready`: a permit reserved by `poll_ready`
//! would be held by a service that may never be called (or be cloned, or sit idle in a
//! pool), starving real requests. `poll_ready` only asks the inner service.
//!
//! When no permit is free, `call` moves the inner service, which `poll_ready` made ready,
//! into the response future and leaves a clone in its place (the idiom tower's docs describe
//! for services that must be driven later); the future waits in the queue for at most
//! [`Bulkhead::queue_timeout`], then calls the service it holds. The permit lives in the
//! response future until that future completes or is dropped.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::Timeout;
use tower::{BoxError, Layer, Service};

use super::{Acquire, Bulkhead, BulkheadFull, BulkheadPermit, QueueTimeout};

/// Wraps services in a shared [`Bulkhead`]. Every service it makes shares the same permits.
#[derive(Debug, Clone)]
pub struct BulkheadLayer {
    bulkhead: Bulkhead,
}

impl BulkheadLayer {
    /// A layer over `bulkhead` (which the caller may keep, to read or move its limit).
    pub fn new(bulkhead: Bulkhead) -> Self {
        Self { bulkhead }
    }
}

impl<S> Layer<S> for BulkheadLayer {
    type Service = BulkheadService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BulkheadService {
            inner,
            bulkhead: self.bulkhead.clone(),
        }
    }
}

/// A service that runs at most `limit` calls at once and queues the rest for a while.
///
/// Errors are boxed: the inner error as is, or [`BulkheadFull`] when the queue is full, or
/// [`QueueTimeout`] when the wait ran out; callers tell them apart with `downcast_ref`.
#[derive(Debug, Clone)]
pub struct BulkheadService<S> {
    inner: S,
    bulkhead: Bulkhead,
}

impl<S> BulkheadService<S> {
    /// The bulkhead this service shares.
    pub fn bulkhead(&self) -> &Bulkhead {
        &self.bulkhead
    }
}

impl<S, Req> Service<Req> for BulkheadService<S>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Req>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let state = if let Ok(permit) = self.bulkhead.try_acquire() {
            State::Calling {
                future: self.inner.call(request),
                _permit: permit,
            }
        } else if self.bulkhead.max_queue() == 0 {
            State::Rejected {
                error: Some(BulkheadFull.into()),
            }
        } else {
            let timeout = self.bulkhead.queue_timeout();
            let fresh = self.inner.clone();
            let ready = std::mem::replace(&mut self.inner, fresh);
            State::Queued {
                wait: tokio::time::timeout(timeout, self.bulkhead.acquire()),
                timeout,
                service: Some(ready),
                request: Some(request),
            }
        };
        ResponseFuture { state }
    }
}

pin_project! {
    /// The response of a [`BulkheadService`]: waits for a permit if needed, then holds it
    /// while the inner call runs.
    pub struct ResponseFuture<S, Req>
    where
        S: Service<Req>,
    {
        #[pin]
        state: State<S, Req>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, Req>
    where
        S: Service<Req>,
    {
        // ## Queued => (Calling | Done with BulkheadFull or QueueTimeout)
        Queued {
            #[pin]
            wait: Timeout<Acquire>,
            timeout: Duration,
            service: Option<S>,
            request: Option<Req>,
        },
        // ## Calling => Done, dropping the permit
        Calling {
            #[pin]
            future: S::Future,
            _permit: BulkheadPermit,
        },
        // ## Rejected => Done
        Rejected {
            error: Option<BoxError>,
        },
        Done,
    }
}

/// The end of a wait in a bulkhead queue bounded by `timeout`: the admission, or the
/// rejection (`BulkheadFull`, `QueueTimeout`) as the layer's error.
pub(crate) fn queue_outcome<T>(
    waited: Result<Result<T, BulkheadFull>, tokio::time::error::Elapsed>,
    timeout: Duration,
) -> Result<T, BoxError> {
    match waited {
        Ok(Ok(admitted)) => Ok(admitted),
        Ok(Err(full)) => Err(full.into()),
        Err(_elapsed) => Err(QueueTimeout { timeout }.into()),
    }
}

impl<S, Req> Future for ResponseFuture<S, Req>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Queued {
                    wait,
                    timeout,
                    service,
                    request,
                } => {
                    let permit = match queue_outcome(ready!(wait.poll(cx)), *timeout) {
                        Ok(permit) => permit,
                        Err(error) => {
                            // Leave the queue now, not whenever the caller drops us.
                            state.set(State::Done);
                            return Poll::Ready(Err(error));
                        }
                    };
                    let (Some(mut service), Some(request)) = (service.take(), request.take())
                    else {
                        unreachable!("service and request are only taken on leaving Queued");
                    };
                    let future = service.call(request);
                    state.set(State::Calling {
                        future,
                        _permit: permit,
                    });
                }
                StateProj::Calling { future, .. } => {
                    let output = ready!(future.poll(cx));
                    // Dropping the permit here, not when the caller drops us.
                    state.set(State::Done);
                    return Poll::Ready(output.map_err(Into::into));
                }
                StateProj::Rejected { error } => {
                    let error = error.take().unwrap_or_else(|| BulkheadFull.into());
                    state.set(State::Done);
                    return Poll::Ready(Err(error));
                }
                StateProj::Done => panic!("bulkhead ResponseFuture polled after completion"),
            }
        }
    }
}

impl<S, Req> fmt::Debug for ResponseFuture<S, Req>
where
    S: Service<Req>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
