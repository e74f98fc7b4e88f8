//! `blastwall toxiproxy` driven by Toxiproxy's real client libraries, installed from their
//! registries, so "compatible" means what the clients people use say it means.
//!
//! Each client runs what lives in `tests/toxiproxy_clients/` against a fresh server and a
//! TCP echo upstream on loopback: a script that prints one line per check and fails if any
//! did, or (chaostoolkit) an experiment whose journal says what each step came to.
//! Where a client is not installed the test skips with a loud line, unless
//! `BLASTWALL_REQUIRE_TOXIPROXY_CLIENTS=1` (set by `.ci/run`, which installs them), where
//! it fails: CI must not pass by not testing.

mod support;

use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::Value;
use support::{Toxiproxy, eventually_blocking, send};
use tokio::net::TcpListener;

/// The scripts' folder.
const SCRIPTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/toxiproxy_clients");

/// The toxic types, in the order the lifecycle experiment adds them.
const TOXIC_TYPES: [&str; 7] = [
    "latency",
    "bandwidth",
    "slow_close",
    "timeout",
    "reset_peer",
    "slicer",
    "limit_data",
];

/// How long a client's script may run (its checks wait half a second at most each).
const SCRIPT_WITHIN: Duration = Duration::from_secs(60);

/// A TCP server on loopback that echoes every byte back.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bound");
    let addr = listener.local_addr().expect("an address");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = stream.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    addr
}

/// Whether `probe` (a command that exits 0 when the client is there) succeeds; if not, the
/// test skips, or fails when CI requires the clients.
fn client_available(client: &str, probe: &mut Command, install: &str) -> bool {
    let found = probe
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if found {
        return true;
    }
    if std::env::var("BLASTWALL_REQUIRE_TOXIPROXY_CLIENTS").as_deref() == Ok("1") {
        panic!("BLASTWALL_REQUIRE_TOXIPROXY_CLIENTS=1 but {client} is missing ({install})");
    }
    eprintln!("\n!!!! SKIPPED the {client} test: it is not installed ({install}) !!!!\n");
    false
}

/// Runs `command` to its end within [`SCRIPT_WITHIN`] (on a blocking thread, so the echo
/// server keeps serving) and returns its output.
async fn run_to_end(mut command: Command) -> Output {
    tokio::task::spawn_blocking(move || {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the client's script starts");
        let ended = eventually_blocking(SCRIPT_WITHIN, || {
            child.try_wait().expect("the script's status").is_some()
        });
        if !ended {
            let _ = child.kill();
        }
        let output = child.wait_with_output().expect("the script's output");
        assert!(ended, "the script ran past {SCRIPT_WITHIN:?}: {output:?}");
        output
    })
    .await
    .expect("the script's thread")
}

/// Asserts the script passed, showing its lines either way.
fn assert_passed(client: &str, output: &Output) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("--- {client}\n{stdout}{stderr}");
    assert!(
        output.status.success(),
        "{client} failed:\n{stdout}\n{stderr}"
    );
    assert!(!stdout.contains("FAIL"), "{client}:\n{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_client_manages_proxies_and_toxics_and_its_toxics_act_on_the_data() {
    let mut probe = Command::new("python3");
    probe.args(["-c", "import toxiproxy"]);
    if !client_available(
        "toxiproxy-python",
        &mut probe,
        "python3 -m pip install toxiproxy-python",
    ) {
        return;
    }
    let server = Toxiproxy::start();
    let echo = echo_server().await;
    let mut script = Command::new("python3");
    script.args([
        format!("{SCRIPTS}/python_client.py"),
        server.addr.to_string(),
        echo.to_string(),
    ]);
    let output = run_to_end(script).await;
    assert_passed("toxiproxy-python", &output);
}

/// Whether `chaos` and the Toxiproxy extension are installed (see [`client_available`]).
fn chaostoolkit_available() -> bool {
    let mut probe = Command::new("chaos");
    probe.args(["--no-version-check", "--no-log-file", "--version"]);
    let mut extension = Command::new("python3");
    extension.args(["-c", "import chaostoxi"]);
    let install = "python3 -m pip install chaostoolkit chaostoolkit-toxiproxy";
    client_available("chaostoolkit", &mut probe, install)
        && client_available("chaostoolkit-toxiproxy", &mut extension, install)
}

/// Runs `chaos run` on an experiment of the scripts' folder against `server` (the steady
/// state checked after the method only, every rollback played) and returns its journal.
async fn run_experiment(experiment: &str, server: &Toxiproxy, echo: SocketAddr) -> Value {
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let journal = scratch.path().join("journal.json");
    let mut chaos = Command::new("chaos");
    chaos
        .current_dir(SCRIPTS)
        .env("TOXIPROXY_PORT", server.addr.port().to_string())
        .env("ECHO_PORT", echo.port().to_string())
        .env("ECHO_ADDRESS", echo.to_string())
        .arg("--no-version-check")
        .arg("--no-log-file")
        .arg("--settings")
        .arg(scratch.path().join("settings.yaml"))
        .args(["run", "--hypothesis-strategy", "after-method-only"])
        .args(["--rollback-strategy", "always", "--journal-path"])
        .arg(&journal)
        .arg(experiment);
    let output = run_to_end(chaos).await;
    assert_passed("chaostoolkit", &output);
    let journal: Value =
        serde_json::from_str(&std::fs::read_to_string(&journal).expect("a journal"))
            .expect("a JSON journal");
    assert_eq!(journal["status"], "completed", "{journal:#}");
    let after = &journal["steady_states"]["after"];
    assert_eq!(after["steady_state_met"], true, "{after:#}");
    journal
}

