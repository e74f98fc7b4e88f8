//! Invariants over random sequences of membership changes, outcomes, ticks and time.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

/// Ids below this only ever see fast successes.
const GOOD: usize = 3;
const IDS: usize = 8;

#[derive(Debug, Clone)]
enum Op {
    Add(usize),
    Remove(usize),
    Record {
        id: usize,
        outcome: Outcome,
        latency_ms: u64,
    },
    Advance(u64),
    Tick,
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        Just(Outcome::Success),
        Just(Outcome::ServerError),
        Just(Outcome::GatewayError),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (0..IDS).prop_map(Op::Add),
        1 => (0..IDS).prop_map(Op::Remove),
        12 => (0..IDS, outcome(), 0u64..1_000)
            .prop_map(|(id, outcome, latency_ms)| Op::Record { id, outcome, latency_ms }),
        3 => (0u64..20_000).prop_map(Op::Advance),
        2 => Just(Op::Tick),
    ]
}

fn config() -> impl Strategy<Value = OutlierConfig> {
    (
        (1u64..5, 1u64..20, 1u32..10, 0u8..=100),
        (
            prop::option::of(1u32..6),
            prop::option::of(1u32..4),
            prop::option::of((1u8..=100, 1u64..20)),
            prop::option::of((0.0f64..3.0, 1u64..20, 1usize..5)),
            prop::option::of(50u64..500),
        ),
    )
        .prop_map(
            |((interval, base, max_factor, percent), (consecutive, gateway, fp, sr, slow))| {
                OutlierConfig {
                    interval: Duration::from_secs(interval),
                    base_ejection_time: Duration::from_secs(base),
                    max_ejection_time: Duration::from_secs(base * u64::from(max_factor)),
                    max_ejection_percent: percent,
                    consecutive_errors: consecutive,
                    consecutive_gateway_errors: gateway,
                    failure_percentage: fp.map(|(threshold_percent, request_volume)| {
                        FailurePercentageConfig {
                            threshold_percent,
                            request_volume,
                        }
                    }),
                    success_rate: sr.map(|(stdev_factor, request_volume, minimum_hosts)| {
                        SuccessRateConfig {
                            stdev_factor,
                            request_volume,
                            minimum_hosts,
                        }
                    }),
                    slow_call_threshold: slow.map(Duration::from_millis),
                }
            },
        )
}

/// The cap, found the slow way: the most endpoints that may be ejected out of `n`.
fn naive_cap(n: usize, percent: u8) -> usize {
    (0..n)
        .filter(|&k| k * 100 <= n * usize::from(percent) || (k == 1 && percent > 0))
        .max()
        .unwrap_or(0)
}

/// What the caller knows from events alone: ejected ids and their ejections.
#[derive(Default)]
struct Model {
    ejected: BTreeMap<EndpointId, Ejection>,
}

impl Model {
    fn apply(
        &mut self,
        events: &[Event],
        config: &OutlierConfig,
        now: Instant,
    ) -> Result<(), TestCaseError> {
        for event in events {
            match *event {
                Event::Ejected(e) => {
                    prop_assert!(e.id >= GOOD, "endpoint {} saw only successes", e.id);
                    prop_assert!(self.ejected.insert(e.id, e).is_none(), "ejected twice");
                    prop_assert_eq!(e.at, now);
                    prop_assert!(e.multiplier >= 1);
                    let expected = config
                        .base_ejection_time
                        .saturating_mul(e.multiplier)
                        .min(config.max_ejection_time);
                    prop_assert_eq!(e.duration(), expected);
                }
                Event::Unejected(e) => {
                    prop_assert_eq!(self.ejected.remove(&e.id), Some(e));
                }
                Event::EjectionSuppressed {
                    ejected,
                    max_ejected,
                    ..
                } => prop_assert!(ejected >= max_ejected),
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn ejections_respect_the_cap_and_spare_healthy_endpoints(
        config in config(),
        initial in 0..=IDS,
        ops in prop::collection::vec(op(), 1..300),
    ) {
        let t0 = Instant::now();
        let mut now = t0;
        let mut d = detector(config.clone(), initial, t0);
        let mut model = Model::default();
        for op in ops {
            let mut events = Vec::new();
            match op {
                Op::Add(id) => {
                    d.add(id).expect("small id");
                }
                Op::Remove(id) => {
                    events = d.remove(id, now);
                    model.ejected.remove(&id);
                }
                Op::Record { id, outcome, latency_ms } => {
                    let (outcome, latency) = if id < GOOD {
                        (Outcome::Success, FAST)
                    } else {
                        (outcome, Duration::from_millis(latency_ms))
                    };
                    events.extend(d.record(id, outcome, latency, now));
                }
                Op::Advance(ms) => now += Duration::from_millis(ms),
                Op::Tick => events = d.tick(now),
            }
            model.apply(&events, &config, now)?;

            let cap = d.max_ejected();
            prop_assert_eq!(cap, naive_cap(d.len(), config.max_ejection_percent));
            let ejected_now: Vec<_> = d.ids().filter(|&id| d.is_ejected(id, now)).collect();
            prop_assert!(ejected_now.len() <= cap, "{} ejected, cap {}", ejected_now.len(), cap);
            prop_assert_eq!(ejected_now.len(), d.ejected_count(now));
            if !d.is_empty() {
                prop_assert!(ejected_now.len() < d.len(), "the last endpoint was ejected");
            }
            for id in 0..IDS {
                let in_model = model.ejected.get(&id);
                match d.ejection(id, now) {
                    Some(e) => prop_assert_eq!(in_model, Some(&e)),
                    // Elapsed ejections stay in the model until a tick reports them.
                    None => prop_assert!(in_model.is_none_or(|e| e.until <= now)),
                }
            }
            if matches!(op, Op::Tick) {
                prop_assert!(model.ejected.values().all(|e| e.until > now));
            }
        }
    }
}
