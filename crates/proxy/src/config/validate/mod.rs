//! From the file as written to the typed config, collecting every error with its place.

mod admin;
mod admission;
mod attempts;
mod fallback;
mod telemetry;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use regex::RegexBuilder;
use toml::Spanned;

mod passive;

use super::file::{
    self, ClusterSection, ConfigFile, EndpointSection, HashOnSection, HeaderEditsSection,
    HealthCheckSection, ListenerSection, MatchSection, RouteSection, StatusOrRange,
};
use super::tls::{self, TlsFile};
use super::values::{ByteSizeValue, DurationValue, RateValue};
use super::{
    BalanceConfig, ClusterConfig, Config, ConfigError, ConfigErrors, DEFAULT_REQUEST_TIMEOUT,
    EndpointAddress, EndpointConfig, HashKey, HeaderEdits, HealthCheck, HealthCheckConfig,
    HostMatch, ListenerConfig, ListenerLimits, Location, MinDataRate, PathMatch, ProxySettings,
    RouteConfig, RouteMatch, Source, TlsConfig,
};

const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_DEADLINE_HEADER: &str = "x-blastwall-timeout-ms";
const DEFAULT_MAX_CONNECTIONS: u32 = 10_000;
const DEFAULT_MAX_HEADER_BYTES: u64 = 16 * 1024;
const DEFAULT_MAX_HEADERS: u32 = 100;
const DEFAULT_MAX_REQUEST_BODY: u64 = 10 * 1024 * 1024;
const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_REQUEST_BODY_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_MIN_DATA_RATE: u64 = 256;
const DEFAULT_MIN_DATA_RATE_GRACE: Duration = Duration::from_secs(10);
const DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS: u32 = 100;
const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const DEFAULT_DNS_REFRESH: Duration = Duration::from_secs(30);
const DEFAULT_PANIC_THRESHOLD_PERCENT: u8 = 50;
const DEFAULT_MAX_IDLE_PER_ENDPOINT: u32 = 64;
const DEFAULT_HEALTH_PATH: &str = "/healthz";
const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(5);
const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(1);
const DEFAULT_HEALTHY_THRESHOLD: u32 = 2;
const DEFAULT_UNHEALTHY_THRESHOLD: u32 = 3;
const MAX_WEIGHT: u32 = 1000;
/// Methods a route may name: HTTP's own and WebDAV's. A typo would otherwise be a valid
/// extension method that silently never matches.
const KNOWN_METHODS: &[&str] = &[
    "GET",
    "HEAD",
    "POST",
    "PUT",
    "DELETE",
    "CONNECT",
    "OPTIONS",
    "TRACE",
    "PATCH",
    "PROPFIND",
    "PROPPATCH",
    "MKCOL",
    "COPY",
    "MOVE",
    "LOCK",
    "UNLOCK",
    "REPORT",
    "SEARCH",
];

/// Collects errors, each tied to a span of the config text.
struct Checker<'a> {
    text: &'a str,
    path: &'a Path,
    errors: Vec<ConfigError>,
}

impl Checker<'_> {
    fn error_at(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.errors.push(ConfigError {
            path: self.path.to_owned(),
            location: Some(Location::of_span(self.text, span)),
            message: message.into(),
        });
    }

    fn error(&mut self, message: impl Into<String>) {
        self.errors
            .push(ConfigError::whole_file(self.path, message));
    }

    fn location(&self, span: Range<usize>) -> Location {
        Location::of_span(self.text, span)
    }
}

