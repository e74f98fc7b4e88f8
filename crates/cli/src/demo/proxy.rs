//! `blastwall demo` (proxy): the proxy, with a built-in config, in front of three replicas
//! of a checkout service: two primaries and a standby.
//!
//! - **healthy**: the primaries share the traffic;
//! - **gray failure**: one primary turns slow (still passing its health checks); peak-EWMA
//!   balancing sees its latency and sends it little or nothing, so the client's latency stays
//!   the healthy one's;
//! - **primaries down**: both primaries crash; until health checks take them out (a few
//!   hundred milliseconds), retries send each request that meets a dead primary to another
//!   replica, so no client sees an error; then the standby (priority 1) takes all traffic;
//! - **recovered**: the primaries come back; health checks return them and traffic fails
//!   back to them.
//!
//! The cluster has a breaker (five failures in a row, timeouts included), which the
//! scenario itself never opens (retries answer every request): it is there for the fault
//! the README puts on the `checkout` route while the demo runs (a 2 s delay against the
//! route's 1 s timeout), to show on the dashboard what a breaker does.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use blastwall_chaos::mock::{self, Behaviour, MockConfig, MockHandle, NAME_HEADER};
use blastwall_proxy::Config;
use blastwall_proxy::Proxy;
use bytes::Bytes;
use http::Uri;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::oneshot;

use super::{Admin, DemoArgs, format_latency, open_loop_second, percentile};

const SLOW: Duration = Duration::from_millis(100);
const REPLICAS: [&str; 3] = ["primary-a", "primary-b", "standby"];

/// Runs the scenario.
pub async fn run(args: &DemoArgs) -> anyhow::Result<()> {
    let mut replicas = Replicas::start().await?;
    let config = Config::parse(
        &built_in_config(&replicas.addrs, args.admin),
        Path::new("(built-in demo config)"),
    )
    .map_err(|errors| anyhow::anyhow!("the built-in demo config is invalid:\n{errors}"))?;
    let proxy = Proxy::bind(config)
        .await
        .map_err(|errors| anyhow::anyhow!("{errors}"))?;
    let (_, proxy_addr) = proxy
        .local_addrs()
        .into_iter()
        .next()
        .context("the demo proxy has a listener")?;
    let dashboard = proxy.admin_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = tokio::spawn(proxy.serve(async {
        let _ = stopped.await;
    }));
    let uri: Uri = format!("http://{proxy_addr}/checkout").parse()?;
    println!("blastwall demo: the proxy at {proxy_addr} in front of a checkout service:");
    println!(
        "  primary-a {}, primary-b {} (priority 0), standby {} (priority 1)",
        replicas.addrs[0], replicas.addrs[1], replicas.addrs[2]
    );
    println!(
        "  peak-EWMA balancing, HTTP health checks every 200ms, up to 3 attempts per request;\n  a client sends {} requests/s\n",
        args.rate
    );
    if let Some(admin) = dashboard {
        println!("  watch it live: http://{admin}/dashboard (metrics at http://{admin}/metrics)\n");
    }
    println!(
        "  second  phase          requests    ok  errors      p50      p99   primary-a primary-b standby"
    );

    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut second = 0;
    for phase in Phase::ALL {
        replicas.enter(phase).await?;
        for _ in 0..args.phase.as_secs() {
            second += 1;
            let row = one_second(&client, &uri, args.rate).await;
            println!("  {second:>5}s  {:<13} {row}", phase.name());
        }
    }
    let _ = stop.send(());
    let _ = serving.await;
    replicas.stop_all().await;
    println!(
        "\nA slow replica got little traffic, crashed primaries were taken out by health checks and"
    );
    println!(
        "the standby answered in their place, then traffic went back to the primaries on its own."
    );
    println!(
        "No request failed: in the moment between a crash and its detection, retries sent each"
    );
    println!("request that met a dead primary to another replica, within the retry budget.");
    Ok(())
}

