//! When its cluster cannot answer, a route answers from its fallback: the last good response
//! (stale, with its Age), an alternate cluster, or a static response; and a kill switch,
//! flipped by reload or at run time, sends every request there at once.

mod support;

use std::path::Path;
use std::time::Duration;

use blastwall_proxy::Config;
use blastwall_proxy::{ReloadOutcome, ReloadTrigger};
use http::{Method, StatusCode};
use support::{Mock, Proxy, eventually, get, send};

/// One listener; route `shop` to cluster `api` (holding `primary`) with `fallback` as its
/// `[route.fallback]` keys; and a cluster `backup` holding `backup` when given.
fn config(primary: &Mock, backup: Option<&Mock>, fallback: &str) -> String {
    let backup = backup.map_or_else(String::new, |mock| {
        format!(
            "\n[cluster.backup]\nendpoints = [{{ address = \"{}\" }}]\n",
            mock.addr
        )
    });
    format!(
        r#"
[[listener]]
name = "public"
listen = "127.0.0.1:0"

[[route]]
name = "shop"
cluster = "api"
[route.fallback]
{fallback}

[cluster.api]
request_timeout = "2s"
endpoints = [{{ address = "{}" }}]
{backup}
"#,
        primary.addr
    )
}

const STATIC: &str = r#"static = { status = 503, headers = { "content-type" = "application/json" }, body = '{"degraded":true}' }"#;

