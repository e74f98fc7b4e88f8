use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use proptest::prelude::*;

use super::*;

/// A waker that remembers whether it was woken.
#[derive(Default)]
struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl Flag {
    fn take(&self) -> bool {
        self.0.swap(false, Ordering::SeqCst)
    }
}

/// An `Acquire` polled by hand, with its own waker.
struct Waiting {
    future: Acquire,
    flag: Arc<Flag>,
}

impl Waiting {
    fn start(bulkhead: &Bulkhead) -> (Self, Poll<Result<BulkheadPermit, BulkheadFull>>) {
        let mut waiting = Self {
            future: bulkhead.acquire(),
            flag: Arc::new(Flag::default()),
        };
        let first = waiting.poll();
        (waiting, first)
    }

    fn poll(&mut self) -> Poll<Result<BulkheadPermit, BulkheadFull>> {
        let waker = Waker::from(Arc::clone(&self.flag));
        Pin::new(&mut self.future).poll(&mut Context::from_waker(&waker))
    }

    fn woken(&self) -> bool {
        self.flag.take()
    }
}

fn bulkhead(max_concurrent: u32, max_queue: usize) -> Bulkhead {
    Bulkhead::new(BulkheadConfig {
        max_concurrent,
        max_queue,
        queue_timeout: Duration::from_secs(1),
    })
    .expect("valid config")
}

fn queued(bulkhead: &Bulkhead) -> Waiting {
    let (waiting, first) = Waiting::start(bulkhead);
    assert!(first.is_pending(), "expected to queue");
    waiting
}

fn granted(poll: Poll<Result<BulkheadPermit, BulkheadFull>>) -> BulkheadPermit {
    match poll {
        Poll::Ready(Ok(permit)) => permit,
        other => panic!("expected a permit, got {other:?}"),
    }
}

#[test]
fn config_rejects_zero_concurrency_and_a_queue_without_time_to_wait() {
    let zero = BulkheadConfig {
        max_concurrent: 0,
        ..BulkheadConfig::default()
    };
    assert_eq!(zero.validate(), Err(ConfigError::ZeroConcurrency));
    let no_wait = BulkheadConfig {
        max_queue: 3,
        queue_timeout: Duration::ZERO,
        ..BulkheadConfig::default()
    };
    assert_eq!(
        Bulkhead::new(no_wait).err(),
        Some(ConfigError::ZeroQueueTimeout)
    );
    let shed_only = BulkheadConfig {
        max_queue: 0,
        queue_timeout: Duration::ZERO,
        ..BulkheadConfig::default()
    };
    assert_eq!(shed_only.validate(), Ok(()));
    assert_eq!(BulkheadConfig::default().validate(), Ok(()));
}

#[test]
fn try_acquire_admits_up_to_the_limit_then_rejects() {
    let b = bulkhead(2, 0);
    let first = b.try_acquire().expect("first");
    let _second = b.try_acquire().expect("second");
    assert_eq!(b.try_acquire().err(), Some(BulkheadFull));
    assert_eq!(b.in_flight(), 2);
    drop(first);
    assert_eq!(b.in_flight(), 1);
    assert!(b.try_acquire().is_ok());
}

#[test]
fn clones_share_permits() {
    let b = bulkhead(1, 0);
    let other = b.clone();
    let permit = b.try_acquire().expect("free");
    assert!(permit.is_from(&other));
    assert!(other.try_acquire().is_err());
    drop(permit);
    assert!(other.try_acquire().is_ok());
}

#[test]
fn acquire_takes_a_free_permit_without_queueing() {
    let b = bulkhead(1, 1);
    let (_waiting, first) = Waiting::start(&b);
    let _permit = granted(first);
    assert_eq!((b.in_flight(), b.queued()), (1, 0));
}

#[test]
fn waiters_are_served_in_fifo_order_as_permits_are_dropped() {
    let b = bulkhead(1, 3);
    let held = b.try_acquire().expect("free");
    let mut first = queued(&b);
    let mut second = queued(&b);
    let mut third = queued(&b);
    assert_eq!(b.queued(), 3);

    drop(held);
    assert!(first.woken() && !second.woken() && !third.woken());
    assert!(second.poll().is_pending() && third.poll().is_pending());
    let p1 = granted(first.poll());
    assert_eq!((b.in_flight(), b.queued()), (1, 2));

    drop(p1);
    assert!(second.woken() && !third.woken());
    let p2 = granted(second.poll());
    drop(p2);
    assert!(third.woken());
    let _p3 = granted(third.poll());
    assert_eq!((b.in_flight(), b.queued()), (1, 0));
}

