use super::*;
use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};

const MS: Duration = Duration::from_millis(1);

/// A generator stuck at one word: all zeros draws the low end of every range, all ones the
/// high end, so jitter's extremes are testable exactly.
struct Stuck(u64);

impl RngCore for Stuck {
    fn next_u32(&mut self) -> u32 {
        self.0 as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.0
    }
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        dst.fill(self.0 as u8);
    }
}

fn lowest() -> Stuck {
    Stuck(0)
}

fn highest() -> Stuck {
    Stuck(u64::MAX)
}

fn delays(config: BackoffConfig, rng: &mut impl Rng, n: usize) -> Vec<Duration> {
    let mut backoff = Backoff::new(config).expect("valid config");
    (0..n).map(|_| backoff.next_delay(rng)).collect()
}

fn exp_100ms_x2_cap_1s() -> BackoffConfig {
    BackoffConfig::exponential(100 * MS, 2.0, 1000 * MS)
}

#[test]
fn constant_backoff_repeats_the_same_delay() {
    let got = delays(BackoffConfig::constant(40 * MS), &mut lowest(), 4);
    assert_eq!(got, vec![40 * MS; 4]);
}

#[test]
fn exponential_without_jitter_doubles_then_stops_at_the_cap() {
    let got = delays(exp_100ms_x2_cap_1s(), &mut lowest(), 6);
    let want: Vec<_> = [100, 200, 400, 800, 1000, 1000].map(|m| m * MS).into();
    assert_eq!(got, want);
}

#[test]
fn fractional_multiplier_grows_by_that_factor() {
    let config = BackoffConfig::exponential(100 * MS, 1.5, 1000 * MS);
    let got = delays(config, &mut lowest(), 3);
    assert_eq!(got, vec![100 * MS, 150 * MS, 225 * MS]);
}

#[test]
fn full_jitter_spans_zero_to_the_ceiling() {
    let config = exp_100ms_x2_cap_1s().with_jitter(Jitter::Full);
    assert_eq!(delays(config, &mut lowest(), 3), vec![Duration::ZERO; 3]);
    let high: Vec<_> = [100, 200, 400].map(|m| m * MS).into();
    assert_eq!(delays(config, &mut highest(), 3), high);
}

#[test]
fn full_jitter_with_a_seeded_rng_is_exactly_reproducible() {
    let config = exp_100ms_x2_cap_1s().with_jitter(Jitter::Full);
    let got = delays(config, &mut SmallRng::seed_from_u64(7), 5);
    // The same draws, made by hand from a generator with the same seed.
    let mut twin = SmallRng::seed_from_u64(7);
    let want: Vec<_> = [100u64, 200, 400, 800, 1000]
        .map(|ceiling_ms| Duration::from_nanos(twin.random_range(0..=ceiling_ms * 1_000_000)))
        .into();
    assert_eq!(got, want);
    assert_eq!(got, delays(config, &mut SmallRng::seed_from_u64(7), 5));
    assert_ne!(got, delays(config, &mut SmallRng::seed_from_u64(8), 5));
}

#[test]
fn equal_jitter_spans_half_the_ceiling_to_the_ceiling() {
    let config = exp_100ms_x2_cap_1s().with_jitter(Jitter::Equal);
    let low: Vec<_> = [50, 100, 200].map(|m| m * MS).into();
    assert_eq!(delays(config, &mut lowest(), 3), low);
    let high: Vec<_> = [100, 200, 400].map(|m| m * MS).into();
    assert_eq!(delays(config, &mut highest(), 3), high);
}

#[test]
fn equal_jitter_with_a_seeded_rng_is_exactly_reproducible() {
    let config = exp_100ms_x2_cap_1s().with_jitter(Jitter::Equal);
    let got = delays(config, &mut SmallRng::seed_from_u64(11), 3);
    let mut twin = SmallRng::seed_from_u64(11);
    let want: Vec<_> = [100u64, 200, 400]
        .map(|ceiling_ms| {
            let half = ceiling_ms * 1_000_000 / 2;
            Duration::from_nanos(half + twin.random_range(0..=half))
        })
        .into();
    assert_eq!(got, want);
}

#[test]
fn decorrelated_jitter_grows_from_the_previous_delay() {
    let config =
        BackoffConfig::exponential(100 * MS, 3.0, 10_000 * MS).with_jitter(Jitter::Decorrelated);
    // Lowest draws stay at base; highest draws triple each time (the AWS formula).
    assert_eq!(delays(config, &mut lowest(), 3), vec![100 * MS; 3]);
    let high: Vec<_> = [300, 900, 2700, 8100, 10_000].map(|m| m * MS).into();
    assert_eq!(delays(config, &mut highest(), 5), high);
}

