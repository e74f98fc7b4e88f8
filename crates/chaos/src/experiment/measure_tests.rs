use std::time::Duration;

use super::*;
use crate::load::ErrorKind;

fn sample(due_ms: u64, latency_ms: u64, outcome: Outcome) -> Sample {
    Sample {
        due: Duration::from_millis(due_ms),
        latency: Duration::from_millis(latency_ms),
        outcome,
        kind: 0,
        headers: 0,
        source: match outcome {
            Outcome::Status(_) => Source::Upstream,
            Outcome::Error(_) => Source::NoAnswer,
        },
        attempts: 1,
    }
}

fn ok(due_ms: u64) -> Sample {
    sample(due_ms, 10, Outcome::Status(200))
}

fn failed(due_ms: u64) -> Sample {
    sample(due_ms, 10, Outcome::Status(503))
}

/// Ten requests a second for `seconds`, failing while `fails(second)`.
fn load(seconds: u64, fails: impl Fn(u64) -> bool) -> Vec<Sample> {
    (0..seconds * 10)
        .map(|i| {
            let due = i * 100;
            if fails(due / 1000) {
                failed(due)
            } else {
                ok(due)
            }
        })
        .collect()
}

fn expect(metric: Metric, window: Window, scope: Scope) -> Expectation {
    Expectation {
        metric,
        window,
        scope,
    }
}

fn measured<'a>(
    samples: &'a [Sample],
    labels: &'a Labels,
    events: &'a [ProxyEvent],
) -> Measured<'a> {
    Measured {
        samples,
        labels,
        timing: Timing {
            load: 40.0,
            fault: Some((10.0, 30.0)),
        },
        events,
        recovered_floor: Some(0.99),
    }
}

#[test]
fn availability_counts_only_the_requests_due_in_the_fault() {
    let samples = load(40, |second| (10..30).contains(&second) && second % 2 == 0);
    let labels = Labels::default();
    let measured = measured(&samples, &labels, &[]);
    let during = measured.check(&expect(
        Metric::Availability { at_least: 0.99 },
        Window::Fault,
        Scope::All,
    ));
    assert_eq!(during.measured, Some(0.5));
    assert!(!during.passed);
    assert_eq!(during.measured_text, "50.0%");
    let before = measured.check_before(&expect(
        Metric::Availability { at_least: 0.99 },
        Window::Run,
        Scope::All,
    ));
    assert_eq!(before.measured, Some(1.0));
    assert!(before.passed);
    assert_eq!(before.window, "before");
}

#[test]
fn a_429_is_available_and_a_reset_is_not() {
    let samples = [
        sample(10_500, 1, Outcome::Status(429)),
        sample(10_600, 1, Outcome::Error(ErrorKind::Reset)),
    ];
    let labels = Labels::default();
    let check = measured(&samples, &labels, &[]).check(&expect(
        Metric::ErrorRate { at_most: 0.1 },
        Window::Fault,
        Scope::All,
    ));
    assert_eq!(check.measured, Some(0.5));
    assert!(!check.passed);
}

#[test]
fn a_route_scope_counts_only_its_request_kinds() {
    let mut samples = load(40, |_| false);
    for (index, sample) in samples.iter_mut().enumerate() {
        sample.kind = (index % 2) as u16;
        if sample.kind == 1 {
            sample.outcome = Outcome::Status(502);
        }
    }
    let labels = Labels {
        routes: vec![Some("checkout".into()), Some("payments".into())],
        classes: vec![],
    };
    let measured = measured(&samples, &labels, &[]);
    let checkout = measured.check(&expect(
        Metric::Availability { at_least: 0.999 },
        Window::Fault,
        Scope::Route("checkout".into()),
    ));
    assert!(checkout.passed, "{checkout:?}");
    let missing = measured.check(&expect(
        Metric::Availability { at_least: 0.999 },
        Window::Fault,
        Scope::Route("catalog".into()),
    ));
    assert!(!missing.passed);
    assert_eq!(missing.measured_text, "no requests");
}

