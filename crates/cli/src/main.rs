//! `blastwall`: the one binary.

mod allocator;
mod check;
mod demo;
mod fault;
mod load;
mod mock;
mod run;
mod topology;
mod toxiproxy;
mod verify;

use std::num::NonZeroUsize;

use clap::{Parser, Subcommand};

/// Blastwall keeps services answering while their dependencies fail, and proves it.
#[derive(Debug, Parser)]
#[command(name = "blastwall", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve traffic with a config file.
    Run(run::RunArgs),
    /// Validate a config file and explain every error.
    Check(check::CheckArgs),
    /// Show the fault-tolerance mechanisms surviving a failure, with nothing to configure.
    Demo(demo::DemoArgs),
    /// Run a simulated service that misbehaves on demand (control API under /_mock/).
    ///
    /// The control API (GET/PUT/PATCH /_mock/behaviour, GET /_mock/stats) is on the mock's
    /// own port and answers only callers that reach the mock directly: a call that came
    /// through a proxy (it carries Forwarded, X-Forwarded-For or Via, as Blastwall's proxy
    /// adds) is refused with 403, so the clients of a proxy in front of the mock cannot
    /// change how it answers everyone. /_mock/echo answers either way.
    Mock(mock::MockArgs),
    /// Send HTTP load at a fixed rate (open loop) and report latency and errors; with
    /// --expect, judge the run (exit 0 when all held, 3 when one failed, 2 when it could not run).
    Load(load::LoadArgs),
    /// Serve Toxiproxy's HTTP API: TCP proxies that break on demand (latency, timeouts, resets…).
    Toxiproxy(toxiproxy::ToxiproxyArgs),
    /// Put faults on a running proxy's routes, list and delete them (its admin API).
    Fault(fault::FaultArgs),
    /// Run a fault-tolerance spec's failure modes as experiments under load and judge each
    /// expectation (exit 0 when all held, 3 when one failed, 2 when one could not run);
    /// writes report.json, junit.xml and report.html.
    Verify(verify::VerifyArgs),
}

fn main() -> anyhow::Result<std::process::ExitCode> {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Run(_) | Command::Mock(_)) {
        topology::die_with_parent();
    }
    let threads = match &cli.command {
        Command::Run(args) => args.worker_threads(),
        _ => None,
    };
    let runtime = runtime(threads)?;
    match cli.command {
        Command::Run(args) => runtime.block_on(run::run(args)),
        Command::Check(args) => check::run(args),
        Command::Demo(args) => runtime.block_on(demo::run(args)),
        Command::Mock(args) => runtime
            .block_on(mock::run(args))
            .map(|()| std::process::ExitCode::SUCCESS),
        Command::Load(args) => Ok(runtime.block_on(load::run(args))),
        Command::Toxiproxy(args) => runtime
            .block_on(toxiproxy::run(args))
            .map(|()| std::process::ExitCode::SUCCESS),
        Command::Fault(args) => runtime
            .block_on(fault::run(args))
            .map(|()| std::process::ExitCode::SUCCESS),
        Command::Verify(args) => Ok(runtime.block_on(verify::run(args))),
    }
}

/// The async runtime: with one thread, tokio's current-thread scheduler (everything on this
/// thread: no work stealing, no wakeups across threads, which costs measurably less CPU
/// per request than a work-stealing pool of one); otherwise a pool of `threads` workers,
/// or one per core.
fn runtime(threads: Option<NonZeroUsize>) -> std::io::Result<tokio::runtime::Runtime> {
    match threads {
        // Threads this runtime starts only ever run blocking work (`spawn_blocking`); the
        // name says so, so that a thread listing shows one serving thread.
        Some(threads) if threads.get() == 1 => tokio::runtime::Builder::new_current_thread()
            .thread_name("blastwall-block")
            .enable_all()
            .build(),
        Some(threads) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.get())
            .enable_all()
            .build(),
        None => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}