/// The activities of a journal's `section` ("run", "rollbacks") as (name, status, output).
fn activities<'a>(journal: &'a Value, section: &str) -> Vec<(&'a str, &'a str, &'a Value)> {
    journal[section]
        .as_array()
        .expect("a list of activities")
        .iter()
        .map(|done| {
            (
                done["activity"]["name"].as_str().expect("a name"),
                done["status"].as_str().expect("a status"),
                &done["output"],
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chaostoolkit_experiment_adds_latency_and_its_steady_state_sees_it_then_rolls_back() {
    if !chaostoolkit_available() {
        return;
    }
    let server = Toxiproxy::start();
    let echo = echo_server().await;
    let journal = run_experiment("latency_experiment.json", &server, echo).await;
    for section in ["run", "rollbacks"] {
        for (name, status, _) in activities(&journal, section) {
            assert_eq!(status, "succeeded", "{name}: {journal:#}");
        }
    }
    let (status, _, proxies) = send(Method::GET, &server.url("/proxies"), "", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(proxies, "{}", "the rollbacks removed the proxy");
}

/// What each activity of the lifecycle experiment comes to, as "status output" (the output
/// as JSON), in the order it runs them; the failures are the error cases, where the
/// extension raises on Toxiproxy's error status.
const LIFECYCLE_AFTER_TOXICS: [(&str, &str); 16] = [
    ("list the toxics", "(its names are checked on their own)"),
    ("remove latency_upstream", "succeeded true"),
    ("point the proxy at the echo server again", "succeeded true"),
    ("disable the proxy", "succeeded true"),
    ("read enabled while disabled", "succeeded false"),
    ("enable the proxy", "succeeded true"),
    ("read enabled after enabling", "succeeded true"),
    ("reset", "succeeded true"),
    ("list the toxics after the reset", "succeeded []"),
    ("create a proxy that exists (fails)", "failed null"),
    ("add a toxic of no such type (fails)", "failed null"),
    ("add a toxic on no such stream (fails)", "failed null"),
    ("modify a proxy that does not exist (fails)", "failed null"),
    ("ask whether a missing proxy exists", "succeeded false"),
    ("remove a toxic that does not exist", "succeeded false"),
    ("delete the proxy", "succeeded null"),
];

#[tokio::test(flavor = "multi_thread")]
async fn every_chaostoolkit_toxiproxy_action_and_probe_does_what_it_says_and_errors_fail() {
    if !chaostoolkit_available() {
        return;
    }
    let server = Toxiproxy::start();
    let echo = echo_server().await;
    let journal = run_experiment("lifecycle_experiment.json", &server, echo).await;
    let done: Vec<(String, String)> = activities(&journal, "run")
        .into_iter()
        .map(|(name, status, output)| (name.to_owned(), format!("{status} {output}")))
        .collect();

    let mut toxics = Vec::new();
    for stream in ["upstream", "downstream"] {
        toxics.extend(TOXIC_TYPES.map(|kind| format!("{kind}_{stream}")));
    }
    let mut expected = vec![("create the proxy".to_owned(), "succeeded true".to_owned())];
    expected.extend(
        toxics
            .iter()
            .map(|toxic| (format!("add {toxic}"), "succeeded true".to_owned())),
    );
    let listed = &journal["run"][expected.len()]["output"];
    let names: Vec<String> = listed
        .as_array()
        .map(|all| all.iter().map(|toxic| toxic["name"].to_string()).collect())
        .unwrap_or_default();
    let wanted: Vec<String> = toxics.iter().map(|toxic| format!("\"{toxic}\"")).collect();
    assert_eq!(
        names, wanted,
        "the toxics listed, in the order they were added"
    );
    expected.extend(
        LIFECYCLE_AFTER_TOXICS
            .iter()
            .map(|(name, outcome)| ((*name).to_owned(), (*outcome).to_owned())),
    );
    expected[1 + toxics.len()]
        .1
        .clone_from(&done[1 + toxics.len()].1);
    assert_eq!(done, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_node_client_manages_proxies_and_toxics_and_its_toxics_act_on_the_data() {
    let mut probe = Command::new("node");
    probe
        .current_dir(SCRIPTS)
        .args(["-e", "require.resolve('toxiproxy-node-client')"]);
    let install = format!("node, then npm ci in {SCRIPTS}");
    if !client_available("toxiproxy-node-client", &mut probe, &install) {
        return;
    }
    let server = Toxiproxy::start();
    let echo = echo_server().await;
    let mut script = Command::new("node");
    script
        .current_dir(SCRIPTS)
        .arg("node_client.mjs")
        .arg(server.addr.to_string())
        .arg(echo.to_string());
    let output = run_to_end(script).await;
    assert_passed("toxiproxy-node-client", &output);
}
