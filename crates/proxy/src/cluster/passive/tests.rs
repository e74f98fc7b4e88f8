//! Breakers and outlier detection in a whole cluster, with injected time and a seeded RNG
//! (no runtime, so no tick task: time is advanced by calling `tick`).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use blastwall_policy::breaker::{BreakerConfig, ValidBreakerConfig};
use blastwall_policy::outlier::OutlierConfig;
use http::{Request, StatusCode};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::SmallRng;

use super::super::Cluster;
use crate::config::{
    BalanceConfig, ClusterConfig, EndpointAddress, EndpointConfig, PassiveConfig, UpstreamProtocol,
};
use crate::outcome::{AttemptOutcome, ClientCause};

const GATEWAY: AttemptOutcome = AttemptOutcome::GatewayError(StatusCode::BAD_GATEWAY);
const OVERLOADED: AttemptOutcome = AttemptOutcome::Overloaded { retry_after: None };
pub(super) const MS: Duration = Duration::from_millis(1);

pub(super) fn address(last: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, last], 80))
}

pub(super) fn config(endpoints: u8, passive: PassiveConfig) -> ClusterConfig {
    ClusterConfig {
        name: "api".to_owned(),
        endpoints: (1..=endpoints)
            .map(|last| EndpointConfig {
                address: EndpointAddress::Socket(address(last)),
                weight: 1,
                zone: None,
                priority: 0,
            })
            .collect(),
        balance: BalanceConfig::RoundRobin,
        connect_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(1),
        body_read_timeout: Duration::from_secs(60),
        protocol: UpstreamProtocol::Http1,
        dns_refresh: Duration::from_secs(30),
        panic_threshold: 0.5,
        max_idle_per_endpoint: 8,
        health_check: None,
        passive,
        retry_budget: Default::default(),
        concurrency: None,
    }
}

pub(super) fn outliers(configure: impl FnOnce(&mut OutlierConfig)) -> PassiveConfig {
    let mut config = OutlierConfig {
        consecutive_errors: None,
        failure_percentage: None,
        success_rate: None,
        base_ejection_time: Duration::from_secs(1),
        ..OutlierConfig::default()
    };
    configure(&mut config);
    PassiveConfig {
        outlier_detection: Some(
            config
                .validated()
                .expect("the test outlier config is valid"),
        ),
        ..PassiveConfig::default()
    }
}

pub(super) fn breaker(failures: u32) -> ValidBreakerConfig {
    breaker_config(failures)
        .validated()
        .expect("the test breaker config is valid")
}

pub(super) fn breaker_config(failures: u32) -> BreakerConfig {
    BreakerConfig {
        consecutive_failures: Some(failures),
        failure_rate: None,
        open_duration: Duration::from_secs(1),
        open_backoff: None,
        half_open_probes: 1,
        ..BreakerConfig::default()
    }
}

pub(super) fn request() -> http::request::Parts {
    Request::builder()
        .body(())
        .expect("a request")
        .into_parts()
        .0
}

/// Sends one attempt to `last` (picked directly, as a retry that avoids the others would)
/// with `outcome` at `now`.
fn attempt(cluster: &Cluster, last: u8, outcome: AttemptOutcome, now: Instant) {
    let others: Vec<SocketAddr> = cluster
        .endpoints()
        .iter()
        .map(|endpoint| endpoint.address())
        .filter(|other| *other != address(last))
        .collect();
    let mut rng = SmallRng::seed_from_u64(1);
    let guard = cluster
        .pick_avoiding_with(&request(), &others, now, &mut rng)
        .expect("a pick");
    cluster.record_outcome(&guard, outcome, MS, now);
}

/// The endpoints `samples` picks reach (last octets).
pub(super) fn reached(cluster: &Cluster, samples: usize, now: Instant) -> BTreeSet<u8> {
    let mut rng = SmallRng::seed_from_u64(7);
    (0..samples)
        .filter_map(|_| cluster.pick_with(&request(), now, &mut rng))
        .map(|guard| last_octet(guard.endpoint().address()))
        .collect()
}

pub(super) fn last_octet(address: SocketAddr) -> u8 {
    match address {
        SocketAddr::V4(address) => address.ip().octets()[3],
        SocketAddr::V6(_) => unreachable!("test endpoints are IPv4"),
    }
}

