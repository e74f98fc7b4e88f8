use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;

fn limiter(rate: u32, period: Duration, burst: u32) -> RateLimiter {
    RateLimiter::new(RateLimitConfig {
        rate,
        period,
        burst,
    })
    .expect("valid config")
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn retry_after(result: Result<(), RateLimited>) -> Duration {
    result.expect_err("expected a rejection").retry_after
}

#[test]
fn config_rejects_zeros_and_unrepresentable_rates() {
    let base = RateLimitConfig::default();
    assert_eq!(base.validate(), Ok(()));
    let zero_rate = RateLimitConfig {
        rate: 0,
        ..base.clone()
    };
    assert_eq!(zero_rate.validate(), Err(ConfigError::ZeroRate));
    let zero_burst = RateLimitConfig {
        burst: 0,
        ..base.clone()
    };
    assert_eq!(zero_burst.validate(), Err(ConfigError::ZeroBurst));
    let zero_period = RateLimitConfig {
        period: Duration::ZERO,
        ..base.clone()
    };
    assert_eq!(zero_period.validate(), Err(ConfigError::ZeroPeriod));
    let too_fast = RateLimitConfig {
        rate: 10,
        period: Duration::from_nanos(9),
        ..base.clone()
    };
    assert_eq!(RateLimiter::new(too_fast).err(), Some(ConfigError::TooFast));
    let too_slow = RateLimitConfig {
        rate: 1,
        period: Duration::MAX,
        ..base.clone()
    };
    assert_eq!(too_slow.validate(), Err(ConfigError::TooSlow));
    let huge_burst = RateLimitConfig {
        rate: 1,
        period: Duration::from_secs(100 * 365 * 24 * 3600),
        burst: 10,
    };
    assert_eq!(huge_burst.validate(), Err(ConfigError::TooSlow));
}

#[test]
fn emission_interval_is_period_over_rate_rounded_up() {
    assert_eq!(limiter(10, ms(1000), 1).emission_interval(), ms(100));
    assert_eq!(
        limiter(3, Duration::from_nanos(10), 1).emission_interval(),
        Duration::from_nanos(4)
    );
}

#[test]
fn a_fresh_limiter_admits_a_full_burst_at_once_then_rejects() {
    let l = limiter(10, ms(1000), 3);
    let t0 = Instant::now();
    for _ in 0..3 {
        assert_eq!(l.check(t0), Ok(()));
    }
    assert_eq!(retry_after(l.check(t0)), ms(100));
}

#[test]
fn after_the_burst_cells_are_admitted_at_the_steady_rate() {
    let l = limiter(10, ms(1000), 3);
    let t0 = Instant::now();
    for _ in 0..3 {
        l.check(t0).expect("burst");
    }
    for k in 1..=5 {
        let at = t0 + ms(100 * k);
        assert_eq!(
            retry_after(l.check(at - ms(1))),
            ms(1),
            "one ms early at slot {k}"
        );
        assert_eq!(l.check(at), Ok(()), "slot {k}");
        assert_eq!(retry_after(l.check(at)), ms(100), "slot {k} is taken");
    }
}

#[test]
fn retry_after_counts_down_to_the_next_slot() {
    let l = limiter(10, ms(1000), 1);
    let t0 = Instant::now();
    l.check(t0).expect("first");
    assert_eq!(retry_after(l.check(t0)), ms(100));
    assert_eq!(retry_after(l.check(t0 + ms(30))), ms(70));
    assert_eq!(retry_after(l.check(t0 + ms(99))), ms(1));
    assert_eq!(l.check(t0 + ms(100)), Ok(()));
}

#[test]
fn rejections_do_not_spend_budget() {
    let l = limiter(10, ms(1000), 1);
    let t0 = Instant::now();
    l.check(t0).expect("first");
    for i in 0..50 {
        assert!(l.check(t0 + ms(i)).is_err());
    }
    assert_eq!(l.check(t0 + ms(100)), Ok(()));
}

#[test]
fn a_quiet_spell_refills_the_burst_but_no_further() {
    let l = limiter(10, ms(1000), 3);
    let t0 = Instant::now();
    for _ in 0..3 {
        l.check(t0).expect("burst");
    }
    let later = t0 + Duration::from_secs(60);
    for _ in 0..3 {
        assert_eq!(l.check(later), Ok(()));
    }
    assert_eq!(retry_after(l.check(later)), ms(100));
}

#[test]
fn a_partly_refilled_bucket_admits_only_what_has_refilled() {
    let l = limiter(10, ms(1000), 3);
    let t0 = Instant::now();
    for _ in 0..3 {
        l.check(t0).expect("burst");
    }
    let t = t0 + ms(250);
    assert_eq!(l.check(t), Ok(()));
    assert_eq!(l.check(t), Ok(()));
    assert_eq!(retry_after(l.check(t)), ms(50));
}

#[test]
fn check_n_takes_all_or_nothing_and_says_when_the_batch_fits() {
    let l = limiter(10, ms(1000), 5);
    let t0 = Instant::now();
    assert_eq!(l.check_n(3, t0), Ok(()));
    // Two cells are left: a batch of three must wait for one more slot.
    assert_eq!(
        l.check_n(3, t0),
        Err(BatchRejected::RateLimited(RateLimited {
            retry_after: ms(100)
        }))
    );
    assert_eq!(l.check_n(2, t0), Ok(()));
    assert_eq!(
        l.check_n(5, t0 + ms(10)),
        Err(BatchRejected::RateLimited(RateLimited {
            retry_after: ms(490)
        }))
    );
    assert_eq!(l.check_n(5, t0 + ms(500)), Ok(()));
}

#[test]
fn check_n_of_zero_is_always_admitted() {
    let l = limiter(1, ms(1000), 1);
    let t0 = Instant::now();
    l.check(t0).expect("first");
    assert_eq!(l.check_n(0, t0), Ok(()));
}

#[test]
fn check_n_above_the_burst_can_never_be_admitted() {
    let l = limiter(10, ms(1000), 5);
    assert_eq!(
        l.check_n(6, Instant::now()),
        Err(BatchRejected::ExceedsBurst {
            requested: 6,
            burst: 5
        })
    );
}

#[test]
fn a_now_older_than_the_first_check_counts_as_the_origin() {
    let l = limiter(10, ms(1000), 1);
    let t0 = Instant::now();
    let later = t0 + ms(500);
    l.check(later).expect("first");
    assert_eq!(retry_after(l.check(t0)), ms(100));
}

#[test]
fn concurrent_checks_at_one_instant_admit_exactly_the_burst() {
    let l = Arc::new(limiter(1, Duration::from_secs(1), 50));
    let t0 = Instant::now();
    let admitted = AtomicU32::new(0);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..100 {
                    if l.check(t0).is_ok() {
                        admitted.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        }
    });
    assert_eq!(admitted.load(Ordering::SeqCst), 50);
}

