use super::*;

#[test]
fn a_single_endpoint_is_never_ejected() {
    let t0 = Instant::now();
    let config = OutlierConfig {
        max_ejection_percent: 100,
        ..consecutive_only()
    };
    let mut d = detector(config, 1, t0);
    let events = record_n(&mut d, 0, Outcome::GatewayError, 5, t0);
    assert_eq!(
        events,
        vec![Event::EjectionSuppressed {
            id: 0,
            reason: EjectionReason::ConsecutiveErrors { count: 5, slow: 0 },
            ejected: 0,
            max_ejected: 0,
        }]
    );
    assert!(!d.is_ejected(0, t0));
}

#[test]
fn of_two_endpoints_one_may_be_ejected_even_at_ten_percent() {
    let t0 = Instant::now();
    let mut d = detector(consecutive_only(), 2, t0);
    ejected(record_n(&mut d, 0, Outcome::ServerError, 5, t0).first());
    let events = record_n(&mut d, 1, Outcome::ServerError, 5, t0);
    assert!(matches!(
        events.as_slice(),
        [Event::EjectionSuppressed {
            id: 1,
            ejected: 1,
            max_ejected: 1,
            ..
        }]
    ));
    assert!(!d.is_ejected(1, t0));
}

#[test]
fn of_three_endpoints_at_most_two_go_even_at_one_hundred_percent() {
    let t0 = Instant::now();
    let config = OutlierConfig {
        max_ejection_percent: 100,
        ..consecutive_only()
    };
    let mut d = detector(config, 3, t0);
    for id in 0..2 {
        ejected(record_n(&mut d, id, Outcome::ServerError, 5, t0).first());
    }
    let events = record_n(&mut d, 2, Outcome::ServerError, 5, t0);
    assert!(matches!(
        events.as_slice(),
        [Event::EjectionSuppressed {
            id: 2,
            ejected: 2,
            max_ejected: 2,
            ..
        }]
    ));
    assert_eq!(d.ejected_count(t0), 2);
}

#[test]
fn of_three_endpoints_at_ten_percent_only_one_goes() {
    let t0 = Instant::now();
    let mut d = detector(consecutive_only(), 3, t0);
    ejected(record_n(&mut d, 0, Outcome::ServerError, 5, t0).first());
    for id in 1..3 {
        let events = record_n(&mut d, id, Outcome::ServerError, 5, t0);
        assert!(matches!(
            events.as_slice(),
            [Event::EjectionSuppressed { .. }]
        ));
    }
    assert_eq!(d.ejected_count(t0), 1);
}

#[test]
fn zero_percent_turns_ejection_off() {
    let t0 = Instant::now();
    let config = OutlierConfig {
        max_ejection_percent: 0,
        ..consecutive_only()
    };
    let mut d = detector(config, 50, t0);
    let events = record_n(&mut d, 0, Outcome::ServerError, 5, t0);
    assert!(matches!(
        events.as_slice(),
        [Event::EjectionSuppressed { max_ejected: 0, .. }]
    ));
}

#[test]
fn a_suppressed_endpoint_must_fail_a_whole_run_again() {
    let t0 = Instant::now();
    let mut d = detector(consecutive_only(), 2, t0);
    let first = ejected(record_n(&mut d, 0, Outcome::ServerError, 5, t0).first());
    assert_eq!(record_n(&mut d, 1, Outcome::ServerError, 5, t0).len(), 1);
    d.tick(first.until);
    assert!(record_n(&mut d, 1, Outcome::ServerError, 4, first.until).is_empty());
    ejected(
        d.record(1, Outcome::ServerError, FAST, first.until)
            .as_ref(),
    );
}

#[test]
fn a_slot_freed_by_an_elapsed_ejection_can_be_used_before_tick() {
    let t0 = Instant::now();
    let mut d = detector(consecutive_only(), 2, t0);
    let first = ejected(record_n(&mut d, 0, Outcome::ServerError, 5, t0).first());
    // Endpoint 0's time is up (it routes again), so endpoint 1 may take the slot.
    ejected(record_n(&mut d, 1, Outcome::ServerError, 5, first.until).first());
    assert_eq!(d.ejected_count(first.until), 1);
    assert_eq!(d.tick(first.until), vec![Event::Unejected(first)]);
}
