//! Active health checks take failing endpoints out of rotation and bring them back.

mod support;

use std::time::Duration;

use http::StatusCode;
use support::{Mock, Proxy, endpoint, eventually, get, single_cluster_config};

const WITHIN: Duration = Duration::from_secs(15);

fn proxy(mocks: &[&Mock]) -> Proxy {
    let endpoints: Vec<String> = mocks.iter().map(|mock| endpoint(mock, "")).collect();
    Proxy::start(&single_cluster_config(
        "balance = \"round_robin\"",
        &endpoints,
        r#"
[cluster.api.health_check]
kind = "http"
path = "/healthz"
interval = "100ms"
timeout = "500ms"
healthy_threshold = 2
unhealthy_threshold = 2
jitter = "20ms"
"#,
    ))
}

/// Status and answering mock of `count` requests in a row.
async fn answers(proxy: &Proxy, count: usize) -> Vec<(StatusCode, String)> {
    let mut answers = Vec::with_capacity(count);
    for _ in 0..count {
        let (status, headers, _) = get(&proxy.url("/work")).await;
        let name = headers
            .get("x-mock-name")
            .and_then(|name| name.to_str().ok())
            .unwrap_or("proxy")
            .to_owned();
        answers.push((status, name));
    }
    answers
}

/// Whether `count` requests in a row all succeed and come only from `names`.
async fn only(proxy: &Proxy, count: usize, names: &[&str]) -> bool {
    answers(proxy, count)
        .await
        .iter()
        .all(|(status, name)| *status == StatusCode::OK && names.contains(&name.as_str()))
}

/// Whether `count` requests in a row all succeed and reach every one of `names`.
async fn all_of(proxy: &Proxy, count: usize, names: &[&str]) -> bool {
    let answers = answers(proxy, count).await;
    answers.iter().all(|(status, _)| *status == StatusCode::OK)
        && names
            .iter()
            .all(|wanted| answers.iter().any(|(_, name)| name == wanted))
}

#[tokio::test]
async fn a_killed_endpoint_is_taken_out_and_returns_after_restart() {
    let (a, b) = (Mock::start("a", &[]), Mock::start("b", &[]));
    let address = a.addr;
    let proxy = proxy(&[&a, &b]);
    assert!(eventually(WITHIN, || all_of(&proxy, 10, &["a", "b"])).await);
    drop(a);
    assert!(
        eventually(WITHIN, || only(&proxy, 20, &["b"])).await,
        "the dead endpoint was never taken out"
    );
    let after: Vec<_> = answers(&proxy, 50).await;
    assert!(
        after
            .iter()
            .all(|(status, name)| *status == StatusCode::OK && name == "b"),
        "a request failed after the endpoint was taken out: {after:?}"
    );
    let _a = Mock::start_on(&address.to_string(), "a", &[]);
    assert!(
        eventually(WITHIN, || all_of(&proxy, 10, &["a", "b"])).await,
        "the restarted endpoint never came back"
    );
}

#[tokio::test]
async fn an_endpoint_answering_an_unexpected_status_is_taken_out_until_it_recovers() {
    let (a, b) = (Mock::start("a", &[]), Mock::start("b", &[]));
    let proxy = proxy(&[&a, &b]);
    assert!(eventually(WITHIN, || all_of(&proxy, 10, &["a", "b"])).await);
    a.set_behaviour(r#"{"status":503}"#).await;
    assert!(
        eventually(WITHIN, || only(&proxy, 20, &["b"])).await,
        "the failing endpoint was never taken out"
    );
    a.set_behaviour("{}").await;
    assert!(
        eventually(WITHIN, || all_of(&proxy, 10, &["a", "b"])).await,
        "the recovered endpoint never came back"
    );
}
