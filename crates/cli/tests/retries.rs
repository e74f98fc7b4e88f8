//! Deadlines, retries and hedging, against real upstream processes that fail for real:
//! killed, resetting, hanging, overloaded, slow.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};
use support::{Answer, Mock, Proxy, endpoint, get, route_config, seen_header, send};

/// A proxy with one route to cluster `api` holding `endpoints`; `route` holds the route's
/// keys and sub-tables (`[route.retry]`…), `cluster` the cluster's keys.
fn proxy(route: &str, cluster: &str, endpoints: &[String]) -> Proxy {
    Proxy::start(&route_config(route, cluster, endpoints))
}

fn name(answer: &Answer) -> &str {
    answer
        .1
        .get("x-mock-name")
        .and_then(|name| name.to_str().ok())
        .unwrap_or("proxy")
}

fn attempts(answer: &Answer) -> u32 {
    answer.1["x-blastwall-attempts"]
        .to_str()
        .ok()
        .and_then(|count| count.parse().ok())
        .expect("an attempt count")
}

/// An address where nothing listens: bound, then released.
fn dead_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let address = listener.local_addr().expect("its address");
    drop(listener);
    format!("{{ address = \"{address}\" }}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_under_load_costs_idempotent_requests_nothing() {
    let mocks: Vec<Mock> = ["a", "b", "c"]
        .iter()
        .map(|name| Mock::start(name, &["--latency", "2ms"]))
        .collect();
    let endpoints: Vec<String> = mocks.iter().map(|mock| endpoint(mock, "")).collect();
    let proxy = proxy(
        "[route.retry]\nattempts = 3\nbackoff = { base = \"5ms\", max = \"20ms\" }\n",
        "",
        &endpoints,
    );
    let url = Arc::new(proxy.url("/work"));
    let mut mocks = mocks;
    let victim = mocks.remove(0);
    // Four clients, 150 requests each; the victim dies once a third of them are done.
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let url = url.clone();
        let done = done.clone();
        clients.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            for _ in 0..150 {
                let answer = get(&url).await;
                if answer.0 != StatusCode::OK {
                    failures.push(format!("{} {}", answer.0, answer.2.trim()));
                }
                done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            failures
        }));
    }
    assert!(
        support::eventually(Duration::from_secs(30), || {
            let done = done.clone();
            async move { done.load(std::sync::atomic::Ordering::Relaxed) >= 200 }
        })
        .await
    );
    drop(victim);
    let mut failures = Vec::new();
    for client in clients {
        failures.extend(client.await.unwrap());
    }
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    // The survivors carried the rest.
    let mut served = 0;
    for mock in &mocks {
        served += mock.requests().await;
    }
    assert!(served >= 400, "{served}");
}

#[tokio::test]
async fn under_a_total_outage_retries_add_no_more_than_the_budget() {
    let mocks: Vec<Mock> = ["a", "b"]
        .iter()
        .map(|name| Mock::start(name, &["--status", "502"]))
        .collect();
    let endpoints: Vec<String> = mocks.iter().map(|mock| endpoint(mock, "")).collect();
    let proxy = proxy(
        "[route.retry]\nattempts = 5\nbackoff = { base = \"1ms\", max = \"2ms\" }\n",
        "retry_budget = { ratio = 0.2, min_per_second = 0 }",
        &endpoints,
    );
    let requests = 200u64;
    let mut retried = 0;
    for _ in 0..requests {
        let answer = get(&proxy.url("/work")).await;
        assert_eq!(answer.0, StatusCode::BAD_GATEWAY);
        retried += u64::from(attempts(&answer) - 1);
    }
    let mut received = 0;
    for mock in &mocks {
        received += mock.requests().await;
    }
    assert_eq!(received, requests + retried);
    // 20% of 200 requests: at most 40 retries, however many attempts a route allows.
    assert!(retried <= 40, "{retried} retries for {requests} requests");
    assert!(
        retried >= 30,
        "the budget should have been spent: {retried}"
    );
}

