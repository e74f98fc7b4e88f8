//! `blastwall demo` runs on its built-in setup and shows the breaker protecting the caller.

use std::process::Command;

#[test]
fn demo_shows_the_breaker_opening_failing_fast_and_closing_after_recovery() {
    let output = Command::new(env!("CARGO_BIN_EXE_blastwall"))
        .args(["demo", "--phase", "3s", "--rate", "40"])
        .output()
        .expect("the demo runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .filter(|words| {
            words.first().is_some_and(|word| {
                word.ends_with('s') && word[..word.len() - 1].parse::<u32>().is_ok()
            })
        })
        .collect();
    assert_eq!(rows.len(), 12, "three rows per phase:\n{stdout}");
    let column = |row: &Vec<&str>, index: usize| row[index].parse::<u32>().expect("a count");
    for healthy in &rows[..3] {
        assert_eq!(
            column(healthy, 3),
            column(healthy, 2),
            "every call answered while healthy:\n{stdout}"
        );
    }
    let fast_failed_while_broken: u32 = rows[3..9].iter().map(|row| column(row, 5)).sum();
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
    let last = rows.last().expect("rows");
    assert_eq!(
        last.last().copied(),
        Some("closed"),
        "ends closed:\n{stdout}"
    );
}
