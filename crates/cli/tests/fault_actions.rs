//! What a fault does and where, against the real binary: an attempt-level delay meets the
//! per-try timeout and the retry goes to the other endpoint, an attempt-level abort is
//! retried, a reset or a close ends in 502 (or the fallback), a body cut after its head
//! reaches the client truncated and is charged to its endpoint, a throttled body takes its
//! size over its rate, and an endpoint taken down gets no request while the other serves
//! everything.

mod support;

use std::time::{Duration, Instant};

use http::StatusCode;
use support::{
    Answer, Mock, Proxy, admin_url, endpoint, eventually, get, raw_exchange, route_config,
};

const WITHIN: Duration = Duration::from_secs(20);

/// Retries soon after a failure, to the other endpoint.
const RETRY: &str = "[route.retry]\nattempts = 2\nbackoff = { base = \"1ms\", max = \"2ms\" }\n";

/// A proxy with route `api` (`route_keys`, its fault rules among them) to `mocks`, round
/// robin, with `cluster_keys` (sub-tables such as `[cluster.api.outlier_detection]`).
fn proxy(mocks: &[&Mock], route_keys: &str, cluster_sections: &str) -> Proxy {
    let endpoints: Vec<String> = mocks.iter().map(|mock| endpoint(mock, "")).collect();
    Proxy::start(&(route_config(route_keys, "", &endpoints) + cluster_sections))
}

fn name(answer: &Answer) -> &str {
    answer
        .1
        .get("x-mock-name")
        .map_or("", |name| name.to_str().unwrap_or(""))
}

fn attempts(answer: &Answer) -> &str {
    (answer.1.get("x-blastwall-attempts")).map_or("", |value| value.to_str().unwrap_or(""))
}

