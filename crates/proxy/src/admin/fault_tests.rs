//! `/admin/faults` in process: rules made, listed, deleted; the config's checks and words;
//! the token; the cap and the `ttl` cap; the kill switch; events and metrics; reloads.

use std::path::Path;
use std::sync::Arc;

use http::{Method, StatusCode};
use serde_json::Value;
use tokio::net::TcpListener;

use super::AdminServer;
use super::tests::call;
use crate::config::Config;
use crate::reload::Runtime;

const TOKEN: Option<&str> = Some("s3cret");

fn config(routes: &str) -> String {
    format!(
        r#"
[admin]
listen = "127.0.0.1:0"
token = "s3cret"
max_faults = 2
fault_max_ttl = "10m"

[[listener]]
name = "public"
listen = "127.0.0.1:0"

{routes}

[cluster.api]
endpoints = [{{ address = "127.0.0.1:9" }}]
"#
    )
}

const ROUTES: &str = r#"
[[route]]
name = "shop"
cluster = "api"
match = { path_prefix = "/shop" }

[[route.fault]]
abort = { status = 500 }
percent = 1

[[route]]
name = "cart"
cluster = "api"
"#;

async fn server() -> AdminServer {
    let config = Config::parse(&config(ROUTES), Path::new("test.toml")).expect("a valid config");
    let runtime = Arc::new(Runtime::new(config));
    let socket = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    AdminServer::start(socket, runtime, Vec::new()).expect("started")
}

async fn create(server: &AdminServer, body: &str) -> (StatusCode, Value) {
    call(server, Method::POST, "/admin/faults", body, TOKEN).await
}

