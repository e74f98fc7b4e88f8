use super::*;
use proptest::prelude::*;
use std::sync::Arc;

const MS: Duration = Duration::from_millis(1);

fn budget(retry_ratio: f64, min_retries_per_second: u32, window: Duration) -> RetryBudget {
    RetryBudget::new(BudgetConfig {
        retry_ratio,
        min_retries_per_second,
        window,
        buckets: 10,
    })
    .expect("valid config")
}

fn withdrawals_granted(budget: &RetryBudget, now: Instant, tries: usize) -> usize {
    (0..tries).filter(|_| budget.withdraw(now).is_ok()).count()
}

#[test]
fn floor_allows_retries_with_no_traffic() {
    let t0 = Instant::now();
    let budget = budget(0.2, 3, Duration::from_secs(2));
    assert_eq!(budget.remaining(t0), 6);
    assert_eq!(withdrawals_granted(&budget, t0, 10), 6);
}

#[test]
fn exhausted_budget_refuses_and_spends_nothing() {
    let t0 = Instant::now();
    let budget = budget(0.5, 0, Duration::from_secs(1));
    assert_eq!(budget.withdraw(t0), Err(BudgetExhausted));
    budget.deposit(t0);
    budget.deposit(t0);
    // The refused withdrawal did not put the balance in debt.
    assert_eq!(budget.withdraw(t0), Ok(()));
    assert_eq!(budget.withdraw(t0), Err(BudgetExhausted));
}

#[test]
fn each_retry_needs_one_over_ratio_deposits() {
    let t0 = Instant::now();
    let budget = budget(0.2, 0, Duration::from_secs(10));
    for _ in 0..4 {
        budget.deposit(t0);
    }
    assert_eq!(budget.remaining(t0), 0);
    budget.deposit(t0);
    assert_eq!(budget.remaining(t0), 1);
    assert_eq!(withdrawals_granted(&budget, t0, 3), 1);
}

#[test]
fn a_ratio_above_one_allows_several_retries_per_request() {
    let t0 = Instant::now();
    let budget = budget(2.5, 0, Duration::from_secs(10));
    budget.deposit(t0);
    budget.deposit(t0);
    assert_eq!(withdrawals_granted(&budget, t0, 10), 5);
}

#[test]
fn ratio_and_floor_add_up() {
    let t0 = Instant::now();
    let budget = budget(0.1, 1, Duration::from_secs(5));
    for _ in 0..30 {
        budget.deposit(t0);
    }
    assert_eq!(budget.remaining(t0), 3 + 5);
}

#[test]
fn the_ratio_is_rounded_to_thousandths() {
    let t0 = Instant::now();
    // 1/3 counts as 0.333: three deposits make 0.999 of a retry, a fourth tips it over.
    let budget = budget(1.0 / 3.0, 0, Duration::from_secs(10));
    for _ in 0..3 {
        budget.deposit(t0);
    }
    assert_eq!(budget.remaining(t0), 0);
    budget.deposit(t0);
    assert_eq!(budget.remaining(t0), 1);
}

#[test]
fn deposits_expire_after_the_window() {
    let t0 = Instant::now();
    let budget = budget(0.1, 0, Duration::from_secs(1));
    for _ in 0..10 {
        budget.deposit(t0);
    }
    assert_eq!(budget.remaining(t0 + 999 * MS), 1);
    assert_eq!(budget.remaining(t0 + 1000 * MS), 0);
    assert_eq!(budget.withdraw(t0 + 1000 * MS), Err(BudgetExhausted));
}

#[test]
fn a_deposit_late_in_its_slice_lives_one_slice_less() {
    let t0 = Instant::now();
    let budget = budget(1.0, 0, Duration::from_secs(1));
    budget.remaining(t0); // the first call fixes where slices start
    budget.deposit(t0 + 950 * MS); // in the slice [900 ms, 1000 ms)
    assert_eq!(budget.remaining(t0 + 1899 * MS), 1);
    assert_eq!(budget.remaining(t0 + 1900 * MS), 0);
}

