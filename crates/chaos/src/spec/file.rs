//! The spec file as written: the TOML shape, with spans on every value whose error must
//! point at it, and the JSON Schema generated from it. [`super::validate`] turns it into
//! the typed [`super::Spec`].

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

/// A Blastwall fault-tolerance spec.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Blastwall fault-tolerance spec")]
pub(crate) struct SpecFile {
    /// What the spec is about, for reports.
    pub name: Option<String>,
    /// The system under test.
    pub system: SystemSection,
    /// The load that runs through every experiment.
    pub load: LoadSection,
    /// Checked before and after every experiment.
    #[serde(default)]
    pub steady_state: Vec<ExpectSection>,
    /// The failure modes, one experiment each.
    #[serde(default, rename = "failure")]
    #[schemars(length(min = 1))]
    pub failures: Vec<FailureSection>,
}

/// The system under test: a topology `verify` starts (`service`, `blastwall`), or a running
/// system (`traffic`, `admin`, `toxiproxy`); not both.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SystemSection {
    /// Mock services `verify` starts on loopback.
    #[serde(default, rename = "service")]
    pub services: Vec<ServiceSection>,
    /// The Blastwall config in front of them: a path (relative to the spec), or the config
    /// itself, as a multi-line string (`"""…"""`) or a table. Endpoints are written
    /// `"{service:NAME}"`.
    #[schemars(with = "Option<serde_json::Value>")]
    pub blastwall: Option<Spanned<toml::Value>>,
    /// A running system: where its traffic goes, e.g. "http://127.0.0.1:8080".
    #[schemars(with = "Option<String>")]
    pub traffic: Option<Spanned<String>>,
    /// A running system: its Blastwall admin API.
    #[schemars(with = "Option<String>")]
    pub admin: Option<Spanned<String>>,
    /// A running system: a Toxiproxy-compatible API for its TCP dependencies.
    #[schemars(with = "Option<String>")]
    pub toxiproxy: Option<Spanned<String>>,
}

/// One mock service of a topology.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServiceSection {
    /// Its name, which the Blastwall config and failure modes use.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// Its zone, for reports.
    pub zone: Option<String>,
    /// Its behaviour, as `blastwall mock`'s control API takes it. Default: answers 200 at once.
    #[schemars(with = "Option<serde_json::Value>")]
    pub behaviour: Option<Spanned<toml::Value>>,
}

/// Open-loop load.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoadSection {
    /// Requests started per second, whatever the answers take.
    #[schemars(with = "u32", range(min = 1))]
    pub rate: Spanned<u32>,
    /// How long each experiment's load runs, e.g. "60s".
    #[schemars(with = "String")]
    pub duration: Spanned<String>,
    /// The request mix, drawn by weight. Default: `GET /`.
    #[serde(default, rename = "request")]
    pub requests: Vec<RequestSection>,
    /// The header mix: each header goes on its share of requests.
    #[serde(default, rename = "header")]
    pub headers: Vec<HeaderSection>,
}

/// One kind of request of the mix.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RequestSection {
    /// Default "GET".
    #[schemars(with = "Option<String>")]
    pub method: Option<Spanned<String>>,
    /// Path and query, starting with "/".
    #[schemars(with = "String")]
    pub path: Spanned<String>,
    /// Its weight in the mix. Default 1.
    #[schemars(with = "Option<u32>", range(min = 1))]
    pub weight: Option<Spanned<u32>>,
    /// The route the proxy sends it to, for expectations scoped to a route: a running
    /// system's must be named here (verify cannot read its config); a topology's is found
    /// from its config, and one named here must agree.
    #[schemars(with = "Option<String>")]
    pub route: Option<Spanned<String>>,
}

/// One header of the mix.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct HeaderSection {
    /// Its name, e.g. "x-blastwall-priority".
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// Its value, e.g. "high".
    #[schemars(with = "String")]
    pub value: Spanned<String>,
    /// The share of requests that carry it: "20%" or 0.2.
    #[schemars(with = "serde_json::Value")]
    pub share: Spanned<toml::Value>,
}

