//! Faults in progress end with their rule, against the real binary: an hour's delay made at
//! run time, on a route without a timeout, ends at the kill switch and its request is then
//! answered; a config rule's throttled body goes on at full speed after the kill switch.

mod support;

use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::Value;
use support::{Mock, Proxy, admin_addr, endpoint, eventually, get, route_config, send};

const WITHIN: Duration = Duration::from_secs(15);
const JSON: [(&str, &str); 1] = [("content-type", "application/json")];

/// The kill switch: `DELETE /admin/faults`.
async fn kill_switch(admin: &str) {
    let (status, _, body) = send(Method::DELETE, &format!("{admin}/admin/faults"), "", &JSON).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// How many requests the first fault listed in `/admin/faults` has faulted.
async fn faulted(admin: &str) -> u64 {
    let (_, _, body) = get(&format!("{admin}/admin/faults")).await;
    let faults: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    faults["faults"][0]["faulted"].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn an_hours_delay_in_progress_ends_at_the_kill_switch_and_its_request_is_answered() {
    let upstream = Mock::start("a", &[]);
    let config = route_config("", "", &[endpoint(&upstream, "")]);
    let proxy = Proxy::start(&config);
    let admin = format!("http://{}", admin_addr(&proxy));
    let rule = r#"{"route": "api", "delay": "1h", "ttl": "1m"}"#;
    let (status, _, body) = send(Method::POST, &format!("{admin}/admin/faults"), rule, &JSON).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let url = proxy.url("/");
    let delayed = tokio::spawn(async move { get(&url).await });
    assert!(
        eventually(WITHIN, || async { faulted(&admin).await == 1 }).await,
        "the request drew the delay"
    );
    kill_switch(&admin).await;

    let answered = tokio::time::timeout(WITHIN, delayed).await;
    let (status, _, _) = answered.expect("the delay ended").expect("answered");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(upstream.requests().await, 1, "sent once the delay ended");
}

#[tokio::test]
async fn a_config_rules_throttled_body_goes_on_at_full_speed_after_the_kill_switch() {
    let upstream = Mock::start("a", &[]);
    upstream.set_behaviour(r#"{"body_size": 1000}"#).await;
    let config = route_config(
        "[[route.fault]]\nthrottle = \"10B\"\n",
        "",
        &[endpoint(&upstream, "")],
    );
    let proxy = Proxy::start(&config);
    let admin = format!("http://{}", admin_addr(&proxy));

    // 1000 bytes at 10 B/s: 100 s, unless the rule ends.
    let url = proxy.url("/");
    let throttled = tokio::spawn(async move { get(&url).await });
    assert!(
        eventually(WITHIN, || async { faulted(&admin).await == 1 }).await,
        "the request drew the throttle"
    );
    kill_switch(&admin).await;

    let answered = tokio::time::timeout(WITHIN, throttled).await;
    let (status, _, body) = answered.expect("the throttle ended").expect("answered");
    assert_eq!((status, body.len()), (StatusCode::OK, 1000));
}
