//! The config in force, and replacing it.
//!
//! Everything a request needs from the config is one [`Snapshot`] behind an `ArcSwap`: a
//! request loads it once and keeps it to the end, so a reload never tears a request (it
//! finishes on the config it started with). A new snapshot reuses the live [`Cluster`] of
//! every cluster whose config did not change, so endpoint health, latency estimates and
//! pooled connections survive the reload.

use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;

use crate::cluster::Cluster;
use crate::config::Config;
use crate::router::Router;

/// Everything a request reads from the config in force.
#[derive(Debug)]
pub struct Snapshot {
    /// The validated config.
    pub config: Arc<Config>,
    /// Routes by listener.
    pub router: Router,
    /// Live clusters, indexed as [`Config::clusters`].
    pub clusters: Vec<Arc<Cluster>>,
}

impl Snapshot {
    /// Builds a snapshot, keeping from `previous` each cluster that did not change and
    /// the live endpoints of those that did (see [`Cluster::new`]).
    pub fn build(config: Config, previous: Option<&Snapshot>, now: Instant) -> Self {
        let clusters = config
            .clusters
            .iter()
            .map(|cluster_config| {
                let replaced = previous.and_then(|previous| {
                    previous
                        .clusters
                        .iter()
                        .find(|cluster| cluster.name() == cluster_config.name)
                });
                Cluster::new(
                    cluster_config.clone(),
                    config.proxy.zone.as_deref(),
                    replaced,
                    now,
                )
            })
            .collect();
        Self {
            router: Router::new(&config),
            config: Arc::new(config),
            clusters,
        }
    }
}

/// The snapshot in force, swapped atomically.
#[derive(Debug)]
pub struct Runtime {
    current: ArcSwap<Snapshot>,
}

impl Runtime {
    /// Starts with `config`.
    pub fn new(config: Config) -> Self {
        Self {
            current: ArcSwap::from_pointee(Snapshot::build(config, None, Instant::now())),
        }
    }

    /// The snapshot in force now; hold it for the whole request.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Puts a new, already validated config in force.
    pub fn replace(&self, config: Config) {
        let previous = self.current.load();
        let next = Snapshot::build(config, Some(&previous), Instant::now());
        self.current.store(Arc::new(next));
    }
}