#[test]
fn spent_retries_come_back_when_the_window_moves_on() {
    let t0 = Instant::now();
    let budget = budget(0.2, 2, Duration::from_secs(1));
    assert_eq!(withdrawals_granted(&budget, t0, 5), 2);
    assert_eq!(budget.withdraw(t0 + 999 * MS), Err(BudgetExhausted));
    assert_eq!(budget.remaining(t0 + 1000 * MS), 2);
}

#[test]
fn withdrawals_spread_over_the_window_expire_slice_by_slice() {
    let t0 = Instant::now();
    let budget = budget(0.0, 2, Duration::from_secs(1));
    assert_eq!(budget.withdraw(t0), Ok(()));
    assert_eq!(budget.withdraw(t0 + 500 * MS), Ok(()));
    assert_eq!(budget.remaining(t0 + 999 * MS), 0);
    assert_eq!(budget.remaining(t0 + 1000 * MS), 1);
    assert_eq!(budget.remaining(t0 + 1500 * MS), 2);
}

#[test]
fn a_stale_now_counts_in_the_newest_slice() {
    let t0 = Instant::now();
    let budget = budget(1.0, 0, Duration::from_secs(1));
    budget.remaining(t0);
    budget.remaining(t0 + 500 * MS);
    // A caller with an older clock reading: the deposit still lives a full window from 500 ms.
    budget.deposit(t0 + 100 * MS);
    assert_eq!(budget.remaining(t0 + 1499 * MS), 1);
    assert_eq!(budget.remaining(t0 + 1500 * MS), 0);
}

#[test]
fn a_jump_of_years_expires_everything_without_overflow() {
    let t0 = Instant::now();
    let budget = budget(1.0, 1, Duration::from_secs(1));
    for _ in 0..5 {
        budget.deposit(t0);
    }
    budget.withdraw(t0).expect("funded");
    let later = t0 + Duration::from_secs(60 * 60 * 24 * 365 * 100);
    assert_eq!(budget.remaining(later), 1);
}

#[test]
fn concurrent_withdrawals_never_overspend() {
    let t0 = Instant::now();
    let budget = Arc::new(budget(0.0, 100, Duration::from_secs(1)));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let budget = Arc::clone(&budget);
            std::thread::spawn(move || withdrawals_granted(&budget, t0, 1000))
        })
        .collect();
    let granted: usize = threads
        .into_iter()
        .map(|t| t.join().expect("thread finished"))
        .sum();
    assert_eq!(granted, 100);
}

#[test]
fn concurrent_callers_moving_the_ring_forward_stay_within_the_floor() {
    // Four threads walk through 3 s of time, trying one withdrawal per millisecond each, so
    // the ring is moved forward while others withdraw. The floor allows 10 per 1 s window;
    // with one slice of slack, 3 s hold at most 10 * (3 + 1).
    let t0 = Instant::now();
    let budget = Arc::new(budget(0.0, 10, Duration::from_secs(1)));
    budget.remaining(t0);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let budget = Arc::clone(&budget);
            std::thread::spawn(move || {
                (0..3000)
                    .filter(|ms| budget.withdraw(t0 + MS * *ms).is_ok())
                    .count()
            })
        })
        .collect();
    let granted: usize = threads
        .into_iter()
        .map(|t| t.join().expect("thread finished"))
        .sum();
    assert!((30..=40).contains(&granted), "granted {granted}");
}

#[test]
fn the_default_checked_config_is_the_default_config() {
    assert_eq!(
        BudgetConfig::default().validated(),
        Ok(ValidBudgetConfig::default())
    );
    let budget = RetryBudget::from_valid(ValidBudgetConfig::default());
    assert_eq!(budget.config(), &BudgetConfig::default());
}

