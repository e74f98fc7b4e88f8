//! `/admin/faults` refuses what it would misstate or could not hold: an `after` past the
//! ttl cap (or past the clocks), a delay longer than any drawn, a size past 64 bits, an
//! integer past TOML's; and a view never panics on a date.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{Method, StatusCode};
use serde_json::Value;
use tokio::net::TcpListener;

use super::AdminServer;
use super::faults::rfc3339;
use super::tests::call;
use crate::config::Config;
use crate::reload::Runtime;

const CONFIG: &str = r#"
[admin]
listen = "127.0.0.1:0"
max_faults = 2
fault_max_ttl = "10m"

[[listener]]
name = "public"
listen = "127.0.0.1:0"

[[route]]
name = "shop"
cluster = "api"

[cluster.api]
endpoints = [{ address = "127.0.0.1:9" }]
"#;

async fn server() -> AdminServer {
    let config = Config::parse(CONFIG, Path::new("test.toml")).expect("a valid config");
    let runtime = Arc::new(Runtime::new(config));
    let socket = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    AdminServer::start(socket, runtime, Vec::new()).expect("started")
}

async fn create(server: &AdminServer, body: &str) -> (StatusCode, Value) {
    call(server, Method::POST, "/admin/faults", body, None).await
}

async fn refused(server: &AdminServer, body: &str) -> String {
    let (status, answer) = create(server, body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
    answer["error"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn an_after_past_the_ttl_cap_is_refused_naming_the_cap_and_the_api_goes_on() {
    let server = server().await;
    for after in ["500000000000y", "8000y", "100000h", "11m"] {
        let body = format!(
            r#"{{"route": "shop", "abort": {{"status": 503}}, "ttl": "10s", "after": "{after}"}}"#
        );
        let error = refused(&server, &body).await;
        assert!(
            error.contains("`after`") && error.contains("fault_max_ttl, 600s"),
            "{error}"
        );
    }
    let body = r#"{"route": "shop", "abort": {"status": 503}, "ttl": "10m", "after": "10m"}"#;
    let (status, made) = create(&server, body).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    assert!(made["starts_at"].is_string(), "{made}");
    let (status, listed) = call(&server, Method::GET, "/admin/faults", "", None).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed["runtime_rules"], 1);
}

#[tokio::test]
async fn a_delay_longer_than_any_drawn_is_refused_not_listed() {
    let server = server().await;
    let error = refused(
        &server,
        r#"{"route": "shop", "delay": "5000000h", "ttl": "1m"}"#,
    )
    .await;
    assert!(error.contains("at most 3600s"), "{error}");
    let body = r#"{"route": "shop", "delay": {"min": "1s", "max": "2h"}, "ttl": "1m"}"#;
    let error = refused(&server, body).await;
    assert!(error.contains("at most 3600s"), "{error}");
    let (status, made) = create(&server, r#"{"route": "shop", "delay": "1h", "ttl": "1m"}"#).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
}

#[tokio::test]
async fn a_size_past_64_bits_is_refused_as_too_large() {
    let server = server().await;
    let body =
        r#"{"route": "shop", "close": "after_head", "truncate_after": "99999999EiB", "ttl": "1m"}"#;
    let error = refused(&server, body).await;
    assert!(error.contains("too large: at most 16EiB"), "{error}");
    let error = refused(
        &server,
        r#"{"route": "shop", "throttle": "99999999EiB", "ttl": "1m"}"#,
    )
    .await;
    assert!(error.contains("too large"), "{error}");
}

#[tokio::test]
async fn an_integer_past_tomls_is_refused_as_too_large_not_as_null() {
    let server = server().await;
    let body = r#"{"route": "shop", "delay": "1s", "first": 9223372036854775808, "ttl": "1m"}"#;
    let error = refused(&server, body).await;
    assert!(
        error.contains("`first`") && error.contains("too large"),
        "{error}"
    );
    assert!(!error.contains("null"), "{error}");
    let body = r#"{"route": "shop", "abort": {"status": 18446744073709551615}, "ttl": "1m"}"#;
    let error = refused(&server, body).await;
    assert!(
        error.contains("`abort`: `status`") && error.contains("too large"),
        "{error}"
    );
    let error = refused(
        &server,
        r#"{"route": "shop", "delay": "1s", "first": null, "ttl": "1m"}"#,
    )
    .await;
    assert!(
        error.contains("`first` cannot be null") || error.contains("`first`: cannot be null"),
        "{error}"
    );
}

#[test]
fn a_date_past_year_9999_is_shown_as_null_not_a_panic() {
    let far = UNIX_EPOCH + Duration::from_secs(400 * 365 * 24 * 3600 * 100);
    assert_eq!(rfc3339(far), Value::Null);
    let known = UNIX_EPOCH + Duration::from_secs(86_400);
    assert_eq!(rfc3339(known), "1970-01-02T00:00:00.000Z");
    assert!(rfc3339(SystemTime::now()).is_string());
}
