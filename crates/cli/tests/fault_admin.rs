//! Fault rules made at run time, against the real binary: through the admin API as `curl`
//! would (and as the README says), through `blastwall fault`, with the token, across a
//! reload, and the README's demo steps: a latency fault on the demo's route opens its
//! cluster's breaker. Rules on endpoints: one taken down at run time (its attempts and its
//! health checks) until its ttl ends, an abort in the attempts retried elsewhere.

mod support;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::Value;
use support::{
    Mock, Process, Proxy, admin_addr, admin_section, admin_url, endpoint, eventually, get,
    route_config, send,
};

const WITHIN: Duration = Duration::from_secs(15);
const JSON: (&str, &str) = ("content-type", "application/json");

/// A proxy with route `api` (timeout 300ms) to `upstream`, with `extra` sections.
fn proxy(upstream: &Mock, extra: &str) -> Proxy {
    Proxy::start(&route_config(
        &format!("timeout = \"300ms\"\n{extra}"),
        "",
        &[endpoint(upstream, "")],
    ))
}

/// `POST /admin/faults` with `body` (and `token`).
async fn add(admin: &str, body: &str, token: Option<&str>) -> (StatusCode, Value) {
    let bearer = token.map(|token| format!("Bearer {token}"));
    let mut headers = vec![JSON];
    if let Some(bearer) = &bearer {
        headers.push(("authorization", bearer));
    }
    let (status, _, body) = send(
        Method::POST,
        &format!("{admin}/admin/faults"),
        body,
        &headers,
    )
    .await;
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

async fn json(url: &str) -> Value {
    let (_, _, body) = get(url).await;
    serde_json::from_str(&body).unwrap_or(Value::Null)
}

/// Whether `/admin/events` has an event of `kind`.
async fn has_event(admin: &str, kind: &str) -> bool {
    let events = json(&format!("{admin}/admin/events")).await;
    events["events"]
        .as_array()
        .is_some_and(|events| events.iter().any(|event| event["kind"] == kind))
}

/// Runs `blastwall fault <args>`: success, stdout, stderr.
fn cli(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_blastwall"))
        .arg("fault")
        .args(args)
        .env_remove("BLASTWALL_ADMIN_TOKEN")
        .envs(env.iter().copied())
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("blastwall runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_delay_made_at_run_time_times_its_route_out_until_its_ttl_ends() {
    let folder = tempfile::tempdir().expect("a folder");
    let log = folder.path().join("access.log");
    let upstream = Mock::start("a", &[]);
    let proxy = proxy(
        &upstream,
        &format!(
            "\n[access_log]\npath = {:?}\n",
            log.to_str().expect("utf-8")
        ),
    );
    let admin = format!("http://{}", admin_addr(&proxy));
    let (status, rule) = add(
        &admin,
        r#"{"route": "api", "delay": "2s", "ttl": "2s"}"#,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{rule}");
    assert_eq!(rule["id"], "f1");

    let (status, headers, _) = get(&proxy.url("/")).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(headers["x-blastwall-error"], "deadline_exceeded");
    assert_eq!(
        upstream.requests().await,
        0,
        "the fault held it before any attempt"
    );
    // The access log is written in batches: wait for the line.
    let logged = eventually(WITHIN, || async {
        support::access_log(&log)
            .iter()
            .any(|line| line["fault"] == "delay" && line["fault_rule"] == "f1")
    })
    .await;
    assert!(logged, "{:?}", support::access_log(&log));

    // It ends by itself: requests go through again, and the sweeper leaves an event.
    assert!(
        eventually(WITHIN, || async {
            get(&proxy.url("/")).await.0 == StatusCode::OK
        })
        .await
    );
    assert!(eventually(WITHIN, || has_event(&admin, "fault_expired")).await);
    let list = json(&format!("{admin}/admin/faults")).await;
    assert_eq!(list["faults"], serde_json::json!([]), "{list}");
    let metrics = get(&format!("{admin}/metrics")).await.2;
    assert!(
        metrics.contains("blastwall_fault_rules_active 0"),
        "{metrics}"
    );
    assert!(metrics.contains("blastwall_fault_rule_events_total{event=\"expired\"} 1"));
}

#[tokio::test]
async fn the_first_n_requests_are_faulted_then_the_rule_is_spent_and_gone() {
    let upstream = Mock::start("a", &[]);
    let proxy = proxy(&upstream, "");
    let admin = format!("http://{}", admin_addr(&proxy));
    let body = r#"{"route": "api", "abort": {"status": 503}, "first": 2, "ttl": "1m"}"#;
    assert_eq!(add(&admin, body, None).await.0, StatusCode::CREATED);
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(get(&proxy.url("/")).await.0.as_u16());
    }
    assert_eq!(statuses, [503, 503, 200]);
    assert!(has_event(&admin, "fault_spent").await);
    let (status, _, _) = get(&format!("{admin}/admin/faults/f1")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_cli_adds_lists_deletes_and_clears_faults_with_the_token() {
    let upstream = Mock::start("a", &[]);
    let config =
        route_config("", "", &[endpoint(&upstream, "")]) + &admin_section("token = \"s3cret\"");
    let proxy = Proxy::start(&config);
    let admin = admin_addr(&proxy).to_string();
    let add = [
        "add", "--admin", &admin, "--route", "api", "--abort", "503", "--for", "1m",
    ];

    let (ok, _, stderr) = cli(&add, &[]);
    assert!(!ok);
    assert!(
        stderr.contains("401") && stderr.contains("--token"),
        "{stderr}"
    );

    let token = [("BLASTWALL_ADMIN_TOKEN", "s3cret")];
    let (ok, stdout, stderr) = cli(&add, &token);
    assert!(ok, "{stderr}");
    assert!(
        stdout.starts_with("f1: abort 503 on route api, until "),
        "{stdout}"
    );
    assert_eq!(
        get(&proxy.url("/")).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );

    let (ok, stdout, _) = cli(&["list", "--admin", &admin], &[]);
    assert!(
        ok && stdout.contains("f1") && stdout.contains("abort 503"),
        "{stdout}"
    );

    let (ok, _, stderr) = cli(
        &["delete", "f1", "--admin", &admin, "--token", "s3cret"],
        &[],
    );
    assert!(ok, "{stderr}");
    assert_eq!(get(&proxy.url("/")).await.0, StatusCode::OK);
    let (ok, _, stderr) = cli(&["delete", "f1", "--admin", &admin], &token);
    assert!(!ok && stderr.contains("404"), "{stderr}");

    let (ok, _, stderr) = cli(&add, &token);
    assert!(ok, "{stderr}");
    let (ok, stdout, stderr) = cli(&["clear", "--admin", &admin], &token);
    assert!(
        ok && stdout.starts_with("1 runtime rule(s) removed"),
        "{stdout}{stderr}"
    );
    assert_eq!(get(&proxy.url("/")).await.0, StatusCode::OK);

    let (ok, _, stderr) = cli(
        &[
            "add", "--admin", &admin, "--route", "api", "--delay", "1s", "--for", "3h",
        ],
        &token,
    );
    assert!(!ok && stderr.contains("fault_max_ttl"), "{stderr}");
}

#[tokio::test]
async fn the_cli_reads_the_token_from_the_proxys_config() {
    let upstream = Mock::start("a", &[]);
    let config = route_config("", "", &[endpoint(&upstream, "")])
        + &admin_section("token = \"from-the-file\"");
    let proxy = Proxy::start(&config);
    let path = proxy.config_path.to_str().expect("utf-8");
    let admin = admin_addr(&proxy).to_string();
    let args = [
        "add", "--config", path, "--admin", &admin, "--route", "api", "--abort", "500", "--for",
        "1m",
    ];
    let (ok, stdout, stderr) = cli(&args, &[]);
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with("f1: abort 500"), "{stdout}");
    // Its admin address there is port 0: the CLI cannot guess the port and says so.
    let (ok, _, stderr) = cli(&["list", "--config", path], &[]);
    assert!(!ok && stderr.contains("any free port"), "{stderr}");
}

#[tokio::test]
async fn the_cli_says_where_it_looked_when_no_proxy_is_there() {
    let closed: SocketAddr = {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        socket.local_addr().expect("its address")
    };
    let (ok, _, stderr) = cli(&["list", "--admin", &closed.to_string()], &[]);
    assert!(!ok);
    assert!(
        stderr.contains(&format!(
            "cannot reach a proxy's admin API at http://{closed}"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("--admin"), "{stderr}");
}

#[tokio::test]
async fn a_runtime_fault_survives_a_reload_and_goes_with_its_route() {
    let upstream = Mock::start("a", &[]);
    let mut proxy = proxy(&upstream, "");
    let admin = admin_url(&proxy, "");
    let body = r#"{"route": "api", "abort": {"status": 500}, "ttl": "1m"}"#;
    assert_eq!(add(&admin, body, None).await.0, StatusCode::CREATED);

    let edited = route_config("timeout = \"400ms\"\n", "", &[endpoint(&upstream, "")]);
    proxy.replace_config(&edited);
    proxy.process.wait_for_line("config reloaded");
    assert_eq!(
        get(&proxy.url("/")).await.0,
        StatusCode::INTERNAL_SERVER_ERROR,
        "still faulted"
    );

    let renamed = edited.replace("name = \"api\"", "name = \"other\"");
    proxy.replace_config(&renamed);
    proxy.process.wait_for_line("config reloaded");
    assert_eq!(get(&proxy.url("/")).await.0, StatusCode::OK);
    assert!(has_event(&admin, "fault_orphaned").await);
}

/// The README's steps, word for word: `blastwall demo --only analytics-down --keep` runs one
/// failure and keeps the shop up; the `curl` puts a 2 s delay on its `checkout` route for
/// 30 s, so checkout answers 504 after the route's 1 s timeout and the dashboard's data
/// (`/admin/events`, `/admin/faults`) shows the rule; `blastwall fault add` does the same;
/// `blastwall fault clear` ends both.
#[tokio::test]
async fn the_readme_fault_on_the_kept_demo_shop_times_its_checkout_out() {
    let report = tempfile::tempdir().expect("a folder");
    let report_dir = report.path().to_str().expect("utf-8").to_owned();
    let mut demo = Process::spawn(&[
        "demo",
        "--only",
        "analytics-down",
        "--keep",
        "--quiet",
        "--admin",
        "127.0.0.1:0",
        "--report",
        &report_dir,
    ]);
    let shop = demo.wait_for_line("the shop: http://");
    let shop = shop["the shop: ".len()..]
        .split_whitespace()
        .next()
        .expect("the shop's URL")
        .trim_end_matches('/')
        .to_owned();
    let line = demo.wait_for_line("watch it live");
    let start = line.find("http://").expect("an address") + "http://".len();
    let addr = &line[start..start + line[start..].find('/').expect("a path")];
    let admin = format!("http://{addr}");
    demo.wait_for_line("the shop keeps running");

    // curl -X POST http://127.0.0.1:9901/admin/faults -H 'content-type: application/json' \
    //   -d '{"route": "checkout", "delay": "2s", "ttl": "30s"}'
    let readme = r#"{"route": "checkout", "delay": "2s", "ttl": "30s"}"#;
    let (status, rule) = add(&admin, readme, None).await;
    assert_eq!(status, StatusCode::CREATED, "{rule}");
    let (status, _, _) = support::get(&format!("{shop}/checkout/cart")).await;
    assert_eq!(
        status,
        StatusCode::GATEWAY_TIMEOUT,
        "the 2 s delay outlasts the 1 s timeout"
    );
    let events = json(&format!("{admin}/admin/events")).await;
    assert!(
        events["events"]
            .as_array()
            .is_some_and(|events| events.iter().any(|event| event["kind"] == "fault_created")),
        "{events}"
    );

    // blastwall fault add --route checkout --delay 2s --for 30s
    let (ok, stdout, stderr) = cli(
        &[
            "add", "--admin", addr, "--route", "checkout", "--delay", "2s", "--for", "30s",
        ],
        &[],
    );
    assert!(ok, "{stderr}");
    assert!(stdout.contains("delay 2s on route checkout"), "{stdout}");
    let (ok, stdout, _) = cli(&["clear", "--admin", addr], &[]);
    assert!(
        ok && stdout.starts_with("2 runtime rule(s) removed"),
        "{stdout}"
    );
    let (status, _, _) = support::get(&format!("{shop}/checkout/cart")).await;
    assert_eq!(status, StatusCode::OK, "checkout answers again");
}

/// Retries soon after a failure, to the other endpoint.
const RETRY: &str = "[route.retry]\nattempts = 2\nbackoff = { base = \"1ms\", max = \"2ms\" }\n";

/// Checks every 100ms, two in a row to change state.
const HEALTH_CHECKS: &str = r#"
[cluster.api.health_check]
kind = "http"
path = "/healthz"
interval = "100ms"
timeout = "500ms"
healthy_threshold = 2
unhealthy_threshold = 2
jitter = "20ms"
"#;

/// The mock that answered.
fn mock_name(answer: &support::Answer) -> &str {
    (answer.1.get("x-mock-name")).map_or("", |name| name.to_str().unwrap_or(""))
}

/// The health of endpoint `index` of the cluster, as the admin API shows it.
async fn health(admin: &str, index: usize) -> String {
    let clusters = json(&format!("{admin}/admin/clusters")).await;
    (clusters["clusters"][0]["endpoints"][index]["health"].as_str())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn an_endpoint_taken_down_at_run_time_sends_everything_to_the_other_until_its_ttl_ends() {
    let (down, up) = (Mock::start("down", &[]), Mock::start("up", &[]));
    let endpoints = [endpoint(&down, ""), endpoint(&up, "")];
    let proxy = Proxy::start(&(route_config(RETRY, "", &endpoints) + HEALTH_CHECKS));
    let admin = admin_url(&proxy, "");
    let healthy = |index| {
        let admin = &admin;
        move || async move { health(admin, index).await == "healthy" }
    };
    assert!(eventually(WITHIN, healthy(0)).await && eventually(WITHIN, healthy(1)).await);

    // blastwall fault add --cluster api --endpoint <down> --down --for 4s
    let address = down.addr.to_string();
    let admin_addr = admin_addr(&proxy).to_string();
    let args = [
        "add",
        "--admin",
        &admin_addr,
        "--cluster",
        "api",
        "--endpoint",
        &address,
        "--down",
        "--for",
        "4s",
    ];
    let (ok, stdout, stderr) = cli(&args, &[]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.starts_with(&format!(
            "f1: endpoint down on cluster api (endpoint {address}), until "
        )),
        "{stdout}"
    );
    let unhealthy = || async { health(&admin, 0).await == "unhealthy" };
    assert!(
        eventually(WITHIN, unhealthy).await,
        "the checks never saw it down"
    );
    for _ in 0..10 {
        let answer = get(&proxy.url("/")).await;
        assert_eq!(
            (answer.0, mock_name(&answer)),
            (StatusCode::OK, "up"),
            "{answer:?}"
        );
    }

    // Its ttl ends: the sweeper removes it, the checks see the endpoint back, and it serves.
    assert!(eventually(WITHIN, || has_event(&admin, "fault_expired")).await);
    assert!(
        eventually(WITHIN, healthy(0)).await,
        "the checks never saw it back"
    );
    let back = || async { mock_name(&get(&proxy.url("/")).await) == "down" };
    assert!(eventually(WITHIN, back).await, "it never served again");
}

#[tokio::test]
async fn an_attempt_abort_made_at_run_time_is_retried_on_the_other_endpoint() {
    let folder = tempfile::tempdir().expect("a folder");
    let log = folder.path().join("access.log");
    let (failing, fine) = (Mock::start("failing", &[]), Mock::start("fine", &[]));
    let endpoints = [endpoint(&failing, ""), endpoint(&fine, "")];
    let access_log = format!(
        "\n[access_log]\npath = {:?}\n",
        log.to_str().expect("utf-8")
    );
    let proxy = Proxy::start(&(route_config(RETRY, "", &endpoints) + &access_log));
    let admin = admin_url(&proxy, "");
    let body = format!(
        r#"{{"route": "api", "at": "attempt", "endpoint": "{}", "abort": {{"status": 502}}, "ttl": "1m"}}"#,
        failing.addr
    );
    let (status, rule) = add(&admin, &body, None).await;
    assert_eq!(status, StatusCode::CREATED, "{rule}");
    assert_eq!(
        (&rule["at"], &rule["kind"]),
        (&Value::from("attempt"), &Value::from("abort"))
    );
    let mut retried = 0;
    for _ in 0..4 {
        let answer = get(&proxy.url("/")).await;
        assert_eq!(
            (answer.0, mock_name(&answer)),
            (StatusCode::OK, "fine"),
            "{answer:?}"
        );
        let attempts = answer.1.get("x-blastwall-attempts");
        retried += usize::from(attempts.is_some_and(|value| value == "2"));
    }
    assert!(
        retried >= 1,
        "some first attempts met the abort and were retried"
    );
    assert_eq!(failing.requests().await, 0);
    let logged = || async {
        support::access_log(&log).iter().any(|line| {
            line["fault"] == "abort" && line["fault_rule"] == "f1" && line["status"] == 200
        })
    };
    assert!(
        eventually(WITHIN, logged).await,
        "{:?}",
        support::access_log(&log)
    );
}

#[tokio::test]
async fn the_cli_takes_a_random_endpoint_down_and_relays_the_proxys_words_for_a_bad_one() {
    let (a, b) = (Mock::start("a", &[]), Mock::start("b", &[]));
    let proxy = Proxy::start(&route_config("", "", &[endpoint(&a, ""), endpoint(&b, "")]));
    let admin = admin_addr(&proxy).to_string();
    let add = |extra: &[&str]| {
        let mut args = vec!["add", "--admin", &admin, "--cluster", "api", "--for", "1m"];
        args.extend_from_slice(extra);
        cli(&args, &[])
    };
    let (ok, stdout, stderr) = add(&["--endpoint", "random", "--down"]);
    assert!(ok, "{stderr}");
    let picked = [a.addr, b.addr]
        .into_iter()
        .find(|address| stdout.contains(&format!("(endpoint {address}, picked at random)")));
    assert!(picked.is_some(), "{stdout}");
    let (ok, stdout, _) = cli(&["list", "--admin", &admin], &[]);
    let picked = picked.map(|address| format!("endpoint down on {address}"));
    assert!(
        ok && stdout.contains(&picked.unwrap_or_default()),
        "{stdout}"
    );

    let (ok, _, stderr) = add(&["--down"]);
    assert!(
        !ok && stderr.contains("fault.down needs `endpoint`"),
        "{stderr}"
    );
    let (ok, _, stderr) = add(&["--delay", "1s", "--at", "sometimes"]);
    assert!(!ok && stderr.contains("400"), "{stderr}");
    let (ok, _, stderr) = add(&["--delay", "1s", "--abort", "503"]);
    assert!(!ok && stderr.contains("cannot be used with"), "{stderr}");
}
