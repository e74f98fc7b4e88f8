//! What a rule does and where: the new faults read from the config, drawn per attempt, and
//! done inside an attempt or on its answer's body, against a paused clock.

use blastwall_policy::latency::Latency;
use std::num::NonZeroU64;
use std::path::Path;
use std::time::Duration;

use blastwall_policy::retry::FailureKind;
use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Body;

use super::body::{CutOff, Throttled, Truncated};
use super::{RouteFaults, RuleEnd, attempt, takes_down};
use crate::body::full;
use crate::config::Config;
use crate::config::fault::{FaultAction, FaultEndpoint, FaultRule, FaultStage};
use crate::record::FaultKind;
use crate::upstream::{UpstreamBody, UpstreamError};

const ENDPOINTS: [&str; 3] = ["127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"];

fn config(faults: &str) -> Result<Config, crate::config::error::ConfigErrors> {
    let endpoints: Vec<String> = ENDPOINTS
        .iter()
        .map(|address| format!("{{ address = \"{address}\" }}"))
        .collect();
    let text = format!(
        "[[listener]]\nname = \"l\"\nlisten = \"127.0.0.1:0\"\n\n[[route]]\nname = \"shop\"\ncluster = \"api\"\n{faults}\n\n[cluster.api]\nendpoints = [{}]\n",
        endpoints.join(", ")
    );
    Config::parse(&text, Path::new("blastwall.toml"))
}

fn rules(faults: &str) -> Vec<FaultRule> {
    config(faults)
        .unwrap_or_else(|errors| panic!("a valid config: {errors}"))
        .routes[0]
        .faults
        .clone()
}

fn action(faults: &str) -> FaultAction {
    rules(faults)[0].action.clone()
}

/// The first error's `line:column: message`.
fn error(faults: &str) -> String {
    let errors = config(faults).expect_err("an invalid config");
    errors.0[0].summary()
}

fn address(index: usize) -> std::net::SocketAddr {
    ENDPOINTS[index].parse().expect("an address")
}

#[test]
fn each_new_fault_reads_as_its_action_done_per_request_by_default() {
    let reset = rules("[[route.fault]]\nreset = true");
    assert_eq!(
        (&reset[0].action, reset[0].at),
        (&FaultAction::Reset, FaultStage::Request)
    );
    assert_eq!(
        action("[[route.fault]]\nclose = \"before_head\""),
        FaultAction::CloseBeforeHead
    );
    assert_eq!(
        action("[[route.fault]]\nclose = \"after_head\""),
        FaultAction::CloseAfterHead { truncate_after: 0 }
    );
    assert_eq!(
        action("[[route.fault]]\nclose = \"after_head\"\ntruncate_after = \"1KiB\""),
        FaultAction::CloseAfterHead {
            truncate_after: 1024
        }
    );
    let rate = NonZeroU64::new(10 * 1024).expect("not zero");
    assert_eq!(
        action("[[route.fault]]\nthrottle = \"10KiB\""),
        FaultAction::Throttle(rate)
    );
    assert_eq!(
        action("[[route.fault]]\nthrottle = \"10KiB/s\""),
        FaultAction::Throttle(rate)
    );
    let at = rules("[[route.fault]]\ndelay = \"1s\"\nat = \"attempt\"");
    assert_eq!(at[0].at, FaultStage::Attempt);
}

#[test]
fn an_endpoint_down_names_one_of_the_clusters_endpoints_and_acts_per_attempt() {
    let rules = rules("[[route.fault]]\ndown = true\nendpoint = \"127.0.0.1:9002\"");
    let endpoint = FaultEndpoint {
        address: address(1),
        random: false,
    };
    assert_eq!(rules[0].action, FaultAction::EndpointDown);
    assert_eq!(rules[0].endpoint, Some(endpoint));
    assert_eq!(rules[0].at, FaultStage::Attempt);
}

#[test]
fn a_random_endpoint_down_is_one_of_the_clusters_drawn_from_the_seeded_rng() {
    let picked = |seed| {
        crate::rng::seed(seed);
        let rules = rules("[[route.fault]]\ndown = true\nendpoint = \"random\"");
        rules[0].endpoint.expect("an endpoint")
    };
    let first = picked(3);
    assert!(first.random);
    assert!(ENDPOINTS.contains(&first.address.to_string().as_str()));
    assert_eq!(picked(3), first, "the same seed picks the same endpoint");
    let seen: std::collections::HashSet<_> = (0..32).map(|seed| picked(seed).address).collect();
    assert!(seen.len() > 1, "it picks among them: {seen:?}");
}