#[test]
fn validation_rejects_nonsense() {
    let ok = BudgetConfig::default();
    assert!(ok.validate().is_ok());
    for ratio in [-0.1, f64::NAN, 100.5, f64::INFINITY] {
        let config = BudgetConfig {
            retry_ratio: ratio,
            ..ok
        };
        assert!(matches!(
            RetryBudget::new(config),
            Err(BudgetConfigError::RetryRatio(_))
        ));
    }
    for window in [Duration::ZERO, MAX_WINDOW + MS] {
        let config = BudgetConfig { window, ..ok };
        assert_eq!(config.validate(), Err(BudgetConfigError::Window(window)));
    }
    for buckets in [0, MAX_BUCKETS + 1] {
        let config = BudgetConfig { buckets, ..ok };
        assert_eq!(config.validate(), Err(BudgetConfigError::Buckets(buckets)));
    }
    let config = BudgetConfig {
        window: 5 * MS,
        buckets: 10,
        ..ok
    };
    assert!(matches!(
        config.validate(),
        Err(BudgetConfigError::BucketTooShort(_))
    ));
}

#[derive(Debug, Clone)]
enum Op {
    Deposit,
    Withdraw,
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Deposit),
        4 => Just(Op::Withdraw),
        2 => (0u64..400).prop_map(Op::Advance),
    ]
}

/// The budget as a list of everything that happened, with the window recomputed from scratch
/// each time.
struct Model {
    slice_nanos: u64,
    buckets: u64,
    window_nanos: u64,
    ratio_units: i64,
    reserve_units: i64,
    /// (time since start in ns, is a deposit)
    events: Vec<(u64, bool)>,
}

impl Model {
    fn live(&self, now: u64) -> (i64, i64) {
        let slice = now / self.slice_nanos;
        let live = |at: u64| at / self.slice_nanos + self.buckets > slice;
        let deposits = self.events.iter().filter(|(at, d)| *d && live(*at));
        let withdrawals = self.events.iter().filter(|(at, d)| !*d && live(*at));
        (deposits.count() as i64, withdrawals.count() as i64)
    }

    fn available_units(&self, now: u64) -> i64 {
        let (d, w) = self.live(now);
        self.reserve_units + self.ratio_units * d - UNITS_PER_RETRY * w
    }

    /// The bucket-free bound from the module docs, checked at a withdrawal at `now`.
    fn bound_holds(&self, now: u64) -> bool {
        let short = self.window_nanos - self.slice_nanos;
        let count = |deposit: bool, span: u64| {
            let n = self
                .events
                .iter()
                .filter(|(at, d)| *d == deposit && *at <= now && now.saturating_sub(*at) < span);
            n.count() as i64
        };
        let w = count(false, short);
        let d = count(true, self.window_nanos);
        UNITS_PER_RETRY * w <= self.reserve_units + self.ratio_units * d
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn withdrawals_match_a_naive_model_and_stay_within_the_bound(
        ratio_milli in prop_oneof![Just(0i64), 0i64..3000],
        floor in 0u32..5,
        window_ms in 10u64..1000,
        buckets in 1u32..8,
        ops in prop::collection::vec(op(), 0..300),
    ) {
        let config = BudgetConfig {
            retry_ratio: ratio_milli as f64 / 1000.0,
            min_retries_per_second: floor,
            window: Duration::from_millis(window_ms),
            buckets,
        };
        let budget = RetryBudget::new(config).expect("valid config");
        let mut model = Model {
            slice_nanos: nanos(config.window / buckets),
            buckets: u64::from(buckets),
            window_nanos: window_ms * 1_000_000,
            ratio_units: ratio_milli,
            reserve_units: i64::from(floor) * window_ms as i64,
            events: Vec::new(),
        };
        let t0 = Instant::now();
        budget.remaining(t0); // slices start where the model's do
        let mut at = 0u64;
        for op in ops {
            if let Op::Advance(ms) = op {
                at += ms * 1_000_000;
            }
            let now = t0 + Duration::from_nanos(at);
            match op {
                Op::Advance(_) => {}
                Op::Deposit => {
                    budget.deposit(now);
                    model.events.push((at, true));
                }
                Op::Withdraw => {
                    let allowed = model.available_units(at) >= UNITS_PER_RETRY;
                    prop_assert_eq!(budget.withdraw(now).is_ok(), allowed, "at {} ns", at);
                    if allowed {
                        model.events.push((at, false));
                        prop_assert!(model.bound_holds(at), "bound broken at {} ns", at);
                    }
                }
            }
            let want = model.available_units(at).max(0) / UNITS_PER_RETRY;
            prop_assert_eq!(budget.remaining(now), want as u64);
        }
    }
}
