//! The Blastwall data plane: a reverse proxy that applies the `blastwall-policy`
//! mechanisms to every request. See `ARCHITECTURE.md` for the stages a request passes:
//! [`listener`] → [`router`] → [`cluster`] / [`balance`] → [`forward`], with the config in
//! force held by [`reload`].
#![warn(missing_docs)]

pub mod balance;
pub mod cluster;
pub mod config;
pub mod forward;
pub mod health;
pub mod listener;
pub mod reload;
pub mod router;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper_util::server::graceful::GracefulShutdown;
use tokio::sync::watch;

use crate::config::{Config, ConfigErrors};
use crate::listener::BoundListener;
use crate::reload::Runtime;

/// A proxy whose listeners are bound, ready to serve.
#[derive(Debug)]
pub struct Proxy {
    runtime: Arc<Runtime>,
    listeners: Vec<BoundListener>,
}

impl Proxy {
    /// Binds every listener of `config`; reports every one that cannot bind.
    pub async fn bind(config: Config) -> Result<Self, ConfigErrors> {
        let mut listeners = Vec::new();
        let mut errors = Vec::new();
        for (index, listener) in config.listeners.iter().enumerate() {
            match BoundListener::bind(index, listener.clone(), &config.source.path).await {
                Ok(bound) => listeners.push(bound),
                Err(error) => errors.push(error),
            }
        }
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        Ok(Self {
            runtime: Arc::new(Runtime::new(config)),
            listeners,
        })
    }

    /// Each listener's name and the address it is bound to.
    pub fn local_addrs(&self) -> Vec<(String, SocketAddr)> {
        self.listeners
            .iter()
            .map(|listener| (listener.name().to_owned(), listener.local_addr()))
            .collect()
    }

    /// The config in force, for reloads and the admin API.
    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.clone()
    }

    /// Serves until `shutdown` resolves, then stops accepting and lets requests in flight
    /// finish for up to the config's drain timeout.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let (stop, stopped) = watch::channel(false);
        let graceful = Arc::new(GracefulShutdown::new());
        let mut tasks = tokio::task::JoinSet::new();
        for listener in self.listeners {
            tasks.spawn(listener.serve(self.runtime.clone(), graceful.clone(), stopped.clone()));
        }
        shutdown.await;
        let _ = stop.send(true);
        while tasks.join_next().await.is_some() {}
        let drain_timeout = self.runtime.snapshot().config.proxy.drain_timeout;
        let graceful = Arc::try_unwrap(graceful).unwrap_or_else(|_| GracefulShutdown::new());
        if tokio::time::timeout(drain_timeout, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                ?drain_timeout,
                "drain timeout reached with requests still in flight"
            );
        }
    }
}