#[test]
fn a_class_is_the_priority_header_sent_else_normal() {
    let mut samples = load(40, |_| false);
    for (index, sample) in samples.iter_mut().enumerate() {
        if index % 4 == 0 {
            sample.headers = 0b10;
            sample.latency = Duration::from_millis(500);
        }
    }
    let labels = Labels {
        routes: vec![],
        classes: vec![None, Some("high".into())],
    };
    let measured = measured(&samples, &labels, &[]);
    let high = measured.check(&expect(
        Metric::Latency {
            quantile: Quantile::P50,
            at_most: Duration::from_millis(100),
        },
        Window::Run,
        Scope::Class("high".into()),
    ));
    assert_eq!(high.measured, Some(500.0));
    let normal = measured.check(&expect(
        Metric::Latency {
            quantile: Quantile::P99,
            at_most: Duration::from_millis(100),
        },
        Window::Run,
        Scope::Class("normal".into()),
    ));
    assert_eq!(normal.measured, Some(10.0));
    assert!(normal.passed);
}

#[test]
fn latency_quantiles_are_nearest_rank_over_every_request() {
    let samples: Vec<Sample> = (1..=100)
        .map(|ms| sample(10_000 + ms, ms, Outcome::Status(200)))
        .collect();
    let labels = Labels::default();
    let measured = measured(&samples, &labels, &[]);
    let p95 = |at_most| {
        measured.check(&expect(
            Metric::Latency {
                quantile: Quantile::P95,
                at_most: Duration::from_millis(at_most),
            },
            Window::Fault,
            Scope::All,
        ))
    };
    assert_eq!(p95(95).measured, Some(95.0));
    assert!(p95(95).passed);
    assert!(!p95(94).passed);
}

#[test]
fn fallback_share_counts_the_kind_asked_for() {
    let mut samples = load(40, |_| false);
    for (index, sample) in samples.iter_mut().enumerate() {
        sample.source = match index % 4 {
            0 | 1 => Source::Fallback(FallbackKind::Static),
            2 => Source::Fallback(FallbackKind::Cluster),
            _ => Source::Upstream,
        };
    }
    let labels = Labels::default();
    let measured = measured(&samples, &labels, &[]);
    let share = |kind: Option<&str>| {
        measured
            .check(&expect(
                Metric::FallbackShare {
                    kind: kind.map(Into::into),
                    at_least: Some(0.6),
                    at_most: None,
                },
                Window::Fault,
                Scope::All,
            ))
            .measured
    };
    assert_eq!(share(Some("static")), Some(0.5));
    assert_eq!(share(Some("cluster")), Some(0.25));
    assert_eq!(share(None), Some(0.75));
}

#[test]
fn statuses_name_what_was_outside_the_allowed_ones() {
    let samples = [
        sample(10_100, 1, Outcome::Status(200)),
        sample(10_200, 1, Outcome::Status(504)),
        sample(10_300, 1, Outcome::Status(504)),
        sample(10_400, 1, Outcome::Error(ErrorKind::Timeout)),
    ];
    let labels = Labels::default();
    let check = measured(&samples, &labels, &[]).check(&expect(
        Metric::Statuses {
            allowed: vec![200, 503],
        },
        Window::Fault,
        Scope::All,
    ));
    assert!(!check.passed);
    assert_eq!(check.measured_text, "504 ×2, no answer ×1");
    assert_eq!(check.bound, "only 200, 503");
}

#[test]
fn retry_amplification_ignores_requests_that_sent_nothing_upstream() {
    let mut samples = load(40, |_| false);
    for (index, sample) in samples.iter_mut().enumerate() {
        sample.attempts = match index % 3 {
            0 => 0,
            1 => 1,
            _ => 2,
        };
    }
    let labels = Labels::default();
    let check = measured(&samples, &labels, &[]).check(&expect(
        Metric::RetryAmplification { at_most: 1.0 },
        Window::Fault,
        Scope::All,
    ));
    assert_eq!(check.measured, Some(1.5));
    assert!(!check.passed);
}

fn event(t: f64, kind: &str) -> ProxyEvent {
    ProxyEvent {
        t,
        kind: kind.into(),
        target: "payments/127.0.0.1:1".into(),
        detail: String::new(),
        failure: true,
    }
}

