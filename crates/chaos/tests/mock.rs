//! The mock service against a real HTTP client on loopback.

use std::time::Duration;

use blastwall_chaos::mock::{self, Behaviour, MockConfig, MockHandle, Mode, NAME_HEADER};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

// The suites' one poll-until, from the cli's test support (whose rest runs the binary).
#[path = "../../cli/tests/support/eventually.rs"]
mod eventually;

use self::eventually::eventually;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn start(behaviour: Behaviour) -> MockHandle {
    mock::start(MockConfig {
        name: "replica-a".into(),
        listen: "127.0.0.1:0".parse().expect("valid address"),
        behaviour,
        seed: 7,
    })
    .await
    .expect("mock starts")
}

async fn send(
    client: &HttpClient,
    mock: &MockHandle,
    method: Method,
    path: &str,
    body: &str,
) -> Result<(StatusCode, http::HeaderMap, String), hyper_util::client::legacy::Error> {
    let request = Request::builder()
        .method(method)
        .uri(format!("http://{}{path}", mock.addr()))
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("valid request");
    let response = client.request(request).await?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Ok((
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    ))
}

async fn get(
    client: &HttpClient,
    mock: &MockHandle,
    path: &str,
) -> (StatusCode, http::HeaderMap, String) {
    send(client, mock, Method::GET, path, "")
        .await
        .expect("mock answers")
}

/// Waits until the mock's counters say `done`; bounded so a broken mock fails the test.
async fn until(mock: &MockHandle, done: impl Fn(&mock::Stats) -> bool) {
    let held = eventually(Duration::from_secs(5), || {
        let held = done(&mock.stats());
        async move { held }
    })
    .await;
    assert!(held, "condition never held; stats: {:?}", mock.stats());
}

#[tokio::test]
async fn answers_with_its_name_status_and_body() {
    let mock = start(Behaviour::default()).await;
    let (status, headers, body) = get(&client(), &mock, "/anything").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[NAME_HEADER], "replica-a");
    assert_eq!(body, "ok\n");
    assert_eq!(mock.stats().requests, 1);
    assert_eq!(mock.stats().answered_by_class[1], 1);
}

#[tokio::test]
async fn behaviour_changes_at_run_time_through_the_control_api() {
    let mock = start(Behaviour::default()).await;
    let client = client();
    let (status, _, _) = send(
        &client,
        &mock,
        Method::PUT,
        "/_mock/behaviour",
        r#"{"status":503,"body":"down"}"#,
    )
    .await
    .expect("control answers");
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = get(&client, &mock, "/").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "down")
    );
    let (_, _, current) = get(&client, &mock, "/_mock/behaviour").await;
    assert!(current.contains("\"status\":503"), "{current}");
}

