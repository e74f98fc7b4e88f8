//! The table's guards against what the admin API should never hand it, and against a
//! reload racing a rule's making: a window past the clocks is refused (no panic, so no lock
//! poisoned), a poisoned lock does not stop the table, and a rule whose target a reload
//! removes is either swept by that reload or refused, whichever runs first.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use super::table::{FaultTable, FaultTarget, NewRule, Refused};
use crate::config::fault::{AbortConfig, FaultAction, FaultRule, FaultStage, FaultWindow};

const MINUTE: Duration = Duration::from_secs(60);

fn abort() -> FaultRule {
    FaultRule {
        header: None,
        per_million: 1_000_000,
        action: FaultAction::Abort(AbortConfig {
            status: http::StatusCode::SERVICE_UNAVAILABLE,
            body: bytes::Bytes::new(),
            retry_after: None,
        }),
        first: None,
        window: FaultWindow::default(),
        at: FaultStage::Request,
        endpoint: None,
    }
}

fn new_rule(name: &str, after: Duration) -> NewRule {
    NewRule {
        target: FaultTarget::Route(name.into()),
        rule: abort(),
        given: serde_json::Value::Null,
        after,
        ttl: MINUTE,
    }
}

#[test]
fn a_window_past_the_clocks_is_refused_and_the_table_goes_on() {
    let table = FaultTable::default();
    let (now, wall) = (Instant::now(), SystemTime::now());
    let far = Duration::from_secs(u64::MAX / 2);
    let refused = table.insert(new_rule("shop", far), 8, now, wall);
    assert_eq!(refused.err(), Some(Refused::OutOfRange));
    let refused = table.insert(new_rule("shop", Duration::MAX), 8, now, wall);
    assert_eq!(refused.err(), Some(Refused::OutOfRange));
    assert!(table.is_empty());
    let made = table.insert(new_rule("shop", Duration::ZERO), 8, now, wall);
    assert_eq!(made.expect("room").id.as_ref(), "f1");
}

#[test]
fn a_poisoned_lock_does_not_stop_the_table() {
    let table = FaultTable::default();
    let (now, wall) = (Instant::now(), SystemTime::now());
    let panicked = catch_unwind(AssertUnwindSafe(|| {
        table.reloaded_then(
            |_| true,
            || panic!("a publish that panics with the lock held"),
        )
    }));
    assert!(panicked.is_err());
    let made = table.insert(new_rule("shop", Duration::ZERO), 8, now, wall);
    assert!(made.is_ok(), "{made:?}");
    assert!(table.delete("f1").is_some());
    assert_eq!(table.sweep(now), 0);
    assert_eq!(table.clear(), 0);
}

#[test]
fn a_rule_whose_target_is_gone_when_the_table_takes_it_is_refused() {
    let table = FaultTable::default();
    let (now, wall) = (Instant::now(), SystemTime::now());
    let refused = table.insert_if(new_rule("gone", Duration::ZERO), 8, now, wall, |_| false);
    assert_eq!(refused.err(), Some(Refused::Gone));
    assert!(table.is_empty());
}

#[test]
fn a_rule_made_while_a_reload_removes_its_route_is_refused_not_left_behind() {
    // The interleaving of the race: the rule was checked against the old config, the reload
    // sweeps and publishes the new one, and the rule reaches the table meanwhile.
    let table = Arc::new(FaultTable::default());
    let (now, wall) = (Instant::now(), SystemTime::now());
    let in_force_has_b = Arc::new(AtomicBool::new(true));
    let maker = table.reloaded_then(
        |target| target != &FaultTarget::Route("b".into()),
        || {
            let (table, has_b) = (table.clone(), in_force_has_b.clone());
            let maker = std::thread::spawn(move || {
                table.insert_if(new_rule("b", Duration::ZERO), 8, now, wall, |_| {
                    has_b.load(Ordering::SeqCst)
                })
            });
            // NOTE: the maker waits on the lock the reload holds until the new config is
            // in force; it is published last.
            in_force_has_b.store(false, Ordering::SeqCst);
            maker
        },
    );
    let made = maker.join().expect("the maker does not panic");
    assert_eq!(made.err(), Some(Refused::Gone));
    assert!(table.is_empty());
}

#[test]
fn a_rule_made_just_before_a_reload_removes_its_route_is_swept_by_it() {
    let table = FaultTable::default();
    let (now, wall) = (Instant::now(), SystemTime::now());
    table
        .insert_if(new_rule("b", Duration::ZERO), 8, now, wall, |_| true)
        .expect("room");
    table.reloaded_then(|target| target != &FaultTarget::Route("b".into()), || ());
    assert!(table.is_empty());
    assert_eq!(table.stats.orphaned.get(), 1);
}
