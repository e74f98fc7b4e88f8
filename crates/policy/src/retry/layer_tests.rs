use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use tower::{BoxError, Layer, Service, ServiceExt, service_fn};

use super::*;
use crate::budget::{BudgetConfig, RetryBudget};

const MS: Duration = Duration::from_millis(1);

#[derive(Debug, PartialEq, thiserror::Error)]
#[error("upstream reset")]
struct Boom;

fn budget(retry_ratio: f64, min_retries_per_second: u32) -> Arc<RetryBudget> {
    let config = BudgetConfig {
        retry_ratio,
        min_retries_per_second,
        window: Duration::from_secs(10),
        buckets: 10,
    };
    Arc::new(RetryBudget::new(config).expect("valid budget"))
}

/// Constant 100 ms waits, so elapsed time is exact.
fn policy(max_attempts: u32) -> RetryPolicy {
    RetryPolicy::new(RetryConfig {
        max_attempts,
        backoff: BackoffConfig::constant(100 * MS),
        ..RetryConfig::default()
    })
    .expect("valid policy")
}

fn errors_are_resets<T>(outcome: &Result<T, Boom>) -> Option<Failure> {
    outcome.as_ref().err().map(|_| FailureKind::Reset.into())
}

/// A service that fails its first `failures` calls, then answers with the call number.
fn flaky(
    failures: u32,
) -> (
    Arc<AtomicU32>,
    impl Service<&'static str, Response = u32, Error = Boom, Future: Send> + Clone,
) {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let service = service_fn(move |_req: &'static str| {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        async move { if n <= failures { Err(Boom) } else { Ok(n) } }
    });
    (calls, service)
}

#[tokio::test(start_paused = true)]
async fn retry_succeeds_after_transient_failures_waiting_each_backoff() {
    let (calls, inner) = flaky(2);
    let layer = RetryLayer::new(policy(3), budget(0.2, 10), errors_are_resets);
    let start = Instant::now();
    let answer = layer
        .layer(inner)
        .oneshot("GET /")
        .await
        .expect("third attempt succeeds");
    assert_eq!(answer, 3);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(start.elapsed(), 200 * MS);
}

#[tokio::test(start_paused = true)]
async fn giving_up_returns_the_inner_error_unchanged() {
    let (calls, inner) = flaky(u32::MAX);
    let layer = RetryLayer::new(policy(3), budget(0.2, 10), errors_are_resets);
    let error: BoxError = layer
        .layer(inner)
        .oneshot("GET /")
        .await
        .expect_err("always fails");
    assert_eq!(error.downcast_ref::<Boom>(), Some(&Boom));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn retries_stop_when_the_budget_is_exhausted() {
    let (calls, inner) = flaky(u32::MAX);
    // Deposits are worth nothing; the floor allows one retry in the 1 s window.
    let config = BudgetConfig {
        retry_ratio: 0.0,
        min_retries_per_second: 1,
        window: Duration::from_secs(1),
        buckets: 10,
    };
    let budget = Arc::new(RetryBudget::new(config).expect("valid"));
    let mut service = RetryLayer::new(policy(5), budget, errors_are_resets).layer(inner);
    let first = service.ready().await.expect("ready").call("GET /").await;
    assert!(first.is_err());
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "one attempt and the one retry"
    );
    let second = service.ready().await.expect("ready").call("GET /").await;
    assert!(second.is_err());
    assert_eq!(calls.load(Ordering::SeqCst), 3, "budget spent: no retry");
}

#[tokio::test(start_paused = true)]
async fn each_original_request_deposits_into_the_budget() {
    let budget = budget(1.0, 0);
    let (_, inner) = flaky(0);
    let mut service =
        RetryLayer::new(policy(3), Arc::clone(&budget), errors_are_resets).layer(inner);
    for _ in 0..3 {
        service
            .ready()
            .await
            .expect("ready")
            .call("GET /")
            .await
            .expect("ok");
    }
    let now = crate::clock::Clock::now(&crate::clock::TokioClock);
    assert_eq!(budget.remaining(now), 3);
}

#[tokio::test(start_paused = true)]
async fn failed_responses_are_retried_and_returned_as_responses_on_give_up() {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let inner = service_fn(move |_req: ()| {
        counter.fetch_add(1, Ordering::SeqCst);
        async { Ok::<u16, Boom>(503) }
    });
    let classify = |outcome: &Result<u16, Boom>| match outcome {
        Ok(status) if *status >= 500 => Some(Failure::new(FailureKind::Status(*status))),
        _ => None,
    };
    let layer = RetryLayer::new(policy(2), budget(0.2, 10), classify);
    let status = layer.layer(inner).oneshot(()).await.expect("a response");
    assert_eq!(status, 503);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn retry_after_from_the_server_sets_the_wait() {
    let (calls, inner) = flaky(1);
    let classify = |outcome: &Result<u32, Boom>| {
        let failure = Failure::new(FailureKind::Status(503)).with_retry_after(3 * 1000 * MS);
        outcome.as_ref().err().map(|_| failure)
    };
    let layer = RetryLayer::new(policy(3), budget(0.2, 10), classify);
    let start = Instant::now();
    layer
        .layer(inner)
        .oneshot("GET /")
        .await
        .expect("second attempt succeeds");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(start.elapsed(), 3000 * MS);
}

#[tokio::test(start_paused = true)]
async fn no_retry_is_scheduled_past_the_deadline() {
    let (calls, inner) = flaky(u32::MAX);
    let layer =
        RetryLayer::new(policy(10), budget(0.2, 10), errors_are_resets).with_deadline(250 * MS);
    let start = Instant::now();
    let outcome = layer.layer(inner).oneshot("GET /").await;
    assert!(outcome.is_err());
    // Attempts at 0, 100 and 200 ms; one at 300 ms would start past the deadline.
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(start.elapsed(), 200 * MS);
}

#[tokio::test(start_paused = true)]
async fn non_idempotent_requests_are_not_retried_after_a_reset() {
    let (calls, inner) = flaky(1);
    let layer = RetryLayer::new(policy(3), budget(0.2, 10), errors_are_resets).non_idempotent();
    assert!(layer.layer(inner).oneshot("POST /").await.is_err());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// Not ready until polled once more after each call; panics if called while not ready.
#[derive(Clone)]
struct ReadyOnPoll<S> {
    ready: bool,
    inner: S,
}

impl<S: Service<R>, R> Service<R> for ReadyOnPoll<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        if self.ready {
            return self.inner.poll_ready(cx);
        }
        self.ready = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }

    fn call(&mut self, request: R) -> S::Future {
        assert!(self.ready, "called without poll_ready");
        self.ready = false;
        self.inner.call(request)
    }
}

#[tokio::test(start_paused = true)]
async fn every_retry_polls_the_service_ready_first() {
    let (calls, inner) = flaky(2);
    let gated = ReadyOnPoll {
        ready: false,
        inner,
    };
    let layer = RetryLayer::new(policy(3), budget(0.2, 10), errors_are_resets).with_seed(9);
    let answer = layer.layer(gated).oneshot("GET /").await.expect("succeeds");
    assert_eq!(answer, 3);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}