#[tokio::test]
async fn the_control_api_refuses_calls_a_proxy_forwarded_but_still_echoes_them() {
    let mock = start(Behaviour::default()).await;
    let client = client();
    for (header, value) in [
        ("x-forwarded-for", "127.0.0.1"),
        ("forwarded", "for=127.0.0.1"),
        ("via", "1.1 blastwall"),
    ] {
        for (method, path) in [
            (Method::PATCH, "/_mock/behaviour"),
            (Method::PUT, "/_mock/behaviour"),
            (Method::GET, "/_mock/stats"),
        ] {
            let request = Request::builder()
                .method(method.clone())
                .uri(format!("http://{}{path}", mock.addr()))
                .header(header, value)
                .body(Full::new(Bytes::from_static(br#"{"status":500}"#)))
                .expect("valid request");
            let response = client.request(request).await.expect("answered");
            assert_eq!(
                response.status(),
                StatusCode::FORBIDDEN,
                "{method} {path} {header}"
            );
            let body = response
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes();
            assert!(
                String::from_utf8_lossy(&body).contains("came through a proxy"),
                "{body:?}"
            );
        }
        let echo = Request::builder()
            .uri(format!("http://{}/_mock/echo", mock.addr()))
            .header(header, value)
            .body(Full::new(Bytes::new()))
            .expect("valid request");
        let echoed = client.request(echo).await.expect("answered");
        assert_eq!(echoed.status(), StatusCode::OK);
    }
    assert_eq!(mock.behaviour(), Behaviour::default());
    let (status, _, _) = get(&client, &mock, "/").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_bad_behaviour_is_refused_and_the_old_one_stays() {
    let mock = start(Behaviour::default()).await;
    let client = client();
    let (status, _, error) = send(
        &client,
        &mock,
        Method::PUT,
        "/_mock/behaviour",
        r#"{"failure_rate":2}"#,
    )
    .await
    .expect("control answers");
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error.contains("failure_rate must be between 0 and 1"),
        "{error}"
    );
    let (status, _, error) = send(&client, &mock, Method::PUT, "/_mock/behaviour", "{not json")
        .await
        .expect("control answers");
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error.contains("invalid behaviour JSON"), "{error}");
    assert_eq!(mock.behaviour(), Behaviour::default());
    assert_eq!(get(&client, &mock, "/").await.0, StatusCode::OK);
}

#[tokio::test]
async fn unknown_control_calls_get_404_with_a_message() {
    let mock = start(Behaviour::default()).await;
    let (status, _, body) = get(&client(), &mock, "/_mock/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("no control call /_mock/nope"), "{body}");
    assert_eq!(
        mock.stats().requests,
        0,
        "control calls are not counted as traffic"
    );
}

#[tokio::test]
async fn echo_reports_the_request_as_received() {
    let mock = start(Behaviour {
        echo: true,
        ..Behaviour::default()
    })
    .await;
    let (status, _, body) = send(&client(), &mock, Method::POST, "/orders?id=4", "hello")
        .await
        .expect("mock answers");
    assert_eq!(status, StatusCode::OK);
    let echo: serde_json::Value = serde_json::from_str(&body).expect("echo is JSON");
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["uri"], "/orders?id=4");
    assert_eq!(echo["body_bytes"], 5);
    assert_eq!(echo["name"], "replica-a");
}

#[tokio::test]
async fn reset_mode_resets_the_connection() {
    let mock = start(Behaviour {
        mode: Mode::Reset,
        ..Behaviour::default()
    })
    .await;
    let error = send(&client(), &mock, Method::GET, "/", "")
        .await
        .expect_err("no answer");
    assert_eq!(mock.stats().resets, 1, "{error:?}");
}

#[tokio::test]
async fn hang_mode_never_answers_until_the_mock_stops() {
    let mock = start(Behaviour {
        mode: Mode::Hang,
        ..Behaviour::default()
    })
    .await;
    let client = client();
    let request = tokio::spawn({
        let uri = format!("http://{}/", mock.addr());
        let client = client.clone();
        async move { client.get(uri.parse().expect("valid uri")).await }
    });
    until(&mock, |stats| stats.hangs == 1).await;
    assert!(!request.is_finished(), "a hanging mock must not answer");
    mock.stop().await;
    let outcome = tokio::time::timeout(Duration::from_secs(10), request)
        .await
        .expect("stopping the mock ends the hanging request")
        .expect("task");
    assert!(outcome.is_err(), "the connection was dropped, not answered");
}

#[tokio::test]
async fn over_capacity_answers_503_with_retry_after() {
    let mock = start(Behaviour {
        latency: Duration::from_secs(30),
        capacity: Some(1),
        ..Behaviour::default()
    })
    .await;
    let client = client();
    let _slow = tokio::spawn({
        let uri = format!("http://{}/", mock.addr());
        let client = client.clone();
        async move { client.get(uri.parse().expect("valid uri")).await }
    });
    until(&mock, |stats| stats.in_flight == 1).await;
    let (status, headers, _) = get(&client, &mock, "/").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(mock.stats().overloaded, 1);
}

#[tokio::test]
async fn a_stopped_mock_refuses_connections() {
    let mock = start(Behaviour::default()).await;
    let addr = mock.addr();
    mock.stop().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn serves_http2_with_prior_knowledge() {
    let mock = start(Behaviour::default()).await;
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let (status, _, body) = get(&client, &mock, "/").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok\n"));
}
