//! `/admin/faults`: fault rules made, listed and deleted at run time, and the faults' kill
//! switch.
//!
//! A rule's body is a `[[route.fault]]` rule in JSON (`delay`, `abort`, `percent`, `header`,
//! `first`, `at`, `endpoint`, `down`, …) plus its target (`route` or `cluster`), its `ttl`
//! and an optional `after`. The action keys are checked by the config's own code
//! (`config::runtime_fault_rule`, given the target's cluster's endpoints), so the file and
//! the API refuse the same input with the same words; only the keys that exist at run time
//! alone (target, `ttl`, `after`) are read here. `"endpoint": "random"` is picked once, as
//! the rule is made, and the rule's JSON shows the endpoint picked.
//!
//! An endpoint taken down at run time (`down`, no `header`, 100 percent, no `first`) is down
//! for its health checks too, as a config rule's is: every change to the table here (a
//! rule made, deleted, the kill switch, resume) re-marks the endpoints at once, and the
//! sweeper does after each tick while rules are in force (so one that starts `after` a
//! while, or expires, reaches the checks within a second); see
//! `reload::Snapshot::mark_endpoints_down`.
//!
//! Safety, as the break issue asks: a rule must have a `ttl`, at most `[admin]
//! fault_max_ttl` (a 400 naming the cap), and an `after` no longer than that either, so a
//! rule ends within twice the cap of its making; at most `[admin] max_faults` rules at once, past
//! which creating one is a **409 Conflict**: the table is full, a state, not a rate (429
//! would invite a client to retry with backoff until a rule expires, hiding an experiment
//! that leaks rules); the answer says when the next rule expires. `DELETE /admin/faults` is
//! the kill switch: every runtime rule removed, the config's rules silenced until the next
//! reload or `POST /admin/faults/resume`; `GET` shows `silenced`.

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{Response, StatusCode};
use serde_json::{Map, Value, json};

use super::AdminState;
use super::reply::{self, AdminBody, ApiError};
use crate::config::EndpointConfig;
use crate::config::fault::{FaultRule, FaultStage};
use crate::config::values::parse_duration;
use crate::fault::ConfiguredFault;
use crate::fault::table::{FaultTarget, NewRule, Refused, RuntimeRule};
use crate::reload::{Runtime, Snapshot};

/// An example body, for errors.
const EXAMPLE: &str = r#"{"route": "checkout", "delay": "2s", "ttl": "30s"}"#;

/// `GET /admin/faults`: every rule in force, runtime ones first, and the kill switch.
pub(super) fn list(state: &AdminState) -> Response<AdminBody> {
    reply::json(StatusCode::OK, &view(&state.runtime))
}

/// What `GET /admin/faults` shows (and the dashboard draws).
pub(super) fn view(runtime: &Runtime) -> Value {
    let snapshot = runtime.snapshot();
    let now = Instant::now();
    let table = &snapshot.faults;
    let mut faults: Vec<Value> = table
        .rules()
        .iter()
        .map(|rule| runtime_view(rule, now))
        .collect();
    let silenced = table.silenced();
    faults
        .extend(configured(&snapshot).map(|(route, rule)| config_view(route, rule, now, silenced)));
    json!({
        "silenced": silenced,
        "runtime_rules": table.len(),
        "max_faults": snapshot.config.admin.max_faults,
        "fault_max_ttl": format!("{:?}", snapshot.config.admin.fault_max_ttl),
        "faults": faults,
    })
}

/// `GET /admin/faults/{id}`.
pub(super) fn get(state: &AdminState, id: &str) -> Response<AdminBody> {
    let snapshot = state.runtime.snapshot();
    let now = Instant::now();
    if let Some(rule) = snapshot.faults.get(id) {
        return reply::json(StatusCode::OK, &runtime_view(&rule, now));
    }
    let silenced = snapshot.faults.silenced();
    match configured(&snapshot).find(|(_, rule)| &*rule.id == id) {
        Some((route, rule)) => {
            reply::json(StatusCode::OK, &config_view(route, rule, now, silenced))
        }
        None => not_found(id).into_response(),
    }
}

/// `DELETE /admin/faults/{id}`: 204; a config rule cannot be deleted here (409).
pub(super) fn delete(state: &AdminState, id: &str) -> Response<AdminBody> {
    let snapshot = state.runtime.snapshot();
    if snapshot.faults.delete(id).is_some() {
        tracing::warn!(fault = id, "fault rule deleted through the admin API");
        state.runtime.faults_changed();
        return reply::with_type(StatusCode::NO_CONTENT, "application/json", Bytes::new());
    }
    if configured(&snapshot).any(|(_, rule)| &*rule.id == id) {
        return ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "fault {id:?} is in the config file: remove it there and reload, or silence every config rule with DELETE /admin/faults"
            ),
        )
        .into_response();
    }
    not_found(id).into_response()
}

