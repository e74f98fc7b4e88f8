//! The learned timeout: the ceiling until it knows, then a multiple of the p99 within its
//! bounds, and timeouts that raise it rather than repeat.

use std::time::{Duration, Instant};

use super::*;

const MS: Duration = Duration::from_millis(1);

fn learned() -> LearnedTimeout {
    LearnedTimeout::new(LearnedTimeoutConfig::with_ceiling(500 * MS)).expect("a valid config")
}

#[test]
fn the_timeout_is_the_ceiling_until_enough_attempts_are_known() {
    let timeout = learned();
    let now = Instant::now();
    for _ in 0..99 {
        timeout.record_answer(3 * MS, now);
    }
    assert_eq!(timeout.timeout(), 500 * MS);
    timeout.record_answer(3 * MS, now);
    assert_eq!(timeout.timeout(), 50 * MS, "4 × 3 ms is under the floor");
}

#[test]
fn the_timeout_follows_a_multiple_of_the_p99_within_its_bounds() {
    let timeout = learned();
    let now = Instant::now();
    for _ in 0..200 {
        timeout.record_answer(30 * MS, now);
    }
    let learned = timeout.timeout();
    assert!(
        learned >= 120 * MS && learned <= 135 * MS,
        "4 × p99 (30 ms, at most 12.5% above): {learned:?}"
    );
    for _ in 0..200 {
        timeout.record_answer(300 * MS, now);
    }
    assert_eq!(timeout.timeout(), 500 * MS, "capped at the ceiling");
}

#[test]
fn a_service_that_slows_down_costs_a_short_burst_of_timeouts_not_a_storm() {
    let timeout = learned();
    let start = Instant::now();
    // 5 ms answers for a while: the timeout is the floor.
    for k in 0..3000u32 {
        timeout.record_answer(5 * MS, start + k * MS);
    }
    assert_eq!(timeout.timeout(), 50 * MS);
    // Then every attempt takes 60 ms: those that time out are recorded as censored samples.
    let mut timeouts = 0;
    for k in 0..3000u32 {
        let now = start + (3000 + k) * MS;
        if timeout.timeout() < 60 * MS {
            timeouts += 1;
            timeout.record_timeout(timeout.timeout(), now);
        } else {
            timeout.record_answer(60 * MS, now);
        }
    }
    assert!(timeout.timeout() >= 60 * MS);
    assert!(
        timeouts <= 60,
        "{timeouts} timeouts: about 1% of the window's attempts at most"
    );
}

#[test]
fn nonsense_is_refused() {
    let good = LearnedTimeoutConfig::with_ceiling(500 * MS);
    let bad = [
        LearnedTimeoutConfig {
            multiple: 0.5,
            ..good
        },
        LearnedTimeoutConfig {
            multiple: f64::NAN,
            ..good
        },
        LearnedTimeoutConfig {
            floor: Duration::ZERO,
            ..good
        },
        LearnedTimeoutConfig {
            ceiling: 10 * MS,
            ..good
        },
        LearnedTimeoutConfig {
            window: Duration::ZERO,
            ..good
        },
    ];
    for config in bad {
        assert!(LearnedTimeout::new(config).is_err(), "{config:?}");
    }
}
