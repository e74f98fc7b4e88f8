//! `blastwall load --rate max`: a closed loop over `--connections`, as fast as they are
//! answered, bounded by a count or a time, and reported as a closed loop. Counts only:
//! how fast it goes is for the benchmarks.

mod support;

use std::process::{Command, Output};

use serde_json::Value;
use support::Mock;

fn load(url: &str, flags: &[&str]) -> (Output, Value) {
    let output = Command::new(env!("CARGO_BIN_EXE_blastwall"))
        .args(["load", url, "--json", "--rate", "max"])
        .args(flags)
        .output()
        .expect("blastwall load runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("load started: closed loop"), "{stderr}");
    let report = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("the report is JSON ({error}): {stderr}"));
    (output, report)
}

#[tokio::test]
async fn the_max_rate_sends_exactly_the_requests_asked_and_reports_a_closed_loop() {
    let mock = Mock::start("a", &[]);
    let (output, report) = load(
        &format!("http://{}/", mock.addr),
        &["--connections", "3", "--requests", "60"],
    );
    assert!(output.status.success());
    assert_eq!(report["mode"], "closed", "{report}");
    assert_eq!(report["rate"], Value::Null);
    assert_eq!(report["sent"], 60);
    assert_eq!(report["answered"], 60);
    assert_eq!(report["total"]["statuses"]["200"], 60);
    assert!(
        report["answer_rate"].as_f64().unwrap_or(0.0) > 0.0,
        "{report}"
    );
    assert_eq!(mock.stats().await["requests"], 60);
}

#[tokio::test]
async fn a_max_rate_run_bounded_by_time_ends_and_its_thresholds_are_judged() {
    let mock = Mock::start("a", &[]);
    let (output, report) = load(
        &format!("http://{}/", mock.addr),
        &[
            "--connections",
            "2",
            "--duration",
            "300ms",
            "--expect",
            "rps>1",
            "--expect",
            "errors<1%",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{report}");
    let answered = report["answered"].as_u64().unwrap_or(0);
    assert!(answered > 0, "{report}");
    assert_eq!(report["requests"], answered, "every request answered");
    assert_eq!(mock.stats().await["requests"], answered);
}

#[tokio::test]
async fn a_max_rate_run_against_failing_answers_fails_its_error_bound() {
    let mock = Mock::start("a", &["--failure-rate", "1.0", "--failure-status", "500"]);
    let (output, report) = load(
        &format!("http://{}/", mock.addr),
        &[
            "--connections",
            "2",
            "--requests",
            "20",
            "--expect",
            "errors<1%",
        ],
    );
    assert_eq!(output.status.code(), Some(3), "{report}");
    assert_eq!(report["verdicts"][0]["pass"], false);
    assert_eq!(report["total"]["statuses"]["500"], 20);
}