/// `DELETE /admin/faults`: the kill switch.
pub(super) fn clear(state: &AdminState) -> Response<AdminBody> {
    let snapshot = state.runtime.snapshot();
    let removed = snapshot.faults.clear();
    state.runtime.faults_changed();
    tracing::warn!(
        removed,
        "fault kill switch: runtime rules removed, config rules silenced"
    );
    reply::json(
        StatusCode::OK,
        &json!({ "removed": removed, "silenced": true }),
    )
}

/// `POST /admin/faults/resume`: the config's rules apply again.
pub(super) fn resume(state: &AdminState) -> Response<AdminBody> {
    let snapshot = state.runtime.snapshot();
    let changed = snapshot.faults.resume();
    state.runtime.faults_changed();
    reply::json(
        StatusCode::OK,
        &json!({ "silenced": false, "changed": changed }),
    )
}

/// `POST /admin/faults`: 201 with the rule as stored.
pub(super) fn create(state: &AdminState, body: &Bytes) -> Response<AdminBody> {
    let snapshot = state.runtime.snapshot();
    let new = match new_rule(&snapshot, body) {
        Ok(new) => new,
        Err(error) => return error.into_response(),
    };
    let admin = &snapshot.config.admin;
    let (now, wall) = (Instant::now(), SystemTime::now());
    // NOTE: the target asked again of the config in force under the table's lock: a reload
    // since `snapshot` may have taken it away (see `FaultTable::insert_if`).
    let exists = |target: &FaultTarget| known(&state.runtime.snapshot(), target);
    let refused = match (snapshot.faults).insert_if(new, admin.max_faults, now, wall, exists) {
        Ok(rule) => {
            state.runtime.faults_changed();
            tracing::warn!(fault = &*rule.id, target = rule.target.name(), action = %rule.action().summary(), "fault rule created through the admin API");
            return reply::json(StatusCode::CREATED, &runtime_view(&rule, Instant::now()));
        }
        Err(refused) => refused,
    };
    match refused {
        Refused::Full(full) => {
            let next = full.next_expiry.map_or(String::new(), |next| {
                format!(" (the next expires in {}s)", next.as_secs())
            });
            ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "{} fault rules are in force, the most [admin] max_faults allows: delete one (DELETE /admin/faults/{{id}}) or wait for one to expire{next}",
                    full.cap
                ),
            )
        }
        Refused::Gone => ApiError::new(
            StatusCode::NOT_FOUND,
            "the rule's target is gone: a reload took it away while the rule was made",
        ),
        Refused::OutOfRange => bad("`after` and `ttl` put the rule's end past what the clock can hold"),
    }
    .into_response()
}

/// The body as a rule for the table, or the 400 (404 for an unknown target) that says why.
fn new_rule(snapshot: &Snapshot, body: &Bytes) -> Result<NewRule, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|error| bad(format!("the body must be JSON like {EXAMPLE}: {error}")))?;
    let Value::Object(mut keys) = value else {
        return Err(bad(format!(
            "the body must be a JSON object like {EXAMPLE}"
        )));
    };
    let target = target(snapshot, &mut keys)?;
    let admin = &snapshot.config.admin;
    let ttl = duration(&mut keys, "ttl")?.ok_or_else(|| {
        bad(format!(
            "a fault made at run time needs a `ttl` (at most {:?}, [admin] fault_max_ttl), so that an experiment that stops halfway cannot leave it behind: e.g. \"ttl\": \"30s\"",
            admin.fault_max_ttl
        ))
    })?;
    if ttl.is_zero() {
        return Err(bad("`ttl` must be more than 0"));
    }
    if ttl > admin.fault_max_ttl {
        return Err(bad(format!(
            "`ttl` {ttl:?} is longer than [admin] fault_max_ttl, {:?}",
            admin.fault_max_ttl
        )));
    }
    let after = duration(&mut keys, "after")?.unwrap_or_default();
    if after > admin.fault_max_ttl {
        return Err(bad(format!(
            "`after` {after:?} is longer than [admin] fault_max_ttl, {:?}: a rule must start within it",
            admin.fault_max_ttl
        )));
    }
    let given = Value::Object(keys.clone());
    let mut table = toml::Table::new();
    for (key, value) in keys {
        let value = to_toml(&value).map_err(|problem| bad(format!("`{key}`: {problem}")))?;
        table.insert(key, value);
    }
    let nobody = crate::config::admission::PriorityTrust::default();
    let trust = trust(snapshot, &target).unwrap_or(&nobody);
    let endpoints = endpoints(snapshot, &target);
    let rule =
        crate::config::runtime_fault_rule(table, target.name(), trust, endpoints).map_err(bad)?;
    Ok(NewRule {
        target,
        rule,
        given,
        after,
        ttl,
    })
}

