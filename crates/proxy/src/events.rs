//! Recent events for the operator: breakers opening and closing, endpoints ejected and
//! returned, health changes, reloads, kill switches, drains, fault rules made and gone.
//!
//! Logs say all this too, but an operator looking at the dashboard during an incident wants
//! the last few minutes in order, without a log pipeline. Each [`EventLog`] is a small ring
//! (old events fall off, memory stays fixed) written where the transition is already logged;
//! transitions are rare, so a short lock per event is cheap and never held across an await.
//! Each cluster keeps its log in its stats (so it survives reloads with them) and the runtime
//! keeps one for reloads and kill switches; the admin API merges them by time.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// Events kept per log.
pub(crate) const EVENT_LOG_CAPACITY: usize = 256;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum EventKind {
    /// A breaker opened (or was forced open).
    BreakerOpened,
    /// A breaker closed (or was forced closed or reset).
    BreakerClosed,
    /// A breaker let probes through.
    BreakerHalfOpen,
    /// Outlier detection ejected an endpoint.
    EndpointEjected,
    /// An ejection ended.
    EndpointReturned,
    /// Stall detection took an endpoint out: requests out, nothing answered.
    EndpointStalled,
    /// A stalled endpoint answered: it takes traffic again.
    EndpointAnsweredAgain,
    /// Health checks changed an endpoint's status.
    HealthChanged,
    /// An operator drained an endpoint.
    EndpointDrained,
    /// An operator put a drained endpoint back.
    EndpointUndrained,
    /// A reload put a new config in force.
    ReloadApplied,
    /// A reload was refused; the config in force stays.
    ReloadRefused,
    /// A route's kill switch was flipped.
    KillSwitch,
    /// A fault rule was made through the admin API.
    FaultCreated,
    /// A runtime fault rule's `ttl` ran out.
    FaultExpired,
    /// A runtime fault rule was deleted through the admin API.
    FaultDeleted,
    /// A runtime fault rule faulted its `first` requests and was removed.
    FaultSpent,
    /// A reload took away a runtime fault rule's route or cluster, and the rule with it.
    FaultOrphaned,
    /// The faults' kill switch: every runtime rule removed, the config's rules silenced.
    FaultsCleared,
    /// The config's fault rules apply again (after the kill switch).
    FaultsResumed,
}

impl EventKind {
    /// Whether the event is bad news (drawn in red on the dashboard).
    pub(crate) fn is_failure(self) -> bool {
        matches!(
            self,
            EventKind::BreakerOpened
                | EventKind::EndpointEjected
                | EventKind::EndpointStalled
                | EventKind::ReloadRefused
                | EventKind::FaultCreated
        )
    }
}

/// One event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Event {
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// What happened.
    pub kind: EventKind,
    /// The cluster it happened in, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// The endpoint, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The route, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// A line for a person: from and to, the reason.
    pub detail: String,
    /// Whether it is bad news.
    pub failure: bool,
}

impl Event {
    /// An event happening now.
    pub(crate) fn now(kind: EventKind, detail: impl Into<String>) -> Self {
        Self::at(kind, detail, SystemTime::now())
    }

    /// An event at `at`.
    pub(crate) fn at(kind: EventKind, detail: impl Into<String>, at: SystemTime) -> Self {
        Self {
            at_ms: at.duration_since(UNIX_EPOCH).map_or(0, |since| {
                u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
            }),
            kind,
            cluster: None,
            endpoint: None,
            route: None,
            detail: detail.into(),
            failure: kind.is_failure(),
        }
    }

    /// In `cluster`, about `endpoint` when given.
    pub(crate) fn in_cluster(mut self, cluster: &str, endpoint: Option<SocketAddr>) -> Self {
        self.cluster = Some(cluster.to_owned());
        self.endpoint = endpoint.map(|address| address.to_string());
        self
    }

    /// About `route`.
    pub(crate) fn on_route(mut self, route: &str) -> Self {
        self.route = Some(route.to_owned());
        self
    }
}

/// A bounded ring of recent events.
#[derive(Debug)]
pub(crate) struct EventLog {
    events: Mutex<VecDeque<Event>>,
    capacity: usize,
}

impl Default for EventLog {
    fn default() -> Self {
        Self::with_capacity(EVENT_LOG_CAPACITY)
    }
}

