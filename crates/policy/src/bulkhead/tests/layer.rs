use std::convert::Infallible;
use std::time::Duration;

use tokio::time::Instant;
use tower::{BoxError, Layer, Service, ServiceExt, service_fn};

use crate::bulkhead::{Bulkhead, BulkheadConfig, BulkheadFull, BulkheadLayer, QueueTimeout};

fn bulkhead(max_concurrent: u32, max_queue: usize, queue_timeout: Duration) -> Bulkhead {
    Bulkhead::new(BulkheadConfig {
        max_concurrent,
        max_queue,
        queue_timeout,
    })
    .expect("valid config")
}

/// Answers its request after `ms` milliseconds of (paused) time.
async fn slow(ms: u64) -> Result<u64, Infallible> {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Ok(ms)
}

#[tokio::test(start_paused = true)]
async fn layer_queues_a_call_until_a_permit_frees_then_runs_it() {
    let b = bulkhead(1, 1, Duration::from_secs(1));
    let mut svc = BulkheadLayer::new(b.clone()).layer(service_fn(slow));
    let start = Instant::now();
    let first = svc.ready().await.expect("ready").call(100);
    let second = svc.ready().await.expect("ready").call(100);
    assert_eq!(b.in_flight(), 1, "the permit is taken in call");
    let second = tokio::spawn(second);
    tokio::task::yield_now().await;
    assert_eq!(b.queued(), 1);

    assert_eq!(first.await.expect("first"), 100);
    assert_eq!(second.await.expect("join").expect("second"), 100);
    assert_eq!(start.elapsed(), Duration::from_millis(200));
    assert_eq!((b.in_flight(), b.queued()), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn layer_rejects_with_bulkhead_full_when_the_queue_is_full() {
    let b = bulkhead(1, 1, Duration::from_secs(1));
    let mut svc = BulkheadLayer::new(b.clone()).layer(service_fn(slow));
    let _running = svc.ready().await.expect("ready").call(100);
    let waiting = tokio::spawn(svc.ready().await.expect("ready").call(100));
    tokio::task::yield_now().await;
    let error: BoxError = svc
        .ready()
        .await
        .expect("ready")
        .call(100)
        .await
        .expect_err("queue is full");
    assert!(error.downcast_ref::<BulkheadFull>().is_some(), "{error}");
    waiting.abort();
}

#[tokio::test(start_paused = true)]
async fn layer_without_a_queue_sheds_at_once() {
    let b = bulkhead(1, 0, Duration::ZERO);
    let mut svc = BulkheadLayer::new(b.clone()).layer(service_fn(slow));
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
async fn layer_gives_up_with_queue_timeout_and_leaves_the_queue() {
    let b = bulkhead(1, 1, Duration::from_millis(50));
    let mut svc = BulkheadLayer::new(b.clone()).layer(service_fn(slow));
    let running = tokio::spawn(svc.ready().await.expect("ready").call(100));
    let start = Instant::now();
    let error = svc
        .ready()
        .await
        .expect("ready")
        .call(1)
        .await
        .expect_err("timeout");
    assert_eq!(
        error.downcast_ref::<QueueTimeout>(),
        Some(&QueueTimeout {
            timeout: Duration::from_millis(50)
        })
    );
    assert_eq!(start.elapsed(), Duration::from_millis(50));
    assert_eq!(b.queued(), 0);
    assert_eq!(running.await.expect("join").expect("ok"), 100);
    assert_eq!(b.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn dropping_a_response_future_releases_its_permit_and_its_place() {
    let b = bulkhead(1, 1, Duration::from_secs(1));
    let mut svc = BulkheadLayer::new(b.clone()).layer(service_fn(slow));
    let running = svc.ready().await.expect("ready").call(100);
    let mut waiting = Box::pin(svc.ready().await.expect("ready").call(100));
    assert!(futures_poll(&mut waiting).await.is_none());
    assert_eq!((b.in_flight(), b.queued()), (1, 1));
    drop(waiting);
    assert_eq!(b.queued(), 0);
    drop(running);
    assert_eq!(b.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn poll_ready_takes_no_permit() {
    let b = bulkhead(1, 0, Duration::ZERO);
    let mut svc = BulkheadLayer::new(b.clone()).layer(service_fn(slow));
    let mut clone = svc.clone();
    svc.ready().await.expect("ready");
    clone.ready().await.expect("ready");
    assert_eq!(b.in_flight(), 0);
    assert_eq!(clone.call(1).await.expect("ok"), 1);
}

#[tokio::test(start_paused = true)]
async fn inner_errors_pass_through_and_release_the_permit() {
    let b = bulkhead(1, 0, Duration::ZERO);
    let mut svc = BulkheadLayer::new(b.clone()).layer(service_fn(|_: ()| async {
        Err::<(), _>(std::io::Error::other("boom"))
    }));
    let error = svc
        .ready()
        .await
        .expect("ready")
        .call(())
        .await
        .expect_err("inner");
    assert!(error.is::<std::io::Error>());
    assert_eq!(b.in_flight(), 0);
}

/// Polls once; `Some` if ready.
async fn futures_poll<F: std::future::Future + Unpin>(future: &mut F) -> Option<F::Output> {
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match std::pin::Pin::new(&mut *future).poll(cx) {
            std::task::Poll::Ready(out) => Some(out),
            std::task::Poll::Pending => None,
        })
    })
    .await
}
