use std::path::Path;
use std::time::Duration;

use http::{HeaderMap, HeaderValue, StatusCode};

use blastwall_policy::latency::Latency;

use super::{RouteFaults, abort_response, delay, draw_delay};
use crate::config::Config;
use crate::config::fault::{FaultAction, FaultRule};
use crate::record::FaultKind;

fn config(faults: &str) -> Result<Config, crate::config::error::ConfigErrors> {
    let text = format!(
        "[proxy]\ntrusted_clients = [\"10.0.0.0/8\"]\n\n[[listener]]\nname = \"l\"\nlisten = \"127.0.0.1:0\"\n\n[[route]]\nname = \"shop\"\ncluster = \"api\"\n{faults}\n\n[cluster.api]\nendpoints = [{{ address = \"127.0.0.1:9\" }}]\n"
    );
    Config::parse(&text, Path::new("blastwall.toml"))
}

fn rules(faults: &str) -> Vec<FaultRule> {
    config(faults).expect("a valid config").routes[0]
        .faults
        .clone()
}

/// The first error's `line:column: message`.
fn error(faults: &str) -> String {
    let errors = config(faults).expect_err("an invalid config");
    errors.0[0].summary()
}

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    pairs
        .iter()
        .map(|(name, value)| {
            let name = http::HeaderName::from_static(name);
            (name, HeaderValue::from_static(value))
        })
        .collect()
}

#[test]
fn a_route_without_rules_draws_no_fault() {
    let faults = RouteFaults::new(&rules(""));
    assert!(faults.draw(&headers(&[("x-test", "1")]), true).is_none());
}

#[test]
fn a_delay_rule_reads_as_a_duration_for_every_request_by_default() {
    let rules = rules("[[route.fault]]\ndelay = \"250ms\"");
    assert_eq!(rules.len(), 1);
    assert_eq!(
        rules[0].action,
        FaultAction::Delay(Latency::Fixed {
            value: Duration::from_millis(250)
        })
    );
    assert_eq!((rules[0].per_million, &rules[0].header), (1_000_000, &None));
    let faults = RouteFaults::new(&rules);
    let drawn = faults
        .draw(&HeaderMap::new(), true)
        .map(|drawn| drawn.kind());
    assert_eq!(drawn, Some(FaultKind::Delay));
}

#[test]
fn a_header_rule_applies_only_to_requests_carrying_that_header_and_value() {
    let faults = RouteFaults::new(&rules(
        "[[route.fault]]\nabort = { status = 503 }\nheader = \"x-chaos=on\"",
    ));
    assert!(faults.draw(&HeaderMap::new(), true).is_none());
    assert!(faults.draw(&headers(&[("x-chaos", "off")]), true).is_none());
    assert!(faults.draw(&headers(&[("x-chaos", "on")]), true).is_some());

    let any_value = RouteFaults::new(&rules(
        "[[route.fault]]\ndelay = \"1s\"\nheader = \"x-chaos\"",
    ));
    assert!(
        any_value
            .draw(&headers(&[("x-chaos", "whatever")]), true)
            .is_some()
    );
    assert!(
        any_value
            .draw(&headers(&[("x-other", "on")]), true)
            .is_none()
    );
}

#[test]
fn a_header_rule_ignores_the_header_from_a_client_not_trusted() {
    let faults = RouteFaults::new(&rules(
        "[[route.fault]]\nabort = { status = 500 }\nheader = \"x-chaos\"",
    ));
    assert!(faults.draw(&headers(&[("x-chaos", "1")]), false).is_none());
    let everyone = RouteFaults::new(&rules("[[route.fault]]\nabort = { status = 500 }"));
    assert!(everyone.draw(&HeaderMap::new(), false).is_some());
}

#[test]
fn a_header_rule_without_trusted_clients_is_an_error_that_says_what_to_add() {
    let text = "[[listener]]\nname = \"l\"\nlisten = \"127.0.0.1:0\"\n\n[[route]]\ncluster = \"api\"\n[[route.fault]]\ndelay = \"1s\"\nheader = \"x-chaos\"\n\n[cluster.api]\nendpoints = [{ address = \"127.0.0.1:9\" }]\n";
    let errors = Config::parse(text, Path::new("blastwall.toml")).expect_err("refused");
    let summary = errors.0[0].summary();
    assert!(summary.contains("trusted_clients"), "{summary}");
    assert!(summary.contains("blastwall.toml:9:10:"), "{summary}");
}

