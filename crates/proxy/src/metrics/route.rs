//! The route families: requests, responses by class, durations and in-flight (labelled
//! `route` and `cluster`, the route's cluster), then what retries, admission and fallbacks
//! did (labelled `route`).

use super::text::{Exposition, Kind, Value};
use crate::counters::histogram::STATUS_CLASSES;
use crate::counters::{AdmissionStats, FallbackStats};
use crate::live::LiveRoute;
use crate::record::FallbackKind;
use crate::reload::Snapshot;

/// Writes every route family.
pub(super) fn write(out: &mut Exposition, snapshot: &Snapshot) {
    requests(out, snapshot);
    attempts(out, snapshot);
    admission(out, snapshot);
    fallback(out, snapshot);
    stale_cache(out, snapshot);
}

fn requests(out: &mut Exposition, snapshot: &Snapshot) {
    let name = "blastwall_requests_total";
    out.family(
        name,
        Kind::Counter,
        "Requests routed, by route and its cluster.",
    );
    for (route, cluster, live) in routes(snapshot) {
        let labels = [("route", route), ("cluster", cluster)];
        out.sample(name, &labels, live.stats.requests.get());
    }
    let name = "blastwall_responses_total";
    out.family(name, Kind::Counter, "Responses sent, by status class.");
    for (route, cluster, live) in routes(snapshot) {
        for (class, count) in STATUS_CLASSES.iter().zip(live.stats.responses.counts()) {
            let labels = [("route", route), ("cluster", cluster), ("class", class)];
            out.sample(name, &labels, count);
        }
    }
    let name = "blastwall_request_duration_seconds";
    out.family(
        name,
        Kind::Histogram,
        "Time from routing a request to its response headers, fallbacks and retries included.",
    );
    for (route, cluster, live) in routes(snapshot) {
        let labels = [("route", route), ("cluster", cluster)];
        out.histogram(name, &labels, &live.stats.duration.snapshot());
    }
    let name = "blastwall_requests_in_flight";
    out.family(name, Kind::Gauge, "Requests routed and not yet answered.");
    for (route, cluster, live) in routes(snapshot) {
        let labels = [("route", route), ("cluster", cluster)];
        out.sample(name, &labels, live.stats.in_flight.get());
    }
}

fn attempts(out: &mut Exposition, snapshot: &Snapshot) {
    per_route(
        out,
        snapshot,
        "blastwall_retries_total",
        Kind::Counter,
        "Attempts after the first, over all requests.",
        |live| live.stats.retries.get(),
    );
    per_route(
        out,
        snapshot,
        "blastwall_hedges_total",
        Kind::Counter,
        "Hedged copies of requests sent.",
        |live| live.stats.hedges.get(),
    );
    per_route(
        out,
        snapshot,
        "blastwall_retry_budget_exhausted_total",
        Kind::Counter,
        "Retries or hedges refused because the cluster's retry budget was spent.",
        |live| live.stats.budget_exhausted.get(),
    );
    per_route(
        out,
        snapshot,
        "blastwall_deadline_exceeded_total",
        Kind::Counter,
        "Requests that ran out of their deadline.",
        |live| live.stats.deadline_exceeded.get(),
    );
    per_route(
        out,
        snapshot,
        "blastwall_fault_delays_total",
        Kind::Counter,
        "Requests a fault rule delayed.",
        |live| live.stats.faults_delayed.get(),
    );
    per_route(
        out,
        snapshot,
        "blastwall_fault_aborts_total",
        Kind::Counter,
        "Requests a fault rule answered in the upstream's place.",
        |live| live.stats.faults_aborted.get(),
    );
    per_route(
        out,
        snapshot,
        "blastwall_fault_resets_total",
        Kind::Counter,
        "Requests or attempts whose upstream connection a fault rule reset.",
        |live| live.stats.faults_reset.get(),
    );
    per_route(
        out,
        snapshot,
        "blastwall_fault_closes_total",
        Kind::Counter,
        "Requests or attempts whose upstream a fault rule closed before any answer.",
        |live| live.stats.faults_closed.get(),
    );
    per_route(
        out,
        snapshot,
        "blastwall_fault_truncations_total",
        Kind::Counter,
        "Requests or attempts whose answer's body a fault rule cut off after its head.",
        |live| live.stats.faults_truncated.get(),
    );
    per_route(
        out,
        snapshot,
        "blastwall_fault_throttles_total",
        Kind::Counter,
        "Requests or attempts whose answer's body a fault rule throttled.",
        |live| live.stats.faults_throttled.get(),
    );
    per_route(
        out,
        snapshot,
        "blastwall_fault_endpoint_down_total",
        Kind::Counter,
        "Attempts that failed on an endpoint a fault rule took down.",
        |live| live.stats.faults_endpoint_down.get(),
    );
}

