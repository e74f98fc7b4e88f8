//! The runtime table and the rules' lifecycle, on an injected clock: targets, `first`,
//! windows, expiry and the sweeper, the cap, the kill switch, reloads.

use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http::HeaderMap;

use super::RouteFaults;
use super::table::{FaultTable, FaultTarget, NewRule, Refused, TableFull};
use crate::config::fault::{AbortConfig, FaultAction, FaultRule, FaultStage, FaultWindow};
use crate::events::EventKind;
use crate::record::FaultRuleId;

fn abort(status: u16) -> FaultRule {
    FaultRule {
        header: None,
        per_million: 1_000_000,
        action: FaultAction::Abort(AbortConfig {
            status: http::StatusCode::from_u16(status).expect("a status"),
            body: bytes::Bytes::new(),
            retry_after: None,
        }),
        first: None,
        window: FaultWindow::default(),
        at: FaultStage::Request,
        endpoint: None,
    }
}

fn new_rule(target: FaultTarget, rule: FaultRule, ttl: Duration) -> NewRule {
    NewRule {
        target,
        rule,
        given: serde_json::Value::Null,
        after: Duration::ZERO,
        ttl,
    }
}

fn route(name: &str) -> FaultTarget {
    FaultTarget::Route(name.into())
}

/// The faults of route `shop` (cluster `api`) with `config` rules, reading `table`.
fn shop(config: &[FaultRule], table: &Arc<FaultTable>) -> RouteFaults {
    RouteFaults::for_route(("shop", "api"), config, None, table.clone())
}

fn kinds(table: &FaultTable) -> Vec<EventKind> {
    table
        .events
        .recent()
        .iter()
        .map(|event| event.kind)
        .collect()
}

fn status_drawn(faults: &RouteFaults, now: Instant) -> Option<u16> {
    match faults.draw_at(&HeaderMap::new(), false, now).as_deref() {
        Some(FaultAction::Abort(abort)) => Some(abort.status.as_u16()),
        Some(other) => panic!("an abort: {other:?}"),
        None => None,
    }
}

const MINUTE: Duration = Duration::from_secs(60);

#[test]
fn an_empty_table_and_no_config_rules_draw_nothing() {
    let table = Arc::new(FaultTable::default());
    let faults = shop(&[], &table);
    assert!(table.is_empty());
    assert!(faults.draw(&HeaderMap::new(), true).is_none());
}

#[test]
fn a_runtime_rule_faults_its_route_and_its_clusters_routes_only() {
    let table = Arc::new(FaultTable::default());
    let (now, wall) = (Instant::now(), SystemTime::now());
    let shop_faults = shop(&[], &table);
    let other = RouteFaults::for_route(("other", "db"), &[], None, table.clone());
    let sibling = RouteFaults::for_route(("sibling", "api"), &[], None, table.clone());
    table
        .insert(new_rule(route("shop"), abort(503), MINUTE), 8, now, wall)
        .expect("room");
    assert_eq!(status_drawn(&shop_faults, now), Some(503));
    assert_eq!(status_drawn(&other, now), None);
    assert_eq!(status_drawn(&sibling, now), None);
    let cluster = FaultTarget::Cluster("api".into());
    table
        .insert(new_rule(cluster, abort(500), MINUTE), 8, now, wall)
        .expect("room");
    assert_eq!(status_drawn(&sibling, now), Some(500));
    assert_eq!(status_drawn(&other, now), None);
}

#[test]
fn a_runtime_rule_comes_before_the_config_rules_and_names_itself() {
    let table = Arc::new(FaultTable::default());
    let (now, wall) = (Instant::now(), SystemTime::now());
    let faults = shop(&[abort(500)], &table);
    let drawn = faults
        .draw_at(&HeaderMap::new(), false, now)
        .expect("a fault");
    assert_eq!(drawn.rule_id(), FaultRuleId::Config(1));
    let rule = table
        .insert(new_rule(route("shop"), abort(503), MINUTE), 8, now, wall)
        .expect("room");
    let drawn = faults
        .draw_at(&HeaderMap::new(), false, now)
        .expect("a fault");
    assert_eq!(drawn.rule_id(), FaultRuleId::Runtime(rule.number));
    assert_eq!(&*rule.id, "f1");
}

