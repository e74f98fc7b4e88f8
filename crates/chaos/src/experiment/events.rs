//! The proxy's events during one experiment (breakers, ejections, health, reloads, fault
//! rules), read from its admin API (`GET /admin/events`) every second by a task of its own,
//! merged and deduplicated: the API shows only the newest events, so a busy log read only
//! at the end could have rolled the early ones away, and a slow admin API never delays the
//! experiment's own steps (taking a failure away above all).
//!
//! What an admin API answers is not trusted: events are capped in number and their text in
//! length, and a malformed one is skipped.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::Method;
use serde_json::Value;
use tokio::task::JoinHandle;

use super::api::Api;
use crate::report::ProxyEvent;

/// How often the events are read.
const EVERY: Duration = Duration::from_secs(1);
/// The most events one experiment keeps.
const MAX_EVENTS: usize = 10_000;
/// The most characters of an event's text kept.
const MAX_TEXT: usize = 512;
/// How far ahead of this machine's clock an event may be dated (clocks differ a little);
/// one dated later is not believed (it would count as detecting a failure not yet caused).
const CLOCK_SKEW_MS: u64 = 60_000;

/// Reads the events while an experiment runs.
pub(super) struct EventReader {
    log: Arc<Mutex<EventLog>>,
    task: Option<JoinHandle<()>>,
}

impl EventReader {
    /// Starts reading `admin`'s events that happened from `began_unix_ms` on (none without
    /// an admin API).
    pub(super) fn start(admin: Option<Api>, began_unix_ms: u64) -> Self {
        let log = Arc::new(Mutex::new(EventLog::new(began_unix_ms)));
        let task = admin.map(|admin| {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval(EVERY);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    ticks.tick().await;
                    read(&admin, &log).await;
                }
            })
        });
        Self { log, task }
    }

    /// Stops reading, reads once more (after the experiment's last step, so its events are
    /// in) and returns the events by time.
    pub(super) async fn finish(mut self, admin: Option<&Api>) -> Vec<ProxyEvent> {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
        if let Some(admin) = admin {
            read(admin, &self.log).await;
        }
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        let mut events = std::mem::take(&mut log.events);
        events.sort_by(|a, b| a.t.total_cmp(&b.t));
        events
    }
}

impl Drop for EventReader {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// One read: an unreachable admin API is not the experiment's failure (its events are then
/// missing, and an expectation on them fails saying so).
async fn read(admin: &Api, log: &Mutex<EventLog>) {
    let Ok(answer) = admin.call(Method::GET, "/admin/events", None).await else {
        return;
    };
    if let Some(list) = answer.get("events").and_then(Value::as_array) {
        let now_ms = super::unix_ms(std::time::SystemTime::now());
        log.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .merge(list, now_ms);
    }
}

/// The events seen so far.
struct EventLog {
    began_unix_ms: u64,
    seen: BTreeSet<(u64, String, String, String)>,
    events: Vec<ProxyEvent>,
}

impl EventLog {
    fn new(began_unix_ms: u64) -> Self {
        Self {
            began_unix_ms,
            seen: BTreeSet::new(),
            events: Vec::new(),
        }
    }

    /// Keeps the events of `list` not seen before that happened since the load began and by
    /// `now_ms` (give or take the clocks' skew).
    fn merge(&mut self, list: &[Value], now_ms: u64) {
        for event in list {
            if self.events.len() >= MAX_EVENTS {
                return;
            }
            let Some(at_ms) = event.get("at_ms").and_then(Value::as_u64) else {
                continue;
            };
            let Some(since) = at_ms.checked_sub(self.began_unix_ms) else {
                continue;
            };
            if at_ms > now_ms.saturating_add(CLOCK_SKEW_MS) {
                continue;
            }
            let text = |key: &str| {
                let text = event.get(key).and_then(Value::as_str).unwrap_or("");
                text.chars().take(MAX_TEXT).collect::<String>()
            };
            let kind = text("kind");
            let target = [text("cluster"), text("endpoint"), text("route")]
                .into_iter()
                .filter(|part| !part.is_empty())
                .collect::<Vec<_>>()
                .join("/");
            let detail = text("detail");
            if !self
                .seen
                .insert((at_ms, kind.clone(), target.clone(), detail.clone()))
            {
                continue;
            }
            self.events.push(ProxyEvent {
                t: since as f64 / 1000.0,
                kind,
                target,
                detail,
                failure: event
                    .get("failure")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn events_since_the_load_began_are_kept_once_each_by_time_from_it() {
        let mut log = EventLog::new(10_000);
        let events = [
            json!({"at_ms": 9_000, "kind": "breaker_opened", "detail": "before", "failure": true}),
            json!({"at_ms": 12_500, "kind": "breaker_opened", "cluster": "payments", "detail": "x", "failure": true}),
            json!({"at_ms": 11_000, "kind": "endpoint_ejected", "cluster": "checkout", "endpoint": "127.0.0.1:1", "detail": "y"}),
        ];
        log.merge(&events, 20_000);
        log.merge(&events, 20_000);
        assert_eq!(log.events.len(), 2);
        assert_eq!(log.events[0].t, 2.5);
        assert_eq!(log.events[0].target, "payments");
        assert_eq!(log.events[1].target, "checkout/127.0.0.1:1");
        assert!(!log.events[1].failure);
    }

    #[test]
    fn an_event_dated_past_the_clock_and_its_skew_is_not_believed() {
        let mut log = EventLog::new(0);
        let events = [
            json!({"at_ms": 70_000, "kind": "breaker_opened"}),
            json!({"at_ms": 50_000, "kind": "endpoint_ejected"}),
        ];
        log.merge(&events, 5_000);
        let kinds: Vec<&str> = log.events.iter().map(|event| event.kind.as_str()).collect();
        assert_eq!(kinds, ["endpoint_ejected"]);
    }

    #[test]
    fn a_hostile_admin_api_cannot_grow_the_log_without_bound() {
        let mut log = EventLog::new(0);
        let huge = "x".repeat(4 * MAX_TEXT);
        let events: Vec<Value> = (0..MAX_EVENTS as u64 + 50)
            .map(|at| json!({"at_ms": at, "kind": "k", "detail": huge}))
            .collect();
        log.merge(&events, 20_000);
        log.merge(
            &[
                json!({"at_ms": "soon"}),
                json!(null),
                json!({"at_ms": u64::MAX, "kind": 7}),
            ],
            u64::MAX,
        );
        assert_eq!(log.events.len(), MAX_EVENTS);
        assert!(
            log.events
                .iter()
                .all(|event| event.detail.len() == MAX_TEXT)
        );
    }
}