#[test]
fn decorrelated_jitter_with_a_seeded_rng_follows_the_aws_formula() {
    let config =
        BackoffConfig::exponential(100 * MS, 3.0, 1000 * MS).with_jitter(Jitter::Decorrelated);
    let got = delays(config, &mut SmallRng::seed_from_u64(3), 6);
    let mut twin = SmallRng::seed_from_u64(3);
    let (base, cap) = (100_000_000u64, 1_000_000_000u64);
    let mut sleep = base;
    let mut want = Vec::new();
    for _ in 0..6 {
        sleep = twin.random_range(base..=sleep * 3).min(cap);
        want.push(Duration::from_nanos(sleep));
    }
    assert_eq!(got, want);
}

#[test]
fn reset_starts_the_sequence_again() {
    let mut backoff = Backoff::new(exp_100ms_x2_cap_1s()).expect("valid");
    backoff.next_delay(&mut lowest());
    backoff.next_delay(&mut lowest());
    assert_eq!(backoff.retries(), 2);
    backoff.reset();
    assert_eq!(backoff.retries(), 0);
    assert_eq!(backoff.next_delay(&mut lowest()), 100 * MS);
}

#[test]
fn huge_attempt_numbers_neither_panic_nor_exceed_the_cap() {
    let config = BackoffConfig::exponential(100 * MS, 10.0, 1000 * MS);
    assert_eq!(config.ceiling(u32::MAX), 1000 * MS);
    for jitter in [
        Jitter::None,
        Jitter::Full,
        Jitter::Equal,
        Jitter::Decorrelated,
    ] {
        let mut backoff = Backoff {
            config: config.with_jitter(jitter),
            retries: u32::MAX - 1,
            previous: config.cap,
        };
        for _ in 0..3 {
            assert!(backoff.next_delay(&mut highest()) <= config.cap);
        }
        assert_eq!(backoff.retries(), u32::MAX);
    }
}

#[test]
fn extreme_durations_saturate_instead_of_overflowing() {
    let config = BackoffConfig::exponential(Duration::MAX, 2.0, Duration::MAX)
        .with_jitter(Jitter::Decorrelated);
    let got = delays(config, &mut highest(), 3);
    assert!(got.iter().all(|d| *d == Duration::from_nanos(u64::MAX)));
}

#[test]
fn zero_base_means_retry_at_once() {
    let config = BackoffConfig::exponential(Duration::ZERO, 2.0, 1000 * MS);
    assert_eq!(delays(config, &mut highest(), 3), vec![Duration::ZERO; 3]);
}

#[test]
fn validation_rejects_shrinking_or_non_finite_multipliers() {
    for multiplier in [0.5, f64::NAN, f64::INFINITY, -2.0] {
        let config = BackoffConfig::exponential(MS, multiplier, 10 * MS);
        assert!(matches!(
            Backoff::new(config),
            Err(BackoffConfigError::Multiplier(_))
        ));
    }
}

#[test]
fn validation_rejects_a_cap_below_the_base() {
    let config = BackoffConfig::exponential(10 * MS, 2.0, MS);
    assert_eq!(
        config.validate(),
        Err(BackoffConfigError::CapBelowBase {
            base: 10 * MS,
            cap: MS
        })
    );
    assert!(BackoffConfig::default().validate().is_ok());
}

fn any_jitter() -> impl Strategy<Value = Jitter> {
    prop_oneof![
        Just(Jitter::None),
        Just(Jitter::Full),
        Just(Jitter::Equal),
        Just(Jitter::Decorrelated),
    ]
}

proptest! {
    #[test]
    fn no_delay_ever_exceeds_the_cap(
        base_ms in 0u64..10_000,
        extra_ms in 0u64..100_000,
        multiplier in 1.0f64..50.0,
        jitter in any_jitter(),
        seed: u64,
        start in prop_oneof![Just(0u32), any::<u32>()],
        steps in 1usize..64,
    ) {
        let config = BackoffConfig {
            base: Duration::from_millis(base_ms),
            multiplier,
            cap: Duration::from_millis(base_ms + extra_ms),
            jitter,
        };
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut backoff = Backoff { config, retries: start, previous: config.base };
        for _ in 0..steps {
            let delay = backoff.next_delay(&mut rng);
            prop_assert!(delay <= config.cap, "{delay:?} > cap {:?}", config.cap);
            if jitter == Jitter::Decorrelated {
                prop_assert!(delay >= config.base);
            }
        }
    }
}