fn built_in_config(addrs: &[SocketAddr], admin: Option<Admin>) -> String {
    // Unset, the default admin address, which may be taken (then there is no dashboard).
    let admin = match admin {
        None => String::new(),
        Some(Admin::Off) => "[admin]\nlisten = \"off\"\n".to_owned(),
        Some(Admin::At(addr)) => format!("[admin]\nlisten = \"{addr}\"\n"),
    };
    format!(
        r#"{admin}
[[listener]]
name = "demo"
listen = "127.0.0.1:0"

[[route]]
name = "checkout"
cluster = "checkout"
timeout = "1s"
per_try_timeout = "300ms"

[route.retry]
attempts = 3
backoff = {{ base = "5ms", max = "50ms" }}

[cluster.checkout]
balance = "peak_ewma"
request_timeout = "2s"
endpoints = [
  {{ address = "{}" }},
  {{ address = "{}" }},
  {{ address = "{}", priority = 1 }},
]

# Counts timeouts too: a latency fault on the route (see the README) opens it.
[cluster.checkout.circuit_breaker]
consecutive_failures = 5
open_duration = "5s"

[cluster.checkout.health_check]
kind = "http"
path = "/healthz"
interval = "200ms"
timeout = "150ms"
healthy_threshold = 2
unhealthy_threshold = 1
"#,
        addrs[0], addrs[1], addrs[2]
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Healthy,
    GrayFailure,
    PrimariesDown,
    Recovered,
}

impl Phase {
    const ALL: [Phase; 4] = [
        Phase::Healthy,
        Phase::GrayFailure,
        Phase::PrimariesDown,
        Phase::Recovered,
    ];

    fn name(self) -> &'static str {
        match self {
            Phase::Healthy => "healthy",
            Phase::GrayFailure => "gray-failure",
            Phase::PrimariesDown => "primaries-down",
            Phase::Recovered => "recovered",
        }
    }
}

/// The three mock replicas, which the demo slows, kills and restarts where they were.
struct Replicas {
    addrs: Vec<SocketAddr>,
    running: Vec<Option<MockHandle>>,
}

impl Replicas {
    fn healthy() -> Behaviour {
        Behaviour {
            latency: Duration::from_millis(2),
            latency_jitter: Duration::from_millis(3),
            ..Behaviour::default()
        }
    }

    async fn spawn(name: &str, listen: SocketAddr) -> anyhow::Result<MockHandle> {
        mock::start(MockConfig {
            name: name.into(),
            listen,
            behaviour: Self::healthy(),
            seed: 7,
        })
        .await
        .with_context(|| format!("cannot start the mock replica {name}"))
    }

    async fn start() -> anyhow::Result<Self> {
        let mut running = Vec::new();
        for name in REPLICAS {
            running.push(Some(Self::spawn(name, "127.0.0.1:0".parse()?).await?));
        }
        let addrs = running.iter().flatten().map(MockHandle::addr).collect();
        Ok(Self { addrs, running })
    }

    async fn enter(&mut self, phase: Phase) -> anyhow::Result<()> {
        match phase {
            Phase::Healthy => {}
            Phase::GrayFailure => {
                println!("  -- primary-b turns slow: every answer takes {SLOW:?}");
                if let Some(Some(replica)) = self.running.get(1) {
                    replica.set_behaviour(Behaviour {
                        latency: SLOW,
                        ..Self::healthy()
                    })?;
                }
            }
            Phase::PrimariesDown => {
                println!("  -- primary-a and primary-b crash");
                for replica in &mut self.running[..2] {
                    if let Some(handle) = replica.take() {
                        handle.stop().await;
                    }
                }
            }
            Phase::Recovered => {
                println!("  -- primary-a and primary-b restart, healthy");
                for ((slot, name), addr) in self
                    .running
                    .iter_mut()
                    .zip(REPLICAS)
                    .zip(&self.addrs)
                    .take(2)
                {
                    *slot = Some(Self::spawn(name, *addr).await?);
                }
            }
        }
        Ok(())
    }

    async fn stop_all(&mut self) {
        for replica in &mut self.running {
            if let Some(handle) = replica.take() {
                handle.stop().await;
            }
        }
    }
}

/// One second of open-loop requests through the proxy, as a table row.
async fn one_second(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>,
    uri: &Uri,
    rate: u32,
) -> String {
    let results = open_loop_second(rate, || {
        let (client, uri) = (client.clone(), uri.clone());
        async move {
            let response = client.get(uri).await.ok()?;
            let ok = response.status().is_success();
            let replica = response
                .headers()
                .get(NAME_HEADER)
                .and_then(|name| name.to_str().ok())
                .and_then(|name| REPLICAS.iter().position(|known| *known == name));
            response.into_body().collect().await.ok()?;
            Some((ok, replica))
        }
    })
    .await;
    let mut latencies: Vec<Duration> = results.iter().map(|(took, _)| *took).collect();
    latencies.sort_unstable();
    let ok = results
        .iter()
        .filter(|(_, result)| matches!(result, Some((true, _))))
        .count();
    let mut by_replica = [0usize; 3];
    for (_, result) in &results {
        if let Some((true, Some(replica))) = result {
            by_replica[*replica] += 1;
        }
    }
    format!(
        "{:>8} {ok:>5} {:>7} {:>8} {:>8} {:>11} {:>9} {:>7}",
        results.len(),
        results.len() - ok,
        format_latency(percentile(&latencies, 0.50)),
        format_latency(percentile(&latencies, 0.99)),
        by_replica[0],
        by_replica[1],
        by_replica[2],
    )
}
