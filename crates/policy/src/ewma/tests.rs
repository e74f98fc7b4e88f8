use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;

const TAU: Duration = Duration::from_secs(10);
const MS: f64 = 1e6;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Asserts that `d` is within a nanosecond (rounding) of `expected` nanoseconds.
#[track_caller]
fn assert_near(d: Duration, expected: f64) {
    let got = d.as_nanos() as f64;
    assert!(
        (got - expected).abs() <= 1.0,
        "got {got} ns, expected {expected} ns"
    );
}

fn peak(now: Instant) -> PeakEwma {
    PeakEwma::new(&PeakEwmaConfig::default(), now).expect("default config is valid")
}

#[test]
fn zero_decay_is_rejected() {
    assert_eq!(
        Ewma::new(Duration::ZERO).err(),
        Some(EwmaConfigError::ZeroDecay)
    );
    let config = PeakEwmaConfig {
        decay: Duration::ZERO,
        ..PeakEwmaConfig::default()
    };
    assert_eq!(config.validate(), Err(EwmaConfigError::ZeroDecay));
    assert!(PeakEwma::new(&config, Instant::now()).is_err());
    assert!(PeakEwmaConfig::default().validate().is_ok());
}

#[test]
fn ewma_has_no_estimate_before_the_first_sample_and_takes_the_first_as_is() {
    let t0 = Instant::now();
    let mut e = Ewma::new(TAU).expect("valid");
    assert_eq!(e.get(), None);
    e.observe(ms(100), t0);
    assert_eq!(e.get(), Some(ms(100)));
    assert_eq!(e.updated_at(), Some(t0));
}

#[test]
fn ewma_weighs_a_sample_by_the_time_since_the_previous_one() {
    let t0 = Instant::now();
    let mut e = Ewma::new(TAU).expect("valid");
    e.observe(ms(100), t0);
    // One τ later the old value keeps exp(-1) of its weight.
    e.observe(ms(200), t0 + TAU);
    let after_one = 200.0 * MS + (100.0 - 200.0) * MS * (-1.0f64).exp();
    assert_near(e.get().expect("sampled"), after_one);
    // A quarter τ later, exp(-0.25).
    e.observe(ms(50), t0 + TAU + TAU / 4);
    let after_two = 50.0 * MS + (after_one - 50.0 * MS) * (-0.25f64).exp();
    assert_near(e.get().expect("sampled"), after_two);
}

#[test]
fn ewma_decay_does_not_depend_on_how_samples_are_spaced() {
    // Two samples of the same value split an interval; the old value must keep exactly
    // exp(-Δt/τ) of its weight across the whole interval, as with one sample.
    let t0 = Instant::now();
    let mut split = Ewma::new(TAU).expect("valid");
    split.observe(ms(100), t0);
    split.observe(ms(300), t0 + ms(3_000));
    split.observe(ms(300), t0 + ms(20_000));
    let mut whole = Ewma::new(TAU).expect("valid");
    whole.observe(ms(100), t0);
    whole.observe(ms(300), t0 + ms(20_000));
    let expected = 300.0 * MS - 200.0 * MS * (-2.0f64).exp();
    assert_near(split.get().expect("sampled"), expected);
    assert_near(whole.get().expect("sampled"), expected);
}

#[test]
fn ewma_sample_at_the_same_instant_has_no_weight() {
    let t0 = Instant::now();
    let mut e = Ewma::new(TAU).expect("valid");
    e.observe(ms(100), t0);
    e.observe(ms(900), t0);
    assert_eq!(e.get(), Some(ms(100)));
}

#[test]
fn ewma_sample_from_the_past_neither_counts_nor_moves_the_clock_back() {
    let t0 = Instant::now();
    let mut e = Ewma::new(TAU).expect("valid");
    e.observe(ms(100), t0 + TAU);
    e.observe(ms(900), t0);
    assert_eq!(e.get(), Some(ms(100)));
    assert_eq!(e.updated_at(), Some(t0 + TAU));
}

#[test]
fn ewma_does_not_drift_without_samples() {
    let t0 = Instant::now();
    let mut e = Ewma::new(TAU).expect("valid");
    e.observe(ms(100), t0);
    let shared = SharedEwma::new(TAU).expect("valid");
    shared.observe(ms(100), t0);
    assert_eq!(e.get(), Some(ms(100)));
    assert_eq!(shared.get(), Some(ms(100)));
}

#[test]
fn peak_estimate_is_the_default_before_any_sample() {
    let t0 = Instant::now();
    let p = peak(t0);
    assert!(!p.has_samples());
    assert_eq!(p.estimate(), ms(30));
    assert_eq!(p.get(t0), ms(30));
    assert_eq!(p.get(t0 + 100 * TAU), ms(30));
}

#[test]
fn peak_first_sample_replaces_the_default_even_when_lower() {
    let t0 = Instant::now();
    let mut p = peak(t0);
    p.observe(ms(2), t0 + ms(1));
    assert!(p.has_samples());
    assert_eq!(p.estimate(), ms(2));
}