/// `route` or `cluster`: exactly one, naming one in the config in force (404 otherwise).
fn target(snapshot: &Snapshot, keys: &mut Map<String, Value>) -> Result<FaultTarget, ApiError> {
    let route = text(keys, "route")?;
    let cluster = text(keys, "cluster")?;
    let target = match (route, cluster) {
        (Some(route), None) => FaultTarget::Route(route),
        (None, Some(cluster)) => FaultTarget::Cluster(cluster),
        (Some(_), Some(_)) => {
            return Err(bad(
                "give `route` or `cluster`, not both: a rule on a cluster faults every route of it",
            ));
        }
        (None, None) => {
            return Err(bad(format!(
                "a fault needs a target: `route` (a route's name) or `cluster` (every route of it), e.g. {EXAMPLE}"
            )));
        }
    };
    if !known(snapshot, &target) {
        let message = format!("no {} named {:?}", target.kind(), target.name());
        return Err(ApiError::new(StatusCode::NOT_FOUND, message));
    }
    Ok(target)
}

/// Whether `snapshot`'s config has `target`.
fn known(snapshot: &Snapshot, target: &FaultTarget) -> bool {
    let config = &snapshot.config;
    match target {
        FaultTarget::Route(name) => config.routes.iter().any(|route| &route.name == name),
        FaultTarget::Cluster(name) => config.clusters.iter().any(|cluster| &cluster.name == name),
    }
}

/// The clients whose headers a header rule reads: the target's routes' (one setting for
/// the whole config, kept on each route).
fn trust<'a>(
    snapshot: &'a Snapshot,
    target: &FaultTarget,
) -> Option<&'a crate::config::admission::PriorityTrust> {
    let config = &snapshot.config;
    let route = config.routes.iter().find(|route| match target {
        FaultTarget::Route(name) => &route.name == name,
        FaultTarget::Cluster(name) => &config.clusters[route.cluster].name == name,
    });
    route
        .or(config.routes.first())
        .map(|route| &*route.admission.trust)
}

/// The endpoints of the target's cluster (a route's, or the cluster itself), which a rule's
/// `endpoint` names.
fn endpoints<'a>(snapshot: &'a Snapshot, target: &FaultTarget) -> &'a [EndpointConfig] {
    let config = &snapshot.config;
    let cluster = match target {
        FaultTarget::Route(name) => (config.routes.iter())
            .find(|route| &route.name == name)
            .and_then(|route| config.clusters.get(route.cluster)),
        FaultTarget::Cluster(name) => config.clusters.iter().find(|cluster| &cluster.name == name),
    };
    cluster.map_or(&[], |cluster| &cluster.endpoints)
}

/// The string at `key`, taken out of `keys`.
fn text(keys: &mut Map<String, Value>, key: &str) -> Result<Option<String>, ApiError> {
    match keys.remove(key) {
        None => Ok(None),
        Some(Value::String(text)) if !text.is_empty() => Ok(Some(text)),
        Some(other) => Err(bad(format!(
            "`{key}` must be a name (a non-empty string), not {other}"
        ))),
    }
}

/// The duration at `key` (`"30s"`, `"1m"`), taken out of `keys`.
fn duration(keys: &mut Map<String, Value>, key: &str) -> Result<Option<Duration>, ApiError> {
    match keys.remove(key) {
        None => Ok(None),
        Some(Value::String(text)) => parse_duration(&text)
            .map(Some)
            .map_err(|message| bad(format!("`{key}`: {message}"))),
        Some(other) => Err(bad(format!(
            "`{key}` must be a duration with its unit, like \"30s\", not {other}"
        ))),
    }
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, message)
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "no fault rule {id:?} (it may have expired or been spent; GET /admin/faults lists them)"
        ),
    )
}

/// Every route's config rules, with the route's name.
fn configured(snapshot: &Snapshot) -> impl Iterator<Item = (&str, &ConfiguredFault)> {
    (snapshot.config.routes.iter().zip(&snapshot.routes)).flat_map(|(route, live)| {
        (live.fault.configured()).map(move |rule| (route.name.as_str(), rule))
    })
}

