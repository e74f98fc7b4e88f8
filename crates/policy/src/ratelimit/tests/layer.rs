use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use tower::{Layer, Service, ServiceExt, service_fn};

use crate::clock::ManualClock;
use crate::ratelimit::{RateLimitConfig, RateLimitLayer, RateLimited, RateLimiter};

fn limiter() -> Arc<RateLimiter> {
    Arc::new(
        RateLimiter::new(RateLimitConfig {
            rate: 10,
            period: Duration::from_secs(1),
            burst: 2,
        })
        .expect("valid config"),
    )
}

async fn echo(n: u32) -> Result<u32, Infallible> {
    Ok(n)
}

#[tokio::test(start_paused = true)]
async fn layer_sheds_calls_over_the_rate_with_retry_after() {
    let mut svc = RateLimitLayer::new(limiter()).layer(service_fn(echo));
    assert_eq!(
        svc.ready().await.expect("ready").call(1).await.expect("1"),
        1
    );
    assert_eq!(
        svc.ready().await.expect("ready").call(2).await.expect("2"),
        2
    );
    let error = svc
        .ready()
        .await
        .expect("ready")
        .call(3)
        .await
        .expect_err("limited");
    assert_eq!(
        error.downcast_ref::<RateLimited>(),
        Some(&RateLimited {
            retry_after: Duration::from_millis(100)
        })
    );
    tokio::time::advance(Duration::from_millis(100)).await;
    assert_eq!(
        svc.ready().await.expect("ready").call(4).await.expect("4"),
        4
    );
}

#[tokio::test(start_paused = true)]
async fn clones_of_the_service_share_one_budget() {
    let clock = ManualClock::new();
    let layer = RateLimitLayer::new(limiter()).with_clock(clock.clone());
    let mut a = layer.layer(service_fn(echo));
    let mut b = a.clone();
    a.ready().await.expect("ready").call(1).await.expect("a");
    b.ready().await.expect("ready").call(2).await.expect("b");
    assert!(a.ready().await.expect("ready").call(3).await.is_err());
    clock.advance(Duration::from_millis(100));
    assert!(b.ready().await.expect("ready").call(4).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn inner_errors_pass_through_the_rate_limit() {
    let mut svc = RateLimitLayer::new(limiter()).layer(service_fn(|_: ()| async {
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
}
