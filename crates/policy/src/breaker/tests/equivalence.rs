//! The shared breaker, driven from one thread, decides exactly as the plain one does.
//!
//! Its closed state records without the lock, through a different path (atomic tally, trip
//! judged outside the lock, time window rolled under it); this checks that path against the
//! plain struct on random sequences of every operation.

use std::time::Instant;

use proptest::prelude::*;

use super::breaker;
use super::props::{Op, any_config, op};
use crate::breaker::{Permit, SharedBreaker};

proptest! {
    /// Same config, same operations at the same instants: the same permits and rejections,
    /// the same transitions (returned and queued), the same state and window at every step.
    #[test]
    fn the_shared_breaker_decides_as_the_plain_one_on_one_thread(
        config in any_config(),
        ops in proptest::collection::vec(op(), 1..300),
    ) {
        let mut plain = breaker(config.clone());
        let shared = SharedBreaker::new(config).expect("valid config");
        let mut now = Instant::now();
        let mut outstanding: Vec<(Permit, Permit)> = Vec::new();
        for op in ops {
            match op {
                Op::Acquire => {
                    let mine = plain.try_acquire(now);
                    let theirs = shared.try_acquire(now);
                    prop_assert_eq!(&mine, &theirs);
                    if let (Ok(a), Ok(b)) = (mine, theirs) {
                        outstanding.push((a, b));
                    }
                    loop {
                        let queued = plain.pop_transition();
                        prop_assert_eq!(queued, shared.pop_transition());
                        if queued.is_none() {
                            break;
                        }
                    }
                }
                Op::Record { pick, outcome } => {
                    if !outstanding.is_empty() {
                        let (a, b) = outstanding.swap_remove(pick % outstanding.len());
                        prop_assert_eq!(plain.record(a, outcome, now), shared.record(b, outcome, now));
                    }
                }
                Op::Advance(by) => now += by,
                Op::Tick => prop_assert_eq!(plain.advance(now), shared.advance(now)),
                Op::ForceOpen => prop_assert_eq!(plain.force_open(now), shared.force_open(now)),
                Op::ForceClosed => {
                    prop_assert_eq!(plain.force_closed(now), shared.force_closed(now));
                }
                Op::Reset => prop_assert_eq!(plain.reset(now), shared.reset(now)),
                Op::Probe(true) => prop_assert_eq!(plain.probe_passed(now), shared.probe_passed(now)),
                Op::Probe(false) => {
                    plain.probe_failed(now);
                    shared.probe_failed(now);
                    prop_assert_eq!(plain.probe_due(now), shared.probe_due(now));
                }
            }
            prop_assert_eq!(plain.state(now), shared.state(now));
            prop_assert_eq!(plain.window_counts(now), shared.window_counts(now));
            prop_assert_eq!(
                plain.consecutive_failures(),
                shared.lock().consecutive_failures()
            );
        }
    }
}