#[test]
fn a_full_queue_rejects_at_once() {
    let b = bulkhead(1, 1);
    let _held = b.try_acquire().expect("free");
    let _waiting = queued(&b);
    let (_rejected, poll) = Waiting::start(&b);
    assert!(matches!(poll, Poll::Ready(Err(BulkheadFull))));
    assert_eq!(b.queued(), 1);
}

#[test]
fn no_queue_means_reject_when_all_permits_are_taken() {
    let b = bulkhead(1, 0);
    let _held = b.try_acquire().expect("free");
    let (_w, poll) = Waiting::start(&b);
    assert!(matches!(poll, Poll::Ready(Err(BulkheadFull))));
}

#[test]
fn try_acquire_does_not_jump_the_queue() {
    let b = bulkhead(1, 1);
    let held = b.try_acquire().expect("free");
    let mut waiting = queued(&b);
    drop(held);
    // The freed permit went to the waiter, even though it has not polled yet.
    assert_eq!(b.try_acquire().err(), Some(BulkheadFull));
    let _p = granted(waiting.poll());
}

#[test]
fn a_cancelled_waiter_gives_up_its_place_in_the_queue() {
    let b = bulkhead(1, 1);
    let held = b.try_acquire().expect("free");
    let cancelled = queued(&b);
    drop(cancelled);
    assert_eq!(b.queued(), 0);
    // Its place is free for someone else, and the next permit goes to them.
    let mut next = queued(&b);
    drop(held);
    assert!(next.woken());
    let _p = granted(next.poll());
}

#[test]
fn a_cancelled_waiter_in_the_middle_does_not_block_those_behind() {
    let b = bulkhead(1, 3);
    let held = b.try_acquire().expect("free");
    let mut first = queued(&b);
    let second = queued(&b);
    let mut third = queued(&b);
    drop(second);
    assert_eq!(b.queued(), 2);
    drop(held);
    let p1 = granted(first.poll());
    drop(p1);
    assert!(third.woken());
    let _p3 = granted(third.poll());
}

#[test]
fn a_waiter_cancelled_after_being_granted_passes_the_permit_on() {
    let b = bulkhead(1, 2);
    let held = b.try_acquire().expect("free");
    let granted_but_gone = queued(&b);
    let mut next = queued(&b);
    drop(held);
    // The permit was handed to the first waiter, which is dropped before it polls.
    assert!(granted_but_gone.woken());
    assert_eq!((b.in_flight(), b.queued()), (1, 1));
    drop(granted_but_gone);
    assert!(next.woken());
    let _p = granted(next.poll());
    assert_eq!((b.in_flight(), b.queued()), (1, 0));
}

#[test]
fn a_waiter_cancelled_after_being_granted_frees_the_permit_when_nobody_waits() {
    let b = bulkhead(1, 1);
    let held = b.try_acquire().expect("free");
    let gone = queued(&b);
    drop(held);
    drop(gone);
    assert_eq!((b.in_flight(), b.queued()), (0, 0));
    assert!(b.try_acquire().is_ok());
}

#[test]
fn raising_the_limit_grants_queued_waiters_at_once() {
    let b = bulkhead(1, 3);
    let _held = b.try_acquire().expect("free");
    let mut first = queued(&b);
    let mut second = queued(&b);
    let mut third = queued(&b);
    b.set_limit(3);
    assert!(first.woken() && second.woken() && !third.woken());
    let _p1 = granted(first.poll());
    let _p2 = granted(second.poll());
    assert!(third.poll().is_pending());
    assert_eq!((b.limit(), b.in_flight(), b.queued()), (3, 3, 1));
}

#[test]
fn lowering_the_limit_admits_nothing_until_in_flight_falls_below_it() {
    let b = bulkhead(3, 1);
    let p1 = b.try_acquire().expect("1");
    let p2 = b.try_acquire().expect("2");
    let _p3 = b.try_acquire().expect("3");
    b.set_limit(1);
    assert_eq!(b.in_flight(), 3, "lowering revokes nothing");
    let mut waiting = queued(&b);
    drop(p1);
    assert!(!waiting.woken() && waiting.poll().is_pending());
    drop(p2);
    assert!(!waiting.woken(), "in_flight 1 is not below limit 1");
    assert!(b.try_acquire().is_err());
    b.set_limit(2);
    assert!(waiting.woken());
    let _p = granted(waiting.poll());
}

#[test]
fn a_limit_of_zero_admits_nothing() {
    let b = bulkhead(1, 1);
    b.set_limit(0);
    assert!(b.try_acquire().is_err());
    let mut waiting = queued(&b);
    b.set_limit(1);
    let _p = granted(waiting.poll());
}

#[test]
fn a_repoll_with_a_new_waker_is_the_one_woken() {
    let b = bulkhead(1, 1);
    let held = b.try_acquire().expect("free");
    let mut waiting = queued(&b);
    let old_flag = Arc::clone(&waiting.flag);
    waiting.flag = Arc::new(Flag::default());
    assert!(waiting.poll().is_pending());
    drop(held);
    assert!(waiting.woken());
    assert!(!old_flag.take());
}