fn error(body: &Value) -> &str {
    body["error"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_rule_made_at_run_time_is_stored_listed_shown_and_deleted() {
    let server = server().await;
    let (status, made) = create(&server, r#"{"route": "shop", "delay": "2s", "ttl": "30s"}"#).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    assert_eq!(made["id"], "f1");
    assert_eq!(made["target"]["route"], "shop");
    assert_eq!(made["action"], "delay 2s");
    assert_eq!(made["active"], true);
    assert!(
        made["expires_at"]
            .as_str()
            .is_some_and(|at| at.ends_with('Z')),
        "{made}"
    );
    let left = made["expires_in_ms"].as_u64().unwrap_or_default();
    assert!((29_000..=30_000).contains(&left), "{made}");

    let (status, list) = call(&server, Method::GET, "/admin/faults", "", None).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = list["faults"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|rule| rule["id"].as_str())
        .collect();
    assert_eq!(ids, ["f1", "config:shop:1"], "{list}");
    assert_eq!(list["faults"][1]["origin"], "config");
    assert_eq!(list["faults"][1]["percent"], 1.0);

    let (status, shown) = call(&server, Method::GET, "/admin/faults/f1", "", None).await;
    assert_eq!((status, &shown["id"]), (StatusCode::OK, &Value::from("f1")));
    let (status, _) = call(&server, Method::DELETE, "/admin/faults/f1", "", TOKEN).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = call(&server, Method::GET, "/admin/faults/f1", "", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = call(
        &server,
        Method::DELETE,
        "/admin/faults/config:shop:1",
        "",
        TOKEN,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(error(&body).contains("config file"), "{body}");
}

#[tokio::test]
async fn a_cluster_target_is_shown_and_unknown_targets_are_404() {
    let server = server().await;
    let (status, made) = create(
        &server,
        r#"{"cluster": "api", "abort": {"status": 503}, "ttl": "1m"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    assert_eq!(made["target"]["cluster"], "api");
    let (status, made) = create(
        &server,
        r#"{"route": "cart", "delay": "1.5s", "percent": 12.5, "first": 3, "after": "5s", "ttl": "1m"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    assert_eq!(made["percent"], 12.5);
    assert_eq!(made["first"], 3);
    assert_eq!(made["action"], "delay 1.5s");
    assert_eq!(made["active"], false, "it starts in 5s");
    let (status, body) = create(&server, r#"{"route": "nope", "delay": "1s", "ttl": "1m"}"#).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(error(&body).contains("no route named \"nope\""), "{body}");
    let (status, _) = create(
        &server,
        r#"{"cluster": "nope", "delay": "1s", "ttl": "1m"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_action_is_refused_with_the_very_words_the_config_file_gets() {
    let server = server().await;
    let cases = [
        (
            "\"percent\": 150, \"delay\": \"1s\"",
            "percent = 150\ndelay = \"1s\"",
        ),
        (
            "\"delay\": \"1s\", \"abort\": {\"status\": 500}",
            "delay = \"1s\"\nabort = { status = 500 }",
        ),
        ("\"abort\": {\"status\": 200}", "abort = { status = 200 }"),
        ("\"percent\": 50", "percent = 50"),
        (
            "\"delay\": \"1s\", \"first\": 0",
            "delay = \"1s\"\nfirst = 0",
        ),
        (
            "\"delay\": \"1s\", \"header\": \"x-chaos\"",
            "delay = \"1s\"\nheader = \"x-chaos\"",
        ),
        ("\"down\": true", "down = true"),
        (
            "\"down\": true, \"endpoint\": \"127.0.0.1:10\"",
            "down = true\nendpoint = \"127.0.0.1:10\"",
        ),
        (
            "\"delay\": \"1s\", \"endpoint\": \"random\", \"at\": \"request\"",
            "delay = \"1s\"\nendpoint = \"random\"\nat = \"request\"",
        ),
        (
            "\"delay\": \"1s\", \"at\": \"sometimes\"",
            "delay = \"1s\"\nat = \"sometimes\"",
        ),
    ];
    for (json, toml) in cases {
        let (status, body) = create(
            &server,
            &format!(r#"{{"route": "cart", "ttl": "1m", {json}}}"#),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{json}: {body}");
        let file = config(&format!(
            "[[route]]\nname = \"cart\"\ncluster = \"api\"\n[[route.fault]]\n{toml}\n"
        ));
        let errors = Config::parse(&file, Path::new("t.toml")).expect_err("refused");
        let expected = errors.0[0].message.replace("route \"cart\": ", "");
        assert_eq!(error(&body), expected, "{json}");
    }
    let (status, body) = create(
        &server,
        r#"{"route": "cart", "ttl": "1m", "delay": "1s", "precent": 5}"#,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error(&body).contains("unknown field `precent`"), "{body}");
    let (status, body) = create(&server, "not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error(&body).contains("must be JSON"), "{body}");
}

#[tokio::test]
async fn a_rule_needs_a_ttl_within_the_cap_and_a_target() {
    let server = server().await;
    let (status, body) = create(&server, r#"{"route": "shop", "delay": "1s"}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error(&body).contains("needs a `ttl`"), "{body}");
    let (status, body) = create(&server, r#"{"route": "shop", "delay": "1s", "ttl": "2h"}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error(&body).contains("fault_max_ttl, 600s"), "{body}");
    let (status, body) = create(&server, r#"{"route": "shop", "delay": "1s", "ttl": "30"}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error(&body).contains("`ttl`"), "{body}");
    let (status, body) = create(&server, r#"{"delay": "1s", "ttl": "1m"}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error(&body).contains("needs a target"), "{body}");
    let (status, body) = create(
        &server,
        r#"{"route": "shop", "cluster": "api", "delay": "1s", "ttl": "1m"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error(&body).contains("not both"), "{body}");
    let (status, body) = create(
        &server,
        r#"{"route": "shop", "delay": "1s", "ttl": "1m", "until": "2030-01-01T00:00:00Z"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error(&body).contains("`after` and `ttl`"), "{body}");
}

#[tokio::test]
async fn past_max_faults_a_new_rule_is_a_409_naming_the_cap() {
    let server = server().await;
    for _ in 0..2 {
        let (status, _) = create(&server, r#"{"route": "shop", "delay": "1s", "ttl": "1m"}"#).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (status, body) = create(&server, r#"{"route": "shop", "delay": "1s", "ttl": "1m"}"#).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(error(&body).contains("max_faults"), "{body}");
}

#[tokio::test]
async fn mutations_need_the_token_and_reads_do_not() {
    let server = server().await;
    let body = r#"{"route": "shop", "delay": "1s", "ttl": "1m"}"#;
    let (status, _) = call(&server, Method::POST, "/admin/faults", body, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = call(&server, Method::POST, "/admin/faults", body, Some("nope")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for (method, path) in [
        (Method::DELETE, "/admin/faults"),
        (Method::DELETE, "/admin/faults/f1"),
        (Method::POST, "/admin/faults/resume"),
    ] {
        let (status, _) = call(&server, method.clone(), path, "", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
    }
    let (status, _) = call(&server, Method::GET, "/admin/faults", "", None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn the_kill_switch_clears_every_rule_silences_the_config_and_shows_in_get_events_and_metrics()
{
    let server = server().await;
    create(&server, r#"{"route": "shop", "delay": "1s", "ttl": "1m"}"#).await;
    let (_, metrics) = (
        StatusCode::OK,
        crate::metrics::render(&server.state.runtime),
    );
    assert!(
        metrics.contains("blastwall_fault_rules_active 1\n"),
        "{metrics}"
    );
    assert!(metrics.contains("blastwall_fault_rule_events_total{event=\"created\"} 1\n"));

    let (status, body) = call(&server, Method::DELETE, "/admin/faults", "", TOKEN).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["removed"].as_u64(), &body["silenced"]),
        (Some(1), &Value::Bool(true))
    );
    let (_, list) = call(&server, Method::GET, "/admin/faults", "", None).await;
    assert_eq!(list["silenced"], true);
    assert_eq!(list["faults"][0]["id"], "config:shop:1");
    assert_eq!(list["faults"][0]["active"], false);

    let (_, events) = call(&server, Method::GET, "/admin/events", "", None).await;
    let kinds: Vec<&str> = events["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|event| event["kind"].as_str())
        .collect();
    assert!(
        kinds.contains(&"fault_created") && kinds.contains(&"faults_cleared"),
        "{kinds:?}"
    );

    let (status, _) = call(&server, Method::POST, "/admin/faults/resume", "", TOKEN).await;
    assert_eq!(status, StatusCode::OK);
    let (_, list) = call(&server, Method::GET, "/admin/faults", "", None).await;
    assert_eq!(
        (&list["silenced"], &list["faults"][0]["active"]),
        (&Value::Bool(false), &Value::Bool(true))
    );
}

#[tokio::test]
async fn runtime_rules_survive_a_reload_unless_it_takes_their_target_away() {
    let server = server().await;
    create(&server, r#"{"route": "shop", "delay": "1s", "ttl": "1m"}"#).await;
    create(&server, r#"{"route": "cart", "delay": "1s", "ttl": "1m"}"#).await;
    let runtime = &server.state.runtime;
    let edited = ROUTES.replace("percent = 1", "percent = 2");
    runtime.replace(Config::parse(&config(&edited), Path::new("t.toml")).expect("valid"));
    assert_eq!(runtime.snapshot().faults.len(), 2, "both kept");
    let without_cart = "[[route]]\nname = \"shop\"\ncluster = \"api\"\n";
    runtime.replace(Config::parse(&config(without_cart), Path::new("t.toml")).expect("valid"));
    let (_, list) = call(&server, Method::GET, "/admin/faults", "", None).await;
    let ids: Vec<&str> = list["faults"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|rule| rule["id"].as_str())
        .collect();
    assert_eq!(ids, ["f1"], "{list}");
    let (_, events) = call(&server, Method::GET, "/admin/events", "", None).await;
    assert!(events.to_string().contains("fault_orphaned"), "{events}");
}

#[tokio::test]
async fn fault_mutations_pass_the_same_guard_as_the_others() {
    let server = server().await;
    let addr = server.local_addr();
    let body = r#"{"route": "shop", "delay": "1s", "ttl": "1m"}"#;
    let forged = format!(
        "POST /admin/faults HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://evil.example\r\nAuthorization: Bearer s3cret\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let answer = super::tests::raw_call(&server, &forged).await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    let untyped = format!(
        "DELETE /admin/faults HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer s3cret\r\nConnection: close\r\n\r\n"
    );
    let answer = super::tests::raw_call(&server, &untyped).await;
    assert!(answer.starts_with("HTTP/1.1 415"), "{answer}");
    assert!(server.state.runtime.snapshot().faults.is_empty());
}