#[test]
fn attempt_rules_are_not_drawn_for_the_request_and_request_rules_not_for_attempts() {
    let faults = RouteFaults::new(&rules(
        "[[route.fault]]\nreset = true\nat = \"attempt\"\n\n[[route.fault]]\ndelay = \"1s\"",
    ));
    let kind = faults
        .draw(&HeaderMap::new(), true)
        .map(|drawn| drawn.kind());
    assert_eq!(kind, Some(FaultKind::Delay));
    assert!(faults.has_attempt_rules());
    let drawn = faults.draw_attempt(&HeaderMap::new(), true, address(0));
    assert_eq!(drawn.map(|drawn| drawn.kind()), Some(FaultKind::Reset));

    let request_only = RouteFaults::new(&rules("[[route.fault]]\nreset = true"));
    assert!(!request_only.has_attempt_rules());
    let none = request_only.draw_attempt(&HeaderMap::new(), true, address(0));
    assert!(none.is_none());
}

#[test]
fn an_endpoint_down_applies_only_to_attempts_that_picked_its_endpoint() {
    let faults = RouteFaults::new(&rules(
        "[[route.fault]]\ndown = true\nendpoint = \"127.0.0.1:9001\"",
    ));
    let on = |index| {
        (faults.draw_attempt(&HeaderMap::new(), true, address(index))).map(|drawn| drawn.kind())
    };
    assert_eq!(on(0), Some(FaultKind::EndpointDown));
    assert_eq!((on(1), on(2)), (None, None));
}

#[test]
fn any_fault_limited_to_an_endpoint_is_done_per_attempt_on_that_endpoint_only() {
    let rules = rules("[[route.fault]]\ndelay = \"5s\"\nendpoint = \"127.0.0.1:9003\"");
    assert_eq!(
        rules[0].at,
        FaultStage::Attempt,
        "an endpoint makes it per attempt"
    );
    let faults = RouteFaults::new(&rules);
    let on = |index| {
        faults
            .draw_attempt(&HeaderMap::new(), true, address(index))
            .is_some()
    };
    assert_eq!((on(0), on(1), on(2)), (false, false, true));
}

#[test]
fn only_an_unconditional_endpoint_down_takes_the_endpoint_down_for_health_checks() {
    let down = |faults: &str| takes_down(&rules(faults), address(0));
    assert!(down(
        "[[route.fault]]\ndown = true\nendpoint = \"127.0.0.1:9001\""
    ));
    assert!(!down(
        "[[route.fault]]\ndown = true\nendpoint = \"127.0.0.1:9002\""
    ));
    assert!(!down(
        "[[route.fault]]\ndown = true\nendpoint = \"127.0.0.1:9001\"\npercent = 50"
    ));
    assert!(!down(
        "[[route.fault]]\nreset = true\nendpoint = \"127.0.0.1:9001\""
    ));
}

#[test]
fn attempt_rules_draw_their_percentage_for_each_attempt_from_the_seeded_rng() {
    let faults = RouteFaults::new(&rules(
        "[[route.fault]]\nreset = true\nat = \"attempt\"\npercent = 50",
    ));
    crate::rng::seed(5);
    let drawn = (0..10_000)
        .filter(|_| {
            let drawn = faults.draw_attempt(&HeaderMap::new(), true, address(0));
            drawn.is_some()
        })
        .count();
    assert!((4_500..5_500).contains(&drawn), "{drawn} of 10000");
}

#[test]
fn malformed_new_faults_are_refused_with_what_was_expected() {
    let cases = [
        (
            "[[route.fault]]\nreset = true\nclose = \"before_head\"",
            "not both `reset` and `close`",
        ),
        ("[[route.fault]]\nreset = false", "does nothing"),
        ("[[route.fault]]\nclose = \"sideways\"", "unknown variant"),
        ("[[route.fault]]\nthrottle = \"fast\"", "like \"10KiB\""),
        ("[[route.fault]]\nthrottle = \"0B\"", "above zero"),
        (
            "[[route.fault]]\nclose = \"before_head\"\ntruncate_after = \"1KiB\"",
            "after_head",
        ),
        ("[[route.fault]]\ndown = true", "needs `endpoint`"),
        (
            "[[route.fault]]\ndown = true\nendpoint = \"10.1.1.1:80\"",
            "not an endpoint of the route's cluster",
        ),
        (
            "[[route.fault]]\ndown = true\nendpoint = \"127.0.0.1:9001\"\nat = \"request\"",
            "acts on the attempts",
        ),
        (
            "[[route.fault]]\nreset = true\nendpoint = \"127.0.0.1:9001\"\nat = \"request\"",
            "acts on the attempts",
        ),
        (
            "[[route.fault]]\nreset = true\nat = \"later\"",
            "unknown variant",
        ),
    ];
    for (faults, expected) in cases {
        let message = error(faults);
        assert!(message.contains(expected), "{faults:?}: {message}");
        assert!(message.contains("blastwall.toml:"), "{message}");
    }
    let listed = error("[[route.fault]]\ndown = true\nendpoint = \"10.1.1.1:80\"");
    assert!(listed.contains("127.0.0.1:9003"), "{listed}");
}

/// An answer of `text`, as an endpoint's.
fn answer(text: &'static str) -> Response<UpstreamBody> {
    Response::new(UpstreamBody::Altered(full(Bytes::from_static(
        text.as_bytes(),
    ))))
}

