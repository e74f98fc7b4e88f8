//! What a `verify` run found, as data: the one value the experiments fill and every report
//! format (JSON, JUnit XML, HTML) reads. The JSON report is this, serialized.
//!
//! Times are seconds from the start of the experiment's load (`t`), so a plot's x axis, the
//! fault's window and the proxy's events line up without clocks.

use serde::{Deserialize, Serialize};

/// A whole `verify` run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// The spec's name.
    pub spec: String,
    /// When the run started, milliseconds since the Unix epoch.
    pub started_unix_ms: u64,
    /// How long the whole run took, seconds.
    pub elapsed_s: f64,
    /// One per failure mode, in the spec's order.
    pub experiments: Vec<ExperimentReport>,
}

impl VerifyReport {
    /// How the run ended: the worst of its experiments.
    pub fn outcome(&self) -> Outcome {
        self.experiments
            .iter()
            .map(|experiment| experiment.outcome)
            .max()
            .unwrap_or(Outcome::Passed)
    }
}

/// How an experiment (or a run) ended; the order is from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every expectation held.
    Passed,
    /// It ran, and at least one expectation did not hold.
    Failed,
    /// It could not run (the system could not be started, a fault could not be injected…).
    CouldNotRun,
}

/// One failure mode's experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentReport {
    /// The failure mode's short name.
    pub name: String,
    /// The four columns of the table, as the spec says them.
    pub failure: String,
    /// The required behaviour.
    pub required_behaviour: String,
    /// The acceptable degradation.
    pub acceptable_degradation: String,
    /// The design that handles it.
    pub design: String,
    /// How it ended.
    pub outcome: Outcome,
    /// Why it could not run, when it could not.
    pub error: Option<String>,
    /// How long the load ran, seconds.
    pub load_s: f64,
    /// When the fault was in force, seconds from the load's start (`None`: never injected).
    pub fault: Option<FaultWindow>,
    /// The steady state, checked on the load before the fault.
    pub steady_before: Vec<Check>,
    /// The failure mode's expectations.
    pub expectations: Vec<Check>,
    /// The steady state, checked on the load's last stretch after the fault.
    pub steady_after: Vec<Check>,
    /// Totals over the whole load.
    pub totals: Totals,
    /// One point per second of load, by due time.
    pub timeline: Vec<Second>,
    /// What the proxy reported meanwhile (breakers, ejections, health, reloads, faults).
    pub events: Vec<ProxyEvent>,
}

impl ExperimentReport {
    /// Every check of the experiment: steady state before, expectations, steady state after.
    pub fn checks(&self) -> impl Iterator<Item = (&'static str, &Check)> {
        let before = self
            .steady_before
            .iter()
            .map(|check| ("steady state before", check));
        let during = self.expectations.iter().map(|check| ("expectation", check));
        let after = self
            .steady_after
            .iter()
            .map(|check| ("steady state after", check));
        before.chain(during).chain(after)
    }
}

/// When the fault was in force.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FaultWindow {
    /// Injected, seconds from the load's start.
    pub start_s: f64,
    /// Removed.
    pub end_s: f64,
}

/// One expectation's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// What it says, for people: "availability during the fault, route checkout".
    pub label: String,
    /// The metric's name as the spec writes it (`availability`, `p95`, `time_to_detect`…).
    pub metric: String,
    /// The window: `run`, `fault`, `recovery`, `before` or `after` (the steady state's).
    pub window: String,
    /// The requests it counts: `all`, `route NAME` or `class NAME`.
    pub scope: String,
    /// The bound as people read it: "≥ 99%", "≤ 400 ms", "only 200, 503".
    pub bound: String,
    /// The measured figure in `unit` (`None` when nothing could be measured).
    pub measured: Option<f64>,
    /// The measured figure as people read it: "99.4%", "312 ms", "never", "no requests".
    pub measured_text: String,
    /// The unit of `measured`: `ratio` (0 to 1), `ms`, `factor`, `s`, or `status` for
    /// `statuses` (the first status outside the allowed ones).
    pub unit: String,
    /// Whether it held.
    pub passed: bool,
    /// Why it failed, when the figures alone do not say ("no request in the window",
    /// "504 answered 12 times").
    pub note: Option<String>,
}

/// Totals over a whole load.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Requests due.
    pub requests: u64,
    /// Answered with a status below 500.
    pub available: u64,
    /// 5xx answers and requests without an answer.
    pub errors: u64,
    /// Answers a fallback served.
    pub fallbacks: u64,
    /// Attempts at the upstreams (`x-blastwall-attempts`), summed.
    pub attempts: u64,
}

/// One second of load (requests by due time).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Second {
    /// Seconds from the load's start: this point covers `[t, t + 1)`.
    pub t: u32,
    /// Requests due.
    pub requests: u64,
    /// 5xx answers and requests without an answer, over `requests` (0 when none).
    pub error_rate: f64,
    /// Latency percentiles of the second's requests, ms (`None` when none).
    pub p50_ms: Option<f64>,
    /// 95th percentile.
    pub p95_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
    /// Where the second's answers came from.
    pub sources: Sources,
}

/// Where answers came from: each request counts in exactly one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sources {
    /// An upstream answered (any status the proxy did not make itself).
    pub upstream: u64,
    /// The static fallback.
    pub fallback_static: u64,
    /// The alternate cluster.
    pub fallback_cluster: u64,
    /// The stale-if-error cache.
    pub fallback_stale: u64,
    /// Refused by admission (429, or 503 shed).
    pub shed: u64,
    /// No answer, or a 5xx the proxy made (no fallback).
    pub failed: u64,
}

/// An event the proxy's admin API reported (`/admin/events`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProxyEvent {
    /// Seconds from the load's start (negative: before it).
    pub t: f64,
    /// Its kind as the admin API names it (`breaker_opened`, `endpoint_ejected`…).
    pub kind: String,
    /// What it happened to: `cluster/endpoint`, a route, or empty.
    pub target: String,
    /// The admin API's detail.
    pub detail: String,
    /// Whether it is bad news.
    pub failure: bool,
}
