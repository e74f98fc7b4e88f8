//! Routing decisions of a whole cluster, with a seeded RNG and no runtime (so no tasks run:
//! health is set by hand or fed as check results).

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use http::request::Parts;
use http::{HeaderName, Request};
use rand::SeedableRng;
use rand::rngs::SmallRng;

use super::*;
use crate::config::{
    BalanceConfig, EndpointConfig, HashKey, HealthCheck, HealthCheckConfig, UpstreamProtocol,
};
use crate::endpoint::EndpointGuard;
use crate::health::ProbeFailure;

/// An endpoint entry: last octet of 10.0.0.x, priority, zone.
fn entry(last: u8, priority: u32, zone: Option<&str>) -> EndpointConfig {
    EndpointConfig {
        address: EndpointAddress::Socket(SocketAddr::from(([10, 0, 0, last], 80))),
        weight: 1,
        zone: zone.map(str::to_owned),
        priority,
    }
}

fn config(endpoints: Vec<EndpointConfig>, balance: BalanceConfig) -> ClusterConfig {
    ClusterConfig {
        name: "api".to_owned(),
        endpoints,
        balance,
        connect_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(1),
        body_read_timeout: Duration::from_secs(60),
        protocol: UpstreamProtocol::Http1,
        dns_refresh: Duration::from_secs(30),
        panic_threshold: 0.5,
        max_idle_per_endpoint: 8,
        health_check: None,
        retry_budget: Default::default(),
        concurrency: None,
        passive: Default::default(),
    }
}

fn request() -> Parts {
    Request::builder()
        .body(())
        .expect("a request")
        .into_parts()
        .0
}

/// How many of `samples` picks went to each endpoint, by last octet.
fn spread(cluster: &Cluster, samples: usize, seed: u64) -> std::collections::BTreeMap<u8, usize> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut counts = std::collections::BTreeMap::new();
    let request = request();
    for _ in 0..samples {
        let guard = cluster
            .pick_with(&request, Instant::now(), &mut rng)
            .expect("a pick");
        let SocketAddr::V4(address) = guard.endpoint().address() else {
            unreachable!("test endpoints are IPv4")
        };
        *counts.entry(address.ip().octets()[3]).or_default() += 1;
    }
    counts
}

fn endpoint(cluster: &Cluster, last: u8) -> Arc<Endpoint> {
    cluster
        .endpoints()
        .iter()
        .find(|endpoint| endpoint.address().ip().to_string() == format!("10.0.0.{last}"))
        .cloned()
        .expect("an endpoint")
}

fn share(counts: &std::collections::BTreeMap<u8, usize>, lasts: &[u8], samples: usize) -> f64 {
    lasts
        .iter()
        .map(|last| counts.get(last).copied().unwrap_or(0))
        .sum::<usize>() as f64
        / samples as f64
}

#[test]
fn traffic_fails_over_to_the_next_priority_and_back() {
    let cluster = Cluster::new(
        config(
            vec![entry(1, 0, None), entry(2, 0, None), entry(3, 1, None)],
            BalanceConfig::RoundRobin,
        ),
        None,
        None,
        Instant::now(),
    );
    assert_eq!(
        spread(&cluster, 100, 1).keys().copied().collect::<Vec<_>>(),
        [1, 2]
    );
    endpoint(&cluster, 1).set_healthy(false);
    endpoint(&cluster, 2).set_healthy(false);
    assert_eq!(
        spread(&cluster, 100, 1).keys().copied().collect::<Vec<_>>(),
        [3]
    );
    endpoint(&cluster, 2).set_healthy(true);
    // One of two primaries: 0.5 × 1.4 = 70 % stays on it, 30 % spills over.
    let counts = spread(&cluster, 10_000, 2);
    assert!(
        (share(&counts, &[2], 10_000) - 0.7).abs() < 0.03,
        "{counts:?}"
    );
    assert!(
        (share(&counts, &[3], 10_000) - 0.3).abs() < 0.03,
        "{counts:?}"
    );
    endpoint(&cluster, 1).set_healthy(true);
    assert_eq!(
        spread(&cluster, 100, 1).keys().copied().collect::<Vec<_>>(),
        [1, 2]
    );
}

