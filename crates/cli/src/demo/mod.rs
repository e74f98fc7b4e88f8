//! `blastwall demo`: Blastwall surviving failures, with nothing to configure.
//!
//! Two scenarios, each a few mock services on loopback under a steady open-loop load:
//!
//! - `shop` (the default): a small shop behind the proxy, and its fault-tolerance spec
//!   run as `blastwall verify` runs one, each failure's verdicts measured ([`shop`]);
//! - `library`: the policy library's stack in a caller, its dependency turning slow,
//!   crashing and recovering, printed second by second ([`library`]).

mod library;
mod shop;

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};

/// Flags of `blastwall demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// What to show.
    #[arg(value_enum, default_value_t = Scenario::Shop)]
    scenario: Scenario,
    /// Where the shop's reports go (report.html, report.json, junit.xml, the processes' logs).
    #[arg(long, value_name = "DIR", default_value = "blastwall-report")]
    report: PathBuf,
    /// Keep the shop running after its experiments, for the dashboard, until Ctrl-C.
    #[arg(long)]
    keep: bool,
    /// Run only this failure of the shop (repeatable: zone-down, payments-down,
    /// cache-down, analytics-down); default: all four.
    #[arg(long, value_name = "NAME")]
    only: Vec<String>,
    /// No live progress line.
    #[arg(long)]
    quiet: bool,
    /// How long each phase of the library scenario lasts.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "4s")]
    phase: Duration,
    /// Requests per second the library scenario sends.
    #[arg(long, default_value_t = 50)]
    rate: u32,
    /// Where the shop's admin API (its dashboard) listens: an address, or `off` (any free
    /// port, not shown). Unset, the default admin address when it is free, else any port.
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
    /// A small shop behind the proxy: four failures, each proved under load.
    Shop,
    /// The policy library in a caller: breaker, retries with budget, bulkhead, timeout.
    Library,
}

/// Runs the chosen scenario and prints what happens; the shop's exit code is `verify`'s.
pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    match args.scenario {
        Scenario::Shop => shop::run(&args).await,
        Scenario::Library => {
            anyhow::ensure!(args.rate > 0, "--rate must be at least 1");
            anyhow::ensure!(
                args.phase >= Duration::from_secs(3),
                "--phase must be at least 3s, so health checks and the breaker's open time fit in it"
            );
            library::run(&args).await.map(|()| ExitCode::SUCCESS)
        }
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
