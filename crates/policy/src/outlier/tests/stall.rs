//! Stall detection: silence is counted over busy time only, any answer ends it, and the cap
//! is the caller's.

use std::time::{Duration, Instant};

use proptest::prelude::*;

use crate::outlier::stall::{
    AUTO_STALL_FLOOR, AUTO_STALL_UNKNOWN, Silence, StallAfter, StallEvent, StallInput,
};

const MS: Duration = Duration::from_millis(1);

fn check(silence: &mut Silence, after: StallAfter, now: Instant) -> Option<StallEvent> {
    silence.transition(
        StallInput::Check {
            after,
            may_stall: true,
        },
        now,
    )
}

#[test]
fn an_endpoint_busy_and_silent_past_the_threshold_is_stalled() {
    let start = Instant::now();
    let mut silence = Silence::new();
    silence.transition(StallInput::Busy(true), start);
    let after = StallAfter::Fixed(50 * MS);
    assert_eq!(check(&mut silence, after, start + 49 * MS), None);
    assert_eq!(
        check(&mut silence, after, start + 50 * MS),
        Some(StallEvent::Stalled {
            silent: 50 * MS,
            threshold: 50 * MS
        })
    );
    assert!(silence.is_stalled());
    // Judged again, nothing more is said.
    assert_eq!(check(&mut silence, after, start + 80 * MS), None);
}

#[test]
fn idle_time_never_counts_as_silence() {
    let start = Instant::now();
    let mut silence = Silence::new();
    let after = StallAfter::Fixed(50 * MS);
    assert_eq!(check(&mut silence, after, start + 10_000 * MS), None);
    // Busy 30 ms, idle a long time, busy 10 ms: 40 ms of silence, not more.
    silence.transition(StallInput::Busy(true), start);
    silence.transition(StallInput::Busy(false), start + 30 * MS);
    silence.transition(StallInput::Busy(true), start + 5_000 * MS);
    assert_eq!(silence.silent_for(start + 5_010 * MS), 40 * MS);
    assert_eq!(check(&mut silence, after, start + 5_010 * MS), None);
    assert!(check(&mut silence, after, start + 5_020 * MS).is_some());
}

#[test]
fn short_cancelled_attempts_add_up_to_a_stall() {
    // A hung endpoint whose attempts a hedge cancels after 8 ms each, idle between them.
    let start = Instant::now();
    let mut silence = Silence::new();
    let after = StallAfter::Fixed(30 * MS);
    let mut now = start;
    let mut stalled_at = None;
    for attempt in 0..10 {
        silence.transition(StallInput::Busy(true), now);
        silence.transition(StallInput::Busy(false), now + 8 * MS);
        now += 20 * MS;
        if let Some(StallEvent::Stalled { .. }) = check(&mut silence, after, now) {
            stalled_at = Some(attempt);
            break;
        }
    }
    assert_eq!(
        stalled_at,
        Some(3),
        "4 × 8 ms is the first total past 30 ms"
    );
}

#[test]
fn an_endpoint_that_answers_other_requests_is_not_stalled_by_one_long_request() {
    let start = Instant::now();
    let mut silence = Silence::new();
    let after = StallAfter::Fixed(50 * MS);
    // A long poll goes out and stays out; other requests are answered every 20 ms.
    silence.transition(StallInput::Busy(true), start);
    for tick in 1..=100u32 {
        let now = start + tick * 20 * MS;
        silence.transition(StallInput::Answered(Some(3 * MS)), now);
        assert_eq!(check(&mut silence, after, now + 19 * MS), None);
    }
}

#[test]
fn a_stalled_endpoint_returns_on_its_first_answer_even_a_health_check() {
    let start = Instant::now();
    let mut silence = Silence::new();
    silence.transition(StallInput::Busy(true), start);
    let after = StallAfter::Fixed(10 * MS);
    assert!(check(&mut silence, after, start + 10 * MS).is_some());
    assert_eq!(
        silence.transition(StallInput::Answered(None), start + 110 * MS),
        Some(StallEvent::AnsweredAgain {
            stalled_for: 100 * MS
        })
    );
    assert!(!silence.is_stalled());
    // Still busy: its silence counts afresh from the answer.
    assert_eq!(silence.silent_for(start + 115 * MS), 5 * MS);
}

