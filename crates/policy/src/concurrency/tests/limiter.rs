use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use super::*;
use crate::bulkhead::BulkheadFull;

fn aimd_limiter(initial: u32) -> AdaptiveLimiter<Aimd> {
    AdaptiveLimiter::new(
        Aimd::new(AimdConfig {
            initial_limit: initial,
            min_limit: 1,
            ..AimdConfig::default()
        })
        .expect("valid"),
    )
}

#[test]
fn adaptive_limiter_admits_up_to_the_algorithms_limit() {
    let limiter = aimd_limiter(2);
    let now = Instant::now();
    let _a = limiter.try_acquire(now).expect("1");
    let _b = limiter.try_acquire(now).expect("2");
    assert_eq!(limiter.try_acquire(now).err(), Some(BulkheadFull));
    assert_eq!((limiter.limit(), limiter.in_flight()), (2, 2));
}

#[test]
fn a_recorded_success_under_load_raises_the_bulkhead_limit() {
    let limiter = aimd_limiter(2);
    let t0 = Instant::now();
    let a = limiter.try_acquire(t0).expect("1");
    let _b = limiter.try_acquire(t0).expect("2");
    assert_eq!(a.record(Outcome::Success, t0 + ms(5)), 3);
    assert_eq!(limiter.bulkhead().limit(), 3);
    assert_eq!(limiter.in_flight(), 1);
}

#[test]
fn a_recorded_drop_lowers_the_bulkhead_limit() {
    let limiter = aimd_limiter(10);
    let t0 = Instant::now();
    let p = limiter.try_acquire(t0).expect("free");
    assert_eq!(p.record(Outcome::Dropped, t0 + ms(5)), 9);
    assert_eq!(limiter.bulkhead().limit(), 9);
    assert_eq!(limiter.in_flight(), 0);
}

#[test]
fn each_permit_reports_its_rtt_and_the_load_it_started_under() {
    let recorder = Recorder::with_limit(5);
    let limiter = AdaptiveLimiter::new(recorder.clone());
    let t0 = Instant::now();
    let first = limiter.try_acquire(t0).expect("1");
    let second = limiter.try_acquire(t0 + ms(3)).expect("2");
    assert_eq!(second.in_flight_at_start(), 2);
    second.record(Outcome::Dropped, t0 + ms(10));
    first.record(Outcome::Success, t0 + ms(20));
    assert_eq!(
        recorder.samples(),
        vec![
            Sample {
                rtt: ms(7),
                in_flight: 2,
                dropped: true
            },
            Sample {
                rtt: ms(20),
                in_flight: 1,
                dropped: false
            },
        ]
    );
}

#[test]
fn ignored_and_unrecorded_permits_release_without_a_sample() {
    let recorder = Recorder::with_limit(5);
    let limiter = AdaptiveLimiter::new(recorder.clone());
    let t0 = Instant::now();
    let ignored = limiter.try_acquire(t0).expect("1");
    let forgotten = limiter.try_acquire(t0).expect("2");
    assert_eq!(ignored.record(Outcome::Ignored, t0 + ms(1)), 5);
    drop(forgotten);
    assert!(recorder.samples().is_empty());
    assert_eq!(limiter.in_flight(), 0);
}

#[test]
fn a_recorded_sample_moves_the_limit_for_queued_and_new_callers() {
    let recorder = Recorder::with_limit(1);
    let limiter = AdaptiveLimiter::with_queue(recorder.clone(), 4, ms(100)).expect("valid queue");
    let t0 = Instant::now();
    let held = limiter.try_acquire(t0).expect("free");
    let mut waiting = limiter.acquire();
    let mut cx = Context::from_waker(Waker::noop());
    assert!(Pin::new(&mut waiting).poll(&mut cx).is_pending());
    assert_eq!(limiter.queued(), 1);
    recorder.set(3);
    // The algorithm's new limit reaches the bulkhead when a sample is recorded.
    assert_eq!(limiter.limit(), 1);
    held.record(Outcome::Success, t0 + ms(1));
    assert_eq!(limiter.limit(), 3);
    let Poll::Ready(Ok(admitted)) = Pin::new(&mut waiting).poll(&mut cx) else {
        panic!("expected the queued caller to be admitted");
    };
    let _new = limiter
        .try_acquire(t0)
        .expect("room under the raised limit");
    // RTT counts from the start, not from when it queued.
    let permit = admitted.start(t0 + ms(50));
    permit.record(Outcome::Success, t0 + ms(60));
    assert_eq!(recorder.samples()[1].rtt, ms(10));
}

#[test]
fn a_queue_without_time_to_wait_is_a_config_error() {
    assert!(AdaptiveLimiter::with_queue(Recorder::with_limit(1), 1, Duration::ZERO).is_err());
}

#[test]
fn concurrent_records_leave_the_bulkhead_at_the_algorithms_limit() {
    let limiter = aimd_limiter(50);
    let t0 = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..4u64 {
            let limiter = limiter.clone();
            scope.spawn(move || {
                for i in 0..500u64 {
                    if let Ok(p) = limiter.try_acquire(t0) {
                        let outcome = if (i + t) % 5 == 0 {
                            Outcome::Dropped
                        } else {
                            Outcome::Success
                        };
                        p.record(outcome, t0 + ms(1));
                    }
                }
            });
        }
    });
    assert_eq!(limiter.limit(), limiter.with_algorithm(|a| a.limit()));
    assert_eq!(limiter.in_flight(), 0);
}