pub(super) fn validate(file: ConfigFile, text: &str, path: &Path) -> Result<Config, ConfigErrors> {
    let mut check = Checker {
        text,
        path,
        errors: Vec::new(),
    };
    let deadline_header = match &file.proxy.deadline_header {
        Some(name) => HeaderName::from_bytes(name.get_ref().as_bytes()).unwrap_or_else(|_| {
            check.error_at(
                name.span(),
                format!(
                    "deadline_header \"{}\" is not a valid header name",
                    name.get_ref()
                ),
            );
            HeaderName::from_static(DEFAULT_DEADLINE_HEADER)
        }),
        None => HeaderName::from_static(DEFAULT_DEADLINE_HEADER),
    };
    let proxy = ProxySettings {
        zone: file.proxy.zone,
        drain_timeout: duration_or(&mut check, file.proxy.drain_timeout, DEFAULT_DRAIN_TIMEOUT),
        deadline_header,
        decision_headers: file.proxy.decision_headers,
        worker_threads: worker_threads(&mut check, file.proxy.worker_threads),
    };
    let trust = admission::trust(
        &mut check,
        file.proxy.priority_header,
        file.proxy.trusted_clients,
    );
    let admin = admin::admin(&mut check, file.admin);
    let telemetry = telemetry::telemetry(&mut check, file.access_log, file.tracing);
    let listeners = listeners(&mut check, file.listeners);
    let (clusters, cluster_index) = clusters(&mut check, file.clusters);
    let listener_index: HashMap<&str, usize> = listeners
        .iter()
        .enumerate()
        .map(|(index, listener)| (listener.name.as_str(), index))
        .collect();
    let routes: Vec<RouteConfig> = file
        .routes
        .into_iter()
        .enumerate()
        .filter_map(|(index, route)| {
            self::route(
                &mut check,
                index,
                route,
                (&cluster_index, &clusters),
                &listener_index,
                &trust,
            )
        })
        .collect();
    if listeners.is_empty() && check.errors.is_empty() {
        check.error("no listener: add at least one [[listener]] with a name and a listen address");
    }
    if routes.is_empty() && check.errors.is_empty() {
        check.error(
            "no route: add at least one [[route]] naming a cluster, or no request can be served",
        );
    }
    if !check.errors.is_empty() {
        // In file order, as an operator reads them; errors about the whole file come last.
        check.errors.sort_by_key(|error| {
            error
                .location
                .as_ref()
                .map_or((usize::MAX, 0), |at| (at.line, at.column))
        });
        return Err(ConfigErrors(check.errors));
    }
    Ok(Config {
        proxy,
        listeners,
        routes,
        clusters,
        admin,
        telemetry,
        source: Source {
            path: path.to_owned(),
            hash: fnv1a_hex(text.as_bytes()),
            text: text.into(),
        },
    })
}

/// The value given, or the default; a value that did not parse is reported at its place.
fn duration_or(
    check: &mut Checker<'_>,
    value: Option<Spanned<DurationValue>>,
    default: Duration,
) -> Duration {
    let Some(value) = value else { return default };
    match &value.get_ref().0 {
        Ok(duration) => *duration,
        Err(message) => {
            check.error_at(value.span(), message.clone());
            default
        }
    }
}

/// Like [`duration_or`], for sizes.
fn size_or(check: &mut Checker<'_>, value: Option<Spanned<ByteSizeValue>>, default: u64) -> u64 {
    let Some(value) = value else { return default };
    match &value.get_ref().0 {
        Ok(size) => *size,
        Err(message) => {
            check.error_at(value.span(), message.clone());
            default
        }
    }
}

/// A listener's minimum data rate: `None` when turned off ("0B/s").
fn min_data_rate(
    check: &mut Checker<'_>,
    rate: Option<Spanned<RateValue>>,
    grace: Option<Spanned<DurationValue>>,
) -> Option<MinDataRate> {
    let bytes_per_second = match rate {
        None => DEFAULT_MIN_DATA_RATE,
        Some(rate) => match &rate.get_ref().0 {
            Ok(rate) => *rate,
            Err(message) => {
                check.error_at(rate.span(), message.clone());
                DEFAULT_MIN_DATA_RATE
            }
        },
    };
    let grace = duration_or(check, grace, DEFAULT_MIN_DATA_RATE_GRACE);
    (bytes_per_second > 0).then_some(MinDataRate {
        bytes_per_second,
        grace,
    })
}

