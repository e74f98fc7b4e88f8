//! Faults in progress end with their rule: a delay (request or attempt) and a throttled
//! body stop at the rule's expiry, at the kill switch, at an operator's delete, on a paused
//! clock; a spent rule's last fault is done in full.

use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use blastwall_policy::latency::Latency;
use bytes::Bytes;
use http::{HeaderMap, Response};
use http_body_util::{BodyExt, Full};

use super::body::Throttled;
use super::table::{FaultTable, FaultTarget, NewRule};
use super::{Drawn, RouteFaults, RuleEnd, attempt, delay};
use crate::config::fault::{FaultAction, FaultRule, FaultStage, FaultWindow};
use crate::upstream::{UpstreamBody, UpstreamError};

const HOUR: Duration = Duration::from_secs(3600);

fn rule(action: FaultAction, at: FaultStage) -> FaultRule {
    FaultRule {
        header: None,
        per_million: 1_000_000,
        action,
        first: None,
        window: FaultWindow::default(),
        at,
        endpoint: None,
    }
}

fn an_hours_delay() -> FaultAction {
    FaultAction::Delay(Latency::Fixed { value: HOUR })
}

fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// Route `shop` of cluster `api`, with `config` rules, reading `table`.
fn shop(config: &[FaultRule], table: &Arc<FaultTable>) -> RouteFaults {
    RouteFaults::for_route(("shop", "api"), config, None, table.clone())
}

/// Puts `rule` in `table` for route `shop`, for `ttl`; its id.
fn insert(table: &FaultTable, rule: FaultRule, ttl: Duration) -> Arc<str> {
    let new = NewRule {
        target: FaultTarget::Route("shop".into()),
        rule,
        given: serde_json::Value::Null,
        after: Duration::ZERO,
        ttl,
    };
    let inserted = table.insert(new, 8, now(), SystemTime::now());
    inserted.expect("room in the table").id.clone()
}

/// What ends the request-level fault `faults` draws now.
fn drawn_end(faults: &RouteFaults) -> RuleEnd {
    let drawn = faults.draw_at(&HeaderMap::new(), true, now());
    faults.ending(&drawn.expect("a fault drawn"))
}

/// How long an hour's delay waits when `end` ends its rule, and `act` is done after
/// `after` (on the paused clock).
async fn delay_ended_by(end: RuleEnd, after: Duration, act: impl FnOnce()) -> Duration {
    let started = tokio::time::Instant::now();
    let waiting = tokio::spawn(delay(HOUR, started.into_std(), None, end.ended()));
    tokio::time::sleep(after).await;
    act();
    waiting.await.expect("the delay ends");
    started.elapsed()
}

