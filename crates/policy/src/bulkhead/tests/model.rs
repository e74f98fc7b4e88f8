//! The bulkhead against a naive FIFO semaphore, over random operation sequences.

use std::collections::VecDeque;
use std::task::Poll;

use proptest::prelude::*;

use super::*;

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
