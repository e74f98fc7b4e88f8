//! The cluster and endpoint families: attempts and their durations, breakers, ejections,
//! the cluster-wide bulkhead, and each endpoint's health, routing flags, latency estimate
//! and load (labelled `cluster`, and `endpoint`: its socket address, a bounded set).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use blastwall_policy::breaker::{SharedBreaker, State};

use super::route::{bulkhead_families, shed_family};
use super::text::{Exposition, Kind, Value};
use crate::cluster::Cluster;
use crate::endpoint::Endpoint;
use crate::health::HealthStatus;
use crate::reload::Snapshot;

/// Writes every cluster and endpoint family.
pub(super) fn write(out: &mut Exposition, snapshot: &Snapshot, now: Instant) {
    attempts(out, snapshot);
    breakers(out, snapshot, now);
    ejections(out, snapshot);
    admission(out, snapshot);
    endpoints(out, snapshot, now);
}

fn attempts(out: &mut Exposition, snapshot: &Snapshot) {
    per_cluster(
        out,
        snapshot,
        "blastwall_upstream_attempts_total",
        Kind::Counter,
        "Attempts sent to the cluster's endpoints (retries and hedges included).",
        |cluster| cluster.stats().attempts.get(),
    );
    per_cluster(
        out,
        snapshot,
        "blastwall_upstream_attempt_failures_total",
        Kind::Counter,
        "Attempts that failed (error, timeout, 5xx other than 503).",
        |cluster| cluster.stats().attempt_failures.get(),
    );
    per_cluster(
        out,
        snapshot,
        "blastwall_upstream_attempt_body_failures_total",
        Kind::Counter,
        "Attempts whose response body failed after a successful head (cut short, stalled, reset).",
        |cluster| cluster.stats().attempt_body_failures.get(),
    );
    per_cluster(
        out,
        snapshot,
        "blastwall_upstream_overloaded_total",
        Kind::Counter,
        "Attempts answered with overload (503 or 429).",
        |cluster| cluster.stats().overloaded.get(),
    );
    let name = "blastwall_upstream_attempt_duration_seconds";
    out.family(
        name,
        Kind::Histogram,
        "Duration of one attempt against an endpoint.",
    );
    for cluster in &snapshot.clusters {
        out.histogram(
            name,
            &[("cluster", cluster.name())],
            &cluster.stats().attempt_duration.snapshot(),
        );
    }
    per_cluster(
        out,
        snapshot,
        "blastwall_upstream_in_flight",
        Kind::Gauge,
        "Attempts in progress against the cluster's endpoints.",
        |cluster| {
            cluster
                .endpoints()
                .iter()
                .map(|endpoint| endpoint.in_flight() as u64)
                .sum::<u64>()
        },
    );
}

fn breakers(out: &mut Exposition, snapshot: &Snapshot, now: Instant) {
    let name = "blastwall_cluster_breaker_state";
    out.family(
        name,
        Kind::Gauge,
        "The cluster circuit breaker's state: 0 closed (or forced closed), 1 half-open, 2 open (or forced open).",
    );
    for cluster in &snapshot.clusters {
        if let Some(breaker) = cluster.breaker() {
            out.sample(
                name,
                &[("cluster", cluster.name())],
                breaker_state(breaker, now),
            );
        }
    }
    let name = "blastwall_cluster_breaker_transitions_total";
    out.family(
        name,
        Kind::Counter,
        "Times the cluster circuit breaker opened or closed.",
    );
    for cluster in &snapshot.clusters {
        let stats = cluster.stats();
        out.sample(
            name,
            &[("cluster", cluster.name()), ("to", "open")],
            stats.breaker_opened.get(),
        );
        out.sample(
            name,
            &[("cluster", cluster.name()), ("to", "closed")],
            stats.breaker_closed.get(),
        );
    }
    per_cluster(
        out,
        snapshot,
        "blastwall_cluster_breaker_rejections_total",
        Kind::Counter,
        "Requests failed fast because the cluster circuit breaker was open.",
        |cluster| cluster.stats().fast_failures.get(),
    );
    let name = "blastwall_endpoint_breaker_transitions_total";
    out.family(
        name,
        Kind::Counter,
        "Times an endpoint circuit breaker of the cluster opened or closed.",
    );
    for cluster in &snapshot.clusters {
        let stats = cluster.stats();
        out.sample(
            name,
            &[("cluster", cluster.name()), ("to", "open")],
            stats.endpoint_breaker_opened.get(),
        );
        out.sample(
            name,
            &[("cluster", cluster.name()), ("to", "closed")],
            stats.endpoint_breaker_closed.get(),
        );
    }
}

fn ejections(out: &mut Exposition, snapshot: &Snapshot) {
    per_cluster(
        out,
        snapshot,
        "blastwall_ejections_total",
        Kind::Counter,
        "Endpoints ejected by outlier detection.",
        |cluster| cluster.stats().ejections.get(),
    );
    per_cluster(
        out,
        snapshot,
        "blastwall_ejections_ended_total",
        Kind::Counter,
        "Ejections that ended (the endpoint takes traffic again).",
        |cluster| cluster.stats().ejections_ended.get(),
    );
    per_cluster(
        out,
        snapshot,
        "blastwall_ejections_suppressed_total",
        Kind::Counter,
        "Ejections refused because the ejection cap was reached.",
        |cluster| cluster.stats().ejections_suppressed.get(),
    );
    per_cluster(
        out,
        snapshot,
        "blastwall_stalls_total",
        Kind::Counter,
        "Endpoints stalled by stall detection (busy, and nothing answered for stall_after).",
        |cluster| cluster.stats().stalls.get(),
    );
    per_cluster(
        out,
        snapshot,
        "blastwall_stalls_ended_total",
        Kind::Counter,
        "Stalled endpoints that answered again.",
        |cluster| cluster.stats().stalls_ended.get(),
    );
    per_cluster(
        out,
        snapshot,
        "blastwall_stalls_suppressed_total",
        Kind::Counter,
        "Stalls refused because the ejection cap was reached.",
        |cluster| cluster.stats().stalls_suppressed.get(),
    );
}

