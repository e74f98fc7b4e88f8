//! `blastwall run`: serve traffic with a config file until told to stop.
//!
//! One loop owns the proxy and does one thing at a time: a reload (SIGHUP, or the config
//! file's content changed) or the drain (SIGTERM or SIGINT). Signals are caught before the
//! config is even read, so one that arrives during startup or during a reload waits its
//! turn: it is neither lost nor acted on twice (the kernel folds repeats of a pending signal
//! into one).
//!
//! A reload validates the new file first; a bad one is refused with every error logged, and
//! the old config keeps serving. Logged errors give file, line, column and message but
//! never the offending line, which may hold a header value or the token; a config that does
//! not load at start is shown with its lines only when stderr is a terminal (the operator
//! at a shell), not when it is a log a supervisor keeps.
//!
//! The drain stops accepting at once, lets requests in flight finish for up to
//! `[proxy] drain_timeout`, and exits 0; a second SIGTERM or SIGINT during the drain exits
//! at once with status 1.
//!
//! A reload asked for through the admin API (`POST /admin/reload`) is one more trigger of
//! the same loop, answered with its outcome.
//!
//! Besides the log (stderr), events that scripts and tests wait for are printed as single
//! lines on stdout: `listener "name" listening on http://addr`, `admin listening on
//! http://addr`, `blastwall ready (config
//! HASH)`, `config reloaded (config HASH)`, `config unchanged (config HASH)`,
//! `config reload refused (N errors; config HASH stays in force)`, `draining (...)` and
//! `drained (...)`.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use blastwall_proxy::ConfigWatcher;
use blastwall_proxy::Proxy;
use blastwall_proxy::{Config, ConfigErrors};
use blastwall_proxy::{DrainReport, ReloadOutcome, ReloadTrigger};
use clap::Args;
use tokio::signal::unix::{Signal, SignalKind, signal};

/// Exit status when a second signal cuts the drain short.
const EXIT_DRAIN_CUT: i32 = 1;

/// Flags of `blastwall run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The config file.
    #[arg(short, long, default_value = "blastwall.toml")]
    config: PathBuf,
    /// Log filter, like `info` or `blastwall_proxy=debug` (also read from RUST_LOG).
    #[arg(long, default_value = "info")]
    log: String,
    /// How often to look at the config file; a change of its content reloads it.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
    watch_interval: Duration,
    /// Reload only on SIGHUP, never because the file changed.
    #[arg(long)]
    no_watch: bool,
}

impl RunArgs {
    /// `[proxy] worker_threads` of the config file, read before the runtime exists (the
    /// runtime is built for it). A file that does not load gives `None` here; `run` then
    /// reports its errors.
    pub fn worker_threads(&self) -> Option<NonZeroUsize> {
        Config::load(&self.config)
            .ok()
            .and_then(|config| config.proxy.worker_threads)
    }
}