fn admission(out: &mut Exposition, snapshot: &Snapshot) {
    fn stats(live: &LiveRoute) -> &AdmissionStats {
        live.admission.stats()
    }
    per_route(
        out,
        snapshot,
        "blastwall_route_admitted_total",
        Kind::Counter,
        "Requests admitted by the route's admission control.",
        |live| stats(live).admitted.get(),
    );
    shed_family(
        out,
        "blastwall_route_shed_total",
        "route",
        routes(snapshot).map(|(route, _, live)| (route, stats(live))),
    );
    per_route(
        out,
        snapshot,
        "blastwall_route_rate_limited_total",
        Kind::Counter,
        "Requests refused with 429 by the route's rate limit.",
        |live| stats(live).rate_limited.get(),
    );
    per_route(
        out,
        snapshot,
        "blastwall_route_rate_limit_keys",
        Kind::Gauge,
        "Client keys the route's rate limit tracks.",
        |live| stats(live).rate_limit_keys.get(),
    );
    let bulkheads = || {
        routes(snapshot).filter_map(|(route, _, live)| Some((route, live.admission.concurrency()?)))
    };
    bulkhead_families(out, "route", bulkheads);
}

/// The shed counter of a route's or cluster's admission, one series per reason.
pub(super) fn shed_family<'a>(
    out: &mut Exposition,
    name: &str,
    label: &str,
    scopes: impl Iterator<Item = (&'a str, &'a AdmissionStats)>,
) {
    out.family(
        name,
        Kind::Counter,
        "Requests shed with 503 by the bulkhead, by reason (the queue was full, could not be \
         served in time, timed out, or made room for a higher priority).",
    );
    for (scope, stats) in scopes {
        for (reason, counter) in [
            ("queue_full", &stats.queue_full),
            ("queue_hopeless", &stats.queue_hopeless),
            ("queue_timeout", &stats.queue_timeout),
            ("displaced", &stats.displaced),
        ] {
            out.sample(name, &[(label, scope), ("reason", reason)], counter.get());
        }
    }
}

/// A bulkhead's limit, slots in use and requests queued, as `concurrency()` tells them.
type Concurrency = (u32, u32, usize);

