//! `blastwall mock`: a simulated service that misbehaves on demand.
//!
//! The flags set the behaviour every request gets; `--path` gives some paths their own,
//! `--phases` a timetable of behaviours read from a file, and `--behaviour` any field as JSON
//! over all of them (the JSON `PATCH /_mock/behaviour` takes). Each is checked before the
//! mock starts, and an error names the flag it came from.

use std::net::SocketAddr;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use blastwall_chaos::mock::{
    self, AfterPhases, Behaviour, Latency, MockConfig, Mode, PathBehaviour, Phase,
};
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
    /// A path with a behaviour of its own, as PREFIX=JSON: requests whose path starts with
    /// PREFIX get the behaviour JSON describes, like `--path '/orders={"status":503}'`. Its
    /// fields not given take their defaults, not the other flags'. Repeat it for more paths;
    /// the longest matching prefix answers.
    #[arg(long = "path", value_name = "PREFIX=JSON", value_parser = path_behaviour)]
    paths: Vec<PathBehaviour>,
    /// A timetable of behaviours from a JSON file: a list of phases, like
    /// `[{"behaviour": {}, "for": "30s"}, {"behaviour": {"status": 503}, "for": "10s"}]`.
    /// It starts when the mock does; while it runs, the other flags are not used.
    #[arg(long, value_name = "FILE")]
    phases: Option<PathBuf>,
    /// After the last phase: hold it (the default) or loop back to the first.
    #[arg(long, value_enum, requires = "phases")]
    after_phases: Option<AfterPhasesArg>,
    /// More of the behaviour as JSON, over all the flags above (a field given replaces
    /// theirs): what no flag says, such as `latency_distribution` (see
    /// `PATCH /_mock/behaviour`).
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

#[derive(Debug, Clone, Copy, ValueEnum)]
enum AfterPhasesArg {
    Hold,
    Loop,
}

impl From<AfterPhasesArg> for AfterPhases {
    fn from(after: AfterPhasesArg) -> Self {
        match after {
            AfterPhasesArg::Hold => AfterPhases::Hold,
            AfterPhasesArg::Loop => AfterPhases::Loop,
        }
    }
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
        paths: args.paths,
        phases: match &args.phases {
            Some(file) => phases(file)?,
            None => Vec::new(),
        },
        after_phases: args
            .after_phases
            .map_or(AfterPhases::Hold, AfterPhases::from),
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

/// `--path PREFIX=JSON`: the prefix and its behaviour, each checked.
fn path_behaviour(text: &str) -> Result<PathBehaviour, String> {
    let Some((prefix, json)) = text.split_once('=') else {
        return Err(format!(
            "expected PREFIX=JSON, like '/orders={{\"status\":503}}', got {text:?}"
        ));
    };
    if !prefix.starts_with('/') {
        return Err(format!("the prefix must start with '/', got {prefix:?}"));
    }
    let behaviour: Behaviour =
        serde_json::from_str(json).map_err(|err| format!("the behaviour of {prefix}: {err}"))?;
    behaviour
        .validate()
        .map_err(|err| format!("the behaviour of {prefix}: {err}"))?;
    Ok(PathBehaviour {
        prefix: prefix.to_owned(),
        behaviour,
    })
}

/// `--phases FILE`: the list of phases it holds, checked as the mock will check them.
fn phases(file: &Path) -> anyhow::Result<Vec<Phase>> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read --phases {}", file.display()))?;
    let phases: Vec<Phase> = serde_json::from_str(&text).with_context(|| {
        format!(
            "invalid --phases {}: expected a list of phases, like [{{\"behaviour\": {{\"status\": 503}}, \"for\": \"30s\"}}]",
            file.display()
        )
    })?;
    let script = Behaviour {
        phases,
        ..Behaviour::default()
    };
    script
        .validate()
        .with_context(|| format!("invalid --phases {}", file.display()))?;
    Ok(script.phases)
}
