//! TEMPORARY stand-in for the load mix slice's samples (b18-mix), replaced at its merge.

use std::time::Duration;

pub use super::stats::Outcome;

/// One request of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// When it was due, from the run's start.
    pub due: Duration,
    /// How long it took from its due time.
    pub latency: Duration,
    /// What it came to.
    pub outcome: Outcome,
    /// Its request kind.
    pub kind: u16,
    /// Bit i: extra header i was sent.
    pub headers: u32,
    /// Where its answer came from.
    pub source: Source,
    /// `x-blastwall-attempts`, 0 when absent.
    pub attempts: u16,
}

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// An upstream.
    Upstream,
    /// A fallback.
    Fallback(FallbackKind),
    /// Admission refused it.
    Refused,
    /// The proxy answered with an error of its own.
    ProxyError,
    /// No answer.
    NoAnswer,
}

/// Which fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FallbackKind {
    /// Static.
    Static,
    /// Alternate cluster.
    Cluster,
    /// Stale cache.
    Stale,
    /// Another.
    Other,
}
