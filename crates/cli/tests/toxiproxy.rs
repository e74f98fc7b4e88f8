//! `blastwall toxiproxy` as Toxiproxy's clients see it: the HTTP API's answers and errors
//! word for word, and the data path of a TCP echo server behind a proxy with each toxic.

mod support;

use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde_json::{Value, json};
use support::toxiproxy_api::{add_toxic, call, echo_server, proxy};
use support::{Toxiproxy, send};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Writes `data` and reads as many bytes back, with the time it took.
async fn round_trip(stream: &mut TcpStream, data: &[u8]) -> Duration {
    let start = Instant::now();
    stream.write_all(data).await.expect("written");
    let mut back = vec![0; data.len()];
    stream.read_exact(&mut back).await.expect("echoed");
    assert_eq!(back, data);
    start.elapsed()
}

#[tokio::test]
async fn a_proxy_created_on_port_zero_answers_201_with_its_real_port_and_pipes_bytes() {
    let server = Toxiproxy::start();
    let echo = echo_server().await;
    let listen = proxy(&server, "echo", echo).await;
    assert_ne!(listen.port(), 0);
    let mut stream = TcpStream::connect(listen).await.expect("connected");
    round_trip(&mut stream, b"hello").await;

    let (status, all) = call(&server, Method::GET, "/proxies", Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        all["echo"],
        json!({"name": "echo", "listen": listen.to_string(), "upstream": echo.to_string(),
               "enabled": true, "toxics": []})
    );
}

#[tokio::test]
async fn api_errors_carry_toxiproxys_message_and_status() {
    let server = Toxiproxy::start();
    let echo = echo_server().await;
    proxy(&server, "db", echo).await;
    let cases = [
        (
            Method::POST,
            "/proxies",
            json!({"name": "db", "upstream": echo.to_string()}),
            409,
            "proxy already exists",
        ),
        (
            Method::POST,
            "/proxies",
            json!({"name": "x"}),
            400,
            "missing required field: upstream",
        ),
        (
            Method::POST,
            "/proxies",
            json!({"upstream": "127.0.0.1:1"}),
            400,
            "missing required field: name",
        ),
        (
            Method::GET,
            "/proxies/nope",
            Value::Null,
            404,
            "proxy not found",
        ),
        (
            Method::DELETE,
            "/proxies/nope",
            Value::Null,
            404,
            "proxy not found",
        ),
        (
            Method::POST,
            "/proxies/db/toxics",
            json!({"type": "nope"}),
            400,
            "invalid toxic type",
        ),
        (
            Method::POST,
            "/proxies/db/toxics",
            json!({"type": "latency", "stream": "sideways"}),
            400,
            "stream was invalid, can be either upstream or downstream",
        ),
        (
            Method::GET,
            "/proxies/db/toxics/nope",
            Value::Null,
            404,
            "toxic not found",
        ),
        (
            Method::DELETE,
            "/proxies/db/toxics/nope",
            Value::Null,
            404,
            "toxic not found",
        ),
        (
            Method::POST,
            "/proxies/nope/toxics",
            json!({"type": "latency"}),
            404,
            "proxy not found",
        ),
    ];
    for (method, path, body, status, message) in cases {
        let (got, answer) = call(&server, method.clone(), path, body).await;
        assert_eq!(got.as_u16(), status, "{method} {path}: {answer}");
        assert_eq!(
            answer,
            json!({"error": message, "status": status}),
            "{method} {path}"
        );
    }
    let (status, _, answer) = send(Method::POST, &server.url("/proxies"), "{not json", &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer.contains("bad request body"), "{answer}");
    add_toxic(&server, "db", json!({"type": "latency"})).await;
    let (status, answer) = call(
        &server,
        Method::POST,
        "/proxies/db/toxics",
        json!({"type": "latency"}),
    )
    .await;
    assert_eq!(
        (status.as_u16(), answer),
        (409, json!({"error": "toxic already exists", "status": 409}))
    );
}

