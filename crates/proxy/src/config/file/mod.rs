//! The config file as written: the TOML shape, with every field an operator may set.
//!
//! These types only describe the file (and generate its JSON Schema); [`super::validate`]
//! turns them into the typed [`super::Config`] the proxy runs on. Values whose errors need
//! to point at themselves after parsing (names referring to other sections, addresses,
//! patterns) keep their span.

pub(crate) mod delay;
pub(crate) mod fallback;
pub(crate) mod fault;
pub(crate) mod telemetry;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

mod admin;
mod admission;
mod attempts;

pub(crate) use self::admin::AdminSection;
pub(crate) use self::admission::{
    AdaptiveAlgorithm, ConcurrencySection, PrioritySection, RateLimitKeySection, RateLimitSection,
};
pub(crate) use self::attempts::{
    HedgeSection, JitterKind, RetryBudgetSection, RetryCondition, RetrySection,
};
use super::values::{ByteSizeValue, DurationValue, LearnedDurationValue, RateValue};

mod passive;

pub(crate) use passive::{BreakerProbe, CircuitBreakerSection, OutlierDetectionSection};

/// A Blastwall config file.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Blastwall configuration")]
pub(crate) struct ConfigFile {
    /// Settings of the proxy process as a whole.
    #[serde(default)]
    pub proxy: ProxySection,
    /// Where the proxy accepts traffic. At least one.
    #[serde(default, rename = "listener")]
    pub listeners: Vec<ListenerSection>,
    /// How requests are matched to clusters, tried in the order written; the first match wins.
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteSection>,
    /// Groups of interchangeable upstream endpoints, by name.
    #[serde(default, rename = "cluster")]
    #[schemars(with = "BTreeMap<String, ClusterSection>")]
    pub clusters: BTreeMap<Spanned<String>, ClusterSection>,
    /// The admin API and dashboard listener.
    pub admin: Option<AdminSection>,
    /// One JSON line per request (telemetry). Off unless `path` is set.
    pub access_log: Option<telemetry::AccessLogSection>,
    /// Trace context and spans over OTLP (telemetry). Off unless `otlp_endpoint` is set.
    pub tracing: Option<telemetry::TracingSection>,
}

/// Settings of the proxy process as a whole.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProxySection {
    /// The zone this proxy runs in. Endpoints in the same zone are preferred; traffic spills
    /// to other zones only as the local zone loses healthy capacity. Unset: no zone awareness.
    pub zone: Option<String>,
    /// On SIGTERM, how long in-flight requests may take to finish before the proxy exits.
    /// Default 30s.
    #[schemars(with = "Option<DurationValue>")]
    pub drain_timeout: Option<Spanned<DurationValue>>,
    /// The header that carries a request's remaining time, in whole milliseconds, between
    /// proxies. Sent upstream on every attempt (the smaller of the route's remaining
    /// deadline and the per-try timeout); honoured when it arrives from `trusted_clients`
    /// (only), so a request nobody waits for any more is not worked on. Running out of a
    /// caller's time never counts against an endpoint. Default "x-blastwall-timeout-ms".
    #[schemars(with = "Option<String>")]
    pub deadline_header: Option<Spanned<String>>,
    /// Which responses carry `x-blastwall-attempts` and `x-blastwall-fallback`: `always`,
    /// `on_request` (only when the request has an `x-blastwall-debug` header) or `never`.
    /// Default `always`.
    #[serde(default)]
    pub decision_headers: DecisionHeaders,
    /// The request header that sets a request's priority (`critical`, `high`, `normal`,
    /// `low`), honoured only from `trusted_clients`. Default "x-blastwall-priority".
    #[schemars(with = "Option<String>")]
    pub priority_header: Option<Spanned<String>>,
    /// Networks (CIDRs like "10.0.0.0/8", or single addresses) whose priority and deadline
    /// headers are honoured, and whose forwarding headers (`X-Forwarded-Host`, `-Port`,
    /// `-Prefix`, `-Ssl`, `-Scheme`, `-Server`, `Forwarded`, `X-Host`, `X-Original-Host`,
    /// `X-Real-IP`, `True-Client-IP`, `X-Client-IP`, `X-Original-URL`, `X-Rewrite-URL`)
    /// travel upstream; other clients' are ignored or removed.
    /// Default: none.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub trusted_clients: Vec<Spanned<String>>,
    /// Threads that serve traffic. 1 runs everything on one thread (no work stealing, no
    /// wakeups across threads: the least CPU per request, for one core or one process per
    /// core); more is a work-stealing pool of that many. Unset: one per CPU core (or
    /// `TOKIO_WORKER_THREADS`). Read at start: a reload does not change it.
    #[schemars(with = "Option<u32>", range(min = 1, max = 1024))]
    pub worker_threads: Option<Spanned<u32>>,
}