#[test]
fn a_level_under_the_panic_threshold_spreads_over_all_its_endpoints() {
    let endpoints = (1..=4).map(|last| entry(last, 0, None)).collect();
    let cluster = Cluster::new(
        config(endpoints, BalanceConfig::RoundRobin),
        None,
        None,
        Instant::now(),
    );
    for last in 1..=3 {
        endpoint(&cluster, last).set_healthy(false);
    }
    let counts = spread(&cluster, 400, 1);
    assert_eq!(counts.len(), 4, "all four, healthy or not: {counts:?}");
    assert!(cluster.routing().in_panic());
    endpoint(&cluster, 3).set_healthy(true);
    // Two of four is not under 50 %: only the healthy ones.
    assert_eq!(
        spread(&cluster, 100, 1).keys().copied().collect::<Vec<_>>(),
        [3, 4]
    );
}

#[test]
fn without_panic_a_dead_cluster_has_no_endpoint() {
    let mut config = config(
        vec![entry(1, 0, None), entry(2, 1, None)],
        BalanceConfig::RoundRobin,
    );
    config.panic_threshold = 0.0;
    let cluster = Cluster::new(config, None, None, Instant::now());
    endpoint(&cluster, 1).set_healthy(false);
    endpoint(&cluster, 2).set_healthy(false);
    let mut rng = SmallRng::seed_from_u64(1);
    assert!(
        cluster
            .pick_with(&request(), Instant::now(), &mut rng)
            .is_none()
    );
}

#[test]
fn the_local_zone_is_preferred_and_spills_over_as_it_loses_capacity() {
    let endpoints = vec![
        entry(1, 0, Some("a")),
        entry(2, 0, Some("a")),
        entry(3, 0, Some("b")),
        entry(4, 0, Some("b")),
    ];
    let cluster = Cluster::new(
        config(endpoints, BalanceConfig::LeastRequest),
        Some("a"),
        None,
        Instant::now(),
    );
    assert_eq!(
        spread(&cluster, 200, 1).keys().copied().collect::<Vec<_>>(),
        [1, 2]
    );
    endpoint(&cluster, 1).set_healthy(false);
    // Local 1/2 healthy, level 3/4: local keeps (1/2)/(3/4) = 2/3.
    let counts = spread(&cluster, 10_000, 3);
    assert!(
        (share(&counts, &[2], 10_000) - 2.0 / 3.0).abs() < 0.03,
        "{counts:?}"
    );
    assert!(!counts.contains_key(&1));
    endpoint(&cluster, 1).set_healthy(true);
    assert_eq!(
        spread(&cluster, 200, 1).keys().copied().collect::<Vec<_>>(),
        [1, 2]
    );
}

#[test]
fn without_a_proxy_zone_zones_do_not_matter() {
    let endpoints = vec![entry(1, 0, Some("a")), entry(2, 0, Some("b"))];
    let cluster = Cluster::new(
        config(endpoints, BalanceConfig::RoundRobin),
        None,
        None,
        Instant::now(),
    );
    assert_eq!(spread(&cluster, 10, 1).len(), 2);
}