#[tokio::test]
async fn malformed_input_gets_a_specific_400_and_the_server_keeps_serving() {
    let server = Toxiproxy::start();
    let echo = echo_server().await;
    let listen = proxy(&server, "p", echo).await;
    let mut stream = TcpStream::connect(listen).await.expect("connected");
    let cases = [
        (
            "/proxies/p/toxics",
            json!({"type": "latency", "toxicity": 2}),
            "toxicity must be between 0 and 1",
        ),
        (
            "/proxies/p/toxics",
            json!({"type": "latency", "attributes": {"latency": "fast"}}),
            "attributes: invalid type",
        ),
        (
            "/proxies/p/toxics",
            json!({"type": "slicer", "attributes": {"average_size": 0}}),
            "average_size",
        ),
        (
            "/proxies/p",
            json!({"enabled": "yes"}),
            "enabled: expected true or false",
        ),
        (
            "/proxies",
            json!(["not", "an", "object"]),
            "expected a JSON object",
        ),
        (
            "/populate",
            json!({"name": "x"}),
            "expected an array of proxies",
        ),
    ];
    for (path, body, says) in cases {
        let (status, answer) = call(&server, Method::POST, path, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {answer}");
        let message = answer["error"].as_str().unwrap_or_default();
        assert!(
            message.starts_with("bad request body: ") && message.contains(says),
            "{path}: {message}"
        );
    }
    let huge = "x".repeat(2 * 1024 * 1024);
    let (status, _, _) = send(Method::POST, &server.url("/proxies"), &huge, &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    round_trip(&mut stream, b"still here").await;
    let (_, all) = call(&server, Method::GET, "/proxies", Value::Null).await;
    assert_eq!(all["p"]["toxics"], json!([]));
}

#[tokio::test]
async fn browsers_are_refused_and_the_version_is_json() {
    let server = Toxiproxy::start();
    let agent = [("user-agent", "Mozilla/5.0 (X11; Linux x86_64)")];
    let (status, _, body) = send(Method::GET, &server.url("/proxies"), "", &agent).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::FORBIDDEN, "User agent not allowed\n")
    );
    let (status, version) = call(&server, Method::GET, "/version", Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert!(version["version"].is_string(), "{version}");
    let (status, _, _) = send(Method::DELETE, &server.url("/version"), "", &[]).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (status, _, _) = send(Method::GET, &server.url("/nowhere"), "", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn every_toxic_type_is_created_on_both_streams_with_its_attributes_and_listed() {
    let server = Toxiproxy::start();
    let echo = echo_server().await;
    proxy(&server, "all", echo).await;
    let types = [
        ("latency", json!({"latency": 10, "jitter": 2})),
        ("bandwidth", json!({"rate": 100})),
        ("slow_close", json!({"delay": 10})),
        ("timeout", json!({"timeout": 0})),
        ("reset_peer", json!({"timeout": 0})),
        (
            "slicer",
            json!({"average_size": 64, "size_variation": 32, "delay": 10}),
        ),
        ("limit_data", json!({"bytes": 1000})),
    ];
    for stream in ["upstream", "downstream"] {
        for (kind, attributes) in &types {
            let created = add_toxic(
                &server,
                "all",
                json!({"type": kind, "stream": stream, "toxicity": 0.3, "attributes": attributes}),
            )
            .await;
            assert_eq!(
                created,
                json!({"name": format!("{kind}_{stream}"), "type": kind, "stream": stream,
                       "toxicity": 0.3, "attributes": attributes})
            );
        }
    }
    let (_, listed) = call(&server, Method::GET, "/proxies/all/toxics", Value::Null).await;
    let listed = listed.as_array().expect("an array");
    assert_eq!(listed.len(), 14);
    assert_eq!(listed[0]["stream"], "upstream");
    assert_eq!(listed[13]["stream"], "downstream");
}

#[tokio::test]
async fn a_toxic_update_keeps_what_it_does_not_name_and_a_delete_answers_204() {
    let server = Toxiproxy::start();
    let echo = echo_server().await;
    proxy(&server, "p", echo).await;
    add_toxic(
        &server,
        "p",
        json!({"name": "slow", "type": "latency", "stream": "upstream",
                                   "attributes": {"latency": 100, "jitter": 5}}),
    )
    .await;
    let (status, updated) = call(
        &server,
        Method::POST,
        "/proxies/p/toxics/slow",
        json!({"attributes": {"latency": 200}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(updated["attributes"], json!({"latency": 200, "jitter": 5}));
    assert_eq!(updated["stream"], "upstream");
    let (status, shown) = call(&server, Method::GET, "/proxies/p/toxics/slow", Value::Null).await;
    assert_eq!((status, shown), (StatusCode::OK, updated));
    let (status, _) = call(
        &server,
        Method::DELETE,
        "/proxies/p/toxics/slow",
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, listed) = call(&server, Method::GET, "/proxies/p/toxics", Value::Null).await;
    assert_eq!(listed, json!([]));
}

#[tokio::test]
async fn disabling_a_proxy_refuses_connections_and_a_proxy_update_keeps_missing_fields() {
    let server = Toxiproxy::start();
    let echo = echo_server().await;
    let listen = proxy(&server, "p", echo).await;
    let (status, updated) = call(
        &server,
        Method::POST,
        "/proxies/p",
        json!({"enabled": false}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(updated["enabled"], false);
    assert_eq!(updated["upstream"], echo.to_string());
    assert_eq!(updated["listen"], listen.to_string());
    assert!(
        TcpStream::connect(listen).await.is_err(),
        "a disabled proxy listens no more"
    );
    let (_, updated) = call(
        &server,
        Method::PATCH,
        "/proxies/p",
        json!({"enabled": true}),
    )
    .await;
    assert_eq!(updated["enabled"], true);
    let mut stream = TcpStream::connect(listen).await.expect("listening again");
    round_trip(&mut stream, b"back").await;
}

#[tokio::test]
async fn deleting_a_proxy_closes_its_open_connections() {
    let server = Toxiproxy::start();
    let echo = echo_server().await;
    let listen = proxy(&server, "p", echo).await;
    let mut stream = TcpStream::connect(listen).await.expect("connected");
    round_trip(&mut stream, b"hi").await;
    let (status, _) = call(&server, Method::DELETE, "/proxies/p", Value::Null).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let mut buf = [0; 8];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0) | Err(_))), "closed: {read:?}");
}

#[tokio::test]
async fn populate_answers_201_with_the_proxies_and_reset_clears_toxics_and_enables() {
    let server = Toxiproxy::start();
    let echo = echo_server().await;
    let body = json!([
        {"name": "a", "listen": "127.0.0.1:0", "upstream": echo.to_string()},
        {"name": "b", "listen": "127.0.0.1:0", "upstream": echo.to_string(), "enabled": false},
    ]);
    let (status, populated) = call(&server, Method::POST, "/populate", body).await;
    assert_eq!(status, StatusCode::CREATED, "{populated}");
    let proxies = populated["proxies"].as_array().expect("proxies");
    assert_eq!(proxies.len(), 2);
    assert_eq!(
        (proxies[0]["enabled"].clone(), proxies[1]["enabled"].clone()),
        (json!(true), json!(false))
    );
    let (status, answer) = call(&server, Method::POST, "/populate", json!([{"name": "c"}])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer["error"],
        "missing required field: upstream at proxy 1"
    );

    add_toxic(&server, "a", json!({"type": "latency"})).await;
    let (status, _) = call(&server, Method::POST, "/reset", Value::Null).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, all) = call(&server, Method::GET, "/proxies", Value::Null).await;
    assert_eq!(all["a"]["toxics"], json!([]));
    assert_eq!(all["b"]["enabled"], true);
}

#[tokio::test]
async fn latency_delays_the_answer_by_both_streams_latencies() {
    let server = Toxiproxy::start();
    let echo = echo_server().await;
    let listen = proxy(&server, "p", echo).await;
    let mut stream = TcpStream::connect(listen).await.expect("connected");
    add_toxic(
        &server,
        "p",
        json!({"type": "latency", "stream": "upstream", "attributes": {"latency": 150}}),
    )
    .await;
    add_toxic(
        &server,
        "p",
        json!({"type": "latency", "attributes": {"latency": 150}}),
    )
    .await;
    let took = round_trip(&mut stream, b"slow").await;
    assert!(took >= Duration::from_millis(300), "{took:?}");
}

#[tokio::test]
async fn a_timeout_toxic_stalls_the_data_and_removing_it_closes_the_stalled_connection() {
    let server = Toxiproxy::start();
    let echo = echo_server().await;
    let listen = proxy(&server, "p", echo).await;
    let mut stream = TcpStream::connect(listen).await.expect("connected");
    add_toxic(
        &server,
        "p",
        json!({"type": "timeout", "attributes": {"timeout": 0}}),
    )
    .await;
    stream.write_all(b"lost").await.expect("written");
    let mut buf = [0; 4];
    let read = tokio::time::timeout(Duration::from_millis(500), stream.read(&mut buf)).await;
    assert!(
        read.is_err(),
        "nothing comes back while the timeout toxic is there: {read:?}"
    );
    let (status, _) = call(
        &server,
        Method::DELETE,
        "/proxies/p/toxics/timeout_downstream",
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // As in Toxiproxy, removing a timeout toxic closes the connections it stalled.
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0) | Err(_))), "closed: {read:?}");
    let mut fresh = TcpStream::connect(listen).await.expect("connected");
    round_trip(&mut fresh, b"again").await;
}

