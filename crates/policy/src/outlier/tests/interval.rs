use super::*;

const INTERVAL: Duration = Duration::from_secs(10);

fn failure_percentage_only() -> OutlierConfig {
    OutlierConfig {
        consecutive_errors: None,
        success_rate: None,
        ..OutlierConfig::default()
    }
}

fn success_rate_only() -> OutlierConfig {
    OutlierConfig {
        consecutive_errors: None,
        failure_percentage: None,
        max_ejection_percent: 100,
        ..OutlierConfig::default()
    }
}

/// Records `ok` successes and `failed` server errors for `id`, interleaved so that no
/// consecutive rule could see a run.
fn calls(d: &mut OutlierDetector, id: EndpointId, ok: usize, failed: usize, now: Instant) {
    for i in 0..ok.max(failed) {
        if i < failed {
            assert_eq!(d.record(id, Outcome::ServerError, FAST, now), None);
        }
        if i < ok {
            assert_eq!(d.record(id, Outcome::Success, FAST, now), None);
        }
    }
}

#[test]
fn failure_percentage_ejects_at_the_interval_not_before() {
    let t0 = Instant::now();
    let mut d = detector(failure_percentage_only(), 10, t0);
    calls(&mut d, 2, 5, 45, t0 + MS);
    assert!(d.tick(t0 + INTERVAL - MS).is_empty());
    let now = t0 + INTERVAL;
    let events = d.tick(now);
    let e = ejected(events.first());
    assert_eq!(events.len(), 1);
    assert_eq!(e.id, 2);
    assert_eq!(
        e.reason,
        EjectionReason::FailurePercentage {
            requests: 50,
            failures: 45,
            slow: 0,
            threshold_percent: 85,
        }
    );
    assert_eq!(e.until, now + Duration::from_secs(30));
}

#[test]
fn failure_percentage_needs_the_request_volume() {
    let t0 = Instant::now();
    let mut d = detector(failure_percentage_only(), 10, t0);
    calls(&mut d, 2, 0, 49, t0);
    assert!(d.tick(t0 + INTERVAL).is_empty());
}

#[test]
fn failure_percentage_threshold_is_inclusive() {
    let t0 = Instant::now();
    let mut d = detector(failure_percentage_only(), 10, t0);
    calls(&mut d, 1, 16, 84, t0);
    calls(&mut d, 2, 15, 85, t0);
    let events = d.tick(t0 + INTERVAL);
    assert_eq!(events.len(), 1);
    assert_eq!(ejected(events.first()).id, 2);
}

#[test]
fn slow_calls_count_toward_the_failure_percentage() {
    let t0 = Instant::now();
    let config = OutlierConfig {
        slow_call_threshold: Some(Duration::from_millis(100)),
        ..failure_percentage_only()
    };
    let mut d = detector(config, 10, t0);
    for i in 0..50 {
        let latency = if i % 10 == 0 {
            FAST
        } else {
            Duration::from_secs(1)
        };
        d.record(0, Outcome::Success, latency, t0);
    }
    let e = ejected(d.tick(t0 + INTERVAL).first());
    assert_eq!(
        e.reason,
        EjectionReason::FailurePercentage {
            requests: 50,
            failures: 45,
            slow: 45,
            threshold_percent: 85,
        }
    );
}

#[test]
fn each_interval_starts_a_fresh_window() {
    let t0 = Instant::now();
    let mut d = detector(failure_percentage_only(), 10, t0);
    calls(&mut d, 0, 0, 30, t0);
    assert!(d.tick(t0 + INTERVAL).is_empty());
    assert_eq!(d.status(0, t0 + INTERVAL).expect("known").requests, 0);
    calls(&mut d, 0, 0, 30, t0 + INTERVAL);
    assert!(d.tick(t0 + 2 * INTERVAL).is_empty());
}

#[test]
fn the_next_evaluation_is_an_interval_after_the_last() {
    let t0 = Instant::now();
    let mut d = detector(failure_percentage_only(), 10, t0);
    let late = t0 + INTERVAL + Duration::from_secs(3);
    d.tick(late);
    calls(&mut d, 0, 0, 60, late);
    assert!(d.tick(late + INTERVAL - MS).is_empty());
    assert_eq!(d.tick(late + INTERVAL).len(), 1);
}

