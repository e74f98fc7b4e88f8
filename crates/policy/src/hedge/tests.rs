use super::histogram::{BUCKETS, LatencyWindow, bucket_end, bucket_of};
use super::*;
use crate::budget::BudgetConfig;
use proptest::prelude::*;

const MS: Duration = Duration::from_millis(1);

fn ample_budget() -> RetryBudget {
    budget_with_floor(1000)
}

/// Only the floor: `per_second * 10` hedges in the 10 s window.
fn budget_with_floor(per_second: u32) -> RetryBudget {
    RetryBudget::new(BudgetConfig {
        retry_ratio: 0.0,
        min_retries_per_second: per_second,
        window: Duration::from_secs(10),
        buckets: 10,
    })
    .expect("valid budget")
}

fn fixed(delay: Duration, max_hedges: u32) -> HedgePolicy {
    HedgePolicy::new(HedgeConfig {
        delay: HedgeDelay::Fixed(delay),
        max_hedges,
        ..HedgeConfig::default()
    })
    .expect("valid policy")
}

fn p95(min_samples: u32, fallback: Option<Duration>) -> HedgePolicy {
    HedgePolicy::new(HedgeConfig {
        delay: HedgeDelay::Percentile {
            quantile: 0.95,
            min_samples,
            fallback,
        },
        max_hedges: 1,
        window: Duration::from_secs(4),
    })
    .expect("valid policy")
}

#[test]
fn a_fixed_delay_hedge_waits_then_sends() {
    let t0 = Instant::now();
    let policy = fixed(100 * MS, 1);
    let budget = ample_budget();
    let mut state = policy.start(t0);
    assert_eq!(state.next_hedge_at(), Some(t0 + 100 * MS));
    let early = policy.poll_hedge(&mut state, t0 + 99 * MS, &budget);
    assert_eq!(early, HedgeDecision::WaitUntil(t0 + 100 * MS));
    assert_eq!(
        policy.poll_hedge(&mut state, t0 + 100 * MS, &budget),
        HedgeDecision::Send
    );
    assert_eq!(state.hedges_sent(), 1);
}

#[test]
fn no_more_than_max_hedges_are_sent_each_one_delay_apart() {
    let t0 = Instant::now();
    let policy = fixed(100 * MS, 2);
    let budget = ample_budget();
    let mut state = policy.start(t0);
    assert_eq!(
        policy.poll_hedge(&mut state, t0 + 100 * MS, &budget),
        HedgeDecision::Send
    );
    assert_eq!(state.next_hedge_at(), Some(t0 + 200 * MS));
    let early = policy.poll_hedge(&mut state, t0 + 150 * MS, &budget);
    assert_eq!(early, HedgeDecision::WaitUntil(t0 + 200 * MS));
    assert_eq!(
        policy.poll_hedge(&mut state, t0 + 200 * MS, &budget),
        HedgeDecision::Send
    );
    assert_eq!(state.next_hedge_at(), None);
    let after = policy.poll_hedge(&mut state, t0 + 10_000 * MS, &budget);
    assert_eq!(after, HedgeDecision::Stop(NoHedge::MaxHedges));
    assert_eq!(state.hedges_sent(), 2);
}

#[test]
fn a_hedge_withdraws_from_the_budget_and_stops_when_it_is_spent() {
    let t0 = Instant::now();
    let policy = fixed(10 * MS, 1);
    let budget = budget_with_floor(0);
    let mut state = policy.start(t0);
    let decision = policy.poll_hedge(&mut state, t0 + 10 * MS, &budget);
    assert_eq!(decision, HedgeDecision::Stop(NoHedge::BudgetExhausted));
    assert_eq!(state.hedges_sent(), 0);
    assert_eq!(state.next_hedge_at(), None);

    let budget = RetryBudget::new(BudgetConfig {
        retry_ratio: 0.0,
        min_retries_per_second: 1,
        window: Duration::from_secs(1),
        buckets: 10,
    })
    .expect("valid");
    let mut first = policy.start(t0);
    let mut second = policy.start(t0);
    assert_eq!(
        policy.poll_hedge(&mut first, t0 + 10 * MS, &budget),
        HedgeDecision::Send
    );
    assert_eq!(budget.remaining(t0 + 10 * MS), 0);
    let decision = policy.poll_hedge(&mut second, t0 + 10 * MS, &budget);
    assert_eq!(decision, HedgeDecision::Stop(NoHedge::BudgetExhausted));
}

