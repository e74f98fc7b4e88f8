//! Instructions per admit-and-record, counted by callgrind: a figure that does not move
//! with the load on a shared machine, unlike wall-clock time.
//!
//! `instructions.sh` beside this file runs each case twice under
//! `valgrind --tool=callgrind` (N calls, then none) and divides the difference by N. Run
//! directly, this binary just performs `iterations` calls of `case`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use blastwall_policy::breaker::{BreakerConfig, CircuitBreaker, Outcome, SharedBreaker};
use blastwall_policy::budget::{BudgetConfig, RetryBudget};
use blastwall_policy::bulkhead::{Bulkhead, BulkheadConfig};
use blastwall_policy::ratelimit::{RateLimitConfig, RateLimiter};

fn main() {
    let mut args = std::env::args().skip(1);
    let case = args.next().unwrap_or_default();
    let iterations: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(0);
    // One instant for every call: a caller reads the clock once per request and hands the
    // same `now` to every policy, so its cost is counted once, in `clock/Instant::now`.
    let start = Instant::now();
    let at = |_: u64| start;
    match case.as_str() {
        "clock/Instant::now" => {
            for _ in 0..iterations {
                black_box(Instant::now());
            }
        }
        "breaker/blastwall" => {
            let mut breaker = CircuitBreaker::new(BreakerConfig::default()).expect("valid");
            for i in 0..iterations {
                if let Ok(permit) = breaker.try_acquire(at(i)) {
                    black_box(breaker.record(permit, Outcome::Success, at(i)));
                }
            }
        }
        "breaker/blastwall-shared" => {
            let breaker = SharedBreaker::new(BreakerConfig::default()).expect("valid");
            for i in 0..iterations {
                if let Ok(permit) = breaker.try_acquire(at(i)) {
                    black_box(breaker.record(permit, Outcome::Success, at(i)));
                }
            }
        }
        "breaker/recloser" => {
            let breaker = recloser::Recloser::default();
            for _ in 0..iterations {
                let _ = black_box(breaker.call(|| Ok::<(), ()>(())));
            }
        }
        "breaker/failsafe" => {
            use failsafe::CircuitBreaker;
            let breaker = failsafe::Config::new().build();
            for _ in 0..iterations {
                let _ = black_box(breaker.call(|| Ok::<(), ()>(())));
            }
        }
        "ratelimit/blastwall" => {
            let limiter = RateLimiter::new(RateLimitConfig {
                rate: 1_000_000_000,
                period: Duration::from_secs(1),
                burst: u32::MAX,
            })
            .expect("valid");
            for i in 0..iterations {
                let _ = black_box(limiter.check(at(i)));
            }
        }
        "ratelimit/governor" => {
            let quota =
                governor::Quota::per_second(std::num::NonZeroU32::new(u32::MAX).expect("non-zero"));
            let limiter = governor::RateLimiter::direct(quota);
            for _ in 0..iterations {
                let _ = black_box(limiter.check());
            }
        }
        "bulkhead/blastwall" => {
            let bulkhead = Bulkhead::new(BulkheadConfig {
                max_concurrent: 1024,
                max_queue: 0,
                queue_timeout: Duration::from_secs(1),
            })
            .expect("valid");
            for _ in 0..iterations {
                drop(black_box(bulkhead.try_acquire()));
            }
        }
        "bulkhead/tokio-semaphore-owned" => {
            let semaphore = Arc::new(tokio::sync::Semaphore::new(1024));
            for _ in 0..iterations {
                drop(black_box(semaphore.clone().try_acquire_owned()));
            }
        }
        "bulkhead/tokio-semaphore" => {
            let semaphore = tokio::sync::Semaphore::new(1024);
            for _ in 0..iterations {
                drop(black_box(semaphore.try_acquire()));
            }
        }
        "budget/blastwall" => {
            let budget = RetryBudget::new(BudgetConfig::default()).expect("valid");
            for i in 0..iterations {
                budget.deposit(at(i));
                let _ = black_box(budget.withdraw(at(i)));
            }
        }
        "budget/tower-tps-budget" => {
            use tower::retry::budget::{Budget, TpsBudget};
            let budget = TpsBudget::new(Duration::from_secs(10), 10, 0.2);
            for _ in 0..iterations {
                budget.deposit();
                black_box(budget.withdraw());
            }
        }
        other => {
            eprintln!("unknown case {other:?}");
            std::process::exit(2);
        }
    }
}
