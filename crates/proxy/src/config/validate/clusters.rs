//! `[cluster.NAME]` sections: the endpoints, how one is chosen, the timeouts, and (each in
//! its own file) health checks, passive checks, the retry budget and the concurrency limit.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::ops::Range;
use std::time::Duration;

use http::HeaderName;
use toml::Spanned;

use super::{Checker, admission, attempts, duration_or, health, passive};
use crate::config::file::{self, ClusterSection, EndpointSection, HashOnSection};
use crate::config::{
    BalanceConfig, ClusterConfig, DEFAULT_REQUEST_TIMEOUT, EndpointAddress, EndpointConfig, HashKey,
};

const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const DEFAULT_DNS_REFRESH: Duration = Duration::from_secs(30);
const DEFAULT_PANIC_THRESHOLD_PERCENT: u8 = 50;
const DEFAULT_MAX_IDLE_PER_ENDPOINT: u32 = 64;
const MAX_WEIGHT: u32 = 1000;

/// The `[cluster.NAME]` sections, and each one's index by name (for the routes).
pub(super) fn clusters(
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
    let balance = balance(
        check,
        &cluster_name,
        name.span(),
        section.balance,
        section.hash_on,
    );
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
    let has_health_check = section.health_check.is_some();
    let health_check = section
        .health_check
        .and_then(|health| health::health_check(check, &cluster_name, name.span(), health));
    for (key, breaker) in [
        ("circuit_breaker", &passive.circuit_breaker),
        (
            "endpoint_circuit_breaker",
            &passive.endpoint_circuit_breaker,
        ),
    ] {
        if !has_health_check && breaker.as_ref().is_some_and(|b| b.config().external_probes) {
            check.error_at(
                name.span(),
                format!("cluster \"{cluster_name}\": {key}.probe = \"health_check\" needs a [cluster.{cluster_name}.health_check] to send"),
            );
        }
    }
    let retry_budget =
        attempts::retry_budget(check, &cluster_name, name.span(), section.retry_budget);
    let concurrency = section.concurrency.and_then(|section| {
        admission::concurrency(check, &format!("cluster \"{cluster_name}\""), section, true)
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

/// How the cluster chooses an endpoint; `hash_on` goes with `consistent_hash` only.
fn balance(
    check: &mut Checker<'_>,
    cluster_name: &str,
    span: Range<usize>,
    balance: file::Balance,
    hash_on: Option<HashOnSection>,
) -> BalanceConfig {
    if hash_on.is_some() && balance != file::Balance::ConsistentHash {
        check.error_at(
            span.clone(),
            format!(
                "cluster \"{cluster_name}\": hash_on only applies to balance = \"consistent_hash\""
            ),
        );
    }
    match (balance, hash_on) {
        (file::Balance::RoundRobin, _) => BalanceConfig::RoundRobin,
        (file::Balance::WeightedRoundRobin, _) => BalanceConfig::WeightedRoundRobin,
        (file::Balance::LeastRequest, _) => BalanceConfig::LeastRequest,
        (file::Balance::PeakEwma, _) => BalanceConfig::PeakEwma,
        (file::Balance::ConsistentHash, Some(HashOnSection::Header(header))) => {
            match HeaderName::from_bytes(header.as_bytes()) {
                Ok(header) => BalanceConfig::ConsistentHash(HashKey::Header(header)),
                Err(_) => {
                    check.error_at(
                        span.clone(),
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
                span.clone(),
                format!(
                    "cluster \"{cluster_name}\": balance = \"consistent_hash\" needs hash_on = {{ header = \"...\" }} or {{ cookie = \"...\" }}"
                ),
            );
            BalanceConfig::RoundRobin
        }
    }
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
