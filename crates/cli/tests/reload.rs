//! The proxy takes a new config while serving (SIGHUP or a changed file), refuses a bad one
//! without a hiccup, and no request fails because of a reload.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use support::{Mock, Proxy, admin_section, eventually, get};

/// A config with one listener and, for each `(name, mock)`, a route `/name/` to a cluster
/// `name` holding that mock.
fn config(routes: &[(&str, &Mock)]) -> String {
    let mut text = String::from(
        "[proxy]\ndrain_timeout = \"5s\"\n\n[[listener]]\nname = \"public\"\nlisten = \"127.0.0.1:0\"\n",
    );
    for (name, _) in routes {
        text.push_str(&format!(
            "\n[[route]]\nname = \"{name}\"\ncluster = \"{name}\"\nmatch = {{ path_prefix = \"/{name}/\" }}\n"
        ));
    }
    for (name, mock) in routes {
        text.push_str(&format!(
            "\n[cluster.{name}]\nendpoints = [{{ address = \"{}\" }}]\n",
            mock.addr
        ));
    }
    text.push_str(&admin_section(""));
    text
}

/// What a stream of requests saw.
#[derive(Debug, Default)]
struct Tally {
    ok: u64,
    failures: Vec<String>,
    answered_by: BTreeMap<String, u64>,
}