fn listeners(check: &mut Checker<'_>, sections: Vec<ListenerSection>) -> Vec<ListenerConfig> {
    let mut names: HashMap<String, ()> = HashMap::new();
    let mut addresses: HashMap<SocketAddr, String> = HashMap::new();
    let mut listeners = Vec::new();
    for section in sections {
        let name = section.name.get_ref().clone();
        if name.is_empty() {
            check.error_at(section.name.span(), "listener name must not be empty");
        } else if names.insert(name.clone(), ()).is_some() {
            check.error_at(
                section.name.span(),
                format!("a listener named \"{name}\" is already defined"),
            );
        }
        let listen = match section.listen.get_ref().parse::<SocketAddr>() {
            Ok(addr) => addr,
            Err(_) => {
                check.error_at(
                    section.listen.span(),
                    format!(
                        "invalid listen address \"{}\": expected ip:port, like \"0.0.0.0:8080\" or \"[::]:8080\"",
                        section.listen.get_ref()
                    ),
                );
                continue;
            }
        };
        // Port 0 asks the system for a free port, different each time: never a clash.
        if listen.port() != 0
            && let Some(other) = addresses.insert(listen, name.clone())
        {
            check.error_at(
                section.listen.span(),
                format!("listener \"{other}\" already listens on {listen}"),
            );
        }
        let tls = section.tls.and_then(|tls| self::tls(check, &name, &tls));
        let limits = ListenerLimits {
            max_connections: positive(
                check,
                section
                    .max_connections
                    .as_ref()
                    .map(|value| *value.get_ref()),
                DEFAULT_MAX_CONNECTIONS,
                "max_connections",
            ) as usize,
            max_header_bytes: usize::try_from(size_or(
                check,
                section.max_header_bytes,
                DEFAULT_MAX_HEADER_BYTES,
            ))
            .unwrap_or(usize::MAX),
            max_headers: positive(
                check,
                section.max_headers,
                DEFAULT_MAX_HEADERS,
                "max_headers",
            ) as usize,
            max_request_body: size_or(check, section.max_request_body, DEFAULT_MAX_REQUEST_BODY),
            header_read_timeout: duration_or(
                check,
                section.header_read_timeout,
                DEFAULT_HEADER_READ_TIMEOUT,
            ),
            idle_timeout: duration_or(check, section.idle_timeout, DEFAULT_IDLE_TIMEOUT),
            max_requests_per_connection: section
                .max_requests_per_connection
                .and_then(NonZeroU32::new),
            request_body_timeout: duration_or(
                check,
                section.request_body_timeout,
                DEFAULT_REQUEST_BODY_TIMEOUT,
            ),
            send_timeout: duration_or(check, section.send_timeout, DEFAULT_SEND_TIMEOUT),
            min_data_rate: min_data_rate(check, section.min_data_rate, section.min_data_rate_grace),
            http2_max_concurrent_streams: positive(
                check,
                section.http2_max_concurrent_streams,
                DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS,
                "http2_max_concurrent_streams",
            ),
            escaped_slashes: section.escaped_slashes,
        };
        if limits.max_header_bytes < 1024 {
            check.error(format!(
                "listener \"{name}\": max_header_bytes must be at least 1KiB, or no real request fits"
            ));
        }
        if limits.header_read_timeout.is_zero()
            || limits.idle_timeout.is_zero()
            || limits.request_body_timeout.is_zero()
            || limits.send_timeout.is_zero()
        {
            check.error(format!(
                "listener \"{name}\": header_read_timeout, idle_timeout, request_body_timeout and send_timeout must be more than zero"
            ));
        }
        listeners.push(ListenerConfig {
            name,
            listen,
            listen_location: check.location(section.listen.span()),
            max_connections_location: section
                .max_connections
                .as_ref()
                .map(|value| check.location(value.span())),
            tls,
            limits,
        });
    }
    listeners
}