#[test]
fn consistent_hash_remaps_only_the_keys_of_an_endpoint_that_goes_down() {
    let endpoints = (1..=4).map(|last| entry(last, 0, None)).collect();
    let key = HashKey::Header(HeaderName::from_static("x-user"));
    let cluster = Cluster::new(
        config(endpoints, BalanceConfig::ConsistentHash(key)),
        None,
        None,
        Instant::now(),
    );
    let mut rng = SmallRng::seed_from_u64(1);
    let mut owner = |user: usize| {
        let request = Request::builder()
            .header("x-user", format!("user-{user}"))
            .body(())
            .expect("a request")
            .into_parts()
            .0;
        cluster
            .pick_with(&request, Instant::now(), &mut rng)
            .expect("a pick")
            .endpoint()
            .address()
    };
    let before: Vec<SocketAddr> = (0..200).map(&mut owner).collect();
    let again: Vec<SocketAddr> = (0..200).map(&mut owner).collect();
    assert_eq!(before, again);
    let down = endpoint(&cluster, 1).address();
    assert!(before.contains(&down));
    endpoint(&cluster, 1).set_healthy(false);
    let after: Vec<SocketAddr> = (0..200).map(&mut owner).collect();
    for (old, new) in before.iter().zip(&after) {
        if *old != down {
            assert_eq!(old, new, "a key of a healthy endpoint moved");
        } else {
            assert_ne!(*new, down);
        }
    }
}

#[test]
fn a_reload_keeps_unchanged_endpoints_and_their_state() {
    let now = Instant::now();
    let first = Cluster::new(
        config(
            vec![entry(1, 0, None), entry(2, 0, None)],
            BalanceConfig::RoundRobin,
        ),
        None,
        None,
        now,
    );
    let same = Cluster::new(first.config().clone(), None, Some(&first), now);
    assert!(
        Arc::ptr_eq(&first, &same),
        "an unchanged cluster is kept whole"
    );
    let kept = endpoint(&first, 1);
    kept.latency().observe(Duration::from_millis(80), now);
    kept.set_healthy(false);
    let _in_flight = EndpointGuard::new(kept.clone());
    let mut changed = config(
        vec![
            entry(1, 0, None),
            EndpointConfig {
                weight: 3,
                ..entry(2, 0, None)
            },
        ],
        BalanceConfig::LeastRequest,
    );
    changed.request_timeout = Duration::from_secs(5);
    let second = Cluster::new(changed, None, Some(&first), now);
    assert!(!Arc::ptr_eq(&first, &second));
    let after = endpoint(&second, 1);
    assert!(Arc::ptr_eq(&kept, &after));
    assert!(!after.is_healthy());
    assert_eq!(after.in_flight(), 1);
    assert_eq!(after.latency().estimate(), Duration::from_millis(80));
    assert!(
        !Arc::ptr_eq(&endpoint(&first, 2), &endpoint(&second, 2)),
        "weight changed"
    );
    assert_eq!(
        spread(&second, 50, 1).keys().copied().collect::<Vec<_>>(),
        [2]
    );
}

fn health_check() -> HealthCheckConfig {
    HealthCheckConfig {
        kind: HealthCheck::Tcp,
        interval: Duration::from_secs(1),
        timeout: Duration::from_millis(500),
        healthy_threshold: NonZeroU32::new(2).expect("positive"),
        unhealthy_threshold: NonZeroU32::new(2).expect("positive"),
        jitter: Duration::ZERO,
    }
}

#[test]
fn checked_endpoints_start_unknown_and_the_first_round_completes_with_their_first_results() {
    let mut config = config(
        vec![entry(1, 0, None), entry(2, 0, None)],
        BalanceConfig::RoundRobin,
    );
    config.health_check = Some(health_check());
    let cluster = Cluster::new(config, None, None, Instant::now());
    assert!(!cluster.first_health_round_done());
    assert!(
        cluster
            .endpoints()
            .iter()
            .all(|e| e.health() == HealthStatus::Unknown)
    );
    // Nothing known: the panic rule spreads over all endpoints rather than refuse.
    assert_eq!(spread(&cluster, 10, 1).len(), 2);
    cluster.record_check(&endpoint(&cluster, 1), Ok(()));
    assert!(!cluster.first_health_round_done());
    cluster.record_check(
        &endpoint(&cluster, 2),
        Err(ProbeFailure::Timeout(Duration::from_millis(500))),
    );
    assert!(cluster.first_health_round_done());
    assert_eq!(
        endpoint(&cluster, 2).health(),
        HealthStatus::Unhealthy,
        "first result decides"
    );
    assert_eq!(
        spread(&cluster, 20, 1).keys().copied().collect::<Vec<_>>(),
        [1]
    );
}