fn admission(out: &mut Exposition, snapshot: &Snapshot) {
    per_cluster(
        out,
        snapshot,
        "blastwall_cluster_admitted_total",
        Kind::Counter,
        "Requests admitted by the cluster's bulkhead.",
        |cluster| cluster.admission().stats().admitted.get(),
    );
    shed_family(
        out,
        "blastwall_cluster_shed_total",
        "cluster",
        snapshot
            .clusters
            .iter()
            .map(|cluster| (cluster.name(), &**cluster.admission().stats())),
    );
    let bulkheads = || {
        snapshot
            .clusters
            .iter()
            .filter_map(|cluster| Some((cluster.name(), cluster.admission().concurrency()?)))
    };
    bulkhead_families(out, "cluster", bulkheads);
}

fn endpoints(out: &mut Exposition, snapshot: &Snapshot, now: Instant) {
    let clusters: Vec<(&str, Vec<Arc<Endpoint>>)> = snapshot
        .clusters
        .iter()
        .map(|cluster| (cluster.name(), distinct(&cluster.endpoints())))
        .collect();
    let name = "blastwall_endpoint_health";
    out.family(name, Kind::Gauge,
        "1 for the endpoint's health-check state (unknown, healthy or unhealthy), 0 for the others.");
    for (cluster, endpoints) in &clusters {
        for endpoint in endpoints {
            let address = endpoint.address().to_string();
            let health = endpoint.health();
            for (state, status) in [
                ("unknown", HealthStatus::Unknown),
                ("healthy", HealthStatus::Healthy),
                ("unhealthy", HealthStatus::Unhealthy),
            ] {
                let labels = [
                    ("cluster", *cluster),
                    ("endpoint", &address),
                    ("state", state),
                ];
                out.sample(name, &labels, u64::from(health == status));
            }
        }
    }
    per_endpoint(
        out,
        &clusters,
        "blastwall_endpoint_ejected",
        Kind::Gauge,
        "1 while outlier detection has the endpoint ejected.",
        |endpoint| Some(u64::from(endpoint.is_ejected())),
    );
    per_endpoint(
        out,
        &clusters,
        "blastwall_endpoint_stalled",
        Kind::Gauge,
        "1 while stall detection has the endpoint out of routing.",
        |endpoint| Some(u64::from(endpoint.is_stalled())),
    );
    per_endpoint(
        out,
        &clusters,
        "blastwall_endpoint_breaker_state",
        Kind::Gauge,
        "The endpoint circuit breaker's state: 0 closed (or forced closed), 1 half-open, 2 open (or forced open).",
        |endpoint| {
            endpoint
                .breaker()
                .map(|breaker| breaker_state(&breaker, now))
        },
    );
    per_endpoint(
        out,
        &clusters,
        "blastwall_endpoint_latency_ewma_seconds",
        Kind::Gauge,
        "The endpoint's peak-EWMA latency estimate, failure penalties included.",
        |endpoint| {
            let latency = endpoint.latency();
            latency
                .has_samples()
                .then(|| latency.get(now).as_secs_f64())
        },
    );
    per_endpoint(
        out,
        &clusters,
        "blastwall_endpoint_in_flight",
        Kind::Gauge,
        "Attempts the endpoint is serving now.",
        |endpoint| Some(endpoint.in_flight() as u64),
    );
}

/// The endpoints with distinct addresses (two DNS names may resolve to the same one; a
/// series must appear once).
fn distinct(endpoints: &[Arc<Endpoint>]) -> Vec<Arc<Endpoint>> {
    let mut seen = HashSet::new();
    endpoints
        .iter()
        .filter(|endpoint| seen.insert(endpoint.address()))
        .cloned()
        .collect()
}

fn breaker_state(breaker: &SharedBreaker, now: Instant) -> u64 {
    match breaker.state(now) {
        State::Closed | State::ForcedClosed => 0,
        State::HalfOpen => 1,
        State::Open | State::ForcedOpen => 2,
    }
}

/// A family with one series per cluster, labelled `cluster`.
fn per_cluster<V: Value>(
    out: &mut Exposition,
    snapshot: &Snapshot,
    name: &str,
    kind: Kind,
    help: &str,
    value: impl Fn(&Cluster) -> V,
) {
    out.family(name, kind, help);
    for cluster in &snapshot.clusters {
        out.sample(name, &[("cluster", cluster.name())], value(cluster));
    }
}

/// A family with one series per endpoint that has a value, labelled `cluster` and
/// `endpoint`.
fn per_endpoint<V: Value>(
    out: &mut Exposition,
    clusters: &[(&str, Vec<Arc<Endpoint>>)],
    name: &str,
    kind: Kind,
    help: &str,
    value: impl Fn(&Endpoint) -> Option<V>,
) {
    out.family(name, kind, help);
    for (cluster, endpoints) in clusters {
        for endpoint in endpoints {
            if let Some(value) = value(endpoint) {
                let address = endpoint.address().to_string();
                out.sample(name, &[("cluster", cluster), ("endpoint", &address)], value);
            }
        }
    }
}