/// Resolves the certificate and key files and builds the TLS identity from them, so
/// `blastwall check` refuses what the listener could not serve, and the listener serves what
/// was checked.
fn tls(check: &mut Checker<'_>, listener: &str, section: &file::TlsSection) -> Option<TlsConfig> {
    let errors_before = check.errors.len();
    let cert = resolve_file(check, &section.cert, "certificate");
    let key = resolve_file(check, &section.key, "private key");
    if check.errors.len() > errors_before {
        return None;
    }
    match tls::load(&cert, &key) {
        Ok(server) => Some(TlsConfig { cert, key, server }),
        Err(error) => {
            let span = match error.file() {
                TlsFile::Certificate => section.cert.span(),
                TlsFile::Key => section.key.span(),
            };
            check.error_at(span, format!("listener \"{listener}\": {error}"));
            None
        }
    }
}

/// More threads than this is a typo, not a machine.
const MAX_WORKER_THREADS: u32 = 1024;

fn worker_threads(check: &mut Checker<'_>, value: Option<Spanned<u32>>) -> Option<NonZeroUsize> {
    let value = value?;
    let threads = *value.get_ref();
    if (1..=MAX_WORKER_THREADS).contains(&threads) {
        return NonZeroUsize::new(threads as usize);
    }
    check.error_at(
        value.span(),
        format!("worker_threads must be between 1 and {MAX_WORKER_THREADS}, not {threads}"),
    );
    None
}

fn positive(check: &mut Checker<'_>, value: Option<u32>, default: u32, key: &str) -> u32 {
    match value {
        Some(0) => {
            check.error(format!("{key} must be at least 1"));
            default
        }
        Some(value) => value,
        None => default,
    }
}

fn resolve_file(check: &mut Checker<'_>, file: &Spanned<String>, what: &str) -> std::path::PathBuf {
    let path = Path::new(file.get_ref());
    let resolved = if path.is_relative() {
        check.path.parent().unwrap_or(Path::new(".")).join(path)
    } else {
        path.to_owned()
    };
    if !resolved.is_file() {
        check.error_at(
            file.span(),
            format!("cannot find the {what} file \"{}\"", resolved.display()),
        );
    }
    resolved
}

fn clusters(
    check: &mut Checker<'_>,
    sections: BTreeMap<Spanned<String>, ClusterSection>,
) -> (Vec<ClusterConfig>, HashMap<String, usize>) {
    let mut clusters = Vec::new();
    let mut index = HashMap::new();
    for (name, section) in sections {
        if let Some(cluster) = cluster(check, &name, section) {
            index.insert(cluster.name.clone(), clusters.len());
            clusters.push(cluster);
        }
    }
    (clusters, index)
}

