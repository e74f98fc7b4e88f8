//! Property tests: random operation sequences against invariants and naive models.

use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::{breaker, ms, quiet_config, secs};
use crate::breaker::{
    BreakerConfig, CircuitBreaker, OpenBackoff, Outcome, Permit, Phase, Reason, SlidingWindow,
    State, Transition, WindowCounts,
};

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        3 => Just(Outcome::Success),
        3 => Just(Outcome::Failure),
        1 => Just(Outcome::Ignored),
    ]
}

#[derive(Debug, Clone)]
pub(super) enum Op {
    Acquire,
    Record {
        pick: usize,
        outcome: Outcome,
    },
    Advance(Duration),
    Tick,
    ForceOpen,
    ForceClosed,
    Reset,
    /// The caller's own probe (external probes): passed or failed.
    Probe(bool),
}

pub(super) fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => Just(Op::Acquire),
        10 => (any::<usize>(), outcome()).prop_map(|(pick, outcome)| Op::Record { pick, outcome }),
        4 => (0u64..4_000).prop_map(|n| Op::Advance(ms(n))),
        1 => Just(Op::Tick),
        2 => any::<bool>().prop_map(Op::Probe),
        1 => prop_oneof![
            1 => Just(Op::ForceOpen),
            1 => Just(Op::ForceClosed),
            3 => Just(Op::Reset),
        ],
    ]
}

pub(super) fn any_config() -> impl Strategy<Value = BreakerConfig> {
    (
        (1u32..=4, proptest::option::of(1u32..=4)),
        (
            proptest::option::of(1u32..=10),
            proptest::option::of(1u32..=10),
        ),
        (any::<bool>(), 1u32..=5),
        (any::<bool>(), any::<bool>(), any::<bool>()),
    )
        .prop_map(
            |(
                (probes, consecutive),
                (failure, slow),
                (time_window, minimum),
                (grow, timeout, external),
            )| {
                BreakerConfig {
                    consecutive_failures: consecutive,
                    failure_rate: failure.map(|k| f64::from(k) / 10.0),
                    slow_call_rate: slow.map(|k| f64::from(k) / 10.0),
                    slow_call_duration: secs(1),
                    window: if time_window {
                        SlidingWindow::Time {
                            span: secs(5),
                            buckets: 5,
                        }
                    } else {
                        SlidingWindow::Count { calls: 5 }
                    },
                    minimum_calls: minimum,
                    open_duration: secs(2),
                    open_backoff: grow.then_some(OpenBackoff {
                        multiplier: 2.0,
                        max: secs(8),
                    }),
                    half_open_probes: probes,
                    probe_timeout: timeout.then_some(secs(3)),
                    external_probes: external,
                }
            },
        )
}

/// Follows the transitions a caller would observe and checks they form one unbroken chain.
struct Observer {
    last: State,
}

impl Observer {
    fn see(&mut self, t: Transition) -> Result<(), TestCaseError> {
        prop_assert_eq!(t.from, self.last, "transition {} breaks the chain", t);
        prop_assert_eq!(t.open_until.is_some(), t.to == State::Open);
        self.last = t.to;
        Ok(())
    }
}

fn check_invariants(
    b: &CircuitBreaker,
    outstanding: &[Permit],
    observer: &Observer,
    probes: u32,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(
        b.phase.state(),
        observer.last,
        "state differs from the event chain"
    );
    let current_probes = outstanding
        .iter()
        .filter(|p| p.probe && p.generation == b.generation)
        .count();
    match b.phase {
        Phase::HalfOpen {
            in_flight,
            succeeded,
            ..
        } => {
            prop_assert!(in_flight + succeeded <= probes);
            prop_assert_eq!(current_probes, in_flight as usize, "probe slots leaked");
        }
        _ => prop_assert_eq!(current_probes, 0),
    }
    Ok(())
}

