//! What traffic says about endpoints: a failing endpoint is ejected and comes back, a busy one
//! is not, a slow one is, and a cluster that fails as a whole trips its breaker, fails fast
//! without touching the endpoints, and closes again when they recover.

mod support;

use std::time::Duration;

use http::StatusCode;
use support::{Mock, Proxy, endpoint, eventually, get, single_cluster_config};

const WITHIN: Duration = Duration::from_secs(15);

fn proxy(mocks: &[&Mock], sections: &str) -> Proxy {
    let endpoints: Vec<String> = mocks.iter().map(|mock| endpoint(mock, "")).collect();
    Proxy::start(&single_cluster_config(
        "balance = \"round_robin\"",
        &endpoints,
        sections,
    ))
}

/// Sends `count` requests; returns how many were answered 200.
async fn burst(proxy: &Proxy, count: usize) -> usize {
    let mut ok = 0;
    for _ in 0..count {
        let (status, _, _) = get(&proxy.url("/work")).await;
        ok += usize::from(status == StatusCode::OK);
    }
    ok
}

/// Whether `count` requests were all answered 200 without one reaching `mock`.
async fn avoided(proxy: &Proxy, mock: &Mock, count: usize) -> bool {
    let before = mock.requests().await;
    let ok = burst(proxy, count).await;
    ok == count && mock.requests().await == before
}

#[tokio::test]
async fn an_endpoint_answering_502_is_ejected_and_returns_after_its_ejection_time() {
    let (a, b, c) = (
        Mock::start("a", &[]),
        Mock::start("b", &[]),
        Mock::start("c", &[]),
    );
    let proxy = proxy(
        &[&a, &b, &c],
        r#"
[cluster.api.outlier_detection]
consecutive_gateway_errors = 3
base_ejection_time = "1s"
"#,
    );
    assert_eq!(burst(&proxy, 9).await, 9);
    b.set_behaviour(r#"{"status":502}"#).await;
    assert!(
        eventually(WITHIN, || avoided(&proxy, &b, 30)).await,
        "the failing endpoint was never ejected"
    );
    b.set_behaviour("{}").await;
    let returned = eventually(WITHIN, || async {
        let before = b.requests().await;
        burst(&proxy, 12).await == 12 && b.requests().await > before
    })
    .await;
    assert!(returned, "the endpoint never came back after its ejection");
}

#[tokio::test]
async fn a_replica_answering_503_because_it_is_overloaded_is_never_ejected() {
    let (a, busy) = (Mock::start("a", &[]), Mock::start("busy", &[]));
    let proxy = proxy(
        &[&a, &busy],
        r#"
[cluster.api.outlier_detection]
consecutive_errors = 2
consecutive_gateway_errors = 2
base_ejection_time = "30s"

[cluster.api.endpoint_circuit_breaker]
consecutive_failures = 2
open_duration = "30s"
"#,
    );
    busy.set_behaviour(r#"{"status":503}"#).await;
    let before = busy.requests().await;
    let ok = burst(&proxy, 60).await;
    let reached = busy.requests().await - before;
    assert_eq!(ok, 30, "the other replica answers its half");
    assert_eq!(
        reached, 30,
        "the busy replica keeps its share: overload is not failure"
    );
}

#[tokio::test]
async fn the_cluster_breaker_opens_fails_fast_without_the_upstreams_and_closes_on_recovery() {
    let (a, b) = (Mock::start("a", &[]), Mock::start("b", &[]));
    let proxy = proxy(
        &[&a, &b],
        r#"
[cluster.api.circuit_breaker]
consecutive_failures = 5
open_duration = "2s"
half_open_probes = 1
"#,
    );
    for mock in [&a, &b] {
        mock.set_behaviour(r#"{"status":500}"#).await;
    }
    let opened = eventually(WITHIN, || async {
        let (status, headers, _) = get(&proxy.url("/work")).await;
        status == StatusCode::SERVICE_UNAVAILABLE
            && headers
                .get("x-blastwall-error")
                .is_some_and(|value| value == "breaker_open")
    })
    .await;
    assert!(opened, "the breaker never opened");
    let before = a.requests().await + b.requests().await;
    let mut told_when = 0;
    for _ in 0..10 {
        let (status, headers, _) = get(&proxy.url("/work")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        told_when += usize::from(headers.contains_key("retry-after"));
    }
    assert!(told_when > 0, "a fast failure says when to come back");
    let after = a.requests().await + b.requests().await;
    // At most the one half-open probe may have gone through if the open period just ended.
    assert!(
        after - before <= 1,
        "{} requests reached the mocks while the breaker was open",
        after - before
    );
    for mock in [&a, &b] {
        mock.set_behaviour("{}").await;
    }
    assert!(
        eventually(WITHIN, || async { burst(&proxy, 10).await == 10 }).await,
        "the breaker never closed after the upstreams recovered"
    );
}

#[tokio::test]
async fn a_slow_replica_is_ejected_by_slow_call_detection() {
    let (a, b, slow) = (
        Mock::start("a", &[]),
        Mock::start("b", &[]),
        Mock::start("slow", &[]),
    );
    let proxy = proxy(
        &[&a, &b, &slow],
        r#"
[cluster.api.outlier_detection]
consecutive_errors = 3
slow_call = { threshold = "100ms" }
base_ejection_time = "30s"
"#,
    );
    slow.set_behaviour(r#"{"latency":"300ms"}"#).await;
    assert!(
        eventually(WITHIN, || avoided(&proxy, &slow, 15)).await,
        "the slow replica was never ejected"
    );
}