#[tokio::test]
async fn a_post_is_retried_only_when_it_provably_never_reached_the_upstream() {
    let resetting = Mock::start("resetting", &[]);
    resetting.set_behaviour(r#"{"mode": "reset"}"#).await;
    let good = Mock::start("good", &[]);
    let retry = "[route.retry]\nattempts = 3\nbackoff = { base = \"1ms\", max = \"2ms\" }\n";
    let proxy = proxy(retry, "", &[endpoint(&resetting, ""), endpoint(&good, "")]);
    let mut failed = 0;
    for _ in 0..10 {
        let answer = send(Method::POST, &proxy.url("/orders"), "{}", &[]).await;
        // Reset after sending: the upstream may have applied it, so it is not sent again.
        assert_eq!(attempts(&answer), 1, "{answer:?}");
        if answer.0 != StatusCode::OK {
            assert_eq!(answer.0, StatusCode::BAD_GATEWAY);
            assert_eq!(answer.1["x-blastwall-error"], "upstream_reset");
            failed += 1;
        }
    }
    assert_eq!(resetting.requests().await, failed);
    assert!(failed > 0);
    // The same POST with an Idempotency-Key is safe to repeat, and is.
    for _ in 0..6 {
        let answer = send(
            Method::POST,
            &proxy.url("/orders"),
            "{}",
            &[("idempotency-key", "k1")],
        )
        .await;
        assert_eq!(answer.0, StatusCode::OK, "{answer:?}");
    }

    // Connection refused: the POST never left, so it goes to another endpoint.
    let proxy = self::proxy(retry, "", &[dead_address(), endpoint(&good, "")]);
    let mut retried = 0;
    for _ in 0..10 {
        let answer = send(Method::POST, &proxy.url("/orders"), "{\"n\":1}", &[]).await;
        assert_eq!(answer.0, StatusCode::OK, "{answer:?}");
        assert_eq!(name(&answer), "good");
        retried += u32::from(attempts(&answer) == 2);
    }
    assert!(retried > 0);
}

#[tokio::test]
async fn without_a_retry_section_a_refused_connection_is_still_tried_elsewhere() {
    let good = Mock::start("good", &[]);
    let proxy = proxy("", "", &[dead_address(), endpoint(&good, "")]);
    for _ in 0..6 {
        let answer = send(Method::POST, &proxy.url("/orders"), "body", &[]).await;
        assert_eq!(answer.0, StatusCode::OK, "{answer:?}");
    }
}

#[tokio::test]
async fn a_hung_endpoint_costs_one_per_try_timeout_then_another_answers() {
    let hung = Mock::start("hung", &[]);
    hung.set_behaviour(r#"{"mode": "hang"}"#).await;
    let good = Mock::start("good", &[]);
    let proxy = proxy(
        "timeout = \"10s\"\nper_try_timeout = \"200ms\"\n[route.retry]\nattempts = 2\n",
        "",
        &[endpoint(&hung, ""), endpoint(&good, "")],
    );
    let mut by_attempts = BTreeMap::new();
    for _ in 0..4 {
        let answer = get(&proxy.url("/work")).await;
        assert_eq!(answer.0, StatusCode::OK, "{answer:?}");
        assert_eq!(name(&answer), "good");
        *by_attempts.entry(attempts(&answer)).or_insert(0) += 1;
    }
    // Every request that met the hung endpoint first waited one per-try timeout and was
    // answered by the other on its second attempt.
    assert!(
        by_attempts.get(&2).is_some_and(|&n| n >= 2),
        "{by_attempts:?}"
    );
    assert!(hung.requests().await >= 2);
}

#[tokio::test]
async fn an_overloaded_endpoint_is_retried_elsewhere() {
    let busy = Mock::start("busy", &["--status", "503"]);
    let good = Mock::start("good", &[]);
    let proxy = proxy(
        "[route.retry]\nattempts = 2\nbackoff = { base = \"1ms\", max = \"2ms\" }\n",
        "",
        &[endpoint(&busy, ""), endpoint(&good, "")],
    );
    for _ in 0..6 {
        let answer = get(&proxy.url("/work")).await;
        assert_eq!(answer.0, StatusCode::OK, "{answer:?}");
        assert_eq!(name(&answer), "good");
    }
    assert!(busy.requests().await >= 3);
}

#[tokio::test]
async fn the_remaining_deadline_travels_upstream_and_a_late_request_is_refused() {
    let echo = Mock::start("echo", &[]);
    echo.set_behaviour(r#"{"echo": true}"#).await;
    // The caller's deadline is honoured from trusted clients only (see security_trust.rs).
    let proxy = Proxy::start(&format!(
        "[proxy]\ntrusted_clients = [\"127.0.0.1\"]\n{}",
        route_config(
            "timeout = \"3s\"\nper_try_timeout = \"1s\"\n",
            "",
            &[endpoint(&echo, "")],
        )
    ));
    let answer = get(&proxy.url("/work")).await;
    let announced: u64 = seen_header(&answer.2, "x-blastwall-timeout-ms")
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=1000).contains(&announced), "{announced}");

    // A caller with 300ms left gets no more than that announced upstream.
    let answer = send(
        Method::GET,
        &proxy.url("/work"),
        "",
        &[("x-blastwall-timeout-ms", "300")],
    )
    .await;
    let announced: u64 = seen_header(&answer.2, "x-blastwall-timeout-ms")
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=300).contains(&announced), "{announced}");

    let before = echo.requests().await;
    let late = send(
        Method::GET,
        &proxy.url("/work"),
        "",
        &[("x-blastwall-timeout-ms", "0")],
    )
    .await;
    assert_eq!(late.0, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(late.1["x-blastwall-error"], "deadline_exceeded");
    let bad = send(
        Method::GET,
        &proxy.url("/work"),
        "",
        &[("x-blastwall-timeout-ms", "soon")],
    )
    .await;
    assert_eq!(bad.0, StatusCode::BAD_REQUEST);
    assert!(bad.2.contains("x-blastwall-timeout-ms"), "{}", bad.2);
    assert_eq!(echo.requests().await, before, "neither was forwarded");
}

