//! The typed config: what the proxy runs on, parsed and checked once at load.
//!
//! A config file ([`file::ConfigFile`], TOML) is parsed, then validated into a [`Config`]
//! whose values are the types the request path uses (`Duration`, `SocketAddr`, `Regex`,
//! `HeaderName`, cluster indices rather than names), so nothing is looked up or parsed per
//! request. Validation does not stop at the first problem: every error is reported with its
//! file, line and column (see [`error`]). Defaults are safe and written down in
//! `examples/blastwall.toml`.

pub(crate) mod admin;
pub(crate) mod admission;
pub(crate) mod attempts;
pub(crate) mod error;
pub(crate) mod fallback;
pub(crate) mod fault;
pub(crate) mod file;
mod passive;
pub(crate) mod telemetry;
pub(crate) mod tls;
mod validate;

pub(crate) use self::validate::runtime_fault_rule;
pub(crate) mod values;

use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use regex::Regex;

pub(crate) use attempts::RouteAttempts;
pub(crate) use error::Location;
pub use error::{ConfigError, ConfigErrors};
pub(crate) use file::{DecisionHeaders, EscapedSlashes, UpstreamProtocol};
pub(crate) use passive::{PassiveConfig, StallConfig};
pub(crate) use telemetry::TelemetryConfig;
pub(crate) use tls::TlsConfig;

/// A validated config.
#[derive(Debug, Clone)]
pub struct Config {
    /// Settings of the process as a whole.
    pub proxy: ProxySettings,
    /// Where traffic is accepted.
    pub listeners: Vec<ListenerConfig>,
    /// Routes in match order.
    pub routes: Vec<RouteConfig>,
    /// Clusters; routes refer to them by index.
    pub clusters: Vec<ClusterConfig>,
    /// The admin listener.
    pub admin: admin::AdminConfig,
    /// The access log and tracing.
    pub telemetry: TelemetryConfig,
    /// Where the config came from and a hash of its text, to tell configs apart.
    pub source: Source,
}

/// Where a config came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The file, as given.
    pub path: PathBuf,
    /// A hash of the file's text (FNV-1a, hex), shown in logs and metrics after reloads.
    pub hash: String,
    /// The file's text as loaded, for the admin API's view of the config in force.
    pub text: std::sync::Arc<str>,
}

impl Source {
    /// The hash a config with this text would have, to tell whether a file changed.
    pub fn hash_of(text: &[u8]) -> String {
        validate::fnv1a_hex(text)
    }
}

/// A cluster's `request_timeout` unless it says otherwise.
pub(crate) const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Settings of the process as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxySettings {
    /// The proxy's own zone, for zone-aware balancing.
    pub zone: Option<String>,
    /// How long in-flight requests may take to finish on SIGTERM.
    pub drain_timeout: Duration,
    /// The header carrying a request's remaining time in milliseconds.
    pub deadline_header: HeaderName,
    /// Which responses say what the proxy decided.
    pub decision_headers: DecisionHeaders,
    /// Threads that serve traffic (1: a single-threaded runtime); `None`: one per core.
    /// Applied when the process starts, never by a reload.
    pub worker_threads: Option<NonZeroUsize>,
}

/// One listening socket.
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    /// Unique among listeners.
    pub name: String,
    /// The address to bind.
    pub listen: SocketAddr,
    /// Where `listen` is written, so a bind failure can point at it.
    pub listen_location: Location,
    /// Where `max_connections` is written; `None` when it is the default.
    pub max_connections_location: Option<Location>,
    /// TLS, if served.
    pub tls: Option<TlsConfig>,
    /// Limits that protect the proxy from clients.
    pub limits: ListenerLimits,
}