#[tokio::test]
async fn a_truncated_body_hands_on_its_bytes_then_fails_and_never_says_it_ended() {
    let mut body = Truncated::new(answer("hello world").into_body(), 5);
    let frame = body.frame().await.expect("a frame").expect("data");
    assert_eq!(frame.into_data().expect("data"), "hello");
    assert!(!body.is_end_stream(), "part of the body was held back");
    let error = body.frame().await.expect("the end").expect_err("a failure");
    assert!(error.is::<CutOff>(), "{error}");
    assert_eq!(
        crate::upstream::body_failure(&*error),
        crate::outcome::BodyFailure::Broken
    );
}

#[tokio::test]
async fn a_body_cut_after_zero_bytes_fails_at_once_and_one_shorter_than_the_cut_ends_whole() {
    let mut none = Truncated::new(answer("hello").into_body(), 0);
    assert!(none.frame().await.expect("the end").is_err());
    let whole = Truncated::new(answer("hello").into_body(), 100);
    let collected = whole.collect().await.expect("whole").to_bytes();
    assert_eq!(collected, "hello");
}

#[tokio::test(start_paused = true)]
async fn a_throttled_body_takes_its_size_over_its_rate_and_hands_on_every_byte() {
    let text: &'static str = Box::leak("x".repeat(2048).into_boxed_str());
    let rate = NonZeroU64::new(1024).expect("not zero");
    let started = tokio::time::Instant::now();
    let body = Throttled::new(answer(text).into_body(), rate);
    let collected = body.collect().await.expect("whole").to_bytes();
    assert_eq!(collected.len(), 2048);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(1990), "{took:?}");
    assert!(took <= Duration::from_millis(2100), "{took:?}");
}

/// The end of a rule that does not end meanwhile.
fn no_end() -> RuleEnd {
    RuleEnd::kill_switch_of(std::sync::Arc::default())
}

async fn never_sent() -> Result<Response<UpstreamBody>, UpstreamError> {
    panic!("the send was replaced by the fault")
}

#[tokio::test(start_paused = true)]
async fn an_attempt_delay_ends_at_the_attempts_time_as_a_timeout_without_sending() {
    let started = tokio::time::Instant::now();
    let expires = started + Duration::from_millis(300);
    let delay = FaultAction::Delay(Latency::Fixed {
        value: Duration::from_secs(5),
    });
    let error = attempt(&delay, no_end(), expires, never_sent())
        .await
        .expect_err("timed out");
    assert_eq!(error.kind(), FailureKind::Timeout);
    assert_eq!(started.elapsed(), Duration::from_millis(300));
}

#[tokio::test(start_paused = true)]
async fn a_short_attempt_delay_is_waited_out_and_the_attempt_then_sent() {
    let started = tokio::time::Instant::now();
    let expires = started + Duration::from_secs(10);
    let delay = FaultAction::Delay(Latency::Fixed {
        value: Duration::from_millis(200),
    });
    let response = attempt(&delay, no_end(), expires, async { Ok(answer("ok")) })
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(started.elapsed(), Duration::from_millis(200));
}

#[tokio::test]
async fn replacing_faults_fail_an_attempt_as_the_real_failures_do_without_sending() {
    let expires = tokio::time::Instant::now() + Duration::from_secs(1);
    let kind = |fault: FaultAction| async move {
        (attempt(&fault, no_end(), expires, never_sent()).await)
            .expect_err("failed")
            .kind()
    };
    assert_eq!(kind(FaultAction::Reset).await, FailureKind::Reset);
    assert_eq!(kind(FaultAction::CloseBeforeHead).await, FailureKind::Reset);
    let down = kind(FaultAction::EndpointDown).await;
    assert_eq!(down, FailureKind::ConnectFailed);
    let refused = UpstreamError::injected_refused().to_string();
    assert!(refused.contains("injected by a fault rule"), "{refused}");
}

#[tokio::test]
async fn an_attempt_abort_is_the_endpoints_answer_with_that_status() {
    let rules =
        rules("[[route.fault]]\nabort = { status = 500, body = \"boom\" }\nat = \"attempt\"");
    let expires = tokio::time::Instant::now() + Duration::from_secs(1);
    let response = attempt(&rules[0].action, no_end(), expires, never_sent())
        .await
        .expect("an answer");
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = response
        .into_body()
        .collect()
        .await
        .expect("whole")
        .to_bytes();
    assert_eq!(body, "boom");
}

#[tokio::test]
async fn a_close_after_the_head_passes_the_real_answer_on_and_cuts_its_body() {
    let expires = tokio::time::Instant::now() + Duration::from_secs(1);
    let close = FaultAction::CloseAfterHead { truncate_after: 2 };
    let response = attempt(&close, no_end(), expires, async { Ok(answer("hello")) })
        .await
        .expect("the answer");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(!response.body().is_complete(), "judged when its body ends");
    let failed = response.into_body().collect().await;
    assert!(failed.is_err(), "the body failed");
}