fn cluster(
    check: &mut Checker<'_>,
    name: &Spanned<String>,
    mut section: ClusterSection,
) -> Option<ClusterConfig> {
    let cluster_name = name.get_ref().clone();
    let passive = passive::passive(check, &cluster_name, name.span(), &mut section);
    if section.endpoints.is_empty() {
        check.error_at(
            name.span(),
            format!("cluster \"{cluster_name}\" has no endpoints"),
        );
    }
    let endpoints: Vec<EndpointConfig> = section
        .endpoints
        .into_iter()
        .filter_map(|endpoint| self::endpoint(check, endpoint))
        .collect();
    if section.hash_on.is_some() && section.balance != file::Balance::ConsistentHash {
        check.error_at(
            name.span(),
            format!(
                "cluster \"{cluster_name}\": hash_on only applies to balance = \"consistent_hash\""
            ),
        );
    }
    let balance = match (section.balance, section.hash_on) {
        (file::Balance::RoundRobin, _) => BalanceConfig::RoundRobin,
        (file::Balance::WeightedRoundRobin, _) => BalanceConfig::WeightedRoundRobin,
        (file::Balance::LeastRequest, _) => BalanceConfig::LeastRequest,
        (file::Balance::PeakEwma, _) => BalanceConfig::PeakEwma,
        (file::Balance::ConsistentHash, Some(HashOnSection::Header(header))) => {
            match HeaderName::from_bytes(header.as_bytes()) {
                Ok(header) => BalanceConfig::ConsistentHash(HashKey::Header(header)),
                Err(_) => {
                    check.error_at(
                        name.span(),
                        format!(
                            "cluster \"{cluster_name}\": invalid hash_on header name \"{header}\""
                        ),
                    );
                    BalanceConfig::RoundRobin
                }
            }
        }
        (file::Balance::ConsistentHash, Some(HashOnSection::Cookie(cookie))) => {
            BalanceConfig::ConsistentHash(HashKey::Cookie(cookie))
        }
        (file::Balance::ConsistentHash, None) => {
            check.error_at(
                name.span(),
                format!(
                    "cluster \"{cluster_name}\": balance = \"consistent_hash\" needs hash_on = {{ header = \"...\" }} or {{ cookie = \"...\" }}"
                ),
            );
            BalanceConfig::RoundRobin
        }
    };
    let panic_percent = section
        .panic_threshold
        .unwrap_or(DEFAULT_PANIC_THRESHOLD_PERCENT);
    if panic_percent > 100 {
        check.error_at(
            name.span(),
            format!("cluster \"{cluster_name}\": panic_threshold is a percentage from 0 to 100, got {panic_percent}"),
        );
    }
    let connect_timeout = duration_or(check, section.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
    let request_timeout = duration_or(check, section.request_timeout, DEFAULT_REQUEST_TIMEOUT);
    let body_read_timeout =
        duration_or(check, section.body_read_timeout, DEFAULT_BODY_READ_TIMEOUT);
    let dns_refresh = duration_or(check, section.dns_refresh, DEFAULT_DNS_REFRESH);
    for (key, value) in [
        ("connect_timeout", connect_timeout),
        ("request_timeout", request_timeout),
        ("body_read_timeout", body_read_timeout),
        ("dns_refresh", dns_refresh),
    ] {
        if value.is_zero() {
            check.error_at(
                name.span(),
                format!("cluster \"{cluster_name}\": {key} must be more than zero"),
            );
        }
    }
    let health_check = section
        .health_check
        .and_then(|health| self::health_check(check, &cluster_name, name.span(), health));
    let retry_budget =
        attempts::retry_budget(check, &cluster_name, name.span(), section.retry_budget);
    let concurrency = section.concurrency.and_then(|section| {
        admission::concurrency(check, &format!("cluster \"{cluster_name}\""), section)
    });
    Some(ClusterConfig {
        name: cluster_name,
        endpoints,
        balance,
        connect_timeout,
        request_timeout,
        body_read_timeout,
        protocol: section.protocol,
        dns_refresh,
        panic_threshold: f64::from(panic_percent.min(100)) / 100.0,
        max_idle_per_endpoint: section
            .max_idle_per_endpoint
            .unwrap_or(DEFAULT_MAX_IDLE_PER_ENDPOINT) as usize,
        health_check,
        retry_budget,
        concurrency,
        passive,
    })
}

fn endpoint(check: &mut Checker<'_>, section: EndpointSection) -> Option<EndpointConfig> {
    let text = section.address.get_ref();
    let address = if let Ok(addr) = text.parse::<SocketAddr>() {
        EndpointAddress::Socket(addr)
    } else {
        match text
            .rsplit_once(':')
            .map(|(host, port)| (host, port.parse::<u16>()))
        {
            Some((host, Ok(port))) if is_host_name(host) && port > 0 => EndpointAddress::Dns {
                host: host.to_ascii_lowercase(),
                port,
            },
            _ => {
                check.error_at(
                    section.address.span(),
                    format!(
                        "invalid endpoint address \"{text}\": expected ip:port or hostname:port, like \"10.0.0.5:8080\" or \"payments.internal:80\""
                    ),
                );
                return None;
            }
        }
    };
    let weight = section.weight.unwrap_or(1);
    if !(1..=MAX_WEIGHT).contains(&weight) {
        check.error_at(
            section.address.span(),
            format!("endpoint {text}: weight must be from 1 to {MAX_WEIGHT}, got {weight}"),
        );
    }
    Some(EndpointConfig {
        address,
        weight: weight.clamp(1, MAX_WEIGHT),
        zone: section.zone,
        priority: section.priority.unwrap_or(0),
    })
}

fn is_host_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn health_check(
    check: &mut Checker<'_>,
    cluster: &str,
    cluster_span: Range<usize>,
    section: HealthCheckSection,
) -> Option<HealthCheckConfig> {
    let kind = match section.kind {
        file::HealthCheckKind::Tcp => HealthCheck::Tcp,
        file::HealthCheckKind::Http => {
            let path = section
                .path
                .unwrap_or_else(|| DEFAULT_HEALTH_PATH.to_owned());
            if !path.starts_with('/') || path.parse::<http::uri::PathAndQuery>().is_err() {
                check.error_at(
                    cluster_span.clone(),
                    format!(
                        "cluster \"{cluster}\": health_check.path must be a path starting with /, like \"/healthz\", got \"{path}\""
                    ),
                );
            }
            if let Some(host) = &section.host
                && (host.is_empty() || HeaderValue::from_str(host).is_err())
            {
                check.error_at(
                    cluster_span.clone(),
                    format!(
                        "cluster \"{cluster}\": health_check.host must be a host name, got \"{host}\""
                    ),
                );
            }
            let expected_statuses = match section.expected_statuses {
                None => vec![(200, 299)],
                Some(statuses) => {
                    let span = statuses.span();
                    let mut ranges = Vec::new();
                    for status in statuses.into_inner() {
                        match status_range(&status) {
                            Some(range) => ranges.push(range),
                            None => check.error_at(
                                span.clone(),
                                format!(
                                    "invalid expected status {status:?}: expected a code from 100 to 599 or a range like \"200-299\""
                                ),
                            ),
                        }
                    }
                    ranges
                }
            };
            HealthCheck::Http {
                path,
                host: section.host,
                expected_statuses,
            }
        }
    };
    let interval = duration_or(check, section.interval, DEFAULT_HEALTH_INTERVAL);
    let timeout = duration_or(check, section.timeout, DEFAULT_HEALTH_TIMEOUT);
    if interval.is_zero() || timeout.is_zero() {
        check.error_at(
            cluster_span.clone(),
            format!(
                "cluster \"{cluster}\": health_check interval and timeout must be more than zero"
            ),
        );
    }
    let threshold = |check: &mut Checker<'_>, value: Option<u32>, default: u32, key: &str| {
        NonZeroU32::new(value.unwrap_or(default)).unwrap_or_else(|| {
            check.error_at(
                cluster_span.clone(),
                format!("cluster \"{cluster}\": health_check.{key} must be at least 1"),
            );
            NonZeroU32::MIN
        })
    };
    let healthy_threshold = threshold(
        check,
        section.healthy_threshold,
        DEFAULT_HEALTHY_THRESHOLD,
        "healthy_threshold",
    );
    let unhealthy_threshold = threshold(
        check,
        section.unhealthy_threshold,
        DEFAULT_UNHEALTHY_THRESHOLD,
        "unhealthy_threshold",
    );
    Some(HealthCheckConfig {
        kind,
        interval,
        timeout,
        healthy_threshold,
        unhealthy_threshold,
        jitter: duration_or(check, section.jitter, Duration::ZERO),
    })
}

