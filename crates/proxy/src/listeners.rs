//! The listeners that are serving, and changing them on reload without refusing a connection.
//!
//! A reload first makes a [`ListenerPlan`]: each listener of the new config is kept as it is
//! (same settings), takes over the socket of the listener that had its address (new TLS or
//! limits: the socket is never closed, so nothing waiting in the backlog is refused), or is
//! bound on a new socket. Binding is the only step that can fail (port in use), and it happens
//! before anything is swapped, so a failure leaves everything as it was. Committing the plan
//! retires every listener that was not kept: it stops accepting at once and its connections
//! finish their requests, for up to the drain timeout.
//!
//! It sits at the crate root, beside [`Proxy`](crate::Proxy) which owns the set, not in
//! `reload`: restarting listeners needs the listener itself, a layer above the config in
//! force, and the reload of the config in force needs no socket.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinSet};

use crate::config::{Config, ConfigErrors, ListenerConfig};
use crate::listener::BoundListener;
use crate::reload::{ListenerChanges, Runtime, Snapshot};

/// Every listener task, serving or finishing its connections.
#[derive(Debug)]
pub(crate) struct ListenerSet {
    running: Vec<Running>,
    // NOTE: retired listeners stay here until their connections are done, so a final drain
    // waits for them too and can cut them all at its timeout.
    tasks: JoinSet<()>,
}

/// A listener serving now.
#[derive(Debug)]
struct Running {
    // Holds the socket so a reload can hand it to a reconfigured listener.
    bound: BoundListener,
    local_addr: SocketAddr,
    stop: watch::Sender<Option<Arc<Snapshot>>>,
    task: AbortHandle,
}

/// What a reload will do to the listeners; every new socket in it is already bound.
#[derive(Debug)]
pub(crate) struct ListenerPlan {
    slots: Vec<Slot>,
    changes: ListenerChanges,
}

impl ListenerPlan {
    /// What the plan changes.
    pub(crate) fn changes(&self) -> ListenerChanges {
        self.changes
    }
}

/// One listener of the new config.
#[derive(Debug)]
enum Slot {
    /// The running listener at this index, untouched.
    Keep(usize),
    /// A listener to start on this socket.
    Start(Box<BoundListener>),
}

impl ListenerSet {
    /// Starts serving on every bound listener.
    pub(crate) fn start(listeners: Vec<BoundListener>, runtime: &Arc<Runtime>) -> Self {
        let mut set = Self {
            running: Vec::new(),
            tasks: JoinSet::new(),
        };
        for bound in listeners {
            let running = set.spawn(bound, runtime);
            set.running.push(running);
        }
        set
    }

    /// Each serving listener's name and address.
    pub(crate) fn local_addrs(&self) -> Vec<(String, SocketAddr)> {
        self.running
            .iter()
            .map(|running| (running.bound.name().to_owned(), running.local_addr))
            .collect()
    }

    /// Decides what happens to each listener of `config` and binds the new sockets; every
    /// listener that cannot bind is reported, and then nothing has changed.
    pub(crate) async fn plan(&self, config: &Config) -> Result<ListenerPlan, ConfigErrors> {
        let path = &config.source.path;
        let mut claimed = vec![false; self.running.len()];
        let mut changes = ListenerChanges::default();
        let mut slots = Vec::new();
        let mut errors = Vec::new();
        for listener in &config.listeners {
            let by_name = self
                .running
                .iter()
                .position(|running| running.bound.name() == listener.name)
                .filter(|&index| !claimed[index]);
            if let Some(index) = by_name
                && same_settings(self.running[index].bound.config(), listener)
            {
                claimed[index] = true;
                changes.kept += 1;
                slots.push(Slot::Keep(index));
                continue;
            }
            let same_socket = by_name
                .filter(|&index| self.running[index].bound.config().listen == listener.listen)
                .or_else(|| self.unclaimed_on(listener, &claimed));
            let started = match same_socket {
                Some(index) => {
                    claimed[index] = true;
                    changes.reconfigured += 1;
                    Ok(self.running[index].bound.reconfigure(listener.clone()))
                }
                None => {
                    changes.bound += 1;
                    BoundListener::bind(listener.clone(), path).await
                }
            };
            match started {
                Ok(bound) => slots.push(Slot::Start(Box::new(bound))),
                Err(error) => errors.push(error),
            }
        }
        if !errors.is_empty() {
            // Dropping `slots` closes every socket bound for this plan.
            return Err(ConfigErrors(errors));
        }
        changes.retired = self.running.len() - changes.kept;
        Ok(ListenerPlan { slots, changes })
    }

