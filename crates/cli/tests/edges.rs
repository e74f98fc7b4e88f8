//! The edges of HTTP a client can push on (issue #15): `Connection` naming the headers the
//! proxy relies on, transfer codings it does not decode, bare LFs in a chunked body,
//! look-alikes of the framing headers, paths that name a route's resources another way, and
//! what its own error answers reveal. Raw sockets, as these are requests no well-behaved
//! client library sends, against the real binary and the echoing mock.

mod support;

use support::{Mock, Proxy, Raw, admin_section, endpoint, raw_exchange, route_config, seen_header};
use tokio::net::TcpStream;

/// Writes `request` on a fresh connection and reads until the proxy closes it.
async fn raw(proxy: &Proxy, request: &[u8]) -> Raw {
    raw_exchange(proxy.addr(), request).await
}

fn echo_proxy(mock: &Mock, route_keys: &str) -> Proxy {
    let config = route_config(route_keys, "", &[endpoint(mock, "")]);
    Proxy::start(&format!("{config}{}", admin_section("")))
}

#[tokio::test]
async fn a_connection_header_cannot_take_away_host_or_the_proxys_own_headers() {
    let mock = Mock::start("a", &["--echo"]);
    let proxy = echo_proxy(&mock, "");
    let answer = raw(
        &proxy,
        b"GET /x HTTP/1.1\r\nHost: shop.example\r\nX-Request-Id: id-7\r\nTE: trailers\r\n\
          X-Forwarded-For: 192.0.2.1\r\nX-Gone: 1\r\n\
          Connection: close, host, x-request-id, te, x-forwarded-for, x-gone\r\n\r\n",
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        seen_header(&answer.body, "host").as_deref(),
        Some("shop.example")
    );
    assert_eq!(
        seen_header(&answer.body, "x-request-id").as_deref(),
        Some("id-7")
    );
    assert_eq!(seen_header(&answer.body, "te").as_deref(), Some("trailers"));
    let forwarded_for = seen_header(&answer.body, "x-forwarded-for").unwrap_or_default();
    assert!(forwarded_for.ends_with("127.0.0.1"), "{forwarded_for}");
    assert_eq!(
        seen_header(&answer.body, "x-gone"),
        None,
        "other named headers still go"
    );
}

#[tokio::test]
async fn a_transfer_coding_besides_chunked_gets_501_and_never_reaches_the_endpoint() {
    let mock = Mock::start("a", &["--echo"]);
    let proxy = echo_proxy(&mock, "");
    for coding in ["gzip, chunked", "gzip", "deflate,chunked"] {
        let request = format!(
            "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: {coding}\r\nConnection: close\r\n\r\n\
             3\r\nabc\r\n0\r\n\r\n"
        );
        let answer = raw(&proxy, request.as_bytes()).await;
        assert_eq!(answer.status, 501, "{coding}: {}", answer.body);
        assert!(
            answer
                .head
                .contains("x-blastwall-error: unsupported_transfer_coding"),
            "{}",
            answer.head
        );
    }
    assert_eq!(mock.requests().await, 0);
}