/// The value of a metric line of route `api`, 0 when absent.
async fn metric(proxy: &Proxy, name: &str) -> u64 {
    let (_, _, metrics) = get(&admin_url(proxy, "/metrics")).await;
    let prefix = format!("{name}{{route=\"api\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn an_attempt_delay_fires_the_per_try_timeout_and_the_retry_succeeds_on_the_other_endpoint() {
    let (slow, fine) = (Mock::start("slow", &[]), Mock::start("fine", &[]));
    let route = format!(
        "timeout = \"20s\"\nper_try_timeout = \"300ms\"\n{RETRY}[[route.fault]]\ndelay = \"60s\"\nendpoint = \"{}\"\n",
        slow.addr
    );
    let proxy = proxy(&[&slow, &fine], &route, "");
    let mut retried = 0;
    for _ in 0..4 {
        let started = Instant::now();
        let answer = get(&proxy.url("/")).await;
        assert_eq!(
            (answer.0, name(&answer)),
            (StatusCode::OK, "fine"),
            "{answer:?}"
        );
        if attempts(&answer) == "2" {
            retried += 1;
            assert!(
                started.elapsed() >= Duration::from_millis(300),
                "the first attempt waited out its per-try timeout"
            );
        }
    }
    assert!(
        retried >= 1,
        "round robin sent some first attempts to the slow endpoint"
    );
    assert_eq!(
        slow.requests().await,
        0,
        "the delayed attempts were never sent"
    );
    assert!(metric(&proxy, "blastwall_fault_delays_total").await >= 1);
}

#[tokio::test]
async fn an_attempt_delay_makes_the_attempt_slow_enough_to_be_hedged_and_the_hedge_wins() {
    let (slow, fast) = (Mock::start("slow", &[]), Mock::start("fast", &[]));
    let route = format!(
        "per_try_timeout = \"10s\"\n[route.hedge]\nafter = \"50ms\"\n[[route.fault]]\ndelay = \"3s\"\nendpoint = \"{}\"\n",
        slow.addr
    );
    let proxy = proxy(&[&slow, &fast], &route, "");
    let mut hedged = 0;
    for _ in 0..4 {
        let answer = get(&proxy.url("/")).await;
        assert_eq!(
            (answer.0, name(&answer)),
            (StatusCode::OK, "fast"),
            "{answer:?}"
        );
        hedged += usize::from(attempts(&answer) == "2");
    }
    assert!(
        hedged >= 1,
        "round robin sent some first attempts to the delayed endpoint"
    );
    assert_eq!(
        slow.requests().await,
        0,
        "the delayed attempts lost and were dropped"
    );
}

#[tokio::test]
async fn an_attempt_abort_is_the_endpoints_answer_and_is_retried_on_the_other_endpoint() {
    let folder = tempfile::tempdir().expect("a temporary folder");
    let log = folder.path().join("access.log");
    let (failing, fine) = (Mock::start("failing", &[]), Mock::start("fine", &[]));
    let route = format!(
        "{RETRY}[[route.fault]]\nabort = {{ status = 502 }}\nat = \"attempt\"\nendpoint = \"{}\"\n\n[access_log]\npath = {:?}\n",
        failing.addr,
        log.to_str().expect("utf-8")
    );
    let proxy = proxy(&[&failing, &fine], &route, "");
    let mut retried = 0;
    for _ in 0..4 {
        let answer = get(&proxy.url("/")).await;
        assert_eq!(
            (answer.0, name(&answer)),
            (StatusCode::OK, "fine"),
            "{answer:?}"
        );
        retried += usize::from(attempts(&answer) == "2");
    }
    assert!(
        retried >= 1,
        "some first attempts met the abort and were retried"
    );
    assert_eq!(failing.requests().await, 0);
    assert!(metric(&proxy, "blastwall_fault_aborts_total").await >= 1);
    // A faulted request is always logged, its fault named even when its retry succeeded.
    let logged = || async {
        support::access_log(&log)
            .iter()
            .any(|line| line["fault"] == "abort" && line["status"] == 200 && line["attempts"] == 2)
    };
    assert!(
        eventually(WITHIN, logged).await,
        "{:?}",
        support::access_log(&log)
    );
}

#[tokio::test]
async fn an_abort_on_every_attempt_is_retried_until_the_attempts_run_out() {
    let (a, b) = (Mock::start("a", &[]), Mock::start("b", &[]));
    let route = format!(
        "{RETRY}[[route.fault]]\nabort = {{ status = 502, body = \"injected\" }}\nat = \"attempt\"\n"
    );
    let proxy = proxy(&[&a, &b], &route, "");
    let answer = get(&proxy.url("/")).await;
    assert_eq!(
        (answer.0, answer.2.as_str()),
        (StatusCode::BAD_GATEWAY, "injected")
    );
    assert_eq!(attempts(&answer), "2", "{answer:?}");
    assert_eq!(a.requests().await + b.requests().await, 0);
    assert_eq!(
        metric(&proxy, "blastwall_fault_aborts_total").await,
        2,
        "one per attempt"
    );
}

#[tokio::test]
async fn a_reset_ends_in_502_without_reaching_the_upstream_and_is_logged_as_a_reset() {
    let folder = tempfile::tempdir().expect("a temporary folder");
    let log = folder.path().join("access.log");
    let upstream = Mock::start("a", &[]);
    let route = format!(
        "[[route.fault]]\nreset = true\n\n[access_log]\npath = {:?}\n",
        log.to_str().expect("utf-8")
    );
    let proxy = proxy(&[&upstream], &route, "");
    let (status, headers, _) = get(&proxy.url("/")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(headers["x-blastwall-error"], "upstream_reset");
    assert_eq!(upstream.requests().await, 0);
    assert!(eventually(WITHIN, || async { !support::access_log(&log).is_empty() }).await);
    assert_eq!(support::access_log(&log)[0]["fault"], "reset");
    assert_eq!(metric(&proxy, "blastwall_fault_resets_total").await, 1);
}

#[tokio::test]
async fn a_close_before_the_head_on_every_attempt_is_retried_then_ends_in_502_or_the_fallback() {
    let (a, b) = (Mock::start("a", &[]), Mock::start("b", &[]));
    let rule = "[[route.fault]]\nclose = \"before_head\"\nat = \"attempt\"\n";
    let proxy = proxy(&[&a, &b], &format!("{RETRY}{rule}"), "");
    let answer = get(&proxy.url("/")).await;
    assert_eq!(answer.0, StatusCode::BAD_GATEWAY);
    assert_eq!(answer.1["x-blastwall-error"], "upstream_reset");
    assert_eq!(attempts(&answer), "2", "a reset of a GET is retried");

    let fallback = "[route.fallback]\nstatic = { status = 503, body = \"degraded\" }\n";
    let proxy = self::proxy(&[&a, &b], &format!("{RETRY}{rule}{fallback}"), "");
    let (status, headers, body) = get(&proxy.url("/")).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "degraded")
    );
    assert_eq!(headers["x-blastwall-fallback"], "static");
    assert_eq!(a.requests().await + b.requests().await, 0);
}

