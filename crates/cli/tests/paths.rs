//! Spellings of a path that name a route's resources to an endpoint without matching the
//! route (issue #15): segment parameters (`/m;p=1/x`, which servlet containers read as
//! `/m/x`), encoded slashes (`/m%2Fx`, which many frameworks decode) and case (`/M/x`, for
//! endpoints that ignore it). A route `/m/` whose kill switch is on shows which route a
//! request met: only one that slipped past it reaches the echoing mock. Over HTTP/1.1 (raw
//! sockets, as these are requests client libraries may tidy) and HTTP/2 alike. And what the
//! endpoint is asked (rewritten or not) and what the stale cache keys stay one path.

mod support;

use std::net::SocketAddr;

use support::{Mock, Proxy, admin_section, endpoint, raw_exchange};
use tokio::net::TcpStream;

/// Listeners `reject` (the default), `decode` and `keep`, each named for its
/// `escaped_slashes`; a killed route `/m/` that ignores case; a route `/r/` that ignores
/// case and rewrites its prefix to `/up/`; a route `/s` (ending inside a segment) that
/// rewrites it to `/api/`; and a route taking the rest, all to the echoing
/// `mock`.
fn config(mock: &Mock) -> String {
    format!(
        r#"
[[listener]]
name = "reject"
listen = "127.0.0.1:0"

[[listener]]
name = "decode"
listen = "127.0.0.1:0"
escaped_slashes = "decode"

[[listener]]
name = "keep"
listen = "127.0.0.1:0"
escaped_slashes = "keep"

[cluster.api]
endpoints = [{}]

[[route]]
name = "m"
cluster = "api"
match = {{ path_prefix = "/m/", case_sensitive = false }}
fallback = {{ kill_switch = true }}

[[route]]
name = "r"
cluster = "api"
match = {{ path_prefix = "/r/", case_sensitive = false }}
rewrite_prefix = "/up/"

[[route]]
name = "s"
cluster = "api"
match = {{ path_prefix = "/s" }}
rewrite_prefix = "/api/"

[[route]]
name = "rest"
cluster = "api"
{}"#,
        endpoint(mock, ""),
        admin_section("")
    )
}

fn listener(proxy: &Proxy, name: &str) -> SocketAddr {
    proxy
        .listeners
        .iter()
        .find(|(listener, _)| listener == name)
        .map(|(_, addr)| *addr)
        .expect("the listener is up")
}

