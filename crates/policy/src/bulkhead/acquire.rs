//! The future that waits in a bulkhead's queue.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use super::{BulkheadFull, BulkheadPermit, Shared, Waiter};

/// Waits for a [`BulkheadPermit`]; made by [`Bulkhead::acquire`](super::Bulkhead::acquire).
///
/// Lazy: it takes its place in the queue at its first poll. Dropping it before it completes
/// gives up its place, and gives back a permit it was granted but never returned.
#[must_use = "futures do nothing unless polled"]
pub struct Acquire {
    shared: Arc<Shared>,
    state: State,
}

/// `Unpolled => (Done | Queued)`, `Queued => Done`; nothing leaves `Done`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Unpolled,
    /// In the queue under this id, or granted (popped by `dispatch`) and not yet told.
    Queued {
        id: u64,
    },
    Done,
}

impl Acquire {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            state: State::Unpolled,
        }
    }

    /// Joins the queue, or takes a free permit when nobody waits, or fails when the queue
    /// is full.
    fn enter(&mut self, cx: &mut Context<'_>) -> Poll<Result<BulkheadPermit, BulkheadFull>> {
        let shared = &self.shared;
        if shared.queued.load(Ordering::SeqCst) == 0 && shared.try_take() {
            self.state = State::Done;
            return Poll::Ready(Ok(shared.permit()));
        }
        let id = {
            let mut queue = shared.lock();
            if queue.waiters.len() >= shared.max_queue {
                self.state = State::Done;
                return Poll::Ready(Err(BulkheadFull));
            }
            let id = queue.next_id;
            queue.next_id += 1;
            queue.waiters.push_back(Waiter {
                id,
                waker: cx.waker().clone(),
            });
            shared.queued.fetch_add(1, Ordering::SeqCst);
            self.state = State::Queued { id };
            id
        };
        // A permit may have been freed between the fast-path check and joining the queue;
        // its releaser may have seen `queued == 0` and not dispatched (see `Shared`).
        shared.dispatch();
        self.check(id, cx)
    }

    /// Pending while still queued; the permit once `dispatch` has popped this waiter.
    fn check(
        &mut self,
        id: u64,
        cx: &mut Context<'_>,
    ) -> Poll<Result<BulkheadPermit, BulkheadFull>> {
        let mut queue = self.shared.lock();
        match queue.waiters.binary_search_by_key(&id, |w| w.id) {
            Ok(index) => {
                let waiter = &mut queue.waiters[index];
                if !waiter.waker.will_wake(cx.waker()) {
                    waiter.waker = cx.waker().clone();
                }
                Poll::Pending
            }
            Err(_) => {
                drop(queue);
                self.state = State::Done;
                Poll::Ready(Ok(self.shared.permit()))
            }
        }
    }
}

impl Future for Acquire {
    type Output = Result<BulkheadPermit, BulkheadFull>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match this.state {
            State::Unpolled => this.enter(cx),
            State::Queued { id } => this.check(id, cx),
            State::Done => panic!("bulkhead Acquire polled after completion"),
        }
    }
}

impl Drop for Acquire {
    fn drop(&mut self) {
        let State::Queued { id } = self.state else {
            return;
        };
        let mut queue = self.shared.lock();
        match queue.waiters.binary_search_by_key(&id, |w| w.id) {
            Ok(index) => {
                queue.waiters.remove(index);
                self.shared.queued.fetch_sub(1, Ordering::SeqCst);
            }
            Err(_) => {
                // Granted while nobody was looking: pass the permit on instead of losing it.
                drop(queue);
                self.shared.release();
            }
        }
    }
}

impl fmt::Debug for Acquire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acquire")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}
