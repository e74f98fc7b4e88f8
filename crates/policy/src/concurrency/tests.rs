use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;

mod algorithms;
mod limiter;

#[cfg(feature = "tower")]
mod layer;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn sample(rtt_ms: u64, in_flight: u32) -> Sample {
    Sample {
        rtt: ms(rtt_ms),
        in_flight,
        dropped: false,
    }
}

fn dropped(rtt_ms: u64, in_flight: u32) -> Sample {
    Sample {
        dropped: true,
        ..sample(rtt_ms, in_flight)
    }
}

/// An algorithm that keeps every sample it sees and holds a limit set by the test.
#[derive(Debug, Clone, Default)]
struct Recorder {
    limit: Arc<Mutex<u32>>,
    samples: Arc<Mutex<Vec<Sample>>>,
}

impl Recorder {
    fn with_limit(limit: u32) -> Self {
        let recorder = Self::default();
        *recorder.limit.lock().expect("lock") = limit;
        recorder
    }

    fn samples(&self) -> Vec<Sample> {
        self.samples.lock().expect("lock").clone()
    }

    fn set(&self, limit: u32) {
        *self.limit.lock().expect("lock") = limit;
    }
}

impl LimitAlgorithm for Recorder {
    fn limit(&self) -> u32 {
        *self.limit.lock().expect("lock")
    }

    fn on_sample(&mut self, sample: Sample, _now: Instant) -> u32 {
        self.samples.lock().expect("lock").push(sample);
        self.limit()
    }
}

// --- Property tests ----------------------------------------------------------------------

fn any_sample() -> impl Strategy<Value = Sample> {
    (0u64..5_000, 0u32..300, proptest::bool::weighted(0.2)).prop_map(|(rtt, in_flight, d)| Sample {
        rtt: ms(rtt),
        in_flight,
        dropped: d,
    })
}

fn gradient2_config() -> impl Strategy<Value = Gradient2Config> {
    (
        1u32..20,
        0u32..20,
        0u32..200,
        1u32..100,
        1u32..11,
        1u32..1000,
        0u32..10,
    )
        .prop_map(
            |(min, up, span, smooth, tol_x10, window, queue)| Gradient2Config {
                min_limit: min,
                initial_limit: min + up.min(span),
                max_limit: min + span.max(up),
                smoothing: f64::from(smooth) / 100.0,
                rtt_tolerance: 1.0 + f64::from(tol_x10) / 10.0,
                long_window: window,
                queue_size: queue,
            },
        )
}

fn aimd_config() -> impl Strategy<Value = AimdConfig> {
    (
        1u32..20,
        0u32..20,
        0u32..200,
        1u32..5,
        1u32..99,
        1u64..3_000,
    )
        .prop_map(|(min, up, span, inc, ratio, timeout)| AimdConfig {
            min_limit: min,
            initial_limit: min + up.min(span),
            max_limit: min + span.max(up),
            increase_by: inc,
            backoff_ratio: f64::from(ratio) / 100.0,
            timeout: ms(timeout),
        })
}

proptest! {
    #[test]
    fn gradient2_limit_stays_within_min_and_max(
        config in gradient2_config(),
        samples in proptest::collection::vec(any_sample(), 1..300),
    ) {
        let mut g = Gradient2::new(config.clone()).expect("valid");
        let now = Instant::now();
        for s in samples {
            let limit = g.on_sample(s, now);
            prop_assert_eq!(limit, g.limit());
            prop_assert!((config.min_limit..=config.max_limit).contains(&limit), "{}", limit);
        }
    }

    #[test]
    fn aimd_limit_stays_within_min_and_max_and_moves_as_the_model_says(
        config in aimd_config(),
        samples in proptest::collection::vec(any_sample(), 1..300),
    ) {
        let mut a = Aimd::new(config.clone()).expect("valid");
        let now = Instant::now();
        for s in samples {
            let before = a.limit();
            let limit = a.on_sample(s, now);
            prop_assert!((config.min_limit..=config.max_limit).contains(&limit), "{}", limit);
            if s.dropped || s.rtt > config.timeout {
                prop_assert!(limit < before || limit == config.min_limit);
            } else if 2 * s.in_flight >= before {
                prop_assert_eq!(limit, (before + config.increase_by).min(config.max_limit));
            } else {
                prop_assert_eq!(limit, before);
            }
        }
    }

    #[test]
    fn adaptive_limiter_follows_its_algorithm_within_bounds(
        config in aimd_config(),
        ops in proptest::collection::vec((0u8..4, 0u64..6_000), 1..200),
    ) {
        let limiter = AdaptiveLimiter::new(Aimd::new(config.clone()).expect("valid"));
        let t0 = Instant::now();
        let mut held = Vec::new();
        let mut t = t0;
        for (op, dt) in ops {
            t += ms(dt % 50);
            match op {
                0 | 1 => {
                    let before = limiter.in_flight();
                    match limiter.try_acquire(t) {
                        Ok(p) => held.push(p),
                        Err(_) => prop_assert!(before >= limiter.limit()),
                    }
                }
                2 if !held.is_empty() => {
                    let p = held.remove(dt as usize % held.len());
                    let outcome = if dt % 7 == 0 { Outcome::Dropped } else { Outcome::Success };
                    let limit = p.record(outcome, t + ms(dt));
                    prop_assert_eq!(limit, limiter.limit());
                }
                _ if !held.is_empty() => drop(held.remove(dt as usize % held.len())),
                _ => {}
            }
            let limit = limiter.limit();
            prop_assert_eq!(limit, limiter.with_algorithm(|a| a.limit()));
            prop_assert!((config.min_limit..=config.max_limit).contains(&limit));
            prop_assert_eq!(limiter.in_flight() as usize, held.len());
        }
    }
}

#[test]
fn algorithms_from_checked_configs_behave_as_ones_from_new() {
    let now = Instant::now();
    let gradient = Gradient2Config::default();
    let valid = gradient
        .clone()
        .validated()
        .expect("the defaults are valid");
    assert_eq!(valid.config(), &gradient);
    let mut from_valid = Gradient2::from_valid(&valid);
    let mut from_new = Gradient2::new(gradient).expect("the defaults are valid");
    let aimd = AimdConfig::default();
    let valid = aimd.clone().validated().expect("the defaults are valid");
    assert_eq!(valid.config(), &aimd);
    let mut aimd_from_valid = Aimd::from_valid(&valid);
    let mut aimd_from_new = Aimd::new(aimd).expect("the defaults are valid");
    for (rtt, in_flight) in [(10, 20), (10, 20), (40, 20), (5, 1)] {
        assert_eq!(
            from_valid.on_sample(sample(rtt, in_flight), now),
            from_new.on_sample(sample(rtt, in_flight), now)
        );
        assert_eq!(
            aimd_from_valid.on_sample(dropped(rtt, in_flight), now),
            aimd_from_new.on_sample(dropped(rtt, in_flight), now)
        );
    }
    let out_of_order = Gradient2Config {
        min_limit: 30,
        ..Gradient2Config::default()
    };
    assert_eq!(
        out_of_order.validated(),
        Err(ConfigError::LimitsOutOfOrder {
            min: 30,
            initial: 20,
            max: 200
        })
    );
    let zero_min = AimdConfig {
        min_limit: 0,
        ..AimdConfig::default()
    };
    assert_eq!(zero_min.validated(), Err(ConfigError::ZeroMinLimit));
}
