//! The admin API in process: routing, auth, JSON errors, the OpenAPI document, the config
//! view and `[admin]` validation.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::net::TcpListener;

use super::router::ROUTES;
use super::{AdminServer, DASHBOARD, OPENAPI, views};
use crate::config::Config;
use crate::reload::Runtime;

fn config(admin: &str) -> String {
    format!(
        r#"
[[listener]]
name = "public"
listen = "127.0.0.1:0"

[[route]]
name = "everything"
cluster = "api"

[cluster.api]
endpoints = [{{ address = "127.0.0.1:9" }}]

[cluster.api.circuit_breaker]

{admin}
"#
    )
}

async fn server(admin: &str) -> AdminServer {
    let config = Config::parse(&config(admin), Path::new("test.toml")).expect("a valid config");
    let runtime = Arc::new(Runtime::new(config));
    let socket = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    AdminServer::start(socket, runtime, Vec::new()).expect("started")
}

async fn call(
    server: &AdminServer,
    method: Method,
    path: &str,
    body: &str,
    token: Option<&str>,
) -> (StatusCode, Value) {
    let mut request = Request::builder()
        .method(method)
        .uri(format!("http://{}{path}", server.local_addr()));
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("a request");
    let client = Client::builder(TokioExecutor::new()).build_http();
    let response = client.request(request).await.expect("an answer");
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (status, json)
}

#[test]
fn the_openapi_document_describes_every_route_the_router_serves() {
    let document: Value = serde_json::from_str(OPENAPI).expect("the document is JSON");
    assert_eq!(document["openapi"].as_str().map(|v| &v[..2]), Some("3."));
    for (method, template, _) in ROUTES {
        let operation = &document["paths"][template][method.as_str().to_lowercase()];
        assert!(
            operation.is_object(),
            "{method} {template} is missing from openapi.json"
        );
    }
    let described: usize = document["paths"]
        .as_object()
        .expect("paths")
        .values()
        .map(|item| item.as_object().map_or(0, |ops| ops.len()))
        .sum();
    assert_eq!(
        described,
        ROUTES.len(),
        "openapi.json describes a route the router does not serve"
    );
}

#[test]
fn the_dashboard_loads_nothing_from_elsewhere() {
    for external in ["src=\"http", "href=\"http", "@import", "src=\"//"] {
        assert!(
            !DASHBOARD.contains(external),
            "the dashboard refers to {external}"
        );
    }
    assert!(DASHBOARD.contains("/admin/stream"));
}

#[test]
fn the_config_view_redacts_the_admin_token() {
    let text = config("[admin]\ntoken = \"hunter2\"");
    let json = views::config_json(&text).expect("the config converts");
    assert_eq!(json["admin"]["token"], "<redacted>");
    assert!(!json.to_string().contains("hunter2"));
    assert_eq!(
        json["cluster"]["api"]["endpoints"][0]["address"],
        "127.0.0.1:9"
    );
}

#[tokio::test]
async fn unknown_paths_and_wrong_methods_get_json_errors() {
    let server = server("[admin]\nlisten = \"127.0.0.1:0\"").await;
    let (status, body) = call(&server, Method::GET, "/admin/nope", "", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("/admin/nope"))
    );
    let (status, body) = call(&server, Method::POST, "/admin/status", "", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(body["error"].is_string());
}

