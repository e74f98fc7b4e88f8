//! `blastwall toxiproxy`: a Toxiproxy-compatible server, so scripts and client libraries
//! written for Shopify's Toxiproxy break TCP dependencies through Blastwall unchanged.
//! The server itself is [`blastwall_chaos::toxiproxy`].

use std::net::SocketAddr;

use anyhow::Context;
use clap::Args;

/// Flags of `blastwall toxiproxy`.
#[derive(Debug, Args)]
pub struct ToxiproxyArgs {
    /// Address of the HTTP API (Toxiproxy's default port is 8474; port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8474")]
    listen: SocketAddr,
}

/// Serves until interrupted or terminated, then closes every proxy.
pub async fn run(args: ToxiproxyArgs) -> anyhow::Result<()> {
    let handle = blastwall_chaos::toxiproxy::start(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    // NOTE: tests and scripts wait for this exact line to know the API is ready.
    println!("toxiproxy API listening on http://{}", handle.addr());
    crate::shutdown_signal().await;
    handle.stop().await;
    Ok(())
}