#[test]
fn adding_health_checks_on_reload_makes_kept_endpoints_unknown() {
    let now = Instant::now();
    let first = Cluster::new(
        config(vec![entry(1, 0, None)], BalanceConfig::RoundRobin),
        None,
        None,
        now,
    );
    let mut checked = first.config().clone();
    checked.health_check = Some(health_check());
    let second = Cluster::new(checked, None, Some(&first), now);
    assert_eq!(endpoint(&second, 1).health(), HealthStatus::Unknown);
    let unchecked = Cluster::new(first.config().clone(), None, Some(&second), now);
    assert_eq!(endpoint(&unchecked, 1).health(), HealthStatus::Healthy);
}

#[tokio::test]
async fn a_tcp_check_finds_a_listening_endpoint_healthy_and_a_closed_one_unhealthy() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let open = listener.local_addr().expect("an address");
    let closed = {
        let other = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        other.local_addr().expect("an address")
    };
    let mut config = config(
        [open, closed]
            .into_iter()
            .map(|address| EndpointConfig {
                address: EndpointAddress::Socket(address),
                weight: 1,
                zone: None,
                priority: 0,
            })
            .collect(),
        BalanceConfig::RoundRobin,
    );
    config.health_check = Some(health_check());
    let cluster = Cluster::new(config, None, None, Instant::now());
    tokio::time::timeout(Duration::from_secs(10), cluster.first_health_round())
        .await
        .expect("the first round completes");
    let status = |address| {
        cluster
            .endpoints()
            .iter()
            .find(|endpoint| endpoint.address() == address)
            .map(|endpoint| endpoint.health())
    };
    assert_eq!(status(open), Some(HealthStatus::Healthy));
    assert_eq!(status(closed), Some(HealthStatus::Unhealthy));
}

