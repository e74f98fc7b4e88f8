//! The future of a [`Hedge`](super::Hedge)d call: the original and its hedges, racing.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use pin_project_lite::pin_project;
use tower::{BoxError, Service};

use super::{HedgeDecision, HedgePolicy, HedgeState};
use crate::budget::RetryBudget;
use crate::clock::{Clock, TokioClock};

pin_project! {
    /// The response future of [`Hedge`](super::Hedge).
    pub struct ResponseFuture<S, Req>
    where
        S: Service<Req>,
    {
        // The original call, until it finishes.
        #[pin]
        original: Option<S::Future>,
        // Hedges in flight. Boxed, so the common case (no hedge) allocates nothing.
        hedges: Vec<Pin<Box<S::Future>>>,
        // Fires when the next hedge is due.
        #[pin]
        timer: Option<tokio::time::Sleep>,
        // A hedge is due and waits for the service to be ready.
        readying: bool,
        service: S,
        request: Req,
        state: HedgeState,
        sent_at: Instant,
        last_error: Option<BoxError>,
        policy: Arc<HedgePolicy>,
        budget: Arc<RetryBudget>,
    }
}

impl<S, Req> ResponseFuture<S, Req>
where
    S: Service<Req>,
{
    pub(super) fn new(
        original: S::Future,
        service: S,
        request: Req,
        state: HedgeState,
        sent_at: Instant,
        policy: Arc<HedgePolicy>,
        budget: Arc<RetryBudget>,
    ) -> Self {
        let timer = state.next_hedge_at().map(sleep_until);
        Self {
            original: Some(original),
            hedges: Vec::new(),
            timer,
            readying: false,
            service,
            request,
            state,
            sent_at,
            last_error: None,
            policy,
            budget,
        }
    }
}

fn sleep_until(at: Instant) -> tokio::time::Sleep {
    tokio::time::sleep_until(tokio::time::Instant::from_std(at))
}

impl<S, Req> Future for ResponseFuture<S, Req>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    Req: Clone,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            // 1. Any call answered? The first success wins; failures are remembered.
            if let Some(original) = this.original.as_mut().as_pin_mut()
                && let Poll::Ready(outcome) = original.poll(cx)
            {
                this.original.set(None);
                match outcome {
                    Ok(response) => {
                        return Poll::Ready(Ok(won(this.policy, *this.sent_at, response)));
                    }
                    Err(error) => *this.last_error = Some(error.into()),
                }
            }
            let mut i = 0;
            while i < this.hedges.len() {
                match this.hedges[i].as_mut().poll(cx) {
                    Poll::Pending => i += 1,
                    Poll::Ready(Ok(response)) => {
                        return Poll::Ready(Ok(won(this.policy, *this.sent_at, response)));
                    }
                    Poll::Ready(Err(error)) => {
                        *this.last_error = Some(error.into());
                        drop(this.hedges.swap_remove(i));
                    }
                }
            }
            if this.original.is_none() && this.hedges.is_empty() {
                return Poll::Ready(Err(this
                    .last_error
                    .take()
                    .unwrap_or_else(|| "hedge: no call in flight".into())));
            }

            // 2. Is a hedge due? Wait for its timer, then for the service to be ready.
            if !*this.readying {
                let Some(timer) = this.timer.as_mut().as_pin_mut() else {
                    return Poll::Pending; // no more hedges: wait for the calls in flight
                };
                if timer.poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.timer.set(None);
                *this.readying = true;
            }
            match this.service.poll_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(error)) => {
                    // The service cannot take a hedge: stop hedging, keep racing what flies.
                    *this.readying = false;
                    *this.last_error = Some(error.into());
                    continue;
                }
                Poll::Ready(Ok(())) => *this.readying = false,
            }

            // 3. Ask the policy (which withdraws from the budget) and send, or re-arm.
            match this
                .policy
                .poll_hedge(this.state, TokioClock.now(), this.budget)
            {
                HedgeDecision::Send => {
                    let hedge = this.service.call(this.request.clone());
                    this.hedges.push(Box::pin(hedge));
                    let next = this.state.next_hedge_at().map(sleep_until);
                    this.timer.set(next);
                }
                HedgeDecision::WaitUntil(at) => this.timer.set(Some(sleep_until(at))),
                HedgeDecision::Stop(_) => {}
            }
            // Loop: a new hedge must be polled once, and a new timer registered.
        }
    }
}

/// Records the winning latency: from the original's sending to the first answer.
fn won<T>(policy: &HedgePolicy, sent_at: Instant, response: T) -> T {
    let now = TokioClock.now();
    policy.record(now.saturating_duration_since(sent_at), now);
    response
}

impl<S, Req> fmt::Debug for ResponseFuture<S, Req>
where
    S: Service<Req>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("state", &self.state)
            .field("hedges_in_flight", &self.hedges.len())
            .finish_non_exhaustive()
    }
}
