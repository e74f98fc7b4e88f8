//! The cost of one admit-and-record, ours beside other crates that do the same job.
//!
//! Each benchmark performs the smallest complete cycle a caller pays per request: ask
//! permission, then report the outcome (or release the permit). Uncontended runs on one
//! thread; contended runs the same cycle while a second thread hammers the same instance,
//! and reports the time per cycle seen by the measuring thread.
//!
//! Our state machines take `now` from the caller (one clock read per request serves every
//! policy), so the loops advance a synthetic `now` by 100 ns per call; the other crates read
//! their own clocks inside. The cost of a clock read on the machine is measured alongside
//! (`clock/Instant::now`) so the two can be compared honestly.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};

/// Runs `op` `iters` times on this thread while another thread runs `rival` in a loop on
/// the same shared instance, and returns the time this thread spent.
fn contended<S: Send + Sync + 'static>(
    shared: Arc<S>,
    iters: u64,
    op: fn(&S, u64),
    rival: fn(&S, u64),
) -> Duration {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicBool::new(false));
    let other = {
        let (shared, stop, started) = (shared.clone(), stop.clone(), started.clone());
        thread::spawn(move || {
            started.store(true, Ordering::Release);
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                rival(&shared, i);
                i = i.wrapping_add(1);
            }
        })
    };
    while !started.load(Ordering::Acquire) {
        std::hint::spin_loop();
    }
    let begin = Instant::now();
    for i in 0..iters {
        op(&shared, i);
    }
    let spent = begin.elapsed();
    stop.store(true, Ordering::Relaxed);
    other.join().expect("rival thread panicked");
    spent
}

/// The instant every contended benchmark counts from, so both threads see one timeline.
static EPOCH: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);

fn clock(c: &mut Criterion) {
    c.bench_function("clock/Instant::now", |b| {
        b.iter(|| black_box(Instant::now()))
    });
}

fn breaker(c: &mut Criterion) {
    use blastwall_policy::breaker::{BreakerConfig, CircuitBreaker, Outcome, SharedBreaker};
    let mut group = c.benchmark_group("breaker/uncontended");
    let mut breaker = CircuitBreaker::new(BreakerConfig::default()).expect("valid config");
    let mut now = Instant::now();
    group.bench_function("blastwall", |b| {
        b.iter(|| {
            now += Duration::from_nanos(100);
            if let Ok(permit) = breaker.try_acquire(now) {
                black_box(breaker.record(permit, Outcome::Success, now));
            }
        })
    });
    let shared = SharedBreaker::new(BreakerConfig::default()).expect("valid config");
    group.bench_function("blastwall-shared", |b| {
        b.iter(|| {
            now += Duration::from_nanos(100);
            if let Ok(permit) = shared.try_acquire(now) {
                black_box(shared.record(permit, Outcome::Success, now));
            }
        })
    });
    let failsafe = failsafe::Config::new().build();
    group.bench_function("failsafe", |b| {
        b.iter(|| {
            use failsafe::CircuitBreaker;
            black_box(failsafe.call(|| Ok::<(), ()>(())))
        })
    });
    let recloser = recloser::Recloser::default();
    group.bench_function("recloser", |b| {
        b.iter(|| black_box(recloser.call(|| Ok::<(), ()>(()))))
    });
    group.finish();

    let mut group = c.benchmark_group("breaker/contended-2-threads");
    group.bench_function("blastwall-shared", |b| {
        let shared = Arc::new(SharedBreaker::new(BreakerConfig::default()).expect("valid config"));
        b.iter_custom(|iters| {
            fn cycle(breaker: &SharedBreaker, i: u64) {
                let now = *EPOCH + Duration::from_nanos(i * 100);
                if let Ok(permit) = breaker.try_acquire(now) {
                    black_box(breaker.record(permit, Outcome::Success, now));
                }
            }
            contended(shared.clone(), iters, cycle, cycle)
        })
    });
    group.bench_function("failsafe", |b| {
        let shared = Arc::new(failsafe::Config::new().build());
        b.iter_custom(|iters| {
            fn call(cb: &failsafe::StateMachine<impl failsafe::FailurePolicy, ()>, _: u64) {
                use failsafe::CircuitBreaker;
                let _ = black_box(cb.call(|| Ok::<(), ()>(())));
            }
            contended(shared.clone(), iters, call, call)
        })
    });
    group.bench_function("recloser", |b| {
        let shared = Arc::new(recloser::Recloser::default());
        b.iter_custom(|iters| {
            fn call(cb: &recloser::Recloser, _: u64) {
                let _ = black_box(cb.call(|| Ok::<(), ()>(())));
            }
            contended(shared.clone(), iters, call, call)
        })
    });
    group.finish();
}

