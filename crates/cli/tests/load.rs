//! `blastwall load` against `blastwall mock`: every scheduled request is accounted for,
//! by status, error kind and traffic class. Counts only: benchmarks measure speed, tests
//! never do.

mod support;

use std::process::Command;

use serde_json::Value;
use support::Mock;

/// Runs `blastwall load --json` with these flags and returns its report.
fn load(url: &str, flags: &[&str]) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_blastwall"))
        .arg("load")
        .arg(url)
        .arg("--json")
        .args(flags)
        .output()
        .expect("blastwall load runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "blastwall load failed: {stderr}");
    assert!(
        stderr.contains("load started"),
        "no start line on stderr: {stderr}"
    );
    serde_json::from_slice(&output.stdout).expect("the report is JSON")
}

fn count(value: &Value) -> u64 {
    value.as_u64().unwrap_or(0)
}

#[tokio::test]
async fn every_request_is_counted_by_status_and_matches_what_the_upstream_answered() {
    let mock = Mock::start("a", &["--failure-rate", "0.3", "--failure-status", "503"]);
    let url = format!("http://{}/", mock.addr);
    let report = load(
        &url,
        &["--rate", "200", "--requests", "120", "--connections", "4"],
    );
    let total = &report["total"];
    assert_eq!(count(&report["requests"]), 120);
    assert_eq!(count(&report["sent"]), 120);
    assert_eq!(count(&total["requests"]), 120);
    let (ok, unavailable) = (
        count(&total["statuses"]["200"]),
        count(&total["statuses"]["503"]),
    );
    assert_eq!(ok + unavailable, 120, "{total}");
    assert_eq!(count(&total["ok"]), ok);
    assert_eq!(count(&total["failed"]), unavailable);
    let stats = mock.stats().await;
    assert_eq!(count(&stats["requests"]), 120);
    assert_eq!(count(&stats["answered_by_class"][1]), ok);
    assert_eq!(count(&stats["answered_by_class"][4]), unavailable);
    let timeline_total: u64 = report["timeline"]
        .as_array()
        .expect("a timeline")
        .iter()
        .map(|point| count(&point["ok"]) + count(&point["failed"]))
        .sum();
    assert_eq!(timeline_total, 120);
}

#[tokio::test]
async fn a_header_mix_splits_traffic_by_weight_and_reports_each_class() {
    let mock = Mock::start("a", &[]);
    let url = format!("http://{}/", mock.addr);
    let report = load(
        &url,
        &[
            "--rate",
            "200",
            "--requests",
            "100",
            "--header-mix",
            "x-blastwall-priority=high:0.75,low:0.25",
        ],
    );
    assert_eq!(
        report["class_names"],
        serde_json::json!(["x-blastwall-priority=high", "x-blastwall-priority=low"])
    );
    let classes = report["classes"].as_array().expect("classes");
    assert_eq!(count(&classes[0]["requests"]), 75);
    assert_eq!(count(&classes[1]["requests"]), 25);
    assert_eq!(count(&classes[0]["statuses"]["200"]), 75);
    assert_eq!(count(&report["total"]["ok"]), 100);
}

#[tokio::test]
async fn a_post_with_a_body_and_extra_headers_is_sent_and_answered() {
    let mock = Mock::start("a", &[]);
    let url = format!("http://{}/_mock/echo", mock.addr);
    let report = load(
        &url,
        &[
            "--rate",
            "100",
            "--requests",
            "4",
            "-H",
            "x-test: yes",
            "--method",
            "POST",
            "--body",
            "hello",
        ],
    );
    assert_eq!(count(&report["total"]["statuses"]["200"]), 4, "{report}");
    assert_eq!(report["method"], "POST");
}

#[tokio::test]
async fn a_closed_port_counts_connect_errors_for_every_request() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address").port()
    };
    let report = load(
        &format!("http://127.0.0.1:{port}/"),
        &["--rate", "100", "--requests", "10", "--connections", "2"],
    );
    assert_eq!(count(&report["total"]["errors"]["connect"]), 10, "{report}");
    assert_eq!(count(&report["total"]["failed"]), 10);
}

#[tokio::test]
async fn an_upstream_that_never_answers_times_out_every_request_and_the_run_ends() {
    let mock = Mock::start("a", &["--mode", "hang"]);
    let url = format!("http://{}/", mock.addr);
    let report = load(
        &url,
        &[
            "--rate",
            "50",
            "--requests",
            "10",
            "--connections",
            "2",
            "--timeout",
            "200ms",
        ],
    );
    let total = &report["total"];
    assert_eq!(count(&total["errors"]["timeout"]), 10, "{total}");
    // Latency of a timeout counts from the due time: at least the timeout.
    assert!(count(&total["latency_us"]["p50"]) >= 200_000, "{total}");
}

#[tokio::test]
async fn a_reset_connection_counts_as_a_reset_and_a_new_connection_replaces_it() {
    let mock = Mock::start("a", &["--mode", "reset"]);
    let url = format!("http://{}/", mock.addr);
    let report = load(
        &url,
        &["--rate", "100", "--requests", "10", "--connections", "1"],
    );
    assert_eq!(
        count(&report["total"]["errors"]["reset"]),
        10,
        "{}",
        report["total"]
    );
    // Every request reached the mock: each reset connection was replaced.
    assert_eq!(count(&mock.stats().await["requests"]), 10);
}

#[tokio::test]
async fn no_progress_line_is_written_when_stderr_is_not_a_terminal() {
    let mock = Mock::start("a", &[]);
    // Long enough for a progress tick (each second) to have come.
    let output = Command::new(env!("CARGO_BIN_EXE_blastwall"))
        .args(["load", &format!("http://{}/", mock.addr)])
        .args(["--rate", "20", "--duration", "1500ms"])
        .output()
        .expect("blastwall load runs");
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains('\r') && !stderr.contains('\x1b'),
        "{stderr:?}"
    );
    assert!(!stderr.contains("answers/s"), "{stderr:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("answers/s"), "the report says it: {stdout}");
}
