//! When endpoints fail, traffic moves as the cluster's priorities, panic threshold and zones
//! say, and moves back when they recover.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use http::StatusCode;
use support::{Mock, Proxy, eventually, get};

const WITHIN: Duration = Duration::from_secs(15);

/// A proxy in `zone` with one cluster of `endpoints` (inline tables), HTTP health checks
/// every 100ms and one failure or pass to flip.
fn proxy(zone: Option<&str>, cluster_keys: &str, endpoints: &[String]) -> Proxy {
    let zone = zone.map_or(String::new(), |zone| format!("zone = \"{zone}\""));
    Proxy::start(&format!(
        r#"
[proxy]
{zone}

[[listener]]
name = "public"
listen = "127.0.0.1:0"

[[route]]
cluster = "api"

[cluster.api]
balance = "round_robin"
{cluster_keys}
endpoints = [{}]

[cluster.api.health_check]
kind = "http"
interval = "100ms"
timeout = "500ms"
healthy_threshold = 1
unhealthy_threshold = 1
"#,
        endpoints.join(", ")
    ))
}

fn endpoint(mock: &Mock, extra: &str) -> String {
    format!("{{ address = \"{}\" {extra} }}", mock.addr)
}

/// Answers per mock name (with `!` appended for a non-200 answer) over `count` requests.
async fn tally(proxy: &Proxy, count: usize) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for _ in 0..count {
        let (status, headers, _) = get(&proxy.url("/work")).await;
        let mut name = headers
            .get("x-mock-name")
            .and_then(|name| name.to_str().ok())
            .unwrap_or("proxy")
            .to_owned();
        if status != StatusCode::OK {
            name.push('!');
        }
        *counts.entry(name).or_default() += 1;
    }
    counts
}

/// Whether `count` requests in a row were all answered 200 by mocks among `names`.
async fn only(proxy: &Proxy, count: usize, names: &[&str]) -> bool {
    tally(proxy, count)
        .await
        .keys()
        .all(|name| names.contains(&name.as_str()))
}

#[tokio::test]
async fn traffic_fails_over_when_every_primary_dies_and_fails_back_when_they_return() {
    let (first, second) = (Mock::start("first", &[]), Mock::start("second", &[]));
    let backup = Mock::start("backup", &[]);
    let addresses = (first.addr.to_string(), second.addr.to_string());
    let proxy = proxy(
        None,
        "",
        &[
            endpoint(&first, ""),
            endpoint(&second, ""),
            endpoint(&backup, ", priority = 1"),
        ],
    );
    assert!(eventually(WITHIN, || only(&proxy, 20, &["first", "second"])).await);
    drop(first);
    // Half the primaries: 0.5 × 1.4 = 70 % stays on priority 0, 30 % spills to priority 1.
    let spilled = eventually(WITHIN, || async {
        let counts = tally(&proxy, 60).await;
        counts
            .keys()
            .all(|name| name == "second" || name == "backup")
            && counts
                .get("backup")
                .is_some_and(|backup| (5..=35).contains(backup))
    })
    .await;
    assert!(
        spilled,
        "losing half the primaries should spill part of the traffic"
    );
    drop(second);
    assert!(
        eventually(WITHIN, || only(&proxy, 20, &["backup"])).await,
        "traffic never failed over to priority 1"
    );
    let _first = Mock::start_on(&addresses.0, "first", &[]);
    let _second = Mock::start_on(&addresses.1, "second", &[]);
    assert!(
        eventually(WITHIN, || only(&proxy, 20, &["first", "second"])).await,
        "traffic never failed back to priority 0"
    );
}

#[tokio::test]
async fn under_the_panic_threshold_traffic_spreads_over_every_endpoint() {
    let mocks: Vec<Mock> = ["m1", "m2", "m3", "m4"]
        .iter()
        .map(|name| Mock::start(name, &[]))
        .collect();
    let endpoints: Vec<String> = mocks.iter().map(|mock| endpoint(mock, "")).collect();
    let panicking = proxy(None, "panic_threshold = 50", &endpoints);
    let strict = proxy(None, "panic_threshold = 0", &endpoints);
    for proxy in [&panicking, &strict] {
        assert!(eventually(WITHIN, || only(proxy, 20, &["m1", "m2", "m3", "m4"])).await);
    }
    for sick in &mocks[..2] {
        sick.set_behaviour(r#"{"status":503}"#).await;
    }
    // Two of four healthy is not under 50 %: the sick ones are avoided.
    assert!(
        eventually(WITHIN, || only(&panicking, 20, &["m3", "m4"])).await,
        "health checks never took the sick endpoints out"
    );
    mocks[2].set_behaviour(r#"{"status":503}"#).await;
    // One of four is: rather than crush m4, traffic goes to all four, sick or not.
    let spread = eventually(WITHIN, || async {
        let counts = tally(&panicking, 40).await;
        ["m1!", "m2!", "m3!", "m4"]
            .iter()
            .all(|name| counts.contains_key(*name))
    })
    .await;
    assert!(spread, "in panic, traffic should reach every endpoint");
    assert!(
        eventually(WITHIN, || only(&strict, 20, &["m4"])).await,
        "without panic, only the healthy endpoint takes traffic"
    );
}

#[tokio::test]
async fn the_local_zone_is_preferred_and_traffic_spills_over_as_it_weakens() {
    let mocks: Vec<Mock> = ["east1", "east2", "west1", "west2"]
        .iter()
        .map(|name| Mock::start(name, &[]))
        .collect();
    let endpoints: Vec<String> = mocks
        .iter()
        .map(|mock| {
            let zone = if mock.name.starts_with("east") {
                "east"
            } else {
                "west"
            };
            endpoint(mock, &format!(", zone = \"{zone}\""))
        })
        .collect();
    let proxy = proxy(Some("east"), "", &endpoints);
    assert!(
        eventually(WITHIN, || only(&proxy, 20, &["east1", "east2"])).await,
        "healthy local endpoints should take all the traffic"
    );
    mocks[0].set_behaviour(r#"{"status":503}"#).await;
    // Local 1/2 healthy against 3/4 for the level: local keeps 2/3, a third goes west.
    let spilled = eventually(WITHIN, || async {
        let counts = tally(&proxy, 150).await;
        let west = counts.get("west1").unwrap_or(&0) + counts.get("west2").unwrap_or(&0);
        counts
            .keys()
            .all(|name| ["east2", "west1", "west2"].contains(&name.as_str()))
            && (20..=80).contains(&west)
    })
    .await;
    assert!(
        spilled,
        "a weakened local zone should spill about a third of its traffic"
    );
    mocks[0].set_behaviour("{}").await;
    assert!(
        eventually(WITHIN, || only(&proxy, 20, &["east1", "east2"])).await,
        "traffic should return to the local zone when it recovers"
    );
}
