//! What a client may and may not do to other clients' traffic (issue #15): its own deadline,
//! a body it stalls, and its forwarding headers never count as the upstream's failure, never
//! open a breaker or eject an endpoint, and never read or poison the stale-if-error cache.

mod support;

use http::{Method, StatusCode};
use support::{Mock, Proxy, get, route_config, seen_header, send};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const DEADLINE: &str = "x-blastwall-timeout-ms";

/// A cluster breaker that opens after five failures in a row, for a long time.
const CLUSTER_BREAKER: &str = r#"
[cluster.api.circuit_breaker]
consecutive_failures = 5
open_duration = "60s"
"#;

/// `[proxy]` trusting the test's own address (the client is 127.0.0.1).
const TRUSTING: &str = "[proxy]\ntrusted_clients = [\"127.0.0.1\"]\n";

/// `[proxy]` trusting some other network only.
const DISTRUSTING: &str = "[proxy]\ntrusted_clients = [\"10.0.0.0/8\"]\n";

fn with_sections(proxy: &str, route: &str, upstream: &Mock, sections: &str) -> String {
    format!(
        "{proxy}{}{sections}",
        route_config(
            route,
            "request_timeout = \"2s\"",
            &[format!("{{ address = \"{}\" }}", upstream.addr)]
        )
    )
}

