//! Stall detection against a hung replica: one of three mocks is stopped (SIGSTOP: the
//! kernel still accepts its connections, nothing answers), is taken out of routing once it
//! has been busy and silent for `stall_after`, and takes traffic again when it answers.

mod support;

use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::Value;
use support::{Mock, Proxy, admin_url, endpoint, eventually, get, route_config};

const WITHIN: Duration = Duration::from_secs(15);

async fn json(url: &str) -> Value {
    let (_, _, body) = get(url).await;
    serde_json::from_str(&body).unwrap_or(Value::Null)
}

/// Whether the admin API says the endpoint at `mock` is stalled.
async fn is_stalled(proxy: &Proxy, mock: &Mock) -> bool {
    let clusters = json(&admin_url(proxy, "/admin/clusters")).await;
    let address = mock.addr.to_string();
    clusters["clusters"][0]["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|endpoint| endpoint["address"] == address.as_str() && endpoint["stalled"] == true)
}

/// The name of the mock that answered a GET, with its status.
async fn answered_by(proxy: &Proxy) -> (StatusCode, String) {
    let (status, headers, _) = get(&proxy.url("/work")).await;
    let name = headers
        .get("x-mock-name")
        .and_then(|name| name.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, name)
}

#[tokio::test]
async fn a_stopped_replica_is_stalled_while_its_requests_wait_and_taken_back_when_it_answers() {
    let (a, b, c) = (
        Mock::start("a", &[]),
        Mock::start("b", &[]),
        Mock::start("c", &[]),
    );
    let endpoints: Vec<String> = [&a, &b, &c].iter().map(|mock| endpoint(mock, "")).collect();
    let config = route_config("per_try_timeout = \"20s\"\n", "", &endpoints)
        + "\n[cluster.api.outlier_detection]\nstall_after = \"50ms\"\n";
    let proxy = Proxy::start(&config);
    for _ in 0..6 {
        assert_eq!(answered_by(&proxy).await.0, StatusCode::OK);
    }

    b.process.signal("STOP");
    // Round robin: of three requests at once, one is left waiting on the stopped replica.
    let waiting: Vec<_> = (0..3)
        .map(|_| {
            let url = proxy.url("/work");
            tokio::spawn(async move { get(&url).await.0 })
        })
        .collect();
    assert!(
        eventually(WITHIN, || is_stalled(&proxy, &b)).await,
        "the stopped replica was never stalled"
    );
    // Meanwhile every new request goes to the others, long before a per-try timeout.
    for _ in 0..30 {
        let started = Instant::now();
        let (status, name) = answered_by(&proxy).await;
        assert_eq!(status, StatusCode::OK);
        assert_ne!(name, "b", "a request went to the stalled replica");
        assert!(started.elapsed() < Duration::from_secs(5), "it waited on b");
    }

    b.process.signal("CONT");
    for request in waiting {
        assert_eq!(request.await.expect("the request ran"), StatusCode::OK);
    }
    assert!(
        eventually(WITHIN, || async { !is_stalled(&proxy, &b).await }).await,
        "the replica that answered again is still stalled"
    );
    assert!(
        eventually(WITHIN, || async { answered_by(&proxy).await.1 == "b" }).await,
        "no request reached the replica after it answered again"
    );
    let events = json(&admin_url(&proxy, "/admin/events")).await;
    let kinds: Vec<&str> = (events["events"].as_array().into_iter().flatten())
        .filter_map(|event| event["kind"].as_str())
        .collect();
    assert!(
        kinds.contains(&"endpoint_stalled") && kinds.contains(&"endpoint_answered_again"),
        "{kinds:?}"
    );
    let (_, _, metrics) = get(&admin_url(&proxy, "/metrics")).await;
    assert!(
        metrics.contains("blastwall_stalls_total{cluster=\"api\"} 1"),
        "{metrics}"
    );
}
