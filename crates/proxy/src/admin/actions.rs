//! What the mutating calls do: drain and undrain an endpoint, force or reset a breaker, flip
//! a kill switch, reload, set the log filter. Each acts through the call the rest of the
//! proxy uses, and answers with the state it left.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Response, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::reply::{self, AdminBody, ApiError, error_json};
use super::{AdminState, ReloadRequest};
use crate::cluster::Cluster;
use crate::config::ConfigError;
use crate::endpoint::Endpoint;
use crate::events::{Event, EventKind};
use crate::reload::ReloadOutcome;

/// How long an API reload may wait for the run loop (busy with another reload or a drain).
const RELOAD_WAIT: Duration = Duration::from_secs(60);

/// `{"action": ...}` of the breaker calls.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum BreakerAction {
    ForceOpen,
    ForceClosed,
    Reset,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BreakerBody {
    action: BreakerAction,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KillSwitchBody {
    on: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogLevelBody {
    filter: String,
}

/// The body as `T`, or a 400 saying what is wrong with it.
fn parse<T: DeserializeOwned>(body: &Bytes, example: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|error| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the body must be JSON like {example}: {error}"),
        )
    })
}

fn find_cluster(state: &AdminState, name: &str) -> Result<Arc<Cluster>, ApiError> {
    state
        .runtime
        .snapshot()
        .clusters
        .iter()
        .find(|cluster| cluster.name() == name)
        .cloned()
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no cluster named {name:?}")))
}

/// The endpoints at `address` (a resolved address, or a DNS endpoint as configured).
fn find_endpoints(cluster: &Cluster, address: &str) -> Result<Vec<Arc<Endpoint>>, ApiError> {
    let found: Vec<Arc<Endpoint>> = cluster
        .endpoints()
        .iter()
        .filter(|endpoint| {
            endpoint.address().to_string() == address
                || endpoint.config().address.to_string() == address
        })
        .cloned()
        .collect();
    if found.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("cluster {:?} has no endpoint {address:?}", cluster.name()),
        ));
    }
    Ok(found)
}

/// `POST .../drain` and `.../undrain`.
pub(super) fn drain(
    state: &AdminState,
    cluster: &str,
    address: &str,
    drained: bool,
) -> Response<AdminBody> {
    let result = find_cluster(state, cluster).and_then(|cluster| {
        let endpoints = find_endpoints(&cluster, address)?;
        Ok((cluster, endpoints))
    });
    let (cluster, endpoints) = match result {
        Ok(found) => found,
        Err(error) => return error.into_response(),
    };
    let mut changed = false;
    for endpoint in &endpoints {
        if endpoint.set_drained(drained) {
            changed = true;
            let kind = if drained {
                EventKind::EndpointDrained
            } else {
                EventKind::EndpointUndrained
            };
            let detail = if drained {
                "drained by an operator"
            } else {
                "undrained by an operator"
            };
            cluster.stats().events.push(
                Event::now(kind, detail).in_cluster(cluster.name(), Some(endpoint.address())),
            );
            tracing::warn!(cluster = cluster.name(), endpoint = %endpoint.address(), drained, "endpoint drain set by the admin API");
        }
    }
    reply::json(
        StatusCode::OK,
        &json!({
            "cluster": cluster.name(),
            "endpoints": endpoints.iter().map(|e| e.address().to_string()).collect::<Vec<_>>(),
            "drained": drained,
            "changed": changed,
        }),
    )
}