/// When responses say what the proxy decided.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DecisionHeaders {
    /// On every response.
    #[default]
    Always,
    /// When the request carries `x-blastwall-debug`.
    OnRequest,
    /// Never.
    Never,
}

/// One listening socket.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListenerSection {
    /// A name for logs and metrics, unique among listeners.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// `address:port` to listen on, like `0.0.0.0:8080` or `[::]:8443`.
    #[schemars(with = "String")]
    pub listen: Spanned<String>,
    /// Serve TLS with these PEM files (ALPN offers h2 and http/1.1). Unset: plaintext, where
    /// HTTP/2 is served to clients that speak it with prior knowledge (h2c). The files are
    /// read and checked (key matches certificate) when the config is loaded.
    pub tls: Option<TlsSection>,
    /// Connections served at once; past this, new connections wait in the kernel backlog.
    /// Default 10000.
    #[schemars(with = "Option<u32>")]
    pub max_connections: Option<Spanned<u32>>,
    /// Largest request head (request line and headers). Default "16KiB", at least "1KiB".
    /// Past it: 431.
    #[schemars(with = "Option<ByteSizeValue>")]
    pub max_header_bytes: Option<Spanned<ByteSizeValue>>,
    /// Most request headers. Default 100. Past it: 431.
    pub max_headers: Option<u32>,
    /// Largest request body. Default "10MiB". Past it: 413, at once when Content-Length says
    /// so, mid-stream otherwise (the upstream request is abandoned).
    #[schemars(with = "Option<ByteSizeValue>")]
    pub max_request_body: Option<Spanned<ByteSizeValue>>,
    /// Time a client has to send a complete request head, from its first byte (from accept
    /// for a connection's first request; the TLS handshake also within it). Past it: 408, or
    /// the connection is closed if nothing was sent. Default "10s".
    #[schemars(with = "Option<DurationValue>")]
    pub header_read_timeout: Option<Spanned<DurationValue>>,
    /// A connection with no request in flight is closed after this (HTTP/2: GOAWAY).
    /// Default "60s".
    #[schemars(with = "Option<DurationValue>")]
    pub idle_timeout: Option<Spanned<DurationValue>>,
    /// Requests served on one connection before it is closed: the last answer carries
    /// `Connection: close` (HTTP/2: a graceful GOAWAY). Default: unlimited.
    pub max_requests_per_connection: Option<u32>,
    /// The longest the proxy waits for the next piece of a request body it is reading.
    /// Past it: 408 if the answer has not begun, else the connection is closed (HTTP/2:
    /// GOAWAY, then closed). Default "30s".
    #[schemars(with = "Option<DurationValue>")]
    pub request_body_timeout: Option<Spanned<DurationValue>>,
    /// The longest writing an answer may make no progress because the client does not read
    /// it (HTTP/2: does not open a stream's flow-control window, even while it reads the
    /// others). Past it the connection is closed (HTTP/2: GOAWAY, then closed). Default
    /// "30s".
    #[schemars(with = "Option<DurationValue>")]
    pub send_timeout: Option<Spanned<DurationValue>>,
    /// The slowest a client may send a request body or read an answer, averaged from the
    /// first time the transfer waits on it, once `min_data_rate_grace` has passed: a client
    /// that trickles a byte at a time within `request_body_timeout`/`send_timeout` still
    /// cannot hold a connection for long. On HTTP/2 per stream, over the time the stream
    /// waited on the client: a stream too slow is reset (a request body: 408).
    /// "0B/s" turns it off. Default "256B/s".
    #[schemars(with = "Option<RateValue>")]
    pub min_data_rate: Option<Spanned<RateValue>>,
    /// How long a transfer may stay under `min_data_rate` before it is judged, so small
    /// bodies and slow starts are not. Default "10s".
    #[schemars(with = "Option<DurationValue>")]
    pub min_data_rate_grace: Option<Spanned<DurationValue>>,
    /// Most requests (streams) one HTTP/2 connection may have open at once. Default 100.
    pub http2_max_concurrent_streams: Option<u32>,
    /// What a request whose path holds an encoded slash (`%2F`) gets. Many servers and
    /// frameworks decode it to `/`, so `/m%2Fx` would reach `/m/x` without matching a `/m/`
    /// route: `reject` answers 400; `decode` makes it a `/` before the path is matched and
    /// forwarded; `keep` matches and forwards it as written, which is safe only when every
    /// endpoint behind the listener keeps `%2F` apart from `/`. Default `reject`.
    #[serde(default)]
    pub escaped_slashes: EscapedSlashes,
}