#[test]
fn overload_never_ejects_an_endpoint_nor_trips_a_breaker() {
    let mut passive = outliers(|config| {
        config.consecutive_errors = Some(2);
        config.consecutive_gateway_errors = Some(2);
    });
    passive.endpoint_circuit_breaker = Some(breaker(2));
    passive.circuit_breaker = Some(breaker(2));
    let now = Instant::now();
    let cluster = Cluster::new(config(2, passive), None, None, now);
    for _ in 0..50 {
        let permit = cluster
            .admit(now)
            .expect("the cluster breaker stays closed");
        attempt(&cluster, 1, OVERLOADED, now);
        permit.record(OVERLOADED, now);
    }
    cluster.tick(now + Duration::from_secs(60));
    assert_eq!(reached(&cluster, 10, now), BTreeSet::from([1, 2]));
    assert_eq!(cluster.stats().overloaded.get(), 50);
    assert_eq!(cluster.stats().ejections.get(), 0);
    assert_eq!(cluster.stats().endpoint_breaker_opened.get(), 0);
    assert_eq!(cluster.stats().breaker_opened.get(), 0);
}

#[test]
fn what_a_client_caused_never_ejects_trips_or_teaches_latency() {
    let mut passive = outliers(|config| {
        config.consecutive_errors = Some(2);
        config.consecutive_gateway_errors = Some(2);
    });
    passive.endpoint_circuit_breaker = Some(breaker(2));
    passive.circuit_breaker = Some(breaker(2));
    let now = Instant::now();
    let cluster = Cluster::new(config(2, passive), None, None, now);
    let endpoint = cluster.endpoints()[0].clone();
    let causes = [
        ClientCause::Deadline,
        ClientCause::SlowBody,
        ClientCause::BodyFailed,
    ];
    for cause in causes.into_iter().cycle().take(30) {
        let outcome = AttemptOutcome::ClientCaused(cause);
        let permit = cluster
            .admit(now)
            .expect("the cluster breaker stays closed");
        let guard = cluster
            .pick_avoiding_with(
                &request(),
                &[address(2)],
                now,
                &mut SmallRng::seed_from_u64(1),
            )
            .expect("a pick");
        cluster.record_outcome(&guard, outcome, Duration::from_secs(30), now);
        permit.record(outcome, now);
    }
    cluster.tick(now + Duration::from_secs(60));
    assert_eq!(reached(&cluster, 10, now), BTreeSet::from([1, 2]));
    assert_eq!(cluster.stats().ejections.get(), 0);
    assert_eq!(cluster.stats().endpoint_breaker_opened.get(), 0);
    assert_eq!(cluster.stats().breaker_opened.get(), 0);
    assert_eq!(cluster.stats().attempt_failures.get(), 0);
    assert!(!endpoint.latency().has_samples(), "no latency was learnt");
}

#[test]
fn an_ejected_endpoint_gets_no_picks_until_its_ejection_ends() {
    let passive = outliers(|config| config.consecutive_gateway_errors = Some(3));
    let now = Instant::now();
    let cluster = Cluster::new(config(3, passive), None, None, now);
    for _ in 0..3 {
        attempt(&cluster, 1, GATEWAY, now);
    }
    assert!(cluster.endpoints()[0].is_ejected());
    assert_eq!(reached(&cluster, 50, now), BTreeSet::from([2, 3]));
    cluster.tick(now + 999 * MS);
    assert_eq!(reached(&cluster, 50, now), BTreeSet::from([2, 3]));
    cluster.tick(now + Duration::from_secs(1));
    assert_eq!(reached(&cluster, 50, now), BTreeSet::from([1, 2, 3]));
    assert_eq!(cluster.stats().ejections.get(), 1);
    assert_eq!(cluster.stats().ejections_ended.get(), 1);
}

#[test]
fn a_server_error_counts_for_consecutive_errors_and_a_slow_call_too() {
    let passive = outliers(|config| {
        config.consecutive_errors = Some(3);
        config.slow_call_threshold = Some(Duration::from_millis(100));
    });
    let now = Instant::now();
    let cluster = Cluster::new(config(3, passive), None, None, now);
    let mut rng = SmallRng::seed_from_u64(1);
    let others = [address(2), address(3)];
    for outcome in [
        AttemptOutcome::ServerError(StatusCode::INTERNAL_SERVER_ERROR),
        AttemptOutcome::Success,
        AttemptOutcome::Success,
    ] {
        let guard = cluster
            .pick_avoiding_with(&request(), &others, now, &mut rng)
            .expect("a pick");
        let latency = if outcome == AttemptOutcome::Success {
            Duration::from_millis(500)
        } else {
            MS
        };
        cluster.record_outcome(&guard, outcome, latency, now);
    }
    assert!(
        cluster.endpoints()[0].is_ejected(),
        "two slow successes and a 500 are three errors"
    );
}

