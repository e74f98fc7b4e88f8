//! The Blastwall data plane: a reverse proxy that applies the `blastwall-policy`
//! mechanisms to every request. See `ARCHITECTURE.md` for the stages a request passes:
//! [`listener`] → [`router`] → [`pipeline`] (admission, attempts, fallback) → [`cluster`] /
//! [`balance`] → [`upstream`], with the config in
//! force held by [`reload`]. [`Proxy`] is the whole lifecycle: bind, serve, reload without
//! dropping a request, drain.
#![warn(missing_docs)]
// Everything the binary (and the fuzz targets, through `fuzzing`) does not use stays inside the
// crate, and says so where it is declared.
#![warn(unreachable_pub)]

mod admin;
mod admission;
mod balance;
mod body;
mod cluster;
mod codec;
mod config;
mod counters;
mod descriptors;
mod endpoint;
mod error;
mod events;
#[cfg(test)]
mod eventually;
mod fallback;
mod fault;
mod forward;
mod headers;
mod health;
mod listener;
mod listeners;
mod live;
mod metrics;
mod outcome;
mod pipeline;
mod record;
mod reload;
mod rng;
mod router;
mod telemetry;
mod upstream;

pub use crate::config::{Config, ConfigError, ConfigErrors};
pub use crate::descriptors::raise_open_file_limit;
pub use crate::fallback::UnknownRoute;
pub use crate::reload::watch::ConfigWatcher;
pub use crate::reload::{
    AppliedReload, ClusterChanges, DrainReport, ListenerChanges, ReloadOutcome, ReloadTrigger,
};
pub use crate::telemetry::install_log_filter;

/// The parsers that face the network, for the fuzz targets (`fuzz/`): not an API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::codec::{Decoded, Decoder};
    pub use crate::listener::checks::{Framing, Head, HeadLimits, check_head};
    pub use crate::listener::h1::take_head;
    /// The upstream side's parsers.
    pub mod upstream {
        pub use crate::upstream::{Decoded, Decoder, Framing, replay, take_head};
    }
}

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::admin::{AdminServer, ReloadRequest};
use crate::config::Source;
use crate::listener::BoundListener;
use crate::listeners::ListenerSet;
use crate::reload::{ReloadAttempt, Runtime};

/// A running proxy: its listeners accept from the moment it is bound, until it is drained.
///
/// Reloads and the drain take `&mut self` / `self`, so whoever owns the proxy runs them one
/// at a time, in the order they were asked for.
#[derive(Debug)]
pub struct Proxy {
    runtime: Arc<Runtime>,
    listeners: ListenerSet,
    /// The admin API, unless `[admin] listen = "off"` (or its default address was taken).
    admin: Option<AdminServer>,
}

impl Proxy {
    /// Binds every listener of `config` and starts serving; reports every listener that
    /// cannot bind. A config that cannot fit the open-file limit is refused first (see
    /// [`descriptors`]).
    pub async fn bind(config: Config) -> Result<Self, ConfigErrors> {
        descriptors::fits_open_file_limit(&config).map_err(|error| ConfigErrors(vec![error]))?;
        let mut bound = Vec::new();
        let mut errors = Vec::new();
        for listener in &config.listeners {
            match BoundListener::bind(listener.clone(), &config.source.path).await {
                Ok(listener) => bound.push(listener),
                Err(error) => errors.push(error),
            }
        }
        let admin_socket = match admin::bind(&config.admin, &config.source.path).await {
            Ok(socket) => socket,
            Err(error) => {
                errors.push(error);
                None
            }
        };
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        let runtime = Arc::new(Runtime::new(config));
        let listeners = ListenerSet::start(bound, &runtime);
        let admin = admin_socket.and_then(|socket| {
            AdminServer::start(socket, runtime.clone(), listeners.local_addrs())
                .inspect_err(|error| tracing::error!(%error, "admin listener cannot start"))
                .ok()
        });
        Ok(Self {
            runtime,
            listeners,
            admin,
        })
    }