#[tokio::test]
async fn an_untrusted_clients_deadline_header_cannot_open_the_cluster_breaker() {
    let upstream = Mock::start("a", &[]);
    upstream.set_behaviour(r#"{"latency":"50ms"}"#).await;
    let proxy = Proxy::start(&with_sections(DISTRUSTING, "", &upstream, CLUSTER_BREAKER));
    for _ in 0..6 {
        let (status, headers, body) =
            send(Method::GET, &proxy.url("/"), "", &[(DEADLINE, "1")]).await;
        assert_eq!(status, StatusCode::OK, "{headers:?} {body}");
    }
    let (status, headers, body) = get(&proxy.url("/")).await;
    assert_eq!(status, StatusCode::OK, "{headers:?} {body}");
}

#[tokio::test]
async fn a_trusted_clients_short_deadline_is_honoured_but_never_held_against_the_cluster() {
    let upstream = Mock::start("a", &[]);
    upstream.set_behaviour(r#"{"latency":"300ms"}"#).await;
    let sections = format!(
        "{CLUSTER_BREAKER}\n[cluster.api.endpoint_circuit_breaker]\nconsecutive_failures = 2\nopen_duration = \"60s\"\n\n[cluster.api.outlier_detection]\nconsecutive_gateway_errors = 2\nbase_ejection_time = \"60s\"\n"
    );
    let proxy = Proxy::start(&with_sections(TRUSTING, "", &upstream, &sections));
    for _ in 0..8 {
        let (status, headers, body) =
            send(Method::GET, &proxy.url("/"), "", &[(DEADLINE, "5")]).await;
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
        assert_eq!(headers["x-blastwall-error"], "deadline_exceeded", "{body}");
    }
    // The endpoint is as good as it was: no breaker opened, nothing ejected.
    let (status, headers, body) = get(&proxy.url("/")).await;
    assert_eq!(status, StatusCode::OK, "{headers:?} {body}");
}

/// Sends a request head announcing a body of `announced` bytes and only `sent` of them,
/// then waits for the proxy's answer (it comes when the attempt gives up) and returns it.
async fn stall_body(proxy: &Proxy, announced: usize, sent: usize) -> String {
    let mut stream = TcpStream::connect(proxy.addr()).await.expect("connects");
    let head = format!(
        "POST /upload HTTP/1.1\r\nhost: shop.example\r\ncontent-length: {announced}\r\n\r\n{}",
        "x".repeat(sent)
    );
    stream.write_all(head.as_bytes()).await.expect("writes");
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    // The answer is whole when the proxy closes (it cannot keep a connection whose body
    // it did not read) or once its head and a short body are in.
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buffer[..n]),
        }
        if answer.windows(4).any(|window| window == b"\r\n\r\n") && answer.ends_with(b"\n") {
            break;
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_client_that_stalls_its_body_leaves_the_endpoint_in_service() {
    let upstream = Mock::start("a", &[]);
    let sections = "\n[cluster.api.endpoint_circuit_breaker]\nconsecutive_failures = 1\nopen_duration = \"60s\"\n";
    // One attempt: the body streams to the endpoint as it arrives.
    let text = format!(
        "{DISTRUSTING}{}{sections}",
        route_config(
            "[route.retry]\nattempts = 1",
            "request_timeout = \"300ms\"",
            &[format!("{{ address = \"{}\" }}", upstream.addr)]
        )
    );
    let proxy = Proxy::start(&text);
    let answer = stall_body(&proxy, 100, 10).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_read_timeout"), "{answer}");
    let (status, headers, body) = get(&proxy.url("/")).await;
    assert_eq!(status, StatusCode::OK, "{headers:?} {body}");
}

#[tokio::test]
async fn a_client_that_leaves_mid_body_leaves_the_endpoint_in_service() {
    let upstream = Mock::start("a", &[]);
    let sections = "\n[cluster.api.endpoint_circuit_breaker]\nconsecutive_failures = 1\nopen_duration = \"60s\"\n";
    let text = format!(
        "{DISTRUSTING}{}{sections}",
        route_config(
            "[route.retry]\nattempts = 1",
            "request_timeout = \"10s\"",
            &[format!("{{ address = \"{}\" }}", upstream.addr)]
        )
    );
    let proxy = Proxy::start(&text);
    let mut stream = TcpStream::connect(proxy.addr()).await.expect("connects");
    let head =
        "POST /upload HTTP/1.1\r\nhost: shop.example\r\ncontent-length: 100\r\n\r\nxxxxxxxxxx";
    stream.write_all(head.as_bytes()).await.expect("writes");
    // The upstream has the request before the client goes: its body is then the client's.
    assert!(
        support::eventually(std::time::Duration::from_secs(10), || async {
            upstream.requests().await >= 1
        })
        .await
    );
    stream.shutdown().await.expect("half-closes");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(!answer.contains("upstream_reset"), "{answer}");
    let (status, headers, body) = get(&proxy.url("/")).await;
    assert_eq!(status, StatusCode::OK, "{headers:?} {body}");
}

const STALE: &str = "[route.fallback]\nstale_if_error = { max_age = \"10m\" }";

#[tokio::test]
async fn a_deadline_of_zero_never_gets_a_stale_answer_from_a_healthy_cluster() {
    let upstream = Mock::start("a", &[]);
    upstream.set_behaviour(r#"{"body":"catalog v1"}"#).await;
    let proxy = Proxy::start(&with_sections(TRUSTING, STALE, &upstream, ""));
    let (status, _, body) = get(&proxy.url("/catalog")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "catalog v1"));
    upstream.set_behaviour(r#"{"body":"catalog v2"}"#).await;
    for deadline in ["0", "1"] {
        let (status, headers, body) = send(
            Method::GET,
            &proxy.url("/catalog"),
            "",
            &[(DEADLINE, deadline)],
        )
        .await;
        assert_ne!(
            headers.get("x-blastwall-fallback").map(|v| v.as_bytes()),
            Some(&b"stale"[..]),
            "{deadline}: {body}"
        );
        assert_ne!(body, "catalog v1", "{deadline}: {status}");
    }
    // The cache still answers when the cluster really fails (with what it last said).
    let (status, _, body) = get(&proxy.url("/catalog")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "catalog v2"));
    upstream.set_behaviour(r#"{"status":503}"#).await;
    let (status, headers, body) = get(&proxy.url("/catalog")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "catalog v2"));
    assert_eq!(headers["x-blastwall-fallback"], "stale");
}

#[tokio::test]
async fn the_applications_own_500_to_one_request_never_opens_the_stale_cache() {
    // A client can make an application answer 500 with input it fails on; that says the
    // request failed, not the cluster, so it must not read what the cache keeps for the URL.
    let upstream = Mock::start("a", &[]);
    upstream
        .set_behaviour(r#"{"body":"profile of the last caller"}"#)
        .await;
    let proxy = Proxy::start(&with_sections(DISTRUSTING, STALE, &upstream, ""));
    let (status, _, body) = get(&proxy.url("/profile")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    upstream
        .set_behaviour(r#"{"status":500,"body":"boom"}"#)
        .await;
    let (status, headers, body) = get(&proxy.url("/profile")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert!(!headers.contains_key("x-blastwall-fallback"), "{headers:?}");
    assert_ne!(body, "profile of the last caller");
    // A gateway error (something behind the application failed) still opens it.
    upstream.set_behaviour(r#"{"status":502}"#).await;
    let (status, headers, body) = get(&proxy.url("/profile")).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "profile of the last caller")
    );
    assert_eq!(headers["x-blastwall-fallback"], "stale");
}

#[tokio::test]
async fn a_request_the_saturated_clusters_limit_sheds_gets_the_stale_answer() {
    // The cluster's own concurrency limit refusing a request says the cluster cannot keep
    // up: what a stale answer is for (the route's own limits, a client's doing, do not).
    let upstream = Mock::start("a", &[]);
    upstream.set_behaviour(r#"{"body":"catalog v1"}"#).await;
    let config = with_sections(
        DISTRUSTING,
        STALE,
        &upstream,
        "\n[cluster.api.concurrency]\nlimit = 1\nqueue = 0\n",
    );
    let proxy = Proxy::start(&config);
    let (status, _, body) = get(&proxy.url("/catalog")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "catalog v1"));
    upstream
        .set_behaviour(r#"{"body":"catalog v2","latency":"1s"}"#)
        .await;
    let url = proxy.url("/catalog");
    let holder = tokio::spawn(async move { get(&url).await });
    let in_flight = support::eventually(std::time::Duration::from_secs(5), || async {
        upstream.requests().await >= 2
    })
    .await;
    assert!(in_flight, "the first request never reached the endpoint");
    let (status, headers, body) = get(&proxy.url("/catalog")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "catalog v1"));
    assert_eq!(headers["x-blastwall-fallback"], "stale");
    let (status, _, body) = holder.await.expect("the holder");
    assert_eq!((status, body.as_str()), (StatusCode::OK, "catalog v2"));
}

#[tokio::test]
async fn an_answer_to_a_request_with_a_cookie_is_not_served_stale_to_another_client() {
    let upstream = Mock::start("a", &["--echo"]);
    let proxy = Proxy::start(&with_sections(DISTRUSTING, STALE, &upstream, ""));
    let (status, _, body) = send(
        Method::GET,
        &proxy.url("/me"),
        "",
        &[("cookie", "session=alice")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("session=alice"), "{body}");
    upstream.set_behaviour(r#"{"status":503}"#).await;
    let (status, headers, body) = get(&proxy.url("/me")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(!headers.contains_key("x-blastwall-fallback"), "{headers:?}");
    assert!(!body.contains("alice"), "{body}");
}

const FORWARDING: [(&str, &str); 4] = [
    ("x-forwarded-host", "evil.example"),
    ("x-forwarded-port", "8443"),
    ("x-forwarded-prefix", "/evil"),
    ("forwarded", "for=192.0.2.1;host=evil.example;proto=https"),
];

#[tokio::test]
async fn an_untrusted_clients_address_scheme_and_original_url_headers_never_reach_the_upstream() {
    // Frameworks take the client's address, the scheme and even the routed path from these.
    let names = [
        "x-real-ip",
        "true-client-ip",
        "x-client-ip",
        "x-forwarded-ssl",
        "x-forwarded-scheme",
        "x-forwarded-server",
        "x-host",
        "x-original-host",
        "x-original-url",
        "x-rewrite-url",
    ];
    let upstream = Mock::start("a", &["--echo"]);
    let proxy = Proxy::start(&with_sections(DISTRUSTING, "", &upstream, ""));
    let headers: Vec<(&str, &str)> = names.iter().map(|name| (*name, "/admin")).collect();
    let (status, _, body) = send(Method::GET, &proxy.url("/"), "", &headers).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for name in names {
        assert_eq!(seen_header(&body, name), None, "{name}: {body}");
    }
}

#[tokio::test]
async fn an_untrusted_clients_forwarding_headers_never_reach_the_upstream() {
    for protocol in ["http1", "http2"] {
        let upstream = Mock::start("a", &["--echo"]);
        let text = format!(
            "{DISTRUSTING}{}",
            route_config(
                "",
                &format!("protocol = \"{protocol}\""),
                &[format!("{{ address = \"{}\" }}", upstream.addr)]
            )
        );
        let proxy = Proxy::start(&text);
        let (status, _, body) = send(Method::GET, &proxy.url("/"), "", &FORWARDING).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        for name in ["x-forwarded-port", "x-forwarded-prefix", "forwarded"] {
            assert_eq!(seen_header(&body, name), None, "{protocol}: {name}: {body}");
        }
        assert_ne!(
            seen_header(&body, "x-forwarded-host").as_deref(),
            Some("evil.example"),
            "{protocol}: {body}"
        );
    }
}

#[tokio::test]
async fn a_trusted_clients_forwarding_headers_travel_on_and_key_the_cache() {
    let upstream = Mock::start("a", &["--echo"]);
    let proxy = Proxy::start(&with_sections(TRUSTING, STALE, &upstream, ""));
    let (status, _, body) = send(Method::GET, &proxy.url("/page"), "", &FORWARDING).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        seen_header(&body, "x-forwarded-host").as_deref(),
        Some("evil.example")
    );
    assert_eq!(
        seen_header(&body, "x-forwarded-prefix").as_deref(),
        Some("/evil")
    );
    assert_eq!(
        seen_header(&body, "forwarded").as_deref(),
        Some("for=192.0.2.1;host=evil.example;proto=https, for=127.0.0.1;proto=http")
    );
    // What the upstream said for one forwarded host is not what others get for theirs.
    upstream.set_behaviour(r#"{"status":503}"#).await;
    let (status, headers, body) = get(&proxy.url("/page")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(!headers.contains_key("x-blastwall-fallback"), "{headers:?}");
    let (status, headers, _) = send(Method::GET, &proxy.url("/page"), "", &FORWARDING).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-blastwall-fallback"], "stale");
}