proptest! {
    /// Whatever callers do, half-open never has more than N probes out, every probe out is
    /// accounted for exactly, and the transitions a caller sees form one unbroken chain that
    /// ends in the breaker's state.
    #[test]
    fn probes_stay_bounded_and_transitions_form_one_chain(
        config in any_config(),
        ops in proptest::collection::vec(op(), 1..200),
    ) {
        let probes = config.half_open_probes;
        let external = config.external_probes;
        let mut b = breaker(config);
        let mut now = Instant::now();
        let mut outstanding: Vec<Permit> = Vec::new();
        let mut observer = Observer { last: State::Closed };
        for op in ops {
            match op {
                Op::Acquire => {
                    if let Ok(permit) = b.try_acquire(now) {
                        outstanding.push(permit);
                    }
                    for t in b.take_transitions() {
                        observer.see(t)?;
                    }
                    prop_assert_eq!(b.due(now), None, "try_acquire applies what is due");
                }
                Op::Record { pick, outcome } => {
                    if !outstanding.is_empty() {
                        let permit = outstanding.swap_remove(pick % outstanding.len());
                        if let Some(t) = b.record(permit, outcome, now) {
                            observer.see(t)?;
                        }
                    }
                }
                Op::Advance(by) => now += by,
                Op::Tick => {
                    if let Some(t) = b.advance(now) {
                        observer.see(t)?;
                    }
                    prop_assert_eq!(b.due(now), None);
                }
                Op::ForceOpen => {
                    if let Some(t) = b.force_open(now) {
                        observer.see(t)?;
                    }
                }
                Op::ForceClosed => {
                    if let Some(t) = b.force_closed(now) {
                        observer.see(t)?;
                    }
                }
                Op::Reset => observer.see(b.reset(now))?,
                Op::Probe(passed) => {
                    let was_open = b.phase.state() == State::Open;
                    if passed {
                        let t = b.probe_passed(now);
                        prop_assert_eq!(t.is_some(), was_open, "only an open breaker half-opens");
                        if let Some(t) = t {
                            observer.see(t)?;
                        }
                    } else {
                        b.probe_failed(now);
                        prop_assert_eq!(b.phase.state() == State::Open, was_open);
                    }
                }
            }
            if external {
                // Externally probed: time alone never half-opens it.
                prop_assert!(
                    !matches!(b.due(now), Some((State::HalfOpen, _))),
                    "an externally probed breaker half-opened by time"
                );
            }
            prop_assert_eq!(b.pop_transition(), None, "nothing left unobserved");
            prop_assert_eq!(b.missed_transitions(), 0);
            check_invariants(&b, &outstanding, &observer, probes)?;
        }
    }

    /// The count window's totals, and whether the rates trip, match a naive model that keeps
    /// every call in a Vec and looks at the last N.
    #[test]
    fn count_window_matches_a_naive_model(
        size in 1u32..=12,
        minimum in 1u32..=12,
        failure_k in proptest::option::of(1u64..=20),
        slow_k in proptest::option::of(1u64..=20),
        calls in proptest::collection::vec((outcome(), 0u64..200), 1..300),
    ) {
        let minimum = minimum.min(size);
        let mut b = breaker(BreakerConfig {
            failure_rate: failure_k.map(|k| k as f64 / 20.0),
            slow_call_rate: slow_k.map(|k| k as f64 / 20.0),
            slow_call_duration: ms(100),
            window: SlidingWindow::Count { calls: size },
            minimum_calls: minimum,
            ..quiet_config()
        });
        let mut model: Vec<(bool, bool)> = Vec::new();
        let mut now = Instant::now();
        for (outcome, took) in calls {
            let permit = b.try_acquire(now).expect("the test resets after each trip");
            now += ms(took);
            let transition = b.record(permit, outcome, now);
            if outcome != Outcome::Ignored {
                model.push((outcome == Outcome::Failure, took >= 100));
            }
            let last = &model[model.len().saturating_sub(size as usize)..];
            let expected = WindowCounts {
                calls: last.len() as u64,
                failures: last.iter().filter(|c| c.0).count() as u64,
                slow: last.iter().filter(|c| c.1).count() as u64,
            };
            prop_assert_eq!(b.window_counts(now), expected);
            let judged = outcome != Outcome::Ignored && expected.calls >= u64::from(minimum);
            // k/20 as a rational: count / calls >= k / 20.
            let over = |count: u64, k: Option<u64>| k.is_some_and(|k| count * 20 >= k * expected.calls);
            let expected_reason = if !judged {
                None
            } else if over(expected.failures, failure_k) {
                Some(Reason::FailureRate {
                    failures: expected.failures,
                    calls: expected.calls,
                    threshold: failure_k.map_or(0.0, |k| k as f64 / 20.0),
                })
            } else if over(expected.slow, slow_k) {
                Some(Reason::SlowCallRate {
                    slow: expected.slow,
                    calls: expected.calls,
                    threshold: slow_k.map_or(0.0, |k| k as f64 / 20.0),
                })
            } else {
                None
            };
            prop_assert_eq!(transition.map(|t| t.reason), expected_reason);
            if transition.is_some() {
                b.reset(now);
                model.clear();
            }
        }
    }

    /// The time window's totals at any instant match a naive model that keeps every call with
    /// its time and counts those whose bucket is among the newest `buckets`.
    #[test]
    fn time_window_matches_a_naive_model(
        buckets in 1u32..=8,
        width_ms in 1u64..=50,
        steps in proptest::collection::vec((0u64..120, outcome(), any::<bool>()), 1..300),
    ) {
        let span = ms(width_ms * u64::from(buckets));
        let mut b = breaker(BreakerConfig {
            window: SlidingWindow::Time { span, buckets },
            ..quiet_config()
        });
        let start = Instant::now();
        let mut origin: Option<Instant> = None;
        let mut model: Vec<(Instant, bool)> = Vec::new();
        let mut now = start;
        let bucket = |origin: Instant, at: Instant| ((at - origin).as_millis() as u64) / width_ms;
        for (gap, outcome, peek) in steps {
            now += ms(gap);
            if peek {
                // Reading at `now` without recording.
            } else {
                let permit = b.try_acquire(now).expect("no trip conditions");
                b.record(permit, outcome, now);
                if outcome != Outcome::Ignored {
                    origin.get_or_insert(now);
                    model.push((now, outcome == Outcome::Failure));
                }
            }
            let expected = origin.map_or(WindowCounts::default(), |origin| {
                let head = bucket(origin, now);
                let live: Vec<_> = model
                    .iter()
                    .filter(|(at, _)| head - bucket(origin, *at) < u64::from(buckets))
                    .collect();
                WindowCounts {
                    calls: live.len() as u64,
                    failures: live.iter().filter(|c| c.1).count() as u64,
                    slow: 0,
                }
            });
            prop_assert_eq!(b.window_counts(now), expected);
        }
    }
}
