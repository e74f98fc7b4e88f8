//! The admin API in process: routing, auth, JSON errors, the OpenAPI document, the config
//! view and `[admin]` validation.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

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
use crate::eventually::eventually;
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

pub(super) async fn call(
    server: &AdminServer,
    method: Method,
    path: &str,
    body: &str,
    token: Option<&str>,
) -> (StatusCode, Value) {
    let mut request = Request::builder()
        .method(method.clone())
        .uri(format!("http://{}{path}", server.local_addr()));
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    if method != Method::GET {
        request = request.header("content-type", "application/json");
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

#[test]
fn the_config_view_redacts_every_header_value_the_config_sets() {
    let text = r#"
[proxy]
decision_headers = "always"

[[route]]
cluster = "api"
match.headers = { "x-api-key" = "k-secret" }
request_headers = { add = { "authorization" = "Bearer r-secret", "x-n" = 12345 }, remove = ["x-debug"] }
response_headers.add."set-cookie" = "c-secret"
fallback = { static = { headers = { "x-f" = "f-secret" } } }
"#;
    let json = views::config_json(text).expect("the config converts");
    for secret in ["k-secret", "r-secret", "c-secret", "f-secret", "12345"] {
        assert!(!json.to_string().contains(secret), "{secret} in {json}");
    }
    let route = &json["route"][0];
    assert_eq!(
        route["request_headers"]["add"]["authorization"],
        "<redacted>"
    );
    assert_eq!(route["request_headers"]["add"]["x-n"], "<redacted>");
    assert_eq!(route["request_headers"]["remove"][0], "x-debug");
    assert_eq!(route["response_headers"]["add"]["set-cookie"], "<redacted>");
    assert_eq!(route["match"]["headers"]["x-api-key"], "<redacted>");
    assert_eq!(json["proxy"]["decision_headers"], "always");
    assert_eq!(route["cluster"], "api");
}

pub(super) async fn raw_call(server: &AdminServer, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .expect("connects");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("request sent");
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .await
        .expect("answer read");
    answer
}

#[tokio::test]
async fn a_forged_cross_site_mutation_is_refused_before_it_acts() {
    let server = server("").await;
    let port = server.local_addr().port();
    let body = r#"{"on": true}"#;
    let post = |host: &str, headers: &str| {
        format!(
            "POST /admin/routes/everything/kill_switch HTTP/1.1\r\nHost: {host}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let own = format!("127.0.0.1:{port}");
    let answer = raw_call(
        &server,
        &post(
            &own,
            "Origin: http://evil.example\r\nContent-Type: text/plain\r\n",
        ),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(answer.contains("\"error\""), "{answer}");
    let rebound = format!("evil.example:{port}");
    let answer = raw_call(
        &server,
        &post(&rebound, "Content-Type: application/json\r\n"),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    let answer = raw_call(&server, &post(&own, "Content-Type: text/plain\r\n")).await;
    assert!(answer.starts_with("HTTP/1.1 415"), "{answer}");
    let (_, routes) = call(&server, Method::GET, "/admin/routes", "", None).await;
    assert_eq!(routes["routes"][0]["kill_switch"], false, "{routes}");
}

#[tokio::test]
async fn a_half_sent_request_is_closed_after_the_header_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = server("[admin]\nheader_read_timeout = \"1s\"").await;
    let mut stream = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .expect("connects");
    stream
        .write_all(b"GET /admin/status HTTP/1.1\r\nHost: a\r\n")
        .await
        .expect("sent");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(3),
        stream.read_to_end(&mut answer),
    )
    .await;
    assert!(read.is_ok(), "still open past the header timeout");
}

#[tokio::test]
async fn connections_past_the_cap_are_closed_at_once_and_the_others_served() {
    use tokio::io::AsyncReadExt;
    let server = server("[admin]\nmax_connections = 2").await;
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(
            tokio::net::TcpStream::connect(server.local_addr())
                .await
                .expect("connects"),
        );
    }
    // Both slots taken: the next one is closed without an answer.
    let mut over = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .expect("connects");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        over.read_to_end(&mut answer),
    )
    .await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "not closed at once");
    drop(held);
    let answered = eventually_ok(&server).await;
    assert!(
        answered,
        "a slot freed by a closed connection was not reused"
    );
}

#[tokio::test]
async fn event_streams_take_at_most_a_quarter_of_the_connections_so_health_checks_still_answer() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = server("[admin]\nmax_connections = 8").await;
    let open_stream = || async {
        let mut stream = tokio::net::TcpStream::connect(server.local_addr())
            .await
            .expect("connects");
        stream
            .write_all(b"GET /admin/stream HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("written");
        let mut head = vec![0u8; 512];
        let read = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut head))
            .await
            .expect("an answer in time")
            .expect("read");
        (stream, String::from_utf8_lossy(&head[..read]).into_owned())
    };
    // A quarter of 8: two streams, each of which would otherwise hold its connection forever.
    let (first, head) = open_stream().await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let (second, head) = open_stream().await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let (_third, head) = open_stream().await;
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    assert!(head.to_ascii_lowercase().contains("retry-after"), "{head}");
    let (status, _) = call(&server, Method::GET, "/healthz/live", "", None).await;
    assert_eq!(status, StatusCode::OK);
    // A stream's end gives its place back.
    drop((first, second));
    let reopened = eventually(Duration::from_secs(2), || async {
        let (_stream, head) = open_stream().await;
        head.starts_with("HTTP/1.1 200")
    })
    .await;
    assert!(reopened, "a closed stream's place was not given back");
}

#[test]
fn the_stream_cap_is_a_quarter_of_the_connection_cap_and_at_least_one() {
    assert_eq!(super::stream::cap(64), 16);
    assert_eq!(super::stream::cap(3), 1);
    assert_eq!(super::stream::cap(1), 1);
}

/// Polls `GET /healthz/live` until it answers (a closed connection frees its slot a moment
/// after the close).
async fn eventually_ok(server: &AdminServer) -> bool {
    eventually(Duration::from_secs(2), || async {
        let request = Request::get(format!("http://{}/healthz/live", server.local_addr()))
            .body(Full::new(Bytes::new()))
            .expect("a request");
        let client = Client::builder(TokioExecutor::new()).build_http();
        matches!(client.request(request).await, Ok(response) if response.status() == StatusCode::OK)
    })
    .await
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