/// A GET of `target` on a fresh HTTP/1.1 connection: the status, the head and the body.
async fn raw_get(addr: SocketAddr, target: &str) -> (u16, String, String) {
    let request = format!("GET {target} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    let answer = raw_exchange(addr, request.as_bytes()).await;
    (answer.status, answer.head.to_ascii_lowercase(), answer.body)
}

/// The target the echoing mock saw, from its answer.
fn seen_uri(body: &str) -> String {
    let seen: serde_json::Value = serde_json::from_str(body).expect("an echo");
    seen["uri"].as_str().expect("a uri").to_owned()
}

#[tokio::test]
async fn segment_parameters_and_case_cannot_slip_past_a_killed_route() {
    let mock = Mock::start("a", &["--echo"]);
    let proxy = Proxy::start(&config(&mock));
    for target in [
        "/m/x",
        "/m;p=1/x",
        "/m;jsessionid=1;a=b/x",
        "/;p/m/x",
        "/M/x",
        "/M;p/X",
    ] {
        let (status, head, body) = raw_get(proxy.addr(), target).await;
        assert_eq!(status, 503, "{target}: {body}");
        assert!(
            head.contains("x-blastwall-error: kill_switch"),
            "{target}: {head}"
        );
    }
    assert_eq!(mock.requests().await, 0, "nothing reached the endpoint");
}

#[tokio::test]
async fn an_encoded_slash_is_refused_decoded_or_kept_as_its_listener_says() {
    let mock = Mock::start("a", &["--echo"]);
    let proxy = Proxy::start(&config(&mock));
    for target in ["/m%2Fx", "/m%2fx", "/a%2F..%2Fm/x"] {
        let (status, _, body) = raw_get(listener(&proxy, "reject"), target).await;
        assert_eq!(status, 400, "{target}: {body}");
        assert!(body.contains("encoded slash"), "{target}: {body}");
        let (status, head, body) = raw_get(listener(&proxy, "decode"), target).await;
        assert_eq!(status, 503, "{target}: {body}");
        assert!(
            head.contains("x-blastwall-error: kill_switch"),
            "{target}: {head}"
        );
    }
    assert_eq!(mock.requests().await, 0, "nothing reached the endpoint");
    // Decoded, the slash is a slash upstream too: the route and the endpoint agree.
    let (status, _, body) = raw_get(listener(&proxy, "decode"), "/x%2Fy?q=%2F").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(seen_uri(&body), "/x/y?q=%2F", "the query is not the path");
    // Kept, it is matched and forwarded as written: the risk the operator chose.
    let (status, _, body) = raw_get(listener(&proxy, "keep"), "/m%2Fx").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(seen_uri(&body), "/m%2Fx");
}

#[tokio::test]
async fn the_endpoint_gets_the_path_as_sent_or_as_its_route_rewrote_it() {
    let mock = Mock::start("a", &["--echo"]);
    let proxy = Proxy::start(&config(&mock));
    for (target, upstream) in [
        // Parameters are not the route's business: they travel as they came.
        ("/x;p=1/y?q", "/x;p=1/y?q"),
        ("/r/a;b/c", "/up/a;b/c"),
        // The matched prefix is replaced however it was spelt; its parameters go with it.
        ("/r;v=1/x?q", "/up/x?q"),
        ("/R/x", "/up/x"),
        ("/R;v=1/X", "/up/X"),
    ] {
        let (status, _, body) = raw_get(proxy.addr(), target).await;
        assert_eq!(status, 200, "{target}: {body}");
        assert_eq!(seen_uri(&body), upstream, "{target}");
    }
    let (status, _, body) = raw_get(listener(&proxy, "decode"), "/r%2Fx%2Fy").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(seen_uri(&body), "/up/x/y");
}

/// An HTTP/2 (prior knowledge) connection to `addr`, driven in the background.
async fn h2c(
    addr: SocketAddr,
) -> hyper::client::conn::http2::SendRequest<http_body_util::Empty<bytes::Bytes>> {
    let stream = TcpStream::connect(addr).await.expect("connected");
    let (sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("an h2c handshake");
    tokio::spawn(connection);
    sender
}

/// The status and `x-blastwall-error` of a GET of `path` over HTTP/2 to `addr`.
async fn h2_get(addr: SocketAddr, path: &str) -> (u16, Option<String>) {
    let mut sender = h2c(addr).await;
    let request = http::Request::get(format!("http://{addr}{path}"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .expect("a request");
    let answer = sender.send_request(request).await.expect("answered");
    let error = answer
        .headers()
        .get("x-blastwall-error")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    (answer.status().as_u16(), error)
}

#[tokio::test]
async fn a_rewrite_never_sends_the_endpoint_a_path_outside_its_replacement() {
    let mock = Mock::start("a", &["--echo"]);
    let proxy = Proxy::start(&config(&mock));
    // What is left of a segment the prefix ended in becomes a segment of its own after
    // `/api/`: as a dot segment it would climb out of it.
    for target in [
        "/s../admin",
        "/s%2e%2e/admin",
        "/s.%2E/admin",
        "/s..;/admin",
        "/s..",
    ] {
        let (status, _, body) = raw_get(proxy.addr(), target).await;
        assert_eq!(
            status,
            400,
            "{target} reached the endpoint as {}",
            seen_uri(&body)
        );
    }
    for (target, upstream) in [("/s/x", "/api/x"), ("/sx/y", "/api/x/y"), ("/s.", "/api/")] {
        let (status, _, body) = raw_get(proxy.addr(), target).await;
        assert_eq!(status, 200, "{target}: {body}");
        assert_eq!(seen_uri(&body), upstream, "{target}");
    }
}

#[tokio::test]
async fn over_http2_the_same_spellings_meet_the_same_route() {
    let mock = Mock::start("a", &["--echo"]);
    let proxy = Proxy::start(&config(&mock));
    let killed = Some("kill_switch".to_owned());
    for path in ["/m;p=1/x", "/M/x", "/;p/M;q/x"] {
        assert_eq!(
            h2_get(proxy.addr(), path).await,
            (503, killed.clone()),
            "{path}"
        );
    }
    assert_eq!(h2_get(proxy.addr(), "/m%2Fx").await.0, 400);
    assert_eq!(
        h2_get(listener(&proxy, "decode"), "/m%2Fx").await,
        (503, killed.clone())
    );
    assert_eq!(mock.requests().await, 0, "nothing reached the endpoint");
}

#[tokio::test]
async fn the_stale_cache_keeps_an_answer_under_the_path_the_endpoint_was_asked() {
    let upstream = Mock::start("a", &[]);
    upstream.set_behaviour(r#"{"body":"v1"}"#).await;
    let proxy = Proxy::start(&format!(
        r#"
[[listener]]
name = "decode"
listen = "127.0.0.1:0"
escaped_slashes = "decode"

[[listener]]
name = "keep"
listen = "127.0.0.1:0"
escaped_slashes = "keep"

[[route]]
cluster = "api"
fallback = {{ stale_if_error = {{ max_age = "10m" }} }}

[cluster.api]
endpoints = [{}]
"#,
        endpoint(&upstream, "")
    ));
    let (decode, keep) = (listener(&proxy, "decode"), listener(&proxy, "keep"));
    // Decoded, `/c/a%2Fb` is `/c/a/b` to the endpoint, and so to the cache.
    let (status, _, body) = raw_get(decode, "/c/a%2Fb").await;
    assert_eq!((status, body.as_str()), (200, "v1"));
    upstream.set_behaviour(r#"{"status":503}"#).await;
    for target in ["/c/a/b", "/c/a%2Fb"] {
        let (status, head, body) = raw_get(decode, target).await;
        assert_eq!((status, body.as_str()), (200, "v1"), "{target}");
        assert!(
            head.contains("x-blastwall-fallback: stale"),
            "{target}: {head}"
        );
    }
    // Kept, `%2F` is what the endpoint would be asked: an answer nobody got for it.
    let (status, head, _) = raw_get(keep, "/c/a%2Fb").await;
    assert_eq!(status, 503);
    assert!(!head.contains("x-blastwall-fallback"), "{head}");
}