#[test]
fn success_rate_far_below_the_cluster_is_ejected() {
    let t0 = Instant::now();
    let mut d = detector(success_rate_only(), 5, t0);
    for id in 0..4 {
        calls(&mut d, id, 100, 0, t0);
    }
    calls(&mut d, 4, 50, 50, t0);
    let e = ejected(d.tick(t0 + INTERVAL).first());
    assert_eq!(e.id, 4);
    // Rates 100, 100, 100, 100, 50: mean 90, stdev 20, threshold 90 − 1.9 × 20 = 52.
    let EjectionReason::SuccessRate {
        requests,
        failures,
        success_rate,
        cluster_mean,
        cluster_stdev,
        threshold,
        ..
    } = e.reason
    else {
        panic!("wrong reason {:?}", e.reason)
    };
    assert_eq!((requests, failures), (100, 50));
    assert!((success_rate - 50.0).abs() < 1e-9);
    assert!((cluster_mean - 90.0).abs() < 1e-9);
    assert!((cluster_stdev - 20.0).abs() < 1e-9);
    assert!((threshold - 52.0).abs() < 1e-9);
}

#[test]
fn success_rate_just_above_the_threshold_is_kept() {
    let t0 = Instant::now();
    let config = OutlierConfig {
        success_rate: Some(SuccessRateConfig {
            stdev_factor: 2.0,
            ..SuccessRateConfig::default()
        }),
        ..success_rate_only()
    };
    let mut d = detector(config, 5, t0);
    for id in 0..4 {
        calls(&mut d, id, 100, 0, t0);
    }
    calls(&mut d, 4, 50, 50, t0);
    // Threshold 90 − 2 × 20 = 50: a rate of exactly 50 is not below it.
    assert!(d.tick(t0 + INTERVAL).is_empty());
}

#[test]
fn success_rate_needs_enough_busy_endpoints() {
    let t0 = Instant::now();
    let mut d = detector(success_rate_only(), 6, t0);
    for id in 0..3 {
        calls(&mut d, id, 100, 0, t0);
    }
    calls(&mut d, 3, 50, 50, t0);
    // Endpoint 4 is too quiet to count, however bad.
    calls(&mut d, 4, 0, 99, t0);
    assert!(d.tick(t0 + INTERVAL).is_empty());
}

#[test]
fn a_cluster_failing_as_a_whole_ejects_nobody_by_success_rate() {
    let t0 = Instant::now();
    let mut d = detector(success_rate_only(), 5, t0);
    for id in 0..5 {
        calls(&mut d, id, 50, 50, t0);
    }
    assert!(d.tick(t0 + INTERVAL).is_empty());
}

#[test]
fn when_the_cap_binds_the_worst_endpoint_goes_first() {
    let t0 = Instant::now();
    let mut d = detector(failure_percentage_only(), 10, t0);
    calls(&mut d, 3, 5, 95, t0);
    calls(&mut d, 7, 0, 100, t0);
    let events = d.tick(t0 + INTERVAL);
    assert_eq!(events.len(), 2);
    assert_eq!(ejected(events.first()).id, 7);
    assert!(matches!(
        events[1],
        Event::EjectionSuppressed {
            id: 3,
            ejected: 1,
            max_ejected: 1,
            ..
        }
    ));
}

#[test]
fn ejected_endpoints_are_not_judged_again_at_the_interval() {
    let t0 = Instant::now();
    let config = OutlierConfig {
        consecutive_errors: Some(5),
        max_ejection_percent: 100,
        ..failure_percentage_only()
    };
    let mut d = detector(config, 10, t0);
    let e = ejected(record_n(&mut d, 0, Outcome::ServerError, 5, t0).first());
    calls(&mut d, 0, 0, 100, t0);
    assert!(d.tick(t0 + INTERVAL).is_empty());
    assert_eq!(d.ejection(0, t0 + INTERVAL), Some(e));
}
