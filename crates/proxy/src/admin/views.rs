//! What the read calls show: status, readiness, the config in force (redacted), clusters
//! with every endpoint's live state, routes with their counters, and recent events.

use std::sync::PoisonError;
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use http::{Response, StatusCode};
use serde_json::{Value, json};

use super::AdminState;
use super::reply::{self, AdminBody};
use crate::cluster::Cluster;
use crate::endpoint::Endpoint;
use crate::events::{self, Event};
use crate::reload::{ReloadOutcome, Runtime};

/// Events `/admin/events` returns at most.
const EVENTS_SHOWN: usize = 200;
/// Placeholder for a secret in the config view.
const REDACTED: &str = "<redacted>";

/// `GET /healthz/ready`.
pub(super) fn ready(state: &AdminState) -> Response<AdminBody> {
    if state.draining.load(Ordering::Acquire) {
        return not_ready("draining: the proxy is shutting down");
    }
    let snapshot = state.runtime.snapshot();
    let waiting: Vec<&str> = snapshot
        .clusters
        .iter()
        .filter(|cluster| !cluster.first_health_round_done())
        .map(|cluster| cluster.name())
        .collect();
    if !waiting.is_empty() {
        return not_ready(&format!(
            "waiting for the first health checks of cluster(s): {}",
            waiting.join(", ")
        ));
    }
    reply::json(StatusCode::OK, &json!({ "ready": true }))
}

fn not_ready(reason: &str) -> Response<AdminBody> {
    reply::json(
        StatusCode::SERVICE_UNAVAILABLE,
        &json!({ "ready": false, "error": reason }),
    )
}

/// `GET /admin/status`.
pub(super) fn status(state: &AdminState) -> Response<AdminBody> {
    let snapshot = state.runtime.snapshot();
    let reload = state.runtime.reload_status();
    let listeners: Vec<Value> = state
        .listeners
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .map(|(name, addr)| {
            let tls = snapshot
                .config
                .listeners
                .iter()
                .find(|listener| &listener.name == name)
                .is_some_and(|listener| listener.tls.is_some());
            json!({ "name": name, "address": addr.to_string(), "tls": tls })
        })
        .collect();
    let last = reload.last.as_ref().map(|attempt| {
        json!({
            "at_ms": unix_ms(attempt.at),
            "trigger": attempt.trigger.to_string(),
            "outcome": match &attempt.outcome {
                ReloadOutcome::Applied(_) => "applied",
                ReloadOutcome::Unchanged { .. } => "unchanged",
                ReloadOutcome::Refused { .. } => "refused",
            },
        })
    });
    let traffic = state.runtime.traffic();
    reply::json(
        StatusCode::OK,
        &json!({
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_seconds": state.started.elapsed().as_secs_f64(),
            "config_hash": snapshot.config.source.hash,
            "config_path": snapshot.config.source.path.display().to_string(),
            "draining": state.draining.load(Ordering::Acquire),
            "connections": traffic.connections(),
            "requests_in_flight": traffic.requests(),
            "listeners": listeners,
            "admin": state.local_addr.to_string(),
            "reload": {
                "current_hash": reload.current_hash,
                "loaded_at_ms": unix_ms(reload.loaded_at),
                "applied": reload.applied,
                "unchanged": reload.unchanged,
                "refused": reload.refused,
                "last": last,
                "last_error": reload.last_error(),
            },
        }),
    )
}

/// `GET /admin/config`: the file in force, as JSON, with every secret redacted (see
/// [`config_json`]).
pub(super) fn config(state: &AdminState) -> Response<AdminBody> {
    let snapshot = state.runtime.snapshot();
    let source = &snapshot.config.source;
    match config_json(&source.text) {
        Ok(config) => reply::json(
            StatusCode::OK,
            &json!({
                "path": source.path.display().to_string(),
                "hash": source.hash,
                "config": config,
            }),
        ),
        Err(error) => reply::error_json(StatusCode::INTERNAL_SERVER_ERROR, &error),
    }
}

/// The config text as JSON, secrets replaced.
///
/// Which values are secret is not guessed from header names (a key may travel as
/// `x-internal-auth` as well as `authorization`): every header value the config sets is
/// redacted, wherever headers are written (`match.headers`, `request_headers`,
/// `response_headers`, a fallback's `headers`); the header names stay, and so do the names
/// a header edit removes. The admin token is redacted too (its variable's name, in
/// `token_env`, is not a secret). TLS key files are named by path only, so their contents
/// are never here.
pub(super) fn config_json(text: &str) -> Result<Value, String> {
    let parsed: toml::Value = toml::from_str(text)
        .map_err(|_| "the config in force does not parse again (its source changed?)".to_owned())?;
    let mut value =
        serde_json::to_value(parsed).map_err(|error| format!("the config is not JSON: {error}"))?;
    if let Some(admin) = value.get_mut("admin").and_then(Value::as_object_mut)
        && let Some(token) = admin.get_mut("token")
    {
        *token = Value::String(REDACTED.to_owned());
    }
    redact_header_values(&mut value, false);
    Ok(value)
}

