//! `/admin/faults` rules on endpoints: `endpoint` (named or `"random"`), `at` and `down`,
//! shown as made, and the endpoints they take down marked for the health checks while the
//! rules are in force (several on one endpoint, the kill switch, a reload).

use std::net::SocketAddr;
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

fn config(cluster_extra: &str, route_faults: &str) -> String {
    format!(
        r#"
[admin]
listen = "127.0.0.1:0"
token = "s3cret"

[[listener]]
name = "public"
listen = "127.0.0.1:0"

[[route]]
name = "shop"
cluster = "api"
{route_faults}

[cluster.api]
endpoints = [{{ address = "127.0.0.1:9" }}, {{ address = "127.0.0.1:10" }}]
{cluster_extra}
"#
    )
}

async fn server(text: &str) -> AdminServer {
    let config = Config::parse(text, Path::new("test.toml")).expect("a valid config");
    let runtime = Arc::new(Runtime::new(config));
    let socket = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    AdminServer::start(socket, runtime, Vec::new()).expect("started")
}

async fn create(server: &AdminServer, body: &str) -> Value {
    let (status, made) = call(server, Method::POST, "/admin/faults", body, TOKEN).await;
    assert_eq!(status, StatusCode::CREATED, "{body}: {made}");
    made
}

async fn delete(server: &AdminServer, path: &str) {
    let (status, body) = call(server, Method::DELETE, path, "", TOKEN).await;
    assert!(status.is_success(), "{path}: {status} {body}");
}

/// The endpoints of cluster `api` that a fault marks down, in the snapshot in force.
fn marked(server: &AdminServer) -> Vec<SocketAddr> {
    let snapshot = server.state.runtime.snapshot();
    let endpoints = snapshot.clusters[0].endpoints();
    (endpoints.iter())
        .filter(|endpoint| endpoint.is_down_by_fault())
        .map(|endpoint| endpoint.address())
        .collect()
}

fn address(text: &str) -> SocketAddr {
    text.parse().expect("an address")
}

#[tokio::test]
async fn a_random_endpoint_is_picked_as_the_rule_is_made_shown_and_marked_down_until_deleted() {
    let server = server(&config("", "")).await;
    let made = create(
        &server,
        r#"{"cluster": "api", "endpoint": "random", "down": true, "ttl": "1m"}"#,
    )
    .await;
    let picked = made["endpoint"].as_str().expect("the endpoint picked");
    assert!(["127.0.0.1:9", "127.0.0.1:10"].contains(&picked), "{made}");
    assert_eq!(made["endpoint_random"], true);
    assert_eq!(made["at"], "attempt");
    assert_eq!(made["kind"], "endpoint_down");
    assert_eq!(made["given"]["endpoint"], "random", "shown as given too");
    assert_eq!(marked(&server), [address(picked)]);
    delete(&server, "/admin/faults/f1").await;
    assert!(marked(&server).is_empty());
}

#[tokio::test]
async fn an_endpoint_down_by_two_rules_stays_marked_until_the_last_goes() {
    let server = server(&config("", "")).await;
    let on_cluster = r#"{"cluster": "api", "endpoint": "127.0.0.1:10", "down": true, "ttl": "1m"}"#;
    create(&server, on_cluster).await;
    let on_route = r#"{"route": "shop", "endpoint": "127.0.0.1:10", "down": true, "ttl": "1m"}"#;
    let made = create(&server, on_route).await;
    assert_eq!(made["endpoint_random"], false);
    assert_eq!(marked(&server), [address("127.0.0.1:10")]);
    delete(&server, "/admin/faults/f1").await;
    assert_eq!(marked(&server), [address("127.0.0.1:10")], "f2 holds it");
    delete(&server, "/admin/faults/f2").await;
    assert!(marked(&server).is_empty());
}

#[tokio::test]
async fn an_endpoint_down_for_some_attempts_or_later_is_not_marked_for_the_checks() {
    let server = server(&config("", "")).await;
    let bodies = [
        r#"{"cluster": "api", "endpoint": "127.0.0.1:9", "down": true, "percent": 50, "ttl": "1m"}"#,
        r#"{"cluster": "api", "endpoint": "127.0.0.1:9", "down": true, "first": 3, "ttl": "1m"}"#,
        r#"{"cluster": "api", "endpoint": "127.0.0.1:9", "down": true, "after": "1m", "ttl": "1m"}"#,
        r#"{"cluster": "api", "at": "attempt", "abort": {"status": 503}, "ttl": "1m"}"#,
    ];
    for body in bodies {
        create(&server, body).await;
    }
    assert!(marked(&server).is_empty());
}

#[tokio::test]
async fn the_kill_switch_unmarks_runtime_and_config_downs_and_resume_marks_the_configs_again() {
    let config_down = "[[route.fault]]\nendpoint = \"127.0.0.1:9\"\ndown = true\n";
    let server = server(&config("", config_down)).await;
    assert_eq!(marked(&server), [address("127.0.0.1:9")]);
    create(
        &server,
        r#"{"cluster": "api", "endpoint": "127.0.0.1:10", "down": true, "ttl": "1m"}"#,
    )
    .await;
    assert_eq!(marked(&server).len(), 2);
    delete(&server, "/admin/faults").await;
    assert!(marked(&server).is_empty(), "every fault silenced");
    let (status, _) = call(&server, Method::POST, "/admin/faults/resume", "", TOKEN).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(marked(&server), [address("127.0.0.1:9")]);
}

#[tokio::test]
async fn a_reload_that_rebuilds_the_endpoints_marks_the_new_ones() {
    let server = server(&config("", "")).await;
    create(
        &server,
        r#"{"cluster": "api", "endpoint": "127.0.0.1:10", "down": true, "ttl": "1m"}"#,
    )
    .await;
    let endpoint = |runtime: &Runtime| {
        let endpoints = runtime.snapshot().clusters[0].endpoints();
        (endpoints.iter())
            .find(|endpoint| endpoint.address() == address("127.0.0.1:10"))
            .cloned()
            .expect("the endpoint")
    };
    let before = endpoint(&server.state.runtime);
    let reweighted = config("", "").replace(
        "{ address = \"127.0.0.1:10\" }",
        "{ address = \"127.0.0.1:10\", weight = 3 }",
    );
    let parsed = Config::parse(&reweighted, Path::new("t.toml")).expect("valid");
    server.state.runtime.replace(parsed);
    let after = endpoint(&server.state.runtime);
    assert!(!Arc::ptr_eq(&before, &after), "the endpoint was rebuilt");
    assert_eq!(marked(&server), [address("127.0.0.1:10")]);
}

#[test]
fn the_openapi_document_describes_every_key_a_runtime_rule_takes() {
    let document: Value = serde_json::from_str(super::OPENAPI).expect("the document is JSON");
    let body = &document["paths"]["/admin/faults"]["post"]["requestBody"]["content"]["application/json"]
        ["schema"]["properties"];
    let described: Vec<&str> = (body.as_object().into_iter().flatten())
        .map(|(key, _)| key.as_str())
        .collect();
    let section = schemars::schema_for!(crate::config::file::fault::FaultSection);
    let section = serde_json::to_value(section).expect("a schema is JSON");
    let config_keys = (section["properties"].as_object().into_iter().flatten())
        .map(|(key, _)| key.as_str())
        .filter(|key| !["from", "until"].contains(key));
    for key in config_keys.chain(["route", "cluster", "ttl", "after"]) {
        assert!(
            described.contains(&key),
            "POST /admin/faults does not describe `{key}`"
        );
    }
}