fn status_range(status: &StatusOrRange) -> Option<(u16, u16)> {
    let valid = |code: u16| (100..=599).contains(&code);
    match status {
        StatusOrRange::Code(code) if valid(*code) => Some((*code, *code)),
        StatusOrRange::Code(_) => None,
        StatusOrRange::Range(text) => {
            let (low, high) = text.split_once('-')?;
            let (low, high) = (low.trim().parse().ok()?, high.trim().parse().ok()?);
            (valid(low) && valid(high) && low <= high).then_some((low, high))
        }
    }
}

fn route(
    check: &mut Checker<'_>,
    index: usize,
    section: RouteSection,
    (clusters, cluster_configs): (&HashMap<String, usize>, &[ClusterConfig]),
    listeners: &HashMap<&str, usize>,
    trust: &std::sync::Arc<super::admission::PriorityTrust>,
) -> Option<RouteConfig> {
    let name = section
        .name
        .unwrap_or_else(|| format!("route-{}", index + 1));
    let cluster = match clusters.get(section.cluster.get_ref()) {
        Some(&cluster) => Some(cluster),
        None => {
            let mut known: Vec<&str> = clusters.keys().map(String::as_str).collect();
            known.sort_unstable();
            let known = if known.is_empty() {
                "no cluster is defined; add a [cluster.NAME] section".to_owned()
            } else {
                format!("defined clusters: {}", known.join(", "))
            };
            check.error_at(
                section.cluster.span(),
                format!(
                    "route \"{name}\" names cluster \"{}\", which does not exist ({known})",
                    section.cluster.get_ref()
                ),
            );
            None
        }
    };
    let route_listeners = section.listeners.map(|names| {
        names
            .iter()
            .filter_map(|listener| {
                let found = listeners.get(listener.get_ref().as_str()).copied();
                if found.is_none() {
                    check.error_at(
                        listener.span(),
                        format!(
                            "route \"{name}\" names listener \"{}\", which does not exist",
                            listener.get_ref()
                        ),
                    );
                }
                found
            })
            .collect()
    });
    let matcher = route_match(check, section.matcher);
    if section.rewrite_prefix.is_some() && !matches!(matcher.path, PathMatch::Prefix(_)) {
        check.error_at(
            section.cluster.span(),
            format!(
                "route \"{name}\": rewrite_prefix needs match.path_prefix, the part it replaces"
            ),
        );
    }
    if let Some(prefix) = &section.rewrite_prefix
        && !is_path_prefix(prefix)
    {
        check.error_at(
            section.cluster.span(),
            format!(
                "route \"{name}\": rewrite_prefix \"{prefix}\" is not a path: it must be empty or start with / and hold only characters a URI path may (no spaces, ? or #)"
            ),
        );
    }
    let request_headers = header_edits(check, section.request_headers);
    let response_headers = header_edits(check, section.response_headers);
    // NOTE: resolved here, once: an attempt reads a `Duration`, never an `Option` to fall
    // back from. Unset, each cluster's attempts wait as long as that cluster's
    // `request_timeout`, the alternate's as well as the route's own.
    let per_try_timeout =
        attempts::positive_duration(check, &name, "per_try_timeout", section.per_try_timeout);
    let per_try_timeout = |cluster: usize| {
        per_try_timeout.unwrap_or_else(|| {
            cluster_configs
                .get(cluster)
                .map_or(DEFAULT_REQUEST_TIMEOUT, |cluster| cluster.request_timeout)
        })
    };
    let attempts = attempts::route_attempts(
        check,
        &name,
        section.cluster.span(),
        section.timeout,
        cluster.map_or(DEFAULT_REQUEST_TIMEOUT, per_try_timeout),
        section.retry,
        section.hedge,
    );
    let admission = admission::route(
        check,
        &name,
        section.priority,
        section.concurrency,
        section.rate_limit,
        trust,
    );
    let fallback = fallback::fallback(
        check,
        &name,
        cluster,
        section.fallback,
        clusters,
        per_try_timeout,
    );
    Some(RouteConfig {
        name,
        listeners: route_listeners,
        matcher,
        cluster: cluster?,
        rewrite_prefix: section.rewrite_prefix,
        request_headers,
        response_headers,
        attempts,
        admission,
        fallback,
    })
}