// --- Property tests ----------------------------------------------------------------------

/// A token bucket written the long way: `credit` nanoseconds of budget, refilled by elapsed
/// time up to `burst × T`, spent `n × T` per admitted batch.
struct NaiveBucket {
    emission: u64,
    capacity: u64,
    credit: u64,
    last: u64,
}

impl NaiveBucket {
    fn check_n(&mut self, n: u32, t: u64) -> Result<(), Duration> {
        if t > self.last {
            self.credit = (self.credit + (t - self.last)).min(self.capacity);
            self.last = t;
        }
        let cost = u64::from(n) * self.emission;
        if cost <= self.credit {
            self.credit -= cost;
            Ok(())
        } else {
            Err(Duration::from_nanos(cost - self.credit))
        }
    }
}

fn config() -> impl Strategy<Value = RateLimitConfig> {
    (1u32..20, 1u64..2_000, 1u32..8).prop_map(|(rate, period_ms, burst)| RateLimitConfig {
        rate,
        period: ms(period_ms),
        burst,
    })
}

/// (advance in ns, batch size)
fn steps() -> impl Strategy<Value = Vec<(u64, u32)>> {
    proptest::collection::vec((0u64..400_000_000, 0u32..4), 1..120)
}

proptest! {
    #[test]
    fn gcra_matches_a_naive_token_bucket(config in config(), steps in steps()) {
        let l = RateLimiter::new(config.clone()).expect("valid");
        let emission = l.emission_interval().as_nanos() as u64;
        let mut naive = NaiveBucket {
            emission,
            capacity: emission * u64::from(config.burst),
            credit: emission * u64::from(config.burst),
            last: 0,
        };
        let t0 = Instant::now();
        let mut t = 0u64;
        for (advance, n) in steps {
            t += advance;
            let now = t0 + Duration::from_nanos(t);
            let got = l.check_n(n, now);
            if n > config.burst {
                prop_assert_eq!(got, Err(BatchRejected::ExceedsBurst { requested: n, burst: config.burst }));
                continue;
            }
            let want = naive.check_n(n, t).map_err(|retry_after| BatchRejected::RateLimited(RateLimited { retry_after }));
            prop_assert_eq!(got, want, "at t = {}ns, n = {}", t, n);
        }
    }

    #[test]
    fn gcra_admits_at_most_burst_plus_rate_times_window_in_any_window(
        config in config(),
        steps in steps(),
    ) {
        let l = RateLimiter::new(config.clone()).expect("valid");
        let period = config.period.as_nanos();
        let t0 = Instant::now();
        let mut t = 0u64;
        let mut admitted: Vec<(u64, u32)> = Vec::new();
        for (advance, n) in steps {
            t += advance;
            if l.check_n(n, t0 + Duration::from_nanos(t)).is_ok() && n > 0 {
                admitted.push((t, n));
            }
        }
        for i in 0..admitted.len() {
            let mut sum = 0u128;
            for j in i..admitted.len() {
                sum += u128::from(admitted[j].1);
                let window = u128::from(admitted[j].0 - admitted[i].0);
                let excess = sum.saturating_sub(u128::from(config.burst));
                // excess <= rate × window / period, in integers.
                prop_assert!(
                    excess * period <= window * u128::from(config.rate),
                    "{} cells in {}ns", sum, window
                );
            }
        }
    }
}

#[cfg(feature = "tower")]
mod layer;

#[test]
fn a_limiter_from_a_checked_config_behaves_as_one_from_new() {
    let config = RateLimitConfig {
        rate: 10,
        period: Duration::from_secs(1),
        burst: 2,
    };
    let valid = config.clone().validated().expect("a valid config");
    assert_eq!(valid.config(), &config);
    let from_valid = RateLimiter::from_valid(&valid);
    let from_new = RateLimiter::new(config).expect("a valid config");
    let now = Instant::now();
    for _ in 0..3 {
        assert_eq!(from_valid.check(now), from_new.check(now));
    }
    assert_eq!(
        RateLimitConfig {
            rate: 0,
            ..RateLimitConfig::default()
        }
        .validated(),
        Err(ConfigError::ZeroRate)
    );
}