#[test]
fn peak_jumps_to_a_higher_sample_at_once() {
    let t0 = Instant::now();
    let mut p = peak(t0);
    p.observe(ms(10), t0);
    p.observe(ms(500), t0 + ms(1));
    assert_eq!(p.estimate(), ms(500));
    assert_eq!(p.get(t0 + ms(1)), ms(500));
}

#[test]
fn peak_decays_toward_lower_samples_with_time() {
    let t0 = Instant::now();
    let mut p = peak(t0);
    p.observe(ms(500), t0);
    p.observe(ms(10), t0 + TAU);
    let one = 10.0 * MS + 490.0 * MS * (-1.0f64).exp();
    assert_near(p.estimate(), one);
    p.observe(ms(10), t0 + 3 * TAU);
    let three = 10.0 * MS + (one - 10.0 * MS) * (-2.0f64).exp();
    assert_near(p.estimate(), three);
    // A lower sample right after a peak barely moves it: one fast answer proves little.
    let mut q = peak(t0);
    q.observe(ms(500), t0);
    q.observe(ms(10), t0 + ms(1));
    assert!(q.estimate() > ms(499));
}

#[test]
fn peak_view_falls_back_toward_the_default_while_idle() {
    let t0 = Instant::now();
    let mut p = peak(t0);
    p.observe(ms(1_000), t0);
    assert_eq!(p.get(t0), ms(1_000));
    let expected = 30.0 * MS + 970.0 * MS * (-1.0f64).exp();
    assert_near(p.get(t0 + TAU), expected);
    assert_near(p.get(t0 + 50 * TAU), 30.0 * MS);
    // Reading is pure: the stored estimate has not moved.
    assert_eq!(p.estimate(), ms(1_000));
}

#[test]
fn peak_view_below_the_default_stays_put_while_idle() {
    let t0 = Instant::now();
    let mut p = peak(t0);
    p.observe(ms(5), t0);
    assert_eq!(p.get(t0 + 100 * TAU), ms(5));
}

#[test]
fn peak_sample_above_the_default_after_idle_raises_the_view_again() {
    let t0 = Instant::now();
    let mut p = peak(t0);
    p.observe(ms(1_000), t0);
    let before = p.get(t0 + 5 * TAU);
    p.observe(ms(100), t0 + 5 * TAU);
    let expected = 100.0 * MS + 900.0 * MS * (-5.0f64).exp();
    assert_near(p.estimate(), expected);
    assert!(p.get(t0 + 5 * TAU) > before);
}

#[test]
fn peak_cost_multiplies_the_estimate_by_requests_in_flight_plus_one() {
    let t0 = Instant::now();
    let mut p = peak(t0);
    p.observe(ms(20), t0);
    assert_eq!(p.cost(t0, 0), 20.0 * MS);
    assert_eq!(p.cost(t0, 3), 80.0 * MS);
    let fresh = peak(t0);
    assert_eq!(fresh.cost(t0, 1), 60.0 * MS);
}

#[test]
fn fast_failure_counts_as_the_failure_penalty() {
    let t0 = Instant::now();
    let mut p = peak(t0);
    p.observe(ms(20), t0);
    p.observe_failure(ms(1), t0 + ms(5));
    assert_eq!(p.estimate(), Duration::from_secs(1));
}

#[test]
fn slow_failure_counts_as_its_latency() {
    let t0 = Instant::now();
    let mut p = peak(t0);
    p.observe_failure(Duration::from_secs(4), t0);
    assert_eq!(p.estimate(), Duration::from_secs(4));
}

#[test]
fn failure_never_lowers_the_estimate_and_refreshes_its_fall_back() {
    let t0 = Instant::now();
    let config = PeakEwmaConfig {
        failure_penalty: Duration::ZERO,
        ..PeakEwmaConfig::default()
    };
    let mut p = PeakEwma::new(&config, t0).expect("valid");
    p.observe(ms(800), t0);
    let idle = t0 + 2 * TAU;
    assert!(p.get(idle) < ms(800));
    p.observe_failure(ms(1), idle);
    assert_eq!(p.estimate(), ms(800));
    assert_eq!(p.get(idle), ms(800));
}

#[test]
fn shared_peak_ewma_answers_like_the_plain_one() {
    let t0 = Instant::now();
    let shared = SharedPeakEwma::new(&PeakEwmaConfig::default(), t0).expect("valid");
    let mut plain = peak(t0);
    for (i, (rtt, failed)) in [(10, false), (300, false), (40, true), (25, false)]
        .into_iter()
        .enumerate()
    {
        let now = t0 + ms(700) * i as u32;
        if failed {
            shared.observe_failure(ms(rtt), now);
            plain.observe_failure(ms(rtt), now);
        } else {
            shared.observe(ms(rtt), now);
            plain.observe(ms(rtt), now);
        }
    }
    let later = t0 + TAU;
    assert_eq!(shared.estimate(), plain.estimate());
    assert_eq!(shared.get(later), plain.get(later));
    assert_eq!(shared.cost(later, 2), plain.cost(later, 2));
    assert_eq!(shared.snapshot().estimate(), plain.estimate());
}