/// Limits a listener enforces on clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerLimits {
    /// Connections served at once.
    pub max_connections: usize,
    /// Largest request head, in bytes.
    pub max_header_bytes: usize,
    /// Most request headers.
    pub max_headers: usize,
    /// Largest request body, in bytes.
    pub max_request_body: u64,
    /// Time to receive a complete request head.
    pub header_read_timeout: Duration,
    /// Idle time before a connection is closed.
    pub idle_timeout: Duration,
    /// Requests per connection before it is closed.
    pub max_requests_per_connection: Option<NonZeroU32>,
    /// Longest wait for the next piece of a request body being read.
    pub request_body_timeout: Duration,
    /// Longest an answer's write may make no progress.
    pub send_timeout: Duration,
    /// Slowest average transfer rate a client may keep, if any.
    pub min_data_rate: Option<MinDataRate>,
    /// Streams one HTTP/2 connection may have open at once.
    pub http2_max_concurrent_streams: u32,
    /// What a path with an encoded slash (`%2F`) gets.
    pub escaped_slashes: EscapedSlashes,
}

/// The slowest a client may send or read, and when it starts to be judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinDataRate {
    /// Bytes per second, averaged from the first wait; more than zero.
    pub bytes_per_second: u64,
    /// Time from the first wait before the rate is judged.
    pub grace: Duration,
}

/// A route.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// For logs and metrics.
    pub name: String,
    /// Indices of the listeners it applies to; `None` for all.
    pub listeners: Option<Vec<usize>>,
    /// Which requests it takes.
    pub matcher: RouteMatch,
    /// Index into [`Config::clusters`].
    pub cluster: usize,
    /// Replacement for the matched path prefix.
    pub rewrite_prefix: Option<String>,
    /// Edits to the request before forwarding.
    pub request_headers: HeaderEdits,
    /// Edits to the response before returning it.
    pub response_headers: HeaderEdits,
    /// Deadlines, retries and hedging.
    pub attempts: RouteAttempts,
    /// Priority, concurrency limit, rate limit.
    pub admission: admission::RouteAdmissionConfig,
    /// Its fallback and kill switch.
    pub fallback: fallback::FallbackConfig,
    /// Its fault rules, in file order.
    pub faults: Vec<fault::FaultRule>,
}

/// Conditions on a request; all must hold.
#[derive(Debug, Clone)]
pub struct RouteMatch {
    /// Host condition.
    pub host: Option<HostMatch>,
    /// Path condition, read as [`crate::router::path_match`] says.
    pub path: PathMatch,
    /// Whether the path condition tells upper from lower case (ASCII).
    pub case_sensitive: bool,
    /// Allowed methods; `None` for any.
    pub methods: Option<Vec<Method>>,
    /// Headers that must be present with these exact values.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl Default for RouteMatch {
    /// Every request, as a route without conditions takes.
    fn default() -> Self {
        Self {
            host: None,
            path: PathMatch::Any,
            case_sensitive: true,
            methods: None,
            headers: Vec::new(),
        }
    }
}

/// A host condition, lowercased at load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    /// This host exactly.
    Exact(String),
    /// Any subdomain of this suffix (stored with its leading dot: `.example.com`).
    Subdomain(String),
}

/// A path condition.
#[derive(Debug, Clone, Default)]
pub enum PathMatch {
    /// Any path.
    #[default]
    Any,
    /// This path exactly.
    Exact(String),
    /// Paths starting with this.
    Prefix(String),
    /// Paths the expression matches whole (anchored at load).
    Regex(Regex),
}

/// Header edits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderEdits {
    /// Set, replacing existing values.
    pub add: Vec<(HeaderName, HeaderValue)>,
    /// Remove.
    pub remove: Vec<HeaderName>,
}

impl HeaderEdits {
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }
}