/// One failure mode: a row of the table, how to cause it, and what must hold.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FailureSection {
    /// A short name, unique in the spec, e.g. "payments-down".
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// The table's first column: the failure, e.g. "payment service down".
    pub failure: String,
    /// The required behaviour.
    pub required_behaviour: String,
    /// The acceptable degradation.
    pub acceptable_degradation: String,
    /// The design that handles it.
    pub design: String,
    /// When the fault starts, after the load starts, e.g. "10s".
    #[schemars(with = "String")]
    pub start: Spanned<String>,
    /// How long the fault lasts, e.g. "20s".
    #[schemars(with = "String")]
    pub duration: Spanned<String>,
    /// How to cause it: exactly one of its keys.
    #[schemars(with = "CauseSection")]
    pub cause: Spanned<CauseSection>,
    /// What must hold.
    #[serde(default, rename = "expect")]
    pub expectations: Vec<ExpectSection>,
}

/// How a failure is caused: exactly one key.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CauseSection {
    /// A fault rule, as `POST /admin/faults` takes it (`route` or `cluster`, and the
    /// `[[route.fault]]` keys), without `ttl` and `after`: the failure's `start` and
    /// `duration` set those.
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub fault: Option<Spanned<toml::Table>>,
    /// A toxic on a Toxiproxy proxy: `proxy` (its name) and the toxic as Toxiproxy's API
    /// takes it (`type`, `stream`, `toxicity`, `attributes`).
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub toxic: Option<Spanned<toml::Table>>,
    /// Kill (SIGKILL) a service `verify` started; it is started again when the fault ends.
    #[schemars(with = "Option<String>")]
    pub kill: Option<Spanned<String>>,
    /// Stop (SIGSTOP) a service `verify` started: it hangs; SIGCONT when the fault ends.
    #[schemars(with = "Option<String>")]
    pub stop: Option<Spanned<String>>,
    /// A mock's new behaviour: `service` and the behaviour's keys; restored when the
    /// fault ends.
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub behaviour: Option<Spanned<toml::Table>>,
}

/// One expectation: a metric, where it is measured, and its bound.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExpectSection {
    /// `availability`, `error_rate`, `p50`, `p95`, `p99`, `fallback_share`, `statuses`,
    /// `retry_amplification`, `time_to_detect` or `time_to_recover`.
    #[schemars(with = "String")]
    pub metric: Spanned<String>,
    /// Over which window: `run` (default), `fault` or `recovery`. Not in `steady_state`.
    #[schemars(with = "Option<String>")]
    pub during: Option<Spanned<String>>,
    /// Only the requests the proxy routed to this route (its `name` in the Blastwall
    /// config).
    #[schemars(with = "Option<String>")]
    pub route: Option<Spanned<String>>,
    /// Only requests of this priority class: `critical`, `high`, `normal` or `low`.
    #[schemars(with = "Option<String>")]
    pub class: Option<Spanned<String>>,
    /// The lower bound: a share ("99.5%" or 0.995).
    #[schemars(with = "Option<serde_json::Value>")]
    pub at_least: Option<Spanned<toml::Value>>,
    /// The upper bound: a share, a duration ("400ms") or, for `retry_amplification`, a
    /// factor (1.2).
    #[schemars(with = "Option<serde_json::Value>")]
    pub at_most: Option<Spanned<toml::Value>>,
    /// `fallback_share`: which fallback (`stale`, `cluster`, `static`); default any.
    #[schemars(with = "Option<String>")]
    pub kind: Option<Spanned<String>>,
    /// `statuses`: the status codes allowed.
    #[schemars(with = "Option<Vec<u16>>")]
    pub allowed: Option<Spanned<Vec<u16>>>,
    /// `time_to_detect`: what detection is: `breaker_open` or `endpoint_ejected`.
    #[schemars(with = "Option<String>")]
    pub signal: Option<Spanned<String>>,
}
