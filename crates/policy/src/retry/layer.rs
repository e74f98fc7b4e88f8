//! [`RetryLayer`]: retries a `tower::Service` by a [`RetryPolicy`] within a [`RetryBudget`].

use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::SmallRng;
use tower::{BoxError, Layer, Service};

use super::{Failure, Idempotency, ResponseFuture, RetryPolicy};
use crate::budget::RetryBudget;
use crate::clock::{Clock, TokioClock};

/// Where each request's random number generator comes from: a seed plus a counter, shared by
/// all clones, so every request draws different jitter and a fixed seed replays exactly.
#[derive(Debug)]
struct Seeds {
    seed: u64,
    next: AtomicU64,
}

impl Seeds {
    fn rng(&self) -> SmallRng {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        // seed_from_u64 scrambles its input, so neighbouring seeds give unrelated streams.
        SmallRng::seed_from_u64(self.seed.wrapping_add(n))
    }
}

/// Wraps a service in [`Retry`].
///
/// Every request deposits into the budget; every retry withdraws. Requests must be `Clone`
/// (the layer keeps a copy to send again). `classify` maps an outcome to `Some(Failure)` when
/// it failed, or `None` when it is final; a response can be a failure (a 503), an error can be
/// final. When the policy gives up, the last outcome is returned as it came: a response
/// unchanged, an error boxed (so it still downcasts to the inner error type).
///
/// The optional deadline stops *scheduling* retries that would start at or after it; bound
/// the attempts themselves with a timeout layer inside this one.
pub struct RetryLayer<C> {
    policy: Arc<RetryPolicy>,
    budget: Arc<RetryBudget>,
    classify: Arc<C>,
    deadline: Option<Duration>,
    idempotency: Idempotency,
    seeds: Arc<Seeds>,
}

impl<C> RetryLayer<C> {
    /// Retries by `policy` within `budget` (share one budget across a cluster's services).
    ///
    /// Requests count as idempotent; see [`non_idempotent`](Self::non_idempotent).
    /// Jitter is seeded from the process's hash randomness; see [`with_seed`](Self::with_seed).
    pub fn new(policy: RetryPolicy, budget: Arc<RetryBudget>, classify: C) -> Self {
        Self {
            policy: Arc::new(policy),
            budget,
            classify: Arc::new(classify),
            deadline: None,
            idempotency: Idempotency::Idempotent,
            seeds: Arc::new(Seeds {
                seed: RandomState::new().hash_one(0u8),
                next: AtomicU64::new(0),
            }),
        }
    }

    /// Schedules no retry that would start `deadline` or more after the request arrived.
    pub fn with_deadline(self, deadline: Duration) -> Self {
        Self {
            deadline: Some(deadline),
            ..self
        }
    }

    /// Treats requests as not idempotent: only failures that never reached the upstream are
    /// retried (unless the policy's `retry_non_idempotent` says otherwise).
    pub fn non_idempotent(self) -> Self {
        Self {
            idempotency: Idempotency::NonIdempotent,
            ..self
        }
    }

    /// Seeds the jitter, for runs that replay exactly.
    pub fn with_seed(self, seed: u64) -> Self {
        Self {
            seeds: Arc::new(Seeds {
                seed,
                next: AtomicU64::new(0),
            }),
            ..self
        }
    }
}

impl<C> Clone for RetryLayer<C> {
    fn clone(&self) -> Self {
        Self {
            policy: Arc::clone(&self.policy),
            budget: Arc::clone(&self.budget),
            classify: Arc::clone(&self.classify),
            deadline: self.deadline,
            idempotency: self.idempotency,
            seeds: Arc::clone(&self.seeds),
        }
    }
}

impl<C> fmt::Debug for RetryLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryLayer")
            .field("policy", &self.policy)
            .field("budget", &self.budget)
            .field("deadline", &self.deadline)
            .field("idempotency", &self.idempotency)
            .finish_non_exhaustive()
    }
}

impl<S, C> Layer<S> for RetryLayer<C> {
    type Service = Retry<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        Retry {
            inner,
            layer: self.clone(),
        }
    }
}

/// A service that retries failed calls; made by [`RetryLayer`].
pub struct Retry<S, C> {
    inner: S,
    layer: RetryLayer<C>,
}

impl<S: Clone, C> Clone for Retry<S, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<S: fmt::Debug, C> fmt::Debug for Retry<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("inner", &self.inner)
            .field("layer", &self.layer)
            .finish()
    }
}

impl<S, C, Req> Service<Req> for Retry<S, C>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    Req: Clone,
    C: Fn(&Result<S::Response, S::Error>) -> Option<Failure>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Req, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let now = TokioClock.now();
        self.layer.budget.deposit(now);
        let deadline = self.layer.deadline.and_then(|d| now.checked_add(d));
        let state = self.layer.policy.start(self.layer.idempotency, deadline);
        // The service that was polled ready makes the first call and goes with the future
        // for the retries; this handle keeps a fresh clone, to be polled ready again.
        let fresh = self.inner.clone();
        let mut service = std::mem::replace(&mut self.inner, fresh);
        let first = service.call(request.clone());
        ResponseFuture::new(
            first,
            service,
            request,
            state,
            self.layer.seeds.rng(),
            Arc::clone(&self.layer.policy),
            Arc::clone(&self.layer.budget),
            Arc::clone(&self.layer.classify),
        )
    }
}