#[tokio::test(start_paused = true)]
async fn a_request_delay_ends_at_its_runtime_rules_expiry() {
    let table = Arc::new(FaultTable::default());
    insert(
        &table,
        rule(an_hours_delay(), FaultStage::Request),
        Duration::from_secs(3),
    );
    let end = drawn_end(&shop(&[], &table));
    let waited = delay_ended_by(end, Duration::ZERO, || {}).await;
    assert_eq!(waited, Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn a_request_delay_ends_at_the_kill_switch() {
    let table = Arc::new(FaultTable::default());
    insert(&table, rule(an_hours_delay(), FaultStage::Request), HOUR);
    let end = drawn_end(&shop(&[], &table));
    let waited = delay_ended_by(end, Duration::from_secs(1), || {
        table.clear();
    })
    .await;
    assert_eq!(waited, Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn a_request_delay_ends_when_its_rule_is_deleted_and_not_when_another_is() {
    let table = Arc::new(FaultTable::default());
    let id = insert(&table, rule(an_hours_delay(), FaultStage::Request), HOUR);
    let other = insert(&table, rule(an_hours_delay(), FaultStage::Request), HOUR);
    let end = drawn_end(&shop(&[], &table));
    let waited = delay_ended_by(end, Duration::from_secs(2), || {
        assert!(table.delete(&other).is_some());
        // The other rule's removal woke the delay; it goes on waiting.
    });
    let deleting = async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(table.delete(&id).is_some());
    };
    let (waited, ()) = tokio::join!(waited, deleting);
    assert_eq!(waited, Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn a_config_rules_delay_ends_at_the_kill_switch() {
    let table = Arc::new(FaultTable::default());
    let faults = shop(&[rule(an_hours_delay(), FaultStage::Request)], &table);
    let end = drawn_end(&faults);
    let waited = delay_ended_by(end, Duration::from_secs(1), || {
        table.clear();
    })
    .await;
    assert_eq!(waited, Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn a_config_rules_delay_ends_at_its_until() {
    let mut until = rule(an_hours_delay(), FaultStage::Request);
    until.window.until = Some(SystemTime::now() + Duration::from_secs(4));
    let faults = shop(&[until], &Arc::new(FaultTable::default()));
    let waited = delay_ended_by(drawn_end(&faults), Duration::ZERO, || {}).await;
    // `until` is read on the wall clock, a moment after the paused clock's start.
    assert!(waited >= Duration::from_secs(4), "{waited:?}");
    assert!(waited < Duration::from_millis(4500), "{waited:?}");
}

#[tokio::test(start_paused = true)]
async fn a_spent_rules_last_delay_is_waited_out_in_full() {
    let table = Arc::new(FaultTable::default());
    let mut once = rule(
        FaultAction::Delay(Latency::Fixed {
            value: Duration::from_secs(5),
        }),
        FaultStage::Request,
    );
    once.first = NonZeroU64::new(1);
    insert(&table, once, HOUR);
    let faults = shop(&[], &table);
    let end = drawn_end(&faults);
    assert!(table.is_empty(), "the rule is spent and has left the table");
    let started = tokio::time::Instant::now();
    delay(
        Duration::from_secs(5),
        started.into_std(),
        None,
        end.ended(),
    )
    .await;
    assert_eq!(started.elapsed(), Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn an_attempt_delay_ends_at_the_kill_switch_and_the_attempt_is_then_sent() {
    let table = Arc::new(FaultTable::default());
    insert(&table, rule(an_hours_delay(), FaultStage::Attempt), HOUR);
    let faults = shop(&[], &table);
    let endpoint = "127.0.0.1:9".parse().expect("an address");
    let drawn = faults.draw_attempt_at(&HeaderMap::new(), true, endpoint, now());
    let drawn = drawn.expect("an attempt fault");
    let end = faults.ending(&drawn);
    let Drawn::Runtime(held) = drawn else {
        panic!("a runtime rule")
    };
    let started = tokio::time::Instant::now();
    let expires = started + 2 * HOUR;
    let sent = async { Ok::<_, UpstreamError>(answer(Bytes::from_static(b"ok"))) };
    let attempting = tokio::spawn(async move { attempt(held.action(), end, expires, sent).await });
    tokio::time::sleep(Duration::from_secs(1)).await;
    table.clear();
    let response = attempting.await.expect("ended").expect("sent");
    assert_eq!(response.status(), http::StatusCode::OK);
    assert_eq!(started.elapsed(), Duration::from_secs(1));
}

fn answer(body: Bytes) -> Response<UpstreamBody> {
    let body = Full::new(body).map_err(|never| match never {}).boxed();
    Response::new(UpstreamBody::Altered(body))
}

#[tokio::test(start_paused = true)]
async fn a_throttled_body_goes_on_at_full_speed_after_the_kill_switch() {
    let table = Arc::new(FaultTable::default());
    let ten = NonZeroU64::new(10).expect("not zero");
    insert(
        &table,
        rule(FaultAction::Throttle(ten), FaultStage::Request),
        HOUR,
    );
    let end = drawn_end(&shop(&[], &table));
    let started = tokio::time::Instant::now();
    let body = answer(Bytes::from(vec![b'x'; 100_000])).into_body();
    let body = Throttled::new(body, ten).until(end.ended());
    let reading = tokio::spawn(async move { body.collect().await.map(|body| body.to_bytes()) });
    tokio::time::sleep(Duration::from_secs(2)).await;
    table.clear();
    let read = reading.await.expect("read").expect("whole");
    assert_eq!(read.len(), 100_000, "every byte, the rest at once");
    assert_eq!(started.elapsed(), Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn a_throttled_body_goes_on_at_full_speed_after_its_rules_ttl() {
    let table = Arc::new(FaultTable::default());
    let ten = NonZeroU64::new(10).expect("not zero");
    let throttle = rule(FaultAction::Throttle(ten), FaultStage::Request);
    insert(&table, throttle, Duration::from_secs(3));
    let end = drawn_end(&shop(&[], &table));
    let started = tokio::time::Instant::now();
    let body = answer(Bytes::from(vec![b'x'; 100_000])).into_body();
    let body = Throttled::new(body, ten).until(end.ended());
    let read = body.collect().await.expect("whole").to_bytes();
    assert_eq!(read.len(), 100_000);
    assert_eq!(started.elapsed(), Duration::from_secs(3));
}
