//! An endpoint that starts its answers and never finishes them is charged for it: a body cut
//! off before its `Content-Length` (HTTP/1.1), a stream reset mid-body (HTTP/2), or a body
//! that stops coming for `body_read_timeout` is a failure of that endpoint, which outlier
//! detection ejects like one answering 502. A client that stops reading or leaves is never
//! the endpoint's failure.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use http::StatusCode;
use support::{
    Mock, Proxy, admin_section, admin_url, endpoint, eventually, get, single_cluster_config,
    small_window_socket,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

const WITHIN: Duration = Duration::from_secs(20);

/// Ejects after three failures in a row, for a long time (no return during the test).
const EJECT_AFTER_THREE: &str = r#"
[cluster.api.outlier_detection]
consecutive_errors = 3
consecutive_gateway_errors = 3
base_ejection_time = "60s"
"#;

fn proxy(mocks: &[&Mock], cluster_keys: &str, sections: &str) -> Proxy {
    let endpoints: Vec<String> = mocks.iter().map(|mock| endpoint(mock, "")).collect();
    let sections = format!("{sections}{}", admin_section(""));
    Proxy::start(&single_cluster_config(
        &format!("balance = \"round_robin\"\n{cluster_keys}"),
        &endpoints,
        &sections,
    ))
}

/// Whether `count` requests were all answered 200 with their whole body, none by `mock`.
async fn avoided(proxy: &Proxy, mock: &Mock, count: usize) -> bool {
    let before = mock.requests().await;
    for _ in 0..count {
        let (status, _, body) = get(&proxy.url("/work")).await;
        if status != StatusCode::OK || body != "ok\n" {
            return false;
        }
    }
    mock.requests().await == before
}

/// The cluster's stats from the admin API.
async fn cluster_stats(proxy: &Proxy) -> serde_json::Value {
    let url = admin_url(proxy, "/admin/clusters");
    let (_, _, body) = get(&url).await;
    let body: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    body["clusters"][0]["stats"].clone()
}

async fn body_failures(proxy: &Proxy) -> u64 {
    cluster_stats(proxy).await["attempt_body_failures"]
        .as_u64()
        .expect("attempt_body_failures is reported")
}

async fn ejected_when_its_bodies_break(mode: &str, cluster_keys: &str) {
    let (healthy, broken) = (Mock::start("healthy", &[]), Mock::start("broken", &[]));
    let proxy = proxy(&[&healthy, &broken], cluster_keys, EJECT_AFTER_THREE);
    assert_eq!(get(&proxy.url("/work")).await.0, StatusCode::OK);
    broken
        .set_behaviour(&format!(r#"{{"mode": "{mode}"}}"#))
        .await;
    assert!(
        eventually(WITHIN, || avoided(&proxy, &broken, 20)).await,
        "an endpoint whose bodies break ({mode}) was never ejected"
    );
    assert!(body_failures(&proxy).await >= 3);
    let stats = cluster_stats(&proxy).await;
    assert_eq!(stats["ejections"], 1, "{stats}");
}

#[tokio::test]
async fn an_endpoint_that_cuts_its_bodies_short_is_ejected_and_traffic_moves_to_the_healthy_one() {
    ejected_when_its_bodies_break("cut_body", "").await;
}

#[tokio::test]
async fn an_http2_endpoint_that_resets_its_streams_mid_body_is_ejected() {
    ejected_when_its_bodies_break("cut_body", "protocol = \"http2\"").await;
}

#[tokio::test]
async fn an_endpoint_whose_bodies_stall_past_the_body_read_timeout_is_ejected() {
    ejected_when_its_bodies_break("stall_body", "body_read_timeout = \"300ms\"").await;
}

#[tokio::test]
async fn an_endpoint_breaker_opens_on_bodies_cut_short() {
    let (healthy, broken) = (Mock::start("healthy", &[]), Mock::start("broken", &[]));
    let breaker = "\n[cluster.api.endpoint_circuit_breaker]\nconsecutive_failures = 2\nopen_duration = \"60s\"\n";
    let proxy = proxy(&[&healthy, &broken], "", breaker);
    broken.set_behaviour(r#"{"mode": "cut_body"}"#).await;
    assert!(
        eventually(WITHIN, || avoided(&proxy, &broken, 20)).await,
        "the endpoint's breaker never opened"
    );
    assert_eq!(cluster_stats(&proxy).await["endpoint_breaker_opened"], 1);
}

#[tokio::test]
async fn the_cluster_breaker_opens_on_bodies_cut_short() {
    let broken = Mock::start("broken", &["--mode", "cut-body"]);
    let breaker =
        "\n[cluster.api.circuit_breaker]\nconsecutive_failures = 3\nopen_duration = \"60s\"\n";
    let proxy = proxy(&[&broken], "", breaker);
    let opened = eventually(WITHIN, || async {
        let (_, headers, _) = get(&proxy.url("/work")).await;
        headers
            .get("x-blastwall-error")
            .is_some_and(|error| error == "breaker_open")
    })
    .await;
    assert!(opened, "the cluster's breaker never opened");
    let stats = cluster_stats(&proxy).await;
    assert_eq!(stats["breaker_opened"], 1, "{stats}");
    assert_eq!(stats["attempt_body_failures"], 3, "{stats}");
}

const LARGE: usize = 1024 * 1024;

/// Asks for the large answer, reads nothing for `pause`, then reads `then_read` bytes (all of
/// it when `None`) and returns how many came. With a small window the client then reads
/// slowly too; without, at once.
async fn read_slowly(
    proxy: SocketAddr,
    small_window: bool,
    pause: Duration,
    then_read: Option<usize>,
) -> usize {
    let socket = match small_window {
        true => small_window_socket(),
        false => TcpSocket::new_v4(),
    };
    let mut stream = socket
        .expect("a socket")
        .connect(proxy)
        .await
        .expect("connects");
    stream
        .write_all(b"GET /large HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("writes");
    // NOTE: the client's own behaviour (it does not read), not a wait for the proxy.
    tokio::time::sleep(pause).await;
    let mut read = 0;
    let mut buffer = vec![0; 64 * 1024];
    while then_read.is_none_or(|wanted| read < wanted) {
        match tokio::time::timeout(WITHIN, stream.read(&mut buffer)).await {
            Ok(Ok(0) | Err(_)) | Err(_) => break,
            Ok(Ok(n)) => read += n,
        }
    }
    read
}

/// Slow readers and clients that leave half-way, against an endpoint that answers `size`
/// bytes: none of it may be charged to the endpoint.
async fn slow_clients_charge_nothing(
    cluster_keys: &str,
    sections: &str,
    size: usize,
    small_window: bool,
) {
    let upstream = Mock::start("large", &["--body-size", &size.to_string()]);
    let sensitive = "\n[cluster.api.outlier_detection]\nconsecutive_errors = 1\nconsecutive_gateway_errors = 1\nbase_ejection_time = \"60s\"\n";
    let keys = format!("body_read_timeout = \"250ms\"\n{cluster_keys}");
    let proxy = proxy(&[&upstream], &keys, &format!("{sensitive}{sections}"));
    // Six times the body read timeout without reading: the proxy waits on the client, not
    // on the endpoint, so the whole answer still comes.
    let pause = Duration::from_millis(1500);
    let slow = (0..3).map(|_| read_slowly(proxy.addr(), small_window, pause, None));
    let reads = futures_join(slow).await;
    let stats = cluster_stats(&proxy).await;
    for read in reads {
        assert!(
            read > size,
            "a slow reader got {read} bytes, short of the answer: {stats}"
        );
    }
    // Clients that leave half-way.
    let leaving = (0..3).map(|_| {
        read_slowly(
            proxy.addr(),
            small_window,
            Duration::from_millis(300),
            Some(1),
        )
    });
    for read in futures_join(leaving).await {
        assert!(read > 0);
    }
    let stats = cluster_stats(&proxy).await;
    assert_eq!(stats["attempt_body_failures"], 0, "{stats}");
    assert_eq!(stats["ejections"], 0, "{stats}");
    let (status, _, body) = get(&proxy.url("/large")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.len(), size, "the endpoint still serves");
}

/// With the stale-if-error cache capturing each answer (and giving up on it when the client
/// leaves), as a route with that fallback does.
#[tokio::test]
async fn a_client_that_stops_reading_or_leaves_never_gets_a_healthy_endpoint_ejected() {
    let stale = "\n[route.fallback]\nstale_if_error = { max_age = \"10m\", max_body = \"2MiB\" }\n";
    slow_clients_charge_nothing("", stale, LARGE, true).await;
}

/// The same for HTTP/1.1: once the buffers between the endpoint and the proxy are full, a
/// client that pauses and then reads fast has the proxy wait on the endpoint again.
#[tokio::test]
async fn an_http1_endpoint_is_not_charged_for_the_time_a_client_did_not_read() {
    slow_clients_charge_nothing("", "", 64 * LARGE, false).await;
}

/// Over HTTP/2 the endpoint can send only its stream's window ahead of what the proxy took,
/// so a client that pauses and then reads fast has the proxy wait on the endpoint again:
/// the body read timeout must start anew then, not run through the client's pause.
#[tokio::test]
async fn an_http2_endpoint_is_not_charged_for_the_time_a_client_did_not_read() {
    slow_clients_charge_nothing("protocol = \"http2\"", "", 16 * LARGE, false).await;
}

/// Runs the futures at once and collects their outputs in order.
async fn futures_join<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut outputs = Vec::new();
    for handle in handles {
        outputs.push(handle.await.expect("a task"));
    }
    outputs
}
