//! `blastwall demo`: Blastwall surviving failures, with nothing to configure.
//!
//! Two scenarios, each a few mock services on loopback under a steady open-loop load,
//! printed second by second while the mocks fail on cue:
//!
//! - `proxy` (the default): the proxy in front of three replicas of a service; one turns
//!   slow, then the primaries crash and come back ([`proxy`]);
//! - `library`: the policy library's stack in a caller, its dependency turning slow,
//!   crashing and recovering ([`library`]).

mod library;
mod proxy;

use std::future::Future;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};

/// Flags of `blastwall demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// What to show.
    #[arg(value_enum, default_value_t = Scenario::Proxy)]
    scenario: Scenario,
    /// How long each phase lasts.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "4s")]
    phase: Duration,
    /// Requests per second sent.
    #[arg(long, default_value_t = 50)]
    rate: u32,
    /// Where the proxy scenario's admin listener (its dashboard) binds: an address, or
    /// `off`. Unset, it takes the default admin address, and runs without a dashboard when
    /// that is taken.
    #[arg(long, value_name = "ADDR|off", value_parser = parse_admin)]
    admin: Option<Admin>,
}

/// Where the demo proxy's admin listener binds, when `--admin` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admin {
    /// At this address (port 0: any free port).
    At(std::net::SocketAddr),
    /// Nowhere.
    Off,
}

fn parse_admin(value: &str) -> Result<Admin, String> {
    if value == "off" {
        return Ok(Admin::Off);
    }
    value
        .parse()
        .map(Admin::At)
        .map_err(|_| format!("`{value}` is neither an address (such as 127.0.0.1:0) nor `off`"))
}

/// The demo scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// The proxy in front of three replicas: gray failure, crash, failover, failback.
    Proxy,
    /// The policy library in a caller: breaker, retries with budget, bulkhead, timeout.
    Library,
}

/// Runs the chosen scenario and prints what happens.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.rate > 0, "--rate must be at least 1");
    anyhow::ensure!(
        args.phase >= Duration::from_secs(3),
        "--phase must be at least 3s, so health checks and the breaker's open time fit in it"
    );
    match args.scenario {
        Scenario::Proxy => proxy::run(&args).await,
        Scenario::Library => library::run(&args).await,
    }
}

/// Starts `rate` calls spread evenly over one second without waiting for answers (open
/// loop, so a slow dependency cannot slow the load down and hide its own latency), then
/// waits for them and returns each call's latency and result.
async fn open_loop_second<F, Fut, T>(rate: u32, mut call: F) -> Vec<(Duration, T)>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let mut calls = tokio::task::JoinSet::new();
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / rate);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for _ in 0..rate {
        ticks.tick().await;
        let call = call();
        calls.spawn(async move {
            let started = Instant::now();
            let result = call.await;
            (started.elapsed(), result)
        });
    }
    let mut results = Vec::with_capacity(rate as usize);
    while let Some(joined) = calls.join_next().await {
        if let Ok(result) = joined {
            results.push(result);
        }
    }
    results
}

/// The value at `quantile` of sorted latencies.
fn percentile(sorted: &[Duration], quantile: f64) -> Option<Duration> {
    let last = sorted.len().checked_sub(1)?;
    let rank = (quantile * last as f64).round() as usize;
    sorted.get(rank.min(last)).copied()
}

/// `850µs`, `12.5ms`, or `-` when there is nothing to show.
fn format_latency(latency: Option<Duration>) -> String {
    match latency {
        None => "-".into(),
        Some(latency) if latency < Duration::from_millis(1) => format!("{}µs", latency.as_micros()),
        Some(latency) => format!("{:.1}ms", latency.as_secs_f64() * 1000.0),
    }
}
