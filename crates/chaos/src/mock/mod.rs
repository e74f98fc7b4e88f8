//! A simulated service that misbehaves on demand: the one fake upstream for demos and tests.
//!
//! A mock is a real HTTP/1.1 and HTTP/2 server on a real socket. It answers every request
//! with its [`Behaviour`] (latency, fixed or from a distribution, see [`Latency`]; status,
//! failures, a capacity past which it answers 503 like a saturated service; no answer at
//! all: reset or hang; an answer sent slowly or broken off: its body cut or stalled, see
//! [`body`]; behaviours of their own for some paths, and phases on a timetable, see
//! [`phases`]), and it can be told to change at run time through its control API under
//! `/_mock/` (see [`control`]), so a test turns a healthy replica into a slow, failing or
//! dead one in one call. Stopping a mock drops every connection at once, as a crashed
//! process would.
//!
//! This file holds the mock's life (start, the handle, the behaviour in force, its
//! counters); accepting connections and answering requests is the private `server` module.

pub mod behaviour;
pub mod body;
pub mod control;
pub mod duplicates;
pub mod patch;
pub mod phases;
mod server;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;

pub use behaviour::{Action, Behaviour, Draws, InvalidBehaviour, Mode, PathBehaviour};
/// The latency distributions, shared with the proxy's delay faults (the policy crate's).
pub use blastwall_policy::latency::{InvalidLatency, Latency, MAX_DELAY};
pub use patch::PatchError;
pub use phases::{AfterPhases, Phase};

/// The header every mock answer carries, naming the mock that answered.
pub const NAME_HEADER: &str = "x-mock-name";

/// How to start a mock.
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// Named in every answer's `x-mock-name` header, so a test knows which replica answered.
    pub name: String,
    /// Where to listen; port 0 picks a free one.
    pub listen: SocketAddr,
    /// How to answer at first.
    pub behaviour: Behaviour,
    /// Seed for the failure and latency draws, so a run can be repeated exactly.
    pub seed: u64,
}

/// A running mock. Dropping the handle stops it.
#[derive(Debug)]
pub struct MockHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// Counters a test reads to see what reached the mock.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Requests received, control requests excluded.
    pub requests: u64,
    /// Requests being handled now.
    pub in_flight: u64,
    /// Answers by status class: `[1xx, 2xx, 3xx, 4xx, 5xx]`.
    pub answered_by_class: [u64; 5],
    /// Requests refused with 503 because the mock was over capacity.
    pub overloaded: u64,
    /// Connections reset instead of answering.
    pub resets: u64,
    /// Requests left hanging.
    pub hangs: u64,
    /// Answers whose body was broken off half-way (cut or stalled).
    pub cut_bodies: u64,
    /// `POST`/`PATCH` requests without an `Idempotency-Key` whose `x-request-id` had
    /// already reached this mock on the same path (see [`duplicates`]).
    pub duplicates: u64,
    /// The index of the phase in force, when the behaviour has phases.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<usize>,
}

/// The behaviour in force and when it was set, which is when its phases start.
#[derive(Debug, Clone)]
struct Installed {
    behaviour: Arc<Behaviour>,
    since: Instant,
}

impl Installed {
    fn now(behaviour: Behaviour) -> Self {
        Self {
            behaviour: Arc::new(behaviour),
            since: Instant::now(),
        }
    }
}

#[derive(Debug)]
struct Shared {
    name: String,
    seed: u64,
    behaviour: RwLock<Installed>,
    requests: AtomicU64,
    in_flight: AtomicU64,
    answered_by_class: [AtomicU64; 5],
    overloaded: AtomicU64,
    resets: AtomicU64,
    hangs: AtomicU64,
    cut_bodies: AtomicU64,
    recent: duplicates::Recent,
    duplicates: AtomicU64,
}

/// Starts a mock; it serves until the handle is stopped or dropped.
pub async fn start(config: MockConfig) -> Result<MockHandle, StartError> {
    config.behaviour.validate()?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;
    let shared = Arc::new(Shared {
        name: config.name,
        seed: config.seed,
        behaviour: RwLock::new(Installed::now(config.behaviour)),
        requests: AtomicU64::new(0),
        in_flight: AtomicU64::new(0),
        answered_by_class: Default::default(),
        overloaded: AtomicU64::new(0),
        resets: AtomicU64::new(0),
        hangs: AtomicU64::new(0),
        cut_bodies: AtomicU64::new(0),
        recent: duplicates::Recent::new(duplicates::WINDOW),
        duplicates: AtomicU64::new(0),
    });
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(server::accept_loop(listener, shared.clone(), stopped));
    Ok(MockHandle {
        addr,
        shared,
        stop,
        task,
    })
}