/// Replaces every string under a table of header values with [`REDACTED`]; `inside` says
/// whether `value` is already under one.
fn redact_header_values(value: &mut Value, inside: bool) {
    match value {
        Value::Object(table) => {
            for (key, entry) in table.iter_mut() {
                // A header edit's `remove` lists names, not values.
                if inside && key == "remove" {
                    continue;
                }
                // `[proxy] decision_headers` is a mode (`always`, `never`), not headers.
                let holds_headers =
                    (key == "headers" || key.ends_with("_headers")) && key != "decision_headers";
                redact_header_values(entry, inside || holds_headers);
            }
        }
        Value::Array(items) => {
            for item in items {
                redact_header_values(item, inside);
            }
        }
        Value::String(text) if inside => REDACTED.clone_into(text),
        // Numbers and booleans are redacted too: `x-api-key = 12345` is a value as well.
        Value::Number(_) | Value::Bool(_) if inside => {
            *value = Value::String(REDACTED.to_owned());
        }
        _ => {}
    }
}

/// `GET /admin/clusters`.
pub(super) fn clusters(runtime: &Runtime) -> Value {
    let snapshot = runtime.snapshot();
    let now = Instant::now();
    let clusters: Vec<Value> = snapshot
        .clusters
        .iter()
        .map(|cluster| cluster_json(cluster, now))
        .collect();
    json!({ "clusters": clusters })
}

fn cluster_json(cluster: &Cluster, now: Instant) -> Value {
    let endpoints: Vec<Value> = cluster
        .endpoints()
        .iter()
        .map(|endpoint| endpoint_json(endpoint, now))
        .collect();
    let stats = cluster.stats();
    json!({
        "name": cluster.name(),
        "breaker": cluster.breaker().map(|breaker| breaker.state(now).as_str()),
        "in_panic": cluster.routing().in_panic(),
        "ready": cluster.first_health_round_done(),
        "retry_budget": {
            "remaining": cluster.retry_budget().remaining(now),
        },
        "stats": {
            "attempts": stats.attempts.get(),
            "attempt_failures": stats.attempt_failures.get(),
            "attempt_body_failures": stats.attempt_body_failures.get(),
            "overloaded": stats.overloaded.get(),
            "fast_failures": stats.fast_failures.get(),
            "breaker_opened": stats.breaker_opened.get(),
            "endpoint_breaker_opened": stats.endpoint_breaker_opened.get(),
            "ejections": stats.ejections.get(),
        },
        "endpoints": endpoints,
    })
}

fn endpoint_json(endpoint: &Endpoint, now: Instant) -> Value {
    json!({
        "address": endpoint.address().to_string(),
        "configured": endpoint.config().address.to_string(),
        "weight": endpoint.weight(),
        "priority": endpoint.config().priority,
        "zone": endpoint.config().zone,
        "health": endpoint.health().as_str(),
        "ejected": endpoint.is_ejected(),
        "stalled": endpoint.is_stalled(),
        "drained": endpoint.is_drained(),
        "routable": endpoint.is_routable(),
        "breaker": endpoint.breaker().map(|breaker| breaker.state(now).as_str()),
        "in_flight": endpoint.in_flight(),
        "ewma_latency_ms": endpoint.latency().get(now).as_secs_f64() * 1000.0,
    })
}

/// `GET /admin/routes`: counters of each route (rates are differences of these).
pub(super) fn routes(runtime: &Runtime) -> Value {
    let snapshot = runtime.snapshot();
    let routes: Vec<Value> = snapshot
        .config
        .routes
        .iter()
        .zip(&snapshot.routes)
        .map(|(config, live)| {
            let cluster = &snapshot.clusters[config.cluster];
            let (stats, fallback, admission) =
                (&live.stats, live.fallback.stats(), live.admission.stats());
            let latency = stats.duration.snapshot();
            json!({
                "name": config.name,
                "cluster": cluster.name(),
                "kill_switch": live.fallback.killed(),
                "requests": stats.requests.get(),
                "retries": stats.retries.get(),
                "hedges": stats.hedges.get(),
                "budget_exhausted": stats.budget_exhausted.get(),
                "deadline_exceeded": stats.deadline_exceeded.get(),
                "shed": admission.shed.get(),
                "rate_limited": admission.rate_limited.get(),
                "fallback_unserved": fallback.unserved.get(),
                "killed": fallback.killed.get(),
                // What clients saw: 5xx answers, the proxy's own and the upstream's.
                "errors": stats.responses.counts()[4],
                // Cumulative latency buckets (to the response head); the dashboard takes the
                // difference between two snapshots for the p99 of the last interval.
                "latency": {
                    "bounds_ms": crate::counters::histogram::BUCKET_BOUNDS_NANOS
                        .iter()
                        .map(|nanos| *nanos as f64 / 1e6)
                        .collect::<Vec<f64>>(),
                    "cumulative": latency.cumulative,
                    "count": latency.count,
                },
            })
        })
        .collect();
    json!({ "at_ms": unix_ms(SystemTime::now()), "routes": routes })
}

/// `GET /admin/events`: the newest events of the runtime and every cluster, oldest first.
pub(super) fn events(runtime: &Runtime) -> Value {
    let snapshot = runtime.snapshot();
    let logs = [runtime.events(), &snapshot.faults.events]
        .into_iter()
        .chain(
            snapshot
                .clusters
                .iter()
                .map(|cluster| &cluster.stats().events),
        );
    let events: Vec<Event> = events::merge(logs, EVENTS_SHOWN);
    json!({ "events": events })
}

fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |since| {
        u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
    })
}
