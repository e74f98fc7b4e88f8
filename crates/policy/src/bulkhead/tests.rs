use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

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

mod model;
mod stress;

#[cfg(feature = "tower")]
mod layer;

#[test]
fn a_bulkhead_from_a_checked_config_behaves_as_one_from_new() {
    let config = BulkheadConfig {
        max_concurrent: 2,
        max_queue: 0,
        queue_timeout: Duration::ZERO,
    };
    let valid = config.clone().validated().expect("a valid config");
    assert_eq!(valid.config(), &config);
    let from_valid = Bulkhead::from_valid(&valid);
    let from_new = Bulkhead::new(config).expect("a valid config");
    let held: Vec<_> = (0..2)
        .map(|_| (from_valid.try_acquire(), from_new.try_acquire()))
        .collect();
    assert!(held.iter().all(|(a, b)| a.is_ok() && b.is_ok()));
    assert_eq!(from_valid.try_acquire().err(), Some(BulkheadFull));
    assert_eq!(from_new.try_acquire().err(), Some(BulkheadFull));
    assert_eq!(
        BulkheadConfig {
            max_concurrent: 0,
            ..BulkheadConfig::default()
        }
        .validated(),
        Err(ConfigError::ZeroConcurrency)
    );
}
