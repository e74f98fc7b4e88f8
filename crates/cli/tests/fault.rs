//! Fault rules against the real binary: a delay that outlasts the route's timeout ends in
//! the timeout's answer (or its fallback) without reaching the upstream, a delay drawn from
//! a distribution holds each request, and an abort limited by a header answers only the
//! requests that carry it, each written to the access log with its fault.

mod support;

use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use support::{Mock, Proxy, admin_url, endpoint, eventually, get, route_config, send, with_admin};

/// Header rules are read only from trusted clients; the tests' client is loopback.
const TRUSTED: &str = "[proxy]\ntrusted_clients = [\"127.0.0.1\"]\n";

const STATIC: &str = "[route.fallback]\nstatic = { status = 503, body = \"degraded\" }\n";

/// A proxy with route `api` to `upstream`, with `route_keys` (its fault rules and sections).
fn proxy(upstream: &Mock, route_keys: &str) -> Proxy {
    let config = route_config(route_keys, "", &[endpoint(upstream, "")]);
    Proxy::start(&format!("{TRUSTED}{config}"))
}

#[tokio::test]
async fn a_delay_longer_than_the_route_timeout_ends_at_the_timeout_without_reaching_the_upstream() {
    let upstream = Mock::start("a", &[]);
    let proxy = proxy(
        &upstream,
        "timeout = \"300ms\"\n[[route.fault]]\ndelay = \"60s\"\n",
    );
    let started = Instant::now();
    let (status, headers, body) = get(&proxy.url("/")).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert_eq!(headers["x-blastwall-error"], "deadline_exceeded");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the deadline, not the delay, ended it"
    );
    assert_eq!(upstream.requests().await, 0, "no attempt was sent");
}

#[tokio::test]
async fn a_delay_that_times_the_route_out_is_answered_by_its_fallback() {
    let upstream = Mock::start("a", &[]);
    let route = format!("timeout = \"300ms\"\n[[route.fault]]\ndelay = \"60s\"\n{STATIC}");
    let proxy = proxy(&upstream, &route);
    let (status, headers, body) = get(&proxy.url("/")).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "degraded")
    );
    assert_eq!(headers["x-blastwall-fallback"], "static");
}

#[tokio::test]
async fn a_short_delay_is_waited_out_and_the_upstream_then_answers() {
    let upstream = Mock::start("a", &[]);
    let proxy = proxy(
        &upstream,
        "timeout = \"10s\"\n[[route.fault]]\ndelay = \"200ms\"\n",
    );
    let started = Instant::now();
    let (status, _, body) = get(&proxy.url("/")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "it was held"
    );
    assert_eq!(upstream.requests().await, 1);
}