#[tokio::test]
async fn connect_gets_501_and_an_asterisk_get_400_and_neither_reaches_the_endpoint() {
    let mock = Mock::start("a", &["--echo"]);
    let proxy = echo_proxy(&mock, "");
    let answer = raw(
        &proxy,
        b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(answer.status, 501, "{}", answer.body);
    assert!(
        answer
            .head
            .contains("x-blastwall-error: unsupported_method"),
        "{}",
        answer.head
    );
    let answer = raw(
        &proxy,
        b"GET * HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert_eq!(mock.requests().await, 0);
}

#[tokio::test]
async fn a_bare_lf_in_a_chunked_body_never_makes_a_whole_request_upstream() {
    let mock = Mock::start("a", &["--echo"]);
    let proxy = echo_proxy(&mock, "");
    for body in [
        &b"3;ext\nabc\r\nabc\r\n0\r\n\r\n"[..],
        b"3\r\nabc\r\n0\r\n\n",
    ] {
        let mut request =
            b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                .to_vec();
        request.extend_from_slice(body);
        let answer = raw(&proxy, &request).await;
        assert!(answer.status >= 400, "{}: {}", answer.status, answer.body);
        assert!(!answer.body.contains("body_bytes"), "{}", answer.body);
    }
}

#[tokio::test]
async fn look_alikes_of_the_framing_headers_are_refused_and_equal_lengths_go_as_one() {
    let mock = Mock::start("a", &["--echo"]);
    let proxy = echo_proxy(&mock, "");
    let answer = raw(
        &proxy,
        b"POST /x HTTP/1.1\r\nHost: a\r\nContent_Length: 5\r\nContent-Length: 3\r\n\
          Connection: close\r\n\r\nabc",
    )
    .await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert_eq!(mock.requests().await, 0);
    let answer = raw(
        &proxy,
        b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\
          Connection: close\r\n\r\nabc",
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let seen: serde_json::Value = serde_json::from_str(&answer.body).expect("an echo");
    let lengths = seen["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .filter(|pair| pair[0] == "content-length")
        .count();
    assert_eq!(lengths, 1, "{}", answer.body);
    assert_eq!(seen["body_bytes"], 3);
}

#[tokio::test]
async fn a_route_cannot_be_bypassed_by_another_spelling_of_its_path() {
    let mock = Mock::start("a", &["--echo"]);
    let config = format!(
        r#"
[[listener]]
name = "public"
listen = "127.0.0.1:0"

[cluster.api]
endpoints = [{}]

[[route]]
name = "m"
cluster = "api"
match = {{ path_prefix = "/m/" }}
response_headers = {{ add = {{ "x-route" = "m" }} }}

[[route]]
name = "rest"
cluster = "api"
response_headers = {{ add = {{ "x-route" = "rest" }} }}
{}"#,
        endpoint(&mock, ""),
        admin_section("")
    );
    let proxy = Proxy::start(&config);
    for target in [
        "/m/x",
        "/%6d/x",
        "/%6D/x",
        "/a/../m/x",
        "//m/x",
        "/./m/x",
        "/../m/x",
        "/%2e%2e/m/./x",
    ] {
        let request = format!("GET {target}?q=1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
        let answer = raw(&proxy, request.as_bytes()).await;
        assert_eq!(answer.status, 200, "{target}: {}", answer.body);
        assert!(
            answer.head.contains("x-route: m"),
            "{target}: {}",
            answer.head
        );
        let seen: serde_json::Value = serde_json::from_str(&answer.body).expect("an echo");
        assert_eq!(seen["uri"], "/m/x?q=1", "{target}");
    }
    // An encoded slash is refused by default (`escaped_slashes`; see paths.rs).
    let encoded_slash = raw(
        &proxy,
        b"GET /m%2Fx HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(encoded_slash.status, 400, "{}", encoded_slash.body);
    // `%32` is `2`: decoded around the stray `%`s it would leave `%2e%2e`, a `..` for the
    // endpoint that no route saw.
    let stray_percent = raw(
        &proxy,
        b"GET /a/%%32e%%32e/m/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(stray_percent.status, 400, "{}", stray_percent.body);
    // What servers read as `/` (a backslash) or as `..` (a dot segment with parameters, in
    // servlet containers) is refused: the endpoint would resolve what no route saw.
    for target in ["/m\\x", "/m%5Cx", "/x/..;/m/x"] {
        let request = format!("GET {target} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
        let answer = raw(&proxy, request.as_bytes()).await;
        assert_eq!(answer.status, 400, "{target}: {}", answer.body);
    }
}

#[tokio::test]
async fn error_answers_do_not_reveal_endpoint_addresses() {
    // A port nothing listens on: bound, then let go.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bound")
        .local_addr()
        .expect("an address");
    let slow = Mock::start("slow", &[]);
    slow.set_behaviour(r#"{"latency": "5s"}"#).await;
    let config = format!(
        r#"
[[listener]]
name = "public"
listen = "127.0.0.1:0"

[cluster.dead]
endpoints = [{{ address = "{closed}" }}]

[cluster.slow]
request_timeout = "100ms"
endpoints = [{{ address = "{}" }}]

[[route]]
cluster = "dead"
match = {{ path_prefix = "/dead" }}

[[route]]
cluster = "slow"
{}"#,
        slow.addr,
        admin_section("")
    );
    let proxy = Proxy::start(&config);
    for (path, status, address) in [
        ("/dead", 502, closed.to_string()),
        ("/slow", 504, slow.addr.to_string()),
    ] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
        let answer = raw(&proxy, request.as_bytes()).await;
        assert_eq!(answer.status, status, "{path}: {}", answer.body);
        let port = address.rsplit(':').next().expect("a port");
        for text in [&answer.head, &answer.body] {
            assert!(
                !text.contains(&address) && !text.contains(port),
                "{path} reveals {address}: {text}"
            );
        }
    }
}

/// An HTTP/2 (prior knowledge) connection to the proxy, driven in the background.
async fn h2c(
    proxy: &Proxy,
) -> hyper::client::conn::http2::SendRequest<http_body_util::Empty<bytes::Bytes>> {
    let stream = TcpStream::connect(proxy.addr()).await.expect("connected");
    let (sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("an h2c handshake");
    tokio::spawn(connection);
    sender
}

#[tokio::test]
async fn over_http2_paths_are_normalized_and_framing_look_alikes_refused_too() {
    let mock = Mock::start("a", &["--echo"]);
    let proxy = echo_proxy(&mock, "");
    let mut sender = h2c(&proxy).await;
    let request = |path: &str, extra: Option<(&str, &str)>| {
        let mut request = http::Request::get(format!("http://{}{path}", proxy.addr()));
        if let Some((name, value)) = extra {
            request = request.header(name, value);
        }
        request
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .expect("a request")
    };
    let answer = sender
        .send_request(request("/a/../%6d//x", None))
        .await
        .expect("answered");
    assert_eq!(answer.status(), 200);
    let body = http_body_util::BodyExt::collect(answer.into_body())
        .await
        .expect("a body")
        .to_bytes();
    let seen: serde_json::Value = serde_json::from_slice(&body).expect("an echo");
    assert_eq!(seen["uri"], "/m/x");
    let answer = sender
        .send_request(request("/x", Some(("content_length", "5"))))
        .await
        .expect("answered");
    assert_eq!(answer.status(), 400);
    assert_eq!(mock.requests().await, 1);
}

#[tokio::test]
async fn an_http2_clients_cookie_fields_reach_an_http1_endpoint_as_one_line() {
    let mock = Mock::start("a", &["--echo"]);
    let proxy = echo_proxy(&mock, "");
    let mut sender = h2c(&proxy).await;
    let request = http::Request::get(format!("http://{}/x", proxy.addr()))
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .expect("a request");
    let answer = sender.send_request(request).await.expect("answered");
    assert_eq!(answer.status(), 200);
    let body = http_body_util::BodyExt::collect(answer.into_body())
        .await
        .expect("a body")
        .to_bytes();
    let seen: serde_json::Value = serde_json::from_slice(&body).expect("an echo");
    let cookies: Vec<&str> = seen["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .filter(|pair| pair[0] == "cookie")
        .filter_map(|pair| pair[1].as_str())
        .collect();
    assert_eq!(cookies, ["a=1; b=2"]);
}