#[test]
fn the_first_rule_that_matches_and_wins_its_draw_applies() {
    let faults = RouteFaults::new(&rules(
        "[[route.fault]]\nabort = { status = 500 }\nheader = \"x-abort\"\n\n[[route.fault]]\ndelay = \"1s\"",
    ));
    let kind = |pairs| faults.draw(&headers(pairs), true).map(|drawn| drawn.kind());
    assert_eq!(kind(&[("x-abort", "1")]), Some(FaultKind::Abort));
    assert_eq!(kind(&[]), Some(FaultKind::Delay));
}

#[test]
fn a_percentage_faults_about_that_share_of_requests_drawn_from_the_seeded_rng() {
    let faults = RouteFaults::new(&rules("[[route.fault]]\ndelay = \"1s\"\npercent = 25"));
    let count = |seed| {
        crate::rng::seed(seed);
        (0..10_000)
            .filter(|_| faults.draw(&HeaderMap::new(), true).is_some())
            .count()
    };
    let first = count(17);
    assert!((2_200..2_800).contains(&first), "{first} of 10000");
    assert_eq!(count(17), first, "the same seed draws the same requests");
}

#[test]
fn zero_percent_never_faults_and_a_hundred_always_does() {
    let never = RouteFaults::new(&rules("[[route.fault]]\ndelay = \"1s\"\npercent = 0"));
    let always = RouteFaults::new(&rules("[[route.fault]]\ndelay = \"1s\"\npercent = 100"));
    for _ in 0..1_000 {
        assert!(never.draw(&HeaderMap::new(), true).is_none());
        assert!(always.draw(&HeaderMap::new(), true).is_some());
    }
}

#[test]
fn an_abort_answers_its_status_body_and_retry_after() {
    let rules =
        rules("[[route.fault]]\nabort = { status = 503, body = \"chaos\", retry_after = \"5s\" }");
    let FaultAction::Abort(abort) = &rules[0].action else {
        panic!("an abort: {:?}", rules[0].action);
    };
    let response = abort_response(abort);
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()[http::header::RETRY_AFTER], "5");
    assert_eq!(response.headers()[http::header::CONTENT_TYPE], "text/plain");
}

