//! The config in force, and replacing it while traffic flows.
//!
//! Everything a request needs from the config is one [`Snapshot`] behind an `ArcSwap`: a
//! request loads it once and keeps it to the end, so a reload never tears a request (it
//! finishes on the config it started with, and a cluster the new config removed lives on
//! until its last request is done). A new snapshot reuses the live [`Cluster`] of every
//! cluster whose config did not change, so endpoint health, latency estimates and pooled
//! connections survive the reload.
//!
//! A reload is all or nothing: the new file is read and validated, every new listener socket
//! is bound, and only then is anything swapped (see `Proxy::reload` in the crate root). The
//! outcome of every attempt is kept in [`ReloadStatus`] for the admin API, and [`watch`]
//! notices a changed file without a signal.

mod drain;
mod status;
pub(crate) mod watch;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Instant, SystemTime};

use arc_swap::ArcSwap;

pub use drain::DrainReport;
pub(crate) use drain::Traffic;
pub use status::{AppliedReload, ClusterChanges, ListenerChanges, ReloadOutcome, ReloadTrigger};
pub(crate) use status::{ReloadAttempt, ReloadStatus};

use crate::cluster::Cluster;
use crate::config::{ClusterConfig, Config};
use crate::events::{Event, EventKind};
use crate::fallback::UnknownRoute;
use crate::fault::table::{FaultTable, FaultTarget};
use crate::live::LiveRoute;
use crate::router::Router;

/// Everything a request reads from the config in force.
#[derive(Debug)]
pub(crate) struct Snapshot {
    /// The validated config.
    pub config: Arc<Config>,
    /// Routes by listener.
    pub router: Router,
    /// Live clusters, indexed as [`Config::clusters`].
    pub clusters: Vec<Arc<Cluster>>,
    /// Live route state, indexed as [`Config::routes`].
    pub routes: Vec<Arc<LiveRoute>>,
    /// The access log and tracer, kept across reloads that do not change them.
    pub telemetry: crate::telemetry::Telemetry,
    /// The fault rules made at run time and the faults' kill switch, the same table from
    /// one snapshot to the next.
    pub faults: Arc<FaultTable>,
}

impl Snapshot {
    /// Builds a snapshot, carrying over the live state of each cluster of `previous` that
    /// keeps its name.
    pub(crate) fn build(config: Config, previous: Option<&Snapshot>, now: Instant) -> Self {
        // NOTE: one table for the proxy's life: runtime fault rules outlive reloads.
        let faults = previous.map_or_else(Arc::default, |previous| previous.faults.clone());
        let clusters = config
            .clusters
            .iter()
            .map(|cluster_config| {
                let previous = previous.and_then(|previous| {
                    previous
                        .clusters
                        .iter()
                        .find(|cluster| cluster.name() == cluster_config.name)
                });
                live_cluster(cluster_config, config.proxy.zone.as_deref(), previous, now)
            })
            .collect();
        let routes = config
            .routes
            .iter()
            .map(|route| {
                let previous = previous.and_then(|previous| {
                    previous
                        .config
                        .routes
                        .iter()
                        .position(|old| old.name == route.name)
                        .map(|index| &*previous.routes[index])
                });
                let cluster = &config.clusters[route.cluster].name;
                Arc::new(LiveRoute::new(route, cluster, previous, &faults))
            })
            .collect();
        let telemetry = crate::telemetry::Telemetry::build(
            &config.telemetry,
            previous.map(|previous| &previous.telemetry),
        );
        Self {
            faults,
            router: Router::new(&config),
            telemetry,
            routes,
            config: Arc::new(config),
            clusters,
        }
    }

