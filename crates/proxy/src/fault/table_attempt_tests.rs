//! Runtime rules drawn in the attempts, on an injected clock: `at = "attempt"`, `endpoint`,
//! `down`; their window, `first` and the kill switch; the count that keeps an attempt
//! without such rules at one load; the endpoints they take down for the health checks.

use std::net::SocketAddr;
use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http::HeaderMap;

use super::RouteFaults;
use super::table::{FaultTable, FaultTarget, NewRule};
use crate::config::fault::{
    AbortConfig, FaultAction, FaultEndpoint, FaultRule, FaultStage, FaultWindow,
};
use crate::events::EventKind;
use crate::record::{FaultKind, FaultRuleId};

const MINUTE: Duration = Duration::from_secs(60);

fn address(last: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, last], 8080))
}

fn rule(action: FaultAction, at: FaultStage, endpoint: Option<SocketAddr>) -> FaultRule {
    FaultRule {
        header: None,
        per_million: 1_000_000,
        action,
        first: None,
        window: FaultWindow::default(),
        at,
        endpoint: endpoint.map(|address| FaultEndpoint {
            address,
            random: false,
        }),
    }
}

fn abort(status: u16) -> FaultAction {
    FaultAction::Abort(AbortConfig {
        status: http::StatusCode::from_u16(status).expect("a status"),
        body: bytes::Bytes::new(),
        retry_after: None,
    })
}

fn down(endpoint: SocketAddr) -> FaultRule {
    rule(
        FaultAction::EndpointDown,
        FaultStage::Attempt,
        Some(endpoint),
    )
}

fn new_rule(target: FaultTarget, rule: FaultRule, after: Duration) -> NewRule {
    NewRule {
        target,
        rule,
        given: serde_json::Value::Null,
        after,
        ttl: MINUTE,
    }
}

fn cluster() -> FaultTarget {
    FaultTarget::Cluster("api".into())
}

/// Route `shop` of cluster `api`, with `config` rules.
fn shop(config: &[FaultRule], table: &Arc<FaultTable>) -> RouteFaults {
    RouteFaults::for_route(("shop", "api"), config, None, table.clone())
}

/// What an attempt to `endpoint` draws at `now`: its kind and rule.
fn on(
    faults: &RouteFaults,
    endpoint: SocketAddr,
    now: Instant,
) -> Option<(FaultKind, FaultRuleId)> {
    let drawn = faults.draw_attempt_at(&HeaderMap::new(), false, endpoint, now)?;
    Some((drawn.kind(), drawn.rule_id()))
}

#[test]
fn an_attempt_level_runtime_rule_is_drawn_in_the_attempts_and_not_for_the_request() {
    let table = Arc::new(FaultTable::default());
    let (now, wall) = (Instant::now(), SystemTime::now());
    let faults = shop(&[], &table);
    assert!(!faults.has_attempt_rules());
    let request_level = rule(abort(503), FaultStage::Request, None);
    (table.insert(
        new_rule(cluster(), request_level, Duration::ZERO),
        8,
        now,
        wall,
    ))
    .expect("room");
    assert!(
        !faults.has_attempt_rules(),
        "a request-level runtime rule leaves the attempts at one load"
    );
    let attempt_level = rule(abort(500), FaultStage::Attempt, None);
    let made = (table.insert(
        new_rule(cluster(), attempt_level, Duration::ZERO),
        8,
        now,
        wall,
    ))
    .expect("room");
    assert!(faults.has_attempt_rules());
    let runtime = FaultRuleId::Runtime(made.number);
    assert_eq!(
        on(&faults, address(1), now),
        Some((FaultKind::Abort, runtime))
    );
    let request = faults
        .draw_at(&HeaderMap::new(), false, now)
        .expect("drawn");
    assert_eq!(
        request.rule_id(),
        FaultRuleId::Runtime(1),
        "the request draws the request-level rule only"
    );
}

#[test]
fn a_runtime_rule_with_an_endpoint_faults_only_the_attempts_that_pick_it() {
    let table = Arc::new(FaultTable::default());
    let (now, wall) = (Instant::now(), SystemTime::now());
    let faults = shop(&[], &table);
    let other = RouteFaults::for_route(("other", "db"), &[], None, table.clone());
    (table.insert(
        new_rule(cluster(), down(address(1)), Duration::ZERO),
        8,
        now,
        wall,
    ))
    .expect("room");
    let kind = |faults: &RouteFaults, endpoint| on(faults, endpoint, now).map(|(kind, _)| kind);
    assert_eq!(kind(&faults, address(1)), Some(FaultKind::EndpointDown));
    assert_eq!(kind(&faults, address(2)), None);
    assert_eq!(kind(&other, address(1)), None, "another cluster's route");
    assert!(faults.draw_at(&HeaderMap::new(), false, now).is_none());
}