#[tokio::test]
async fn dropping_a_cluster_stops_its_health_check_tasks() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let address = listener.local_addr().expect("an address");
    let mut config = config(
        vec![EndpointConfig {
            address: EndpointAddress::Socket(address),
            weight: 1,
            zone: None,
            priority: 0,
        }],
        BalanceConfig::RoundRobin,
    );
    config.health_check = Some(health_check());
    let cluster = Cluster::new(config, None, None, Instant::now());
    let endpoint = cluster.endpoints()[0].clone();
    tokio::time::timeout(Duration::from_secs(10), cluster.first_health_round())
        .await
        .expect("the first round completes");
    drop(cluster);
    // The task held the endpoint; once it has seen the cluster go, only we do.
    let released = tokio::time::timeout(Duration::from_secs(10), async {
        while Arc::strong_count(&endpoint) > 1 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(released.is_ok(), "the health check task still runs");
}

mod capacity {
    use blastwall_policy::bulkhead::BulkheadConfig;

    use super::*;
    use crate::config::admission::{ConcurrencyConfig, LimitConfig};
    use crate::endpoint::CAPACITY_GROWS_AFTER;

    fn following_capacity() -> Arc<Cluster> {
        let mut config = config(
            vec![entry(1, 0, None), entry(2, 0, None)],
            BalanceConfig::RoundRobin,
        );
        let max = BulkheadConfig {
            max_concurrent: 100,
            max_queue: 0,
            queue_timeout: Duration::ZERO,
        };
        config.concurrency = Some(ConcurrencyConfig {
            limit: LimitConfig::Capacity(max.validated().expect("valid")),
            queue: 0,
            queue_timeout: Duration::from_millis(10),
            queue_from: crate::config::admission::Priority::Low,
        });
        Cluster::new(config, None, None, Instant::now())
    }

    fn limit(cluster: &Cluster) -> u32 {
        cluster.admission().concurrency().expect("a limit").0
    }

    #[test]
    fn the_limit_is_its_max_until_every_endpoint_refused_once() {
        let cluster = following_capacity();
        let now = Instant::now();
        assert_eq!(limit(&cluster), 100);
        let endpoints = cluster.endpoints();
        let guards: Vec<_> = (0..3)
            .map(|_| EndpointGuard::new(endpoints[0].clone()))
            .collect();
        // Refused with three of ours in flight: it takes two.
        cluster.learn_refusal(&guards[2], now);
        assert_eq!(endpoints[0].capacity(), Some(2));
        assert_eq!(
            limit(&cluster),
            100,
            "the other endpoint showed no limit yet"
        );
        let other = EndpointGuard::new(endpoints[1].clone());
        cluster.learn_refusal(&other, now);
        assert_eq!(endpoints[1].capacity(), Some(1), "never below one");
        assert_eq!(limit(&cluster), 3);
    }

    #[test]
    fn a_learnt_capacity_only_shrinks_on_refusals_and_grows_after_a_quiet_second() {
        let cluster = following_capacity();
        let now = Instant::now();
        let endpoint = cluster.endpoints()[0].clone();
        let guards: Vec<_> = (0..9)
            .map(|_| EndpointGuard::new(endpoint.clone()))
            .collect();
        cluster.learn_refusal(&guards[8], now);
        assert_eq!(endpoint.capacity(), Some(8));
        // A refusal at a higher count than known says nothing new.
        cluster.learn_refusal(&guards[8], now);
        assert_eq!(endpoint.capacity(), Some(8));
        cluster.grow_capacities(now + CAPACITY_GROWS_AFTER / 2);
        assert_eq!(endpoint.capacity(), Some(8), "too soon");
        cluster.grow_capacities(now + CAPACITY_GROWS_AFTER);
        assert_eq!(endpoint.capacity(), Some(9), "an eighth, at least one");
        cluster.grow_capacities(now + CAPACITY_GROWS_AFTER * 3 / 2);
        assert_eq!(endpoint.capacity(), Some(9), "one growth a period");
    }

    #[test]
    fn an_ejected_endpoints_capacity_leaves_the_limit_at_the_next_tick() {
        let cluster = following_capacity();
        let now = Instant::now();
        let endpoints = cluster.endpoints();
        for endpoint in endpoints.iter() {
            let held: Vec<_> = (0..3)
                .map(|_| EndpointGuard::new(endpoint.clone()))
                .collect();
            cluster.learn_refusal(&held[2], now);
        }
        assert_eq!(limit(&cluster), 4);
        endpoints[0].set_ejected(true);
        cluster.grow_capacities(now);
        assert_eq!(limit(&cluster), 2, "only the routable endpoint's capacity");
        endpoints[0].set_ejected(false);
        cluster.grow_capacities(now);
        assert_eq!(limit(&cluster), 4);
    }

    #[test]
    fn a_pick_prefers_an_endpoint_below_its_capacity() {
        let cluster = following_capacity();
        let now = Instant::now();
        let endpoints = cluster.endpoints();
        let full = EndpointGuard::new(endpoints[0].clone());
        cluster.learn_refusal(&EndpointGuard::new(endpoints[0].clone()), now);
        assert!(endpoints[0].is_full(), "one in flight, capacity one");
        let mut rng = SmallRng::seed_from_u64(7);
        for _ in 0..20 {
            let picked = cluster
                .pick_with(&request(), now, &mut rng)
                .expect("a pick");
            assert_eq!(picked.endpoint().address(), endpoints[1].address());
        }
        drop(full);
        // Both full: better a full endpoint than none.
        let _held = (
            EndpointGuard::new(endpoints[0].clone()),
            EndpointGuard::new(endpoints[1].clone()),
        );
        cluster.learn_refusal(&EndpointGuard::new(endpoints[1].clone()), now);
        assert!(cluster.pick_with(&request(), now, &mut rng).is_some());
    }
}