#[tokio::test]
async fn a_close_after_the_head_reaches_the_client_as_a_truncated_body_charged_to_its_endpoint() {
    let upstream = Mock::start("a", &[]);
    upstream.set_behaviour(r#"{"body_size": 1000}"#).await;
    let route = "[[route.fault]]\nclose = \"after_head\"\ntruncate_after = \"100B\"\n";
    let proxy = proxy(&[&upstream], route, "");
    let raw = raw_exchange(
        proxy.addr(),
        b"GET / HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(raw.status, 200);
    assert!(
        raw.head
            .to_ascii_lowercase()
            .contains("content-length: 1000"),
        "{}",
        raw.head
    );
    assert_eq!(
        raw.body.len(),
        100,
        "the body broke off where the rule says"
    );
    assert_eq!(
        upstream.requests().await,
        1,
        "the real answer was passed on"
    );
    let failures = || async {
        let (_, _, body) = get(&admin_url(&proxy, "/admin/clusters")).await;
        let body: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        body["clusters"][0]["stats"]["attempt_body_failures"].as_u64() == Some(1)
    };
    assert!(
        eventually(WITHIN, failures).await,
        "the endpoint was charged for the cut body"
    );
    assert_eq!(metric(&proxy, "blastwall_fault_truncations_total").await, 1);
}

#[tokio::test]
async fn a_throttled_body_takes_at_least_its_size_over_its_rate() {
    let upstream = Mock::start("a", &[]);
    upstream.set_behaviour(r#"{"body_size": 20480}"#).await;
    let proxy = proxy(&[&upstream], "[[route.fault]]\nthrottle = \"10KiB\"\n", "");
    let started = Instant::now();
    let (status, _, body) = get(&proxy.url("/")).await;
    assert_eq!((status, body.len()), (StatusCode::OK, 20480));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1900),
        "20KiB at 10KiB/s took {took:?}"
    );
    assert_eq!(metric(&proxy, "blastwall_fault_throttles_total").await, 1);
}

/// Ejects after three gateway errors (refused connections among them) in a row, for long.
const EJECT_AFTER_THREE: &str = r#"
[cluster.api.outlier_detection]
consecutive_errors = 3
consecutive_gateway_errors = 3
base_ejection_time = "60s"
"#;

#[tokio::test]
async fn an_endpoint_down_gets_no_request_while_the_other_serves_everything_and_is_ejected() {
    let (down, up) = (Mock::start("down", &[]), Mock::start("up", &[]));
    let route = format!(
        "[[route.fault]]\ndown = true\nendpoint = \"{}\"\n",
        down.addr
    );
    let proxy = proxy(&[&down, &up], &route, EJECT_AFTER_THREE);
    for _ in 0..20 {
        let answer = get(&proxy.url("/")).await;
        assert_eq!(
            (answer.0, name(&answer)),
            (StatusCode::OK, "up"),
            "{answer:?}"
        );
    }
    assert_eq!(down.requests().await, 0, "no connection was made to it");
    assert_eq!(up.requests().await, 20);
    let refused = metric(&proxy, "blastwall_fault_endpoint_down_total").await;
    assert!(
        (3..20).contains(&refused),
        "{refused} attempts met it before its ejection"
    );
    let (_, _, body) = get(&admin_url(&proxy, "/admin/clusters")).await;
    let body: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(body["clusters"][0]["stats"]["ejections"], 1, "{body}");
}

#[tokio::test]
async fn a_random_endpoint_down_takes_exactly_one_endpoint_out() {
    let (a, b) = (Mock::start("a", &[]), Mock::start("b", &[]));
    let proxy = proxy(
        &[&a, &b],
        "[[route.fault]]\ndown = true\nendpoint = \"random\"\n",
        "",
    );
    for _ in 0..10 {
        assert_eq!(get(&proxy.url("/")).await.0, StatusCode::OK);
    }
    let served = (a.requests().await, b.requests().await);
    assert!(served == (0, 10) || served == (10, 0), "{served:?}");
}

/// Checks every 100ms, two in a row to change state.
const HEALTH_CHECKS: &str = r#"
[cluster.api.health_check]
kind = "http"
path = "/healthz"
interval = "100ms"
timeout = "500ms"
healthy_threshold = 2
unhealthy_threshold = 2
jitter = "20ms"
"#;

/// The health of endpoint `index` of the cluster, as the admin API shows it.
async fn health(proxy: &Proxy, index: usize) -> String {
    let (_, _, body) = get(&admin_url(proxy, "/admin/clusters")).await;
    let body: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    body["clusters"][0]["endpoints"][index]["health"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn active_health_checks_see_an_endpoint_down_and_see_it_back_when_the_rule_goes() {
    let (down, up) = (Mock::start("down", &[]), Mock::start("up", &[]));
    let endpoints = [endpoint(&down, ""), endpoint(&up, "")];
    let rule = format!(
        "[[route.fault]]\ndown = true\nendpoint = \"{}\"\n",
        down.addr
    );
    let with_rule = route_config(&rule, "", &endpoints) + HEALTH_CHECKS;
    let proxy = Proxy::start(&with_rule);
    let unhealthy = || async { health(&proxy, 0).await == "unhealthy" };
    assert!(
        eventually(WITHIN, unhealthy).await,
        "the checks never saw it down"
    );
    let other = || async { health(&proxy, 1).await == "healthy" };
    assert!(
        eventually(WITHIN, other).await,
        "the other endpoint is checked healthy"
    );
    for _ in 0..10 {
        let answer = get(&proxy.url("/")).await;
        assert_eq!(
            (answer.0, name(&answer)),
            (StatusCode::OK, "up"),
            "{answer:?}"
        );
    }

    proxy.replace_config(&(route_config("", "", &endpoints) + HEALTH_CHECKS));
    let healthy = || async { health(&proxy, 0).await == "healthy" };
    assert!(
        eventually(WITHIN, healthy).await,
        "the checks never saw it back"
    );
    let back = || async {
        get(&proxy.url("/"))
            .await
            .1
            .get("x-mock-name")
            .is_some_and(|name| name == "down")
    };
    assert!(eventually(WITHIN, back).await, "it never served again");
}

#[tokio::test]
async fn attempts_reset_on_one_endpoint_are_retried_elsewhere_and_get_it_ejected() {
    let (reset, fine) = (Mock::start("reset", &[]), Mock::start("fine", &[]));
    // Without `[route.retry]` only failures that provably never left are retried, and a
    // reset may have been processed, as a real one.
    let route = format!(
        "{RETRY}[[route.fault]]\nreset = true\nendpoint = \"{}\"\n",
        reset.addr
    );
    let proxy = proxy(&[&reset, &fine], &route, EJECT_AFTER_THREE);
    for _ in 0..12 {
        let answer = get(&proxy.url("/")).await;
        assert_eq!(
            (answer.0, name(&answer)),
            (StatusCode::OK, "fine"),
            "{answer:?}"
        );
    }
    assert_eq!(reset.requests().await, 0);
    let (_, _, body) = get(&admin_url(&proxy, "/admin/clusters")).await;
    let body: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(body["clusters"][0]["stats"]["ejections"], 1, "{body}");
    assert_eq!(metric(&proxy, "blastwall_fault_resets_total").await, 3);
}