/// What a listener does with an encoded slash (`%2F`) in a request's path.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EscapedSlashes {
    /// Refuse the request (400): the endpoint might read the path differently from the route.
    #[default]
    Reject,
    /// Decode it to `/` before the path is matched and forwarded.
    Decode,
    /// Match and forward the path as written: for endpoints that keep `%2F` apart from `/`.
    Keep,
}

/// TLS certificate and key, as PEM files. Relative paths are relative to the config file.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TlsSection {
    /// The certificate chain, leaf first.
    #[schemars(with = "String")]
    pub cert: Spanned<String>,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    #[schemars(with = "String")]
    pub key: Spanned<String>,
}

/// A route: which requests it takes, what it changes, and the cluster it sends them to.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteSection {
    /// A name for logs and metrics. Default: `route-N`, counting from 1 in file order.
    pub name: Option<String>,
    /// Only requests on these listeners. Default: every listener.
    #[schemars(with = "Option<Vec<String>>")]
    pub listeners: Option<Vec<Spanned<String>>>,
    /// Which requests this route takes. Every condition given must hold; none given matches all.
    #[serde(default, rename = "match")]
    pub matcher: MatchSection,
    /// The cluster requests go to.
    #[schemars(with = "String")]
    pub cluster: Spanned<String>,
    /// Replace the matched `path_prefix` with this before forwarding.
    pub rewrite_prefix: Option<String>,
    /// Headers changed on the request before it is forwarded.
    #[serde(default)]
    pub request_headers: HeaderEditsSection,
    /// Headers changed on the response before it is returned.
    #[serde(default)]
    pub response_headers: HeaderEditsSection,
    /// The longest a request may take in all: every attempt, backoff and hedge. Past it the
    /// client gets 504 (or the fallback). Default: no overall limit beyond the attempts'.
    #[schemars(with = "Option<DurationValue>")]
    pub timeout: Option<Spanned<DurationValue>>,
    /// The longest one attempt may wait for a response head. Default: the cluster's
    /// `request_timeout`. `"auto"` learns it from the route's attempts: 4 × their p99 over
    /// the last 10s (a timed-out attempt counting as long as it waited), at least "50ms"
    /// and at most the cluster's `request_timeout`, which it is until 100 attempts are known.
    #[schemars(with = "Option<LearnedDurationValue>")]
    pub per_try_timeout: Option<Spanned<LearnedDurationValue>>,
    /// Retries. See the section.
    pub retry: Option<RetrySection>,
    /// Hedged requests. Unset: none.
    pub hedge: Option<HedgeSection>,
    /// How important the route's requests are: `critical`, `high`, `normal` or `low`.
    /// Under overload, lower priorities are shed first. Default `normal`.
    #[serde(default)]
    pub priority: PrioritySection,
    /// The route's own concurrency limit (a bulkhead, or adaptive), so a slow dependency
    /// can fill only its own routes' slots. Unset: unlimited.
    #[schemars(with = "Option<ConcurrencySection>")]
    pub concurrency: Option<Spanned<ConcurrencySection>>,
    /// The route's rate limit, for the route as a whole or per client key. Unset: none.
    #[schemars(with = "Option<RateLimitSection>")]
    pub rate_limit: Option<Spanned<RateLimitSection>>,
    /// What the route answers when its cluster cannot, and its kill switch.
    #[schemars(with = "Option<fallback::FallbackSection>")]
    pub fallback: Option<Spanned<fallback::FallbackSection>>,
    /// Faults injected into the route's requests (`[[route.fault]]`), to test what the
    /// rest of its settings do when its upstream is slow or failing. The first rule that
    /// matches a request and wins its draw applies. Default: none.
    #[serde(default)]
    #[schemars(with = "Vec<fault::FaultSection>")]
    pub fault: Vec<Spanned<fault::FaultSection>>,
}

