use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::SmallRng;

use super::*;

const MS: Duration = Duration::from_millis(1);

/// The `q`-quantile of `count` delays drawn with a generator seeded with `seed`.
fn quantiles(latency: Latency, seed: u64, count: usize) -> impl Fn(f64) -> Duration {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut delays: Vec<Duration> = (0..count).map(|_| latency.sample_with(&mut rng)).collect();
    delays.sort();
    move |q| delays[((delays.len() as f64) * q) as usize]
}

fn near(found: Duration, expected: Duration, tolerance: f64) -> bool {
    (found.as_secs_f64() / expected.as_secs_f64() - 1.0).abs() < tolerance
}

#[test]
fn fixed_is_always_its_value() {
    let fixed = Latency::Fixed { value: 30 * MS };
    assert_eq!(fixed.sample([0.0, 0.0]), 30 * MS);
    assert_eq!(fixed.sample([0.99, 0.5]), 30 * MS);
    assert_eq!(fixed.sample_with(&mut SmallRng::seed_from_u64(1)), 30 * MS);
}

#[test]
fn uniform_spans_its_range_by_the_first_draw() {
    let uniform = Latency::Uniform {
        min: 10 * MS,
        max: 20 * MS,
    };
    assert_eq!(uniform.sample([0.0, 0.9]), 10 * MS);
    assert_eq!(uniform.sample([0.5, 0.1]), 15 * MS);
}

#[test]
fn log_normal_has_the_median_and_99th_percentile_it_was_given() {
    let latency = Latency::LogNormal {
        p50: 20 * MS,
        p99: 400 * MS,
    };
    let quantile = quantiles(latency, 17, 100_000);
    let (p50, p99) = (quantile(0.5), quantile(0.99));
    assert!(near(p50, 20 * MS, 0.05), "p50 {p50:?}");
    assert!(near(p99, 400 * MS, 0.1), "p99 {p99:?}");
}

#[test]
fn normal_centres_on_its_mean_and_never_goes_below_zero() {
    let latency = Latency::Normal {
        mean: 100 * MS,
        std_dev: 80 * MS,
    };
    let quantile = quantiles(latency, 17, 100_000);
    assert!(
        near(quantile(0.5), 100 * MS, 0.05),
        "p50 {:?}",
        quantile(0.5)
    );
    assert_eq!(quantile(0.0), Duration::ZERO);
}

#[test]
fn a_huge_tail_is_capped() {
    let wild = Latency::LogNormal {
        p50: Duration::from_secs(1000),
        p99: Duration::from_secs(1_000_000_000),
    };
    assert_eq!(wild.sample([0.999_999, 0.0]), MAX_DELAY);
    let long = Latency::Fixed {
        value: Duration::MAX,
    };
    assert_eq!(long.sample_with(&mut SmallRng::seed_from_u64(1)), MAX_DELAY);
}

#[test]
fn unfittable_distributions_are_refused_with_their_values() {
    let upside_down = Latency::Uniform {
        min: 20 * MS,
        max: 10 * MS,
    };
    let err = upside_down.validate().expect_err("min above max");
    assert_eq!(
        err.to_string(),
        "uniform min (20ms) is more than max (10ms)"
    );
    let zero_median = Latency::LogNormal {
        p50: Duration::ZERO,
        p99: MS,
    };
    let err = zero_median.validate().expect_err("p50 of zero");
    assert!(err.to_string().contains("0 < p50 <= p99"), "{err}");
    let inverted = Latency::LogNormal {
        p50: 2 * MS,
        p99: MS,
    };
    assert!(inverted.validate().is_err());
    let fitted = Latency::LogNormal { p50: MS, p99: MS };
    assert_eq!(fitted.validate(), Ok(()));
}

#[test]
fn only_distributions_without_any_positive_delay_are_always_zero() {
    let zero = Duration::ZERO;
    assert!(Latency::Fixed { value: zero }.is_always_zero());
    assert!(
        Latency::Uniform {
            min: zero,
            max: zero
        }
        .is_always_zero()
    );
    assert!(!Latency::Uniform { min: zero, max: MS }.is_always_zero());
    let normal = |mean, std_dev| Latency::Normal { mean, std_dev };
    assert!(normal(zero, zero).is_always_zero());
    assert!(!normal(zero, MS).is_always_zero(), "half its draws delay");
    assert!(!Latency::LogNormal { p50: MS, p99: MS }.is_always_zero());
}