/// A cluster of interchangeable endpoints.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    /// Unique among clusters.
    pub name: String,
    /// The endpoints as configured (DNS names are resolved by the cluster at run time).
    pub endpoints: Vec<EndpointConfig>,
    /// How endpoints are chosen.
    pub balance: BalanceConfig,
    /// Time to connect.
    pub connect_timeout: Duration,
    /// Time for a response head.
    pub request_timeout: Duration,
    /// Longest wait for the next piece of a response body.
    pub body_read_timeout: Duration,
    /// Protocol to endpoints.
    pub protocol: UpstreamProtocol,
    /// DNS re-resolution interval.
    pub dns_refresh: Duration,
    /// Share of healthy endpoints (0 to 1) under which a priority level is in panic.
    pub panic_threshold: f64,
    /// Idle pooled connections per endpoint.
    pub max_idle_per_endpoint: usize,
    /// Active health checks, if any.
    pub health_check: Option<HealthCheckConfig>,
    /// The budget retries and hedges to this cluster spend from, checked by the policy crate.
    pub retry_budget: blastwall_policy::budget::ValidBudgetConfig,
    /// A concurrency limit over all the cluster's requests, if any.
    pub concurrency: Option<admission::ConcurrencyConfig>,
    /// Breakers and outlier detection.
    pub passive: PassiveConfig,
}

/// How endpoints are chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BalanceConfig {
    /// In turn.
    RoundRobin,
    /// In turn, by weight.
    WeightedRoundRobin,
    /// Least requests in flight of two random endpoints.
    LeastRequest,
    /// Lowest peak-EWMA cost of two random endpoints.
    PeakEwma,
    /// Consistent hashing on a key.
    ConsistentHash(HashKey),
}

/// What consistent hashing hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    /// A request header's value.
    Header(HeaderName),
    /// A cookie's value.
    Cookie(String),
}

/// One configured endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointConfig {
    /// Where it is.
    pub address: EndpointAddress,
    /// Relative share of traffic.
    pub weight: u32,
    /// Its zone.
    pub zone: Option<String>,
    /// 0 = primary.
    pub priority: u32,
}

/// An endpoint address: resolved, or a name to resolve.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EndpointAddress {
    /// An IP address and port.
    Socket(SocketAddr),
    /// A DNS name and port, resolved every `dns_refresh`.
    Dns {
        /// The host name.
        host: String,
        /// The port.
        port: u16,
    },
}

impl std::fmt::Display for EndpointAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EndpointAddress::Socket(addr) => write!(f, "{addr}"),
            EndpointAddress::Dns { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

/// Active health checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckConfig {
    /// What a check does.
    pub kind: HealthCheck,
    /// Time between checks.
    pub interval: Duration,
    /// Time a check may take.
    pub timeout: Duration,
    /// Passes in a row to become healthy.
    pub healthy_threshold: NonZeroU32,
    /// Failures in a row to become unhealthy.
    pub unhealthy_threshold: NonZeroU32,
    /// Random extra time between checks, up to this.
    pub jitter: Duration,
}

/// What a health check does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthCheck {
    /// An HTTP GET.
    Http {
        /// Path requested.
        path: String,
        /// Host header, if not the endpoint's address.
        host: Option<String>,
        /// Healthy statuses, as inclusive ranges.
        expected_statuses: Vec<(u16, u16)>,
    },
    /// A TCP connect.
    Tcp,
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|error| {
            ConfigErrors(vec![ConfigError::whole_file(
                path,
                format!("cannot read the config file: {error}"),
            )])
        })?;
        Self::parse(&text, path)
    }

    /// Validates config text; `path` names it in errors and resolves relative file paths.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigErrors> {
        let file: file::ConfigFile = toml::from_str(text).map_err(|error| {
            ConfigErrors(vec![ConfigError {
                path: path.to_owned(),
                location: error.span().map(|span| Location::of_span(text, span)),
                message: error.message().trim_end().to_owned(),
            }])
        })?;
        validate::validate(file, text, path)
    }

    /// The JSON Schema of the config file, for editor completion and validation.
    pub fn json_schema() -> serde_json::Value {
        serde_json::to_value(schemars::schema_for!(file::ConfigFile))
            .expect("a generated schema is always valid JSON")
    }
}

#[cfg(test)]
mod tests;
