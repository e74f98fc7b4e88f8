//! `blastwall mock --path` and `--phases` on the real binary: per-path behaviours and a
//! timetable given on the command line, and the errors that name the flag at fault.

mod support;

use std::process::Command;
use std::time::Duration;

use http::StatusCode;
use support::{Mock, eventually, get};

/// What `blastwall mock` with `flags` prints to stderr when it refuses to start.
fn refusal(flags: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_blastwall"))
        .arg("mock")
        .args(flags)
        .output()
        .expect("blastwall runs");
    assert!(!output.status.success(), "it started with {flags:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn path_flags_give_their_prefixes_their_own_behaviour_and_the_longest_wins() {
    let mock = Mock::start(
        "paths",
        &[
            "--status",
            "202",
            "--path",
            r#"/orders={"status":503}"#,
            "--path",
            r#"/orders/fast={"status":200,"body":"fast\n"}"#,
        ],
    );
    let answer = |path: &str| {
        let url = format!("http://{}{path}", mock.addr);
        async move { get(&url).await }
    };
    assert_eq!(answer("/orders/1").await.0, StatusCode::SERVICE_UNAVAILABLE);
    let (status, _, body) = answer("/orders/fast/1").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "fast\n"));
    assert_eq!(
        answer("/users").await.0,
        StatusCode::ACCEPTED,
        "the flags' behaviour"
    );
}

#[test]
fn a_malformed_path_flag_is_refused_saying_what_was_expected() {
    let no_json = refusal(&["--path", "/orders"]);
    assert!(no_json.contains("expected PREFIX=JSON"), "{no_json}");
    let no_slash = refusal(&["--path", r#"orders={"status":503}"#]);
    assert!(no_slash.contains("must start with '/'"), "{no_slash}");
    let misspelt = refusal(&["--path", r#"/orders={"statuss":503}"#]);
    assert!(
        misspelt.contains("--path") && misspelt.contains("`statuss`"),
        "{misspelt}"
    );
    let bad_status = refusal(&["--path", r#"/orders={"status":42}"#]);
    assert!(bad_status.contains("got 42"), "{bad_status}");
}

#[tokio::test]
async fn a_phases_file_runs_its_timetable_from_the_start() {
    let folder = tempfile::tempdir().expect("a temporary folder");
    let script = folder.path().join("phases.json");
    std::fs::write(
        &script,
        r#"[
            {"behaviour": {"status": 200}, "for": "300ms"},
            {"behaviour": {"status": 503}, "for": "1h"}
        ]"#,
    )
    .expect("written");
    let script = script.to_str().expect("utf-8");
    let mock = Mock::start("scripted", &["--phases", script, "--after-phases", "loop"]);
    let (_, _, current) = get(&format!("http://{}/_mock/behaviour", mock.addr)).await;
    let current: serde_json::Value = serde_json::from_str(&current).expect("JSON");
    assert_eq!(
        current["phases"].as_array().map(Vec::len),
        Some(2),
        "{current}"
    );
    assert_eq!(current["after_phases"], "loop");

    let url = format!("http://{}/", mock.addr);
    let failing = eventually(Duration::from_secs(10), || async {
        get(&url).await.0 == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    assert!(failing, "the second phase came");
    assert_eq!(mock.stats().await["phase"], 1);
}

#[test]
fn a_bad_phases_file_is_refused_naming_the_file_and_the_place() {
    let folder = tempfile::tempdir().expect("a temporary folder");
    let misspelt = folder.path().join("misspelt.json");
    std::fs::write(&misspelt, r#"[{"behaviour": {}, "fr": "1s"}]"#).expect("written");
    let message = refusal(&["--phases", misspelt.to_str().expect("utf-8")]);
    assert!(message.contains("invalid --phases"), "{message}");
    assert!(message.contains("misspelt.json"), "{message}");
    assert!(
        message.contains("`fr`") && message.contains("line 1 column"),
        "{message}"
    );

    let instant = folder.path().join("instant.json");
    std::fs::write(&instant, r#"[{"behaviour": {}, "for": "0s"}]"#).expect("written");
    let message = refusal(&["--phases", instant.to_str().expect("utf-8")]);
    assert!(
        message.contains("phases[0].for must be more than zero"),
        "{message}"
    );

    let missing = folder.path().join("missing.json");
    let message = refusal(&["--phases", missing.to_str().expect("utf-8")]);
    assert!(message.contains("cannot read --phases"), "{message}");
}

#[test]
fn after_phases_without_phases_is_refused() {
    let message = refusal(&["--after-phases", "loop"]);
    assert!(message.contains("--phases <FILE>"), "{message}");
}
