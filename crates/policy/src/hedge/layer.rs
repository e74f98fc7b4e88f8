//! [`HedgeLayer`]: races a slow call against delayed copies of it.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower::{BoxError, Layer, Service};

use super::{HedgePolicy, ResponseFuture};
use crate::budget::RetryBudget;
use crate::clock::{Clock, TokioClock};

/// Wraps a service in [`Hedge`].
///
/// Requests must be `Clone` (a hedge sends a copy) and the service too (a hedge calls a
/// clone). Nothing is spawned: the response future polls the original call and its hedges
/// itself, returns the first success, and drops (so cancels) the others. If every call in
/// flight fails, the last error is returned at once: a hedge races a slow call, it does not
/// replace a failed one (that is the retry layer's job). Each success records its latency
/// into the policy.
///
/// Each request deposits into the budget, unless [`without_deposit`](Self::without_deposit)
/// says another layer (a [`RetryLayer`](crate::retry::RetryLayer) outside this one, sharing
/// the budget) already does.
pub struct HedgeLayer {
    policy: Arc<HedgePolicy>,
    budget: Arc<RetryBudget>,
    deposit: bool,
}

impl HedgeLayer {
    /// Hedges by `policy` within `budget`.
    pub fn new(policy: Arc<HedgePolicy>, budget: Arc<RetryBudget>) -> Self {
        Self {
            policy,
            budget,
            deposit: true,
        }
    }

    /// Does not deposit requests into the budget (another layer does).
    pub fn without_deposit(self) -> Self {
        Self {
            deposit: false,
            ..self
        }
    }
}

impl Clone for HedgeLayer {
    fn clone(&self) -> Self {
        Self {
            policy: Arc::clone(&self.policy),
            budget: Arc::clone(&self.budget),
            deposit: self.deposit,
        }
    }
}

impl fmt::Debug for HedgeLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HedgeLayer")
            .field("policy", &self.policy)
            .field("budget", &self.budget)
            .field("deposit", &self.deposit)
            .finish()
    }
}

impl<S> Layer<S> for HedgeLayer {
    type Service = Hedge<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Hedge {
            inner,
            layer: self.clone(),
        }
    }
}

/// A service that hedges slow calls; made by [`HedgeLayer`].
#[derive(Debug)]
pub struct Hedge<S> {
    inner: S,
    layer: HedgeLayer,
}

impl<S: Clone> Clone for Hedge<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<S, Req> Service<Req> for Hedge<S>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    Req: Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Req>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let now = TokioClock.now();
        if self.layer.deposit {
            self.layer.budget.deposit(now);
        }
        let state = self.layer.policy.start(now);
        // The ready service makes the original call and goes with the future for the hedges.
        let fresh = self.inner.clone();
        let mut service = std::mem::replace(&mut self.inner, fresh);
        let original = service.call(request.clone());
        ResponseFuture::new(
            original,
            service,
            request,
            state,
            now,
            Arc::clone(&self.layer.policy),
            Arc::clone(&self.layer.budget),
        )
    }
}
