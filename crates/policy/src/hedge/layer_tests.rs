use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use tokio::time::{Instant, sleep};
use tower::{BoxError, Layer, Service, ServiceExt, service_fn};

use super::*;
use crate::budget::{BudgetConfig, RetryBudget};

const MS: Duration = Duration::from_millis(1);

#[derive(Debug, PartialEq, thiserror::Error)]
#[error("upstream failed")]
struct Boom;

fn budget(min_retries_per_second: u32) -> Arc<RetryBudget> {
    let config = BudgetConfig {
        retry_ratio: 0.0,
        min_retries_per_second,
        window: Duration::from_secs(10),
        buckets: 10,
    };
    Arc::new(RetryBudget::new(config).expect("valid budget"))
}

fn fixed(delay: Duration, max_hedges: u32) -> Arc<HedgePolicy> {
    let config = HedgeConfig {
        delay: HedgeDelay::Fixed(delay),
        max_hedges,
        ..HedgeConfig::default()
    };
    Arc::new(HedgePolicy::new(config).expect("valid policy"))
}

/// Sets its flag when dropped: shows a losing call was cancelled.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Call `n` (from 1) takes `latencies[n - 1]` and answers `Ok(n)`, or `Err` where
/// `fails[n - 1]`. Records which calls were dropped before finishing.
#[derive(Clone)]
struct Scripted {
    latencies: Vec<Duration>,
    fails: Vec<bool>,
    calls: Arc<AtomicU32>,
    dropped: Arc<Vec<Arc<AtomicBool>>>,
}

impl Scripted {
    fn new(latencies: &[Duration]) -> Self {
        Self {
            latencies: latencies.to_vec(),
            fails: vec![false; latencies.len()],
            calls: Arc::new(AtomicU32::new(0)),
            dropped: Arc::new((0..latencies.len()).map(|_| Arc::default()).collect()),
        }
    }

    fn failing(mut self, call: usize) -> Self {
        self.fails[call - 1] = true;
        self
    }

    fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }

    fn was_cancelled(&self, call: usize) -> bool {
        self.dropped[call - 1].load(Ordering::SeqCst)
    }

    fn service(&self) -> impl Service<(), Response = u32, Error = Boom, Future: Send> + Clone {
        let script = self.clone();
        service_fn(move |()| {
            let n = script.calls.fetch_add(1, Ordering::SeqCst) + 1;
            let i = n as usize - 1;
            let latency = script.latencies[i];
            let fails = script.fails[i];
            let flag = DropFlag(Arc::clone(&script.dropped[i]));
            async move {
                sleep(latency).await;
                std::mem::forget(flag); // finished: not cancelled
                if fails { Err(Boom) } else { Ok(n) }
            }
        })
    }
}

#[tokio::test(start_paused = true)]
async fn a_hedge_fires_after_the_delay_and_the_faster_answer_wins() {
    let script = Scripted::new(&[1000 * MS, 10 * MS]);
    let layer = HedgeLayer::new(fixed(100 * MS, 1), budget(10));
    let start = Instant::now();
    let answer = layer
        .layer(script.service())
        .oneshot(())
        .await
        .expect("an answer");
    assert_eq!(answer, 2, "the hedge answered first");
    assert_eq!(start.elapsed(), 110 * MS);
    assert_eq!(script.calls(), 2);
    assert!(script.was_cancelled(1), "the slow original was dropped");
}