#[test]
fn ejection_stops_where_the_rest_would_be_in_panic() {
    let passive = outliers(|config| {
        config.consecutive_gateway_errors = Some(1);
        config.max_ejection_percent = 100;
    });
    let now = Instant::now();
    let cluster = Cluster::new(config(4, passive), None, None, now);
    for last in 1..=4 {
        attempt(&cluster, last, GATEWAY, now);
    }
    let ejected = cluster
        .endpoints()
        .iter()
        .filter(|e| e.is_ejected())
        .count();
    assert_eq!(
        ejected, 2,
        "half of four must keep serving (panic threshold 50%)"
    );
    assert_eq!(cluster.stats().ejections_suppressed.get(), 2);
}

#[test]
fn an_unhealthy_endpoint_lowers_what_may_be_ejected() {
    let passive = outliers(|config| {
        config.consecutive_gateway_errors = Some(1);
        config.max_ejection_percent = 100;
    });
    let now = Instant::now();
    let cluster = Cluster::new(config(4, passive), None, None, now);
    cluster.endpoints()[3].set_healthy(false);
    let _ = reached(&cluster, 1, now); // the routing (and the cap) follows the health change
    for last in 1..=3 {
        attempt(&cluster, last, GATEWAY, now);
    }
    let ejected = cluster
        .endpoints()
        .iter()
        .filter(|e| e.is_ejected())
        .count();
    assert_eq!(
        ejected, 1,
        "three healthy of four: one may go, two must stay"
    );
}

#[test]
fn an_open_endpoint_breaker_takes_it_out_then_half_open_admits_one_probe() {
    let passive = PassiveConfig {
        endpoint_circuit_breaker: Some(breaker(2)),
        ..PassiveConfig::default()
    };
    let now = Instant::now();
    let cluster = Cluster::new(config(2, passive), None, None, now);
    attempt(&cluster, 1, AttemptOutcome::ConnectFailed, now);
    attempt(&cluster, 1, AttemptOutcome::Timeout, now);
    assert!(cluster.endpoints()[0].is_tripped());
    assert_eq!(reached(&cluster, 20, now), BTreeSet::from([2]));
    let later = now + Duration::from_secs(1);
    cluster.tick(later);
    assert!(!cluster.endpoints()[0].is_tripped());
    let mut rng = SmallRng::seed_from_u64(3);
    let guards: Vec<_> = (0..10)
        .filter_map(|_| cluster.pick_with(&request(), later, &mut rng))
        .collect();
    let probes = guards
        .iter()
        .filter(|guard| guard.endpoint().address() == address(1))
        .count();
    assert_eq!(probes, 1, "half-open admits one probe at a time");
    let probe = guards
        .iter()
        .find(|guard| guard.endpoint().address() == address(1))
        .expect("a probe");
    cluster.record_outcome(probe, AttemptOutcome::Success, MS, later);
    drop(guards);
    assert_eq!(cluster.stats().endpoint_breaker_closed.get(), 1);
    assert_eq!(reached(&cluster, 10, later), BTreeSet::from([1, 2]));
}

#[test]
fn a_dropped_attempt_frees_its_probe_slot() {
    let passive = PassiveConfig {
        endpoint_circuit_breaker: Some(breaker(1)),
        ..PassiveConfig::default()
    };
    let now = Instant::now();
    let cluster = Cluster::new(config(2, passive), None, None, now);
    attempt(&cluster, 1, AttemptOutcome::Reset, now);
    let later = now + Duration::from_secs(1);
    cluster.tick(later);
    let mut rng = SmallRng::seed_from_u64(1);
    let probe = cluster.pick_avoiding_with(&request(), &[address(2)], later, &mut rng);
    assert_eq!(
        probe.as_ref().map(|g| g.endpoint().address()),
        Some(address(1))
    );
    drop(probe);
    let again = cluster.pick_avoiding_with(&request(), &[address(2)], later, &mut rng);
    assert_eq!(again.map(|g| g.endpoint().address()), Some(address(1)));
}

#[test]
fn a_retry_avoids_the_failed_endpoint_unless_it_is_the_only_one() {
    let now = Instant::now();
    let cluster = Cluster::new(config(3, PassiveConfig::default()), None, None, now);
    let mut rng = SmallRng::seed_from_u64(5);
    for _ in 0..30 {
        let guard = cluster
            .pick_avoiding_with(&request(), &[address(1), address(2)], now, &mut rng)
            .expect("a pick");
        assert_eq!(guard.endpoint().address(), address(3));
    }
    let all = [address(1), address(2), address(3)];
    assert!(
        cluster
            .pick_avoiding_with(&request(), &all, now, &mut rng)
            .is_some(),
        "with every endpoint avoided, one that failed is better than none"
    );
}

