//! Prometheus metrics: what the proxy's counters say, in the text exposition format, for the
//! admin listener's `GET /metrics`.
//!
//! This module only reads: the counters live in [`crate::counters`] (with the mechanisms
//! that add to them, and the request path's duration, status class and in-flight counts),
//! and the rest (endpoint state, reload status) where it is kept; a scrape reads them all.
//!
//! Label values come from the config (route and cluster names), endpoint socket addresses and
//! fixed enums, so the number of series is bounded by the config: never a path, a host header
//! or a client address. A scrape reads the snapshot in force (routes and clusters a reload
//! removed are gone from it); counters live as long as the route or cluster of the same name,
//! so they survive reloads that keep it.

mod cluster;
mod route;
pub(crate) mod text;

use std::time::{Instant, SystemTime};

pub(crate) use self::text::CONTENT_TYPE;
use self::text::{Exposition, Kind};
use crate::reload::Runtime;

/// Every metric of the proxy now, in the Prometheus text format 0.0.4 (served with
/// [`CONTENT_TYPE`]). Safe to call while requests run: it only loads atomics and takes the
/// breakers' and health states' short locks, one at a time.
pub(crate) fn render(runtime: &Runtime) -> String {
    let snapshot = runtime.snapshot();
    let mut out = Exposition::default();
    route::write(&mut out, &snapshot);
    cluster::write(&mut out, &snapshot, Instant::now());
    proxy(&mut out, runtime);
    faults(&mut out, &snapshot.faults);
    out.finish()
}

/// The runtime fault rules: how many are in force, and what happened to them.
fn faults(out: &mut Exposition, table: &crate::fault::table::FaultTable) {
    let name = "blastwall_fault_rules_active";
    out.family(
        name,
        Kind::Gauge,
        "Fault rules made through the admin API and still in the table.",
    );
    out.sample(name, &[], table.len() as u64);
    let name = "blastwall_fault_rule_events_total";
    out.family(
        name,
        Kind::Counter,
        "What happened to fault rules made through the admin API: created, expired, deleted, spent (faulted their first requests), orphaned (a reload took their target), cleared (kill switch uses).",
    );
    let stats = &table.stats;
    for (event, counter) in [
        ("created", &stats.created),
        ("expired", &stats.expired),
        ("deleted", &stats.deleted),
        ("spent", &stats.spent),
        ("orphaned", &stats.orphaned),
        ("cleared", &stats.cleared),
    ] {
        out.sample(name, &[("event", event)], counter.get());
    }
}

/// The proxy-wide families: connections, config reloads and the config in force.
fn proxy(out: &mut Exposition, runtime: &Runtime) {
    let traffic = runtime.traffic();
    let name = "blastwall_connections";
    out.family(name, Kind::Gauge, "Client connections open.");
    out.sample(name, &[], traffic.connections() as u64);
    let status = runtime.reload_status();
    let name = "blastwall_config_reloads_total";
    out.family(
        name,
        Kind::Counter,
        "Config reload attempts, by result: success (put in force), unchanged, failure (refused).",
    );
    for (result, count) in [
        ("success", status.applied),
        ("unchanged", status.unchanged),
        ("failure", status.refused),
    ] {
        out.sample(name, &[("result", result)], count);
    }
    let name = "blastwall_config_last_reload_success_timestamp_seconds";
    out.family(
        name,
        Kind::Gauge,
        "When the config in force was put in force, in Unix time.",
    );
    let loaded_at = status
        .loaded_at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64());
    out.sample(name, &[], loaded_at);
    let name = "blastwall_config_info";
    out.family(
        name,
        Kind::Gauge,
        "The config in force, by the hash of its file; always 1.",
    );
    let hash = &runtime.snapshot().config.source.hash;
    out.sample(name, &[("hash", hash)], 1u64);
}

#[cfg(test)]
mod tests;