#[test]
fn a_stall_the_cap_refuses_is_said_once_per_silent_spell() {
    let start = Instant::now();
    let mut silence = Silence::new();
    silence.transition(StallInput::Busy(true), start);
    let refused = StallInput::Check {
        after: StallAfter::Fixed(10 * MS),
        may_stall: false,
    };
    assert_eq!(
        silence.transition(refused, start + 10 * MS),
        Some(StallEvent::Suppressed { silent: 10 * MS })
    );
    assert_eq!(silence.transition(refused, start + 20 * MS), None);
    assert!(!silence.is_stalled());
    // Allowed later in the same spell, it stalls.
    assert!(matches!(
        check(&mut silence, StallAfter::Fixed(10 * MS), start + 30 * MS),
        Some(StallEvent::Stalled { .. })
    ));
    // A new spell after an answer may be refused (and said) again.
    silence.transition(StallInput::Answered(None), start + 40 * MS);
    assert_eq!(
        silence.transition(refused, start + 50 * MS),
        Some(StallEvent::Suppressed { silent: 10 * MS })
    );
}

#[test]
fn auto_learns_ten_times_the_answers_latency_above_a_floor() {
    assert_eq!(StallAfter::Auto.threshold(None), AUTO_STALL_UNKNOWN);
    assert_eq!(StallAfter::Auto.threshold(Some(MS)), AUTO_STALL_FLOOR);
    assert_eq!(StallAfter::Auto.threshold(Some(4 * MS)), 40 * MS);
    assert_eq!(StallAfter::Fixed(7 * MS).threshold(Some(100 * MS)), 7 * MS);
    let start = Instant::now();
    let mut silence = Silence::new();
    silence.transition(StallInput::Answered(Some(4 * MS)), start);
    assert_eq!(silence.answer_latency(), Some(4 * MS));
    // Each answer weighs an eighth.
    silence.transition(StallInput::Answered(Some(12 * MS)), start);
    assert_eq!(silence.answer_latency(), Some(5 * MS));
}

/// What happens to the endpoint, in the naive model's terms.
#[derive(Debug, Clone, Copy)]
enum Op {
    Busy(bool),
    Answer,
    Advance(u64),
    Check(bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        any::<bool>().prop_map(Op::Busy),
        Just(Op::Answer),
        (0u64..40).prop_map(Op::Advance),
        any::<bool>().prop_map(Op::Check),
    ]
}

proptest! {
    /// Against a naive model that keeps every busy millisecond since the last answer: the
    /// silence is exactly that, an endpoint stalls only when it is at least the threshold and
    /// the cap allows, and it is stalled exactly from then until its next answer.
    #[test]
    fn silence_matches_a_model_of_busy_milliseconds_since_the_last_answer(
        ops in proptest::collection::vec(op(), 0..200),
    ) {
        let after = StallAfter::Fixed(50 * MS);
        let start = Instant::now();
        let mut now_ms = 0u64;
        let mut silence = Silence::new();
        // The model.
        let mut busy = false;
        let mut busy_ms_since_answer = 0u64;
        let mut stalled = false;
        for op in ops {
            let now = start + Duration::from_millis(now_ms);
            match op {
                Op::Busy(value) => {
                    busy = value;
                    prop_assert_eq!(silence.transition(StallInput::Busy(value), now), None);
                }
                Op::Answer => {
                    let event = silence.transition(StallInput::Answered(None), now);
                    prop_assert_eq!(event.is_some(), stalled);
                    busy_ms_since_answer = 0;
                    stalled = false;
                }
                Op::Advance(ms) => {
                    now_ms += ms;
                    if busy {
                        busy_ms_since_answer += ms;
                    }
                }
                Op::Check(may_stall) => {
                    let event = silence.transition(StallInput::Check { after, may_stall }, now);
                    let due = busy_ms_since_answer >= 50;
                    if stalled || !due {
                        let is_stalled = matches!(event, Some(StallEvent::Stalled { .. }));
                        prop_assert!(!is_stalled, "stalled while not due or already stalled");
                    }
                    if !stalled && due && may_stall {
                        let is_stalled = matches!(event, Some(StallEvent::Stalled { .. }));
                        prop_assert!(is_stalled, "due and allowed but not stalled");
                        stalled = true;
                    }
                }
            }
            let now = start + Duration::from_millis(now_ms);
            prop_assert_eq!(silence.silent_for(now), Duration::from_millis(busy_ms_since_answer));
            prop_assert_eq!(silence.is_stalled(), stalled);
        }
    }
}
