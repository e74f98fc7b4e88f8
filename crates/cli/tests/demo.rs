//! `blastwall demo` runs on its built-in setup and shows Blastwall containing each failure.

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

#[test]
fn proxy_demo_routes_around_a_slow_replica_fails_over_and_fails_back() {
    let (stdout, rows) = run_demo("proxy");
    assert_eq!(rows.len(), 12, "three rows per phase:\n{stdout}");
    for row in &rows {
        assert_eq!(
            count(row, 4),
            0,
            "retries answer even the requests that meet a crash:\n{stdout}"
        );
    }
    // Columns: second, phase, requests, ok, errors, p50, p99, primary-a, primary-b, standby.
    for healthy in &rows[..3] {
        assert_eq!(
            count(healthy, 3),
            count(healthy, 2),
            "every request answered while healthy:\n{stdout}"
        );
        assert_eq!(
            count(healthy, 9),
            0,
            "the standby idles while the primaries are up:\n{stdout}"
        );
    }
    let slow_phase = &rows[5];
    assert!(
        count(slow_phase, 7) > count(slow_phase, 8),
        "the fast primary takes most traffic while the other is slow:\n{stdout}"
    );
    let failed_over = &rows[8];
    assert_eq!(
        count(failed_over, 3),
        count(failed_over, 2),
        "the standby answers everything:\n{stdout}"
    );
    assert_eq!(count(failed_over, 9), count(failed_over, 3), "{stdout}");
    let failed_back = &rows[11];
    assert_eq!(
        count(failed_back, 9),
        0,
        "traffic is back on the primaries:\n{stdout}"
    );
    assert_eq!(count(failed_back, 3), count(failed_back, 2), "{stdout}");
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