#[tokio::test]
async fn a_timeout_with_milliseconds_closes_the_connection() {
    let server = Toxiproxy::start();
    let echo = echo_server().await;
    let listen = proxy(&server, "p", echo).await;
    add_toxic(
        &server,
        "p",
        json!({"type": "timeout", "attributes": {"timeout": 200}}),
    )
    .await;
    let mut stream = TcpStream::connect(listen).await.expect("connected");
    stream.write_all(b"lost").await.expect("written");
    let mut buf = [0; 4];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0) | Err(_))), "closed: {read:?}");
}

#[tokio::test]
async fn limit_data_cuts_the_connection_after_its_bytes() {
    let server = Toxiproxy::start();
    let echo = echo_server().await;
    let listen = proxy(&server, "p", echo).await;
    add_toxic(
        &server,
        "p",
        json!({"type": "limit_data", "attributes": {"bytes": 10}}),
    )
    .await;
    let mut stream = TcpStream::connect(listen).await.expect("connected");
    stream.write_all(&[b'x'; 64]).await.expect("written");
    let mut back = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut back))
        .await
        .expect("the connection is cut");
    assert_eq!(back, vec![b'x'; 10]);
}

#[tokio::test]
async fn reset_peer_resets_the_connection() {
    let server = Toxiproxy::start();
    let echo = echo_server().await;
    let listen = proxy(&server, "p", echo).await;
    add_toxic(
        &server,
        "p",
        json!({"type": "reset_peer", "stream": "upstream", "attributes": {"timeout": 0}}),
    )
    .await;
    let mut stream = TcpStream::connect(listen).await.expect("connected");
    stream.write_all(b"boom").await.expect("written");
    let mut buf = [0; 4];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
        .await
        .expect("the connection ends");
    let err = read.expect_err("a reset, not a clean close");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
}

#[tokio::test]
async fn a_toxic_added_to_an_open_connection_acts_on_it() {
    let server = Toxiproxy::start();
    let echo = echo_server().await;
    let listen = proxy(&server, "p", echo).await;
    let mut stream = TcpStream::connect(listen).await.expect("connected");
    round_trip(&mut stream, b"fast").await;
    add_toxic(
        &server,
        "p",
        json!({"type": "latency", "attributes": {"latency": 300}}),
    )
    .await;
    let took = round_trip(&mut stream, b"slow").await;
    assert!(took >= Duration::from_millis(300), "{took:?}");
}
