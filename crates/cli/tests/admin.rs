//! The admin API against the real binary: every read answers, every action has its effect
//! on traffic, mutations need the token, and an open admin listener without one is refused.

mod support;

use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::Value;
use support::{
    Mock, Proxy, admin_section, admin_url, endpoint, eventually, get, send, single_cluster_config,
};

const WITHIN: Duration = Duration::from_secs(10);
const TOKEN: &str = "test-token-1234";

fn proxy(mocks: &[&Mock], sections: &str) -> Proxy {
    let endpoints: Vec<String> = mocks.iter().map(|mock| endpoint(mock, "")).collect();
    let sections = format!(
        "{sections}{}",
        admin_section(&format!("token = \"{TOKEN}\""))
    );
    Proxy::start(&single_cluster_config("", &endpoints, &sections))
}

async fn json(url: &str) -> (StatusCode, Value) {
    let (status, _, body) = get(url).await;
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

async fn act(proxy: &Proxy, method: Method, path: &str, body: &str) -> (StatusCode, Value) {
    let bearer = format!("Bearer {TOKEN}");
    let (status, _, body) = send(
        method,
        &admin_url(proxy, path),
        body,
        &[
            ("authorization", &bearer),
            ("content-type", "application/json"),
        ],
    )
    .await;
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

async fn burst(proxy: &Proxy, count: usize) -> Vec<StatusCode> {
    let mut statuses = Vec::with_capacity(count);
    for _ in 0..count {
        statuses.push(get(&proxy.url("/work")).await.0);
    }
    statuses
}

#[tokio::test]
async fn every_read_endpoint_answers_with_the_live_state() {
    let a = Mock::start("a", &[]);
    let proxy = proxy(&[&a], "");
    burst(&proxy, 3).await;
    let (status, body) = json(&admin_url(&proxy, "/admin/status")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["version"].is_string() && body["uptime_seconds"].is_number());
    assert_eq!(body["listeners"][0]["address"], proxy.addr().to_string());
    assert!(body["config_hash"].is_string() && body["reload"]["applied"] == 0);

    let (status, body) = json(&admin_url(&proxy, "/admin/config")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["config"]["admin"]["token"], "<redacted>");
    assert!(
        !body.to_string().contains(TOKEN),
        "the token leaked: {body}"
    );

    let (_, body) = json(&admin_url(&proxy, "/admin/clusters")).await;
    let endpoint = &body["clusters"][0]["endpoints"][0];
    assert_eq!(endpoint["address"], a.addr.to_string());
    for key in [
        "health",
        "ejected",
        "breaker",
        "in_flight",
        "ewma_latency_ms",
        "drained",
    ] {
        assert!(endpoint.get(key).is_some(), "no {key} in {endpoint}");
    }
    assert!(body["clusters"][0]["retry_budget"]["remaining"].is_number());

    let (_, body) = json(&admin_url(&proxy, "/admin/routes")).await;
    assert_eq!(body["routes"][0]["requests"], 3);
    let (status, body) = json(&admin_url(&proxy, "/admin/events")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["events"].is_array());
    let (status, body) = json(&admin_url(&proxy, "/admin/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["paths"]["/admin/clusters"].is_object());
    let (status, headers, page) = get(&admin_url(&proxy, "/dashboard")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers["content-type"]
            .to_str()
            .is_ok_and(|t| t.starts_with("text/html"))
    );
    assert!(page.contains("EventSource"));
    assert_eq!(get(&admin_url(&proxy, "/metrics")).await.0, StatusCode::OK);
    assert_eq!(
        get(&admin_url(&proxy, "/healthz/live")).await.0,
        StatusCode::OK
    );
    assert_eq!(
        get(&admin_url(&proxy, "/healthz/ready")).await.0,
        StatusCode::OK
    );
    let (status, body) = json(&admin_url(&proxy, "/admin/nothing")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].is_string());
}

#[tokio::test]
async fn readiness_waits_for_the_first_health_checks() {
    let a = Mock::start("a", &[]);
    a.set_behaviour(r#"{"latency": "4s"}"#).await;
    let proxy = proxy(
        &[&a],
        "\n[cluster.api.health_check]\nkind = \"http\"\ninterval = \"10s\"\ntimeout = \"6s\"\n",
    );
    let (status, body) = json(&admin_url(&proxy, "/healthz/ready")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body["error"].as_str().is_some_and(|e| e.contains("api")));
    let ready = eventually(WITHIN, || async {
        get(&admin_url(&proxy, "/healthz/ready")).await.0 == StatusCode::OK
    })
    .await;
    assert!(ready, "never ready after the first health checks");
}

#[tokio::test]
async fn a_drained_endpoint_gets_no_requests_until_undrained() {
    let (a, b) = (Mock::start("a", &[]), Mock::start("b", &[]));
    let proxy = proxy(&[&a, &b], "");
    let path = format!("/admin/clusters/api/endpoints/{}/drain", b.addr);
    let (status, body) = act(&proxy, Method::POST, &path, "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let before = b.requests().await;
    let statuses = burst(&proxy, 20).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    assert_eq!(
        b.requests().await,
        before,
        "the drained endpoint got traffic"
    );
    let path = format!("/admin/clusters/api/endpoints/{}/undrain", b.addr);
    assert_eq!(act(&proxy, Method::POST, &path, "").await.0, StatusCode::OK);
    burst(&proxy, 20).await;
    assert!(
        b.requests().await > before,
        "the undrained endpoint got nothing"
    );
}

#[tokio::test]
async fn forcing_the_cluster_breaker_open_fails_requests_fast_until_reset() {
    let a = Mock::start("a", &[]);
    let proxy = proxy(&[&a], "\n[cluster.api.circuit_breaker]\n");
    let (status, body) = act(
        &proxy,
        Method::POST,
        "/admin/clusters/api/breaker",
        r#"{"action": "force_open"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let before = a.requests().await;
    let (status, headers, _) = get(&proxy.url("/work")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers["x-blastwall-error"], "breaker_open");
    assert_eq!(a.requests().await, before);
    let (_, events) = json(&admin_url(&proxy, "/admin/events")).await;
    assert!(events.to_string().contains("breaker_opened"), "{events}");
    act(
        &proxy,
        Method::POST,
        "/admin/clusters/api/breaker",
        r#"{"action": "reset"}"#,
    )
    .await;
    assert_eq!(get(&proxy.url("/work")).await.0, StatusCode::OK);
}

#[tokio::test]
async fn forcing_an_endpoint_breaker_open_keeps_traffic_off_that_endpoint() {
    let (a, b) = (Mock::start("a", &[]), Mock::start("b", &[]));
    let proxy = proxy(&[&a, &b], "\n[cluster.api.endpoint_circuit_breaker]\n");
    let path = format!("/admin/clusters/api/endpoints/{}/breaker", a.addr);
    let (status, body) = act(&proxy, Method::POST, &path, r#"{"action": "force_open"}"#).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let before = a.requests().await;
    let statuses = burst(&proxy, 10).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    assert_eq!(a.requests().await, before);
}

#[tokio::test]
async fn the_kill_switch_flipped_through_the_api_answers_503_at_once() {
    let a = Mock::start("a", &[]);
    let proxy = proxy(&[&a], "");
    let (_, routes) = json(&admin_url(&proxy, "/admin/routes")).await;
    let route = routes["routes"][0]["name"]
        .as_str()
        .expect("a route name")
        .to_owned();
    let path = format!("/admin/routes/{route}/kill_switch");
    let (status, body) = act(&proxy, Method::POST, &path, r#"{"on": true}"#).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, headers, _) = get(&proxy.url("/work")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers["x-blastwall-error"], "kill_switch");
    act(&proxy, Method::POST, &path, r#"{"on": false}"#).await;
    assert_eq!(get(&proxy.url("/work")).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_reload_through_the_api_is_the_same_as_sighup() {
    let a = Mock::start("a", &[]);
    let mut proxy = proxy(&[&a], "");
    let (status, body) = act(&proxy, Method::POST, "/admin/reload", "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["outcome"], "unchanged");
    let text = std::fs::read_to_string(&proxy.config_path).expect("config");
    proxy.replace_config(&text.replace("[[route]]", "[[route]]\nname = \"renamed\""));
    let (status, body) = act(&proxy, Method::POST, "/admin/reload", "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["outcome"] == "applied" || body["outcome"] == "unchanged",
        "{body}"
    );
    proxy.process.wait_for_line("config reloaded");
    proxy.replace_config(&text.replace("[[route]]", "[[route]]\nnonsense = 1"));
    let (status, body) = act(&proxy, Method::POST, "/admin/reload", "").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("nonsense"))
    );
}

#[tokio::test]
async fn mutations_without_the_token_are_refused_and_change_nothing() {
    let a = Mock::start("a", &[]);
    let proxy = proxy(&[&a], "\n[cluster.api.circuit_breaker]\n");
    let url = admin_url(&proxy, "/admin/clusters/api/breaker");
    let body = r#"{"action": "force_open"}"#;
    let json = ("content-type", "application/json");
    let (status, _, answer) = send(Method::POST, &url, body, &[json]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    let (status, _, _) = send(
        Method::POST,
        &url,
        body,
        &[("authorization", "Bearer wrong"), json],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(get(&proxy.url("/work")).await.0, StatusCode::OK);
    let (status, _, _) = send(
        Method::POST,
        &admin_url(&proxy, "/admin/reload"),
        "",
        &[json],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[test]
fn an_admin_listener_off_loopback_without_a_token_is_refused_at_start() {
    let folder = tempfile::tempdir().expect("a folder");
    let path = folder.path().join("blastwall.toml");
    let config = single_cluster_config(
        "",
        &["{ address = \"127.0.0.1:9\" }".to_owned()],
        "\n[admin]\nlisten = \"0.0.0.0:0\"\n",
    );
    std::fs::write(&path, config).expect("written");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_blastwall"))
        .args(["run", "-c", path.to_str().expect("utf-8"), "--no-watch"])
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("has no token"), "{stderr}");
    assert!(stderr.contains("blastwall.toml:"), "not located: {stderr}");
}