#[tokio::test]
async fn mutations_need_the_configured_token_and_reads_do_not() {
    let server = server("[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"s3cret\"").await;
    let (status, _) = call(&server, Method::GET, "/admin/clusters", "", None).await;
    assert_eq!(status, StatusCode::OK);
    let path = "/admin/routes/everything/kill_switch";
    let (status, body) = call(&server, Method::POST, path, r#"{"on": true}"#, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _) = call(&server, Method::POST, path, r#"{"on": true}"#, Some("nope")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = call(
        &server,
        Method::POST,
        path,
        r#"{"on": true}"#,
        Some("s3cret"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["kill_switch"], true);
}

#[tokio::test]
async fn bad_bodies_and_unknown_names_are_precise_errors() {
    let server = server("").await;
    let (status, body) = call(
        &server,
        Method::POST,
        "/admin/clusters/api/breaker",
        r#"{"action": "explode"}"#,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("force_open"))
    );
    let (status, _) = call(
        &server,
        Method::POST,
        "/admin/clusters/nope/breaker",
        r#"{"action": "reset"}"#,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(
        &server,
        Method::POST,
        "/admin/clusters/api/endpoints/10.0.0.1:1/drain",
        "",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(
        &server,
        Method::POST,
        "/admin/routes/nope/kill_switch",
        r#"{"on": true}"#,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn forcing_the_cluster_breaker_open_shows_in_clusters_and_events() {
    let server = server("").await;
    let (status, body) = call(
        &server,
        Method::POST,
        "/admin/clusters/api/breaker",
        r#"{"action": "force_open"}"#,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, clusters) = call(&server, Method::GET, "/admin/clusters", "", None).await;
    assert_eq!(clusters["clusters"][0]["breaker"], "forced_open");
    let (_, events) = call(&server, Method::GET, "/admin/events", "", None).await;
    let kinds: Vec<&str> = events["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|event| event["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"breaker_opened"), "{events}");
}

#[tokio::test]
async fn draining_an_endpoint_takes_it_out_of_routing_until_undrained() {
    let server = server("").await;
    let path = "/admin/clusters/api/endpoints/127.0.0.1:9";
    let (status, _) = call(&server, Method::POST, &format!("{path}/drain"), "", None).await;
    assert_eq!(status, StatusCode::OK);
    let (_, clusters) = call(&server, Method::GET, "/admin/clusters", "", None).await;
    assert_eq!(clusters["clusters"][0]["endpoints"][0]["routable"], false);
    assert_eq!(clusters["clusters"][0]["endpoints"][0]["drained"], true);
    let (_, _) = call(&server, Method::POST, &format!("{path}/undrain"), "", None).await;
    let (_, clusters) = call(&server, Method::GET, "/admin/clusters", "", None).await;
    assert_eq!(clusters["clusters"][0]["endpoints"][0]["routable"], true);
}

#[tokio::test]
async fn readiness_fails_once_draining() {
    let server = server("").await;
    let (status, _) = call(&server, Method::GET, "/healthz/ready", "", None).await;
    assert_eq!(status, StatusCode::OK);
    server.set_draining();
    let (status, body) = call(&server, Method::GET, "/healthz/ready", "", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("draining"))
    );
    let (status, _) = call(&server, Method::GET, "/healthz/live", "", None).await;
    assert_eq!(status, StatusCode::OK);
}

fn errors_of(admin: &str) -> String {
    match Config::parse(&config(admin), Path::new("test.toml")) {
        Ok(_) => String::new(),
        Err(errors) => errors.to_string(),
    }
}

#[test]
fn a_non_loopback_admin_listener_without_a_token_is_refused_at_its_place() {
    let errors = errors_of("[admin]\nlisten = \"0.0.0.0:9901\"");
    assert!(errors.contains("has no token"), "{errors}");
    assert!(errors.contains("test.toml:16:10"), "{errors}");
    assert_eq!(
        errors_of("[admin]\nlisten = \"0.0.0.0:9901\"\ntoken = \"t\""),
        ""
    );
    assert_eq!(errors_of("[admin]\nlisten = \"off\""), "");
}

#[test]
fn admin_token_mistakes_are_reported() {
    assert!(errors_of("[admin]\ntoken = \"a\"\ntoken_env = \"B\"").contains("not both"));
    assert!(
        errors_of("[admin]\ntoken_env = \"BLASTWALL_TEST_SURELY_UNSET\"").contains("is not set")
    );
    assert!(errors_of("[admin]\nlisten = \"nowhere\"").contains("not an address"));
}