#[test]
fn time_to_detect_is_the_first_matching_event_after_the_fault_starts() {
    let samples = load(40, |_| false);
    let labels = Labels::default();
    let events = [
        event(5.0, "breaker_opened"),
        event(11.5, "endpoint_ejected"),
        event(12.25, "breaker_opened"),
    ];
    let measured = measured(&samples, &labels, &events);
    let detect = |signal, at_most| {
        measured.check(&expect(
            Metric::TimeToDetect {
                signal,
                at_most: Duration::from_secs(at_most),
            },
            Window::Fault,
            Scope::All,
        ))
    };
    let breaker = detect(Signal::BreakerOpen, 2);
    assert_eq!(breaker.measured, Some(2.25));
    assert!(!breaker.passed);
    assert!(detect(Signal::EndpointEjected, 2).passed);
    let never = Measured {
        events: &[],
        ..measured
    }
    .check(&expect(
        Metric::TimeToDetect {
            signal: Signal::BreakerOpen,
            at_most: Duration::from_secs(60),
        },
        Window::Fault,
        Scope::All,
    ));
    assert_eq!(never.measured_text, "never");
    assert!(!never.passed);
}

fn recover(samples: &[Sample]) -> Check {
    let labels = Labels::default();
    measured(samples, &labels, &[]).check(&expect(
        Metric::TimeToRecover {
            at_most: Duration::from_secs(5),
        },
        Window::Recovery,
        Scope::All,
    ))
}

#[test]
fn time_to_recover_is_from_the_fault_end_to_the_last_bad_second() {
    let check = recover(&load(40, |second| (10..33).contains(&second)));
    assert_eq!(check.measured, Some(3.0));
    assert!(check.passed);
    // A bad second after good ones counts: recovery is for good.
    let check = recover(&load(40, |second| {
        (10..30).contains(&second) || second == 36
    }));
    assert_eq!(check.measured, Some(7.0));
    assert!(!check.passed);
}

#[test]
fn a_system_failing_to_the_end_has_not_recovered() {
    let check = recover(&load(40, |second| second >= 10));
    assert_eq!(check.measured_text, "not recovered");
    assert!(!check.passed);
    let at_once = recover(&load(40, |second| (10..30).contains(&second)));
    assert_eq!(at_once.measured, Some(0.0));
}

#[test]
fn a_fault_never_injected_fails_its_checks_without_a_figure() {
    let samples = load(40, |_| false);
    let labels = Labels::default();
    let measured = Measured {
        timing: Timing {
            load: 40.0,
            fault: None,
        },
        ..measured(&samples, &labels, &[])
    };
    let check = measured.check(&expect(
        Metric::Availability { at_least: 0.5 },
        Window::Fault,
        Scope::All,
    ));
    assert!(!check.passed);
    assert_eq!(check.measured, None);
}

#[test]
fn the_timeline_has_a_point_per_second_and_each_request_in_one_source() {
    let mut samples = load(3, |second| second == 1);
    samples[0].source = Source::Fallback(FallbackKind::Static);
    let labels = Labels::default();
    let measured = Measured {
        timing: Timing {
            load: 3.0,
            fault: Some((1.0, 2.0)),
        },
        ..measured(&samples, &labels, &[])
    };
    let timeline = measured.timeline();
    assert_eq!(timeline.len(), 3);
    assert_eq!(timeline[1].error_rate, 1.0);
    assert_eq!(timeline[0].sources.fallback_static, 1);
    for point in &timeline {
        let s = point.sources;
        let total = s.upstream
            + s.fallback_static
            + s.fallback_cluster
            + s.fallback_stale
            + s.shed
            + s.failed;
        assert_eq!(total, point.requests);
    }
    assert_eq!(timeline[2].p99_ms, Some(10.0));
    assert_eq!(measured.totals().requests, 30);
}

#[test]
fn the_steady_state_after_is_the_load_tail_as_long_as_before() {
    let timing = Timing {
        load: 40.0,
        fault: Some((10.0, 30.0)),
    };
    assert_eq!(timing.before(), (0.0, 10.0));
    assert_eq!(timing.after(), (30.0, 40.0));
    let short = Timing {
        load: 40.0,
        fault: Some((5.0, 20.0)),
    };
    assert_eq!(short.after(), (35.0, 40.0));
}

