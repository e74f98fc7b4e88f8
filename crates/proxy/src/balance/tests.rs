use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderName, Request};
use rand::SeedableRng;
use rand::rngs::SmallRng;

use super::*;
use crate::config::{EndpointAddress, EndpointConfig, HashKey};
use crate::endpoint::{Endpoint, EndpointGuard};
use crate::health::HealthStatus;

fn endpoints(weights: &[u32]) -> Vec<Arc<Endpoint>> {
    let changes = Arc::default();
    weights
        .iter()
        .enumerate()
        .map(|(index, weight)| {
            let address = SocketAddr::from(([10, 0, 0, index as u8 + 1], 80));
            Arc::new(Endpoint::new(
                address,
                EndpointConfig {
                    address: EndpointAddress::Socket(address),
                    weight: *weight,
                    zone: None,
                    priority: 0,
                },
                HealthStatus::Healthy,
                Arc::clone(&changes),
                Instant::now(),
            ))
        })
        .collect()
}

fn balancer(balance: BalanceConfig, endpoints: &[Arc<Endpoint>]) -> Balancer {
    Balancer {
        config: balance,
        max_weight: endpoints.iter().map(|e| e.weight()).max().unwrap_or(1),
    }
}

fn index_of(pool: &Pool, endpoint: &Arc<Endpoint>) -> usize {
    pool.endpoints()
        .iter()
        .position(|member| Arc::ptr_eq(member, endpoint))
        .expect("a member")
}

#[test]
fn smooth_weighted_round_robin_interleaves_like_nginx() {
    let mut smooth = SmoothWeighted::new(3);
    let order: String = (0..7)
        .map(|_| ["a", "b", "c"][smooth.next([5, 1, 1].into_iter())])
        .collect();
    assert_eq!(order, "aabacaa");
}

#[test]
fn weighted_round_robin_follows_weights_exactly_over_a_cycle() {
    let all = endpoints(&[3, 1, 2]);
    let balancer = balancer(BalanceConfig::WeightedRoundRobin, &all);
    let pool = balancer.pool(all);
    let mut rng = SmallRng::seed_from_u64(1);
    let mut counts = [0; 3];
    for _ in 0..60 {
        let chosen = balancer
            .pick(&pool, None, Instant::now(), &mut rng)
            .expect("a pick");
        counts[index_of(&pool, chosen)] += 1;
    }
    assert_eq!(counts, [30, 10, 20]);
}

#[test]
fn round_robin_takes_each_endpoint_in_turn() {
    let all = endpoints(&[1, 1, 1]);
    let balancer = balancer(BalanceConfig::RoundRobin, &all);
    let pool = balancer.pool(all);
    let mut rng = SmallRng::seed_from_u64(1);
    let order: Vec<usize> = (0..6)
        .map(|_| {
            index_of(
                &pool,
                balancer
                    .pick(&pool, None, Instant::now(), &mut rng)
                    .expect("a pick"),
            )
        })
        .collect();
    assert_eq!(order, [0, 1, 2, 0, 1, 2]);
}

#[test]
fn least_request_avoids_the_busy_endpoint_of_two() {
    let all = endpoints(&[1, 1]);
    let _busy: Vec<EndpointGuard> = (0..3).map(|_| EndpointGuard::new(all[0].clone())).collect();
    let balancer = balancer(BalanceConfig::LeastRequest, &all);
    let pool = balancer.pool(all);
    let mut rng = SmallRng::seed_from_u64(7);
    for _ in 0..100 {
        let chosen = balancer
            .pick(&pool, None, Instant::now(), &mut rng)
            .expect("a pick");
        assert_eq!(index_of(&pool, chosen), 1);
    }
}

#[test]
fn least_request_spreads_over_many_idle_endpoints() {
    let all = endpoints(&[1, 1, 1, 1]);
    let balancer = balancer(BalanceConfig::LeastRequest, &all);
    let pool = balancer.pool(all);
    let mut rng = SmallRng::seed_from_u64(7);
    let mut counts = [0; 4];
    for _ in 0..4000 {
        let chosen = balancer
            .pick(&pool, None, Instant::now(), &mut rng)
            .expect("a pick");
        counts[index_of(&pool, chosen)] += 1;
    }
    assert!(
        counts.iter().all(|count| (700..1300).contains(count)),
        "{counts:?}"
    );
}

