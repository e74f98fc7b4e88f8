//! The dashboard in a real browser: headless Chromium (Debian's `chromium`, driven by
//! `playwright-core` from npm, see `dashboard/`) watches the page while an upstream dies, and
//! must see the endpoint go down and its breaker open. A screenshot is saved in the target
//! folder (`CARGO_TARGET_TMPDIR/dashboard.png`).
//!
//! `.ci/run` installs the browser and the npm package and sets `BLASTWALL_REQUIRE_BROWSER=1`,
//! so there a missing browser fails the test; elsewhere it is skipped, loudly.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use http::StatusCode;
use support::{
    Mock, Proxy, admin_section, admin_url, endpoint, eventually, get, single_cluster_config,
};

const WITHIN: Duration = Duration::from_secs(30);

#[tokio::test]
async fn the_dashboard_shows_a_killed_upstream_down_with_its_breaker_open() {
    let Some(folder) = support::browser::browser_or_skip("dashboard browser test") else {
        return;
    };
    let (a, b) = (Mock::start("a", &[]), Mock::start("b", &[]));
    let endpoints = [endpoint(&a, ""), endpoint(&b, "")];
    let sections = format!(
        "\n[cluster.api.endpoint_circuit_breaker]\nconsecutive_failures = 1\nopen_duration = \"60s\"\n{}",
        admin_section("")
    );
    let proxy = Proxy::start(&single_cluster_config("", &endpoints, &sections));
    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    let mut node = Command::new("node")
        .arg(folder.join("check.mjs"))
        .arg(admin_url(&proxy, "/dashboard"))
        .arg(b.addr.to_string())
        .arg(&screenshot)
        .current_dir(&folder)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node starts");
    let stdout = node.stdout.take().expect("piped");
    let (sender, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("browser: {line}");
            let _ = sender.send(line);
        }
    });
    let up = lines.recv_timeout(WITHIN);
    if !up.as_ref().is_ok_and(|line| line.contains("endpoint up")) {
        let _ = node.kill();
        panic!("the page never showed the endpoint up: {up:?}");
    }

    b.process.signal("KILL");
    let opened = eventually(WITHIN, || async {
        get(&proxy.url("/work")).await;
        let (_, _, body) = get(&admin_url(&proxy, "/admin/clusters")).await;
        body.contains("\"breaker\":\"open\"")
    })
    .await;
    assert!(opened, "the killed endpoint's breaker never opened");
    assert_eq!(get(&proxy.url("/work")).await.0, StatusCode::OK);
    let mut stdin = node.stdin.take().expect("piped");
    writeln!(stdin, "killed").expect("the script reads");
    drop(stdin);
    let status = tokio::task::spawn_blocking(move || node.wait())
        .await
        .expect("joined")
        .expect("node ran");
    assert!(
        status.success(),
        "the browser check failed (see its output above)"
    );
    assert!(
        screenshot.exists(),
        "no screenshot at {}",
        screenshot.display()
    );
    println!("dashboard screenshot: {}", screenshot.display());
}

#[tokio::test]
async fn the_dashboard_shows_a_fault_made_at_run_time_and_the_breaker_it_opens() {
    let Some(folder) = support::browser::browser_or_skip("dashboard browser test") else {
        return;
    };
    let a = Mock::start("a", &[]);
    let sections = format!(
        "\n[cluster.api.circuit_breaker]\nconsecutive_failures = 2\nopen_duration = \"60s\"\n{}",
        admin_section("")
    );
    let config = single_cluster_config("", &[endpoint(&a, "")], &sections).replace(
        "cluster = \"api\"\n",
        "name = \"api\"\ncluster = \"api\"\ntimeout = \"200ms\"\n",
    );
    let proxy = Proxy::start(&config);
    let (status, _, body) = support::send(
        http::Method::POST,
        &admin_url(&proxy, "/admin/faults"),
        r#"{"route": "api", "delay": "2s", "ttl": "60s"}"#,
        &[("content-type", "application/json")],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let opened = eventually(WITHIN, || async {
        get(&proxy.url("/work")).await;
        let (_, _, body) = get(&admin_url(&proxy, "/admin/clusters")).await;
        body.contains("\"breaker\":\"open\"")
    })
    .await;
    assert!(opened, "the fault never opened the cluster's breaker");
    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-faults.png");
    let output = tokio::task::spawn_blocking({
        let (folder, url) = (folder.clone(), admin_url(&proxy, "/dashboard"));
        let screenshot = screenshot.clone();
        move || {
            Command::new("node")
                .arg(folder.join("check_faults.mjs"))
                .arg(url)
                .arg(&screenshot)
                .current_dir(&folder)
                .stderr(Stdio::inherit())
                .output()
        }
    })
    .await
    .expect("joined")
    .expect("node ran");
    println!("browser: {}", String::from_utf8_lossy(&output.stdout));
    assert!(
        output.status.success(),
        "the browser check failed (see its output above)"
    );
    println!("dashboard screenshot: {}", screenshot.display());
}