/// The concurrency limit (adaptive or fixed), its slots in use and its queue, for the
/// routes or clusters (`scope`) that have one.
pub(super) fn bulkhead_families<'a, I>(out: &mut Exposition, scope: &str, bulkheads: impl Fn() -> I)
where
    I: Iterator<Item = (&'a str, Concurrency)>,
{
    let families = [
        (
            "concurrency_limit",
            "The bulkhead's concurrency limit now (moves with an adaptive limit).",
        ),
        ("concurrency_in_use", "Bulkhead slots held by requests now."),
        (
            "queue_depth",
            "Requests waiting in the bulkhead's queue now.",
        ),
    ];
    for (index, (suffix, help)) in families.into_iter().enumerate() {
        let name = format!("blastwall_{scope}_{suffix}");
        out.family(&name, Kind::Gauge, help);
        for (label, (limit, in_use, queued)) in bulkheads() {
            let values = [u64::from(limit), u64::from(in_use), queued as u64];
            out.sample(&name, &[(scope, label)], values[index]);
        }
    }
}

/// What the fallbacks answered (by kind), what they could not, and the kill switches.
fn fallback(out: &mut Exposition, snapshot: &Snapshot) {
    fn stats(live: &LiveRoute) -> &FallbackStats {
        live.fallback.stats()
    }
    let name = "blastwall_fallbacks_total";
    out.family(
        name,
        Kind::Counter,
        "Requests answered by a fallback, by kind.",
    );
    for (route, _, live) in routes(snapshot) {
        for kind in FallbackKind::ALL {
            let count = stats(live).served(kind).get();
            out.sample(name, &[("route", route), ("kind", kind.as_str())], count);
        }
    }
    per_route(
        out,
        snapshot,
        "blastwall_fallbacks_unserved_total",
        Kind::Counter,
        "Requests that wanted a fallback that could not answer.",
        |live| stats(live).unserved.get(),
    );
    per_route(
        out,
        snapshot,
        "blastwall_kill_switch_rejections_total",
        Kind::Counter,
        "Requests answered 503 because the route's kill switch is on.",
        |live| stats(live).killed.get(),
    );
    per_route(
        out,
        snapshot,
        "blastwall_kill_switch_on",
        Kind::Gauge,
        "1 while the route's kill switch is on.",
        |live| u64::from(live.fallback.killed()),
    );
}

/// The stale-if-error cache of each route: look-ups, what it stored and dropped, its size.
fn stale_cache(out: &mut Exposition, snapshot: &Snapshot) {
    fn stats(live: &LiveRoute) -> &FallbackStats {
        live.fallback.stats()
    }
    let name = "blastwall_stale_cache_lookups_total";
    out.family(
        name,
        Kind::Counter,
        "Stale-if-error cache look-ups, by result (hit or miss).",
    );
    for (route, _, live) in routes(snapshot) {
        let stats = stats(live);
        out.sample(
            name,
            &[("route", route), ("result", "hit")],
            stats.stale_hits.get(),
        );
        out.sample(
            name,
            &[("route", route), ("result", "miss")],
            stats.stale_misses.get(),
        );
    }
    per_route(
        out,
        snapshot,
        "blastwall_stale_cache_stored_total",
        Kind::Counter,
        "Responses stored or refreshed in the stale cache.",
        |live| stats(live).stale_stored.get(),
    );
    per_route(
        out,
        snapshot,
        "blastwall_stale_cache_evicted_total",
        Kind::Counter,
        "Responses dropped from the stale cache to stay within its limits.",
        |live| stats(live).stale_evicted.get(),
    );
    per_route(
        out,
        snapshot,
        "blastwall_stale_cache_too_large_total",
        Kind::Counter,
        "Cacheable responses not stored because they were over the cache's limits.",
        |live| stats(live).stale_too_large.get(),
    );
    per_route(
        out,
        snapshot,
        "blastwall_stale_cache_entries",
        Kind::Gauge,
        "Responses in the stale cache.",
        |live| stats(live).cache_entries.get(),
    );
    per_route(
        out,
        snapshot,
        "blastwall_stale_cache_bytes",
        Kind::Gauge,
        "Bytes the stale cache holds (bodies, headers and keys).",
        |live| stats(live).cache_bytes.get(),
    );
}

/// Each route's name, its cluster's name and its live state.
fn routes(snapshot: &Snapshot) -> impl Iterator<Item = (&str, &str, &LiveRoute)> {
    snapshot
        .config
        .routes
        .iter()
        .zip(&snapshot.routes)
        .map(|(config, live)| {
            (
                config.name.as_str(),
                snapshot.clusters[config.cluster].name(),
                &**live,
            )
        })
}

/// A family with one series per route, labelled `route`.
fn per_route<V: Value>(
    out: &mut Exposition,
    snapshot: &Snapshot,
    name: &str,
    kind: Kind,
    help: &str,
    value: impl Fn(&LiveRoute) -> V,
) {
    out.family(name, kind, help);
    for (route, _, live) in routes(snapshot) {
        out.sample(name, &[("route", route)], value(live));
    }
}