#[test]
fn a_retry_whose_every_candidate_failed_spills_over_to_the_standby_priority() {
    let now = Instant::now();
    let mut config = config(3, PassiveConfig::default());
    config.endpoints[2].priority = 1;
    let cluster = Cluster::new(config, None, None, now);
    let mut rng = SmallRng::seed_from_u64(5);
    // The primaries take all the traffic while healthy…
    assert_eq!(reached(&cluster, 30, now), BTreeSet::from([1, 2]));
    // …but a retry that already met both goes to the standby rather than back to them.
    for _ in 0..10 {
        let guard = cluster
            .pick_avoiding_with(&request(), &[address(1), address(2)], now, &mut rng)
            .expect("a pick");
        assert_eq!(guard.endpoint().address(), address(3));
    }
}

#[test]
fn the_cluster_breaker_fails_fast_then_closes_after_its_probe() {
    let passive = PassiveConfig {
        circuit_breaker: Some(breaker(3)),
        ..PassiveConfig::default()
    };
    let now = Instant::now();
    let cluster = Cluster::new(config(2, passive), None, None, now);
    for _ in 0..3 {
        cluster
            .admit(now)
            .expect("closed")
            .record(AttemptOutcome::ConnectFailed, now);
    }
    let open = cluster.admit(now + 400 * MS).expect_err("open");
    assert_eq!(open.retry_after, Some(600 * MS));
    assert_eq!(cluster.stats().breaker_opened.get(), 1);
    assert_eq!(cluster.stats().fast_failures.get(), 1);
    let later = now + Duration::from_secs(1);
    cluster.tick(later);
    let probe = cluster.admit(later).expect("a probe");
    assert!(cluster.admit(later).is_err(), "one probe at a time");
    probe.record(AttemptOutcome::Success, later);
    assert!(cluster.admit(later).is_ok());
    assert_eq!(cluster.stats().breaker_closed.get(), 1);
}

#[test]
fn a_reload_with_the_same_settings_keeps_ejections_and_open_breakers() {
    let mut passive = outliers(|config| config.consecutive_gateway_errors = Some(1));
    passive.endpoint_circuit_breaker = Some(breaker(1));
    let now = Instant::now();
    let first = Cluster::new(config(3, passive.clone()), None, None, now);
    attempt(&first, 1, GATEWAY, now);
    assert!(first.endpoints()[0].is_ejected() && first.endpoints()[0].is_tripped());
    let mut changed = config(3, passive.clone());
    changed.request_timeout = Duration::from_secs(2);
    let second = Cluster::new(changed, None, Some(&first), now);
    first.retire();
    assert!(second.endpoints()[0].is_ejected() && second.endpoints()[0].is_tripped());
    assert_eq!(reached(&second, 20, now), BTreeSet::from([2, 3]));
    // New breaker settings: a fresh breaker, closed.
    let mut rebroken = config(3, passive);
    rebroken.passive.endpoint_circuit_breaker = Some(breaker(5));
    let third = Cluster::new(rebroken, None, Some(&second), now);
    second.retire();
    assert!(!third.endpoints()[0].is_tripped());
    assert!(
        third.endpoints()[0].is_ejected(),
        "outlier state survives its settings' reload"
    );
    // Outlier detection removed: nobody stays ejected.
    let mut plain = config(3, PassiveConfig::default());
    plain.request_timeout = Duration::from_secs(3);
    let fourth = Cluster::new(plain, None, Some(&third), now);
    assert_eq!(reached(&fourth, 20, now), BTreeSet::from([1, 2, 3]));
}

#[derive(Debug, Clone, Copy)]
enum Step {
    /// An attempt to the endpoint the balancer picks, with this outcome and latency.
    Attempt(u8, u16),
    /// Time passes (ms), then a tick.
    Wait(u16),
    /// An endpoint's health flips.
    Health(u8, bool),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0_u8..6, 0_u16..300).prop_map(|(outcome, latency)| Step::Attempt(outcome, latency)),
        2 => (0_u16..1500).prop_map(Step::Wait),
        1 => (0_u8..6, any::<bool>()).prop_map(|(endpoint, healthy)| Step::Health(endpoint, healthy)),
    ]
}