#[tokio::test]
async fn the_static_fallback_answers_with_its_header_when_the_only_endpoint_is_killed() {
    let upstream = Mock::start("a", &[]);
    let proxy = Proxy::start(&config(&upstream, None, STATIC));
    let (status, headers, _) = get(&proxy.url("/")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!headers.contains_key("x-blastwall-fallback"));
    drop(upstream);
    let (status, headers, body) = get(&proxy.url("/")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(headers["x-blastwall-fallback"], "static");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(body, r#"{"degraded":true}"#);
    assert!(headers.contains_key("x-request-id"));
}

#[tokio::test]
async fn a_kept_response_is_served_stale_with_its_age_once_the_upstream_fails() {
    let upstream = Mock::start("a", &[]);
    upstream.set_behaviour(r#"{"body":"catalog v1"}"#).await;
    let proxy = Proxy::start(&config(
        &upstream,
        None,
        r#"stale_if_error = { max_age = "10m" }"#,
    ));
    let (status, _, body) = get(&proxy.url("/catalog?page=1")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "catalog v1"));

    // The upstream answers, but with an error: the last good answer is served instead.
    upstream.set_behaviour(r#"{"status":503}"#).await;
    let (status, headers, body) = get(&proxy.url("/catalog?page=1")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "catalog v1"));
    assert_eq!(headers["x-blastwall-fallback"], "stale");
    let age: u64 = headers["age"]
        .to_str()
        .unwrap()
        .parse()
        .expect("Age in seconds");
    assert!(age < 600, "age {age}");
    assert_eq!(
        headers["x-mock-name"], "a",
        "the upstream's own headers are kept"
    );

    // A URL never seen has nothing to fall back on: the upstream's error goes through.
    let (status, headers, _) = get(&proxy.url("/catalog?page=2")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(!headers.contains_key("x-blastwall-fallback"));

    // The upstream gone altogether: still the last good answer.
    upstream.set_behaviour(r#"{"mode":"reset"}"#).await;
    let (status, headers, body) = get(&proxy.url("/catalog?page=1")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "catalog v1"));
    assert_eq!(headers["x-blastwall-fallback"], "stale");
}

#[tokio::test]
async fn the_alternate_cluster_takes_over_when_the_primary_is_down() {
    let (primary, backup) = (Mock::start("primary", &[]), Mock::start("backup", &[]));
    let fallback = format!("cluster = \"backup\"\n{STATIC}");
    let proxy = Proxy::start(&config(&primary, Some(&backup), &fallback));
    let (_, headers, _) = get(&proxy.url("/orders")).await;
    assert_eq!(headers["x-mock-name"], "primary");
    drop(primary);
    for _ in 0..3 {
        let (status, headers, _) = get(&proxy.url("/orders")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["x-mock-name"], "backup");
        assert_eq!(headers["x-blastwall-fallback"], "cluster");
    }
    // A request whose body was spent on the failed attempt cannot be sent again: the next
    // fallback in order answers.
    let (status, headers, _) = send(Method::POST, &proxy.url("/orders"), "order", &[]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers["x-blastwall-fallback"], "static");
    assert_eq!(backup.requests().await, 3);
}

#[tokio::test]
async fn a_kill_switch_turned_on_by_reload_answers_without_touching_the_cluster() {
    let upstream = Mock::start("a", &[]);
    let proxy = Proxy::start(&config(&upstream, None, STATIC));
    assert_eq!(get(&proxy.url("/")).await.0, StatusCode::OK);
    let seen = upstream.requests().await;

    let killed = format!("kill_switch = true\n{STATIC}");
    proxy.replace_config(&config(&upstream, None, &killed));
    proxy.process.signal("HUP");
    let switched = eventually(Duration::from_secs(20), || async {
        get(&proxy.url("/")).await.1.get("x-blastwall-fallback") == Some(&"static".parse().unwrap())
    })
    .await;
    assert!(switched, "the kill switch never took effect");
    let requests_while_killed = upstream.requests().await;
    for _ in 0..5 {
        let (status, headers, _) = get(&proxy.url("/")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(headers["x-blastwall-fallback"], "static");
    }
    assert_eq!(upstream.requests().await, requests_while_killed);
    assert!(
        requests_while_killed - seen <= 20,
        "bounded by the polls before the switch"
    );

    // Without a fallback, a killed route answers 503 kill_switch.
    proxy.replace_config(&config(&upstream, None, "kill_switch = true"));
    proxy.process.signal("HUP");
    let bare = eventually(Duration::from_secs(20), || async {
        get(&proxy.url("/")).await.1.get("x-blastwall-error")
            == Some(&"kill_switch".parse().unwrap())
    })
    .await;
    assert!(bare, "no 503 kill_switch without a fallback");
}

/// A proxy in this process, for its run-time API.
async fn in_process(text: &str) -> (blastwall_proxy::Proxy, String) {
    let config = Config::parse(text, Path::new("blastwall.toml")).expect("a valid config");
    let proxy = blastwall_proxy::Proxy::bind(config)
        .await
        .expect("the listener binds");
    let url = format!("http://{}/", proxy.local_addrs()[0].1);
    (proxy, url)
}

async fn reload(proxy: &mut blastwall_proxy::Proxy, text: &str) {
    let config = Config::parse(text, Path::new("blastwall.toml"));
    let outcome = proxy.apply(config, ReloadTrigger::Api).await;
    assert!(matches!(outcome, ReloadOutcome::Applied(_)), "{outcome:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_switch_flipped_at_run_time_survives_reloads_that_keep_its_key() {
    let upstream = Mock::start("a", &[]);
    let text = config(&upstream, None, STATIC);
    let (mut proxy, url) = in_process(&text).await;
    assert_eq!(get(&url).await.0, StatusCode::OK);
    assert!(proxy.set_kill_switch("nope", true).is_err());

    proxy
        .set_kill_switch("shop", true)
        .expect("the route exists");
    let seen = upstream.requests().await;
    let (status, headers, _) = get(&url).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers["x-blastwall-fallback"], "static");
    assert_eq!(
        upstream.requests().await,
        seen,
        "the cluster is not touched"
    );

    // A reload that does not change the key keeps the operator's switch.
    reload(
        &mut proxy,
        &text.replace("request_timeout = \"2s\"", "request_timeout = \"3s\""),
    )
    .await;
    assert_eq!(get(&url).await.1["x-blastwall-fallback"], "static");

    // One that changes the key sets the switch to it.
    let on = config(&upstream, None, &format!("kill_switch = true\n{STATIC}"));
    reload(&mut proxy, &on).await;
    proxy
        .set_kill_switch("shop", false)
        .expect("the route exists");
    assert_eq!(get(&url).await.0, StatusCode::OK, "turned off at run time");
    reload(&mut proxy, &text).await;
    assert_eq!(get(&url).await.0, StatusCode::OK);
    reload(&mut proxy, &on).await;
    assert_eq!(get(&url).await.0, StatusCode::SERVICE_UNAVAILABLE);
    let metrics = proxy.metrics_text();
    assert!(
        metrics
            .lines()
            .any(|line| line == r#"blastwall_fallbacks_total{route="shop",kind="static"} 3"#),
        "{metrics}"
    );
    drop(proxy);
}

/// `decision_headers = "never"` hides the fallback that answered, and an upstream's word for
/// one too: the released proxy never let an `x-blastwall-fallback` through there.
#[tokio::test]
async fn a_proxy_showing_no_decisions_passes_on_no_fallback_header_of_its_upstream() {
    // The upstream is a proxy of its own that answers from its fallback, and says so.
    let dead = Mock::start("a", &[]);
    let inner = Proxy::start(&config(
        &dead,
        None,
        "kill_switch = true\nstatic = { status = 200, body = 'kept' }",
    ));
    let (status, headers, body) = get(&inner.url("/")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "kept"));
    assert_eq!(headers["x-blastwall-fallback"], "static");

    // A proxy in front of it, showing no decisions.
    let in_front =
        config(&dead, None, STATIC).replace(&dead.addr.to_string(), &inner.addr().to_string());
    let outer = Proxy::start(&format!(
        "[proxy]\ndecision_headers = \"never\"\n{in_front}"
    ));
    let (status, headers, body) = get(&outer.url("/")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "kept"));
    assert!(
        !headers.contains_key("x-blastwall-fallback"),
        "a decision shown though decision_headers = \"never\": {headers:?}"
    );
}
