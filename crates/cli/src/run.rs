//! `blastwall run`: serve traffic with a config file until told to stop.
//!
//! SIGHUP reloads the config: the new one is validated first and a bad one is refused with
//! its errors logged while the old one keeps serving. SIGTERM or Ctrl-C drains: listeners
//! stop accepting, requests in flight finish (up to the config's drain timeout), and the
//! process exits.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use blastwall_proxy::Proxy;
use blastwall_proxy::config::Config;
use blastwall_proxy::reload::Runtime;
use clap::Args;
use tokio::signal::unix::{SignalKind, signal};

/// Flags of `blastwall run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The config file.
    #[arg(short, long, default_value = "blastwall.toml")]
    config: PathBuf,
    /// Log filter, like `info` or `blastwall_proxy=debug` (also read from RUST_LOG).
    #[arg(long, default_value = "info")]
    log: String,
}

/// Serves until SIGTERM or Ctrl-C.
pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    init_logging(&args.log);
    let config = match Config::load(&args.config) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{errors}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let hash = config.source.hash.clone();
    let proxy = match Proxy::bind(config).await {
        Ok(proxy) => proxy,
        Err(errors) => {
            eprintln!("{errors}");
            return Ok(ExitCode::FAILURE);
        }
    };
    for (name, addr) in proxy.local_addrs() {
        // NOTE: tests and scripts wait for these exact lines to know the proxy is ready.
        println!("listener {name:?} listening on http://{addr}");
    }
    println!("blastwall ready (config {hash})");
    tokio::spawn(reload_on_sighup(args.config.clone(), proxy.runtime()));
    proxy.serve(crate::shutdown_signal()).await;
    Ok(ExitCode::SUCCESS)
}

async fn reload_on_sighup(path: PathBuf, runtime: Arc<Runtime>) {
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; reload by restarting");
        return;
    };
    while hangups.recv().await.is_some() {
        match Config::load(&path) {
            Ok(config) => {
                let hash = config.source.hash.clone();
                runtime.replace(config);
                tracing::info!(config = %hash, "config reloaded");
            }
            Err(errors) => {
                tracing::error!(
                    "config reload refused, the previous config stays in force:\n{errors}"
                );
            }
        }
    }
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
