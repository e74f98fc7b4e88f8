//! The open-file limit against the real binary, run under `ulimit`: the soft limit is raised
//! to the hard one at start, and a `max_connections` that cannot fit the limit is refused, at
//! start and at a reload (where the old config keeps serving).

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use http::StatusCode;
use support::{Mock, Process, admin_section, endpoint, get, listening_address};

fn config(mock: &Mock, max_connections: u32) -> String {
    format!(
        "{}\n[[listener]]\nname = \"public\"\nlisten = \"127.0.0.1:0\"\nmax_connections = {max_connections}\n\n[[route]]\ncluster = \"api\"\n\n[cluster.api]\nendpoints = [{}]\n",
        admin_section(""),
        endpoint(mock, "")
    )
}

/// Writes `config` in `folder` and runs the proxy on it under `ulimit {limit}`.
fn run(folder: &Path, limit: &str, config: &str) -> (Process, PathBuf, PathBuf) {
    let path = folder.join("blastwall.toml");
    std::fs::write(&path, config).expect("config written");
    let log = folder.join("stderr.log");
    let text = path.to_str().expect("utf-8").to_owned();
    let process = Process::spawn_limited(
        limit,
        &["run", "-c", &text, "--no-watch", "--log", "info"],
        &log,
    );
    (process, path, log)
}

/// The soft and hard `Max open files` of a process.
fn open_file_limits(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .expect("a Max open files line");
    let mut numbers = line.split_whitespace().skip(3);
    (
        numbers.next().unwrap_or_default().to_owned(),
        numbers.next().unwrap_or_default().to_owned(),
    )
}

#[test]
fn a_max_connections_that_cannot_fit_the_open_file_limit_is_refused_at_start() {
    let mock = Mock::start("a", &[]);
    let folder = tempfile::tempdir().expect("a folder");
    let (mut process, _, log) = run(folder.path(), "-n 256", &config(&mock, 1000));
    assert_eq!(
        process.wait_exit(Duration::from_secs(20)),
        Some(false),
        "the proxy started: {:?}",
        process.output
    );
    let log = std::fs::read_to_string(log).expect("the log");
    assert!(
        log.contains("max_connections = 1000 on listener \"public\" needs ~"),
        "{log}"
    );
    assert!(log.contains("the open-file limit is 256"), "{log}");
    assert!(log.contains("blastwall.toml:"), "not located: {log}");
}

#[test]
fn the_soft_open_file_limit_is_raised_to_the_hard_limit_at_start() {
    let mock = Mock::start("a", &[]);
    let folder = tempfile::tempdir().expect("a folder");
    // The soft limit alone is too low for 1000 connections; the hard one is not.
    let (mut process, _, _) = run(folder.path(), "-Sn 256", &config(&mock, 1000));
    process.wait_for_line("blastwall ready");
    let (soft, hard) = open_file_limits(process.pid());
    assert_eq!(soft, hard, "the soft limit was not raised");
    assert_ne!(soft, "256");
}

#[tokio::test]
async fn a_reload_raising_max_connections_past_the_limit_is_refused_and_the_old_config_serves() {
    let mock = Mock::start("a", &[]);
    let folder = tempfile::tempdir().expect("a folder");
    let (mut process, path, log) = run(folder.path(), "-n 512", &config(&mock, 50));
    let listener = listening_address(&process.wait_for_line("listener \"public\""));
    process.wait_for_line("blastwall ready");
    std::fs::write(&path, config(&mock, 5000)).expect("config written");
    process.signal("HUP");
    process.wait_for_line("config reload refused (1 error;");
    let url = format!("http://{listener}/work");
    assert_eq!(get(&url).await.0, StatusCode::OK);
    let log = std::fs::read_to_string(log).expect("the log");
    assert!(
        log.contains("max_connections = 5000 on listener \"public\"")
            && log.contains("the open-file limit is 512"),
        "{log}"
    );
}