/// Whether `prefix` can begin a request path (empty strips the matched prefix): a rewritten
/// path must stay a valid target.
fn is_path_prefix(prefix: &str) -> bool {
    prefix.is_empty()
        || prefix.starts_with('/')
            && !prefix.contains(['?', '#'])
            && prefix.parse::<http::uri::PathAndQuery>().is_ok()
}

fn route_match(check: &mut Checker<'_>, section: MatchSection) -> RouteMatch {
    let host = section.host.map(|host| {
        let lower = host.get_ref().trim().to_ascii_lowercase();
        match lower.strip_prefix("*.") {
            Some(suffix) if !suffix.is_empty() => HostMatch::Subdomain(format!(".{suffix}")),
            _ => HostMatch::Exact(lower),
        }
    });
    let given: Vec<&Spanned<String>> = [&section.path, &section.path_prefix, &section.path_regex]
        .into_iter()
        .flatten()
        .collect();
    if let Some(second) = given.get(1) {
        check.error_at(
            second.span(),
            "give only one of path, path_prefix and path_regex",
        );
    }
    for path in [&section.path, &section.path_prefix].into_iter().flatten() {
        if !path.get_ref().starts_with('/') {
            check.error_at(
                path.span(),
                format!("paths start with /, got \"{}\"", path.get_ref()),
            );
        } else if path.get_ref().contains(';') {
            check.error_at(
                path.span(),
                format!(
                    "\"{}\" would never match: routes match paths with each segment's parameters (from ; to the next /) left out, as servlet containers read them",
                    path.get_ref()
                ),
            );
        }
    }
    let path = if let Some(path) = section.path {
        PathMatch::Exact(path.into_inner())
    } else if let Some(prefix) = section.path_prefix {
        PathMatch::Prefix(prefix.into_inner())
    } else if let Some(pattern) = section.path_regex {
        let anchored = format!("^(?:{})$", pattern.get_ref());
        let built = RegexBuilder::new(&anchored)
            .case_insensitive(section.case_sensitive == Some(false))
            .build();
        match built {
            Ok(regex) => PathMatch::Regex(regex),
            Err(error) => {
                check.error_at(pattern.span(), format!("invalid path_regex: {error}"));
                PathMatch::Any
            }
        }
    } else {
        PathMatch::Any
    };
    let methods = section.methods.map(|methods| {
        methods
            .iter()
            .filter_map(|method| {
                let upper = method.get_ref().to_ascii_uppercase();
                match Method::from_bytes(upper.as_bytes()) {
                    Ok(parsed) if KNOWN_METHODS.contains(&upper.as_str()) => Some(parsed),
                    _ => {
                        check.error_at(
                            method.span(),
                            format!(
                                "unknown method \"{}\": expected one of {}",
                                method.get_ref(),
                                KNOWN_METHODS.join(", ")
                            ),
                        );
                        None
                    }
                }
            })
            .collect()
    });
    let headers = section
        .headers
        .iter()
        .filter_map(|(name, value)| header_pair(check, name, value))
        .collect();
    RouteMatch {
        host,
        path,
        case_sensitive: section.case_sensitive.unwrap_or(true),
        methods,
        headers,
    }
}

