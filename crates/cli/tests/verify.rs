//! `blastwall verify` end to end: real specs run against real processes on loopback, their
//! verdicts, exit codes, reports, and nothing left behind.
//!
//! The shop spec of `examples/specs/` runs whole in the demo's test (`tests/demo.rs`); the
//! specs here are small (a few seconds of load) and each shows one rule: an expectation the
//! system cannot meet fails with 3 and says why, a failure that cannot be caused is 2, a
//! spec with errors is 2 with its place, Ctrl-C takes the failure away.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{
    Mock, Proxy, Toxiproxy, admin_url, endpoint, eventually, get, route_config, toxiproxy_api,
};

/// Runs `blastwall verify SPEC --report REPORT`, asserts its exit code, returns its stdout
/// and stderr.
fn verify(spec: &Path, report: &Path, code: i32) -> (String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_blastwall"))
        .args(["verify", "--quiet", "--report"])
        .arg(report)
        .arg(spec)
        .output()
        .expect("verify runs");
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(output.status.code(), Some(code), "{stdout}\n{stderr}");
    (stdout, stderr)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A topology of one mock behind one route, and one failure of `cause` with `expect`.
fn small_topology(cause: &str, expect: &str) -> String {
    format!(
        r#"
name = "small"

[system]
blastwall = """
[admin]
listen = "127.0.0.1:0"

[[listener]]
name = "public"
listen = "127.0.0.1:0"

[[route]]
name = "api"
cluster = "api"
timeout = "500ms"

[cluster.api]
endpoints = [{{ address = "{{service:api}}" }}]
"""

[[system.service]]
name = "api"
behaviour = {{ latency = "1ms" }}

[load]
rate = 50
duration = "4s"

[[load.request]]
path = "/api/items"

[[steady_state]]
metric = "availability"
at_least = "99%"

[[failure]]
name = "api-down"
failure = "the api fails"
required_behaviour = "answers anyway"
acceptable_degradation = "none"
design = "none: this system has no fallback"
start = "1s"
duration = "2s"
cause = {cause}

{expect}
"#
    )
}

fn read_report(dir: &Path) -> serde_json::Value {
    let json = std::fs::read_to_string(dir.join("report.json")).expect("report.json written");
    serde_json::from_str(&json).expect("report.json is JSON")
}

#[test]
fn an_expectation_the_system_cannot_meet_fails_verify_with_3_and_says_why() {
    let dir = tempfile::tempdir().expect("a folder");
    let spec = dir.path().join("small.toml");
    std::fs::write(
        &spec,
        small_topology(
            r#"{ behaviour = { service = "api", failure_rate = 1.0, failure_status = 503 } }"#,
            "[[failure.expect]]\nmetric = \"availability\"\nduring = \"fault\"\nat_least = \"99%\"\n",
        ),
    )
    .expect("spec written");
    let report = dir.path().join("report");
    let (stdout, _) = verify(&spec, &report, 3);
    assert!(stdout.contains("✘ api-down: FAILED"), "{stdout}");
    assert!(
        stdout.contains("availability during the fault") && stdout.contains("(bound ≥ 99.0%)"),
        "{stdout}"
    );
    let json = read_report(&report);
    let experiment = &json["experiments"][0];
    assert_eq!(experiment["outcome"], "failed");
    let check = &experiment["expectations"][0];
    assert_eq!(check["passed"], false);
    let measured = check["measured"].as_f64().expect("a measured share");
    assert!(measured < 0.5, "the fault failed most requests: {check}");
    // The steady state held before and after: the mock got its own behaviour back.
    for phase in ["steady_before", "steady_after"] {
        assert_eq!(
            experiment[phase][0]["passed"], true,
            "{phase}: {experiment}"
        );
    }
    let junit = std::fs::read_to_string(report.join("junit.xml")).expect("junit.xml");
    assert!(junit.contains("<failure"), "{junit}");
    assert!(report.join("report.html").exists());
}

#[test]
fn a_spec_the_system_meets_passes_with_0_and_its_timeline_covers_the_load() {
    let dir = tempfile::tempdir().expect("a folder");
    let spec = dir.path().join("small.toml");
    let expect = "[[failure.expect]]\nmetric = \"p99\"\nduring = \"fault\"\nat_most = \"2s\"\n\n\
                  [[failure.expect]]\nmetric = \"statuses\"\nduring = \"fault\"\nallowed = [200]\n";
    std::fs::write(
        &spec,
        small_topology(
            r#"{ behaviour = { service = "api", latency = "50ms" } }"#,
            expect,
        ),
    )
    .expect("spec written");
    let report = dir.path().join("report");
    let (stdout, _) = verify(&spec, &report, 0);
    assert!(stdout.contains("✔ api-down: passed"), "{stdout}");
    assert!(stdout.contains("verdict: PASSED"), "{stdout}");
    let json = read_report(&report);
    let experiment = &json["experiments"][0];
    assert_eq!(experiment["outcome"], "passed");
    let timeline = experiment["timeline"].as_array().expect("a timeline");
    assert_eq!(timeline.len(), 4, "one point per second of load");
    let requests: u64 = timeline
        .iter()
        .map(|point| point["requests"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(requests, 200, "50/s for 4 s, every request judged");
    let p99 = experiment["expectations"][0]["measured"]
        .as_f64()
        .expect("a p99");
    assert!(p99 >= 50.0, "the mock's added latency shows: {p99} ms");
    let fault = &experiment["fault"];
    let (start, end) = (
        fault["start_s"].as_f64().unwrap_or(0.0),
        fault["end_s"].as_f64().unwrap_or(0.0),
    );
    assert!(
        (0.9..1.5).contains(&start) && (2.9..3.5).contains(&end),
        "{fault}"
    );
}

#[test]
fn a_spec_with_errors_is_refused_with_2_and_the_place_of_each() {
    let dir = tempfile::tempdir().expect("a folder");
    let spec = dir.path().join("bad.toml");
    std::fs::write(&spec, small_topology(r#"{ kill = "nobody" }"#, "")).expect("spec written");
    let (_, stderr) = verify(&spec, &dir.path().join("report"), 2);
    assert!(
        stderr.contains("bad.toml:") && stderr.contains("nobody"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("report/report.json").exists(),
        "nothing ran"
    );
}

/// A running system: a proxy with an admin API in front of a mock, started by the test.
fn running_system() -> (Mock, Proxy) {
    let mock = Mock::start("api", &[]);
    let proxy = Proxy::start(&route_config("", "", &[endpoint(&mock, "")]));
    (mock, proxy)
}

/// A spec against the running system: `load_s` seconds of load, the failure from 1 s to
/// 1 s before the end.
fn running_spec(proxy: &Proxy, extra_system: &str, load_s: u32, cause: &str) -> String {
    let duration = load_s - 2;
    format!(
        r#"
[system]
traffic = "{}"
admin = "{}"
{extra_system}

[load]
rate = 20
duration = "{load_s}s"

[[failure]]
name = "api-fails"
failure = "the api answers 503"
required_behaviour = "-"
acceptable_degradation = "-"
design = "-"
start = "1s"
duration = "{duration}s"
cause = {cause}
"#,
        proxy.url("/"),
        admin_url(proxy, "")
    )
}

#[test]
fn a_failure_that_cannot_be_caused_is_2_and_says_why() {
    let (_mock, proxy) = running_system();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let nobody = closed.local_addr().expect("its address");
    drop(closed);
    let dir = tempfile::tempdir().expect("a folder");
    let spec = dir.path().join("running.toml");
    std::fs::write(
        &spec,
        running_spec(
            &proxy,
            &format!("toxiproxy = \"http://{nobody}\""),
            4,
            r#"{ toxic = { proxy = "api", type = "latency", attributes = { latency = 100 } } }"#,
        ),
    )
    .expect("spec written");
    let report = dir.path().join("report");
    let (stdout, _) = verify(&spec, &report, 2);
    assert!(stdout.contains("causing the failure"), "{stdout}");
    assert_eq!(
        read_report(&report)["experiments"][0]["outcome"],
        "could_not_run"
    );
}

#[tokio::test]
async fn ctrl_c_during_the_fault_takes_it_away_and_exits_2() {
    let (_mock, proxy) = running_system();
    let dir = tempfile::tempdir().expect("a folder");
    let spec = dir.path().join("running.toml");
    std::fs::write(
        &spec,
        running_spec(
            &proxy,
            "",
            30,
            r#"{ fault = { route = "api", abort = { status = 503 } } }"#,
        ),
    )
    .expect("spec written");
    let mut child = Command::new(env!("CARGO_BIN_EXE_blastwall"))
        .args(["verify", "--quiet", "--report"])
        .arg(dir.path().join("report"))
        .arg(&spec)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("verify starts");
    let faults = admin_url(&proxy, "/admin/faults");
    let runtime_rules = |body: &str| {
        let json: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        json["runtime_rules"].as_u64().unwrap_or(u64::MAX)
    };
    let injected = eventually(Duration::from_secs(20), || async {
        let (_, _, body) = get(&faults).await;
        runtime_rules(&body) == 1
    })
    .await;
    assert!(injected, "verify made its fault rule");
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let exited = tokio::task::spawn_blocking(move || {
        let status = child.wait().expect("verify exits");
        let mut stdout = String::new();
        if let Some(out) = child.stdout.take() {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                stdout.push_str(&line);
                stdout.push('\n');
            }
        }
        (status, stdout)
    });
    let (status, stdout) = tokio::time::timeout(Duration::from_secs(20), exited)
        .await
        .expect("verify exits soon after Ctrl-C")
        .expect("joined");
    assert_eq!(status.code(), Some(2), "{stdout}");
    let (_, _, body) = get(&faults).await;
    assert_eq!(
        runtime_rules(&body),
        0,
        "the fault rule was deleted: {body}"
    );
    assert!(
        stdout.contains("stopped during this experiment"),
        "{stdout}"
    );
}

/// `examples/specs/running.toml` against the system its comment describes, started here:
/// a mock behind a `blastwall toxiproxy` proxy named "api", Blastwall in front with retries.
#[tokio::test]
async fn the_running_system_example_passes_with_a_real_toxic_and_a_fault_rule() {
    let mock = Mock::start("api", &[]);
    let toxiproxy = Toxiproxy::start();
    let through = toxiproxy_api::proxy(&toxiproxy, "api", mock.addr).await;
    let proxy = Proxy::start(&route_config(
        "timeout = \"2s\"\nper_try_timeout = \"500ms\"\n\n[route.retry]\nattempts = 3\n",
        "",
        &[format!("{{ address = \"{through}\" }}")],
    ));
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/specs/running.toml");
    let spec = std::fs::read_to_string(example)
        .expect("the example")
        .replace("http://127.0.0.1:8080", &proxy.url(""))
        .replace("http://127.0.0.1:9901", &admin_url(&proxy, ""))
        .replace("http://127.0.0.1:8474", &toxiproxy.url(""));
    let dir = tempfile::tempdir().expect("a folder");
    let path = dir.path().join("running.toml");
    std::fs::write(&path, spec).expect("spec written");
    let report = dir.path().join("report");
    let (stdout, _) = tokio::task::spawn_blocking({
        let (path, report) = (path.clone(), report.clone());
        move || verify(&path, &report, 0)
    })
    .await
    .expect("joined");
    assert!(
        stdout.contains("✔ api-slow: passed") && stdout.contains("✔ api-flaky: passed"),
        "{stdout}"
    );
    let json = read_report(&report);
    let slow = &json["experiments"][0];
    let p50 = slow["expectations"][1]["measured"].as_f64().expect("a p50");
    assert!(
        p50 >= 100.0,
        "the toxic's 100 ms shows in the p50 during the fault: {p50}"
    );
    let flaky = &json["experiments"][1];
    let amplification = flaky["expectations"][1]["measured"]
        .as_f64()
        .expect("a factor");
    assert!(
        amplification > 1.0,
        "retries met the fault: {amplification}"
    );
    // Nothing left behind: the toxic and the rule are gone.
    let (_, toxics) = toxiproxy_api::call(
        &toxiproxy,
        http::Method::GET,
        "/proxies/api/toxics",
        serde_json::Value::Null,
    )
    .await;
    assert_eq!(toxics, serde_json::json!([]), "the toxic was removed");
    let (_, _, faults) = get(&admin_url(&proxy, "/admin/faults")).await;
    assert!(faults.contains("\"runtime_rules\":0"), "{faults}");
}

#[test]
fn a_report_folder_that_cannot_be_written_stops_verify_before_anything_runs() {
    let dir = tempfile::tempdir().expect("a folder");
    let spec = dir.path().join("small.toml");
    std::fs::write(&spec, small_topology(r#"{ kill = "api" }"#, "")).expect("spec written");
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a folder").expect("file written");
    let started = std::time::Instant::now();
    let (stdout, stderr) = verify(&spec, &file, 2);
    assert!(stderr.contains("the reports' folder"), "{stderr}");
    assert!(!stdout.contains("api-down"), "no experiment ran: {stdout}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "refused before the 4 s load"
    );
}

/// The children of process `parent`, from /proc.
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // pid (comm) state ppid …: the ppid is the second field after the last ')'.
            let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
            after.split_whitespace().nth(1) == Some(parent.to_string().as_str())
        })
        .collect()
}

#[tokio::test]
async fn a_verify_killed_outright_takes_the_processes_it_started_with_it() {
    let dir = tempfile::tempdir().expect("a folder");
    let spec = dir.path().join("small.toml");
    let long = small_topology(r#"{ kill = "api" }"#, "")
        .replace("duration = \"4s\"", "duration = \"30s\"");
    std::fs::write(&spec, long).expect("spec written");
    let mut child = Command::new(env!("CARGO_BIN_EXE_blastwall"))
        .args(["verify", "--quiet", "--report"])
        .arg(dir.path().join("report"))
        .arg(&spec)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("verify starts");
    let verify_pid = child.id();
    let mut started = Vec::new();
    let both = eventually(Duration::from_secs(20), || {
        started = children_of(verify_pid);
        let ready = started.len() == 2;
        async move { ready }
    })
    .await;
    assert!(both, "verify started the mock and the proxy: {started:?}");
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    let gone = eventually(Duration::from_secs(10), || {
        let alive: Vec<u32> = started
            .iter()
            .copied()
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|stat| !stat.contains(") Z "))
            })
            .collect();
        async move { alive.is_empty() }
    })
    .await;
    assert!(gone, "the mock and the proxy died with verify: {started:?}");
}