#[tokio::test(start_paused = true)]
async fn a_fast_original_sends_no_hedge() {
    let script = Scripted::new(&[50 * MS, 10 * MS]);
    let layer = HedgeLayer::new(fixed(100 * MS, 1), budget(10));
    let answer = layer
        .layer(script.service())
        .oneshot(())
        .await
        .expect("an answer");
    assert_eq!(answer, 1);
    assert_eq!(script.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_original_can_still_win_after_a_hedge_was_sent() {
    let script = Scripted::new(&[150 * MS, 1000 * MS]);
    let layer = HedgeLayer::new(fixed(100 * MS, 1), budget(10));
    let start = Instant::now();
    let answer = layer
        .layer(script.service())
        .oneshot(())
        .await
        .expect("an answer");
    assert_eq!(answer, 1);
    assert_eq!(start.elapsed(), 150 * MS);
    assert_eq!(script.calls(), 2);
    assert!(script.was_cancelled(2), "the slow hedge was dropped");
}

#[tokio::test(start_paused = true)]
async fn an_empty_budget_sends_no_hedge() {
    let script = Scripted::new(&[1000 * MS, 10 * MS]);
    let layer = HedgeLayer::new(fixed(100 * MS, 1), budget(0));
    let start = Instant::now();
    let answer = layer
        .layer(script.service())
        .oneshot(())
        .await
        .expect("an answer");
    assert_eq!(answer, 1);
    assert_eq!(start.elapsed(), 1000 * MS);
    assert_eq!(script.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn several_hedges_go_one_delay_apart_up_to_the_maximum() {
    let script = Scripted::new(&[1000 * MS, 1000 * MS, 1000 * MS, 10 * MS]);
    let layer = HedgeLayer::new(fixed(100 * MS, 2), budget(10));
    let start = Instant::now();
    let answer = layer
        .layer(script.service())
        .oneshot(())
        .await
        .expect("an answer");
    // Hedges at 100 and 200 ms; no third one, so the original wins at 1 s.
    assert_eq!(answer, 1);
    assert_eq!(start.elapsed(), 1000 * MS);
    assert_eq!(script.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_failure_with_nothing_else_in_flight_returns_at_once() {
    let script = Scripted::new(&[20 * MS, 10 * MS]).failing(1);
    let layer = HedgeLayer::new(fixed(100 * MS, 1), budget(10));
    let start = Instant::now();
    let error: BoxError = layer
        .layer(script.service())
        .oneshot(())
        .await
        .expect_err("failed");
    assert_eq!(error.downcast_ref::<Boom>(), Some(&Boom));
    assert_eq!(start.elapsed(), 20 * MS);
    assert_eq!(script.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_success_beats_an_earlier_failure() {
    let script = Scripted::new(&[150 * MS, 100 * MS]).failing(1);
    let layer = HedgeLayer::new(fixed(100 * MS, 1), budget(10));
    let start = Instant::now();
    let answer = layer
        .layer(script.service())
        .oneshot(())
        .await
        .expect("the hedge answers");
    assert_eq!(answer, 2);
    assert_eq!(start.elapsed(), 200 * MS);
}

#[tokio::test(start_paused = true)]
async fn when_every_call_fails_the_last_error_is_returned() {
    let script = Scripted::new(&[150 * MS, 100 * MS]).failing(1).failing(2);
    let layer = HedgeLayer::new(fixed(100 * MS, 1), budget(10));
    let start = Instant::now();
    let error = layer
        .layer(script.service())
        .oneshot(())
        .await
        .expect_err("all failed");
    assert!(error.is::<Boom>());
    assert_eq!(start.elapsed(), 200 * MS);
}

#[tokio::test(start_paused = true)]
async fn successes_are_recorded_and_drive_the_percentile_delay() {
    let policy = Arc::new(
        HedgePolicy::new(HedgeConfig {
            delay: HedgeDelay::Percentile {
                quantile: 0.95,
                min_samples: 5,
                fallback: None,
            },
            max_hedges: 1,
            window: Duration::from_secs(10),
        })
        .expect("valid"),
    );
    let script = Scripted::new(&[40 * MS; 5]);
    let mut service = HedgeLayer::new(Arc::clone(&policy), budget(10)).layer(script.service());
    assert_eq!(policy.hedge_delay(), None);
    for _ in 0..5 {
        service
            .ready()
            .await
            .expect("ready")
            .call(())
            .await
            .expect("ok");
    }
    // 40 ms = 40_000 µs falls in the bucket [38_912, 40_960) µs.
    assert_eq!(policy.hedge_delay(), Some(Duration::from_micros(40_960)));
}

#[tokio::test(start_paused = true)]
async fn each_request_deposits_unless_told_not_to() {
    let ratio = |deposit: bool| async move {
        let config = BudgetConfig {
            retry_ratio: 1.0,
            min_retries_per_second: 0,
            ..BudgetConfig::default()
        };
        let budget = Arc::new(RetryBudget::new(config).expect("valid"));
        let mut layer = HedgeLayer::new(fixed(100 * MS, 1), Arc::clone(&budget));
        if !deposit {
            layer = layer.without_deposit();
        }
        let script = Scripted::new(&[MS; 2]);
        let mut service = layer.layer(script.service());
        for _ in 0..2 {
            service
                .ready()
                .await
                .expect("ready")
                .call(())
                .await
                .expect("ok");
        }
        budget.remaining(Instant::now().into_std())
    };
    assert_eq!(ratio(true).await, 2);
    assert_eq!(ratio(false).await, 0);
}
