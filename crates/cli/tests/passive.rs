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
    // Busy: one request at a time, 50 ms each, a 503 for the others. It still serves.
    busy.set_behaviour(r#"{"capacity":1,"latency":"50ms"}"#)
        .await;
    let (mut refused, mut served_before) = (0, 0);
    for round in 0..12 {
        let mut wave = tokio::task::JoinSet::new();
        for _ in 0..6 {
            let url = proxy.url("/work");
            wave.spawn(async move { get(&url).await.0 });
        }
        while let Some(status) = wave.join_next().await {
            refused +=
                usize::from(status.expect("a request task") == StatusCode::SERVICE_UNAVAILABLE);
        }
        if round == 5 {
            served_before = busy.stats().await["answered_by_class"][1]
                .as_u64()
                .unwrap_or(0);
        }
    }
    let served_after = busy.stats().await["answered_by_class"][1]
        .as_u64()
        .unwrap_or(0);
    assert!(refused > 0, "the busy replica refused some requests");
    assert!(
        served_after > served_before,
        "the busy replica keeps its share past 600 ms of 503s: overload is not failure"
    );
}

#[tokio::test]
async fn a_replica_answering_only_503_is_broken_and_ejected() {
    let (a, broken) = (Mock::start("a", &[]), Mock::start("broken", &[]));
    let proxy = proxy(
        &[&a, &broken],
        r#"
[cluster.api.outlier_detection]
consecutive_gateway_errors = 3
base_ejection_time = "30s"
"#,
    );
    assert_eq!(burst(&proxy, 4).await, 4);
    broken.set_behaviour(r#"{"status":503}"#).await;
    // Its 503s say busy until it has served nothing for 250 ms, then broken.
    assert!(
        eventually(WITHIN, || avoided(&proxy, &broken, 20)).await,
        "a replica answering nothing but 503 was never ejected"
    );
}

#[tokio::test]
async fn an_all_503_outage_opens_the_breaker_which_the_health_check_probes_until_recovery() {
    let (a, b) = (Mock::start("a", &[]), Mock::start("b", &[]));
    let proxy = proxy(
        &[&a, &b],
        r#"
[cluster.api.health_check]
kind = "http"
path = "/"
interval = "10s"

[cluster.api.circuit_breaker]
consecutive_failures = 3
open_duration = "50ms"
half_open_probes = 1
probe = "health_check"
"#,
    );
    assert_eq!(burst(&proxy, 4).await, 4);
    for mock in [&a, &b] {
        mock.set_behaviour(r#"{"status":503}"#).await;
    }
    let breaker_open = |headers: &http::HeaderMap| {
        headers
            .get("x-blastwall-error")
            .is_some_and(|value| value == "breaker_open")
    };
    let opened = eventually(WITHIN, || async {
        let (status, headers, _) = get(&proxy.url("/work")).await;
        status == StatusCode::SERVICE_UNAVAILABLE && breaker_open(&headers)
    })
    .await;
    assert!(
        opened,
        "an outage where every replica answers 503 never opened the breaker"
    );
    // Open across many open periods: the health check probes, no request does.
    let started = std::time::Instant::now();
    let mut answered = 0;
    while started.elapsed() < Duration::from_millis(600) {
        let (status, headers, _) = get(&proxy.url("/work")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(breaker_open(&headers), "a request was sent as a probe");
        answered += 1;
    }
    assert!(answered > 10);
    let probes = a.requests().await + b.requests().await;
    for mock in [&a, &b] {
        mock.set_behaviour("{}").await;
    }
    assert!(
        eventually(WITHIN, || async { burst(&proxy, 5).await == 5 }).await,
        "the breaker never closed after the upstreams recovered"
    );
    assert!(
        a.requests().await + b.requests().await > probes,
        "traffic came back"
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
