use super::*;

#[test]
fn five_consecutive_errors_eject_at_once() {
    let t0 = Instant::now();
    let mut d = detector(consecutive_only(), 10, t0);
    assert!(record_n(&mut d, 3, Outcome::ServerError, 4, t0).is_empty());
    assert!(!d.is_ejected(3, t0));
    let e = ejected(d.record(3, Outcome::GatewayError, FAST, t0).as_ref());
    assert_eq!(e.id, 3);
    assert_eq!(
        e.reason,
        EjectionReason::ConsecutiveErrors { count: 5, slow: 0 }
    );
    assert_eq!(
        (e.at, e.until, e.multiplier),
        (t0, t0 + Duration::from_secs(30), 1)
    );
    assert!(d.is_ejected(3, t0));
    assert_eq!(d.ejection(3, t0), Some(e));
    assert_eq!(d.ejected_count(t0), 1);
}

#[test]
fn a_success_breaks_the_run_of_errors() {
    let t0 = Instant::now();
    let mut d = detector(consecutive_only(), 10, t0);
    record_n(&mut d, 0, Outcome::ServerError, 4, t0);
    d.record(0, Outcome::Success, FAST, t0);
    assert!(record_n(&mut d, 0, Outcome::ServerError, 4, t0).is_empty());
    assert_eq!(d.status(0, t0).expect("known").consecutive_errors, 4);
    assert!(!d.is_ejected(0, t0));
}

#[test]
fn gateway_errors_in_a_row_eject_and_a_server_error_breaks_that_run() {
    let t0 = Instant::now();
    let config = OutlierConfig {
        consecutive_errors: None,
        consecutive_gateway_errors: Some(3),
        ..consecutive_only()
    };
    let mut d = detector(config, 10, t0);
    record_n(&mut d, 1, Outcome::GatewayError, 2, t0);
    d.record(1, Outcome::ServerError, FAST, t0);
    assert!(record_n(&mut d, 1, Outcome::GatewayError, 2, t0).is_empty());
    let e = ejected(d.record(1, Outcome::GatewayError, FAST, t0).as_ref());
    assert_eq!(
        e.reason,
        EjectionReason::ConsecutiveGatewayErrors { count: 3 }
    );
}

#[test]
fn server_errors_alone_never_meet_the_gateway_rule() {
    let t0 = Instant::now();
    let config = OutlierConfig {
        consecutive_errors: None,
        consecutive_gateway_errors: Some(3),
        ..consecutive_only()
    };
    let mut d = detector(config, 10, t0);
    assert!(record_n(&mut d, 1, Outcome::ServerError, 50, t0).is_empty());
}

#[test]
fn gateway_rule_is_named_when_both_runs_complete_together() {
    let t0 = Instant::now();
    let config = OutlierConfig {
        consecutive_errors: Some(3),
        consecutive_gateway_errors: Some(3),
        ..consecutive_only()
    };
    let mut d = detector(config, 10, t0);
    let events = record_n(&mut d, 2, Outcome::GatewayError, 3, t0);
    let e = ejected(events.first());
    assert_eq!(
        e.reason,
        EjectionReason::ConsecutiveGatewayErrors { count: 3 }
    );
}

#[test]
fn slow_calls_count_as_errors_when_a_threshold_is_set() {
    let t0 = Instant::now();
    let config = OutlierConfig {
        slow_call_threshold: Some(Duration::from_millis(100)),
        ..consecutive_only()
    };
    let mut d = detector(config, 10, t0);
    let slow = Duration::from_millis(101);
    for _ in 0..3 {
        assert_eq!(d.record(4, Outcome::Success, slow, t0), None);
    }
    // Exactly at the threshold is not slow, and breaks the run.
    d.record(4, Outcome::Success, Duration::from_millis(100), t0);
    assert_eq!(d.status(4, t0).expect("known").consecutive_errors, 0);
    for _ in 0..4 {
        d.record(4, Outcome::Success, slow, t0);
    }
    let e = ejected(d.record(4, Outcome::ServerError, FAST, t0).as_ref());
    assert_eq!(
        e.reason,
        EjectionReason::ConsecutiveErrors { count: 5, slow: 4 }
    );
}

#[test]
fn slow_calls_are_ignored_without_a_threshold() {
    let t0 = Instant::now();
    let mut d = detector(consecutive_only(), 10, t0);
    for _ in 0..20 {
        assert_eq!(
            d.record(4, Outcome::Success, Duration::from_secs(60), t0),
            None
        );
    }
    assert_eq!(d.status(4, t0).expect("known").slow, 0);
}

#[test]
fn disabled_consecutive_rules_eject_nobody() {
    let t0 = Instant::now();
    let config = OutlierConfig {
        consecutive_errors: None,
        ..consecutive_only()
    };
    let mut d = detector(config, 10, t0);
    assert!(record_n(&mut d, 0, Outcome::GatewayError, 100, t0).is_empty());
}

#[test]
fn calls_completing_while_ejected_do_not_extend_the_run() {
    let t0 = Instant::now();
    let mut d = detector(consecutive_only(), 10, t0);
    record_n(&mut d, 0, Outcome::ServerError, 5, t0);
    assert!(d.is_ejected(0, t0));
    // Stragglers sent before the ejection fail too: no event, no run.
    assert!(record_n(&mut d, 0, Outcome::ServerError, 20, t0 + MS).is_empty());
    let status = d.status(0, t0 + MS).expect("known");
    assert_eq!(status.consecutive_errors, 0);
    assert_eq!(status.times_ejected, 1);
    // They still count in the interval window.
    assert_eq!((status.requests, status.failures), (25, 25));
}

#[test]
fn outcomes_for_unknown_endpoints_are_ignored() {
    let t0 = Instant::now();
    let mut d = detector(consecutive_only(), 2, t0);
    assert!(record_n(&mut d, 7, Outcome::ServerError, 10, t0).is_empty());
    assert!(!d.is_ejected(7, t0));
    assert_eq!(d.status(7, t0), None);
}