// --- Model check: a naive FIFO semaphore -----------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    TryAcquire,
    Acquire,
    Poll(usize),
    CancelWaiter(usize),
    DropPermit(usize),
    SetLimit(u32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::TryAcquire),
        4 => Just(Op::Acquire),
        3 => any::<usize>().prop_map(Op::Poll),
        2 => any::<usize>().prop_map(Op::CancelWaiter),
        4 => any::<usize>().prop_map(Op::DropPermit),
        1 => (0u32..5).prop_map(Op::SetLimit),
    ]
}

/// The obvious FIFO semaphore: ids of waiters in a queue, granted ones in a set.
#[derive(Debug)]
struct Model {
    limit: u32,
    in_flight: u32,
    max_queue: usize,
    queue: VecDeque<usize>,
    granted: Vec<usize>,
}

impl Model {
    fn dispatch(&mut self) {
        while self.in_flight < self.limit {
            let Some(id) = self.queue.pop_front() else {
                break;
            };
            self.in_flight += 1;
            self.granted.push(id);
        }
    }

    fn release(&mut self) {
        self.in_flight -= 1;
        self.dispatch();
    }
}

fn run_model(limit: u32, max_queue: usize, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let b = bulkhead(limit, max_queue);
    let mut model = Model {
        limit,
        in_flight: 0,
        max_queue,
        queue: VecDeque::new(),
        granted: Vec::new(),
    };
    let mut permits: Vec<BulkheadPermit> = Vec::new();
    // (model id, waiter); model ids are the position of creation.
    let mut waiters: Vec<(usize, Waiting)> = Vec::new();
    let mut next_id = 0;
    for op in ops {
        match op {
            Op::TryAcquire => {
                let expect = model.queue.is_empty() && model.in_flight < model.limit;
                let got = b.try_acquire();
                prop_assert_eq!(got.is_ok(), expect);
                if let Ok(permit) = got {
                    model.in_flight += 1;
                    permits.push(permit);
                }
            }
            Op::Acquire => {
                let (waiting, first) = Waiting::start(&b);
                if model.queue.is_empty() && model.in_flight < model.limit {
                    model.in_flight += 1;
                    permits.push(granted(first));
                } else if model.queue.len() >= model.max_queue {
                    prop_assert!(matches!(first, Poll::Ready(Err(BulkheadFull))));
                } else {
                    prop_assert!(first.is_pending());
                    model.queue.push_back(next_id);
                    waiters.push((next_id, waiting));
                    next_id += 1;
                }
            }
            Op::Poll(i) if !waiters.is_empty() => {
                let (id, mut waiting) = waiters.remove(i % waiters.len());
                let was_granted = model.granted.contains(&id);
                prop_assert_eq!(waiting.woken(), was_granted);
                match waiting.poll() {
                    Poll::Ready(Ok(permit)) => {
                        prop_assert!(was_granted);
                        model.granted.retain(|g| *g != id);
                        permits.push(permit);
                    }
                    Poll::Pending => {
                        prop_assert!(!was_granted);
                        waiters.push((id, waiting));
                    }
                    Poll::Ready(Err(_)) => prop_assert!(false, "queued waiter was rejected"),
                }
            }
            Op::CancelWaiter(i) if !waiters.is_empty() => {
                let (id, waiting) = waiters.remove(i % waiters.len());
                drop(waiting);
                if model.granted.contains(&id) {
                    model.granted.retain(|g| *g != id);
                    model.release();
                } else {
                    model.queue.retain(|q| *q != id);
                }
            }
            Op::DropPermit(i) if !permits.is_empty() => {
                drop(permits.swap_remove(i % permits.len()));
                model.release();
            }
            Op::SetLimit(limit) => {
                b.set_limit(limit);
                model.limit = limit;
                model.dispatch();
            }
            Op::Poll(_) | Op::CancelWaiter(_) | Op::DropPermit(_) => {}
        }
        prop_assert_eq!(b.in_flight(), model.in_flight);
        prop_assert_eq!(b.queued(), model.queue.len());
        prop_assert_eq!(b.limit(), model.limit);
    }
    drop(waiters);
    drop(permits);
    prop_assert_eq!((b.in_flight(), b.queued()), (0, 0));
    Ok(())
}

proptest! {
    #[test]
    fn bulkhead_matches_a_naive_fifo_semaphore(
        limit in 1u32..4,
        max_queue in 0usize..4,
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        run_model(limit, max_queue, ops)?;
    }
}

// --- Concurrent stress ------------------------------------------------------------------

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

#[cfg(feature = "tower")]
mod layer;
