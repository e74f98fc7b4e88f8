//! The `[route.fallback]` section as written: what a route answers when its cluster cannot.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

use crate::config::values::{ByteSizeValue, DurationValue};

/// What the route answers when its cluster cannot: the stale-if-error cache, an alternate
/// cluster, a static response, tried in that order (each that is given); and its kill switch.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FallbackSection {
    /// Which failures take the fallback. Default: all of them.
    #[schemars(with = "Option<Vec<FallbackOn>>")]
    pub on: Option<Spanned<Vec<FallbackOn>>>,
    /// Every request takes the fallback at once (503 `kill_switch` if there is none), without
    /// touching the cluster. Default false. A reload that changes this key sets the switch to
    /// it; one that does not change it keeps a switch flipped at run time.
    pub kill_switch: Option<bool>,
    /// A fixed response, tried last.
    #[serde(rename = "static")]
    #[schemars(with = "Option<StaticSection>")]
    pub static_response: Option<Spanned<StaticSection>>,
    /// Another cluster (not the route's own), sent one attempt after the stale cache misses.
    /// Only requests without a body can be sent there.
    #[schemars(with = "Option<String>")]
    pub cluster: Option<Spanned<String>>,
    /// Keep the last good response of each URL and serve it, with `Age`, when the cluster
    /// fails (RFC 5861 stale-if-error), tried first.
    #[schemars(with = "Option<StaleIfErrorSection>")]
    pub stale_if_error: Option<Spanned<StaleIfErrorSection>>,
}

/// A reason for taking the fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum FallbackOn {
    /// Every attempt failed (no connection, reset, timeout, or a 500, 502, 503 or 504 answer).
    Failed,
    /// The cluster's circuit breaker is open.
    BreakerOpen,
    /// The request was shed or rate limited.
    Shed,
    /// The route's deadline passed.
    Timeout,
    /// The route's kill switch is on.
    KillSwitch,
}

/// A fixed response. Give `body` or `body_file`, not both.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StaticSection {
    /// Its status, 200 to 599. Default 503.
    #[schemars(with = "Option<u16>")]
    pub status: Option<Spanned<u16>>,
    /// Its headers (Content-Length is computed; hop-by-hop headers are refused).
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    pub headers: BTreeMap<Spanned<String>, Spanned<String>>,
    /// Its body, as text. Default: empty.
    pub body: Option<String>,
    /// A file holding its body (at most 1MiB), read when the config is loaded; relative to
    /// the config file's folder.
    #[schemars(with = "Option<String>")]
    pub body_file: Option<Spanned<String>>,
}

/// Limits and window of the stale-if-error cache.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StaleIfErrorSection {
    /// How long after it became stale a response without its own `stale-if-error=N` may still
    /// be served on error. Default "5m".
    #[schemars(with = "Option<DurationValue>")]
    pub max_age: Option<Spanned<DurationValue>>,
    /// Most responses kept; the least recently used goes first. Default 1000.
    #[schemars(with = "Option<u32>")]
    pub max_entries: Option<Spanned<u32>>,
    /// Largest body kept; larger responses stream through and are not kept. Default "1MiB".
    #[schemars(with = "Option<ByteSizeValue>")]
    pub max_body: Option<Spanned<ByteSizeValue>>,
    /// Memory the kept responses may take in all (bodies, headers, keys), and separately the
    /// bodies being copied; least recently used go first. Default "64MiB", at least max_body.
    #[schemars(with = "Option<ByteSizeValue>")]
    pub max_bytes: Option<Spanned<ByteSizeValue>>,
}