#[tokio::test]
async fn a_delay_drawn_from_a_distribution_holds_each_request_at_least_its_minimum() {
    let upstream = Mock::start("a", &[]);
    let proxy = proxy(
        &upstream,
        "timeout = \"10s\"\n[[route.fault]]\ndelay = { min = \"200ms\", max = \"400ms\" }\n",
    );
    for _ in 0..3 {
        let started = Instant::now();
        let (status, _, body) = get(&proxy.url("/")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(
            started.elapsed() >= Duration::from_millis(200),
            "it was held"
        );
    }
    assert_eq!(upstream.requests().await, 3);
}

#[tokio::test]
async fn an_abort_with_a_header_answers_only_requests_carrying_that_header() {
    let folder = tempfile::tempdir().expect("a temporary folder");
    let log = folder.path().join("access.log");
    let upstream = Mock::start("a", &[]);
    let route = format!(
        "[[route.fault]]\nabort = {{ status = 500, body = \"injected\" }}\nheader = \"x-chaos=on\"\n\n[access_log]\npath = {:?}\n",
        log.to_str().expect("utf-8")
    );
    let proxy = proxy(&upstream, &route);
    let url = proxy.url("/");

    let plain = send(Method::GET, &url, "", &[("x-request-id", "plain")]).await;
    assert_eq!(plain.0, StatusCode::OK, "{plain:?}");
    let other = send(
        Method::GET,
        &url,
        "",
        &[("x-request-id", "off"), ("x-chaos", "off")],
    )
    .await;
    assert_eq!(other.0, StatusCode::OK, "{other:?}");
    let faulted = send(
        Method::GET,
        &url,
        "",
        &[("x-request-id", "on"), ("x-chaos", "on")],
    )
    .await;
    assert_eq!(
        (faulted.0, faulted.2.as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, "injected")
    );
    assert_eq!(
        upstream.requests().await,
        2,
        "the aborted request never left"
    );

    let written = eventually(Duration::from_secs(10), || async {
        support::access_log(&log).len() >= 3
    })
    .await;
    assert!(written, "access log: {:?}", support::access_log(&log));
    let lines = support::access_log(&log);
    let by_id = |id: &str| {
        lines
            .iter()
            .find(|line| line["request_id"] == id)
            .unwrap_or_else(|| panic!("no line for {id}: {lines:?}"))
            .clone()
    };
    assert_eq!(by_id("on")["fault"], "abort");
    assert_eq!(
        (
            by_id("on")["status"].clone(),
            by_id("on")["attempts"].clone()
        ),
        (500.into(), 0.into())
    );
    assert!(
        by_id("plain").get("fault").is_none(),
        "{:?}",
        by_id("plain")
    );
    assert!(by_id("off").get("fault").is_none(), "{:?}", by_id("off"));
}

#[tokio::test]
async fn an_aborted_server_error_is_answered_by_the_fallback_as_a_failed_attempt_would_be() {
    let upstream = Mock::start("a", &[]);
    let route = format!("[[route.fault]]\nabort = {{ status = 500 }}\n{STATIC}");
    let proxy = proxy(&upstream, &route);
    let (status, headers, body) = get(&proxy.url("/")).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "degraded")
    );
    assert_eq!(headers["x-blastwall-fallback"], "static");
    assert_eq!(upstream.requests().await, 0);
}

#[tokio::test]
async fn aborted_server_errors_open_the_cluster_breaker_for_every_request() {
    let upstream = Mock::start("a", &[]);
    let config = route_config(
        "[[route.fault]]\nabort = { status = 500 }\nheader = \"x-chaos\"\n",
        "",
        &[endpoint(&upstream, "")],
    ) + "\n[cluster.api.circuit_breaker]\nconsecutive_failures = 3\nopen_duration = \"60s\"\n";
    let proxy = Proxy::start(&with_admin(&format!("{TRUSTED}{config}")));
    let url = proxy.url("/");
    for _ in 0..3 {
        let (status, _, _) = send(Method::GET, &url, "", &[("x-chaos", "1")]).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    }
    // A request the fault does not apply to now meets the open breaker.
    let (status, headers, body) = get(&url).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(headers["x-blastwall-error"], "breaker_open");
    assert_eq!(upstream.requests().await, 0);
    let (_, _, metrics) = get(&admin_url(&proxy, "/metrics")).await;
    let counted = r#"blastwall_fault_aborts_total{route="api"} 3"#;
    assert!(metrics.contains(counted), "{metrics}");
}

#[tokio::test]
async fn a_client_not_trusted_cannot_fault_requests_with_the_header() {
    let upstream = Mock::start("a", &[]);
    // Loopback is not among the trusted networks, so the test's own header is ignored.
    let config = route_config(
        "[[route.fault]]\nabort = { status = 500 }\nheader = \"x-chaos\"\n",
        "",
        &[endpoint(&upstream, "")],
    );
    let proxy = Proxy::start(&format!(
        "[proxy]\ntrusted_clients = [\"10.9.9.9\"]\n{config}"
    ));
    let (status, _, body) = send(Method::GET, &proxy.url("/"), "", &[("x-chaos", "1")]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(upstream.requests().await, 1);
}
