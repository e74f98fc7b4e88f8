use super::*;

fn gradient2(config: Gradient2Config) -> Gradient2 {
    Gradient2::new(config).expect("valid config")
}

fn aimd(config: AimdConfig) -> Aimd {
    Aimd::new(config).expect("valid config")
}

fn approx(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6 * b.abs().max(1.0)
}

#[test]
fn gradient2_config_rejects_nonsense() {
    let ok = Gradient2Config::default();
    assert_eq!(ok.validate(), Ok(()));
    let cases = [
        Gradient2Config {
            min_limit: 0,
            ..ok.clone()
        },
        Gradient2Config {
            initial_limit: 300,
            ..ok.clone()
        },
        Gradient2Config {
            min_limit: 30,
            ..ok.clone()
        },
        Gradient2Config {
            smoothing: 0.0,
            ..ok.clone()
        },
        Gradient2Config {
            smoothing: 1.5,
            ..ok.clone()
        },
        Gradient2Config {
            smoothing: f64::NAN,
            ..ok.clone()
        },
        Gradient2Config {
            rtt_tolerance: 0.9,
            ..ok.clone()
        },
        Gradient2Config {
            rtt_tolerance: f64::INFINITY,
            ..ok.clone()
        },
        Gradient2Config {
            long_window: 0,
            ..ok.clone()
        },
    ];
    for case in cases {
        assert!(Gradient2::new(case.clone()).is_err(), "{case:?}");
    }
}

#[test]
fn gradient2_starts_at_its_initial_limit() {
    assert_eq!(gradient2(Gradient2Config::default()).limit(), 20);
}

#[test]
fn gradient2_grows_by_smoothing_times_queue_size_while_rtt_is_steady() {
    let mut g = gradient2(Gradient2Config::default());
    let now = Instant::now();
    // 20 × 0.8 + (20 × 1 + 4) × 0.2 = 20.8, then 21.6, 22.4: +0.8 per sample.
    assert_eq!(g.on_sample(sample(10, 20), now), 20);
    assert_eq!(g.on_sample(sample(10, 20), now), 21);
    assert_eq!(g.on_sample(sample(10, 20), now), 22);
    for _ in 0..7 {
        g.on_sample(sample(10, 30), now);
    }
    // 20 + 10 × 0.8 = 28.
    assert_eq!(g.limit(), 28);
}

#[test]
fn gradient2_holds_its_limit_while_app_limited() {
    let mut g = gradient2(Gradient2Config::default());
    let now = Instant::now();
    for _ in 0..50 {
        // 9 in flight is under half of 20: the limit is not what holds requests back.
        assert_eq!(g.on_sample(sample(10, 9), now), 20);
    }
    // ... but the long-term RTT still learned from those samples.
    assert!(approx(g.long_rtt_nanos(), 10e6));
}

#[test]
fn gradient2_long_rtt_is_a_plain_mean_during_warmup() {
    let mut g = gradient2(Gradient2Config::default());
    let now = Instant::now();
    g.on_sample(sample(10, 1), now);
    g.on_sample(sample(20, 1), now);
    assert!(approx(g.long_rtt_nanos(), 15e6));
}

#[test]
fn gradient2_long_rtt_is_an_exponential_average_after_warmup() {
    let config = Gradient2Config {
        long_window: 9,
        ..Gradient2Config::default()
    };
    let mut g = gradient2(config);
    let now = Instant::now();
    for _ in 0..10 {
        g.on_sample(sample(10, 1), now);
    }
    // factor 2 / (9 + 1) = 0.2: 10 × 0.8 + 15 × 0.2 = 11 ms.
    g.on_sample(sample(15, 1), now);
    assert!(approx(g.long_rtt_nanos(), 11e6), "{}", g.long_rtt_nanos());
}

#[test]
fn gradient2_tolerates_rtt_within_the_tolerance() {
    let mut g = gradient2(Gradient2Config::default());
    let now = Instant::now();
    for _ in 0..10 {
        g.on_sample(sample(10, 20), now);
    }
    let before = g.limit();
    // 14 ms against a 10 ms baseline is within 1.5×: the gradient stays 1 and it grows.
    assert!(g.on_sample(sample(14, 30), now) >= before);
}

#[test]
fn gradient2_decreases_when_latency_rises() {
    let mut g = gradient2(Gradient2Config::default());
    let now = Instant::now();
    for _ in 0..10 {
        g.on_sample(sample(10, 30), now);
    }
    assert_eq!(g.limit(), 28);
    // 40 ms against ~10 ms: gradient clamps to 0.5, so
    // estimate = 28 × 0.8 + (28 × 0.5 + 4) × 0.2 = 26.0 (from 28.0).
    assert_eq!(g.on_sample(sample(40, 30), now), 26);
    let mut last = 26;
    for _ in 0..20 {
        let limit = g.on_sample(sample(40, 30), now);
        assert!(limit <= last, "{limit} > {last}");
        last = limit;
    }
    // The fixed point of e = 0.9 e + 0.8 is 8.
    assert!(last < 12, "{last}");
}

#[test]
fn gradient2_recovers_after_latency_returns_to_normal() {
    let mut g = gradient2(Gradient2Config::default());
    let now = Instant::now();
    for _ in 0..50 {
        g.on_sample(sample(10, 200), now);
    }
    let healthy = g.limit();
    for _ in 0..100 {
        g.on_sample(sample(100, 200), now);
    }
    let overloaded = g.limit();
    assert!(overloaded < healthy / 2, "{overloaded} vs {healthy}");
    for _ in 0..50 {
        g.on_sample(sample(10, 200), now);
    }
    let recovered = g.limit();
    assert!(recovered >= overloaded + 30, "{recovered} vs {overloaded}");
}