#[test]
fn percentile_mode_does_not_hedge_before_min_samples_without_a_fallback() {
    let t0 = Instant::now();
    let policy = p95(10, None);
    for _ in 0..9 {
        policy.record(100 * MS, t0);
    }
    assert_eq!(policy.hedge_delay(), None);
    let mut state = policy.start(t0);
    let decision = policy.poll_hedge(&mut state, t0 + 10_000 * MS, &ample_budget());
    assert_eq!(decision, HedgeDecision::Stop(NoHedge::NotWarmedUp));
}

#[test]
fn percentile_mode_uses_the_fallback_until_min_samples() {
    let t0 = Instant::now();
    let policy = p95(10, Some(300 * MS));
    for _ in 0..9 {
        policy.record(100 * MS, t0);
        assert_eq!(policy.hedge_delay(), Some(300 * MS));
    }
    policy.record(100 * MS, t0);
    // 100 ms = 100_000 µs falls in the bucket [98_304, 106_496) µs.
    assert_eq!(policy.hedge_delay(), Some(Duration::from_micros(106_496)));
}

#[test]
fn the_percentile_follows_the_slow_tail() {
    let t0 = Instant::now();
    let policy = p95(20, None);
    for _ in 0..94 {
        policy.record(10 * MS, t0);
    }
    for _ in 0..6 {
        policy.record(1000 * MS, t0);
    }
    policy.record(1000 * MS, t0 + 2 * MS); // well past RECOMPUTE_EVERY records
    let delay = policy.hedge_delay().expect("warmed up");
    assert!(delay >= 1000 * MS && delay <= 1125 * MS, "{delay:?}");
}

#[test]
fn old_latencies_leave_the_window_and_hedging_stops_again() {
    let t0 = Instant::now();
    let policy = p95(5, None);
    for _ in 0..5 {
        policy.record(50 * MS, t0);
    }
    assert!(policy.hedge_delay().is_some());
    assert_eq!(policy.samples(t0 + 3999 * MS), 5);
    // A record a full window later expires the old ones: too few samples again.
    policy.record(50 * MS, t0 + 4000 * MS);
    assert_eq!(policy.samples(t0 + 4000 * MS), 1);
    assert_eq!(policy.hedge_delay(), None);
}

#[test]
fn a_fixed_delay_ignores_recorded_latencies() {
    let t0 = Instant::now();
    let policy = fixed(70 * MS, 1);
    policy.record(5 * MS, t0);
    assert_eq!(policy.hedge_delay(), Some(70 * MS));
    assert_eq!(policy.samples(t0), 0);
}

#[test]
fn invalid_configs_are_rejected() {
    for quantile in [0.0, -0.5, 1.01, f64::NAN] {
        let config = HedgeConfig {
            delay: HedgeDelay::Percentile {
                quantile,
                min_samples: 1,
                fallback: None,
            },
            ..HedgeConfig::default()
        };
        assert!(matches!(
            HedgePolicy::new(config),
            Err(HedgeConfigError::Quantile(_))
        ));
    }
    let zero = HedgeConfig {
        max_hedges: 0,
        ..HedgeConfig::default()
    };
    assert_eq!(zero.validate(), Err(HedgeConfigError::ZeroHedges));
    let short = HedgeConfig {
        window: Duration::from_micros(10),
        ..HedgeConfig::default()
    };
    assert!(matches!(short.validate(), Err(HedgeConfigError::Window(_))));
    assert!(HedgeConfig::default().validate().is_ok());
}