    /// Marks each endpoint that a fault rule takes down for every attempt, and unmarks the
    /// others, so that active health checks see what the attempts see: a rule of this
    /// config (unless the kill switch silences them), or a runtime rule live now on the
    /// endpoint's cluster or on one of its routes. Done as the snapshot comes into force (a
    /// kept cluster's endpoints are shared with the one it replaces, a rebuilt one's are
    /// marked afresh), and again whenever the runtime rules change
    /// ([`Runtime::faults_changed`]); several rules on one endpoint keep it marked until
    /// the last goes.
    pub(crate) fn mark_endpoints_down(&self) {
        let now = Instant::now();
        let silenced = self.faults.silenced();
        let routes = &self.config.routes;
        for (index, cluster) in self.clusters.iter().enumerate() {
            let name = cluster.name();
            let own = || routes.iter().filter(|route| route.cluster == index);
            let covers = |target: &FaultTarget| match target {
                FaultTarget::Cluster(cluster) => cluster == name,
                FaultTarget::Route(route) => own().any(|own| &own.name == route),
            };
            for endpoint in cluster.endpoints().iter() {
                let address = endpoint.address();
                let down = (!silenced
                    && own().any(|route| crate::fault::takes_down(&route.faults, address)))
                    || self.faults.takes_down(covers, address, now);
                endpoint.set_down_by_fault(down);
            }
        }
    }

    /// The index of the listener called `name` in this snapshot's config, if it has one.
    ///
    /// Listeners are known by name across reloads (their index moves when the file is
    /// reordered); there are a handful, so this is a few short comparisons.
    pub(crate) fn listener_index(&self, name: &str) -> Option<usize> {
        self.config
            .listeners
            .iter()
            .position(|listener| listener.name == name)
    }

    /// How this snapshot's clusters relate to `previous`'s: kept as they were, new or
    /// rebuilt, and gone.
    pub(crate) fn cluster_changes(&self, previous: &Snapshot) -> ClusterChanges {
        let kept = self
            .clusters
            .iter()
            .filter(|cluster| {
                previous
                    .clusters
                    .iter()
                    .any(|old| Arc::ptr_eq(old, cluster))
            })
            .count();
        let removed = previous
            .clusters
            .iter()
            .filter(|old| !self.clusters.iter().any(|new| new.name() == old.name()))
            .count();
        ClusterChanges {
            kept,
            rebuilt: self.clusters.len() - kept,
            removed,
        }
    }
}

/// The live cluster for `config`, given the cluster of the same name in force before.
///
/// NOTE: this is the one place that decides what survives a reload: `Cluster::new` returns
/// the previous cluster itself when nothing changed, and otherwise keeps the live state
/// (health, latency, requests in flight) of every endpoint whose address and settings did
/// not change, and the connection pool when its settings did not.
fn live_cluster(
    config: &ClusterConfig,
    local_zone: Option<&str>,
    previous: Option<&Arc<Cluster>>,
    now: Instant,
) -> Arc<Cluster> {
    Cluster::new(config.clone(), local_zone, previous, now)
}

/// The snapshot in force, swapped atomically, with what reloads and traffic look like now.
#[derive(Debug)]
pub(crate) struct Runtime {
    current: ArcSwap<Snapshot>,
    status: Mutex<ReloadStatus>,
    traffic: Traffic,
    /// Reloads and kill switches, for the admin API's timeline.
    events: crate::events::EventLog,
    /// Held while the endpoints taken down by faults are marked, and while a snapshot
    /// comes into force, so that marks made as runtime rules change and a reload's are
    /// made in turn, the last from the snapshot in force.
    marking: Mutex<()>,
}

impl Runtime {
    /// Starts with `config`.
    pub(crate) fn new(config: Config) -> Self {
        let status = ReloadStatus::new(config.source.hash.clone(), SystemTime::now());
        let snapshot = Snapshot::build(config, None, Instant::now());
        snapshot.mark_endpoints_down();
        Self {
            current: ArcSwap::from_pointee(snapshot),
            status: Mutex::new(status),
            traffic: Traffic::default(),
            events: Default::default(),
            marking: Mutex::new(()),
        }
    }

    /// After the runtime fault rules changed (or the kill switch): the endpoints they take
    /// down are marked again for the health checks, in the snapshot in force.
    pub(crate) fn faults_changed(&self) {
        let _marking = self.marking.lock().unwrap_or_else(PoisonError::into_inner);
        self.snapshot().mark_endpoints_down();
    }

    /// The snapshot in force now; hold it for the whole request.
    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// The snapshot for a request on listener `name`, with the listener's index in it.
    ///
    /// A listener that a reload removed (or renamed) still finishes the requests already on
    /// its connections: they use `retired()`, the last snapshot it belonged to (asked only
    /// when the snapshot in force does not have the listener).
    pub(crate) fn snapshot_for(
        &self,
        name: &str,
        retired: impl FnOnce() -> Option<Arc<Snapshot>>,
    ) -> Option<(Arc<Snapshot>, usize)> {
        let current = self.snapshot();
        if let Some(index) = current.listener_index(name) {
            return Some((current, index));
        }
        let retired = retired()?;
        let index = retired.listener_index(name)?;
        Some((retired, index))
    }