    /// Where the admin API listens, if it does.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(AdminServer::local_addr)
    }

    /// The next reload asked for through the admin API (never, without one): do it like a
    /// SIGHUP's, then [`ReloadRequest::reply`] with the outcome.
    pub async fn reload_requested(&mut self) -> ReloadRequest {
        match &mut self.admin {
            Some(admin) => admin.reload_requested().await,
            None => std::future::pending().await,
        }
    }

    /// Each listener's name and the address it is bound to.
    pub fn local_addrs(&self) -> Vec<(String, SocketAddr)> {
        self.listeners.local_addrs()
    }

    /// The config in force, reload status and traffic (for the crate's own tests; the
    /// binary asks the narrower questions below).
    #[cfg(test)]
    pub(crate) fn runtime(&self) -> Arc<Runtime> {
        self.runtime.clone()
    }

    /// The `[proxy] worker_threads` of the config in force.
    pub fn worker_threads(&self) -> Option<std::num::NonZeroUsize> {
        self.runtime.snapshot().config.proxy.worker_threads
    }

    /// The hash of the config in force, as logs and metrics name it.
    pub fn config_hash(&self) -> String {
        self.runtime.snapshot().config.source.hash.clone()
    }

    /// Opens the access log file again (after log rotation).
    pub fn reopen_access_log(&self) {
        self.runtime.snapshot().telemetry.reopen();
    }

    /// Client connections open and requests in flight now.
    pub fn traffic(&self) -> (usize, usize) {
        let traffic = self.runtime.traffic();
        (traffic.connections(), traffic.requests())
    }

    /// Turns the kill switch of the route called `route` on or off, in the config in force;
    /// it stays so across reloads that do not change that route's `kill_switch` key.
    pub fn set_kill_switch(&self, route: &str, on: bool) -> Result<(), UnknownRoute> {
        self.runtime.set_kill_switch(route, on)
    }

    /// Every metric now, in the Prometheus text format: what the admin listener serves at
    /// `GET /metrics` (see [`metrics::render`]), for embedders and tests without one.
    pub fn metrics_text(&self) -> String {
        metrics::render(&self.runtime)
    }

    /// Reads the config file again and puts it in force if it is valid and different.
    pub async fn reload(&mut self, trigger: ReloadTrigger) -> ReloadOutcome {
        let path = self.runtime.snapshot().config.source.path.clone();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let hash = Source::hash_of(text.as_bytes());
                let loaded = Config::parse(&text, &path);
                self.apply_loaded(Some(hash), loaded, trigger).await
            }
            Err(error) => {
                let error =
                    ConfigError::whole_file(&path, format!("cannot read the config file: {error}"));
                self.apply_loaded(None, Err(ConfigErrors(vec![error])), trigger)
                    .await
            }
        }
    }

    /// Puts a loaded config in force: listeners added are bound, removed ones stop accepting
    /// and finish their requests, changed ones are re-bound, clusters whose config is
    /// unchanged keep their live state. All or nothing: a config with errors, or a listener
    /// that cannot bind, leaves everything as it was. The outcome is logged and recorded in
    /// [`Runtime::reload_status`].
    pub async fn apply(
        &mut self,
        loaded: Result<Config, ConfigErrors>,
        trigger: ReloadTrigger,
    ) -> ReloadOutcome {
        let hash = loaded
            .as_ref()
            .ok()
            .map(|config| config.source.hash.clone());
        self.apply_loaded(hash, loaded, trigger).await
    }

    async fn apply_loaded(
        &mut self,
        hash: Option<String>,
        loaded: Result<Config, ConfigErrors>,
        trigger: ReloadTrigger,
    ) -> ReloadOutcome {
        let previous_hash = self.runtime.snapshot().config.source.hash.clone();
        // A config that cannot fit the open-file limit is refused like an invalid one.
        let loaded = loaded.and_then(|config| {
            descriptors::fits_open_file_limit(&config)
                .map(|()| config)
                .map_err(|error| ConfigErrors(vec![error]))
        });
        // The same text with the same certificates behind its `tls` files changes nothing; a
        // rotated certificate under the same names is a change to apply.
        let unchanged = hash.as_ref() == Some(&previous_hash)
            && loaded.as_ref().is_ok_and(|config| {
                let serving = &self.runtime.snapshot().config.listeners;
                let tls = |listener: &config::ListenerConfig| listener.tls.clone();
                config.listeners.iter().map(tls).eq(serving.iter().map(tls))
            });
        let outcome = match loaded {
            _ if unchanged => ReloadOutcome::Unchanged {
                hash: previous_hash.clone(),
            },
            Err(errors) => ReloadOutcome::Refused { hash, errors },
            Ok(config) => match self.listeners.plan(&config).await {
                Err(errors) => ReloadOutcome::Refused { hash, errors },
                Ok(plan) => {
                    let listeners = plan.changes();
                    let hash = config.source.hash.clone();
                    let next = self.runtime.prepare(config);
                    let replaced = self.listeners.commit(plan, &self.runtime, next);
                    let clusters = self.runtime.snapshot().cluster_changes(&replaced);
                    if let Some(admin) = &self.admin {
                        admin.reconfigure(
                            &replaced.config.admin,
                            &self.runtime.snapshot().config.admin,
                            self.listeners.local_addrs(),
                        );
                    }
                    ReloadOutcome::Applied(AppliedReload {
                        previous_hash: previous_hash.clone(),
                        hash,
                        listeners,
                        clusters,
                    })
                }
            },
        };
        log_reload(trigger, &previous_hash, &outcome);
        self.runtime.record(ReloadAttempt {
            at: SystemTime::now(),
            trigger,
            outcome: outcome.clone(),
        });
        outcome
    }

    /// Stops accepting at once (new connections are refused), asks keep-alive clients to
    /// close, and waits for requests in flight for up to the config's drain timeout; what is
    /// left then is cut.
    pub async fn drain(mut self) -> DrainReport {
        let started = Instant::now();
        let snapshot = self.runtime.snapshot();
        let timeout = snapshot.config.proxy.drain_timeout;
        if let Some(admin) = &self.admin {
            admin.set_draining();
        }
        self.listeners.stop_accepting(&snapshot);
        let traffic = self.runtime.traffic();
        let (connections, requests) = (traffic.connections(), traffic.requests());
        tracing::info!(
            connections,
            requests,
            ?timeout,
            "draining: stopped accepting, waiting for requests in flight"
        );
        let finished = self.listeners.finish(timeout).await;
        let (cut_connections, cut_requests) = if finished {
            (0, 0)
        } else {
            (traffic.connections(), traffic.requests())
        };
        self.listeners.cut().await;
        let report = DrainReport {
            connections,
            requests,
            cut_connections,
            cut_requests,
            elapsed: started.elapsed(),
        };
        if report.completed() {
            tracing::info!(connections, requests, elapsed = ?report.elapsed, "drained: every request in flight finished");
        } else {
            tracing::warn!(
                cut_connections,
                cut_requests,
                ?timeout,
                "drain timeout reached: cut what was still in flight"
            );
        }
        report
    }

    /// Serves until `shutdown` resolves, then drains.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> DrainReport {
        shutdown.await;
        self.drain().await
    }
}

fn log_reload(trigger: ReloadTrigger, previous_hash: &str, outcome: &ReloadOutcome) {
    match outcome {
        ReloadOutcome::Applied(applied) => tracing::info!(
            %trigger,
            config = %applied.hash,
            previous = %previous_hash,
            listeners_bound = applied.listeners.bound,
            listeners_reconfigured = applied.listeners.reconfigured,
            listeners_kept = applied.listeners.kept,
            listeners_retired = applied.listeners.retired,
            clusters_kept = applied.clusters.kept,
            clusters_rebuilt = applied.clusters.rebuilt,
            clusters_removed = applied.clusters.removed,
            "config reloaded"
        ),
        ReloadOutcome::Unchanged { hash } => {
            tracing::info!(%trigger, config = %hash, "config unchanged, nothing to reload");
        }
        ReloadOutcome::Refused { hash, errors } => {
            tracing::error!(
                %trigger,
                refused = hash.as_deref().unwrap_or("unreadable"),
                config = %previous_hash,
                errors = errors.0.len(),
                "config reload refused; the config in force stays"
            );
            // NOTE: the summary, never the source line: it may hold a secret.
            for error in &errors.0 {
                tracing::error!("{}", error.summary());
            }
        }
    }
}