#[tokio::test(start_paused = true)]
async fn a_delay_waits_its_whole_time_without_a_deadline() {
    let start = tokio::time::Instant::now();
    delay(
        Duration::from_secs(3),
        start.into_std(),
        None,
        std::future::pending(),
    )
    .await;
    assert_eq!(start.elapsed(), Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn a_delay_ends_at_the_deadline_when_that_comes_first() {
    let start = tokio::time::Instant::now();
    let deadline = start.into_std() + Duration::from_millis(500);
    delay(
        Duration::from_secs(3),
        start.into_std(),
        Some(deadline),
        std::future::pending(),
    )
    .await;
    assert_eq!(start.elapsed(), Duration::from_millis(500));
}

#[test]
fn a_fault_with_neither_delay_nor_abort_is_refused_where_it_is_written() {
    let message = error("[[route.fault]]\npercent = 50");
    assert!(message.contains("blastwall.toml:"), "{message}");
    assert!(message.contains("needs `delay`"), "{message}");
}

#[test]
fn a_fault_with_both_delay_and_abort_is_refused() {
    let message = error("[[route.fault]]\ndelay = \"1s\"\nabort = { status = 500 }");
    assert!(message.contains(":13:9:"), "{message}");
    assert!(message.contains("not both"), "{message}");
}

#[test]
fn percentages_outside_0_to_100_are_refused_at_their_line_and_column() {
    let message = error("[[route.fault]]\ndelay = \"1s\"\npercent = 150");
    assert!(message.contains(":13:11:"), "{message}");
    assert!(message.contains("give 0 to 100"), "{message}");
}

#[test]
fn bad_statuses_durations_and_headers_are_refused_with_what_was_expected() {
    let status = error("[[route.fault]]\nabort = { status = 200 }");
    assert!(status.contains("give 400 to 599"), "{status}");
    let zero = error("[[route.fault]]\ndelay = \"0s\"");
    assert!(zero.contains("more than 0"), "{zero}");
    let header = error("[[route.fault]]\ndelay = \"1s\"\nheader = \"bad name\"");
    assert!(header.contains("not a valid header name"), "{header}");
    let retry = error("[[route.fault]]\nabort = { status = 503, retry_after = \"1500ms\" }");
    assert!(retry.contains("whole seconds"), "{retry}");
    let unknown = error("[[route.fault]]\ndelay = \"1s\"\nprecent = 5");
    assert!(unknown.contains("unknown field"), "{unknown}");
}

/// The distribution of the one rule `delay = {table}`.
fn delay_of(table: &str) -> Latency {
    let rules = rules(&format!("[[route.fault]]\ndelay = {table}"));
    match &rules[0].action {
        FaultAction::Delay(latency) => *latency,
        other => panic!("a delay: {other:?}"),
    }
}

const MS: Duration = Duration::from_millis(1);

#[test]
fn a_delay_table_names_its_distribution_by_its_keys() {
    assert_eq!(
        delay_of("{ p50 = \"50ms\", p99 = \"2s\" }"),
        Latency::LogNormal {
            p50: 50 * MS,
            p99: Duration::from_secs(2)
        }
    );
    assert_eq!(
        delay_of("{ min = \"10ms\", max = \"1s\" }"),
        Latency::Uniform {
            min: 10 * MS,
            max: Duration::from_secs(1)
        }
    );
    assert_eq!(
        delay_of("{ mean = \"100ms\", stddev = \"20ms\" }"),
        Latency::Normal {
            mean: 100 * MS,
            std_dev: 20 * MS
        }
    );
}

#[test]
fn a_delay_table_of_no_one_shape_is_refused_at_the_table_with_the_shapes_allowed() {
    let mixed = error("[[route.fault]]\ndelay = { p50 = \"1s\", max = \"2s\" }");
    assert!(mixed.contains(":12:9:"), "{mixed}");
    assert!(
        mixed.contains(
            "{ p50, p99 } (log-normal), { min, max } (uniform) or { mean, stddev } (normal)"
        ),
        "{mixed}"
    );
    let empty = error("[[route.fault]]\ndelay = {}");
    assert!(
        empty.contains(":12:9:") && empty.contains("one distribution"),
        "{empty}"
    );
    let half = error("[[route.fault]]\ndelay = { p50 = \"1s\" }");
    assert!(half.contains(":12:9:"), "{half}");
    assert!(half.contains("needs both p50 and p99"), "{half}");
}

#[test]
fn an_unknown_key_in_a_delay_table_is_named_with_the_keys_allowed() {
    let unknown = error("[[route.fault]]\ndelay = { p90 = \"1s\" }");
    assert!(unknown.contains(":12:11:"), "{unknown}");
    assert!(unknown.contains("unknown field `p90`"), "{unknown}");
    assert!(unknown.contains("p50"), "{unknown}");
    let number = error("[[route.fault]]\ndelay = 1.5");
    assert!(number.contains(":12:9:"), "{number}");
    assert!(
        number.contains("a duration like \"200ms\", or a distribution"),
        "{number}"
    );
}

#[test]
fn inconsistent_delay_values_are_refused_at_the_value_to_change() {
    let tail = error("[[route.fault]]\ndelay = { p50 = \"2s\", p99 = \"50ms\" }");
    assert!(tail.contains(":12:29:"), "{tail}");
    assert!(
        tail.contains("0 < p50 <= p99, got p50 2s and p99 50ms"),
        "{tail}"
    );
    let range = error("[[route.fault]]\ndelay = { min = \"1s\", max = \"10ms\" }");
    assert!(range.contains(":12:29:"), "{range}");
    assert!(
        range.contains("uniform min (1s) is more than max (10ms)"),
        "{range}"
    );
    let zero_median = error("[[route.fault]]\ndelay = { p50 = \"0s\", p99 = \"1s\" }");
    assert!(zero_median.contains(":12:17:"), "{zero_median}");
    let never = error("[[route.fault]]\ndelay = { min = \"0ms\", max = \"0ms\" }");
    assert!(never.contains("must be more than 0"), "{never}");
}

#[test]
fn a_bad_duration_in_a_delay_table_is_refused_at_itself_once() {
    let errors = config("[[route.fault]]\ndelay = { min = \"soon\", max = \"1s\" }")
        .expect_err("an invalid config");
    assert_eq!(errors.0.len(), 1, "{errors}");
    let message = errors.0[0].summary();
    assert!(message.contains(":12:17:"), "{message}");
    assert!(message.contains("invalid duration \"soon\""), "{message}");
    let fixed = config("[[route.fault]]\ndelay = \"soon\"").expect_err("an invalid config");
    assert_eq!(fixed.0.len(), 1, "{fixed}");
}

#[test]
fn a_distribution_delay_is_drawn_per_request_from_the_seeded_rng() {
    let uniform = delay_of("{ min = \"10ms\", max = \"20ms\" }");
    let draws = |seed| {
        crate::rng::seed(seed);
        (0..1_000).map(|_| draw_delay(&uniform)).collect::<Vec<_>>()
    };
    let first = draws(17);
    assert!(
        first
            .iter()
            .all(|delay| (10 * MS..=20 * MS).contains(delay))
    );
    assert!(
        first.iter().any(|delay| *delay != first[0]),
        "not one delay"
    );
    assert_eq!(draws(17), first, "the same seed draws the same delays");
}

#[test]
fn a_log_normal_delay_has_about_the_median_it_was_given() {
    let tail = delay_of("{ p50 = \"50ms\", p99 = \"2s\" }");
    crate::rng::seed(17);
    let mut delays: Vec<Duration> = (0..10_001).map(|_| draw_delay(&tail)).collect();
    delays.sort();
    let median = delays[5_000].as_secs_f64();
    assert!((0.045..0.055).contains(&median), "median {median}s");
    assert!(delays[9_999] > Duration::from_millis(500), "a slow tail");
}

#[test]
fn a_fixed_delay_draws_nothing_and_is_always_its_value() {
    let fixed = delay_of("\"200ms\"");
    assert!((0..100).all(|_| draw_delay(&fixed) == 200 * MS));
}

#[test]
fn first_and_a_wall_clock_window_read_from_the_file() {
    let rules = rules(
        "[[route.fault]]\ndelay = \"1s\"\nfirst = 3\nfrom = \"2026-12-07T21:00:00Z\"\nuntil = \"2026-12-07T21:30:00Z\"",
    );
    assert_eq!(rules[0].first.map(std::num::NonZeroU64::get), Some(3));
    let from = humantime::parse_rfc3339("2026-12-07T21:00:00Z").expect("a time");
    assert_eq!(rules[0].window.from, Some(from));
    assert_eq!(
        rules[0].window.until,
        Some(from + Duration::from_secs(30 * 60))
    );
}

#[test]
fn a_zero_first_a_bad_time_and_a_window_that_ends_before_it_starts_are_refused() {
    let zero = error("[[route.fault]]\ndelay = \"1s\"\nfirst = 0");
    assert!(zero.contains("fault.first is 0"), "{zero}");
    let time = error("[[route.fault]]\ndelay = \"1s\"\nfrom = \"tomorrow\"");
    assert!(time.contains("not an RFC 3339 time"), "{time}");
    assert!(time.contains(":13:8:"), "{time}");
    let backwards = error(
        "[[route.fault]]\ndelay = \"1s\"\nfrom = \"2026-12-07T21:00:00Z\"\nuntil = \"2026-12-07T20:00:00Z\"",
    );
    assert!(backwards.contains("until must be after"), "{backwards}");
}

#[test]
fn only_a_down_rule_for_every_attempt_takes_the_endpoint_down_for_the_health_checks() {
    let address: std::net::SocketAddr = "127.0.0.1:9".parse().expect("an address");
    let down = |keys: &str| {
        let rules = rules(&format!(
            "[[route.fault]]\ndown = true\nendpoint = \"127.0.0.1:9\"\n{keys}"
        ));
        super::takes_down(&rules, address)
    };
    assert!(down(""));
    assert!(!down("percent = 50"));
    assert!(!down("header = \"x-chaos\""));
    // A rule spent after its first requests spares the attempts after them.
    assert!(!down("first = 3"));
}
