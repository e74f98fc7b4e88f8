//! `blastwall mock`: a simulated service that misbehaves on demand.

use std::net::SocketAddr;
use std::num::NonZeroU64;
use std::time::Duration;

use anyhow::Context;
use blastwall_chaos::mock::{self, Behaviour, Latency, MockConfig, Mode};
use clap::{Args, ValueEnum};

/// Flags of `blastwall mock`.
#[derive(Debug, Args)]
pub struct MockArgs {
    /// Address to listen on; port 0 picks a free port (printed on start).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Name sent in every answer's `x-mock-name` header.
    #[arg(long, default_value = "mock")]
    name: String,
    /// Time to wait before answering, like `20ms`.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0ms")]
    latency: Duration,
    /// Up to this much more latency, uniformly at random.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0ms")]
    latency_jitter: Duration,
    /// Median of a log-normal latency, like `20ms` (with --latency-p99; replaces --latency
    /// and --latency-jitter).
    #[arg(long, value_parser = humantime::parse_duration, requires = "latency_p99")]
    latency_p50: Option<Duration>,
    /// 99th percentile of a log-normal latency, like `400ms` (with --latency-p50).
    #[arg(long, value_parser = humantime::parse_duration, requires = "latency_p50")]
    latency_p99: Option<Duration>,
    /// Status of a normal answer.
    #[arg(long, default_value_t = 200)]
    status: u16,
    /// Body of a normal answer.
    #[arg(long, default_value = "ok\n")]
    body: String,
    /// Share of requests (0 to 1) answered with --failure-status.
    #[arg(long, default_value_t = 0.0)]
    failure_rate: f64,
    /// Status of a failed answer.
    #[arg(long, default_value_t = 500)]
    failure_status: u16,
    /// Requests served at once before answering 503 with Retry-After.
    #[arg(long)]
    capacity: Option<u32>,
    /// Whether to answer at all.
    #[arg(long, value_enum, default_value_t = ModeArg::Serve)]
    mode: ModeArg,
    /// Answer with a JSON description of each request.
    #[arg(long)]
    echo: bool,
    /// Answer with this many bytes instead of the body (a large answer).
    #[arg(long)]
    body_size: Option<usize>,
    /// Send the body at this many bytes a second.
    #[arg(long)]
    body_rate: Option<NonZeroU64>,
    /// Break the body off after this many bytes (the connection is closed).
    #[arg(long)]
    truncate_after: Option<usize>,
    /// More of the behaviour as JSON, over the flags above: what no flag says, such as
    /// `latency_distribution`, `paths` and `phases` (see `PATCH /_mock/behaviour`).
    #[arg(long, value_name = "JSON")]
    behaviour: Option<String>,
    /// Seed for the failure and latency draws.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ModeArg {
    Serve,
    Reset,
    Hang,
    CutBody,
    StallBody,
}

impl From<ModeArg> for Mode {
    fn from(mode: ModeArg) -> Self {
        match mode {
            ModeArg::Serve => Mode::Serve,
            ModeArg::Reset => Mode::Reset,
            ModeArg::Hang => Mode::Hang,
            ModeArg::CutBody => Mode::CutBody,
            ModeArg::StallBody => Mode::StallBody,
        }
    }
}

/// Serves until interrupted or terminated.
pub async fn run(args: MockArgs) -> anyhow::Result<()> {
    let behaviour = Behaviour {
        latency: args.latency,
        latency_jitter: args.latency_jitter,
        status: args.status,
        body: args.body,
        failure_rate: args.failure_rate,
        failure_status: args.failure_status,
        capacity: args.capacity,
        mode: args.mode.into(),
        echo: args.echo,
        body_size: args.body_size,
        latency_distribution: args
            .latency_p50
            .zip(args.latency_p99)
            .map(|(p50, p99)| Latency::LogNormal { p50, p99 }),
        body_rate: args.body_rate,
        truncate_after: args.truncate_after,
        ..Behaviour::default()
    };
    let behaviour = match &args.behaviour {
        Some(json) => behaviour
            .patched(json.as_bytes())
            .context("invalid --behaviour")?,
        None => behaviour,
    };
    let handle = mock::start(MockConfig {
        name: args.name.clone(),
        listen: args.listen,
        behaviour,
        seed: args.seed,
    })
    .await
    .context("cannot start the mock")?;
    // NOTE: tests and scripts wait for this exact line to know the mock is ready.
    println!("mock {:?} listening on http://{}", args.name, handle.addr());
    crate::shutdown_signal().await;
    handle.stop().await;
    Ok(())
}
