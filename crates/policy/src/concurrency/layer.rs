//! The adaptive limiter as a `tower::Layer`.
//!
//! Same shape as the bulkhead layer: the permit is taken in `call` (never held by
//! `poll_ready`), queued calls carry the ready inner service in their future, and the
//! permit lives until the response future completes or is dropped. On completion the
//! result is classified ([`ClassifyOutcome`]) and recorded with its RTT, measured from the
//! moment the permit was granted, not from when the call queued.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::Timeout;
use tower::{BoxError, Layer, Service};

use super::{AdaptiveAcquire, AdaptiveLimiter, AdaptivePermit, LimitAlgorithm, Outcome};
use crate::bulkhead::queue_outcome;
use crate::bulkhead::{BulkheadFull, QueueTimeout};
use crate::clock::{Clock, TokioClock};

/// Decides how a finished call counts towards the limit.
pub trait ClassifyOutcome<Res> {
    /// The outcome of `result`.
    fn classify(&self, result: &Result<Res, BoxError>) -> Outcome;
}

impl<Res, F> ClassifyOutcome<Res> for F
where
    F: Fn(&Result<Res, BoxError>) -> Outcome,
{
    fn classify(&self, result: &Result<Res, BoxError>) -> Outcome {
        self(result)
    }
}

/// Any response is a [`Success`](Outcome::Success); a timeout error (tower's or tokio's
/// `Elapsed`, or [`QueueTimeout`] from a bulkhead further in) is
/// [`Dropped`](Outcome::Dropped); other errors are [`Ignored`](Outcome::Ignored), since a
/// fast failure (a refused connection) is no measurement of load. A proxy that sees
/// overload in responses (503, 429) supplies its own classifier.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultClassifier;

impl<Res> ClassifyOutcome<Res> for DefaultClassifier {
    fn classify(&self, result: &Result<Res, BoxError>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(error)
                if error.is::<tower::timeout::error::Elapsed>()
                    || error.is::<tokio::time::error::Elapsed>()
                    || error.is::<QueueTimeout>() =>
            {
                Outcome::Dropped
            }
            Err(_) => Outcome::Ignored,
        }
    }
}

/// Wraps services in a shared [`AdaptiveLimiter`].
pub struct AdaptiveConcurrencyLayer<A, C = TokioClock, K = DefaultClassifier> {
    limiter: AdaptiveLimiter<A>,
    clock: C,
    classifier: K,
}

impl<A: LimitAlgorithm> AdaptiveConcurrencyLayer<A> {
    /// A layer over `limiter`, reading tokio's clock, with the [`DefaultClassifier`].
    pub fn new(limiter: AdaptiveLimiter<A>) -> Self {
        Self {
            limiter,
            clock: TokioClock,
            classifier: DefaultClassifier,
        }
    }
}

impl<A, C, K> AdaptiveConcurrencyLayer<A, C, K> {
    /// The same layer reading time from `clock`.
    pub fn with_clock<C2: Clock>(self, clock: C2) -> AdaptiveConcurrencyLayer<A, C2, K> {
        AdaptiveConcurrencyLayer {
            limiter: self.limiter,
            clock,
            classifier: self.classifier,
        }
    }

    /// The same layer classifying results with `classifier`.
    pub fn with_classifier<K2>(self, classifier: K2) -> AdaptiveConcurrencyLayer<A, C, K2> {
        AdaptiveConcurrencyLayer {
            limiter: self.limiter,
            clock: self.clock,
            classifier,
        }
    }
}

