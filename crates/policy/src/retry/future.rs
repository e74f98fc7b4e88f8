//! The future of a [`Retry`](super::Retry)ing call: attempt, wait, attempt again.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use rand::rngs::SmallRng;
use tower::{BoxError, Service};

use super::{Failure, RetryDecision, RetryPolicy, RetryState};
use crate::budget::RetryBudget;
use crate::clock::{Clock, TokioClock};

pin_project! {
    #[project = StepProj]
    enum Step<F> {
        // An attempt is in flight.
        Calling { #[pin] attempt: F },
        // Waiting out the backoff before the next attempt.
        Waiting { #[pin] sleep: tokio::time::Sleep },
        // Waiting for the service to be ready for the next attempt.
        Readying,
    }
}

pin_project! {
    /// The response future of [`Retry`](super::Retry).
    pub struct ResponseFuture<S, Req, C>
    where
        S: Service<Req>,
    {
        #[pin]
        step: Step<S::Future>,
        service: S,
        request: Req,
        state: RetryState,
        rng: SmallRng,
        policy: Arc<RetryPolicy>,
        budget: Arc<RetryBudget>,
        classify: Arc<C>,
    }
}

impl<S, Req, C> ResponseFuture<S, Req, C>
where
    S: Service<Req>,
{
    #[allow(clippy::too_many_arguments)] // a private constructor for the layer's parts
    pub(super) fn new(
        attempt: S::Future,
        service: S,
        request: Req,
        state: RetryState,
        rng: SmallRng,
        policy: Arc<RetryPolicy>,
        budget: Arc<RetryBudget>,
        classify: Arc<C>,
    ) -> Self {
        Self {
            step: Step::Calling { attempt },
            service,
            request,
            state,
            rng,
            policy,
            budget,
            classify,
        }
    }
}

impl<S, Req, C> Future for ResponseFuture<S, Req, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    Req: Clone,
    C: Fn(&Result<S::Response, S::Error>) -> Option<Failure>,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.step.as_mut().project() {
                StepProj::Calling { attempt } => {
                    let outcome = ready!(attempt.poll(cx));
                    let Some(failure) = (this.classify)(&outcome) else {
                        return Poll::Ready(outcome.map_err(Into::into));
                    };
                    let now = TokioClock.now();
                    match this
                        .policy
                        .decide(this.state, &failure, now, this.rng, this.budget)
                    {
                        RetryDecision::RetryAfter(wait) => {
                            let sleep = tokio::time::sleep(wait);
                            this.step.set(Step::Waiting { sleep });
                        }
                        RetryDecision::GiveUp(_) => {
                            return Poll::Ready(outcome.map_err(Into::into));
                        }
                    }
                }
                StepProj::Waiting { sleep } => {
                    ready!(sleep.poll(cx));
                    this.step.set(Step::Readying);
                }
                StepProj::Readying => {
                    ready!(this.service.poll_ready(cx)).map_err(Into::into)?;
                    let attempt = this.service.call(this.request.clone());
                    this.step.set(Step::Calling { attempt });
                }
            }
        }
    }
}

impl<S, Req, C> fmt::Debug for ResponseFuture<S, Req, C>
where
    S: Service<Req>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}
