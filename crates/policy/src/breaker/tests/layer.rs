//! The tower layer, under paused tokio time.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tower::{BoxError, Layer, Service, ServiceExt, service_fn};

use super::{quiet_config, secs, trips_after_three};
use crate::breaker::{
    BreakerConfig, BreakerOpen, CircuitBreaker, CircuitBreakerLayer, Outcome, Reason,
    SharedBreaker, State, Transition,
};
use crate::clock::{Clock, TokioClock};

/// What the fake upstream should do with a request.
#[derive(Debug, Clone, Copy)]
enum Upstream {
    Ok,
    Fail,
    Status(u16),
    Sleep(Duration),
    Hang,
}

/// A fake upstream that counts its calls.
fn upstream(
    calls: Arc<AtomicUsize>,
) -> impl Service<Upstream, Response = u16, Error = io::Error, Future: Send> + Clone {
    service_fn(move |req: Upstream| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move {
            match req {
                Upstream::Ok => Ok(200),
                Upstream::Fail => Err(io::Error::other("upstream broke")),
                Upstream::Status(status) => Ok(status),
                Upstream::Sleep(d) => {
                    tokio::time::sleep(d).await;
                    Ok(200)
                }
                Upstream::Hang => std::future::pending().await,
            }
        }
    })
}

fn shared(config: BreakerConfig) -> SharedBreaker {
    SharedBreaker::new(config).expect("test config is valid")
}

fn now() -> std::time::Instant {
    TokioClock.now()
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_rejects_without_calling_the_inner_service() {
    let calls = Arc::new(AtomicUsize::new(0));
    let breaker = shared(trips_after_three());
    let mut svc = CircuitBreakerLayer::new(breaker.clone()).layer(upstream(calls.clone()));
    for _ in 0..3 {
        let err = svc.ready().await.expect("ready").call(Upstream::Fail).await;
        let err = err.expect_err("upstream fails");
        assert!(
            err.downcast_ref::<io::Error>().is_some(),
            "inner error visible"
        );
    }
    assert_eq!(breaker.state(now()), State::Open);

    tokio::time::advance(secs(4)).await;
    let err = svc.ready().await.expect("ready").call(Upstream::Ok).await;
    let err: BoxError = err.expect_err("open");
    let open = err.downcast_ref::<BreakerOpen>().expect("a BreakerOpen");
    assert_eq!(open.state(), State::Open);
    assert_eq!(open.retry_after(), Some(secs(6)));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "inner not called while open"
    );
}

#[tokio::test(start_paused = true)]
async fn after_the_open_period_probes_go_through_and_close_the_breaker() {
    let calls = Arc::new(AtomicUsize::new(0));
    let breaker = shared(trips_after_three());
    let svc = CircuitBreakerLayer::new(breaker.clone()).layer(upstream(calls.clone()));
    for _ in 0..3 {
        let _ = svc.clone().oneshot(Upstream::Fail).await;
    }
    tokio::time::advance(secs(10)).await;
    assert_eq!(breaker.state(now()), State::HalfOpen);
    for _ in 0..2 {
        assert_eq!(svc.clone().oneshot(Upstream::Ok).await.expect("probe"), 200);
    }
    assert_eq!(breaker.state(now()), State::Closed);
    assert_eq!(calls.load(Ordering::SeqCst), 5);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_response_future_frees_its_half_open_probe() {
    let calls = Arc::new(AtomicUsize::new(0));
    let breaker = shared(BreakerConfig {
        half_open_probes: 1,
        ..trips_after_three()
    });
    let mut svc = CircuitBreakerLayer::new(breaker.clone()).layer(upstream(calls.clone()));
    for _ in 0..3 {
        let _ = svc.clone().oneshot(Upstream::Fail).await;
    }
    tokio::time::advance(secs(10)).await;

    let hanging = svc.ready().await.expect("ready").call(Upstream::Hang);
    let timed_out = tokio::time::timeout(secs(1), hanging).await;
    assert!(
        timed_out.is_err(),
        "the probe hangs and the caller gives up"
    );

    let ok = svc.ready().await.expect("ready").call(Upstream::Ok).await;
    assert_eq!(ok.expect("the abandoned probe's slot was freed"), 200);
    assert_eq!(breaker.state(now()), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_custom_classifier_decides_what_is_a_failure() {
    let calls = Arc::new(AtomicUsize::new(0));
    let breaker = shared(BreakerConfig {
        consecutive_failures: Some(2),
        ..quiet_config()
    });
    let classify = |r: &Result<u16, io::Error>| match r {
        Ok(status) if *status >= 500 => Outcome::Failure,
        Ok(status) if *status >= 400 => Outcome::Ignored,
        Ok(_) => Outcome::Success,
        Err(_) => Outcome::Failure,
    };
    let svc = CircuitBreakerLayer::new(breaker.clone())
        .with_classifier(classify)
        .layer(upstream(calls));
    assert_eq!(
        svc.clone()
            .oneshot(Upstream::Status(503))
            .await
            .expect("ok"),
        503
    );
    assert_eq!(
        svc.clone()
            .oneshot(Upstream::Status(404))
            .await
            .expect("ok"),
        404
    );
    assert_eq!(breaker.window_counts(now()).calls, 1, "the 404 is ignored");
    assert_eq!(
        svc.clone()
            .oneshot(Upstream::Status(500))
            .await
            .expect("ok"),
        500
    );
    assert_eq!(breaker.state(now()), State::Open);
}

#[tokio::test(start_paused = true)]
async fn slow_calls_are_timed_on_the_tokio_clock() {
    let calls = Arc::new(AtomicUsize::new(0));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Transition>();
    let breaker = SharedBreaker::with_listener(
        CircuitBreaker::new(BreakerConfig {
            slow_call_rate: Some(1.0),
            slow_call_duration: secs(2),
            minimum_calls: 2,
            ..quiet_config()
        })
        .expect("valid"),
        move |t: &Transition| {
            let _ = tx.send(*t);
        },
    );
    let svc = CircuitBreakerLayer::new(breaker.clone()).layer(upstream(calls));
    let started = now();
    svc.clone()
        .oneshot(Upstream::Sleep(secs(2)))
        .await
        .expect("slow but fine");
    svc.clone()
        .oneshot(Upstream::Sleep(secs(3)))
        .await
        .expect("slow but fine");
    assert_eq!(now() - started, secs(5), "time moved only by the sleeps");
    let trip = rx.try_recv().expect("tripped");
    assert_eq!(
        trip.reason,
        Reason::SlowCallRate {
            slow: 2,
            calls: 2,
            threshold: 1.0
        }
    );
    tokio::time::advance(secs(10)).await;
    let _probe = svc.clone().oneshot(Upstream::Ok).await;
    let lazy = rx
        .try_recv()
        .expect("open → half-open reaches the listener");
    assert_eq!((lazy.from, lazy.to), (State::Open, State::HalfOpen));
}

#[tokio::test(start_paused = true)]
async fn poll_ready_is_the_inner_services_and_ignores_the_breaker() {
    let calls = Arc::new(AtomicUsize::new(0));
    let breaker = shared(trips_after_three());
    breaker.force_open(now());
    let mut svc = CircuitBreakerLayer::new(breaker.clone()).layer(upstream(calls.clone()));
    svc.ready().await.expect("ready even though open");
    let err = svc.call(Upstream::Ok).await.expect_err("forced open");
    assert_eq!(
        err.downcast_ref::<BreakerOpen>().map(|e| e.state()),
        Some(State::ForcedOpen)
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}