/// Any duration up to a few hours, often exactly zero or the cap.
fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        Just(MAX_DELAY),
        (0u64..10_000_000_000_000).prop_map(Duration::from_nanos),
    ]
}

/// Any duration at all, up to `Duration::MAX`.
fn extreme() -> impl Strategy<Value = Duration> {
    prop_oneof![
        duration(),
        Just(Duration::MAX),
        any::<u64>().prop_map(Duration::from_secs),
    ]
}

/// Any distribution, including ones `validate` refuses and extreme durations.
fn any_latency() -> impl Strategy<Value = Latency> {
    prop_oneof![
        extreme().prop_map(|value| Latency::Fixed { value }),
        (extreme(), extreme()).prop_map(|(min, max)| Latency::Uniform { min, max }),
        (extreme(), extreme()).prop_map(|(mean, std_dev)| Latency::Normal { mean, std_dev }),
        (extreme(), extreme()).prop_map(|(p50, p99)| Latency::LogNormal { p50, p99 }),
    ]
}

/// A draw in `[0, 1)`, often at its ends.
fn draw() -> impl Strategy<Value = f64> {
    prop_oneof![Just(0.0), Just(1.0 - f64::EPSILON), 0.0f64..1.0]
}

proptest! {
    #[test]
    fn no_sample_panics_or_exceeds_the_cap(
        latency in any_latency(),
        draws in [draw(), draw()],
        seed: u64,
    ) {
        prop_assert!(latency.sample(draws) <= MAX_DELAY);
        prop_assert!(latency.sample_with(&mut SmallRng::seed_from_u64(seed)) <= MAX_DELAY);
    }

    #[test]
    fn a_uniform_sample_stays_within_min_and_max(
        min in duration(),
        max in duration(),
        draws in [draw(), draw()],
    ) {
        let (min, max) = (min.min(max), min.max(max));
        let delay = Latency::Uniform { min, max }.sample(draws);
        // Within the range, as far as the cap lets it be.
        let (low, high) = (min.min(MAX_DELAY), max.min(MAX_DELAY));
        prop_assert!(low <= delay && delay <= high, "{delay:?} outside {low:?}..={high:?}");
    }

    #[test]
    fn a_normal_draw_below_zero_waits_zero_and_never_goes_negative(
        mean in duration(),
        std_dev in duration(),
        draws in [draw(), draw()],
    ) {
        let delay = Latency::Normal { mean, std_dev }.sample(draws);
        let exact = mean.as_secs_f64() + std_dev.as_secs_f64() * standard_normal(draws);
        if exact <= 0.0 {
            prop_assert_eq!(delay, Duration::ZERO);
        } else {
            prop_assert!(delay <= MAX_DELAY);
        }
    }
}

proptest! {
    // Each case draws 50,000 delays; a few dozen cases cover the range.
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// The sample quantiles are compared in log space, where a log-normal is a normal of
    /// spread σ: over n draws the sample median's standard error is about 1.25σ/√n and the
    /// 99th percentile's about 3.7σ/√n (0.0056σ and 0.017σ at n = 50,000). The tolerances
    /// are over five standard errors, so a correct sampler fails about once in ten million.
    #[test]
    fn a_log_normal_sample_has_the_p50_and_p99_it_was_given(
        p50_us in 1_000u64..10_000_000,
        ratio in 1.0f64..100.0,
        seed: u64,
    ) {
        let p50 = Duration::from_micros(p50_us);
        let p99 = p50.mul_f64(ratio);
        let sigma = ratio.ln() / Z_99;
        let quantile = quantiles(Latency::LogNormal { p50, p99 }, seed, 50_000);
        let off = |found: Duration, expected: Duration| {
            (found.as_secs_f64() / expected.as_secs_f64()).ln().abs()
        };
        // One nanosecond of rounding, relative to the smallest p50 here (1ms).
        let rounding = 1e-6;
        prop_assert!(
            off(quantile(0.5), p50) <= 0.03 * sigma + rounding,
            "p50 {:?} for {p50:?} (σ {sigma})", quantile(0.5)
        );
        prop_assert!(
            off(quantile(0.99), p99) <= 0.09 * sigma + rounding,
            "p99 {:?} for {p99:?} (σ {sigma})", quantile(0.99)
        );
    }
}
