//! What each reload attempt did, kept for the operator.
//!
//! A reload happens in the background (a signal, a changed file), so its result must be
//! readable afterwards: the admin API shows the hash in force, when the last attempt was,
//! whether it applied, and every error of a refused config. Counters make a flapping
//! deployment visible on a dashboard.

use std::fmt;
use std::time::SystemTime;

use crate::config::ConfigErrors;

/// What asked for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadTrigger {
    /// SIGHUP.
    Signal,
    /// The config file's content changed.
    FileChanged,
    /// A request to the admin API.
    Api,
}

impl fmt::Display for ReloadTrigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReloadTrigger::Signal => "signal",
            ReloadTrigger::FileChanged => "file_changed",
            ReloadTrigger::Api => "api",
        })
    }
}

/// The result of one reload attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum ReloadOutcome {
    /// The new config is in force.
    Applied(AppliedReload),
    /// The file's hash is the one in force: nothing to do.
    Unchanged {
        /// The hash in force.
        hash: String,
    },
    /// The new config was refused (invalid, or a listener could not bind); the previous one
    /// stays in force, untouched.
    Refused {
        /// The hash of the refused file, when it could be read.
        hash: Option<String>,
        /// Every error, each at its file, line and column.
        errors: ConfigErrors,
    },
}

impl ReloadOutcome {
    /// Whether the attempt was refused.
    pub fn is_refused(&self) -> bool {
        matches!(self, ReloadOutcome::Refused { .. })
    }
}

/// What an applied reload changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedReload {
    /// The hash that was in force.
    pub previous_hash: String,
    /// The hash in force now.
    pub hash: String,
    /// Listeners added, removed, re-bound, kept.
    pub listeners: ListenerChanges,
    /// Clusters kept live, rebuilt, removed.
    pub clusters: ClusterChanges,
}

/// How a reload changed the listeners.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListenerChanges {
    /// Bound on a new socket (new listeners and listeners whose address changed).
    pub bound: usize,
    /// Serving on their existing socket with new settings (TLS, limits).
    pub reconfigured: usize,
    /// Unchanged, still serving their connections as before.
    pub kept: usize,
    /// Stopped accepting; their connections finish what is in flight.
    pub retired: usize,
}

/// How a reload changed the clusters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClusterChanges {
    /// Carried over live: endpoint state and pooled connections survive.
    pub kept: usize,
    /// New, or rebuilt because their config changed.
    pub rebuilt: usize,
    /// Gone from the config; they finish the requests they have.
    pub removed: usize,
}

/// One reload attempt.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ReloadAttempt {
    /// When it was made.
    pub at: SystemTime,
    /// What asked for it.
    pub trigger: ReloadTrigger,
    /// What came of it.
    pub outcome: ReloadOutcome,
}

/// Reloads so far and the config in force, for the admin API.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ReloadStatus {
    /// Hash of the config in force.
    pub current_hash: String,
    /// When the config in force was put in force.
    pub loaded_at: SystemTime,
    /// Attempts applied.
    pub applied: u64,
    /// Attempts that found the config unchanged.
    pub unchanged: u64,
    /// Attempts refused.
    pub refused: u64,
    /// The most recent attempt.
    pub last: Option<ReloadAttempt>,
}

impl ReloadStatus {
    /// Before any reload: the config loaded at start.
    pub(crate) fn new(hash: String, loaded_at: SystemTime) -> Self {
        Self {
            current_hash: hash,
            loaded_at,
            applied: 0,
            unchanged: 0,
            refused: 0,
            last: None,
        }
    }

    /// Every attempt made.
    #[cfg(test)]
    pub(crate) fn attempts(&self) -> u64 {
        self.applied + self.unchanged + self.refused
    }

    /// The errors of the last attempt, if it was refused: each at its file, line and
    /// column, without source text (see [`ConfigErrors::summary`]).
    pub(crate) fn last_error(&self) -> Option<String> {
        match &self.last.as_ref()?.outcome {
            ReloadOutcome::Refused { errors, .. } => Some(errors.summary()),
            _ => None,
        }
    }

    pub(crate) fn record(&mut self, attempt: ReloadAttempt) {
        match &attempt.outcome {
            ReloadOutcome::Applied(applied) => {
                self.applied += 1;
                self.current_hash.clone_from(&applied.hash);
                self.loaded_at = attempt.at;
            }
            ReloadOutcome::Unchanged { .. } => self.unchanged += 1,
            ReloadOutcome::Refused { .. } => self.refused += 1,
        }
        self.last = Some(attempt);
    }
}
