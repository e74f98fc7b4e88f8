//! The Prometheus metrics of a proxy under real traffic: a proxy run in-process in front of
//! two mock replicas, scraped (through `Proxy::metrics_text`, what the admin listener serves
//! at `/metrics`) while requests run, then after one replica is killed. The counters move as
//! the failure spreads (attempt failures, the endpoint's breaker opens, retries) and
//! `promtool check metrics` accepts every scrape.

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use blastwall_chaos::mock::{self, Behaviour, MockConfig, MockHandle};
use blastwall_proxy::Config;
use blastwall_proxy::Proxy;
use http::StatusCode;
use support::{eventually, get};

const WITHIN: Duration = Duration::from_secs(15);

async fn replica(name: &str) -> MockHandle {
    mock::start(MockConfig {
        name: name.into(),
        listen: "127.0.0.1:0".parse().expect("an address"),
        behaviour: Behaviour::default(),
        seed: 1,
    })
    .await
    .expect("a mock replica starts")
}

fn config(a: &MockHandle, b: &MockHandle) -> Config {
    let text = format!(
        r#"
[[listener]]
name = "public"
listen = "127.0.0.1:0"

[[route]]
name = "checkout"
cluster = "shop"
timeout = "2s"

[route.retry]
attempts = 3
backoff = {{ base = "1ms", max = "5ms" }}

[cluster.shop]
balance = "round_robin"
endpoints = [{{ address = "{}" }}, {{ address = "{}" }}]

[cluster.shop.endpoint_circuit_breaker]
consecutive_failures = 2
open_duration = "60s"
"#,
        a.addr(),
        b.addr()
    );
    Config::parse(&text, Path::new("metrics-test.toml")).expect("a valid config")
}

/// The value of the one sample named exactly `series` (name and labels as written).
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
        .parse()
        .expect("a number")
}

/// Runs `promtool check metrics` on `text`; `None` when promtool is not installed and the
/// environment does not require it.
fn promtool_check(text: &str) -> Option<(bool, String)> {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(error) if std::env::var_os("BLASTWALL_REQUIRE_PROMTOOL").is_none() => {
            eprintln!(
                "\n!!!!! SKIPPED: promtool check metrics ({error}); install Debian's \
                 `prometheus` package (.ci/run does) to validate the exposition !!!!!\n"
            );
            return None;
        }
        Err(error) => panic!("BLASTWALL_REQUIRE_PROMTOOL is set but promtool cannot run: {error}"),
    };
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(text.as_bytes())
        .expect("promtool reads the metrics");
    let output = child.wait_with_output().expect("promtool finishes");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Some((output.status.success() && said.trim().is_empty(), said))
}

fn assert_promtool_accepts(text: &str) {
    if let Some((ok, said)) = promtool_check(text) {
        assert!(
            ok,
            "promtool check metrics objects:\n{said}\n--- the metrics:\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_move_under_traffic_and_a_killed_replica_opens_its_breaker() {
    let a = replica("a").await;
    let b = replica("b").await;
    let dead = b.addr().to_string();
    let proxy = Proxy::bind(config(&a, &b)).await.expect("the proxy binds");
    let url = format!("http://{}/checkout", proxy.local_addrs()[0].1);
    let proxy = Arc::new(proxy);

    // Scrape continuously while traffic runs: every scrape is well-formed and no counter
    // goes backwards.
    let stop = Arc::new(AtomicBool::new(false));
    let scraper = tokio::task::spawn_blocking({
        let (proxy, stop) = (proxy.clone(), stop.clone());
        move || {
            let series = r#"blastwall_requests_total{route="checkout",cluster="shop"}"#;
            let (mut scrapes, mut last) = (0u32, 0.0);
            while !stop.load(Ordering::Relaxed) && scrapes < 10_000 {
                let text = proxy.metrics_text();
                let requests = value(&text, series);
                assert!(requests >= last, "a counter went backwards");
                last = requests;
                scrapes += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            (scrapes, proxy.metrics_text())
        }
    });
    for _ in 0..40 {
        assert_eq!(get(&url).await.0, StatusCode::OK);
    }
    stop.store(true, Ordering::Relaxed);
    let (scrapes, during) = scraper.await.expect("the scraper finishes");
    assert!(scrapes > 0);
    assert_promtool_accepts(&during);

    let text = proxy.metrics_text();
    let route = r#"{route="checkout",cluster="shop"}"#;
    assert_eq!(
        value(&text, &format!("blastwall_requests_total{route}")),
        40.0
    );
    assert_eq!(
        value(
            &text,
            r#"blastwall_responses_total{route="checkout",cluster="shop",class="2xx"}"#
        ),
        40.0
    );
    assert_eq!(
        value(
            &text,
            &format!("blastwall_request_duration_seconds_count{route}")
        ),
        40.0
    );
    assert_eq!(
        value(&text, &format!("blastwall_requests_in_flight{route}")),
        0.0
    );
    assert_eq!(
        value(
            &text,
            r#"blastwall_upstream_attempt_duration_seconds_count{cluster="shop"}"#
        ),
        40.0
    );
    let breaker =
        format!(r#"blastwall_endpoint_breaker_state{{cluster="shop",endpoint="{dead}"}}"#);
    assert_eq!(
        value(&text, &breaker),
        0.0,
        "closed while the replica is up"
    );

    // Kill a replica: retries hide it from clients, and the metrics show it.
    b.stop().await;
    let opened = eventually(WITHIN, || async {
        assert_eq!(
            get(&url).await.0,
            StatusCode::OK,
            "a retry answers in its place"
        );
        value(&proxy.metrics_text(), &breaker) == 2.0
    })
    .await;
    let text = proxy.metrics_text();
    assert!(
        opened,
        "the dead replica's breaker never showed open:\n{text}"
    );
    assert!(
        value(
            &text,
            r#"blastwall_upstream_attempt_failures_total{cluster="shop"}"#
        ) >= 2.0
    );
    assert!(
        value(
            &text,
            r#"blastwall_endpoint_breaker_transitions_total{cluster="shop",to="open"}"#
        ) >= 1.0
    );
    assert!(value(&text, r#"blastwall_retries_total{route="checkout"}"#) >= 1.0);
    assert_eq!(
        value(
            &text,
            r#"blastwall_responses_total{route="checkout",cluster="shop",class="5xx"}"#
        ),
        0.0
    );
    assert_promtool_accepts(&text);
    a.stop().await;
}