    /// A running listener not yet claimed whose configured address is `listener`'s (a fixed
    /// port: two listeners asking for port 0 do not share a socket).
    fn unclaimed_on(&self, listener: &ListenerConfig, claimed: &[bool]) -> Option<usize> {
        if listener.listen.port() == 0 {
            return None;
        }
        self.running
            .iter()
            .enumerate()
            .position(|(index, running)| {
                !claimed[index] && running.bound.config().listen == listener.listen
            })
    }

    /// Retires the listeners the plan does not keep, puts `next` in force, then starts the
    /// plan's new listeners; returns the snapshot replaced.
    pub(crate) fn commit(
        &mut self,
        plan: ListenerPlan,
        runtime: &Arc<Runtime>,
        next: Snapshot,
    ) -> Arc<Snapshot> {
        self.reap();
        let drain_timeout = next.config.proxy.drain_timeout;
        let previous = runtime.snapshot();
        let mut old: Vec<Option<Running>> = std::mem::take(&mut self.running)
            .into_iter()
            .map(Some)
            .collect();
        let kept: Vec<usize> = plan
            .slots
            .iter()
            .filter_map(|slot| match slot {
                Slot::Keep(index) => Some(*index),
                Slot::Start(_) => None,
            })
            .collect();
        for (index, running) in old.iter_mut().enumerate() {
            if !kept.contains(&index)
                && let Some(running) = running.take()
            {
                retire(running, previous.clone(), drain_timeout);
            }
        }
        let replaced = runtime.swap(next);
        for slot in plan.slots {
            let running = match slot {
                Slot::Keep(index) => old[index].take().expect("a plan keeps a listener once"),
                Slot::Start(bound) => self.spawn(*bound, runtime),
            };
            self.running.push(running);
        }
        replaced
    }

    /// Stops every listener accepting: each closes its socket at once and asks its
    /// connections to close when their requests are answered.
    pub(crate) fn stop_accepting(&mut self, snapshot: &Arc<Snapshot>) {
        for running in self.running.drain(..) {
            let _ = running.stop.send(Some(snapshot.clone()));
        }
    }

    /// Waits for every listener's connections to finish, for at most `timeout`; returns
    /// whether they all did.
    pub(crate) async fn finish(&mut self, timeout: Duration) -> bool {
        let all_done = async { while self.tasks.join_next().await.is_some() {} };
        tokio::time::timeout(timeout, all_done).await.is_ok()
    }

    /// Aborts every listener and connection now.
    pub(crate) async fn cut(&mut self) {
        self.tasks.shutdown().await;
    }

    fn spawn(&mut self, bound: BoundListener, runtime: &Arc<Runtime>) -> Running {
        let (stop, stopped) = watch::channel(None);
        let local_addr = bound.local_addr();
        let task = self
            .tasks
            .spawn(bound.clone().serve(runtime.clone(), stopped));
        Running {
            bound,
            local_addr,
            stop,
            task,
        }
    }

    /// Forgets listener tasks that have finished, logging any that panicked.
    fn reap(&mut self) {
        while let Some(result) = self.tasks.try_join_next() {
            if let Err(error) = result
                && error.is_panic()
            {
                tracing::error!(%error, "a listener task panicked");
            }
        }
    }
}

/// Stops `running` accepting; its connections finish on `snapshot`, cut after `timeout`.
fn retire(running: Running, snapshot: Arc<Snapshot>, timeout: Duration) {
    let Running {
        bound, stop, task, ..
    } = running;
    let name = bound.name().to_owned();
    let _ = stop.send(Some(snapshot));
    drop(bound);
    tokio::spawn(async move {
        tokio::time::sleep(timeout).await;
        if !task.is_finished() {
            tracing::warn!(listener = %name, ?timeout, "drain timeout of a retired listener reached; closing its connections");
            task.abort();
        }
    });
}

/// Whether a listener can keep serving as it is: same address, TLS and limits.
fn same_settings(running: &ListenerConfig, next: &ListenerConfig) -> bool {
    // NOTE: destructured so that a new listener setting cannot be forgotten here.
    let ListenerConfig {
        name,
        listen,
        listen_location: _,
        max_connections_location: _,
        tls,
        limits,
    } = running;
    *name == next.name && *listen == next.listen && *tls == next.tls && *limits == next.limits
}