#[test]
fn an_expired_rule_stops_applying_at_once_and_the_sweep_removes_it_with_an_event() {
    let table = Arc::new(FaultTable::default());
    let (now, wall) = (Instant::now(), SystemTime::now());
    let faults = shop(&[], &table);
    table
        .insert(new_rule(route("shop"), abort(503), MINUTE), 8, now, wall)
        .expect("room");
    assert_eq!(
        status_drawn(&faults, now + MINUTE - Duration::from_millis(1)),
        Some(503)
    );
    assert_eq!(
        status_drawn(&faults, now + MINUTE),
        None,
        "not swept yet, already off"
    );
    assert_eq!(table.sweep(now + MINUTE - Duration::from_millis(1)), 0);
    assert_eq!(table.sweep(now + MINUTE), 1);
    assert!(table.is_empty());
    assert_eq!(
        kinds(&table),
        [EventKind::FaultCreated, EventKind::FaultExpired]
    );
    assert_eq!(table.stats.expired.get(), 1);
}

#[test]
fn a_rule_with_after_waits_before_it_applies_and_its_ttl_counts_from_then() {
    let table = Arc::new(FaultTable::default());
    let (now, wall) = (Instant::now(), SystemTime::now());
    let faults = shop(&[], &table);
    let mut new = new_rule(route("shop"), abort(503), MINUTE);
    new.after = Duration::from_secs(10);
    let rule = table.insert(new, 8, now, wall).expect("room");
    assert_eq!(status_drawn(&faults, now), None);
    assert_eq!(
        status_drawn(&faults, now + Duration::from_secs(10)),
        Some(503)
    );
    assert_eq!(
        status_drawn(&faults, now + Duration::from_secs(69)),
        Some(503)
    );
    assert_eq!(status_drawn(&faults, now + Duration::from_secs(70)), None);
    assert_eq!(rule.expires_at, wall + Duration::from_secs(70));
}

#[test]
fn a_runtime_rule_faults_its_first_n_requests_then_leaves_with_an_event() {
    let table = Arc::new(FaultTable::default());
    let (now, wall) = (Instant::now(), SystemTime::now());
    let faults = shop(&[], &table);
    let mut rule = abort(503);
    rule.first = NonZeroU64::new(3);
    table
        .insert(new_rule(route("shop"), rule, MINUTE), 8, now, wall)
        .expect("room");
    let drawn: Vec<_> = (0..5).map(|_| status_drawn(&faults, now)).collect();
    assert_eq!(drawn, [Some(503), Some(503), Some(503), None, None]);
    assert!(table.is_empty(), "spent, so removed");
    assert_eq!(
        kinds(&table),
        [EventKind::FaultCreated, EventKind::FaultSpent]
    );
    assert_eq!(table.stats.spent.get(), 1);
}

#[test]
fn a_config_rule_with_first_is_spent_and_stays_spent_across_a_reload_that_keeps_it() {
    let table = Arc::new(FaultTable::default());
    let now = Instant::now();
    let mut rule = abort(500);
    rule.first = NonZeroU64::new(2);
    let before = shop(std::slice::from_ref(&rule), &table);
    assert_eq!(status_drawn(&before, now), Some(500));
    let after = RouteFaults::for_route(
        ("shop", "api"),
        std::slice::from_ref(&rule),
        Some(&before),
        table.clone(),
    );
    assert_eq!(status_drawn(&after, now), Some(500));
    assert_eq!(status_drawn(&after, now), None, "two faulted in all");
    assert_eq!(after.configured().next().expect("a rule").faulted(), 2);
}

#[test]
fn a_config_rule_applies_only_inside_its_wall_clock_window() {
    let table = Arc::new(FaultTable::default());
    let wall = SystemTime::now();
    let mut rule = abort(500);
    rule.window = FaultWindow {
        from: Some(wall + MINUTE),
        until: Some(wall + 2 * MINUTE),
    };
    let faults = shop(&[rule], &table);
    // `for_route` read the clocks a moment after `wall`: allow that moment.
    let now = Instant::now();
    let slack = Duration::from_millis(500);
    assert_eq!(status_drawn(&faults, now), None);
    assert_eq!(status_drawn(&faults, now + MINUTE + slack), Some(500));
    assert_eq!(status_drawn(&faults, now + 2 * MINUTE + slack), None);
}

#[test]
fn past_the_cap_the_table_refuses_and_says_when_the_next_rule_expires() {
    let table = FaultTable::default();
    let (now, wall) = (Instant::now(), SystemTime::now());
    for ttl in [MINUTE, 2 * MINUTE] {
        table
            .insert(new_rule(route("shop"), abort(503), ttl), 2, now, wall)
            .expect("room");
    }
    let refused = table.insert(new_rule(route("shop"), abort(503), MINUTE), 2, now, wall);
    assert_eq!(
        refused.err(),
        Some(Refused::Full(TableFull {
            cap: 2,
            next_expiry: Some(MINUTE)
        }))
    );
    // Once the first has expired, its place is free (swept on the way in).
    let later = now + MINUTE;
    let made = table.insert(new_rule(route("shop"), abort(503), MINUTE), 2, later, wall);
    assert!(made.is_ok());
    assert_eq!(table.len(), 2);
}