#[test]
fn a_runtime_attempt_rule_comes_before_the_config_attempt_rules() {
    let table = Arc::new(FaultTable::default());
    let (now, wall) = (Instant::now(), SystemTime::now());
    let faults = shop(&[rule(abort(502), FaultStage::Attempt, None)], &table);
    let kind = || on(&faults, address(1), now);
    assert_eq!(kind(), Some((FaultKind::Abort, FaultRuleId::Config(1))));
    let made = (table.insert(
        new_rule(cluster(), down(address(1)), Duration::ZERO),
        8,
        now,
        wall,
    ))
    .expect("room");
    let runtime = FaultRuleId::Runtime(made.number);
    assert_eq!(kind(), Some((FaultKind::EndpointDown, runtime)));
    assert_eq!(
        on(&faults, address(2), now),
        Some((FaultKind::Abort, FaultRuleId::Config(1))),
        "the runtime rule's endpoint is another"
    );
}

#[test]
fn a_runtime_attempt_rule_keeps_its_after_and_ttl() {
    let table = Arc::new(FaultTable::default());
    let (now, wall) = (Instant::now(), SystemTime::now());
    let faults = shop(&[], &table);
    let after = Duration::from_secs(10);
    (table.insert(new_rule(cluster(), down(address(1)), after), 8, now, wall)).expect("room");
    let drawn = |at: Duration| on(&faults, address(1), now + at).is_some();
    assert!(!drawn(Duration::ZERO), "not started");
    assert!(drawn(after));
    assert!(drawn(after + MINUTE - Duration::from_millis(1)));
    assert!(!drawn(after + MINUTE), "expired, not swept yet");
    assert_eq!(table.sweep(now + after + MINUTE), 1);
    assert!(
        !faults.has_attempt_rules(),
        "swept, so the count is back to 0"
    );
}

#[test]
fn a_runtime_attempt_rule_faults_its_first_n_attempts_then_leaves() {
    let table = Arc::new(FaultTable::default());
    let (now, wall) = (Instant::now(), SystemTime::now());
    let faults = shop(&[], &table);
    let mut first = down(address(1));
    first.first = NonZeroU64::new(2);
    (table.insert(new_rule(cluster(), first, Duration::ZERO), 8, now, wall)).expect("room");
    let drawn: Vec<bool> = (0..4)
        .map(|_| on(&faults, address(1), now).is_some())
        .collect();
    assert_eq!(drawn, [true, true, false, false]);
    assert!(table.is_empty() && !faults.has_attempt_rules());
    let events: Vec<EventKind> = table.events.recent().iter().map(|e| e.kind).collect();
    assert_eq!(events, [EventKind::FaultCreated, EventKind::FaultSpent]);
}

#[test]
fn the_kill_switch_removes_the_runtime_attempt_rules_and_silences_the_configs() {
    let table = Arc::new(FaultTable::default());
    let (now, wall) = (Instant::now(), SystemTime::now());
    let faults = shop(&[rule(abort(502), FaultStage::Attempt, None)], &table);
    (table.insert(
        new_rule(cluster(), down(address(1)), Duration::ZERO),
        8,
        now,
        wall,
    ))
    .expect("room");
    assert_eq!(table.clear(), 1);
    assert!(!table.has_attempt_rules());
    assert_eq!(on(&faults, address(1), now), None);
    assert!(table.resume());
    assert_eq!(
        on(&faults, address(1), now),
        Some((FaultKind::Abort, FaultRuleId::Config(1)))
    );
}

#[test]
fn only_a_live_runtime_rule_down_for_every_attempt_takes_its_endpoint_down_for_health() {
    let table = Arc::new(FaultTable::default());
    let (now, wall) = (Instant::now(), SystemTime::now());
    let api = |target: &FaultTarget| *target == cluster();
    assert!(!table.takes_down(api, address(1), now), "an empty table");
    let after = Duration::from_secs(5);
    (table.insert(new_rule(cluster(), down(address(1)), after), 8, now, wall)).expect("room");
    assert!(!table.takes_down(api, address(1), now), "not started yet");
    let started = now + after;
    assert!(table.takes_down(api, address(1), started));
    assert!(
        !table.takes_down(api, address(2), started),
        "another endpoint"
    );
    assert!(
        !table.takes_down(|_| false, address(1), started),
        "another cluster"
    );
    assert!(
        !table.takes_down(api, address(1), started + MINUTE),
        "expired"
    );

    let partial = Arc::new(FaultTable::default());
    let mut half = down(address(1));
    half.per_million = 500_000;
    let mut first = down(address(1));
    first.first = NonZeroU64::new(3);
    for limited in [half, first] {
        let new = new_rule(cluster(), limited, Duration::ZERO);
        partial.insert(new, 8, now, wall).expect("room");
    }
    assert!(
        !partial.takes_down(api, address(1), now),
        "down for some attempts only: the checks are left alone"
    );
}
