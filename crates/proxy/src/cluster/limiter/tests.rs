//! The concurrency limiter and its priority queue: shares, order, shedding, giving up,
//! an adaptive limit, and the properties the queue's rules promise.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::queue::{Decision, ShedReason, View, cap, decide};
use super::{LimitPermit, Limiter};
use crate::config::admission::{ConcurrencyConfig, LimitConfig, Priority};
use crate::outcome::AttemptOutcome;

fn fixed(limit: u32, queue: usize, queue_timeout: Duration) -> Arc<Limiter> {
    Arc::new(Limiter::new(
        ConcurrencyConfig {
            limit: LimitConfig::Fixed(
                blastwall_policy::bulkhead::BulkheadConfig {
                    max_concurrent: limit,
                    max_queue: 0,
                    queue_timeout: Duration::ZERO,
                }
                .validated()
                .expect("positive"),
            ),
            queue,
            queue_timeout,
            queue_from: Priority::Low,
        },
        Arc::default(),
    ))
}

/// Polls a future once, without waiting.
async fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *future).poll(cx))).await
}

type Acquiring = Pin<Box<dyn Future<Output = Result<LimitPermit, ShedReason>>>>;

fn acquiring(limiter: &Arc<Limiter>, priority: Priority) -> Acquiring {
    let limiter = limiter.clone();
    Box::pin(async move { limiter.acquire(priority, Instant::now()).await })
}

// ## Shares and order

#[test]
fn priority_shares_of_a_limit_round_up_and_critical_gets_it_all() {
    assert_eq!(
        Priority::ALL.map(|priority| cap(10, priority)),
        [5, 8, 9, 10]
    );
    assert_eq!(Priority::ALL.map(|priority| cap(1, priority)), [1, 1, 1, 1]);
}

#[tokio::test(start_paused = true)]
async fn a_bulkhead_without_a_queue_sheds_at_once_when_full() {
    let limiter = fixed(2, 0, Duration::ZERO);
    let _a = limiter
        .acquire(Priority::Critical, Instant::now())
        .await
        .unwrap();
    let _b = limiter
        .acquire(Priority::Critical, Instant::now())
        .await
        .unwrap();
    let shed = limiter.acquire(Priority::Critical, Instant::now()).await;
    assert_eq!(shed.unwrap_err(), ShedReason::QueueFull);
}

#[tokio::test(start_paused = true)]
async fn a_flood_of_low_priority_leaves_room_for_high() {
    let limiter = fixed(10, 0, Duration::ZERO);
    let mut held = Vec::new();
    while let Ok(permit) = limiter.acquire(Priority::Low, Instant::now()).await {
        held.push(permit);
    }
    assert_eq!(held.len(), 5, "low may hold half the limit");
    for _ in 0..4 {
        held.push(
            limiter
                .acquire(Priority::High, Instant::now())
                .await
                .unwrap(),
        );
    }
    assert!(
        limiter
            .acquire(Priority::High, Instant::now())
            .await
            .is_err()
    );
    held.push(
        limiter
            .acquire(Priority::Critical, Instant::now())
            .await
            .unwrap(),
    );
    assert_eq!(limiter.in_flight(), 10);
}

#[tokio::test(start_paused = true)]
async fn waiters_are_served_highest_priority_first_then_oldest() {
    let limiter = fixed(1, 10, Duration::from_secs(1));
    let first = limiter
        .acquire(Priority::Critical, Instant::now())
        .await
        .unwrap();
    let mut low = acquiring(&limiter, Priority::Low);
    let mut high_1 = acquiring(&limiter, Priority::High);
    let mut high_2 = acquiring(&limiter, Priority::High);
    for waiter in [&mut low, &mut high_1, &mut high_2] {
        assert!(poll_once(waiter).await.is_pending());
    }
    assert_eq!(limiter.queued(), 3);
    drop(first);
    let granted = poll_once(&mut high_1).await;
    assert!(
        matches!(granted, Poll::Ready(Ok(_))),
        "the oldest high waiter goes first"
    );
    assert!(poll_once(&mut high_2).await.is_pending());
    assert!(poll_once(&mut low).await.is_pending());
    drop(granted);
    assert!(matches!(poll_once(&mut high_2).await, Poll::Ready(Ok(_))));
}