#[test]
fn gradient2_cuts_an_inflated_long_rtt_once_latency_falls() {
    let mut g = gradient2(Gradient2Config::default());
    let now = Instant::now();
    for _ in 0..10 {
        g.on_sample(sample(100, 1), now);
    }
    let inflated = g.long_rtt_nanos();
    g.on_sample(sample(10, 1), now);
    // EWMA alone: 100 × (1 − 2/601) + 10 × 2/601 ≈ 99.7 ms; then × 0.95.
    let f = 2.0 / 601.0;
    let expect = (inflated * (1.0 - f) + 10e6 * f) * 0.95;
    assert!(approx(g.long_rtt_nanos(), expect), "{}", g.long_rtt_nanos());
}

#[test]
fn gradient2_treats_a_drop_as_the_steepest_gradient_even_when_app_limited() {
    let mut g = gradient2(Gradient2Config::default());
    let now = Instant::now();
    for _ in 0..10 {
        g.on_sample(sample(10, 1), now);
    }
    let long = g.long_rtt_nanos();
    // 20 × 0.8 + (20 × 0.5 + 4) × 0.2 = 18.8.
    assert_eq!(g.on_sample(dropped(5_000, 1), now), 18);
    assert!(
        approx(g.long_rtt_nanos(), long),
        "the timeout is not the service's RTT"
    );
}

#[test]
fn gradient2_never_leaves_its_bounds() {
    let config = Gradient2Config {
        initial_limit: 10,
        min_limit: 8,
        max_limit: 12,
        ..Gradient2Config::default()
    };
    let mut g = gradient2(config);
    let now = Instant::now();
    for _ in 0..100 {
        g.on_sample(sample(10, 100), now);
    }
    assert_eq!(g.limit(), 12);
    for _ in 0..100 {
        g.on_sample(dropped(10, 100), now);
    }
    assert_eq!(g.limit(), 8);
}

#[test]
fn aimd_config_rejects_nonsense() {
    let ok = AimdConfig::default();
    assert_eq!(ok.validate(), Ok(()));
    let cases = [
        AimdConfig {
            min_limit: 0,
            ..ok.clone()
        },
        AimdConfig {
            max_limit: 10,
            ..ok.clone()
        },
        AimdConfig {
            backoff_ratio: 1.0,
            ..ok.clone()
        },
        AimdConfig {
            backoff_ratio: 0.0,
            ..ok.clone()
        },
        AimdConfig {
            backoff_ratio: f64::NAN,
            ..ok.clone()
        },
        AimdConfig {
            increase_by: 0,
            ..ok.clone()
        },
        AimdConfig {
            timeout: Duration::ZERO,
            ..ok.clone()
        },
    ];
    for case in cases {
        assert!(Aimd::new(case.clone()).is_err(), "{case:?}");
    }
}

#[test]
fn aimd_increases_additively_when_the_limit_is_in_use() {
    let mut a = aimd(AimdConfig {
        increase_by: 2,
        ..AimdConfig::default()
    });
    let now = Instant::now();
    // 10 of 20 in flight is half: busy enough.
    assert_eq!(a.on_sample(sample(10, 10), now), 22);
    assert_eq!(a.on_sample(sample(10, 11), now), 24);
}

#[test]
fn aimd_holds_its_limit_when_mostly_idle() {
    let mut a = aimd(AimdConfig::default());
    let now = Instant::now();
    assert_eq!(a.on_sample(sample(10, 9), now), 20);
}

#[test]
fn aimd_decreases_multiplicatively_on_a_drop() {
    let mut a = aimd(AimdConfig::default());
    let now = Instant::now();
    assert_eq!(a.on_sample(dropped(10, 1), now), 18);
    assert_eq!(a.on_sample(dropped(10, 1), now), 16);
    assert_eq!(a.on_sample(dropped(10, 1), now), 14);
}

#[test]
fn aimd_counts_a_sample_slower_than_the_timeout_as_a_drop() {
    let mut a = aimd(AimdConfig {
        timeout: ms(100),
        ..AimdConfig::default()
    });
    let now = Instant::now();
    assert_eq!(
        a.on_sample(sample(100, 20), now),
        21,
        "at the timeout is fine"
    );
    assert_eq!(a.on_sample(sample(101, 20), now), 18);
}

#[test]
fn aimd_never_leaves_its_bounds() {
    let config = AimdConfig {
        initial_limit: 3,
        min_limit: 2,
        max_limit: 4,
        ..AimdConfig::default()
    };
    let mut a = aimd(config);
    let now = Instant::now();
    for _ in 0..5 {
        a.on_sample(sample(1, 4), now);
    }
    assert_eq!(a.limit(), 4);
    for _ in 0..5 {
        a.on_sample(dropped(1, 4), now);
    }
    assert_eq!(a.limit(), 2);
}

#[test]
fn a_boxed_algorithm_is_an_algorithm() {
    let mut boxed: Box<dyn LimitAlgorithm> = Box::new(aimd(AimdConfig::default()));
    assert_eq!(boxed.on_sample(dropped(1, 1), Instant::now()), 18);
    assert_eq!(boxed.limit(), 18);
}
