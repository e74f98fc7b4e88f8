use std::convert::Infallible;

use tower::{BoxError, Layer, Service, ServiceExt, service_fn};

use super::*;
use crate::bulkhead::{BulkheadFull, QueueTimeout};

async fn slow(ms_: u64) -> Result<u64, Infallible> {
    tokio::time::sleep(ms(ms_)).await;
    Ok(ms_)
}

#[tokio::test(start_paused = true)]
async fn layer_records_the_rtt_of_each_call() {
    let recorder = Recorder::with_limit(4);
    let limiter = AdaptiveLimiter::new(recorder.clone());
    let mut svc = AdaptiveConcurrencyLayer::new(limiter.clone()).layer(service_fn(slow));
    assert_eq!(
        svc.ready()
            .await
            .expect("ready")
            .call(30)
            .await
            .expect("ok"),
        30
    );
    assert_eq!(recorder.samples(), vec![sample(30, 1)]);
    assert_eq!(limiter.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn layer_sheds_at_once_when_the_limit_is_reached_and_there_is_no_queue() {
    let limiter = AdaptiveLimiter::new(Recorder::with_limit(1));
    let mut svc = AdaptiveConcurrencyLayer::new(limiter).layer(service_fn(slow));
    let _running = svc.ready().await.expect("ready").call(100);
    let error = svc
        .ready()
        .await
        .expect("ready")
        .call(1)
        .await
        .expect_err("full");
    assert!(error.is::<BulkheadFull>());
}

#[tokio::test(start_paused = true)]
async fn layer_queues_and_measures_rtt_from_the_grant() {
    let recorder = Recorder::with_limit(1);
    let limiter = AdaptiveLimiter::with_queue(recorder.clone(), 1, ms(500)).expect("valid");
    let mut svc = AdaptiveConcurrencyLayer::new(limiter).layer(service_fn(slow));
    let first = tokio::spawn(svc.ready().await.expect("ready").call(100));
    let second = svc.ready().await.expect("ready").call(20);
    assert_eq!(second.await.expect("queued call"), 20);
    first.await.expect("join").expect("first");
    assert_eq!(recorder.samples(), vec![sample(100, 1), sample(20, 1)]);
}

#[tokio::test(start_paused = true)]
async fn layer_times_out_in_the_queue_without_recording() {
    let recorder = Recorder::with_limit(1);
    let limiter = AdaptiveLimiter::with_queue(recorder.clone(), 1, ms(10)).expect("valid");
    let mut svc = AdaptiveConcurrencyLayer::new(limiter.clone()).layer(service_fn(slow));
    let _running = svc.ready().await.expect("ready").call(100);
    let error = svc
        .ready()
        .await
        .expect("ready")
        .call(1)
        .await
        .expect_err("timeout");
    assert_eq!(
        error.downcast_ref::<QueueTimeout>(),
        Some(&QueueTimeout { timeout: ms(10) })
    );
    assert_eq!(limiter.queued(), 0);
    assert!(recorder.samples().is_empty());
}

#[tokio::test(start_paused = true)]
async fn layer_counts_an_inner_timeout_as_a_drop_and_other_errors_as_nothing() {
    let limiter = AdaptiveLimiter::new(Aimd::new(AimdConfig::default()).expect("valid"));
    let mut svc = AdaptiveConcurrencyLayer::new(limiter.clone()).layer(service_fn(
        |timeout: bool| async move {
            if timeout {
                Err::<(), BoxError>(tower::timeout::error::Elapsed::new().into())
            } else {
                Err(std::io::Error::other("refused").into())
            }
        },
    ));
    assert!(svc.ready().await.expect("ready").call(false).await.is_err());
    assert_eq!(limiter.limit(), 20);
    assert!(svc.ready().await.expect("ready").call(true).await.is_err());
    assert_eq!(limiter.limit(), 18);
}

#[tokio::test(start_paused = true)]
async fn layer_uses_a_custom_classifier() {
    let recorder = Recorder::with_limit(4);
    let limiter = AdaptiveLimiter::new(recorder.clone());
    let overloaded = |result: &Result<u16, BoxError>| match result {
        Ok(503) => Outcome::Dropped,
        Ok(_) => Outcome::Success,
        Err(_) => Outcome::Ignored,
    };
    let mut svc = AdaptiveConcurrencyLayer::new(limiter)
        .with_classifier(overloaded)
        .layer(service_fn(|status: u16| async move {
            Ok::<_, Infallible>(status)
        }));
    svc.ready()
        .await
        .expect("ready")
        .call(503)
        .await
        .expect("ok");
    svc.ready()
        .await
        .expect("ready")
        .call(200)
        .await
        .expect("ok");
    let drops: Vec<bool> = recorder.samples().iter().map(|s| s.dropped).collect();
    assert_eq!(drops, vec![true, false]);
}

#[tokio::test(start_paused = true)]
async fn dropping_a_running_call_releases_its_permit_without_a_sample() {
    let recorder = Recorder::with_limit(1);
    let limiter = AdaptiveLimiter::new(recorder.clone());
    let mut svc = AdaptiveConcurrencyLayer::new(limiter.clone()).layer(service_fn(slow));
    let running = svc.ready().await.expect("ready").call(100);
    assert_eq!(limiter.in_flight(), 1);
    drop(running);
    assert_eq!(limiter.in_flight(), 0);
    assert!(recorder.samples().is_empty());
}