/// `POST .../breaker` of a cluster (`address` `None`) or an endpoint.
pub(super) fn breaker(
    state: &AdminState,
    cluster: &str,
    address: Option<&str>,
    body: &Bytes,
) -> Response<AdminBody> {
    let action = match parse::<BreakerBody>(
        body,
        r#"{"action": "force_open" | "force_closed" | "reset"}"#,
    ) {
        Ok(body) => body.action,
        Err(error) => return error.into_response(),
    };
    let cluster = match find_cluster(state, cluster) {
        Ok(cluster) => cluster,
        Err(error) => return error.into_response(),
    };
    let breakers = match address {
        None => match cluster.breaker() {
            Some(breaker) => vec![(None, breaker.clone())],
            None => {
                return error_json(
                    StatusCode::CONFLICT,
                    &format!(
                        "cluster {:?} has no circuit_breaker configured",
                        cluster.name()
                    ),
                );
            }
        },
        Some(address) => {
            let endpoints = match find_endpoints(&cluster, address) {
                Ok(endpoints) => endpoints,
                Err(error) => return error.into_response(),
            };
            let breakers: Vec<_> = endpoints
                .iter()
                .filter_map(|endpoint| {
                    Some((Some(endpoint.address()), (*endpoint.breaker()?).clone()))
                })
                .collect();
            if breakers.is_empty() {
                return error_json(
                    StatusCode::CONFLICT,
                    &format!(
                        "cluster {:?} has no endpoint_circuit_breaker configured",
                        cluster.name()
                    ),
                );
            }
            breakers
        }
    };
    let now = Instant::now();
    let mut states = Vec::new();
    for (endpoint, breaker) in &breakers {
        // The breaker's listener logs the transition and records the event.
        match action {
            BreakerAction::ForceOpen => drop(breaker.force_open(now)),
            BreakerAction::ForceClosed => drop(breaker.force_closed(now)),
            BreakerAction::Reset => drop(breaker.reset(now)),
        }
        states.push(json!({
            "endpoint": endpoint.map(|address| address.to_string()),
            "state": breaker.state(now).as_str(),
        }));
    }
    tracing::warn!(
        cluster = cluster.name(),
        endpoint = address.unwrap_or("-"),
        ?action,
        "breaker set by the admin API"
    );
    reply::json(
        StatusCode::OK,
        &json!({ "cluster": cluster.name(), "breakers": states }),
    )
}

/// `POST /admin/routes/{route}/kill_switch`.
pub(super) fn kill_switch(state: &AdminState, route: &str, body: &Bytes) -> Response<AdminBody> {
    let on = match parse::<KillSwitchBody>(body, r#"{"on": true}"#) {
        Ok(body) => body.on,
        Err(error) => return error.into_response(),
    };
    match state.runtime.set_kill_switch(route, on) {
        Ok(()) => {
            tracing::warn!(route, on, "kill switch set by the admin API");
            reply::json(
                StatusCode::OK,
                &json!({ "route": route, "kill_switch": on }),
            )
        }
        Err(error) => error_json(StatusCode::NOT_FOUND, &error.to_string()),
    }
}

/// `POST /admin/reload`: asks the run loop for the same reload as SIGHUP and waits for it.
pub(super) async fn reload(state: &AdminState) -> Response<AdminBody> {
    let (reply, outcome) = tokio::sync::oneshot::channel();
    let asked = async {
        state
            .reloads
            .send(ReloadRequest { reply })
            .await
            .map_err(|_| ())?;
        outcome.await.map_err(|_| ())
    };
    let outcome = match tokio::time::timeout(RELOAD_WAIT, asked).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(())) => {
            return error_json(
                StatusCode::SERVICE_UNAVAILABLE,
                "nothing takes reload requests (the proxy is draining)",
            );
        }
        Err(_) => {
            return error_json(
                StatusCode::GATEWAY_TIMEOUT,
                "the reload was not done in time (another reload or the drain is running)",
            );
        }
    };
    match outcome {
        ReloadOutcome::Applied(applied) => reply::json(
            StatusCode::OK,
            &json!({ "outcome": "applied", "hash": applied.hash, "previous_hash": applied.previous_hash }),
        ),
        ReloadOutcome::Unchanged { hash } => reply::json(
            StatusCode::OK,
            &json!({ "outcome": "unchanged", "hash": hash }),
        ),
        ReloadOutcome::Refused { errors, .. } => reply::json(
            StatusCode::UNPROCESSABLE_ENTITY,
            &json!({
                "outcome": "refused",
                // No source text: the offending line may hold a secret.
                "error": errors.summary(),
                "errors": errors.0.iter().map(ConfigError::summary).collect::<Vec<_>>(),
            }),
        ),
    }
}

/// `PUT /admin/log-level`.
pub(super) fn log_level(body: &Bytes) -> Response<AdminBody> {
    let filter = match parse::<LogLevelBody>(body, r#"{"filter": "info,blastwall_proxy=debug"}"#) {
        Ok(body) => body.filter,
        Err(error) => return error.into_response(),
    };
    match crate::telemetry::set_log_filter(&filter) {
        Ok(()) => {
            tracing::warn!(%filter, "log filter set by the admin API");
            reply::json(StatusCode::OK, &json!({ "filter": filter }))
        }
        Err(error) => error_json(
            StatusCode::BAD_REQUEST,
            &format!("cannot set the log filter {filter:?}: {error}"),
        ),
    }
}
