use super::*;

const BASE: Duration = Duration::from_secs(30);
const INTERVAL: Duration = Duration::from_secs(10);

/// Ejects `id` with five errors at `now` and returns the ejection.
fn eject(d: &mut OutlierDetector, id: EndpointId, now: Instant) -> Ejection {
    let events = record_n(d, id, Outcome::ServerError, 5, now);
    ejected(events.first())
}

#[test]
fn ejection_ends_exactly_when_its_time_has_elapsed() {
    let t0 = Instant::now();
    let mut d = detector(consecutive_only(), 10, t0);
    let e = eject(&mut d, 0, t0);
    assert!(d.is_ejected(0, e.until - Duration::from_nanos(1)));
    assert!(!d.is_ejected(0, e.until));
    assert_eq!(d.ejected_count(e.until), 0);
    assert!(d.tick(e.until - MS).is_empty());
    assert_eq!(d.tick(e.until), vec![Event::Unejected(e)]);
    assert_eq!(d.status(0, e.until).expect("known").ejection, None);
    assert!(d.tick(e.until + MS).is_empty());
}

#[test]
fn an_elapsed_ejection_is_not_renewed_before_tick_reports_it() {
    let t0 = Instant::now();
    let mut d = detector(consecutive_only(), 10, t0);
    let e = eject(&mut d, 0, t0);
    // Routable again, but its errors start counting only once `tick` has un-ejected it.
    assert!(record_n(&mut d, 0, Outcome::ServerError, 10, e.until).is_empty());
    assert_eq!(d.tick(e.until), vec![Event::Unejected(e)]);
    assert_eq!(
        record_n(&mut d, 0, Outcome::ServerError, 5, e.until).len(),
        1
    );
}

#[test]
fn each_ejection_in_a_row_lasts_one_base_longer_up_to_the_max() {
    let t0 = Instant::now();
    let mut d = detector(consecutive_only(), 10, t0);
    let mut now = t0;
    let mut durations = Vec::new();
    for _ in 0..12 {
        let e = eject(&mut d, 0, now);
        durations.push((e.multiplier, e.duration().as_secs()));
        now = e.until;
        assert!(d.tick(now).contains(&Event::Unejected(e)));
    }
    let expected: Vec<(u32, u64)> = (1..=10)
        .map(|k| (k, 30 * u64::from(k)))
        .chain([(10, 300), (10, 300)])
        .collect();
    assert_eq!(durations, expected);
}

#[test]
fn max_equal_to_base_keeps_every_ejection_at_base() {
    let t0 = Instant::now();
    let config = OutlierConfig {
        max_ejection_time: BASE,
        ..consecutive_only()
    };
    let mut d = detector(config, 10, t0);
    let mut now = t0;
    for _ in 0..3 {
        let e = eject(&mut d, 0, now);
        assert_eq!((e.multiplier, e.duration()), (1, BASE));
        now = e.until;
        d.tick(now);
    }
}

#[test]
fn multiplier_falls_by_one_per_healthy_interval() {
    let t0 = Instant::now();
    let mut d = detector(consecutive_only(), 10, t0);
    let mut now = t0;
    for _ in 0..3 {
        now = eject(&mut d, 0, now).until;
        d.tick(now);
    }
    assert_eq!(d.status(0, now).expect("known").multiplier, 3);
    // The tick that un-ejected it was an evaluation (less than an interval since): no
    // decay yet. Then one step per interval.
    for expected in [2, 1, 0, 0] {
        now += INTERVAL;
        d.tick(now);
        assert_eq!(d.status(0, now).expect("known").multiplier, expected);
    }
    let e = eject(&mut d, 0, now);
    assert_eq!((e.multiplier, e.duration()), (1, BASE));
    assert_eq!(d.status(0, now).expect("known").times_ejected, 4);
}

#[test]
fn multiplier_does_not_fall_while_ejected() {
    let t0 = Instant::now();
    let mut d = detector(consecutive_only(), 10, t0);
    let e = eject(&mut d, 0, t0);
    for k in 1..=2 {
        d.tick(t0 + INTERVAL * k);
    }
    assert_eq!(d.status(0, t0 + 2 * INTERVAL).expect("known").multiplier, 1);
    d.tick(e.until);
    let again = eject(&mut d, 0, e.until);
    assert_eq!(again.multiplier, 2);
}