#[test]
fn a_request_in_flight_when_the_fault_came_is_not_the_steady_states() {
    // Due just before the fault, answered (502: its upstream killed under it) after it began.
    let mut samples = load(40, |_| false);
    samples.push(sample(9_990, 30, Outcome::Status(502)));
    let labels = Labels::default();
    let measured = measured(&samples, &labels, &[]);
    let before = measured.check_before(&expect(
        Metric::Availability { at_least: 1.0 },
        Window::Run,
        Scope::All,
    ));
    assert!(before.passed, "{before:?}");
    let run = measured.check(&expect(
        Metric::Availability { at_least: 1.0 },
        Window::Run,
        Scope::All,
    ));
    assert!(!run.passed, "the whole run still counts it");
}

#[test]
fn a_load_of_a_hundred_years_stopped_early_is_measured_up_to_its_last_request() {
    // The spec accepts a load of "100 years"; Ctrl-C after 40 s leaves 40 s of requests.
    let samples = load(40, |second| (10..13).contains(&second));
    let labels = Labels::default();
    let measured = Measured {
        timing: Timing {
            load: Duration::from_secs(100 * 365 * 24 * 3600).as_secs_f64(),
            fault: Some((10.0, 12.0)),
        },
        ..measured(&samples, &labels, &[])
    };
    let started = std::time::Instant::now();
    assert_eq!(measured.timeline().len(), 40);
    let check = measured.check(&expect(
        Metric::TimeToRecover {
            at_most: Duration::from_secs(5),
        },
        Window::Recovery,
        Scope::All,
    ));
    assert_eq!(check.measured, Some(1.0));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no walk over the years"
    );
}

#[test]
fn the_seconds_after_the_last_request_count_as_held_as_before() {
    // Requests end at 35 s of a 40 s load (fault 10 s to 30 s): the walk back starts at
    // them, and finds the last bad second as a walk from 40 s would.
    let check = recover(&load(35, |second| (10..33).contains(&second)));
    assert_eq!(check.measured, Some(3.0));
    let ended_in_the_fault = recover(&load(20, |second| second >= 10));
    assert_eq!(ended_in_the_fault.measured, Some(0.0));
    let empty = recover(&[]);
    assert_eq!(
        empty.measured,
        Some(0.0),
        "no request at all: nothing failed"
    );
}

#[test]
fn a_fault_taken_away_after_the_loads_last_whole_second_is_judged_not_a_panic() {
    let samples = load(30, |_| false);
    let labels = Labels::default();
    let measured = Measured {
        timing: Timing {
            load: 30.5,
            fault: Some((10.0, 30.2)),
        },
        ..measured(&samples, &labels, &[])
    };
    let check = measured.check(&expect(
        Metric::TimeToRecover {
            at_most: Duration::from_secs(5),
        },
        Window::Recovery,
        Scope::All,
    ));
    assert_eq!(check.measured, Some(0.0), "{check:?}");
}

#[test]
fn retry_amplification_with_no_attempt_said_is_not_measured_and_fails() {
    let mut samples = load(40, |_| false);
    for sample in &mut samples {
        sample.attempts = 0;
    }
    let labels = Labels::default();
    let check = measured(&samples, &labels, &[]).check(&expect(
        Metric::RetryAmplification { at_most: 1.0 },
        Window::Fault,
        Scope::All,
    ));
    assert!(!check.passed);
    assert_eq!(check.measured_text, "not measured");
}

#[test]
fn an_event_after_the_fault_ended_is_not_its_detection() {
    let samples = load(40, |_| false);
    let labels = Labels::default();
    let events = [event(31.0, "breaker_opened")];
    let check = measured(&samples, &labels, &events).check(&expect(
        Metric::TimeToDetect {
            signal: Signal::BreakerOpen,
            at_most: Duration::from_secs(60),
        },
        Window::Fault,
        Scope::All,
    ));
    assert_eq!(check.measured_text, "never");
}
