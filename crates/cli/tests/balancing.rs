//! The proxy spreads requests over a cluster's endpoints as its `balance` says.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use http::{Method, StatusCode};
use support::{Mock, Proxy, endpoint, eventually, send, single_cluster_config};

/// A proxy with one cluster of `endpoints` (TOML inline tables) and extra cluster keys.
fn proxy(cluster_keys: &str, endpoints: &[String]) -> Proxy {
    Proxy::start(&single_cluster_config(cluster_keys, endpoints, ""))
}

/// Which mock answered a request, with its status.
async fn answer(proxy: &Proxy, headers: &[(&str, &str)]) -> (StatusCode, String) {
    let (status, response_headers, _) = send(Method::GET, &proxy.url("/work"), "", headers).await;
    let name = response_headers
        .get("x-mock-name")
        .and_then(|name| name.to_str().ok())
        .unwrap_or("proxy")
        .to_owned();
    (status, name)
}

async fn tally(proxy: &Proxy, count: usize) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for _ in 0..count {
        let (status, name) = answer(proxy, &[]).await;
        assert_eq!(status, StatusCode::OK);
        *counts.entry(name).or_default() += 1;
    }
    counts
}

#[tokio::test]
async fn weighted_round_robin_sends_traffic_in_proportion_to_weights() {
    let (light, heavy) = (Mock::start("light", &[]), Mock::start("heavy", &[]));
    let proxy = proxy(
        "balance = \"weighted_round_robin\"",
        &[endpoint(&light, ""), endpoint(&heavy, ", weight = 3")],
    );
    let counts = tally(&proxy, 200).await;
    let heavy_share = counts["heavy"] as f64 / 200.0;
    assert!((0.65..=0.85).contains(&heavy_share), "{counts:?}");
}

#[tokio::test]
async fn least_request_avoids_an_endpoint_made_slow() {
    let (slow, fast) = (Mock::start("slow", &[]), Mock::start("fast", &[]));
    slow.set_behaviour(r#"{"latency":"500ms"}"#).await;
    let proxy = proxy(
        "balance = \"least_request\"",
        &[endpoint(&slow, ""), endpoint(&fast, "")],
    );
    let url = proxy.url("/work");
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                let mut slow_answers = 0;
                for _ in 0..25 {
                    let (status, headers, _) = send(Method::GET, &url, "", &[]).await;
                    assert_eq!(status, StatusCode::OK);
                    if headers["x-mock-name"] == "slow" {
                        slow_answers += 1;
                    }
                }
                slow_answers
            })
        })
        .collect();
    let mut slow_answers = 0;
    for worker in workers {
        slow_answers += worker.await.expect("a worker finishes");
    }
    // Round robin would send it 100 of the 200.
    assert!(
        slow_answers < 50,
        "the slow endpoint took {slow_answers} of 200"
    );
}

#[tokio::test]
async fn consistent_hash_sends_the_same_key_to_the_same_endpoint() {
    let mocks: Vec<Mock> = ["a", "b", "c"]
        .iter()
        .map(|name| Mock::start(name, &[]))
        .collect();
    let endpoints: Vec<String> = mocks.iter().map(|mock| endpoint(mock, "")).collect();
    let proxy = proxy(
        "balance = \"consistent_hash\"\nhash_on = { header = \"x-user\" }",
        &endpoints,
    );
    let mut owners = BTreeMap::new();
    for user in 0..12 {
        let user = format!("user-{user}");
        let (_, first) = answer(&proxy, &[("x-user", &user)]).await;
        for _ in 0..4 {
            let (status, again) = answer(&proxy, &[("x-user", &user)]).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(again, first, "{user} moved");
        }
        owners.insert(user, first);
    }
    let distinct: std::collections::BTreeSet<&String> = owners.values().collect();
    assert!(
        distinct.len() >= 2,
        "keys spread over endpoints: {owners:?}"
    );
    let (status, _) = answer(&proxy, &[]).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a request without the key is still served"
    );
}

#[tokio::test]
async fn a_cookie_can_be_the_hash_key() {
    let (a, b) = (Mock::start("a", &[]), Mock::start("b", &[]));
    let proxy = proxy(
        "balance = \"consistent_hash\"\nhash_on = { cookie = \"session\" }",
        &[endpoint(&a, ""), endpoint(&b, "")],
    );
    for session in ["s1", "s2", "s3"] {
        let cookie = format!("theme=dark; session={session}");
        let (_, first) = answer(&proxy, &[("cookie", &cookie)]).await;
        for _ in 0..4 {
            assert_eq!(answer(&proxy, &[("cookie", &cookie)]).await.1, first);
        }
    }
}

#[tokio::test]
async fn an_endpoint_given_by_dns_name_is_resolved() {
    let mock = Mock::start("named", &[]);
    let port = mock.addr.port();
    // `localhost` may also resolve to ::1, where the mock does not listen: the TCP check
    // takes that address out.
    let proxy = proxy(
        "balance = \"round_robin\"\n\
         health_check = { kind = \"tcp\", interval = \"100ms\", unhealthy_threshold = 1 }",
        &[format!("{{ address = \"localhost:{port}\" }}")],
    );
    let served = eventually(Duration::from_secs(15), || async {
        for _ in 0..10 {
            if answer(&proxy, &[]).await != (StatusCode::OK, "named".to_owned()) {
                return false;
            }
        }
        true
    })
    .await;
    assert!(served, "never served through the DNS name");
}