fn rate_limiter(c: &mut Criterion) {
    use governor::{Quota, RateLimiter};
    use std::num::NonZeroU32;
    // A rate high enough that every call is admitted: the admit path is what is measured.
    let quota = || Quota::per_second(NonZeroU32::new(u32::MAX).expect("non-zero"));
    let ours = || {
        blastwall_policy::ratelimit::RateLimiter::new(
            blastwall_policy::ratelimit::RateLimitConfig {
                rate: 1_000_000_000,
                period: Duration::from_secs(1),
                burst: u32::MAX,
            },
        )
        .expect("valid config")
    };
    let mut group = c.benchmark_group("ratelimit/uncontended");
    let limiter = ours();
    let mut now = Instant::now();
    group.bench_function("blastwall", |b| {
        b.iter(|| {
            now += Duration::from_nanos(100);
            black_box(limiter.check(now))
        })
    });
    let governor = RateLimiter::direct(quota());
    group.bench_function("governor", |b| b.iter(|| black_box(governor.check())));
    group.finish();

    let mut group = c.benchmark_group("ratelimit/contended-2-threads");
    group.bench_function("blastwall", |b| {
        let shared = Arc::new(ours());
        b.iter_custom(|iters| {
            fn check(limiter: &blastwall_policy::ratelimit::RateLimiter, i: u64) {
                let _ = black_box(limiter.check(*EPOCH + Duration::from_nanos(i * 100)));
            }
            contended(shared.clone(), iters, check, check)
        })
    });
    group.bench_function("governor", |b| {
        let shared = Arc::new(RateLimiter::direct(quota()));
        b.iter_custom(|iters| contended(shared.clone(), iters, governor_check, governor_check))
    });
    group.finish();
}

type Governor = governor::DefaultDirectRateLimiter;
fn governor_check(limiter: &Governor, _: u64) {
    let _ = black_box(limiter.check());
}

fn bulkhead(c: &mut Criterion) {
    use blastwall_policy::bulkhead::{Bulkhead, BulkheadConfig};
    let ours = || {
        Bulkhead::new(BulkheadConfig {
            max_concurrent: 1024,
            max_queue: 0,
            queue_timeout: Duration::from_secs(1),
        })
        .expect("valid config")
    };
    let mut group = c.benchmark_group("bulkhead/uncontended");
    let bulkhead = ours();
    group.bench_function("blastwall", |b| {
        b.iter(|| drop(black_box(bulkhead.try_acquire())))
    });
    let semaphore = tokio::sync::Semaphore::new(1024);
    group.bench_function("tokio-semaphore", |b| {
        b.iter(|| drop(black_box(semaphore.try_acquire())))
    });
    // Our permits are owned ('static, as a request future needs); this is tokio's equivalent.
    let owned = Arc::new(tokio::sync::Semaphore::new(1024));
    group.bench_function("tokio-semaphore-owned", |b| {
        b.iter(|| drop(black_box(owned.clone().try_acquire_owned())))
    });
    group.finish();

    let mut group = c.benchmark_group("bulkhead/contended-2-threads");
    group.bench_function("blastwall", |b| {
        let shared = Arc::new(ours());
        b.iter_custom(|iters| {
            fn cycle(bulkhead: &Bulkhead, _: u64) {
                drop(black_box(bulkhead.try_acquire()));
            }
            contended(shared.clone(), iters, cycle, cycle)
        })
    });
    group.bench_function("tokio-semaphore", |b| {
        let shared = Arc::new(tokio::sync::Semaphore::new(1024));
        b.iter_custom(|iters| {
            fn cycle(semaphore: &tokio::sync::Semaphore, _: u64) {
                drop(black_box(semaphore.try_acquire()));
            }
            contended(shared.clone(), iters, cycle, cycle)
        })
    });
    group.finish();
}