#[tokio::test(start_paused = true)]
async fn priorities_below_queue_from_are_shed_at_once_while_higher_ones_wait() {
    let limiter = Arc::new(Limiter::new(
        ConcurrencyConfig {
            queue_from: Priority::Normal,
            ..fixed(1, 10, Duration::from_secs(1)).config().clone()
        },
        Arc::default(),
    ));
    let running = limiter
        .acquire(Priority::Critical, Instant::now())
        .await
        .unwrap();
    let shed = limiter.acquire(Priority::Low, Instant::now()).await;
    assert_eq!(shed.err(), Some(ShedReason::QueueFull), "low never waits");
    let mut normal = acquiring(&limiter, Priority::Normal);
    assert!(poll_once(&mut normal).await.is_pending(), "normal waits");
    drop(running);
    assert!(matches!(poll_once(&mut normal).await, Poll::Ready(Ok(_))));
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_sheds_its_newest_low_waiter_for_a_high_request() {
    let limiter = fixed(1, 2, Duration::from_secs(1));
    let _running = limiter
        .acquire(Priority::Critical, Instant::now())
        .await
        .unwrap();
    let mut low_old = acquiring(&limiter, Priority::Low);
    let mut low_new = acquiring(&limiter, Priority::Low);
    assert!(poll_once(&mut low_old).await.is_pending());
    assert!(poll_once(&mut low_new).await.is_pending());
    let mut low_late = acquiring(&limiter, Priority::Low);
    assert!(matches!(
        poll_once(&mut low_late).await,
        Poll::Ready(Err(ShedReason::QueueFull))
    ));
    let mut high = acquiring(&limiter, Priority::High);
    assert!(
        poll_once(&mut high).await.is_pending(),
        "queued in low's place"
    );
    assert!(matches!(
        poll_once(&mut low_new).await,
        Poll::Ready(Err(ShedReason::Displaced))
    ));
    assert!(poll_once(&mut low_old).await.is_pending());
    assert_eq!(limiter.queued(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_waiter_is_shed_when_the_queue_timeout_passes() {
    let limiter = fixed(1, 4, Duration::from_millis(100));
    let _running = limiter
        .acquire(Priority::Normal, Instant::now())
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let shed = limiter.acquire(Priority::Normal, Instant::now()).await;
    assert_eq!(shed.unwrap_err(), ShedReason::Timeout);
    assert_eq!(started.elapsed(), Duration::from_millis(100));
    assert_eq!(limiter.queued(), 0, "the timed-out waiter left the queue");
}

#[tokio::test(start_paused = true)]
async fn a_request_the_queue_cannot_serve_in_time_is_shed_at_once() {
    let limiter = fixed(1, 10, Duration::from_millis(100));
    let start = Instant::now();
    let mut slow = limiter.acquire(Priority::Normal, start).await.unwrap();
    slow.observe(AttemptOutcome::Success, start + Duration::from_secs(1));
    drop(slow);
    let _running = limiter
        .acquire(Priority::Normal, Instant::now())
        .await
        .unwrap();
    let before = tokio::time::Instant::now();
    let shed = limiter.acquire(Priority::Normal, Instant::now()).await;
    assert_eq!(shed.unwrap_err(), ShedReason::Hopeless);
    assert_eq!(before.elapsed(), Duration::ZERO, "no time spent queueing");
}

#[tokio::test(start_paused = true)]
async fn a_waiter_that_gives_up_loses_no_slot() {
    let limiter = fixed(1, 4, Duration::from_secs(1));
    let running = limiter
        .acquire(Priority::Normal, Instant::now())
        .await
        .unwrap();
    let mut gone = acquiring(&limiter, Priority::Normal);
    let mut next = acquiring(&limiter, Priority::Normal);
    assert!(poll_once(&mut gone).await.is_pending());
    assert!(poll_once(&mut next).await.is_pending());
    drop(running); // granted to `gone`, which never looks again
    drop(gone);
    let granted = poll_once(&mut next).await;
    assert!(matches!(granted, Poll::Ready(Ok(_))));
    assert_eq!(limiter.in_flight(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_aimd_limit_falls_when_the_upstream_says_it_is_overloaded() {
    let limiter = Arc::new(Limiter::new(
        ConcurrencyConfig {
            limit: LimitConfig::Aimd(
                blastwall_policy::concurrency::AimdConfig {
                    min_limit: 2,
                    max_limit: 100,
                    initial_limit: 40,
                    ..Default::default()
                }
                .validated()
                .expect("ordered bounds"),
            ),
            queue: 0,
            queue_timeout: Duration::ZERO,
            queue_from: Priority::Low,
        },
        Arc::default(),
    ));
    let now = Instant::now();
    for _ in 0..10 {
        let mut permit = limiter.acquire(Priority::Critical, now).await.unwrap();
        permit.observe(
            AttemptOutcome::Overloaded { retry_after: None },
            now + Duration::from_millis(5),
        );
    }
    assert!(limiter.limit() < 20, "limit now {}", limiter.limit());
    let low_limit = limiter.limit();
    let mut permit = limiter.acquire(Priority::Critical, now).await.unwrap();
    permit.observe(AttemptOutcome::Reset, now + Duration::from_millis(5));
    drop(permit);
    assert_eq!(
        limiter.limit(),
        low_limit,
        "a broken connection is not overload"
    );
}

// ## Properties

fn priority() -> impl Strategy<Value = Priority> {
    prop::sample::select(Priority::ALL.to_vec())
}

fn view() -> impl Strategy<Value = View> {
    (
        0u32..20,
        1u32..20,
        prop::array::uniform4(0usize..4),
        0usize..12,
        prop::option::of(1u64..300),
        priority(),
    )
        .prop_map(
            |(in_flight, limit, queued, max_queue, hold, queue_from)| View {
                in_flight,
                limit,
                queued,
                max_queue: max_queue.max(queued.iter().sum()),
                queue_timeout: Duration::from_millis(100),
                hold: hold.map(Duration::from_millis),
                queue_from,
            },
        )
}

#[derive(Debug, Clone)]
enum Op {
    Arrive(Priority),
    Finish(usize),
    GiveUp(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => priority().prop_map(Op::Arrive),
        2 => any::<usize>().prop_map(Op::Finish),
        1 => any::<usize>().prop_map(Op::GiveUp),
    ]
}

proptest! {
    #[test]
    fn a_higher_priority_is_never_shed_where_a_lower_one_is_admitted(
        view in view(), lower in priority(), higher in priority(),
    ) {
        prop_assume!(lower < higher);
        let admitted = |decision| !matches!(decision, Decision::Shed(_));
        if admitted(decide(&view, lower)) {
            prop_assert!(admitted(decide(&view, higher)), "{:?}", decide(&view, higher));
        }
    }

    #[test]
    fn slots_never_exceed_the_limit_nor_a_priority_its_share(
        limit in 1u32..8, queue in 0usize..6, ops in prop::collection::vec(op(), 1..80),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let limiter = fixed(limit, queue, Duration::from_secs(60));
            let mut running: Vec<(Priority, LimitPermit)> = Vec::new();
            let mut waiting: Vec<(Priority, Acquiring)> = Vec::new();
            for op in ops {
                match op {
                    Op::Arrive(priority) => waiting.push((priority, acquiring(&limiter, priority))),
                    Op::Finish(index) if !running.is_empty() => {
                        running.swap_remove(index % running.len());
                    }
                    Op::GiveUp(index) if !waiting.is_empty() => {
                        drop(waiting.swap_remove(index % waiting.len()));
                    }
                    _ => {}
                }
                let mut still = Vec::new();
                for (priority, mut future) in waiting {
                    match poll_once(&mut future).await {
                        Poll::Ready(Ok(permit)) => running.push((priority, permit)),
                        Poll::Ready(Err(_)) => {}
                        Poll::Pending => still.push((priority, future)),
                    }
                }
                waiting = still;
                prop_assert!(limiter.in_flight() <= limit);
                prop_assert_eq!(limiter.in_flight() as usize, running.len());
                prop_assert!(limiter.queued() <= queue);
                for share in Priority::ALL {
                    let at_or_below = running.iter().filter(|(p, _)| *p <= share).count();
                    prop_assert!(at_or_below as u32 <= cap(limit, share));
                }
            }
            Ok(())
        })?;
    }
}