/// Conditions on a request. Give at most one of `path`, `path_prefix`, `path_regex`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MatchSection {
    /// The `Host` (or HTTP/2 `:authority`), port ignored. `*.example.com` matches subdomains.
    #[schemars(with = "Option<String>")]
    pub host: Option<Spanned<String>>,
    /// The path exactly.
    #[schemars(with = "Option<String>")]
    pub path: Option<Spanned<String>>,
    /// Paths starting with this, on segment boundaries or not: `/api` matches `/api` and `/api/x`
    /// and `/apix`; write `/api/` to require the slash.
    #[schemars(with = "Option<String>")]
    pub path_prefix: Option<Spanned<String>>,
    /// A regular expression the whole path must match.
    #[schemars(with = "Option<String>")]
    pub path_regex: Option<Spanned<String>>,
    /// Whether `path`, `path_prefix` and `path_regex` tell upper from lower case. `false`
    /// matches ASCII letters in either case, as an endpoint that ignores case (IIS, some
    /// S3-compatible stores) reads them, so `/M/x` cannot slip past a `/m/` route.
    /// Default true.
    pub case_sensitive: Option<bool>,
    /// Any of these methods.
    #[schemars(with = "Option<Vec<String>>")]
    pub methods: Option<Vec<Spanned<String>>>,
    /// Headers that must be present with exactly these values.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    pub headers: BTreeMap<Spanned<String>, Spanned<String>>,
}

/// Headers to add (replacing any of the same name) and to remove.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct HeaderEditsSection {
    /// Set these headers, replacing any existing value.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    pub add: BTreeMap<Spanned<String>, Spanned<String>>,
    /// Remove these headers.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub remove: Vec<Spanned<String>>,
}

/// A cluster: interchangeable endpoints and how to spread requests over them.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClusterSection {
    /// The endpoints. At least one.
    pub endpoints: Vec<EndpointSection>,
    /// How to choose an endpoint. Default `peak_ewma`.
    #[serde(default)]
    pub balance: Balance,
    /// What to hash for `consistent_hash`: requests without it are balanced by least
    /// requests. Zones are ignored with `consistent_hash`, so a key sticks to one endpoint.
    pub hash_on: Option<HashOnSection>,
    /// Time to establish a connection to an endpoint. Default "1s".
    #[schemars(with = "Option<DurationValue>")]
    pub connect_timeout: Option<Spanned<DurationValue>>,
    /// Time for an endpoint to answer one request (response head). Default "15s".
    #[schemars(with = "Option<DurationValue>")]
    pub request_timeout: Option<Spanned<DurationValue>>,
    /// The longest the proxy waits for the next piece of a response body from an
    /// endpoint. Past it the answer is cut off (the client's connection is closed), the
    /// endpoint's connection is dropped, and the failure is the endpoint's. Default "60s".
    #[schemars(with = "Option<DurationValue>")]
    pub body_read_timeout: Option<Spanned<DurationValue>>,
    /// The protocol spoken to endpoints. Default `http1`.
    #[serde(default)]
    pub protocol: UpstreamProtocol,
    /// How often endpoints given by DNS name are resolved again. Default "30s".
    #[schemars(with = "Option<DurationValue>")]
    pub dns_refresh: Option<Spanned<DurationValue>>,
    /// When fewer than this percentage of a priority's endpoint weight is healthy, and the
    /// other priorities cannot absorb the rest, that priority's traffic is spread over all its
    /// endpoints, healthy or not, rather than overload the few. Default 50; 0 turns it off
    /// (then a cluster with no healthy endpoint answers 503).
    pub panic_threshold: Option<u8>,
    /// Idle keep-alive connections kept per endpoint. Default 64.
    pub max_idle_per_endpoint: Option<u32>,
    /// Active health checks. Unset: endpoints are assumed healthy. Set: a new endpoint takes
    /// no traffic until its first check (run at once) passes, except by the panic rule.
    pub health_check: Option<HealthCheckSection>,
    /// The budget that retries and hedges to this cluster spend from. Default: 20% of
    /// requests plus 10 a second.
    pub retry_budget: Option<RetryBudgetSection>,
    /// A concurrency limit for the cluster as a whole, over all routes that use it (same
    /// keys as a route's `concurrency`). Unset: unlimited.
    #[schemars(with = "Option<ConcurrencySection>")]
    pub concurrency: Option<Spanned<ConcurrencySection>>,
    /// A breaker for the cluster as a whole: while open, requests fail fast (503
    /// `breaker_open`, or the route's fallback) without reaching any endpoint. Unset: none.
    pub circuit_breaker: Option<CircuitBreakerSection>,
    /// One breaker per endpoint: while an endpoint's is open, it takes no traffic (its share
    /// goes to the others, as for an unhealthy endpoint). Unset: none.
    pub endpoint_circuit_breaker: Option<CircuitBreakerSection>,
    /// Passive outlier detection: eject endpoints that fail real traffic. Unset: off.
    pub outlier_detection: Option<OutlierDetectionSection>,
}