#[test]
fn histogram_buckets_are_exact_below_16us_then_eight_per_octave() {
    for us in 0..16 {
        assert_eq!(bucket_of(us), us as usize);
        assert_eq!(bucket_end(us as usize), us + 1);
    }
    assert_eq!(bucket_of(16), 16);
    assert_eq!(bucket_of(17), 16);
    assert_eq!(bucket_of(18), 17);
    assert_eq!(bucket_end(16), 18);
    assert_eq!(bucket_of(31), 23);
    assert_eq!(bucket_of(32), 24);
    assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    assert_eq!(bucket_of(1 << 33), BUCKETS - 1);
    assert_eq!(bucket_of((1 << 33) - 1), BUCKETS - 1);
}

#[test]
fn an_empty_window_has_no_quantile() {
    let window = LatencyWindow::new(Duration::from_secs(1), 4);
    assert_eq!(window.quantile(0.5), None);
}

fn any_delay_ms() -> impl Strategy<Value = u64> {
    0u64..500
}

#[derive(Debug, Clone)]
enum Op {
    Start,
    Poll(usize),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => Just(Op::Start),
        4 => (0usize..8).prop_map(Op::Poll),
        3 => (0u64..300).prop_map(Op::Advance),
    ]
}

proptest! {
    #[test]
    fn hedges_never_exceed_max_nor_come_early_nor_overdraw_the_budget(
        delay_ms in any_delay_ms(),
        max_hedges in 1u32..4,
        floor in 0u32..3,
        ops in prop::collection::vec(op(), 0..200),
    ) {
        let t0 = Instant::now();
        let policy = fixed(Duration::from_millis(delay_ms), max_hedges);
        // A window longer than any run, so spent hedges never come back.
        let budget = RetryBudget::new(BudgetConfig {
            retry_ratio: 0.0,
            min_retries_per_second: floor,
            window: Duration::from_secs(3600),
            buckets: 10,
        }).expect("valid");
        let mut requests: Vec<(Instant, HedgeState)> = Vec::new();
        let mut now = t0;
        let mut total_sent = 0u64;
        for op in ops {
            match op {
                Op::Start => requests.push((now, policy.start(now))),
                Op::Advance(ms) => now += Duration::from_millis(ms),
                Op::Poll(i) => {
                    if requests.is_empty() {
                        continue;
                    }
                    let (started, state) = {
                        let n = requests.len();
                        &mut requests[i % n]
                    };
                    let before = state.hedges_sent();
                    if policy.poll_hedge(state, now, &budget) == HedgeDecision::Send {
                        total_sent += 1;
                        let k = state.hedges_sent();
                        prop_assert_eq!(k, before + 1);
                        let due = *started + Duration::from_millis(delay_ms) * k;
                        prop_assert!(now >= due, "hedge {} at {:?} before {:?}", k, now, due);
                    }
                    prop_assert!(state.hedges_sent() <= max_hedges);
                }
            }
        }
        prop_assert!(total_sent <= u64::from(floor) * 3600);
    }

    #[test]
    fn histogram_quantiles_are_at_most_an_eighth_above_the_truth(
        latencies_us in prop::collection::vec(0u64..10_000_000, 1..300),
        quantile in 0.01f64..=1.0,
    ) {
        let t0 = Instant::now();
        let mut window = LatencyWindow::new(Duration::from_secs(10), 4);
        for us in &latencies_us {
            window.record(Duration::from_micros(*us), t0);
        }
        let mut sorted = latencies_us.clone();
        sorted.sort_unstable();
        let rank = ((quantile * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        let truth = sorted[rank - 1];
        let got = window.quantile(quantile).expect("not empty").as_micros() as u64;
        prop_assert!(got > truth, "{} <= {}", got, truth);
        prop_assert!(got <= truth + truth / 8 + 1, "{} too far above {}", got, truth);
    }
}
