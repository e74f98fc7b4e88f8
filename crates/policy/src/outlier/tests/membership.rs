use std::sync::Arc;

use super::*;

fn eject(d: &mut OutlierDetector, id: EndpointId, now: Instant) -> Ejection {
    ejected(record_n(d, id, Outcome::ServerError, 5, now).first())
}

#[test]
fn adding_an_endpoint_twice_keeps_its_state() {
    let t0 = Instant::now();
    let mut d = detector(consecutive_only(), 10, t0);
    let e = eject(&mut d, 4, t0);
    assert_eq!(d.add(4), Ok(false));
    assert_eq!(d.ejection(4, t0), Some(e));
    assert_eq!(d.len(), 10);
}

#[test]
fn removing_an_endpoint_keeps_the_state_of_the_others() {
    let t0 = Instant::now();
    let mut d = detector(consecutive_only(), 10, t0);
    let e = eject(&mut d, 3, t0);
    record_n(&mut d, 5, Outcome::ServerError, 2, t0);
    assert!(d.remove(0, t0).is_empty());
    assert!(!d.contains(0));
    assert_eq!(d.status(0, t0), None);
    assert_eq!(d.len(), 9);
    assert_eq!(d.ejection(3, t0), Some(e));
    assert_eq!(d.status(5, t0).expect("known").consecutive_errors, 2);
    assert_eq!(d.ids().collect::<Vec<_>>(), (1..10).collect::<Vec<_>>());
}

#[test]
fn removing_an_unknown_endpoint_changes_nothing() {
    let t0 = Instant::now();
    let mut d = detector(consecutive_only(), 3, t0);
    assert!(d.remove(42, t0).is_empty());
    assert_eq!(d.len(), 3);
}

#[test]
fn removing_the_last_healthy_endpoint_un_ejects_the_other() {
    let t0 = Instant::now();
    let mut d = detector(consecutive_only(), 2, t0);
    let e = eject(&mut d, 0, t0);
    assert_eq!(d.remove(1, t0 + MS), vec![Event::Unejected(e)]);
    assert!(!d.is_ejected(0, t0 + MS));
    assert!(d.tick(e.until).is_empty());
}

#[test]
fn shrinking_the_cluster_un_ejects_the_earliest_ending_first() {
    let t0 = Instant::now();
    let mut d = detector(consecutive_only(), 20, t0);
    assert_eq!(d.max_ejected(), 2);
    let early = eject(&mut d, 0, t0);
    let late = eject(&mut d, 1, t0 + Duration::from_secs(1));
    let now = t0 + Duration::from_secs(2);
    let mut events = Vec::new();
    for id in 10..20 {
        events.extend(d.remove(id, now));
    }
    assert_eq!(d.max_ejected(), 1);
    assert_eq!(events, vec![Event::Unejected(early)]);
    assert_eq!(d.ejection(1, now), Some(late));
}

#[test]
fn a_reused_slot_starts_fresh() {
    let t0 = Instant::now();
    let mut d = detector(consecutive_only(), 10, t0);
    eject(&mut d, 9, t0);
    d.remove(9, t0);
    assert_eq!(d.add(9), Ok(true));
    let status = d.status(9, t0).expect("known");
    assert_eq!(
        (status.ejection, status.times_ejected, status.multiplier),
        (None, 0, 0)
    );
    assert_eq!(d.ejected_count(t0), 0);
}

#[test]
fn ids_above_the_limit_are_rejected() {
    let t0 = Instant::now();
    let mut d = detector(consecutive_only(), 0, t0);
    assert_eq!(
        d.add(MAX_ENDPOINT_ID + 1),
        Err(EndpointIdTooLarge(MAX_ENDPOINT_ID + 1))
    );
    assert!(d.is_empty());
}

#[test]
fn a_new_config_with_a_lower_cap_un_ejects_and_keeps_state() {
    let t0 = Instant::now();
    let config = OutlierConfig {
        max_ejection_percent: 50,
        ..consecutive_only()
    };
    let mut d = detector(config, 4, t0);
    let first = eject(&mut d, 0, t0);
    let second = eject(&mut d, 1, t0 + MS);
    let events = d
        .set_config(consecutive_only(), t0 + MS)
        .expect("valid config");
    assert_eq!(events, vec![Event::Unejected(first)]);
    assert_eq!(d.ejection(1, t0 + MS), Some(second));
    let bad = OutlierConfig {
        interval: Duration::ZERO,
        ..consecutive_only()
    };
    assert_eq!(d.set_config(bad, t0), Err(OutlierConfigError::ZeroInterval));
    assert_eq!(d.config(), &consecutive_only());
}

#[test]
fn shared_detector_records_from_many_threads() {
    let t0 = Instant::now();
    let shared = Arc::new(SharedOutlierDetector::new(consecutive_only(), t0).expect("valid"));
    for id in 0..10 {
        shared.add(id).expect("small id");
    }
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let shared = shared.clone();
            std::thread::spawn(move || {
                (0..100)
                    .filter_map(|_| shared.record(0, Outcome::ServerError, FAST, t0))
                    .count()
            })
        })
        .collect();
    let events: usize = handles
        .into_iter()
        .map(|h| h.join().expect("no panic"))
        .sum();
    assert_eq!(events, 1, "one ejection, then stragglers");
    assert!(shared.is_ejected(0, t0));
    assert_eq!(shared.with(|d| d.ejected_count(t0)), 1);
    assert_eq!(shared.status(0, t0).expect("known").requests, 400);
    let until = shared.ejection(0, t0).expect("ejected").until;
    assert_eq!(shared.tick(until).len(), 1);
    assert!(shared.remove(0, until).is_empty());
    assert!(shared.set_config(OutlierConfig::default(), until).is_ok());
}
