//! A Toxiproxy-compatible server: TCP proxies that break on demand, driven by the HTTP API
//! of Shopify's Toxiproxy, so the scripts and client libraries teams already have for it
//! work against `blastwall toxiproxy` unchanged.
//!
//! - [`toxic`]: the toxics, with Toxiproxy's names and units;
//! - [`pipe`]: one direction of one connection through a chain of toxics (the data path);
//! - [`http`]: the `http_error` toxic and where one HTTP/1 request ends (`http::cutter`);
//! - [`proxy`]: one TCP proxy (listen, accept, connect, pipe both ways);
//! - [`stats`]: what a proxy counts; [`metrics`]: `GET /metrics`, the counts rendered;
//! - [`collection`]: the proxies by name and the API's semantics over them;
//! - [`api`]: the HTTP routes; [`error`]: the API's errors.
//!
//! Beyond Toxiproxy: the `http_error` toxic, `first_connections` on any toxic, and
//! `GET /metrics`. The server can also start with proxies from a file
//! ([`ToxiproxyHandle::populate`], `blastwall toxiproxy --config`).

pub mod api;
pub mod collection;
pub mod error;
pub mod http;
pub mod metrics;
pub mod pipe;
pub mod proxy;
pub mod stats;
pub mod toxic;

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

#[cfg(test)]
mod tests;

pub use collection::Collection;
pub use error::ApiError;

/// A running Toxiproxy-compatible server.
#[derive(Debug)]
pub struct ToxiproxyHandle {
    addr: SocketAddr,
    proxies: Arc<Collection>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl ToxiproxyHandle {
    /// The address the API listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Creates or replaces the proxies of a populate body, as `POST /populate` does
    /// (`--config`); on an error, the proxies before the failing one are kept.
    pub async fn populate(
        &self,
        body: &serde_json::Value,
    ) -> Result<Vec<serde_json::Value>, ApiError> {
        let inputs = collection::ProxyInput::parse_all(body)?;
        match self.proxies.populate(inputs).await {
            (done, None) => Ok(done),
            (_, Some(err)) => Err(err),
        }
    }

    /// Stops the API and every proxy (their connections close).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        self.proxies.stop_all().await;
    }
}

/// Binds the API on `listen` and serves it.
pub async fn start(listen: SocketAddr) -> std::io::Result<ToxiproxyHandle> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let proxies = Arc::new(Collection::default());
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(serve(listener, Arc::clone(&proxies), stopped));
    Ok(ToxiproxyHandle {
        addr,
        proxies,
        stop,
        task,
    })
}

async fn serve(
    listener: TcpListener,
    proxies: Arc<Collection>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                };
                let proxies = Arc::clone(&proxies);
                connections.spawn(async move {
                    let service = service_fn(move |request| {
                        let proxies = Arc::clone(&proxies);
                        async move { Ok::<_, std::convert::Infallible>(api::handle(proxies, request).await) }
                    });
                    let mut builder = auto::Builder::new(TokioExecutor::new());
                    builder
                        .http1()
                        .timer(TokioTimer::new())
                        .header_read_timeout(api::READ_WITHIN);
                    let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                });
            }
            Some(_) = connections.join_next() => {}
            _ = stopped.changed() => return,
        }
    }
}