/// One upstream endpoint.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EndpointSection {
    /// `ip:port`, or `hostname:port` to resolve by DNS (every address it resolves to becomes
    /// an endpoint with these settings).
    #[schemars(with = "String")]
    pub address: Spanned<String>,
    /// Relative share of traffic, 1 to 1000. Default 1.
    pub weight: Option<u32>,
    /// The zone the endpoint runs in. With `[proxy] zone` set, endpoints of that zone are
    /// preferred while their healthy share is at least their priority's.
    pub zone: Option<String>,
    /// 0 is the primary priority. A priority keeps traffic in proportion to its healthy share
    /// times 1.4 (so at 72% healthy it keeps everything); the rest spills to the next
    /// priority, and comes back as endpoints recover. Default 0.
    pub priority: Option<u32>,
}

/// How to choose an endpoint for a request.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Balance {
    /// In turn.
    RoundRobin,
    /// In turn, in proportion to weight (smooth weighted round robin).
    WeightedRoundRobin,
    /// The less busy of two endpoints drawn at random (power of two choices).
    LeastRequest,
    /// The cheaper of two random endpoints, by peak-EWMA latency times requests in flight.
    #[default]
    PeakEwma,
    /// The same endpoint for the same key (a header or cookie), on a consistent-hash ring.
    ConsistentHash,
}

/// What `consistent_hash` hashes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum HashOnSection {
    /// The value of this request header.
    Header(String),
    /// The value of this cookie.
    Cookie(String),
}

/// The protocol spoken to endpoints.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamProtocol {
    /// HTTP/1.1 with keep-alive.
    #[default]
    Http1,
    /// HTTP/2 with prior knowledge (h2c).
    Http2,
}

/// Active health checks of a cluster's endpoints.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct HealthCheckSection {
    /// `http` (a request whose status must be expected) or `tcp` (a connection must open).
    pub kind: HealthCheckKind,
    /// Path requested by `http` checks. Default "/healthz".
    pub path: Option<String>,
    /// `Host` header of `http` checks. Default: the endpoint's address.
    pub host: Option<String>,
    /// Statuses that count as healthy, as codes or ranges: `[200, "200-299"]`. Default 200-299.
    #[schemars(with = "Option<Vec<serde_json::Value>>")]
    pub expected_statuses: Option<Spanned<Vec<StatusOrRange>>>,
    /// Time between checks of one endpoint. Default "5s".
    #[schemars(with = "Option<DurationValue>")]
    pub interval: Option<Spanned<DurationValue>>,
    /// Time a check may take. Default "1s".
    #[schemars(with = "Option<DurationValue>")]
    pub timeout: Option<Spanned<DurationValue>>,
    /// Passing checks in a row before an unhealthy endpoint is healthy again. Default 2.
    pub healthy_threshold: Option<u32>,
    /// Failing checks in a row before a healthy endpoint is unhealthy. Default 3.
    pub unhealthy_threshold: Option<u32>,
    /// Up to this much random extra time between checks, so endpoints are not all checked at
    /// once. Default "0ms".
    #[schemars(with = "Option<DurationValue>")]
    pub jitter: Option<Spanned<DurationValue>>,
}

/// Which kind of health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum HealthCheckKind {
    /// An HTTP request; healthy when the status is expected.
    Http,
    /// A TCP connection; healthy when it opens.
    Tcp,
}

/// A status code or a range written `"200-299"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(untagged)]
pub(crate) enum StatusOrRange {
    /// One status code.
    Code(u16),
    /// A range, inclusive, like `"200-299"`.
    Range(String),
}
