//! The admin listener against what a hostile web page or a hostile client can do: forged
//! cross-site mutations and DNS rebinding are refused, a flood of half-sent requests cannot
//! take the descriptors the traffic listener needs, and no view, event or log line shows a
//! header value or the token from the config.

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde_json::Value;
use support::{
    Mock, Process, Proxy, admin_addr, admin_section, admin_url, endpoint, get, listening_address,
    send, single_cluster_config,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bound on every wait for an answer; a passing test never comes near it.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// Secrets the config sets in header values and as the token; none may be shown.
const SECRETS: &[&str] = &[
    "upstream-bearer-s3cret",
    "cookie-s3cret",
    "match-key-s3cret",
    "fallback-s3cret",
    "admin-token-s3cret",
];

fn proxy_without_token(mock: &Mock) -> Proxy {
    Proxy::start(&single_cluster_config(
        "",
        &[endpoint(mock, "")],
        &admin_section(""),
    ))
}

/// Sends `request` (a whole HTTP/1.1 request) on a fresh connection and returns the status
/// and body of the answer.
async fn raw(addr: SocketAddr, request: &str) -> (u16, String) {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.expect("connects");
        stream
            .write_all(request.as_bytes())
            .await
            .expect("request sent");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.expect("answer read");
        String::from_utf8_lossy(&answer).into_owned()
    };
    let answer = tokio::time::timeout(ANSWER_WITHIN, exchange)
        .await
        .expect("an answer in time");
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn kill_switch_post(host: &str, extra_headers: &str) -> String {
    let body = r#"{"on": true}"#;
    format!(
        "POST /admin/routes/route-1/kill_switch HTTP/1.1\r\nHost: {host}\r\n{extra_headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

async fn kill_switch_is_on(proxy: &Proxy) -> bool {
    let (_, _, body) = get(&admin_url(proxy, "/admin/routes")).await;
    let routes: Value = serde_json::from_str(&body).expect("routes are JSON");
    routes["routes"][0]["kill_switch"] == true
}

#[tokio::test]
async fn a_text_plain_post_from_a_foreign_origin_is_refused_and_changes_nothing() {
    let mock = Mock::start("a", &[]);
    let proxy = proxy_without_token(&mock);
    let admin = admin_addr(&proxy);
    let request = kill_switch_post(
        &admin.to_string(),
        "Origin: http://evil.example\r\nContent-Type: text/plain\r\n",
    );
    let (status, body) = raw(admin, &request).await;
    assert_eq!(status, 403, "{body}");
    let error: Value = serde_json::from_str(&body).expect("a JSON error");
    assert!(
        error["error"]
            .as_str()
            .is_some_and(|e| e.contains("evil.example")),
        "{error}"
    );
    assert!(!kill_switch_is_on(&proxy).await, "the kill switch flipped");
    assert_eq!(get(&proxy.url("/work")).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_mutation_naming_a_foreign_host_is_refused_as_dns_rebinding() {
    let mock = Mock::start("a", &[]);
    let proxy = proxy_without_token(&mock);
    let admin = admin_addr(&proxy);
    let host = format!("evil.example:{}", admin.port());
    let request = kill_switch_post(&host, "Content-Type: application/json\r\n");
    let (status, body) = raw(admin, &request).await;
    assert_eq!(status, 403, "{body}");
    assert!(!kill_switch_is_on(&proxy).await, "the kill switch flipped");
}

#[tokio::test]
async fn a_mutation_needs_a_json_content_type_and_then_works_from_localhost() {
    let mock = Mock::start("a", &[]);
    let proxy = proxy_without_token(&mock);
    let admin = admin_addr(&proxy);
    for content_type in ["", "Content-Type: text/plain\r\n"] {
        let (status, body) = raw(admin, &kill_switch_post(&admin.to_string(), content_type)).await;
        assert_eq!(status, 415, "{content_type:?}: {body}");
        assert!(body.contains("application/json"), "{body}");
    }
    assert!(!kill_switch_is_on(&proxy).await, "the kill switch flipped");
    let localhost = format!("localhost:{}", admin.port());
    let same_origin =
        format!("Origin: http://{localhost}\r\nContent-Type: application/json; charset=utf-8\r\n");
    let (status, body) = raw(admin, &kill_switch_post(&localhost, &same_origin)).await;
    assert_eq!(status, 200, "{body}");
    assert!(kill_switch_is_on(&proxy).await);
}

/// A proxy started under `ulimit {limit}`, with its log in a file.
struct Limited {
    _process: Process,
    listener: SocketAddr,
    admin: SocketAddr,
    log: PathBuf,
    config_path: PathBuf,
    _folder: tempfile::TempDir,
}

impl Limited {
    fn start(limit: &str, config: &str) -> Self {
        let folder = tempfile::tempdir().expect("a folder");
        let config_path = folder.path().join("blastwall.toml");
        std::fs::write(&config_path, config).expect("config written");
        let log = folder.path().join("stderr.log");
        let path = config_path.to_str().expect("utf-8").to_owned();
        let mut process =
            Process::spawn_limited(limit, &["run", "-c", &path, "--log", "info"], &log);
        let listener = listening_address(&process.wait_for_line("listener \"public\""));
        let admin = listening_address(&process.wait_for_line("admin listening on"));
        process.wait_for_line("blastwall ready");
        Self {
            _process: process,
            listener,
            admin,
            log,
            config_path,
            _folder: folder,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

#[tokio::test]
async fn half_sent_requests_past_the_cap_do_not_starve_the_traffic_listener() {
    const HALF_SENT: usize = 200;
    const HEADER_TIMEOUT: Duration = Duration::from_secs(1);
    let mock = Mock::start("a", &[]);
    let admin = admin_section("max_connections = 16\nheader_read_timeout = \"1s\"");
    let config = single_cluster_config("", &[endpoint(&mock, "")], &admin);
    // 160 descriptors: without a cap, 200 half-sent admin requests take them all.
    let proxy = Limited::start("-n 160", &config);
    let mut held = Vec::with_capacity(HALF_SENT);
    for _ in 0..HALF_SENT {
        let mut stream = TcpStream::connect(proxy.admin).await.expect("connects");
        // Each connection's own bound: a connect the kernel delays (a SYN dropped while
        // the backlog is full is sent again a second later) starts its clock later.
        let closed_by = Instant::now() + HEADER_TIMEOUT + Duration::from_secs(1);
        // The kernel may already have closed a refused one: a failed write is fine.
        let _ = stream
            .write_all(b"GET /admin/status HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            .await;
        held.push((stream, closed_by));
    }
    let url = format!("http://{}/work", proxy.listener);
    let answered =
        tokio::time::timeout(ANSWER_WITHIN, support::try_send(Method::GET, &url, "", &[])).await;
    let status = answered.ok().and_then(Result::ok).map(|answer| answer.0);
    assert_eq!(
        status,
        Some(StatusCode::OK),
        "the traffic listener did not answer while the admin listener was flooded"
    );
    for (index, (mut stream, closed_by)) in held.into_iter().enumerate() {
        let left = closed_by.saturating_duration_since(Instant::now());
        let mut sink = Vec::new();
        let closed = tokio::time::timeout(left, stream.read_to_end(&mut sink)).await;
        assert!(
            closed.is_ok(),
            "half-sent connection {index} still open after the header timeout + 1s"
        );
    }
    let log = proxy.log();
    let refusals = log.matches("over its connection cap").count();
    assert!(
        (1..=2).contains(&refusals),
        "the refusals should be logged once per burst, not per connection ({refusals}):\n{log}"
    );
}

/// A config setting every kind of header value, and the token, to one of [`SECRETS`].
fn config_with_secrets(mock: &Mock, route_extra: &str) -> String {
    format!(
        r#"
[admin]
listen = "127.0.0.1:0"
token = "admin-token-s3cret"

[[listener]]
name = "public"
listen = "127.0.0.1:0"

[[route]]
name = "api"
cluster = "api"
match.headers = {{ "x-api-key" = "match-key-s3cret" }}
request_headers = {{ add = {{ "authorization" = "Bearer upstream-bearer-s3cret" }}, remove = ["x-debug"] }}
response_headers.add."set-cookie" = "session=cookie-s3cret"
fallback = {{ static = {{ status = 503, headers = {{ "x-fallback" = "fallback-s3cret" }}, body = "down" }} }}
{route_extra}

[cluster.api]
endpoints = [{}]
"#,
        endpoint(mock, "")
    )
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "{what} shows {secret}:\n{text}");
    }
}

#[tokio::test]
async fn the_config_view_and_every_other_view_show_no_header_value_or_token() {
    let mock = Mock::start("a", &[]);
    let proxy = Proxy::start(&config_with_secrets(&mock, ""));
    let (status, _, body) = get(&admin_url(&proxy, "/admin/config")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_no_secret("/admin/config", &body);
    let config: Value = serde_json::from_str(&body).expect("JSON");
    let route = &config["config"]["route"][0];
    assert_eq!(
        route["request_headers"]["add"]["authorization"],
        "<redacted>"
    );
    assert_eq!(route["request_headers"]["remove"][0], "x-debug");
    assert_eq!(route["match"]["headers"]["x-api-key"], "<redacted>");
    for path in [
        "/admin/status",
        "/admin/clusters",
        "/admin/routes",
        "/admin/events",
        "/admin/openapi.json",
        "/metrics",
        "/dashboard",
    ] {
        let (status, _, body) = get(&admin_url(&proxy, path)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_no_secret(path, &body);
    }
}

#[tokio::test]
async fn a_reload_refused_on_a_secret_line_shows_the_secret_nowhere() {
    let mock = Mock::start("a", &[]);
    let good = config_with_secrets(&mock, "");
    let proxy = Limited::start("-Sn 4096", &good);
    // An unknown key beside a secret (the file does not parse), then an invalid header
    // value (a control character, so validation refuses it): both point at secret lines.
    let unknown_key = good.replace(
        "remove = [\"x-debug\"] }",
        "remove = [\"x-debug\"], bogus = 1 }",
    );
    let invalid_value = good.replace(
        "Bearer upstream-bearer-s3cret",
        "Bearer upstream-bearer-s3cret\\u0001",
    );
    for bad in [unknown_key, invalid_value] {
        assert_ne!(bad, good);
        std::fs::write(&proxy.config_path, bad).expect("config written");
        let url = format!("http://{}/admin/reload", proxy.admin);
        let (status, _, answer) = send(
            Method::POST,
            &url,
            "",
            &[
                ("authorization", "Bearer admin-token-s3cret"),
                ("content-type", "application/json"),
            ],
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        assert_no_secret("the reload answer", &answer);
        assert!(answer.contains("blastwall.toml:"), "not located: {answer}");
        for path in ["/admin/status", "/admin/events"] {
            let (_, _, body) = get(&format!("http://{}{path}", proxy.admin)).await;
            assert_no_secret(path, &body);
            assert!(
                body.contains("blastwall.toml:"),
                "{path} is not located: {body}"
            );
        }
    }
    let log = proxy.log();
    assert!(log.contains("reload refused"), "{log}");
    assert_no_secret("the log", &log);
}
