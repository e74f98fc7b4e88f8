//! The bulkhead under real concurrency: std threads, and tokio with cancellations.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use proptest::prelude::*;

use super::*;

/// Counts callers inside the critical section and remembers the most seen at once.
#[derive(Default)]
struct Occupancy {
    now: AtomicU32,
    max: AtomicU32,
}

impl Occupancy {
    /// Enters; leaves when the guard drops (also when a task is aborted holding it).
    fn enter(self: &Arc<Self>) -> Inside {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(now, Ordering::SeqCst);
        Inside(Arc::clone(self))
    }
}

struct Inside(Arc<Occupancy>);

impl Drop for Inside {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Blocks the current thread on `future`, parking until woken.
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::park();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn bulkhead_never_exceeds_its_limit_across_threads(
        limit in 1u32..4,
        max_queue in 0usize..6,
        threads in 2usize..6,
    ) {
        let b = bulkhead(limit, max_queue);
        let occupancy = Arc::new(Occupancy::default());
        std::thread::scope(|scope| {
            for t in 0..threads {
                let b = b.clone();
                let occupancy = Arc::clone(&occupancy);
                scope.spawn(move || {
                    for i in 0..300 {
                        let permit = if (t + i) % 3 == 0 {
                            b.try_acquire().ok()
                        } else {
                            block_on(b.acquire()).ok()
                        };
                        if let Some(permit) = permit {
                            let inside = occupancy.enter();
                            std::thread::yield_now();
                            drop(inside);
                            drop(permit);
                        }
                    }
                });
            }
        });
        prop_assert!(occupancy.max.load(Ordering::SeqCst) <= limit);
        prop_assert_eq!((b.in_flight(), b.queued()), (0, 0));
    }

    #[test]
    fn bulkhead_never_exceeds_its_limit_under_tokio_with_random_cancellations(
        limit in 1u32..4,
        max_queue in 0usize..8,
        seed in any::<u64>(),
    ) {
        use rand::{Rng, SeedableRng, rngs::SmallRng};
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(3)
            .enable_time()
            .build()
            .expect("runtime");
        let b = bulkhead(limit, max_queue);
        let occupancy = Arc::new(Occupancy::default());
        runtime.block_on(async {
            let mut rng = SmallRng::seed_from_u64(seed);
            let mut tasks = Vec::new();
            for _ in 0..200 {
                let b = b.clone();
                let occupancy = Arc::clone(&occupancy);
                let patience = Duration::from_micros(rng.random_range(0..300));
                let work = rng.random_range(0..4u32);
                tasks.push(tokio::spawn(async move {
                    if let Ok(Ok(_permit)) = tokio::time::timeout(patience, b.acquire()).await {
                        // Declared after the permit, so it is dropped first, also on abort.
                        let _inside = occupancy.enter();
                        for _ in 0..work {
                            tokio::task::yield_now().await;
                        }
                    }
                }));
            }
            // Cancel a random third of the tasks wherever they are (queued, holding, done).
            for task in &tasks {
                if rng.random_range(0..3) == 0 {
                    task.abort();
                }
            }
            for task in tasks {
                let _ = task.await;
            }
        });
        prop_assert!(occupancy.max.load(Ordering::SeqCst) <= limit);
        prop_assert_eq!((b.in_flight(), b.queued()), (0, 0));
    }
}