/// Serves until SIGTERM or SIGINT, then drains.
pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    init_logging(&args.log);
    // NOTE: first, so that SIGHUP during startup does not kill the process (its default)
    // and SIGTERM during startup is not lost.
    let mut hangups = signal(SignalKind::hangup())?;
    let mut stops = Stops::catch()?;
    // As many descriptors as the process may have, before the config is checked against
    // them (see `blastwall_proxy::descriptors`).
    match blastwall_proxy::raise_open_file_limit() {
        Ok(limit) => tracing::debug!(limit, "open-file limit raised to the hard limit"),
        Err(error) => tracing::warn!(%error, "cannot raise the open-file limit"),
    }
    let config = match Config::load(&args.config) {
        Ok(config) => config,
        Err(errors) => {
            print_start_errors(&errors);
            return Ok(ExitCode::FAILURE);
        }
    };
    let hash = config.source.hash.clone();
    let mut proxy = match Proxy::bind(config).await {
        Ok(proxy) => proxy,
        Err(errors) => {
            print_start_errors(&errors);
            return Ok(ExitCode::FAILURE);
        }
    };
    let worker_threads = proxy.worker_threads();
    print_listeners(&proxy.local_addrs(), &[]);
    if let Some(addr) = proxy.admin_addr() {
        println!("admin listening on http://{addr}");
    }
    println!("blastwall ready (config {hash})");
    let mut watcher =
        (!args.no_watch).then(|| ConfigWatcher::new(&args.config, hash, args.watch_interval));
    let stopped_by = loop {
        let (trigger, asked) = tokio::select! {
            biased;
            name = stops.next() => break name,
            Some(()) = hangups.recv() => (ReloadTrigger::Signal, None),
            _ = file_changed(&mut watcher) => (ReloadTrigger::FileChanged, None),
            asked = proxy.reload_requested() => (ReloadTrigger::Api, Some(asked)),
        };
        let before = proxy.local_addrs();
        let outcome = proxy.reload(trigger).await;
        if let Some(watcher) = &mut watcher {
            match &outcome {
                ReloadOutcome::Applied(applied) => watcher.saw(applied.hash.clone()),
                ReloadOutcome::Refused {
                    hash: Some(hash), ..
                } => watcher.saw(hash.clone()),
                _ => {}
            }
        }
        print_listeners(&proxy.local_addrs(), &before);
        if proxy.worker_threads() != worker_threads {
            tracing::warn!(
                "[proxy] worker_threads changed: the thread count is set at start and stays as it is until a restart"
            );
        }
        print_reload(&outcome, &proxy.config_hash());
        if let Some(asked) = asked {
            asked.reply(outcome);
        }
        // A reload also reopens the access log (log rotation), even when the config did not
        // change.
        proxy.reopen_access_log();
    };
    let (connections, requests) = proxy.traffic();
    println!("draining on {stopped_by} ({connections} connections, {requests} requests in flight)");
    tokio::select! {
        report = proxy.drain() => {
            print_drained(&report);
            Ok(ExitCode::SUCCESS)
        }
        name = stops.next() => {
            tracing::warn!("{name} during the drain: exiting at once");
            println!("drain cut short by {name}");
            let _ = std::io::stdout().flush();
            // Exiting here, not returning: dropping the runtime would wait for blocking tasks.
            std::process::exit(EXIT_DRAIN_CUT);
        }
    }
}

/// SIGTERM and SIGINT, caught from startup on.
struct Stops {
    terminate: Signal,
    interrupt: Signal,
}

impl Stops {
    fn catch() -> std::io::Result<Self> {
        Ok(Self {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    /// The next stop signal's name.
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            Some(()) = self.terminate.recv() => "SIGTERM",
            Some(()) = self.interrupt.recv() => "SIGINT",
            else => std::future::pending().await,
        }
    }
}

/// The next change of the config file, or never when it is not watched.
async fn file_changed(watcher: &mut Option<ConfigWatcher>) -> String {
    match watcher {
        Some(watcher) => watcher.changed().await,
        None => std::future::pending().await,
    }
}

fn print_listeners(now: &[(String, SocketAddr)], before: &[(String, SocketAddr)]) {
    for (name, addr) in now {
        if !before.iter().any(|(old, at)| old == name && at == addr) {
            // NOTE: tests and scripts wait for these exact lines to know where to connect.
            println!("listener {name:?} listening on http://{addr}");
        }
    }
}

fn print_reload(outcome: &ReloadOutcome, in_force: &str) {
    match outcome {
        ReloadOutcome::Applied(applied) => println!("config reloaded (config {})", applied.hash),
        ReloadOutcome::Unchanged { hash } => println!("config unchanged (config {hash})"),
        ReloadOutcome::Refused { errors, .. } => {
            let count = errors.0.len();
            let noun = if count == 1 { "error" } else { "errors" };
            println!("config reload refused ({count} {noun}; config {in_force} stays in force)");
        }
    }
}

/// Why the proxy cannot start: with the offending lines on a terminal, as a summary (no
/// source text, which may hold a secret) into a log.
fn print_start_errors(errors: &ConfigErrors) {
    if std::io::stderr().is_terminal() {
        eprintln!("{errors}");
    } else {
        eprintln!("{}", errors.summary());
    }
}

fn print_drained(report: &DrainReport) {
    println!(
        "drained in {:?} ({} connections, {} requests were in flight; {} connections and {} requests cut at the drain timeout)",
        report.elapsed,
        report.connections,
        report.requests,
        report.cut_connections,
        report.cut_requests
    );
}

/// The log subscriber, its filter behind a reload layer so that
/// `blastwall_proxy::telemetry::set_log_filter` (the admin API's `PUT /admin/log-level`)
/// can change it while the proxy runs.
fn init_logging(filter: &str) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, fmt, reload};
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(filter));
    let (filter, handle) = reload::Layer::new(filter);
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(fmt::layer().with_writer(std::io::stderr))
        .try_init();
    if installed.is_ok() {
        blastwall_proxy::install_log_filter(move |text| {
            let filter = EnvFilter::try_new(text).map_err(|error| error.to_string())?;
            handle.reload(filter).map_err(|error| error.to_string())
        });
    }
}
