use super::*;

fn ms(value: u64) -> Duration {
    Duration::from_millis(value)
}

#[test]
fn counts_statuses_and_error_kinds_and_separates_ok_from_failed() {
    let mut recorder = Recorder::new(1, Duration::from_secs(1));
    recorder.record(0, ms(0), ms(1), Outcome::Status(200));
    recorder.record(0, ms(1), ms(1), Outcome::Status(200));
    recorder.record(0, ms(2), ms(1), Outcome::Status(302));
    recorder.record(0, ms(3), ms(1), Outcome::Status(503));
    recorder.record(0, ms(4), ms(1), Outcome::Error(ErrorKind::Reset));
    recorder.record(0, ms(5), ms(1), Outcome::Error(ErrorKind::Timeout));
    let total = recorder.summary(ms(10), ms(10)).total;
    assert_eq!(total.requests, 6);
    assert_eq!(total.ok, 3);
    assert_eq!(total.failed, 3);
    assert!((total.error_rate - 0.5).abs() < 1e-9);
    assert_eq!(total.statuses["200"], 2);
    assert_eq!(total.statuses["302"], 1);
    assert_eq!(total.statuses["503"], 1);
    assert_eq!(total.errors["reset"], 1);
    assert_eq!(total.errors["timeout"], 1);
    assert_eq!(total.errors["connect"], 0);
    assert_eq!(total.errors["protocol"], 0);
}

#[test]
fn percentiles_come_from_every_request_and_from_ok_ones_apart() {
    let mut recorder = Recorder::new(1, Duration::from_secs(1));
    for index in 1..=100 {
        recorder.record(0, ms(index), ms(index), Outcome::Status(200));
    }
    recorder.record(0, ms(101), Duration::from_secs(2), Outcome::Status(504));
    let total = recorder.summary(ms(200), ms(200)).total;
    let within = |value: u64, expected: u64| value.abs_diff(expected) <= expected / 500;
    assert!(
        within(total.latency_us.p50, 51_000),
        "{:?}",
        total.latency_us
    );
    assert!(
        within(total.latency_us.max, 2_000_000),
        "{:?}",
        total.latency_us
    );
    assert!(
        within(total.ok_latency_us.p50, 50_000),
        "{:?}",
        total.ok_latency_us
    );
    assert!(
        within(total.ok_latency_us.p99, 99_000),
        "{:?}",
        total.ok_latency_us
    );
    assert!(
        within(total.ok_latency_us.max, 100_000),
        "{:?}",
        total.ok_latency_us
    );
}

#[test]
fn each_class_is_counted_apart_and_in_the_total() {
    let mut recorder = Recorder::new(2, Duration::from_secs(1));
    recorder.record(0, ms(0), ms(1), Outcome::Status(200));
    recorder.record(1, ms(1), ms(1), Outcome::Status(503));
    recorder.record(1, ms(2), ms(1), Outcome::Status(503));
    let summary = recorder.summary(ms(3), ms(3));
    assert_eq!(summary.total.requests, 3);
    assert_eq!(summary.classes[0].ok, 1);
    assert_eq!(summary.classes[0].failed, 0);
    assert_eq!(summary.classes[1].ok, 0);
    assert_eq!(summary.classes[1].failed, 2);
}

#[test]
fn the_timeline_buckets_requests_by_when_they_were_due() {
    let mut recorder = Recorder::new(1, ms(500));
    recorder.record(0, ms(10), ms(5), Outcome::Status(200));
    // Due in the first interval, answered in the third: it counts where it was due.
    recorder.record(0, ms(499), ms(1200), Outcome::Error(ErrorKind::Timeout));
    recorder.record(0, ms(1600), ms(5), Outcome::Status(500));
    let timeline = recorder.summary(ms(2000), ms(2000)).timeline;
    assert_eq!(timeline.len(), 4);
    assert_eq!((timeline[0].ok, timeline[0].failed), (1, 1));
    assert!(timeline[0].p99_us >= 1_190_000, "{:?}", timeline[0]);
    assert_eq!((timeline[1].ok, timeline[1].failed), (0, 0));
    assert_eq!((timeline[3].ok, timeline[3].failed), (0, 1));
    assert!((timeline[3].t - 1.5).abs() < 1e-9);
}

#[test]
fn achieved_rate_is_sent_over_the_schedule_or_the_longer_time_sending_took() {
    let mut recorder = Recorder::new(1, Duration::from_secs(1));
    for index in 0..10 {
        recorder.sent(ms(index * 100), ms(1));
    }
    let summary = recorder.summary(Duration::from_secs(1), Duration::from_secs(2));
    assert!((summary.achieved_rate - 10.0).abs() < 1e-9);
    // The last request went out 1s late: 11 requests over 2s.
    recorder.sent(ms(1000), ms(1000));
    let summary = recorder.summary(Duration::from_secs(1), Duration::from_secs(3));
    assert!((summary.achieved_rate - 5.5).abs() < 1e-9);
    assert_eq!(summary.sent, 11);
    assert!(summary.send_delay_us.max >= 999_000);
}

#[test]
fn answer_rate_counts_whole_answers_until_the_last_one_arrived() {
    let mut recorder = Recorder::new(1, Duration::from_secs(1));
    for index in 0..9 {
        recorder.record(0, ms(index * 100), ms(10), Outcome::Status(200));
    }
    recorder.record(0, ms(900), ms(10), Outcome::Error(ErrorKind::Reset));
    let summary = recorder.summary(Duration::from_secs(1), Duration::from_secs(1));
    assert_eq!(summary.answered, 9);
    assert!((summary.answer_rate - 9.0).abs() < 1e-9);
    // A 503 is an answer too, and this one arrived 1s after the schedule ended.
    recorder.record(0, ms(900), ms(1100), Outcome::Status(503));
    let summary = recorder.summary(Duration::from_secs(1), Duration::from_secs(2));
    assert_eq!(summary.answered, 10);
    assert!((summary.answer_rate - 5.0).abs() < 1e-9);
}