#[test]
fn the_kill_switch_removes_runtime_rules_and_silences_config_rules_until_resumed() {
    let table = Arc::new(FaultTable::default());
    let (now, wall) = (Instant::now(), SystemTime::now());
    let faults = shop(&[abort(500)], &table);
    table
        .insert(new_rule(route("shop"), abort(503), MINUTE), 8, now, wall)
        .expect("room");
    assert_eq!(table.clear(), 1);
    assert!(table.is_empty() && table.silenced());
    assert_eq!(status_drawn(&faults, now), None);
    assert!(table.resume());
    assert_eq!(status_drawn(&faults, now), Some(500));
    assert!(!table.resume(), "already resumed");
    assert_eq!(
        kinds(&table),
        [
            EventKind::FaultCreated,
            EventKind::FaultsCleared,
            EventKind::FaultsResumed
        ]
    );
}

#[test]
fn a_reload_ends_the_silence_and_removes_the_rules_whose_target_went_away() {
    let table = FaultTable::default();
    let (now, wall) = (Instant::now(), SystemTime::now());
    for target in [
        route("shop"),
        route("gone"),
        FaultTarget::Cluster("api".into()),
    ] {
        table
            .insert(new_rule(target, abort(503), MINUTE), 8, now, wall)
            .expect("room");
    }
    table.clear();
    for target in [route("shop"), route("gone")] {
        table
            .insert(new_rule(target, abort(503), MINUTE), 8, now, wall)
            .expect("room");
    }
    table.reloaded(|target| target != &route("gone"));
    assert!(!table.silenced());
    let left: Vec<_> = table
        .rules()
        .iter()
        .map(|rule| rule.id.to_string())
        .collect();
    assert_eq!(left, ["f4"]);
    assert_eq!(table.stats.orphaned.get(), 1);
    assert!(kinds(&table).contains(&EventKind::FaultOrphaned));
}

#[test]
fn deleting_a_rule_removes_it_with_an_event_and_an_unknown_id_is_none() {
    let table = FaultTable::default();
    let (now, wall) = (Instant::now(), SystemTime::now());
    let rule = table
        .insert(new_rule(route("shop"), abort(503), MINUTE), 8, now, wall)
        .expect("room");
    assert!(table.delete("f99").is_none());
    assert!(table.delete(&rule.id).is_some());
    assert!(table.get(&rule.id).is_none());
    assert_eq!(
        kinds(&table),
        [EventKind::FaultCreated, EventKind::FaultDeleted]
    );
}

#[tokio::test(start_paused = true)]
async fn the_sweeper_removes_an_expired_rule_within_its_period() {
    let table = Arc::new(FaultTable::default());
    let now = tokio::time::Instant::now().into_std();
    let ttl = Duration::from_secs(5);
    table
        .insert(
            new_rule(route("shop"), abort(503), ttl),
            8,
            now,
            SystemTime::now(),
        )
        .expect("room");
    let (stop, stopped) = tokio::sync::watch::channel(());
    let period = Duration::from_secs(1);
    let sweeper = tokio::spawn(super::table::sweep_every(
        table.clone(),
        period,
        stopped,
        || (),
    ));
    tokio::time::sleep(ttl - period).await;
    assert_eq!(table.len(), 1, "not expired yet");
    tokio::time::sleep(2 * period).await;
    assert!(table.is_empty(), "swept within a period of its expiry");
    assert_eq!(
        kinds(&table),
        [EventKind::FaultCreated, EventKind::FaultExpired]
    );
    drop(stop);
    sweeper
        .await
        .expect("the sweeper stops when its stop sender goes");
}

#[tokio::test(start_paused = true)]
async fn the_sweeper_calls_back_while_rules_are_in_force_and_once_after_the_last_goes() {
    let table = Arc::new(FaultTable::default());
    let now = tokio::time::Instant::now().into_std();
    let ttl = Duration::from_secs(3);
    table
        .insert(
            new_rule(route("shop"), abort(503), ttl),
            8,
            now,
            SystemTime::now(),
        )
        .expect("room");
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = calls.clone();
    let after = move || {
        counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    };
    let (stop, stopped) = tokio::sync::watch::channel(());
    let period = Duration::from_secs(1);
    let sweeper = tokio::spawn(super::table::sweep_every(
        table.clone(),
        period,
        stopped,
        after,
    ));
    tokio::time::sleep(ttl + 5 * period).await;
    assert!(table.is_empty());
    let called = calls.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        called, 4,
        "at 0s, 1s, 2s with the rule in force, at 3s as it is swept, then no more"
    );
    drop(stop);
    sweeper.await.expect("stops");
}