fn budget(c: &mut Criterion) {
    use tower::retry::budget::{Budget, TpsBudget};
    let tps = || TpsBudget::new(Duration::from_secs(10), 10, 0.2);
    use blastwall_policy::budget::{BudgetConfig, RetryBudget};
    let ours = || RetryBudget::new(BudgetConfig::default()).expect("valid config");
    let mut group = c.benchmark_group("budget/uncontended");
    let budget = ours();
    let mut now = Instant::now();
    group.bench_function("blastwall", |b| {
        b.iter(|| {
            now += Duration::from_nanos(100);
            budget.deposit(now);
            black_box(budget.withdraw(now))
        })
    });
    let tower_budget = tps();
    group.bench_function("tower-tps-budget", |b| {
        b.iter(|| {
            tower_budget.deposit();
            black_box(tower_budget.withdraw())
        })
    });
    group.finish();

    let mut group = c.benchmark_group("budget/contended-2-threads");
    group.bench_function("blastwall", |b| {
        let shared = Arc::new(ours());
        b.iter_custom(|iters| {
            fn cycle(budget: &RetryBudget, i: u64) {
                let now = *EPOCH + Duration::from_nanos(i * 100);
                budget.deposit(now);
                let _ = black_box(budget.withdraw(now));
            }
            contended(shared.clone(), iters, cycle, cycle)
        })
    });
    group.bench_function("tower-tps-budget", |b| {
        let shared = Arc::new(tps());
        b.iter_custom(|iters| {
            fn cycle(budget: &TpsBudget, _: u64) {
                budget.deposit();
                black_box(budget.withdraw());
            }
            contended(shared.clone(), iters, cycle, cycle)
        })
    });
    group.finish();
}

/// Polls a service that answers at once through one full call: ready, call, response.
#[cfg(feature = "tower")]
fn call_now<S: tower::Service<()>>(service: &mut S) -> Result<S::Response, S::Error> {
    use std::task::{Context, Poll, Waker};
    let mut cx = Context::from_waker(Waker::noop());
    match service.poll_ready(&mut cx) {
        Poll::Ready(Ok(())) => {}
        Poll::Ready(Err(err)) => return Err(err),
        Poll::Pending => panic!("benchmarked services are always ready"),
    }
    let mut future = std::pin::pin!(service.call(()));
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(outcome) => outcome,
        Poll::Pending => panic!("benchmarked services answer at once"),
    }
}

/// The same cycle through tower middleware around a service that answers at once: what a
/// Rust user of either crate pays per call. Needs the `tower` feature.
#[cfg(feature = "tower")]
fn tower_layers(c: &mut Criterion) {
    use blastwall_policy::breaker::{BreakerConfig, CircuitBreakerLayer, SharedBreaker};
    use blastwall_policy::bulkhead::{Bulkhead, BulkheadConfig, BulkheadLayer};
    use blastwall_policy::clock::SystemClock;
    use tower::Layer;
    use tower::util::ServiceFn;

    type Ready = std::future::Ready<Result<(), std::convert::Infallible>>;
    fn answer(_: ()) -> Ready {
        std::future::ready(Ok(()))
    }
    type Answer = ServiceFn<fn(()) -> Ready>;
    let inner = || -> Answer { tower::service_fn(answer as fn(()) -> Ready) };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _entered = runtime.enter();

    let mut group = c.benchmark_group("tower/breaker");
    let mut ours =
        CircuitBreakerLayer::new(SharedBreaker::new(BreakerConfig::default()).expect("valid"))
            .with_clock(SystemClock)
            .layer(inner());
    group.bench_function("blastwall", |b| {
        b.iter(|| black_box(call_now(&mut ours).is_ok()))
    });
    let mut theirs = tower_resilience::circuitbreaker::CircuitBreakerLayer::builder()
        .build()
        .expect("valid")
        .layer(inner());
    group.bench_function("tower-resilience", |b| {
        b.iter(|| black_box(call_now(&mut theirs).is_ok()))
    });
    group.finish();

    let mut group = c.benchmark_group("tower/bulkhead");
    let config = BulkheadConfig {
        max_concurrent: 1024,
        max_queue: 0,
        queue_timeout: Duration::from_secs(1),
    };
    let mut ours = BulkheadLayer::new(Bulkhead::new(config).expect("valid")).layer(inner());
    group.bench_function("blastwall", |b| {
        b.iter(|| black_box(call_now(&mut ours).is_ok()))
    });
    let mut theirs: tower_resilience::bulkhead::Bulkhead<Answer> =
        tower_resilience::bulkhead::BulkheadLayer::builder()
            .max_concurrent_calls(1024)
            .build()
            .expect("valid")
            .layer(inner());
    group.bench_function("tower-resilience", |b| {
        b.iter(|| black_box(call_now(&mut theirs).is_ok()))
    });
    group.finish();
}

#[cfg(feature = "tower")]
criterion_group!(
    benches,
    clock,
    breaker,
    rate_limiter,
    bulkhead,
    budget,
    tower_layers
);
#[cfg(not(feature = "tower"))]
criterion_group!(benches, clock, breaker, rate_limiter, bulkhead, budget);
criterion_main!(benches);