fn header_pair(
    check: &mut Checker<'_>,
    name: &Spanned<String>,
    value: &Spanned<String>,
) -> Option<(HeaderName, HeaderValue)> {
    let parsed_name = HeaderName::from_bytes(name.get_ref().as_bytes());
    let parsed_value = HeaderValue::from_str(value.get_ref());
    match (parsed_name, parsed_value) {
        (Ok(name), Ok(value)) => Some((name, value)),
        (Err(_), _) => {
            check.error_at(
                name.span(),
                format!("invalid header name \"{}\"", name.get_ref()),
            );
            None
        }
        (_, Err(_)) => {
            check.error_at(
                value.span(),
                "invalid header value: only visible ASCII, spaces and tabs",
            );
            None
        }
    }
}

fn header_edits(check: &mut Checker<'_>, section: HeaderEditsSection) -> HeaderEdits {
    HeaderEdits {
        add: section
            .add
            .iter()
            .filter_map(|(name, value)| header_pair(check, name, value))
            .collect(),
        remove: section
            .remove
            .iter()
            .filter_map(
                |name| match HeaderName::from_bytes(name.get_ref().as_bytes()) {
                    Ok(name) => Some(name),
                    Err(_) => {
                        check.error_at(
                            name.span(),
                            format!("invalid header name \"{}\"", name.get_ref()),
                        );
                        None
                    }
                },
            )
            .collect(),
    }
}

/// FNV-1a: a stable, dependency-free fingerprint of the config text (not a security hash).
pub(super) fn fnv1a_hex(text: &[u8]) -> String {
    let hash = text.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{hash:016x}")
}
