//! The fault-tolerance spec: what `blastwall verify` proves, as a TOML file, typed and
//! checked before anything runs.
//!
//! Teams write fault tolerance down as a table: the failure, the required behaviour, the
//! acceptable degradation, the design. A spec is that table made runnable: each row gets a
//! way to cause the failure, a window, and **expectations**, each a figure with a bound, so
//! "degrades gracefully" becomes "availability during the fault at least 99%". Everything
//! is checked here, at load, with `file:line:col` errors (`blastwall check SPEC`), so an
//! experiment never starts on a spec that could not finish; the runner (not built yet)
//! only reads the typed [`Spec`].
//!
//! ```toml
//! name = "shop"
//!
//! [system]                       # a topology verify starts on loopback ...
//! blastwall = "shop.blastwall.toml"   # or the config itself: """…"""; endpoints "{service:payments}"
//! [[system.service]]
//! name = "payments"
//! zone = "a"
//! behaviour = { latency = "20ms" }    # blastwall mock's behaviour JSON
//! # ... or a running system: traffic = "http://…", admin = "http://…", toxiproxy = "http://…"
//!
//! [load]                         # open loop: requests start at `rate` whatever the answers
//! rate = 200
//! duration = "60s"
//! [[load.request]]
//! method = "POST"
//! path = "/checkout"
//! weight = 3
//! [[load.header]]
//! name = "x-blastwall-priority"
//! value = "high"
//! share = "20%"
//!
//! [[steady_state]]               # before and after every experiment
//! metric = "availability"
//! at_least = "99.9%"
//!
//! [[failure]]
//! name = "payments-down"
//! failure = "payment service down"
//! required_behaviour = "checkout degrades gracefully"
//! acceptable_degradation = "card payments off, \"try again\" shown"
//! design = "breaker on payments, fallback answer"
//! start = "10s"
//! duration = "20s"
//! cause = { fault = { cluster = "payments", abort = { status = 503 } } }
//! [[failure.expect]]
//! metric = "availability"
//! during = "fault"
//! route = "checkout"
//! at_least = "99%"
//! ```
//!
//! The choices worth knowing:
//! - **A cause is one of four**, each the way a user would do it by hand: a fault rule in
//!   the body `POST /admin/faults` takes (`ttl` set from `duration`, so a stopped `verify`
//!   leaves nothing behind; its action keys are checked by the proxy when it is made, as
//!   the chaos crate never imports the proxy), a toxic (a running system's Toxiproxy), a
//!   `kill` or `stop` of a service `verify` started, a mock's new behaviour.
//! - **Metrics are a closed set** ([`Metric`]), each with the one bound that makes sense
//!   for it: availability has a floor, latency a ceiling. A key that does not apply to a
//!   metric is an error, not ignored.
//! - **Windows are named, not timed**: `run`, `fault` (from `start` for `duration`) and
//!   `recovery` (after the fault, to the end of the load), so moving a fault never
//!   silently moves what an expectation measures.

mod error;
mod file;
mod validate;

#[cfg(test)]
mod tests;

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use serde_json::{Map, Value};

use crate::mock::Behaviour;

pub use error::{SpecError, SpecErrors};

/// A checked spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// Its name, for reports (default: the file's stem).
    pub name: String,
    /// The system under test.
    pub system: System,
    /// The load of every experiment.
    pub load: Load,
    /// Checked before and after every experiment.
    pub steady_state: Vec<Expectation>,
    /// One experiment each.
    pub failures: Vec<FailureMode>,
}

/// The system under test.
#[derive(Debug, Clone, PartialEq)]
pub enum System {
    /// Started by `verify` on loopback.
    Topology(Topology),
    /// Already running.
    Running(Box<Running>),
}

/// Mock services and the Blastwall config in front of them.
#[derive(Debug, Clone, PartialEq)]
pub struct Topology {
    /// The mocks, in the order written.
    pub services: Vec<Service>,
    /// The Blastwall config, its endpoints written `"{service:NAME}"`.
    pub blastwall: BlastwallConfig,
}

/// Where a topology's Blastwall config is.
#[derive(Debug, Clone, PartialEq)]
pub enum BlastwallConfig {
    /// A file, resolved against the spec's directory.
    Path(PathBuf),
    /// Inline in the spec, as TOML text.
    Inline(String),
}

impl BlastwallConfig {
    /// The placeholder `verify` replaces with service `name`'s address.
    pub fn placeholder(name: &str) -> String {
        format!("{{service:{name}}}")
    }
}

/// One mock service.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    /// Its name.
    pub name: String,
    /// Its zone, for reports.
    pub zone: Option<String>,
    /// How it answers until a failure changes it.
    pub behaviour: Behaviour,
}

/// A running system's addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    /// Where traffic goes.
    pub traffic: http::Uri,
    /// Its Blastwall admin API, which fault rules and events need.
    pub admin: Option<http::Uri>,
    /// A Toxiproxy-compatible API, which toxics need.
    pub toxiproxy: Option<http::Uri>,
}

/// Open-loop load.
#[derive(Debug, Clone, PartialEq)]
pub struct Load {
    /// Requests started per second.
    pub rate: NonZeroU32,
    /// How long each experiment's load runs.
    pub duration: Duration,
    /// The request mix, drawn by weight; never empty.
    pub requests: Vec<RequestKind>,
    /// The header mix.
    pub headers: Vec<HeaderShare>,
}

/// One kind of request of the mix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestKind {
    /// Its method.
    pub method: Method,
    /// Its path and query.
    pub path: String,
    /// Its weight in the mix.
    pub weight: NonZeroU32,
    /// The route it goes to, when the spec names it.
    pub route: Option<String>,
}

