//! A fault rule made at run time: whose requests it faults (a route, or every route of a
//! cluster), what the admin API checked of it, and what it keeps while it is in force (its
//! window on the monotonic clock, its count of faulted requests). The table that holds
//! them is [`super::table`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use crate::config::fault::{FaultAction, FaultRule};

/// Whose requests a runtime rule faults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FaultTarget {
    /// The route of this name.
    Route(String),
    /// Every route whose cluster this is.
    Cluster(String),
}

impl FaultTarget {
    /// Whether a request of `route`, whose cluster is `cluster`, is this target's.
    pub(super) fn covers(&self, route: &str, cluster: &str) -> bool {
        match self {
            FaultTarget::Route(name) => name == route,
            FaultTarget::Cluster(name) => name == cluster,
        }
    }

    /// `"route"` or `"cluster"`.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            FaultTarget::Route(_) => "route",
            FaultTarget::Cluster(_) => "cluster",
        }
    }

    /// The route's or cluster's name.
    pub(crate) fn name(&self) -> &str {
        match self {
            FaultTarget::Route(name) | FaultTarget::Cluster(name) => name,
        }
    }
}

/// A rule to put in the table: what the admin API checked.
#[derive(Debug)]
pub(crate) struct NewRule {
    /// Whose requests.
    pub target: FaultTarget,
    /// Which requests and what it does, checked as a config rule is.
    pub rule: FaultRule,
    /// The action's keys as the operator gave them, shown back as given.
    pub given: serde_json::Value,
    /// Time from its creation before it applies.
    pub after: Duration,
    /// Time it applies for, from when it starts.
    pub ttl: Duration,
}

/// A rule made at run time, as the table keeps it.
#[derive(Debug)]
pub(crate) struct RuntimeRule {
    /// `f1`, `f2`… in creation order, never reused while the proxy runs.
    pub id: Arc<str>,
    /// Its number (`f<number>`).
    pub number: u64,
    /// Whose requests.
    pub target: FaultTarget,
    /// Which requests and what it does.
    pub rule: FaultRule,
    /// The action's keys as given.
    pub given: serde_json::Value,
    /// When it was made.
    pub created_at: SystemTime,
    /// When it starts applying (`after` its creation).
    pub starts_at: SystemTime,
    /// When it stops applying.
    pub expires_at: SystemTime,
    pub(super) starts: Instant,
    pub(super) expires: Instant,
    pub(super) faulted: AtomicU64,
    /// Whether an operator or a reload removed it: its faults in progress end.
    pub(super) ended: AtomicBool,
}

impl RuntimeRule {
    /// Whether it applies at `now`.
    pub(super) fn live_at(&self, now: Instant) -> bool {
        self.starts <= now && now < self.expires
    }

    /// How long until it expires, from `now` (zero once it has).
    pub(crate) fn expires_in(&self, now: Instant) -> Duration {
        self.expires.saturating_duration_since(now)
    }

    /// How long until it starts applying, from `now` (zero once it has).
    pub(crate) fn starts_in(&self, now: Instant) -> Duration {
        self.starts.saturating_duration_since(now)
    }

    /// Ends its faults in progress (before the table tells them to look).
    pub(super) fn end(&self) {
        self.ended.store(true, Ordering::Release);
    }

    /// Whether an operator or a reload removed it.
    pub(super) fn ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    /// Requests it has faulted.
    pub(crate) fn faulted(&self) -> u64 {
        self.faulted.load(Ordering::Relaxed)
    }

    /// What it does.
    pub(crate) fn action(&self) -> &FaultAction {
        &self.rule.action
    }
}

/// `delay 2s on route "checkout"`.
pub(super) fn describe(rule: &RuntimeRule) -> String {
    format!(
        "{} on {} \"{}\"",
        rule.rule.action.summary(),
        rule.target.kind(),
        rule.target.name()
    )
}