fn outcome(code: u8) -> AttemptOutcome {
    match code {
        0 => AttemptOutcome::Success,
        1 => OVERLOADED,
        2 => GATEWAY,
        3 => AttemptOutcome::ServerError(StatusCode::INTERNAL_SERVER_ERROR),
        4 => AttemptOutcome::Timeout,
        _ => AttemptOutcome::Cancelled,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn ejections_stay_under_the_cap_and_picks_never_reach_an_ejected_or_open_endpoint(
        steps in prop::collection::vec(step(), 1..300),
        percent in 0_u8..=100,
        seed in any::<u64>(),
    ) {
        let mut passive = outliers(|config| {
            config.consecutive_errors = Some(2);
            config.consecutive_gateway_errors = Some(1);
            config.max_ejection_percent = percent;
            config.interval = Duration::from_millis(500);
            config.failure_percentage = Some(blastwall_policy::outlier::FailurePercentageConfig {
                threshold_percent: 50,
                request_volume: 3,
            });
            config.slow_call_threshold = Some(Duration::from_millis(200));
        });
        passive.endpoint_circuit_breaker = Some(breaker(3));
        let start = Instant::now();
        let cluster = Cluster::new(config(6, passive), None, None, start);
        let mut now = start;
        let mut rng = SmallRng::seed_from_u64(seed);
        for step in steps {
            match step {
                Step::Attempt(code, latency) => {
                    let Some(guard) = cluster.pick_with(&request(), now, &mut rng) else {
                        continue;
                    };
                    let endpoint = guard.endpoint().clone();
                    prop_assert!(!endpoint.is_ejected(), "picked an ejected endpoint");
                    prop_assert!(!endpoint.is_tripped(), "picked an endpoint whose breaker is open");
                    let outcome = outcome(code);
                    let ejections = cluster.stats().ejections.get();
                    cluster.record_outcome(&guard, outcome, Duration::from_millis(latency.into()), now);
                    if matches!(outcome, AttemptOutcome::Overloaded { .. } | AttemptOutcome::Cancelled) {
                        prop_assert_eq!(cluster.stats().ejections.get(), ejections, "overload ejected");
                    }
                }
                Step::Wait(ms) => {
                    now += Duration::from_millis(ms.into());
                    cluster.tick(now);
                }
                Step::Health(index, healthy) => {
                    cluster.endpoints()[usize::from(index)].set_healthy(healthy);
                }
            }
            let endpoints = cluster.endpoints();
            if !matches!(step, Step::Health(..)) {
                // Once the cap has followed health (every pick and tick), half the cluster
                // (or all it has) serves.
                let available = endpoints.iter().filter(|e| e.is_healthy() && !e.is_tripped());
                let serving = available.clone().filter(|e| !e.is_ejected()).count();
                prop_assert!(serving >= available.count().min(3), "{serving} serving");
            }
            let ejected = endpoints.iter().filter(|e| e.is_ejected()).count();
            let config = OutlierConfig { max_ejection_percent: percent, ..OutlierConfig::default() };
            prop_assert!(ejected <= config.max_ejected(endpoints.len()), "{ejected} ejected at {percent}%");
            prop_assert!(ejected < endpoints.len());
        }
    }
}

#[test]
fn an_endpoint_that_passes_its_health_checks_again_has_its_breaker_closed() {
    use std::num::NonZeroU32;

    use crate::config::{HealthCheck, HealthCheckConfig};
    use crate::health::ProbeFailure;

    let passive = PassiveConfig {
        endpoint_circuit_breaker: Some(
            BreakerConfig {
                open_duration: Duration::from_secs(60),
                ..breaker_config(2)
            }
            .validated()
            .expect("the test breaker config is valid"),
        ),
        ..PassiveConfig::default()
    };
    let mut config = config(2, passive);
    config.health_check = Some(HealthCheckConfig {
        kind: HealthCheck::Tcp,
        interval: Duration::from_secs(1),
        timeout: Duration::from_secs(1),
        healthy_threshold: NonZeroU32::MIN,
        unhealthy_threshold: NonZeroU32::MIN,
        jitter: Duration::ZERO,
    });
    let now = Instant::now();
    let cluster = Cluster::new(config, None, None, now);
    let down = || ProbeFailure::Timeout(Duration::from_secs(1));
    for endpoint in cluster.endpoints().iter() {
        cluster.record_check(endpoint, Ok(()));
    }
    let first = cluster.endpoints()[0].clone();
    attempt(&cluster, 1, AttemptOutcome::ConnectFailed, now);
    attempt(&cluster, 1, AttemptOutcome::ConnectFailed, now);
    assert!(first.is_tripped());
    cluster.record_check(&first, Err(down()));
    assert!(first.is_tripped(), "a failed check leaves the breaker open");
    // Back up: the check's evidence closes the breaker without waiting out its 60s.
    cluster.record_check(&first, Ok(()));
    assert!(!first.is_tripped());
    assert_eq!(reached(&cluster, 20, now), BTreeSet::from([1, 2]));
}