/// Why a mock could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The behaviour makes no sense.
    #[error("invalid behaviour: {0}")]
    Behaviour(#[from] InvalidBehaviour),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the operating system said.
        source: std::io::Error,
    },
}

impl MockHandle {
    /// The address the mock listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The behaviour in force.
    pub fn behaviour(&self) -> Behaviour {
        self.shared.behaviour().as_ref().clone()
    }

    /// Replaces the behaviour; requests already waiting keep the one they started with.
    /// Its phases, if any, start now.
    pub fn set_behaviour(&self, behaviour: Behaviour) -> Result<(), InvalidBehaviour> {
        self.shared.set_behaviour(behaviour)
    }

    /// Changes only the fields of the JSON object `patch` (see [`patch`]); phases restart.
    pub fn patch_behaviour(&self, patch: &[u8]) -> Result<Behaviour, PatchError> {
        self.shared.patch_behaviour(patch)
    }

    /// What has reached the mock so far.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Stops accepting and drops every connection at once, like a crashed process.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        let _ = (&mut self.task).await;
    }
}

impl Drop for MockHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

impl Shared {
    fn installed(&self) -> Installed {
        // A poisoned lock still holds a valid behaviour: every write replaces it whole.
        self.behaviour
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn behaviour(&self) -> Arc<Behaviour> {
        self.installed().behaviour
    }

    fn set_behaviour(&self, behaviour: Behaviour) -> Result<(), InvalidBehaviour> {
        behaviour.validate()?;
        *self
            .behaviour
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Installed::now(behaviour);
        Ok(())
    }

    /// Patches under the write lock, so two patches at once both take effect.
    fn patch_behaviour(&self, patch: &[u8]) -> Result<Behaviour, PatchError> {
        let mut installed = self
            .behaviour
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let patched = installed.behaviour.patched(patch)?;
        *installed = Installed::now(patched.clone());
        Ok(patched)
    }

    fn phase(&self) -> Option<usize> {
        let installed = self.installed();
        let behaviour = &installed.behaviour;
        phases::phase_at(
            &behaviour.phases,
            behaviour.after_phases,
            installed.since.elapsed(),
        )
    }

    fn stats(&self) -> Stats {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Stats {
            requests: load(&self.requests),
            in_flight: load(&self.in_flight),
            answered_by_class: self.answered_by_class.each_ref().map(load),
            overloaded: load(&self.overloaded),
            resets: load(&self.resets),
            hangs: load(&self.hangs),
            cut_bodies: load(&self.cut_bodies),
            duplicates: load(&self.duplicates),
            phase: self.phase(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn phase(status: u16, seconds: u64) -> Phase {
        Phase {
            behaviour: Behaviour {
                status,
                ..Behaviour::default()
            },
            duration: Duration::from_secs(seconds),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn phases_start_when_the_behaviour_is_set_and_follow_the_clock() {
        let mock = start(MockConfig {
            name: "scripted".into(),
            listen: "127.0.0.1:0".parse().expect("valid address"),
            behaviour: Behaviour::default(),
            seed: 0,
        })
        .await
        .expect("mock starts");
        assert_eq!(mock.stats().phase, None);
        tokio::time::advance(Duration::from_secs(100)).await;
        mock.set_behaviour(Behaviour {
            phases: vec![phase(200, 10), phase(503, 5)],
            after_phases: AfterPhases::Loop,
            ..Behaviour::default()
        })
        .expect("valid");
        assert_eq!(mock.stats().phase, Some(0));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(mock.stats().phase, Some(1));
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(mock.stats().phase, Some(0), "it loops");
        mock.patch_behaviour(br#"{"after_phases":"hold"}"#)
            .expect("valid");
        tokio::time::advance(Duration::from_secs(12)).await;
        assert_eq!(mock.stats().phase, Some(1), "a patch restarts the script");
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(mock.stats().phase, Some(1), "and the last phase holds");
    }
}