/// Requests sent in a loop by a few workers on keep-alive connections, until stopped (or a
/// bound on count and time is reached).
struct Load {
    tally: Arc<Mutex<Tally>>,
    stop: Arc<AtomicBool>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

const WORKERS: usize = 3;
const MAX_REQUESTS_PER_WORKER: usize = 4000;
const MAX_LOAD_TIME: Duration = Duration::from_secs(40);

impl Load {
    fn start(url: String) -> Self {
        let tally = Arc::new(Mutex::new(Tally::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let workers = (0..WORKERS)
            .map(|_| {
                let (url, tally, stop) = (url.clone(), tally.clone(), stop.clone());
                tokio::spawn(async move {
                    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
                    let started = Instant::now();
                    for _ in 0..MAX_REQUESTS_PER_WORKER {
                        if stop.load(Ordering::Relaxed) || started.elapsed() > MAX_LOAD_TIME {
                            return;
                        }
                        let outcome = match client.get(url.parse().expect("a URL")).await {
                            Ok(response) => {
                                let status = response.status();
                                let name = response
                                    .headers()
                                    .get("x-mock-name")
                                    .and_then(|name| name.to_str().ok())
                                    .unwrap_or_default()
                                    .to_owned();
                                match response.into_body().collect().await {
                                    Ok(_) if status == StatusCode::OK => Ok(name),
                                    Ok(_) => Err(format!("status {status}")),
                                    Err(error) => Err(format!("body: {error}")),
                                }
                            }
                            Err(error) => Err(format!("{error:?}")),
                        };
                        let mut tally = tally.lock().expect("tally");
                        match outcome {
                            Ok(name) => {
                                tally.ok += 1;
                                *tally.answered_by.entry(name).or_default() += 1;
                            }
                            Err(failure) => tally.failures.push(failure),
                        }
                    }
                })
            })
            .collect();
        Self {
            tally,
            stop,
            workers,
        }
    }

    fn ok(&self) -> u64 {
        self.tally.lock().expect("tally").ok
    }

    fn answered_by(&self, name: &str) -> u64 {
        let tally = self.tally.lock().expect("tally");
        tally.answered_by.get(name).copied().unwrap_or_default()
    }

    /// Waits until `more` requests have succeeded beyond those so far.
    async fn run_for(&self, more: u64) {
        let target = self.ok() + more;
        let reached = eventually(Duration::from_secs(20), || async { self.ok() >= target }).await;
        assert!(reached, "traffic stalled: {:?}", self.tally.lock());
    }

    async fn stop(self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        for worker in self.workers {
            worker.await.expect("worker finished");
        }
        std::mem::take(&mut *self.tally.lock().expect("tally"))
    }
}

async fn answered_by(url: &str) -> Option<String> {
    let (status, headers, _) = get(url).await;
    (status == StatusCode::OK).then(|| headers["x-mock-name"].to_str().expect("ascii").to_owned())
}

#[tokio::test]
async fn sighup_puts_a_new_route_in_force() {
    let (a, b) = (Mock::start("a", &[]), Mock::start("b", &[]));
    let mut proxy = Proxy::start_with(&config(&[("a", &a)]), &["--no-watch"]);
    assert_eq!(get(&proxy.url("/b/x")).await.0, StatusCode::NOT_FOUND);
    std::fs::write(&proxy.config_path, config(&[("a", &a), ("b", &b)])).expect("written");
    proxy.process.signal("HUP");
    proxy.process.wait_for_line("config reloaded");
    assert_eq!(answered_by(&proxy.url("/b/x")).await.as_deref(), Some("b"));
    assert_eq!(answered_by(&proxy.url("/a/x")).await.as_deref(), Some("a"));
}

#[tokio::test]
async fn a_config_file_replaced_by_rename_is_picked_up_without_a_signal() {
    let (a, b) = (Mock::start("a", &[]), Mock::start("b", &[]));
    let mut proxy = Proxy::start_with(&config(&[("a", &a)]), &["--watch-interval", "100ms"]);
    proxy.replace_config(&config(&[("a", &a), ("b", &b)]));
    let line = proxy.process.wait_for_line("config reloaded");
    assert!(line.contains("(config "), "names the hash in force: {line}");
    assert_eq!(answered_by(&proxy.url("/b/x")).await.as_deref(), Some("b"));
}

#[tokio::test]
async fn a_bad_config_is_refused_and_the_old_routes_answer_every_request_meanwhile() {
    let a = Mock::start("a", &[]);
    let good = config(&[("a", &a)]);
    let mut proxy = Proxy::start_with(&good, &["--no-watch"]);
    let load = Load::start(proxy.url("/a/x"));
    load.run_for(50).await;
    let bad = good.replace("drain_timeout = \"5s\"", "drain_timeout = \"soon\"")
        + "\n[[route]]\ncluster = \"missing\"\n";
    std::fs::write(&proxy.config_path, bad).expect("written");
    proxy.process.signal("HUP");
    let line = proxy.process.wait_for_line("config reload refused");
    assert!(
        line.contains("(2 errors;"),
        "every error is reported: {line}"
    );
    load.run_for(50).await;
    let tally = load.stop().await;
    assert!(tally.failures.is_empty(), "{:?}", tally.failures);
    assert_eq!(answered_by(&proxy.url("/a/x")).await.as_deref(), Some("a"));
}

#[tokio::test]
async fn a_reload_that_moves_a_cluster_to_new_endpoints_loses_no_request() {
    let (a, b) = (Mock::start("a", &[]), Mock::start("b", &[]));
    let mut proxy = Proxy::start_with(&config(&[("api", &a)]), &["--no-watch"]);
    let load = Load::start(proxy.url("/api/x"));
    load.run_for(50).await;
    std::fs::write(&proxy.config_path, config(&[("api", &b)])).expect("written");
    proxy.process.signal("HUP");
    proxy.process.wait_for_line("config reloaded");
    let moved = eventually(Duration::from_secs(20), || async {
        load.answered_by("b") >= 200
    })
    .await;
    let tally = load.stop().await;
    assert!(moved, "the new endpoint takes the traffic: {tally:?}");
    assert!(tally.failures.is_empty(), "{:?}", tally.failures);
    assert!(tally.answered_by.get("a").is_some_and(|&count| count > 0));
}

#[tokio::test]
async fn a_listener_added_by_a_reload_serves_and_the_one_removed_refuses_connections() {
    let a = Mock::start("a", &[]);
    let first = config(&[("a", &a)]);
    let mut proxy = Proxy::start_with(&first, &["--no-watch"]);
    let old = proxy.addr();
    std::fs::write(
        &proxy.config_path,
        first.replace("\"public\"", "\"private\""),
    )
    .expect("written");
    proxy.process.signal("HUP");
    let line = proxy
        .process
        .wait_for_line("listener \"private\" listening on");
    let new = &line[line.find("http://").expect("an address")..];
    proxy.process.wait_for_line("config reloaded");
    assert_eq!(
        answered_by(&format!("{new}/a/x")).await.as_deref(),
        Some("a")
    );
    let refused = eventually(Duration::from_secs(10), || async {
        tokio::net::TcpStream::connect(old).await.is_err()
    })
    .await;
    assert!(refused, "the removed listener still accepts on {old}");
}

#[tokio::test]
async fn a_listener_that_cannot_bind_refuses_the_reload_and_the_old_config_keeps_serving() {
    let a = Mock::start("a", &[]);
    let first = config(&[("a", &a)]);
    let mut proxy = Proxy::start_with(&first, &["--no-watch"]);
    let holder = std::net::TcpListener::bind("127.0.0.1:0").expect("a port to occupy");
    let taken = holder.local_addr().expect("bound");
    let second = format!("{first}\n[[listener]]\nname = \"taken\"\nlisten = \"{taken}\"\n");
    std::fs::write(&proxy.config_path, second).expect("written");
    proxy.process.signal("HUP");
    proxy
        .process
        .wait_for_line("config reload refused (1 error;");
    assert_eq!(answered_by(&proxy.url("/a/x")).await.as_deref(), Some("a"));
}
