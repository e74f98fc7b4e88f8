//! `blastwall toxiproxy`: a Toxiproxy-compatible server, so scripts and client libraries
//! written for Shopify's Toxiproxy break TCP dependencies through Blastwall unchanged.
//! The server itself is [`blastwall_chaos::toxiproxy`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use blastwall_chaos::toxiproxy::ToxiproxyHandle;
use clap::Args;

/// Flags of `blastwall toxiproxy`.
#[derive(Debug, Args)]
pub struct ToxiproxyArgs {
    /// Address of the HTTP API (Toxiproxy's default port is 8474; port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8474")]
    listen: SocketAddr,
    /// Proxies to create at start, from a JSON file in the format of `POST /populate` (an
    /// array of `{"name", "listen", "upstream", "enabled"}`), as `toxiproxy-server -config`.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log filter, like `info` or `blastwall_chaos=debug` (also read from RUST_LOG); the log
    /// goes to stderr.
    #[arg(long, default_value = "info")]
    log: String,
}

/// Serves until interrupted or terminated, then closes every proxy.
pub async fn run(args: ToxiproxyArgs) -> anyhow::Result<()> {
    init_logging(&args.log);
    let handle = blastwall_chaos::toxiproxy::start(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    if let Some(file) = &args.config
        && let Err(err) = populate(&handle, file).await
    {
        handle.stop().await;
        return Err(err);
    }
    // NOTE: tests and scripts wait for this exact line to know the API is ready.
    println!("toxiproxy API listening on http://{}", handle.addr());
    crate::shutdown_signal().await;
    handle.stop().await;
    Ok(())
}

/// Creates the proxies of `--config`. Unlike Toxiproxy, which logs a bad file and starts
/// empty, a bad file stops the server: tests that expect its proxies would otherwise fail
/// far from the cause.
async fn populate(handle: &ToxiproxyHandle, file: &Path) -> anyhow::Result<()> {
    let shown = file.display();
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the proxies file {shown} (--config)"))?;
    let body: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("the proxies file {shown} (--config) is not valid JSON"))?;
    let proxies = handle
        .populate(&body)
        .await
        .map_err(|err| anyhow::anyhow!("the proxies file {shown} (--config): {}", err.message))?;
    tracing::info!(file = %shown, proxies = proxies.len(), "proxies created from the file");
    Ok(())
}

/// The log on stderr: proxies started and stopped, upstreams that refuse, what the
/// `http_error` toxic could not frame (stdout keeps the one line scripts wait for).
fn init_logging(filter: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
