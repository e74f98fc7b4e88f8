//! The breaker as a `tower` middleware.
//!
//! Only glue: [`CircuitBreakerService::call`] asks the [`SharedBreaker`] for a permit at the
//! clock's `now`; if refused, it fails at once with a boxed [`BreakerOpen`] and the inner
//! service is never called. Otherwise it calls the inner service, and when the response
//! future completes, a [`Classify`] turns the result into an [`Outcome`] that is recorded at
//! the clock's `now` then. If the response future is dropped first (the caller gave up, a
//! timeout fired), the permit is recorded as [`Outcome::Ignored`], which frees a half-open
//! probe slot.
//!
//! The breaker is asked in `call`, not `poll_ready`: a permit taken in `poll_ready` would hold
//! a probe slot for as long as the inner service takes to become ready, and would be lost by
//! a caller that never calls. `poll_ready` is the inner service's. All clones of a layer or
//! service share one breaker.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tower::{BoxError, Layer, Service};

use super::{Outcome, Permit, SharedBreaker};
use crate::clock::{Clock, TokioClock};

/// Turns a call's result into an [`Outcome`].
///
/// Implemented for every `Fn(&Result<Resp, Err>) -> Outcome`, so a closure will do:
/// `|r: &Result<Response, Error>| match r { Ok(resp) if resp.status().is_server_error() =>
/// Outcome::Failure, Ok(_) => Outcome::Success, Err(_) => Outcome::Failure }`.
pub trait Classify<Resp, Err> {
    /// How the call went.
    fn classify(&self, result: &Result<Resp, Err>) -> Outcome;
}

impl<F, Resp, Err> Classify<Resp, Err> for F
where
    F: Fn(&Result<Resp, Err>) -> Outcome,
{
    fn classify(&self, result: &Result<Resp, Err>) -> Outcome {
        self(result)
    }
}

/// The default [`Classify`]: `Ok` is a success, `Err` a failure.
#[derive(Debug, Clone, Copy, Default)]
pub struct ErrorIsFailure;

impl<Resp, Err> Classify<Resp, Err> for ErrorIsFailure {
    fn classify(&self, result: &Result<Resp, Err>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Failure,
        }
    }
}

/// Wraps services in a [`CircuitBreakerService`] sharing one breaker.
#[derive(Debug, Clone)]
pub struct CircuitBreakerLayer<C = ErrorIsFailure, K = TokioClock> {
    breaker: SharedBreaker,
    classifier: C,
    clock: K,
}

impl CircuitBreakerLayer {
    /// A layer around `breaker` that counts errors as failures and reads tokio's clock.
    pub fn new(breaker: SharedBreaker) -> Self {
        Self {
            breaker,
            classifier: ErrorIsFailure,
            clock: TokioClock,
        }
    }
}

impl<C, K> CircuitBreakerLayer<C, K> {
    /// Classifies results with `classifier` instead.
    pub fn with_classifier<C2>(self, classifier: C2) -> CircuitBreakerLayer<C2, K> {
        CircuitBreakerLayer {
            breaker: self.breaker,
            classifier,
            clock: self.clock,
        }
    }

    /// Reads time from `clock` instead.
    pub fn with_clock<K2>(self, clock: K2) -> CircuitBreakerLayer<C, K2> {
        CircuitBreakerLayer {
            breaker: self.breaker,
            classifier: self.classifier,
            clock,
        }
    }

    /// The breaker every service from this layer shares.
    pub fn breaker(&self) -> &SharedBreaker {
        &self.breaker
    }
}

impl<S, C: Clone, K: Clone> Layer<S> for CircuitBreakerLayer<C, K> {
    type Service = CircuitBreakerService<S, C, K>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreakerService {
            inner,
            breaker: self.breaker.clone(),
            classifier: self.classifier.clone(),
            clock: self.clock.clone(),
        }
    }
}

/// A service that fails fast with [`BreakerOpen`](super::BreakerOpen) while its breaker is
/// open. Errors are boxed: downcast to `BreakerOpen` or to the inner service's error.
#[derive(Debug, Clone)]
pub struct CircuitBreakerService<S, C = ErrorIsFailure, K = TokioClock> {
    inner: S,
    breaker: SharedBreaker,
    classifier: C,
    clock: K,
}

impl<S> CircuitBreakerService<S> {
    /// Wraps `inner` with `breaker`, counting errors as failures and reading tokio's clock.
    pub fn new(inner: S, breaker: SharedBreaker) -> Self {
        CircuitBreakerLayer::new(breaker).layer(inner)
    }
}

impl<S, C, K> CircuitBreakerService<S, C, K> {
    /// The shared breaker.
    pub fn breaker(&self) -> &SharedBreaker {
        &self.breaker
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, Req, C, K> Service<Req> for CircuitBreakerService<S, C, K>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: Classify<S::Response, S::Error> + Clone,
    K: Clock + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, C, K>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        match self.breaker.try_acquire(self.clock.now()) {
            Ok(permit) => ResponseFuture {
                kind: Kind::Called {
                    future: self.inner.call(request),
                },
                recorder: Some(Recorder {
                    permit: Some(permit),
                    breaker: self.breaker.clone(),
                    classifier: self.classifier.clone(),
                    clock: self.clock.clone(),
                }),
            },
            Err(open) => ResponseFuture {
                kind: Kind::Rejected {
                    error: Some(Box::new(open)),
                },
                recorder: None,
            },
        }
    }
}

pin_project! {
    /// The response future of [`CircuitBreakerService`].
    pub struct ResponseFuture<F, C, K: Clock> {
        #[pin]
        kind: Kind<F>,
        recorder: Option<Recorder<C, K>>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Called { #[pin] future: F },
        Rejected { error: Option<BoxError> },
    }
}

impl<F, C, K: Clock> std::fmt::Debug for ResponseFuture<F, C, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match (&self.kind, &self.recorder) {
            (Kind::Rejected { .. }, _) => "rejected",
            (Kind::Called { .. }, Some(r)) if r.permit.is_some() => "in flight",
            (Kind::Called { .. }, _) => "done",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl<F, Resp, Err, C, K> Future for ResponseFuture<F, C, K>
where
    F: Future<Output = Result<Resp, Err>>,
    Err: Into<BoxError>,
    C: Classify<Resp, Err>,
    K: Clock,
{
    type Output = Result<Resp, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.kind.project() {
            KindProj::Rejected { error } => Poll::Ready(Err(error
                .take()
                .expect("ResponseFuture polled after completion"))),
            KindProj::Called { future } => {
                let result = ready!(future.poll(cx));
                if let Some(recorder) = this.recorder {
                    recorder.finish(&result);
                }
                Poll::Ready(result.map_err(Into::into))
            }
        }
    }
}

/// Records the permit when the call finishes, or as ignored if the future is dropped first.
struct Recorder<C, K: Clock> {
    permit: Option<Permit>,
    breaker: SharedBreaker,
    classifier: C,
    clock: K,
}

impl<C, K: Clock> Recorder<C, K> {
    fn finish<Resp, Err>(&mut self, result: &Result<Resp, Err>)
    where
        C: Classify<Resp, Err>,
    {
        if let Some(permit) = self.permit.take() {
            let outcome = self.classifier.classify(result);
            self.breaker.record(permit, outcome, self.clock.now());
        }
    }
}

impl<C, K: Clock> Drop for Recorder<C, K> {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            self.breaker
                .record(permit, Outcome::Ignored, self.clock.now());
        }
    }
}