    /// Builds the snapshot for a new, validated config on top of the one in force, without
    /// putting it in force.
    pub(crate) fn prepare(&self, config: Config) -> Snapshot {
        Snapshot::build(config, Some(&self.current.load()), Instant::now())
    }

    /// Puts a prepared snapshot in force and returns the one it replaces.
    pub(crate) fn swap(&self, next: Snapshot) -> Arc<Snapshot> {
        let marking = self.marking.lock().unwrap_or_else(PoisonError::into_inner);
        let config = &next.config;
        let routes: Vec<String> = (config.routes.iter())
            .map(|route| route.name.clone())
            .collect();
        let clusters: Vec<String> = (config.clusters.iter())
            .map(|cluster| cluster.name.clone())
            .collect();
        let exists = |target: &FaultTarget| match target {
            FaultTarget::Route(name) => routes.contains(name),
            FaultTarget::Cluster(name) => clusters.contains(name),
        };
        let faults = next.faults.clone();
        // NOTE: the sweep, the marks and the swap under the table's lock, so that a rule
        // made meanwhile is either swept here or checked against `next` (see
        // `FaultTable::insert_if`). The sweep before the marks: a reload ends the kill
        // switch, which the marks read.
        let (next, replaced) = faults.reloaded_then(exists, || {
            next.mark_endpoints_down();
            let next = Arc::new(next);
            let replaced = self.current.swap(next.clone());
            (next, replaced)
        });
        drop(marking);
        for cluster in &replaced.clusters {
            if !next.clusters.iter().any(|kept| Arc::ptr_eq(kept, cluster)) {
                cluster.retire();
            }
        }
        replaced
    }

    /// Puts a new, already validated config in force, listeners left as they are.
    #[cfg(test)]
    pub(crate) fn replace(&self, config: Config) -> Arc<Snapshot> {
        self.swap(self.prepare(config))
    }

    /// What reloads have done so far, for the admin API.
    pub(crate) fn reload_status(&self) -> ReloadStatus {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Records the outcome of a reload attempt.
    pub(crate) fn record(&self, attempt: ReloadAttempt) {
        if let Some(event) = reload_event(&attempt) {
            self.events.push(event);
        }
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .record(attempt);
    }

    /// Connections and requests in flight.
    pub(crate) fn traffic(&self) -> &Traffic {
        &self.traffic
    }

    /// Turns the kill switch of the route called `route` on or off, in the config in force.
    /// It stays so across reloads that do not change that route's `kill_switch` key.
    pub(crate) fn set_kill_switch(&self, route: &str, on: bool) -> Result<(), UnknownRoute> {
        let snapshot = self.snapshot();
        let index = snapshot
            .config
            .routes
            .iter()
            .position(|config| config.name == route)
            .ok_or_else(|| UnknownRoute(route.to_owned()))?;
        snapshot.routes[index].fallback.set_kill_switch(on);
        self.events
            .push(crate::events::kill_switch_event(route, on));
        Ok(())
    }

    /// Reloads and kill switches so far (clusters keep their own events in their stats).
    pub(crate) fn events(&self) -> &crate::events::EventLog {
        &self.events
    }
}

/// A reload attempt that applied or was refused; `None` when the config was unchanged.
fn reload_event(attempt: &ReloadAttempt) -> Option<Event> {
    let (kind, detail) = match &attempt.outcome {
        ReloadOutcome::Applied(applied) => (
            EventKind::ReloadApplied,
            format!(
                "config {} → {} ({})",
                applied.previous_hash, applied.hash, attempt.trigger
            ),
        ),
        ReloadOutcome::Refused { errors, .. } => (
            EventKind::ReloadRefused,
            format!("reload refused ({}): {}", attempt.trigger, errors.summary()),
        ),
        ReloadOutcome::Unchanged { .. } => return None,
    };
    Some(Event::at(kind, detail, attempt.at))
}

#[cfg(test)]
mod tests;