#[test]
fn shared_peak_ewma_is_usable_from_many_threads() {
    let t0 = Instant::now();
    let shared =
        std::sync::Arc::new(SharedPeakEwma::new(&PeakEwmaConfig::default(), t0).expect("valid"));
    let handles: Vec<_> = (0..4u64)
        .map(|k| {
            let shared = shared.clone();
            std::thread::spawn(move || {
                for i in 0..100u64 {
                    shared.observe(ms(10 + k), t0 + ms(i));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("no panic");
    }
    let e = shared.estimate();
    assert!(e >= ms(10) && e <= ms(13), "{e:?}");
}

/// A sample: milliseconds after the previous one, latency in microseconds, failed or not.
fn samples() -> impl Strategy<Value = Vec<(u64, u64, bool)>> {
    prop::collection::vec((0u64..30_000, 1u64..5_000_000, any::<bool>()), 1..60)
}

proptest! {
    #[test]
    fn ewma_stays_between_the_smallest_and_largest_sample(
        tau_ms in 1u64..60_000,
        seq in samples(),
    ) {
        let t0 = Instant::now();
        let mut e = Ewma::new(ms(tau_ms)).expect("valid");
        let (mut lo, mut hi) = (Duration::MAX, Duration::ZERO);
        let mut now = t0;
        for (gap, us, _) in seq {
            now += ms(gap);
            let s = Duration::from_micros(us);
            lo = lo.min(s);
            hi = hi.max(s);
            e.observe(s, now);
            let v = e.get().expect("sampled");
            prop_assert!(v >= lo && v <= hi, "{v:?} not in [{lo:?}, {hi:?}]");
        }
    }

    #[test]
    fn peak_ewma_stays_within_samples_and_default_and_never_below_a_fresh_peak(
        tau_ms in 1u64..60_000,
        seq in samples(),
    ) {
        let t0 = Instant::now();
        let config = PeakEwmaConfig { decay: ms(tau_ms), ..PeakEwmaConfig::default() };
        let mut p = PeakEwma::new(&config, t0).expect("valid");
        let (mut lo, mut hi) = (config.default_rtt, config.default_rtt);
        let mut now = t0;
        for (gap, us, _) in seq {
            now += ms(gap);
            let s = Duration::from_micros(us);
            lo = lo.min(s);
            hi = hi.max(s);
            p.observe(s, now);
            prop_assert!(p.estimate() >= s, "estimate below the sample just seen");
            for probe in [now, now + ms(gap), now + 1_000 * ms(tau_ms)] {
                let v = p.get(probe);
                prop_assert!(v >= lo && v <= hi, "{v:?} not in [{lo:?}, {hi:?}]");
            }
            prop_assert!(p.get(now + ms(gap)) <= p.get(now), "idle view went up");
        }
    }

    #[test]
    fn peak_ewma_failure_never_makes_an_endpoint_look_cheaper(seq in samples()) {
        let t0 = Instant::now();
        let mut p = peak(t0);
        let mut now = t0;
        for (gap, us, failed) in seq {
            now += ms(gap);
            let s = Duration::from_micros(us);
            let before = p.get(now);
            if failed {
                p.observe_failure(s, now);
                prop_assert!(p.get(now) >= before);
                prop_assert!(p.get(now) >= Duration::from_secs(1));
            } else {
                p.observe(s, now);
            }
        }
    }
}

#[test]
fn a_forgotten_peak_ewma_is_back_to_its_default_and_unsampled() {
    let t0 = Instant::now();
    let mut ewma = PeakEwma::new(&PeakEwmaConfig::default(), t0).unwrap();
    ewma.observe_failure(Duration::from_millis(5), t0);
    assert!(ewma.has_samples());
    ewma.forget(t0 + Duration::from_secs(1));
    assert!(!ewma.has_samples());
    assert_eq!(
        ewma.get(t0 + Duration::from_secs(1)),
        PeakEwmaConfig::default().default_rtt
    );
}

#[test]
fn a_censored_sample_only_raises_the_estimate() {
    let start = Instant::now();
    let mut ewma = peak(start);
    ewma.observe(ms(3), start);
    // A call abandoned after 1 ms might have taken 3 ms: nothing learned.
    ewma.observe_censored(ms(1), start + ms(10));
    assert_eq!(ewma.estimate(), ms(3));
    // One abandoned after 8 ms took at least that: a peak.
    ewma.observe_censored(ms(8), start + ms(20));
    assert_eq!(ewma.estimate(), ms(8));
    // And a real answer afterwards is averaged in as usual.
    ewma.observe(ms(3), start + ms(30));
    assert!(ewma.estimate() < ms(8) && ewma.estimate() > ms(3));
}

#[test]
fn a_censored_sample_below_the_default_leaves_an_unsampled_estimate_alone() {
    let start = Instant::now();
    let mut ewma = peak(start);
    ewma.observe_censored(ms(5), start);
    assert!(!ewma.has_samples());
    ewma.observe_censored(ms(50), start);
    assert_eq!(ewma.estimate(), ms(50));
}