/// What a runtime rule shows.
fn runtime_view(rule: &RuntimeRule, now: Instant) -> Value {
    let mut view = common(&rule.rule, rule.faulted());
    let expires_in = rule.expires_in(now);
    let starts_in = rule.starts_in(now);
    let fields = [
        ("id", json!(&*rule.id)),
        ("origin", json!("runtime")),
        ("target", json!({ rule.target.kind(): rule.target.name() })),
        ("given", rule.given.clone()),
        ("created_at", rfc3339(rule.created_at)),
        ("starts_at", rfc3339(rule.starts_at)),
        ("expires_at", rfc3339(rule.expires_at)),
        ("expires_in_ms", json!(millis(expires_in))),
        (
            "active",
            json!(starts_in.is_zero() && !expires_in.is_zero()),
        ),
    ];
    view.extend(fields.map(|(key, value)| (key.to_owned(), value)));
    Value::Object(view)
}

/// What a config rule shows.
fn config_view(route: &str, rule: &ConfiguredFault, now: Instant, silenced: bool) -> Value {
    let mut view = common(&rule.rule, rule.faulted());
    let spent = rule
        .rule
        .first
        .is_some_and(|first| rule.faulted() >= first.get());
    let fields = [
        ("id", json!(&*rule.id)),
        ("origin", json!("config")),
        ("target", json!({ "route": route })),
        ("from", json!(rule.rule.window.from.map(rfc3339))),
        ("until", json!(rule.rule.window.until.map(rfc3339))),
        ("expires_at", json!(rule.rule.window.until.map(rfc3339))),
        ("silenced", json!(silenced)),
        ("active", json!(rule.live_at(now) && !silenced && !spent)),
    ];
    view.extend(fields.map(|(key, value)| (key.to_owned(), value)));
    Value::Object(view)
}

/// What both kinds show: the action, whom it takes, how many it faulted.
fn common(rule: &FaultRule, faulted: u64) -> Map<String, Value> {
    let header = rule.header.as_ref().map(|(name, value)| match value {
        None => name.to_string(),
        Some(value) => format!("{name}={}", String::from_utf8_lossy(value.as_bytes())),
    });
    let mut view = Map::new();
    view.insert("kind".into(), json!(rule.action.kind().as_str()));
    view.insert("action".into(), json!(rule.action.summary()));
    view.insert(
        "percent".into(),
        json!(f64::from(rule.per_million) / 10_000.0),
    );
    view.insert("header".into(), json!(header));
    view.insert("first".into(), json!(rule.first.map(|first| first.get())));
    let at = match rule.at {
        FaultStage::Request => "request",
        FaultStage::Attempt => "attempt",
    };
    view.insert("at".into(), json!(at));
    let endpoint = rule.endpoint.map(|endpoint| endpoint.address.to_string());
    view.insert("endpoint".into(), json!(endpoint));
    let random = rule.endpoint.is_some_and(|endpoint| endpoint.random);
    view.insert("endpoint_random".into(), json!(random));
    view.insert("faulted".into(), json!(faulted));
    view
}

/// `at` as an RFC 3339 date, or `null` for one it cannot write (a year past 9999): a view
/// never panics on a date.
pub(super) fn rfc3339(at: SystemTime) -> Value {
    use std::fmt::Write;
    let mut out = String::new();
    match write!(out, "{}", humantime::format_rfc3339_millis(at)) {
        Ok(()) => Value::String(out),
        Err(_) => Value::Null,
    }
}

/// A JSON value as the TOML value the config's code reads, or what TOML cannot hold: a
/// null, or an integer past `i64::MAX` (TOML's integers are 64-bit signed).
fn to_toml(value: &Value) -> Result<toml::Value, String> {
    Ok(match value {
        Value::Null => return Err("cannot be null; leave it out instead".into()),
        Value::Bool(flag) => toml::Value::Boolean(*flag),
        Value::Number(number) => match (number.as_i64(), number.as_f64()) {
            (Some(integer), _) => toml::Value::Integer(integer),
            (None, Some(_)) if number.is_u64() => {
                return Err(format!(
                    "{number} is too large: integers here are at most {}",
                    i64::MAX
                ));
            }
            (None, Some(float)) => toml::Value::Float(float),
            (None, None) => return Err(format!("{number} is not a number TOML can hold")),
        },
        Value::String(text) => toml::Value::String(text.clone()),
        Value::Array(items) => {
            toml::Value::Array(items.iter().map(to_toml).collect::<Result<_, _>>()?)
        }
        Value::Object(keys) => {
            let mut table = toml::Table::new();
            for (key, item) in keys {
                let item = to_toml(item).map_err(|problem| format!("`{key}`: {problem}"))?;
                table.insert(key.clone(), item);
            }
            toml::Value::Table(table)
        }
    })
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