impl EventLog {
    /// A log keeping the last `capacity` events (at least one).
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            events: Mutex::new(VecDeque::with_capacity(capacity)),
            capacity,
        }
    }

    /// Adds an event, dropping the oldest when full.
    pub(crate) fn push(&self, event: Event) {
        let mut events = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        if events.len() == self.capacity {
            events.pop_front();
        }
        events.push_back(event);
    }

    /// The events kept, oldest first.
    pub(crate) fn recent(&self) -> Vec<Event> {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }
}

/// A breaker's transition in `cluster` (of `endpoint`'s breaker when given).
pub(crate) fn breaker_event(
    cluster: &str,
    endpoint: Option<SocketAddr>,
    transition: &blastwall_policy::breaker::Transition,
) -> Event {
    use blastwall_policy::breaker::State;
    let kind = match transition.to {
        State::Open | State::ForcedOpen => EventKind::BreakerOpened,
        State::Closed | State::ForcedClosed => EventKind::BreakerClosed,
        State::HalfOpen => EventKind::BreakerHalfOpen,
    };
    let whose = if endpoint.is_some() {
        "endpoint"
    } else {
        "cluster"
    };
    Event::now(kind, format!("{whose} breaker {transition}")).in_cluster(cluster, endpoint)
}

/// An ejection starting or ending; `None` for events that change nothing.
pub(crate) fn outlier_event(
    cluster: &str,
    endpoint: SocketAddr,
    event: &blastwall_policy::outlier::Event,
) -> Option<Event> {
    use blastwall_policy::outlier::Event as Outlier;
    let (kind, detail) = match event {
        Outlier::Ejected(ejection) => (
            EventKind::EndpointEjected,
            format!("ejected for {:?}: {}", ejection.duration(), ejection.reason),
        ),
        Outlier::Unejected(ejection) => (
            EventKind::EndpointReturned,
            format!("returned after {:?}", ejection.duration()),
        ),
        Outlier::EjectionSuppressed { .. } => return None,
    };
    Some(Event::now(kind, detail).in_cluster(cluster, Some(endpoint)))
}

/// A route's kill switch set on or off by an operator.
pub(crate) fn kill_switch_event(route: &str, on: bool) -> Event {
    let mut event = Event::now(
        EventKind::KillSwitch,
        format!("kill switch {}", if on { "on" } else { "off" }),
    )
    .on_route(route);
    event.failure = on;
    event
}

/// The events of several logs, oldest first, the last `limit` of them.
pub(crate) fn merge<'a>(logs: impl IntoIterator<Item = &'a EventLog>, limit: usize) -> Vec<Event> {
    let mut all: Vec<Event> = logs.into_iter().flat_map(EventLog::recent).collect();
    // NOTE: a stable sort keeps each log's own order among events of the same millisecond.
    all.sort_by_key(|event| event.at_ms);
    let skip = all.len().saturating_sub(limit);
    all.split_off(skip)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn event(ms: u64, detail: &str) -> Event {
        Event::at(
            EventKind::HealthChanged,
            detail,
            UNIX_EPOCH + Duration::from_millis(ms),
        )
    }

    #[test]
    fn a_full_log_drops_its_oldest_event() {
        let log = EventLog::with_capacity(2);
        log.push(event(1, "a"));
        log.push(event(2, "b"));
        log.push(event(3, "c"));
        let details: Vec<_> = log.recent().into_iter().map(|e| e.detail).collect();
        assert_eq!(details, ["b", "c"]);
    }

    #[test]
    fn merged_logs_are_in_time_order_and_keep_the_newest() {
        let (one, two) = (EventLog::default(), EventLog::default());
        one.push(event(1, "a"));
        one.push(event(5, "e"));
        two.push(event(3, "c"));
        two.push(event(4, "d"));
        let details: Vec<_> = merge([&one, &two], 3)
            .into_iter()
            .map(|e| e.detail)
            .collect();
        assert_eq!(details, ["c", "d", "e"]);
    }

    #[test]
    fn failures_are_flagged_by_kind() {
        assert!(Event::now(EventKind::BreakerOpened, "").failure);
        assert!(!Event::now(EventKind::BreakerClosed, "").failure);
        let event = Event::now(EventKind::EndpointEjected, "x")
            .in_cluster("api", Some("127.0.0.1:1".parse().expect("an address")));
        assert_eq!(event.endpoint.as_deref(), Some("127.0.0.1:1"));
    }
}