#[tokio::test]
async fn a_slow_answer_is_hedged_to_another_endpoint_and_the_first_answer_wins() {
    let slow = Mock::start("slow", &["--latency", "3s"]);
    let fast = Mock::start("fast", &[]);
    let proxy = proxy(
        "[route.hedge]\nafter = \"50ms\"\n",
        "",
        &[endpoint(&slow, ""), endpoint(&fast, "")],
    );
    let mut hedged = 0;
    for _ in 0..4 {
        let answer = get(&proxy.url("/work")).await;
        assert_eq!(answer.0, StatusCode::OK);
        assert_eq!(name(&answer), "fast", "{answer:?}");
        hedged += u32::from(attempts(&answer) == 2);
    }
    // Round robin sends at least every other request to the slow one first (every one,
    // when the hedge's pick moves it on too).
    assert!(hedged >= 2, "{hedged}");
}

#[tokio::test]
async fn a_kept_request_body_is_sent_again_whole() {
    let resetting = Mock::start("resetting", &[]);
    resetting.set_behaviour(r#"{"mode": "reset"}"#).await;
    let echo = Mock::start("echo", &[]);
    echo.set_behaviour(r#"{"echo": true}"#).await;
    let proxy = proxy(
        "[route.retry]\nattempts = 2\nbackoff = { base = \"1ms\", max = \"2ms\" }\n",
        "",
        &[endpoint(&resetting, ""), endpoint(&echo, "")],
    );
    let body = "x".repeat(10_000);
    for _ in 0..4 {
        let answer = send(Method::PUT, &proxy.url("/doc"), &body, &[]).await;
        assert_eq!(answer.0, StatusCode::OK, "{answer:?}");
        let seen: serde_json::Value = serde_json::from_str(&answer.2).unwrap();
        assert_eq!(seen["body_bytes"], 10_000, "{seen}");
    }
}
