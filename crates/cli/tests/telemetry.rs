//! Telemetry against the real binary: access log lines in a file for what really happened
//! (a success, a retry, a failure), W3C trace context reaching a real upstream, and spans
//! reaching an OTLP collector.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use http::{Method, StatusCode};
use support::{Mock, Proxy, endpoint, eventually, route_config, seen_header, send};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_PARENT: &str = "00f067aa0ba902b7";

fn client_traceparent() -> String {
    format!("00-{CLIENT_TRACE}-{CLIENT_PARENT}-01")
}

/// A proxy with route `api` to cluster `api` (round robin over `endpoints`, two attempts)
/// and `sections` appended.
fn proxy(endpoints: &[String], sections: &str) -> Proxy {
    let route = format!(
        "[route.retry]\nattempts = 2\nbackoff = {{ base = \"1ms\", max = \"2ms\" }}\n\n{sections}"
    );
    Proxy::start(&route_config(&route, "", endpoints))
}

#[tokio::test]
async fn access_log_lines_record_a_success_a_retry_and_a_failure() {
    let folder = tempfile::tempdir().expect("a temporary folder");
    let log = folder.path().join("access.log");
    let (first, second) = (Mock::start("first", &[]), Mock::start("second", &[]));
    let proxy = proxy(
        &[endpoint(&first, ""), endpoint(&second, "")],
        &format!("[access_log]\npath = {:?}\n", log.to_str().expect("utf-8")),
    );

    let ok = send(
        Method::GET,
        &proxy.url("/a"),
        "",
        &[("x-request-id", "req-ok")],
    )
    .await;
    assert_eq!(ok.0, StatusCode::OK);
    first.set_behaviour(r#"{"mode": "reset"}"#).await;
    // Round robin: within two requests one goes to `first` first and is retried.
    for n in 0..2 {
        let id = format!("req-retry-{n}");
        let answer = send(
            Method::GET,
            &proxy.url("/b"),
            "",
            &[
                ("x-request-id", &id),
                ("traceparent", &client_traceparent()),
            ],
        )
        .await;
        assert_eq!(answer.0, StatusCode::OK, "{answer:?}");
    }
    second.set_behaviour(r#"{"mode": "reset"}"#).await;
    let failed = send(
        Method::GET,
        &proxy.url("/c"),
        "",
        &[("x-request-id", "req-fail")],
    )
    .await;
    assert_eq!(failed.0, StatusCode::BAD_GATEWAY);

    let written = eventually(Duration::from_secs(10), || async {
        support::access_log(&log).len() >= 4
    })
    .await;
    assert!(written, "access log: {:?}", support::access_log(&log));
    let lines = support::access_log(&log);
    let by_id = |id: &str| {
        lines
            .iter()
            .find(|line| line["request_id"] == id)
            .unwrap_or_else(|| panic!("no line for {id}: {lines:?}"))
            .clone()
    };
    let ok = by_id("req-ok");
    assert_eq!(ok["status"], 200);
    assert_eq!(ok["route"], "api");
    assert_eq!(ok["cluster"], "api");
    assert_eq!(ok["method"], "GET");
    assert_eq!(ok["attempts"], 1);
    assert_eq!(ok["bytes"], 3, "the mock's \"ok\\n\"");
    assert_eq!(ok["error"], serde_json::Value::Null);
    assert_eq!(ok["trace_id"], serde_json::Value::Null);
    assert!(ok["upstream_ms"].as_f64().expect("upstream time") >= 0.0);
    assert!(ok["total_ms"].as_f64() >= ok["upstream_ms"].as_f64());
    assert!(ok["time"].as_str().expect("a time").ends_with('Z'));

    let retried = [by_id("req-retry-0"), by_id("req-retry-1")]
        .into_iter()
        .find(|line| line["attempts"] == 2)
        .expect("one of the two was retried");
    assert_eq!(retried["status"], 200);
    assert_eq!(retried["endpoint"], second.addr.to_string());
    assert_eq!(
        retried["trace_id"], CLIENT_TRACE,
        "the client's trace, tracing off"
    );

    let failed = by_id("req-fail");
    assert_eq!(failed["status"], 502);
    assert_eq!(failed["attempts"], 2);
    assert_eq!(failed["error"], "upstream_reset");
}

#[tokio::test]
async fn access_log_times_are_the_utc_wall_clock_time_each_request_arrived() {
    let folder = tempfile::tempdir().expect("a temporary folder");
    let log = folder.path().join("access.log");
    let mock = Mock::start("clock", &[]);
    let proxy = proxy(
        &[endpoint(&mock, "")],
        &format!("[access_log]\npath = {:?}\n", log.to_str().expect("utf-8")),
    );
    let mut sent = Vec::new();
    for n in 0..3 {
        let id = format!("req-clock-{n}");
        let before = SystemTime::now();
        let answer = send(Method::GET, &proxy.url("/"), "", &[("x-request-id", &id)]).await;
        assert_eq!(answer.0, StatusCode::OK);
        sent.push((id, before, SystemTime::now()));
    }
    let written = eventually(Duration::from_secs(10), || async {
        support::access_log(&log).len() >= 3
    })
    .await;
    assert!(written, "access log: {:?}", support::access_log(&log));
    let lines = support::access_log(&log);
    for (id, before, after) in sent {
        let line = lines
            .iter()
            .find(|line| line["request_id"] == *id)
            .unwrap_or_else(|| panic!("no line for {id}: {lines:?}"));
        let text = line["time"].as_str().expect("a time");
        let time = humantime::parse_rfc3339(text).expect("RFC 3339 in UTC");
        // Written in whole milliseconds: up to one before the instant it stands for.
        assert!(
            time + Duration::from_millis(1) > before && time <= after,
            "{id} at {text}, sent at {} and answered by {}",
            humantime::format_rfc3339_micros(before),
            humantime::format_rfc3339_micros(after)
        );
    }
}

#[tokio::test]
async fn traceparent_reaches_the_upstream_with_the_clients_trace_and_a_new_parent() {
    let echo = Mock::start("echo", &[]);
    echo.set_behaviour(r#"{"echo": true}"#).await;
    // A collector nobody listens on: export fails, propagation does not care.
    let traced = proxy(
        &[endpoint(&echo, "")],
        "[tracing]\notlp_endpoint = \"http://127.0.0.1:9\"\n",
    );
    let headers = [
        ("traceparent", client_traceparent()),
        ("tracestate", "vendor=abc".to_owned()),
    ];
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let (status, _, echoed) = send(Method::GET, &traced.url("/t"), "", &headers).await;
    assert_eq!(status, StatusCode::OK);
    let sent = seen_header(&echoed, "traceparent").expect("a traceparent upstream");
    let fields: Vec<&str> = sent.split('-').collect();
    assert_eq!(fields.len(), 4, "{sent}");
    assert_eq!(
        (fields[0], fields[1], fields[3]),
        ("00", CLIENT_TRACE, "01")
    );
    assert_ne!(
        fields[2], CLIENT_PARENT,
        "the proxy's attempt is the new parent"
    );
    assert_eq!(
        seen_header(&echoed, "tracestate").as_deref(),
        Some("vendor=abc")
    );

    // Without a traceparent, a new trace starts here.
    let (_, _, echoed) = send(Method::GET, &traced.url("/t"), "", &[]).await;
    let sent = seen_header(&echoed, "traceparent").expect("a new trace");
    assert_eq!(sent.len(), 55, "{sent}");
    assert!(!sent.contains(CLIENT_TRACE));

    // Tracing off: the client's context passes through untouched.
    let plain = proxy(&[endpoint(&echo, "")], "");
    let (_, _, echoed) = send(Method::GET, &plain.url("/t"), "", &headers).await;
    assert_eq!(
        seen_header(&echoed, "traceparent"),
        Some(client_traceparent())
    );
    assert_eq!(
        seen_header(&echoed, "tracestate").as_deref(),
        Some("vendor=abc")
    );
    let (_, _, echoed) = send(Method::GET, &plain.url("/t"), "", &[]).await;
    assert_eq!(seen_header(&echoed, "traceparent"), None);
}

/// A fake OTLP/HTTP collector: answers 200 to every POST and hands over each body.
async fn collector() -> (SocketAddr, mpsc::UnboundedReceiver<serde_json::Value>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let addr = listener.local_addr().expect("an address");
    let (bodies, received) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let bodies = bodies.clone();
            tokio::spawn(async move {
                let mut read = Vec::new();
                let mut buffer = [0u8; 8192];
                loop {
                    let Ok(n) = stream.read(&mut buffer).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    read.extend_from_slice(&buffer[..n]);
                    let text = String::from_utf8_lossy(&read);
                    let Some(end) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let length: usize = text[..end]
                        .lines()
                        .find_map(|line| {
                            let (name, value) = line.split_once(':')?;
                            name.eq_ignore_ascii_case("content-length")
                                .then(|| value.trim().parse().ok())?
                        })
                        .unwrap_or(0);
                    if read.len() < end + 4 + length {
                        continue;
                    }
                    let body = &read[end + 4..end + 4 + length];
                    let _ = stream
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                    if let Ok(json) = serde_json::from_slice(body) {
                        let _ = bodies.send(json);
                    }
                    return;
                }
            });
        }
    });
    (addr, received)
}

