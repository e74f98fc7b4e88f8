//! `blastwall demo` runs on its built-in setup and shows Blastwall containing each failure:
//! the shop's spec (`examples/specs/shop.toml`) run end to end, as `.ci/run` must run one.

use std::process::Command;

/// Runs a demo scenario and returns its stdout and its table rows split into words.
fn run_demo(scenario: &str) -> (String, Vec<Vec<String>>) {
    let output = Command::new(env!("CARGO_BIN_EXE_blastwall"))
        // No dashboard: the default admin port may be another test's or program's.
        .args([
            "demo", scenario, "--phase", "3s", "--rate", "40", "--admin", "off",
        ])
        .output()
        .expect("the demo runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rows = stdout
        .lines()
        .map(|line| {
            line.split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|words| {
            words
                .first()
                .and_then(|word| word.strip_suffix('s'))
                .is_some_and(|number| number.parse::<u32>().is_ok())
        })
        .collect();
    (stdout, rows)
}

fn count(row: &[String], column: usize) -> u32 {
    row[column].parse().expect("a count")
}

/// The table of issue #18, as the demo must give it back.
const ROWS: [&str; 4] = [
    "one zone down",
    "payment service down",
    "cache down",
    "analytics down",
];

#[test]
fn the_demo_proves_the_shops_four_failures_with_measured_verdicts_and_a_report() {
    let report = tempfile::tempdir().expect("a folder");
    let output = Command::new(env!("CARGO_BIN_EXE_blastwall"))
        // No dashboard on the default port: it may be another test's or program's.
        .args(["demo", "--quiet", "--admin", "off", "--report"])
        .arg(report.path())
        .output()
        .expect("the demo runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(
        output.status.code(),
        Some(0),
        "the demo's verdicts all hold:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for row in ROWS {
        assert!(stdout.contains(row), "the table has {row:?}:\n{stdout}");
    }
    for name in ["zone-down", "payments-down", "cache-down", "analytics-down"] {
        assert!(
            stdout.contains(&format!("✔ {name}: passed")),
            "{name}:\n{stdout}"
        );
    }
    assert!(
        !stdout.contains("No request failed"),
        "the fixed line is gone"
    );
    assert!(stdout.contains("verdict: PASSED"), "{stdout}");
    let html = report.path().join("report.html");
    assert!(
        stdout.contains(&html.display().to_string()),
        "it points at the report:\n{stdout}"
    );

    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(report.path().join("report.json")).expect("report.json"),
    )
    .expect("JSON");
    let experiments = json["experiments"].as_array().expect("experiments");
    let failures: Vec<&str> = experiments
        .iter()
        .filter_map(|e| e["failure"].as_str())
        .collect();
    assert_eq!(failures, ROWS);
    for experiment in experiments {
        assert!(
            experiment["fault"]["start_s"].as_f64().is_some(),
            "{experiment}"
        );
        let checks = experiment["expectations"].as_array().expect("checks");
        assert!(!checks.is_empty());
        for check in checks {
            // Each verdict printed is a figure the run measured, as the JSON holds it.
            let measured = check["measured_text"].as_str().expect("a figure");
            assert!(stdout.contains(measured), "{measured} printed:\n{stdout}");
        }
    }
    let kinds = |name: &str| -> Vec<String> {
        let experiment = experiments
            .iter()
            .find(|e| e["name"] == name)
            .expect("experiment");
        experiment["events"]
            .as_array()
            .expect("events")
            .iter()
            .filter_map(|event| event["kind"].as_str().map(str::to_owned))
            .collect()
    };
    assert!(kinds("zone-down").contains(&"endpoint_ejected".to_owned()));
    assert!(kinds("payments-down").contains(&"breaker_opened".to_owned()));
}

#[test]
fn library_demo_shows_the_breaker_opening_failing_fast_and_closing_after_recovery() {
    let (stdout, rows) = run_demo("library");
    assert_eq!(rows.len(), 12, "three rows per phase:\n{stdout}");
    for healthy in &rows[..3] {
        assert_eq!(
            count(healthy, 3),
            count(healthy, 2),
            "every call answered while healthy:\n{stdout}"
        );
    }
    let fast_failed_while_broken: u32 = rows[3..9].iter().map(|row| count(row, 5)).sum();
    assert!(
        fast_failed_while_broken > 0,
        "the open breaker failed calls fast:\n{stdout}"
    );
    assert!(
        stdout.contains("closed → open"),
        "the breaker opened:\n{stdout}"
    );
    assert!(
        stdout.contains("→ closed"),
        "the breaker closed after recovery:\n{stdout}"
    );
    assert_eq!(
        rows.last().and_then(|row| row.last()).map(String::as_str),
        Some("closed"),
        "{stdout}"
    );
}
