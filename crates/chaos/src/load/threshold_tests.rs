use std::time::Duration;

use super::*;
use crate::load::stats::{ErrorKind, Outcome, Recorder};

fn parse(text: &str) -> Threshold {
    text.parse()
        .unwrap_or_else(|error| panic!("{text}: {error}"))
}

/// A run of 100 requests over 1s: latencies 1..=100ms, the last 3 answered 503.
fn summary() -> Summary {
    let mut recorder = Recorder::new(1, Duration::from_secs(1));
    for index in 1..=100u64 {
        let status = if index > 97 { 503 } else { 200 };
        let due = Duration::from_millis(index * 9);
        recorder.record(
            0,
            due,
            Duration::from_millis(index),
            Outcome::Status(status),
        );
    }
    recorder.summary(Duration::from_secs(1), Duration::from_secs(1))
}

#[test]
fn a_latency_threshold_takes_a_percentile_a_comparison_and_a_duration() {
    let threshold = parse("p99<300ms");
    assert_eq!(threshold.figure, Figure::Latency(990));
    assert_eq!(threshold.comparison, Comparison::Below);
    assert!((threshold.bound - 300_000.0).abs() < 1e-9);
    assert!((parse("p99.9 <= 1.5s").bound - 1_500_000.0).abs() < 1e-9);
    assert!((parse("max<800us").bound - 800.0).abs() < 1e-9);
    assert_eq!(parse("P50<1ms").figure, Figure::Latency(500));
}

#[test]
fn an_error_threshold_takes_a_percentage_or_a_fraction() {
    let percent = parse("errors<1%");
    assert_eq!(percent.figure, Figure::ErrorRate);
    assert!((percent.bound - 0.01).abs() < 1e-12);
    assert!((parse("errors<=0.05").bound - 0.05).abs() < 1e-12);
}

#[test]
fn an_rps_threshold_takes_answers_per_second() {
    let rps = parse("rps>900");
    assert_eq!(rps.figure, Figure::AnswerRate);
    assert_eq!(rps.comparison, Comparison::Above);
    assert!((rps.bound - 900.0).abs() < 1e-9);
    assert_eq!(parse("rps>=10").comparison, Comparison::AtLeast);
}

#[test]
fn a_malformed_threshold_says_what_was_expected() {
    let error = |text: &str| text.parse::<Threshold>().expect_err(text).to_string();
    assert!(error("p99 300ms").contains("expected FIGURE<BOUND"));
    assert!(error("p42<3ms").contains("unknown figure \"p42\""));
    assert!(error("p99<300").contains("a duration like `300ms`"));
    assert!(error("p99<fast").contains("a duration"));
    assert!(error("p99<-1ms").contains("a duration"));
    assert!(error("errors<150%").contains("at most 100%"));
    assert!(error("errors<lots").contains("a share"));
    assert!(error("rps>many").contains("answers per second"));
    assert!(error("rps>").contains("answers per second"));
}

#[test]
fn a_threshold_shows_itself_normalized() {
    assert_eq!(parse(" p99 < 300ms ").to_string(), "p99<300.00ms");
    assert_eq!(parse("errors<1%").to_string(), "errors<1.00%");
    assert_eq!(parse("rps>=900").to_string(), "rps>=900.0/s");
}

#[test]
fn each_figure_is_judged_against_what_the_run_measured() {
    let summary = summary();
    let judge = |text: &str| parse(text).judge(&summary);
    assert!(judge("p99<150ms").pass);
    assert!(!judge("p99<50ms").pass);
    assert!(judge("p50<=51ms").pass);
    assert!(!judge("max<100ms").pass);
    assert!(judge("errors<5%").pass);
    assert!(!judge("errors<3%").pass, "3 of 100 failed: not below 3%");
    assert!(judge("errors<=3%").pass);
    let rps = judge("rps>50");
    assert!(rps.pass, "{rps:?}");
    assert!((rps.value - 100.0).abs() < 1.0, "{rps:?}");
    assert!(!judge("rps>900").pass);
}

#[test]
fn failed_requests_count_in_the_latency_percentiles() {
    let mut recorder = Recorder::new(1, Duration::from_secs(1));
    for _ in 0..10 {
        recorder.record(
            0,
            Duration::ZERO,
            Duration::from_secs(5),
            Outcome::Error(ErrorKind::Timeout),
        );
    }
    let summary = recorder.summary(Duration::from_secs(1), Duration::from_secs(5));
    assert!(!parse("p50<1s").judge(&summary).pass);
    // No answer at all: no answers per second.
    assert!(!parse("rps>0").judge(&summary).pass);
}

#[test]
fn the_verdict_table_marks_each_line_and_says_whether_all_held() {
    let summary = summary();
    let verdicts: Vec<_> = ["p99<150ms", "errors<1%"]
        .iter()
        .map(|text| parse(text).judge(&summary))
        .collect();
    let table = verdict_table(&verdicts);
    assert!(table.contains("p99<150.00ms"), "{table}");
    assert!(
        table.lines().any(|line| line.contains("errors<1.00%")
            && line.contains("3.00%")
            && line.ends_with("FAIL")),
        "{table}"
    );
    assert!(table.contains("1 of 2 expectations failed"), "{table}");
    assert!(verdict_table(&verdicts[..1]).contains("all 1 expectations held"));
}

#[test]
fn a_threshold_as_the_table_prints_it_parses_again() {
    // Found by the `load_threshold` fuzz target: `rps>1` printed as `rps>1.0/s`.
    for text in [
        "rps>1",
        "p99<=300ms",
        "errors<0.5%",
        "max<1.5s",
        "rps >= 900/s",
    ] {
        let threshold = parse(text);
        let again = parse(&threshold.to_string());
        assert_eq!(
            (again.figure, again.comparison),
            (threshold.figure, threshold.comparison)
        );
        assert!(
            (again.bound - threshold.bound).abs() <= threshold.bound * 1e-3,
            "{text}"
        );
    }
}
