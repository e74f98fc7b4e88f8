//! The proxy forwards requests to the right upstream, as the upstream should see them.

mod support;

use http::{Method, StatusCode};
use support::{Mock, Proxy, get, send};

fn config(upstreams: &[&Mock]) -> String {
    let endpoints: Vec<String> = upstreams
        .iter()
        .map(|mock| format!("{{ address = \"{}\" }}", mock.addr))
        .collect();
    format!(
        r#"
[[listener]]
name = "public"
listen = "127.0.0.1:0"

[[route]]
name = "api"
cluster = "api"
match = {{ path_prefix = "/api/" }}
rewrite_prefix = "/v1/"
request_headers = {{ add = {{ "x-added" = "yes" }}, remove = ["x-secret"] }}
response_headers = {{ add = {{ "x-served-by" = "blastwall" }} }}

[cluster.api]
balance = "round_robin"
endpoints = [{}]
"#,
        endpoints.join(", ")
    )
}

#[tokio::test]
async fn a_request_reaches_the_upstream_rewritten_with_forwarding_headers() {
    let upstream = Mock::start("a", &["--echo"]);
    let proxy = Proxy::start(&config(&[&upstream]));
    let (status, headers, body) = send(
        Method::POST,
        &proxy.url("/api/orders?id=7"),
        "hello",
        &[("x-secret", "s"), ("connection", "x-drop"), ("x-drop", "1")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["x-served-by"], "blastwall");
    assert_eq!(headers["via"], "1.1 blastwall");
    let echo: serde_json::Value = serde_json::from_str(&body).expect("echo JSON");
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["uri"], "/v1/orders?id=7");
    assert_eq!(echo["body_bytes"], 5);
    let received: Vec<(String, String)> =
        serde_json::from_value(echo["headers"].clone()).expect("headers");
    let header = |name: &str| {
        received
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    assert_eq!(header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(header("x-forwarded-proto"), Some("http"));
    assert_eq!(header("via"), Some("1.1 blastwall"));
    assert_eq!(header("x-added"), Some("yes"));
    assert_eq!(
        received
            .iter()
            .filter(|(key, _)| key == "x-blastwall-timeout-ms")
            .count(),
        1,
        "the deadline header, once, where the route edits headers"
    );
    assert_eq!(header("x-secret"), None, "removed by the route");
    assert_eq!(header("x-drop"), None, "named by Connection, so hop-by-hop");
    assert_eq!(
        header("host"),
        Some(proxy.addr().to_string().as_str()),
        "the client's Host is kept"
    );
    assert_eq!(
        header("x-request-id").map(str::len),
        Some(32),
        "a request id is created"
    );
}

#[tokio::test]
async fn round_robin_spreads_requests_over_every_endpoint() {
    let (a, b) = (Mock::start("a", &[]), Mock::start("b", &[]));
    let proxy = Proxy::start(&config(&[&a, &b]));
    let mut answered_by = Vec::new();
    for _ in 0..4 {
        let (status, headers, _) = get(&proxy.url("/api/x")).await;
        assert_eq!(status, StatusCode::OK);
        answered_by.push(headers["x-mock-name"].to_str().expect("ascii").to_owned());
    }
    answered_by.sort();
    assert_eq!(answered_by, ["a", "a", "b", "b"]);
}

#[tokio::test]
async fn an_unmatched_request_gets_404_naming_why() {
    let upstream = Mock::start("a", &[]);
    let proxy = Proxy::start(&config(&[&upstream]));
    let (status, headers, _) = get(&proxy.url("/elsewhere")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(headers["x-blastwall-error"], "no_route");
    assert_eq!(upstream.requests().await, 0);
}

#[tokio::test]
async fn a_dead_upstream_gets_502_and_a_slow_one_504() {
    let upstream = Mock::start("a", &[]);
    let addr = upstream.addr;
    let text = config(&[&upstream]).replace(
        "balance = \"round_robin\"",
        "balance = \"round_robin\"\nrequest_timeout = \"200ms\"",
    );
    let proxy = Proxy::start(&text);
    upstream.set_behaviour(r#"{"latency":"5s"}"#).await;
    let (status, headers, _) = get(&proxy.url("/api/slow")).await;
    assert_eq!(
        (status, headers["x-blastwall-error"].to_str().ok()),
        (StatusCode::GATEWAY_TIMEOUT, Some("upstream_timeout"))
    );
    drop(upstream);
    let (status, headers, body) = get(&proxy.url("/api/gone")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(headers["x-blastwall-error"], "connect_failed");
    // The client learns which cluster failed, not where its endpoints are (issue #15).
    assert!(
        !body.contains(&addr.to_string()) && body.contains("cluster \"api\""),
        "names the cluster, not the endpoint: {body}"
    );
}

#[tokio::test]
async fn a_cluster_speaking_http2_gets_http2_from_the_proxy() {
    let upstream = Mock::start("a", &["--echo"]);
    let text = config(&[&upstream]).replace(
        "balance = \"round_robin\"",
        "balance = \"round_robin\"\nprotocol = \"http2\"",
    );
    let proxy = Proxy::start(&text);
    let (status, _, body) = get(&proxy.url("/api/h2")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let echo: serde_json::Value = serde_json::from_str(&body).expect("echo JSON");
    assert_eq!(echo["version"], "HTTP/2.0");
}

#[tokio::test]
async fn a_large_body_streams_through_whole() {
    let upstream = Mock::start("a", &["--echo"]);
    let proxy = Proxy::start(&config(&[&upstream]));
    let body = "x".repeat(4 * 1024 * 1024);
    let (status, _, answer) = send(Method::PUT, &proxy.url("/api/upload"), &body, &[]).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let echo: serde_json::Value = serde_json::from_str(&answer).expect("echo JSON");
    assert_eq!(echo["body_bytes"], 4 * 1024 * 1024);
}

#[tokio::test]
async fn an_http2_upstream_gets_no_host_that_disagrees_with_its_authority() {
    let upstream = Mock::start("a", &["--echo"]);
    let text = config(&[&upstream]).replace(
        "balance = \"round_robin\"",
        "balance = \"round_robin\"\nprotocol = \"http2\"",
    );
    let proxy = Proxy::start(&text);
    let (status, _, body) = send(
        Method::GET,
        &proxy.url("/api/h2"),
        "",
        &[("host", "shop.example")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let echo: serde_json::Value = serde_json::from_str(&body).expect("echo JSON");
    let received: Vec<(String, String)> =
        serde_json::from_value(echo["headers"].clone()).expect("headers");
    let header = |name: &str| {
        received
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    assert_eq!(header("host"), None);
    assert_eq!(header("x-forwarded-host"), Some("shop.example"));
}

#[tokio::test]
async fn proxy_credentials_stay_with_the_proxy_and_trailer_announcements_travel_on() {
    let upstream = Mock::start("a", &["--echo"]);
    let proxy = Proxy::start(&config(&[&upstream]));
    let (_, _, body) = send(
        Method::GET,
        &proxy.url("/api/x"),
        "",
        &[
            ("proxy-authorization", "Basic c2VjcmV0"),
            ("trailer", "x-checksum"),
        ],
    )
    .await;
    let echo: serde_json::Value = serde_json::from_str(&body).expect("echo JSON");
    let received: Vec<(String, String)> =
        serde_json::from_value(echo["headers"].clone()).expect("headers");
    assert!(
        !received.iter().any(|(key, _)| key == "proxy-authorization"),
        "{received:?}"
    );
    assert!(
        received.iter().any(|(key, _)| key == "trailer"),
        "{received:?}"
    );
}

#[tokio::test]
async fn one_worker_thread_serves_everything_on_the_main_thread() {
    let upstream = Mock::start("a", &["--echo"]);
    let config = format!("[proxy]\nworker_threads = 1\n{}", config(&[&upstream]));
    let proxy = Proxy::start(&config);
    for _ in 0..3 {
        let (status, _, body) = get(&proxy.url("/api/one")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // A current-thread runtime starts no tokio worker threads (only, on demand, blocking
    // threads named for what they do).
    let tasks = format!("/proc/{}/task", proxy.process.pid());
    let names: Vec<String> = std::fs::read_dir(&tasks)
        .expect("the proxy's threads")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_owned())
        .collect();
    assert!(
        names.iter().all(|name| !name.starts_with("tokio-")),
        "{names:?}"
    );
}

/// A route with no header edits of its own: the forwarding headers the proxy adds are
/// written straight into the request head (HTTP/1.1) or appended to its map (HTTP/2), and
/// still replace what a client wrote where they should.
#[tokio::test]
async fn forwarding_headers_replace_or_extend_the_clients_over_http1_and_http2() {
    for protocol in ["http1", "http2"] {
        let upstream = Mock::start("a", &["--echo"]);
        // Trusted, so that its deadline is honoured (and may only shorten the route's).
        let text = format!(
            r#"
[proxy]
trusted_clients = ["127.0.0.1"]

[[listener]]
name = "public"
listen = "127.0.0.1:0"

[[route]]
name = "all"
cluster = "plain"

[cluster.plain]
protocol = "{protocol}"
endpoints = [{{ address = "{}" }}]
"#,
            upstream.addr
        );
        let proxy = Proxy::start(&text);
        let sent = [
            ("x-forwarded-for", "10.1.1.1"),
            ("x-forwarded-proto", "https"),
            ("via", "1.0 edge"),
            ("x-blastwall-timeout-ms", "5000"),
        ];
        for client_headers in [&sent[..], &[]] {
            let (status, _, body) = send(Method::GET, &proxy.url("/"), "", client_headers).await;
            assert_eq!(status, StatusCode::OK, "{protocol}: {body}");
            let echo: serde_json::Value = serde_json::from_str(&body).expect("echo JSON");
            let received: Vec<(String, String)> =
                serde_json::from_value(echo["headers"].clone()).expect("headers");
            let values = |name: &str| -> Vec<&str> {
                received
                    .iter()
                    .filter(|(key, _)| key == name)
                    .map(|(_, value)| value.as_str())
                    .collect()
            };
            let with_client = !client_headers.is_empty();
            let context = format!("{protocol}, client headers: {with_client}");
            let forwarded_for = if with_client {
                "10.1.1.1, 127.0.0.1"
            } else {
                "127.0.0.1"
            };
            assert_eq!(values("x-forwarded-for"), [forwarded_for], "{context}");
            assert_eq!(values("x-forwarded-proto"), ["http"], "{context}");
            let via: &[&str] = if with_client {
                &["1.0 edge", "1.1 blastwall"]
            } else {
                &["1.1 blastwall"]
            };
            assert_eq!(values("via").join(", "), via.join(", "), "{context}");
            assert_eq!(values("x-request-id").len(), 1, "{context}");
            let deadline = values("x-blastwall-timeout-ms");
            assert_eq!(deadline.len(), 1, "{context}: {deadline:?}");
            let remaining: u64 = deadline[0].parse().expect("milliseconds");
            assert!(!with_client || remaining <= 5000, "{context}: {remaining}");
        }
    }
}
