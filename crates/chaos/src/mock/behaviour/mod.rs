//! What a mock answers: the behaviour as data, and which one answers a request.
//!
//! A behaviour is plain data (JSON over the control API, flags on the command line), so a
//! test changes it at run time with one call and reads back exactly what is in force.
//!
//! One behaviour can hold others: `paths` answer some paths their own way (the longest
//! matching prefix wins, the rest take the behaviour itself), and `phases` replace it on a
//! timetable (see [`super::phases`]). [`Behaviour::resolve`] picks the one that answers a
//! request, then [`Behaviour::decide`] takes that one's decision (see [`decide`]);
//! [`Behaviour::validate`] refuses one that makes no sense before it is in force (see
//! [`validate`]). Fields added since the first version are left out of the JSON while
//! unset, so what older clients read is unchanged.

pub mod decide;
pub mod validate;

#[cfg(test)]
mod tests;

use std::num::NonZeroU64;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Latency;
use super::phases::{AfterPhases, Phase, phase_at};

pub use decide::{Action, Draws};
pub use validate::{InvalidBehaviour, MAX_BODY_SIZE};

/// How a mock answers every request that is not for its control API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Behaviour {
    /// Time to wait before answering.
    #[serde(with = "humantime_serde")]
    pub latency: Duration,
    /// Up to this much more, uniformly at random, on top of `latency`.
    #[serde(with = "humantime_serde")]
    pub latency_jitter: Duration,
    /// Status of a normal answer.
    pub status: u16,
    /// Body of a normal answer.
    pub body: String,
    /// Share of requests, from 0 to 1, answered with `failure_status` instead.
    pub failure_rate: f64,
    /// Status of a failed answer.
    pub failure_status: u16,
    /// Requests served at once before the mock answers `503` with `Retry-After`, as a
    /// saturated service does. `None` means unbounded.
    pub capacity: Option<u32>,
    /// Whether to answer at all.
    pub mode: Mode,
    /// Answer with a JSON description of the request received instead of `body`.
    pub echo: bool,
    /// Answer with this many bytes (`x`) instead of `body`: a large answer, for tests of
    /// clients that read slowly, without sending it in the behaviour.
    pub body_size: Option<usize>,
    /// Delays drawn from this distribution instead of `latency` plus `latency_jitter`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_distribution: Option<Latency>,
    /// Send the body at this many bytes a second instead of all at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_rate: Option<NonZeroU64>,
    /// Break the body off after this many bytes, its `Content-Length` still promising all of
    /// them: the connection is closed (or, in `stall_body` mode, nothing more is sent). In
    /// `cut_body` and `stall_body` modes it replaces the half-way point.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncate_after: Option<usize>,
    /// Behaviours of their own for some paths; the rest take this one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<PathBehaviour>,
    /// A timetable of behaviours, from when this one is set; while it runs, the rest of this
    /// behaviour is not used.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub phases: Vec<Phase>,
    /// What happens after the last phase: `hold` it (the default) or `loop`.
    #[serde(skip_serializing_if = "AfterPhases::is_hold")]
    pub after_phases: AfterPhases,
}

/// A behaviour for the requests whose path starts with `prefix`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathBehaviour {
    /// The start of the paths it answers, like `/api/slow`; starts with `/`.
    pub prefix: String,
    /// How it answers them; missing fields take their defaults, not the outer behaviour's.
    pub behaviour: Behaviour,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            latency: Duration::ZERO,
            latency_jitter: Duration::ZERO,
            status: 200,
            body: "ok\n".to_owned(),
            failure_rate: 0.0,
            failure_status: 500,
            capacity: None,
            mode: Mode::Serve,
            echo: false,
            body_size: None,
            latency_distribution: None,
            body_rate: None,
            truncate_after: None,
            paths: Vec::new(),
            phases: Vec::new(),
            after_phases: AfterPhases::Hold,
        }
    }
}

/// Whether and how a mock answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Answer as configured.
    Serve,
    /// Reset the connection (TCP RST) instead of answering.
    Reset,
    /// Accept the request and never answer, like a stuck dependency.
    Hang,
    /// Answer, but break the body off half-way: the connection is closed (HTTP/1.1) or the
    /// stream reset (HTTP/2) before the `Content-Length` promised is sent.
    CutBody,
    /// Answer, but stop sending half-way through the body and never send the rest.
    StallBody,
}

impl Behaviour {
    /// The behaviour that answers a request for `path`, `elapsed` after this one was set:
    /// the phase in force, if there are phases, then its behaviour for the path.
    pub fn resolve(&self, elapsed: Duration, path: &str) -> &Behaviour {
        let scripted = phase_at(&self.phases, self.after_phases, elapsed)
            .and_then(|index| self.phases.get(index))
            .map_or(self, |phase| &phase.behaviour);
        scripted
            .paths
            .iter()
            .filter(|rule| path.starts_with(&rule.prefix))
            .max_by_key(|rule| rule.prefix.len())
            .map_or(scripted, |rule| &rule.behaviour)
    }
}
