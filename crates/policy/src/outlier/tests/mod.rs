//! Tests of the outlier detector, one file per idea.

use std::time::{Duration, Instant};

use super::*;

mod cap;
mod config;
mod consecutive;
mod ejection_time;
mod interval;
mod membership;
mod props;
mod stall;

const MS: Duration = Duration::from_millis(1);
const FAST: Duration = Duration::from_millis(5);

/// A configuration with only the consecutive-errors rule, at 5.
fn consecutive_only() -> OutlierConfig {
    OutlierConfig {
        failure_percentage: None,
        success_rate: None,
        ..OutlierConfig::default()
    }
}

/// A detector with endpoints `0..n`.
fn detector(config: OutlierConfig, n: usize, now: Instant) -> OutlierDetector {
    let mut d = OutlierDetector::new(config, now).expect("valid config");
    for id in 0..n {
        assert!(d.add(id).expect("small id"));
    }
    d
}

/// Records `k` outcomes for `id` at `now`; returns the events they produced.
fn record_n(
    d: &mut OutlierDetector,
    id: EndpointId,
    outcome: Outcome,
    k: usize,
    now: Instant,
) -> Vec<Event> {
    (0..k)
        .filter_map(|_| d.record(id, outcome, FAST, now))
        .collect()
}

#[track_caller]
fn ejected(event: Option<&Event>) -> Ejection {
    match event {
        Some(Event::Ejected(e)) => *e,
        other => panic!("expected an ejection, got {other:?}"),
    }
}
