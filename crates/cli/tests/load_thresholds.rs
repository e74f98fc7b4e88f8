//! `blastwall load --expect`: the exit code says whether the run met its bounds (0), missed
//! one (3) or could not happen (2), and the report holds each verdict.

mod support;

use std::process::{Command, Output};

use serde_json::Value;
use support::Mock;

fn load(url: &str, flags: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_blastwall"))
        .arg("load")
        .arg(url)
        .args(flags)
        .output()
        .expect("blastwall load runs")
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "the report is JSON ({error}): {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

#[tokio::test]
async fn bounds_that_hold_exit_zero_and_each_verdict_is_in_the_report() {
    let mock = Mock::start("a", &[]);
    let output = load(
        &format!("http://{}/", mock.addr),
        &[
            "--rate",
            "200",
            "--requests",
            "40",
            "--json",
            "--expect",
            "errors<1%",
            "--expect",
            "p99<5s",
            "--expect",
            "rps>1",
        ],
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = json(&output);
    let verdicts = report["verdicts"].as_array().expect("verdicts");
    assert_eq!(verdicts.len(), 3, "{report}");
    assert!(
        verdicts.iter().all(|verdict| verdict["pass"] == true),
        "{verdicts:?}"
    );
    assert_eq!(verdicts[0]["expectation"], "errors<1.00%");
    assert_eq!(report["answered"], 40);
    assert!(
        report["answer_rate"].as_f64().unwrap_or(0.0) > 1.0,
        "{report}"
    );
}

#[tokio::test]
async fn a_bound_the_run_misses_exits_three_and_the_table_marks_it() {
    let mock = Mock::start("a", &["--failure-rate", "1.0", "--failure-status", "503"]);
    let output = load(
        &format!("http://{}/", mock.addr),
        &[
            "--rate",
            "200",
            "--requests",
            "20",
            "--expect",
            "errors<1%",
            "--expect",
            "p99<5s",
        ],
    );
    assert_eq!(output.status.code(), Some(3));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.lines().any(|line| line.contains("errors<1.00%")
            && line.contains("100.00%")
            && line.ends_with("FAIL")),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|line| line.contains("p99<5000.00ms") && line.ends_with("pass")),
        "{stdout}"
    );
    assert!(stdout.contains("1 of 2 expectations failed"), "{stdout}");
}

#[test]
fn a_run_that_cannot_happen_exits_two_with_the_reason() {
    let output = load(
        "ftp://127.0.0.1/",
        &["--rate", "10", "--expect", "errors<1%"],
    );
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("only http:// and https:// URLs"),
        "{stderr}"
    );
}

#[test]
fn a_malformed_bound_is_refused_before_any_load_with_what_was_expected() {
    let output = load(
        "http://127.0.0.1:1/",
        &["--rate", "10", "--expect", "p99<fast"],
    );
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("a duration like `300ms`"), "{stderr}");
    assert!(!stderr.contains("load started"), "{stderr}");
}