/// A header on a share of the requests.
#[derive(Debug, Clone, PartialEq)]
pub struct HeaderShare {
    /// Its name.
    pub name: HeaderName,
    /// Its value.
    pub value: HeaderValue,
    /// The share of requests that carry it, 0 to 1.
    pub share: f64,
}

/// One failure mode: one experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct FailureMode {
    /// Its short name, unique in the spec.
    pub name: String,
    /// The failure, as the table says it.
    pub failure: String,
    /// The required behaviour.
    pub required_behaviour: String,
    /// The acceptable degradation.
    pub acceptable_degradation: String,
    /// The design that handles it.
    pub design: String,
    /// When the fault starts, after the load starts.
    pub start: Duration,
    /// How long it lasts; `start + duration` is within the load.
    pub duration: Duration,
    /// How it is caused.
    pub cause: Cause,
    /// What must hold.
    pub expectations: Vec<Expectation>,
}

/// How a failure is caused.
#[derive(Debug, Clone, PartialEq)]
pub enum Cause {
    /// A fault rule: the body of `POST /admin/faults` but its `ttl`, which `verify` sets
    /// from the failure's `duration`.
    Fault(Map<String, Value>),
    /// A toxic on a Toxiproxy proxy.
    Toxic {
        /// The proxy's name.
        proxy: String,
        /// The toxic as Toxiproxy's API takes it.
        toxic: Map<String, Value>,
    },
    /// SIGKILL a started service, start it again when the fault ends.
    Kill(String),
    /// SIGSTOP a started service, SIGCONT when the fault ends.
    Stop(String),
    /// Give a started mock a new behaviour, restore its own when the fault ends.
    Behaviour {
        /// The mock's name.
        service: String,
        /// Its behaviour during the fault.
        behaviour: Box<Behaviour>,
    },
}

/// One figure with a bound, measured over a window and a part of the traffic.
#[derive(Debug, Clone, PartialEq)]
pub struct Expectation {
    /// The figure and its bound.
    pub metric: Metric,
    /// When it is measured.
    pub window: Window,
    /// Which requests it counts.
    pub scope: Scope,
}

/// When an expectation is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// The whole load (the steady state's window, before or after an experiment).
    Run,
    /// While the fault is in force.
    Fault,
    /// From the fault's end to the load's end.
    Recovery,
}

/// Which requests an expectation counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every request.
    All,
    /// Those the proxy routed to this route.
    Route(String),
    /// Those of this priority class (`critical`, `high`, `normal`, `low`).
    Class(String),
}

/// A latency quantile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantile {
    /// The median.
    P50,
    /// The 95th percentile.
    P95,
    /// The 99th percentile.
    P99,
}

/// What counts as detecting a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// A breaker of the target opened (an admin API event).
    BreakerOpen,
    /// An endpoint was ejected (an admin API event).
    EndpointEjected,
}

/// A figure and its bound. Shares are 0 to 1.
#[derive(Debug, Clone, PartialEq)]
pub enum Metric {
    /// Answers that are not 5xx nor failed connections, at least this share.
    Availability {
        /// The floor.
        at_least: f64,
    },
    /// Answers that are 5xx or failed connections, at most this share.
    ErrorRate {
        /// The ceiling.
        at_most: f64,
    },
    /// A latency quantile, at most this long.
    Latency {
        /// Which quantile.
        quantile: Quantile,
        /// The ceiling.
        at_most: Duration,
    },
    /// The share of answers a fallback served, within bounds (at least one given).
    FallbackShare {
        /// Which fallback (`stale`, `cluster`, `static`); `None`: any.
        kind: Option<String>,
        /// The floor.
        at_least: Option<f64>,
        /// The ceiling.
        at_most: Option<f64>,
    },
    /// Only these statuses answered.
    Statuses {
        /// The statuses allowed.
        allowed: Vec<u16>,
    },
    /// Attempts at the upstreams per request, at most this factor.
    RetryAmplification {
        /// The ceiling, at least 1.
        at_most: f64,
    },
    /// From the fault's start to the signal, at most this long.
    TimeToDetect {
        /// What detection is.
        signal: Signal,
        /// The ceiling.
        at_most: Duration,
    },
    /// From the fault's end until availability is back to the steady state's, at most this long.
    TimeToRecover {
        /// The ceiling.
        at_most: Duration,
    },
}

impl Spec {
    /// Reads and checks the spec at `path`.
    pub fn load(path: &Path) -> Result<Spec, SpecErrors> {
        let source = std::fs::read_to_string(path).map_err(|error| {
            SpecErrors(vec![SpecError::whole_file(
                path,
                format!("cannot read the spec: {error}"),
            )])
        })?;
        Self::parse(&source, path)
    }

    /// Checks the spec `source`, read from `path` (for errors, and to resolve a topology's
    /// Blastwall config path).
    pub fn parse(source: &str, path: &Path) -> Result<Spec, SpecErrors> {
        validate::spec(source, path)
    }

    /// The JSON Schema of the spec file, for editors.
    pub fn json_schema() -> Value {
        serde_json::to_value(schemars::schema_for!(file::SpecFile))
            .expect("a generated schema is JSON")
    }

    /// Whether TOML `source` looks like a spec rather than a Blastwall config: it has a
    /// top-level `system` or `failure`, keys a config never has.
    pub fn looks_like_spec(source: &str) -> bool {
        source
            .parse::<toml::Table>()
            .is_ok_and(|table| table.contains_key("system") || table.contains_key("failure"))
    }
}