#[test]
fn peak_ewma_avoids_the_slow_endpoint() {
    let all = endpoints(&[1, 1]);
    let now = Instant::now();
    all[0].latency().observe(Duration::from_millis(500), now);
    all[1].latency().observe(Duration::from_millis(5), now);
    let balancer = balancer(BalanceConfig::PeakEwma, &all);
    let pool = balancer.pool(all);
    let mut rng = SmallRng::seed_from_u64(3);
    for _ in 0..100 {
        let chosen = balancer.pick(&pool, None, now, &mut rng).expect("a pick");
        assert_eq!(index_of(&pool, chosen), 1);
    }
}

#[test]
fn peak_ewma_tries_an_endpoint_never_measured_instead_of_starving_it() {
    let all = endpoints(&[1, 1]);
    let now = Instant::now();
    // Faster than the 30 ms default estimate: an unmeasured peer must not look slower.
    all[0].latency().observe(Duration::from_millis(5), now);
    let balancer = balancer(BalanceConfig::PeakEwma, &all);
    let pool = balancer.pool(all.clone());
    let mut rng = SmallRng::seed_from_u64(3);
    let picks_of_new = (0..100)
        .filter(|_| {
            index_of(
                &pool,
                balancer.pick(&pool, None, now, &mut rng).expect("a pick"),
            ) == 1
        })
        .count();
    assert!(picks_of_new > 0, "the unmeasured endpoint was never tried");
}

#[test]
fn peak_ewma_sends_to_the_less_busy_of_a_measured_and_an_unmeasured_endpoint() {
    let all = endpoints(&[1, 1]);
    let now = Instant::now();
    all[0].latency().observe(Duration::from_millis(5), now);
    let busy: Vec<EndpointGuard> = (0..3).map(|_| EndpointGuard::new(all[1].clone())).collect();
    let balancer = balancer(BalanceConfig::PeakEwma, &all);
    let pool = balancer.pool(all.clone());
    let mut rng = SmallRng::seed_from_u64(3);
    for _ in 0..20 {
        let chosen = balancer.pick(&pool, None, now, &mut rng).expect("a pick");
        assert_eq!(
            index_of(&pool, chosen),
            0,
            "the unmeasured endpoint has 3 in flight"
        );
    }
    drop(busy);
}

#[test]
fn an_endpoint_back_to_health_forgets_its_latency_and_is_tried_again() {
    let all = endpoints(&[1, 1]);
    let now = Instant::now();
    all[0].latency().observe(Duration::from_millis(5), now);
    all[1].set_healthy(false);
    all[1]
        .latency()
        .observe_failure(Duration::from_millis(5), now);
    all[1].set_healthy(true);
    assert!(!all[1].latency().has_samples());
    let balancer = balancer(BalanceConfig::PeakEwma, &all);
    let pool = balancer.pool(all.clone());
    let mut rng = SmallRng::seed_from_u64(3);
    let picks = (0..100)
        .filter(|_| {
            index_of(
                &pool,
                balancer.pick(&pool, None, now, &mut rng).expect("a pick"),
            ) == 1
        })
        .count();
    assert!(picks > 0, "the recovered endpoint was never tried");
}

#[test]
fn consistent_hash_sticks_to_a_key_and_balances_keyless_requests() {
    let all = endpoints(&[1, 1, 1]);
    let key = HashKey::Header(HeaderName::from_static("x-user"));
    let balancer = balancer(BalanceConfig::ConsistentHash(key), &all);
    let pool = balancer.pool(all);
    let mut rng = SmallRng::seed_from_u64(3);
    let (with_key, _) = Request::builder()
        .header("x-user", "alice")
        .body(())
        .expect("a request")
        .into_parts();
    let key = balancer.key(&with_key);
    assert!(key.is_some());
    let first = balancer
        .pick(&pool, key, Instant::now(), &mut rng)
        .expect("a pick");
    for _ in 0..20 {
        let again = balancer
            .pick(&pool, key, Instant::now(), &mut rng)
            .expect("a pick");
        assert!(Arc::ptr_eq(first, again));
    }
    let (without, _) = Request::builder().body(()).expect("a request").into_parts();
    assert_eq!(balancer.key(&without), None);
    let mut seen = [false; 3];
    for _ in 0..100 {
        let chosen = balancer
            .pick(&pool, None, Instant::now(), &mut rng)
            .expect("a pick");
        seen[index_of(&pool, chosen)] = true;
    }
    assert_eq!(seen, [true; 3], "keyless requests spread");
}

#[test]
fn an_empty_pool_gives_nothing() {
    let balancer = balancer(BalanceConfig::RoundRobin, &[]);
    let pool = balancer.pool(Vec::new());
    let mut rng = SmallRng::seed_from_u64(3);
    assert!(
        balancer
            .pick(&pool, None, Instant::now(), &mut rng)
            .is_none()
    );
}