impl<A, C: Clone, K: Clone> Clone for AdaptiveConcurrencyLayer<A, C, K> {
    fn clone(&self) -> Self {
        Self {
            limiter: self.limiter.clone(),
            clock: self.clock.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

impl<A, C: fmt::Debug, K> fmt::Debug for AdaptiveConcurrencyLayer<A, C, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptiveConcurrencyLayer")
            .field("limiter", &self.limiter)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl<S, A, C: Clone, K: Clone> Layer<S> for AdaptiveConcurrencyLayer<A, C, K> {
    type Service = AdaptiveConcurrencyService<S, A, C, K>;

    fn layer(&self, inner: S) -> Self::Service {
        AdaptiveConcurrencyService {
            inner,
            limiter: self.limiter.clone(),
            clock: self.clock.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

/// A service under an adaptive concurrency limit. Rejections are [`BulkheadFull`] and
/// [`QueueTimeout`] (boxed, beside the inner errors), as for the bulkhead.
pub struct AdaptiveConcurrencyService<S, A, C = TokioClock, K = DefaultClassifier> {
    inner: S,
    limiter: AdaptiveLimiter<A>,
    clock: C,
    classifier: K,
}

impl<S: Clone, A, C: Clone, K: Clone> Clone for AdaptiveConcurrencyService<S, A, C, K> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            limiter: self.limiter.clone(),
            clock: self.clock.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

impl<S: fmt::Debug, A, C, K> fmt::Debug for AdaptiveConcurrencyService<S, A, C, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptiveConcurrencyService")
            .field("inner", &self.inner)
            .field("limiter", &self.limiter)
            .finish_non_exhaustive()
    }
}

impl<S, A, C, K> AdaptiveConcurrencyService<S, A, C, K> {
    /// The limiter this service shares.
    pub fn limiter(&self) -> &AdaptiveLimiter<A> {
        &self.limiter
    }
}

impl<S, A, C, K, Req> Service<Req> for AdaptiveConcurrencyService<S, A, C, K>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    A: LimitAlgorithm,
    C: Clock + Clone,
    K: ClassifyOutcome<S::Response> + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Req, A, C, K>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let bulkhead = self.limiter.bulkhead();
        let state = if let Ok(permit) = self.limiter.try_acquire(self.clock.now()) {
            State::Running {
                future: self.inner.call(request),
                permit: Some(permit),
            }
        } else if bulkhead.max_queue() == 0 {
            State::Rejected {
                error: Some(BulkheadFull.into()),
            }
        } else {
            let timeout = bulkhead.queue_timeout();
            let fresh = self.inner.clone();
            let ready = std::mem::replace(&mut self.inner, fresh);
            State::Queued {
                wait: tokio::time::timeout(timeout, self.limiter.acquire()),
                timeout,
                service: Some(ready),
                request: Some(request),
            }
        };
        ResponseFuture {
            state,
            clock: self.clock.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

pin_project! {
    /// The response of an [`AdaptiveConcurrencyService`].
    pub struct ResponseFuture<S, Req, A, C, K>
    where
        S: Service<Req>,
    {
        #[pin]
        state: State<S, Req, A>,
        clock: C,
        classifier: K,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, Req, A>
    where
        S: Service<Req>,
    {
        // ## Queued => (Running | Done with BulkheadFull or QueueTimeout)
        Queued {
            #[pin]
            wait: Timeout<AdaptiveAcquire<A>>,
            timeout: Duration,
            service: Option<S>,
            request: Option<Req>,
        },
        // ## Running => Done, recording the sample
        Running {
            #[pin]
            future: S::Future,
            permit: Option<AdaptivePermit<A>>,
        },
        // ## Rejected => Done
        Rejected {
            error: Option<BoxError>,
        },
        Done,
    }
}

impl<S, Req, A, C, K> Future for ResponseFuture<S, Req, A, C, K>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    A: LimitAlgorithm,
    C: Clock,
    K: ClassifyOutcome<S::Response>,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut state = this.state;
        loop {
            match state.as_mut().project() {
                StateProj::Queued {
                    wait,
                    timeout,
                    service,
                    request,
                } => {
                    let admitted = match queue_outcome(ready!(wait.poll(cx)), *timeout) {
                        Ok(admitted) => admitted,
                        Err(error) => {
                            state.set(State::Done);
                            return Poll::Ready(Err(error));
                        }
                    };
                    let (Some(mut service), Some(request)) = (service.take(), request.take())
                    else {
                        unreachable!("service and request are only taken on leaving Queued");
                    };
                    let permit = admitted.start(this.clock.now());
                    let future = service.call(request);
                    state.set(State::Running {
                        future,
                        permit: Some(permit),
                    });
                }
                StateProj::Running { future, permit } => {
                    let output = ready!(future.poll(cx)).map_err(Into::into);
                    if let Some(permit) = permit.take() {
                        permit.record(this.classifier.classify(&output), this.clock.now());
                    }
                    state.set(State::Done);
                    return Poll::Ready(output);
                }
                StateProj::Rejected { error } => {
                    let error = error.take().unwrap_or_else(|| BulkheadFull.into());
                    state.set(State::Done);
                    return Poll::Ready(Err(error));
                }
                StateProj::Done => panic!("adaptive ResponseFuture polled after completion"),
            }
        }
    }
}

impl<S, Req, A, C, K> fmt::Debug for ResponseFuture<S, Req, A, C, K>
where
    S: Service<Req>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