#[tokio::test]
async fn request_and_attempt_spans_reach_an_otlp_collector() {
    let (addr, mut received) = collector().await;
    let (first, second) = (Mock::start("first", &[]), Mock::start("second", &[]));
    first.set_behaviour(r#"{"mode": "reset"}"#).await;
    let proxy = proxy(
        &[endpoint(&first, ""), endpoint(&second, "")],
        &format!("[tracing]\notlp_endpoint = \"http://{addr}\"\nservice_name = \"edge\"\n"),
    );
    // Two requests: round robin sends one of them to `first` first, so it is retried.
    for _ in 0..2 {
        let answer = send(
            Method::GET,
            &proxy.url("/s"),
            "",
            &[("traceparent", &client_traceparent())],
        )
        .await;
        assert_eq!(answer.0, StatusCode::OK);
    }
    let attribute = |span: &serde_json::Value, key: &str| {
        span["attributes"]
            .as_array()
            .and_then(|all| all.iter().find(|pair| pair["key"] == key))
            .map(|pair| pair["value"].clone())
    };
    let named = |spans: &[serde_json::Value], name: &str| -> Vec<serde_json::Value> {
        spans
            .iter()
            .filter(|s| s["name"] == name)
            .cloned()
            .collect()
    };
    // Each request span says how many attempts it made: wait for all of their spans.
    let complete = |spans: &[serde_json::Value]| {
        let requests = named(spans, "request");
        let sent: usize = requests
            .iter()
            .filter_map(|request| attribute(request, "blastwall.attempts"))
            .filter_map(|count| count["intValue"].as_str()?.parse::<usize>().ok())
            .sum();
        requests.len() == 2 && named(spans, "attempt").len() == sent
    };
    let mut spans = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !complete(&spans) {
        let body = tokio::time::timeout_at(deadline, received.recv())
            .await
            .unwrap_or_else(|_| panic!("spans within 15s: {spans:#?}"))
            .expect("the collector runs");
        let resource = &body["resourceSpans"][0];
        assert_eq!(
            resource["resource"]["attributes"][0]["value"]["stringValue"],
            "edge"
        );
        spans.extend(
            resource["scopeSpans"][0]["spans"]
                .as_array()
                .expect("spans")
                .iter()
                .cloned(),
        );
    }
    assert!(spans.iter().all(|span| span["traceId"] == CLIENT_TRACE));
    let requests = named(&spans, "request");
    for request in &requests {
        assert_eq!(request["parentSpanId"], CLIENT_PARENT);
        assert_eq!(request["kind"], 2);
    }
    let attempts = named(&spans, "attempt");
    assert!(attempts.len() >= 3, "one request was retried: {spans:#?}");
    for attempt in &attempts {
        assert_eq!(attempt["kind"], 3);
        assert!(
            requests
                .iter()
                .any(|request| request["spanId"] == attempt["parentSpanId"]),
            "an attempt's parent is its request: {attempt}"
        );
    }
    let second_try = attempts
        .iter()
        .find(|attempt| {
            attribute(attempt, "blastwall.attempt").is_some_and(|n| n["intValue"] == "2")
        })
        .expect("a second attempt");
    assert_eq!(
        attribute(second_try, "server.address").expect("an endpoint")["stringValue"],
        second.addr.to_string()
    );
    assert!(requests.iter().all(|request| {
        attribute(request, "blastwall.route").is_some_and(|route| route["stringValue"] == "api")
    }));
}
