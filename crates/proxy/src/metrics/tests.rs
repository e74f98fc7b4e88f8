use std::path::Path;
use std::time::Duration;

use http::StatusCode;

use super::text::{Exposition, Kind};
use super::*;
use crate::config::Config;
use crate::counters::histogram::{BUCKET_BOUNDS_NANOS, BUCKET_LABELS};
use crate::counters::{Histogram, StatusClasses, record_request, request_started};

fn runtime() -> Runtime {
    let text = r#"
[[listener]]
name = "public"
listen = "127.0.0.1:0"

[[route]]
name = "checkout"
cluster = "shop"

[cluster.shop]
endpoints = [{ address = "127.0.0.1:9001" }, { address = "127.0.0.1:9002" }]

[cluster.shop.circuit_breaker]
"#;
    Runtime::new(Config::parse(text, Path::new("blastwall.toml")).expect("a valid config"))
}

fn value_of<'a>(text: &'a str, series: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
}

#[test]
fn a_histogram_counts_each_observation_in_the_first_bucket_that_holds_it() {
    let histogram = Histogram::default();
    histogram.observe(Duration::from_micros(500));
    histogram.observe(Duration::from_millis(1));
    histogram.observe(Duration::from_millis(7));
    histogram.observe(Duration::from_secs(60));
    let read = histogram.snapshot();
    assert_eq!(
        read.cumulative[0], 2,
        "≤ 1ms: the bound itself is in the bucket"
    );
    assert_eq!(read.cumulative[1..3], [2, 2]);
    assert_eq!(read.cumulative[3], 3, "≤ 10ms");
    assert_eq!(read.cumulative[BUCKET_BOUNDS_NANOS.len() - 1], 3, "≤ 30s");
    assert_eq!(read.count, 4, "+Inf holds the minute too");
    assert_eq!(read.sum_nanos, 60_008_500_000);
}

#[test]
fn bucket_labels_say_the_bounds_in_seconds() {
    for (label, nanos) in BUCKET_LABELS.iter().zip(BUCKET_BOUNDS_NANOS) {
        let seconds: f64 = label.parse().expect("a number");
        assert!(
            (seconds * 1e9 - nanos as f64).abs() < 1.0,
            "{label} vs {nanos}ns"
        );
    }
}

#[test]
fn a_histogram_is_written_with_cumulative_buckets_inf_sum_and_count() {
    let histogram = Histogram::default();
    histogram.observe(Duration::from_millis(3));
    histogram.observe(Duration::from_millis(200));
    let mut out = Exposition::default();
    out.family("d_seconds", Kind::Histogram, "A duration.");
    out.histogram("d_seconds", &[("route", "r")], &histogram.snapshot());
    let text = out.finish();
    assert!(text.starts_with("# HELP d_seconds A duration.\n# TYPE d_seconds histogram\n"));
    assert_eq!(
        value_of(&text, r#"d_seconds_bucket{route="r",le="0.001"}"#),
        Some("0")
    );
    assert_eq!(
        value_of(&text, r#"d_seconds_bucket{route="r",le="0.005"}"#),
        Some("1")
    );
    assert_eq!(
        value_of(&text, r#"d_seconds_bucket{route="r",le="0.25"}"#),
        Some("2")
    );
    assert_eq!(
        value_of(&text, r#"d_seconds_bucket{route="r",le="30"}"#),
        Some("2")
    );
    assert_eq!(
        value_of(&text, r#"d_seconds_bucket{route="r",le="+Inf"}"#),
        Some("2")
    );
    assert_eq!(
        value_of(&text, r#"d_seconds_sum{route="r"}"#),
        Some("0.203")
    );
    assert_eq!(value_of(&text, r#"d_seconds_count{route="r"}"#), Some("2"));
    let buckets = text
        .lines()
        .filter(|line| line.starts_with("d_seconds_bucket"))
        .count();
    assert_eq!(buckets, BUCKET_LABELS.len() + 1);
}

#[test]
fn label_values_and_help_are_escaped() {
    let mut out = Exposition::default();
    out.family(
        "x_total",
        Kind::Counter,
        "Back\\slash and\nnewline, \"quotes\" kept.",
    );
    out.sample("x_total", &[("route", "a\"b\\c\nd")], 1u64);
    out.sample("x_total", &[], 2.5f64);
    let text = out.finish();
    assert_eq!(
        text,
        "# HELP x_total Back\\\\slash and\\nnewline, \"quotes\" kept.\n\
         # TYPE x_total counter\n\
         x_total{route=\"a\\\"b\\\\c\\nd\"} 1\n\
         x_total 2.5\n"
    );
}

#[test]
fn special_float_values_are_written_as_the_format_spells_them() {
    let mut out = Exposition::default();
    out.sample("g", &[], f64::INFINITY);
    out.sample("g", &[], f64::NEG_INFINITY);
    out.sample("g", &[], f64::NAN);
    assert_eq!(out.finish(), "g +Inf\ng -Inf\ng NaN\n");
}

#[test]
fn responses_are_counted_by_status_class() {
    let classes = StatusClasses::default();
    for status in [200, 204, 301, 404, 429, 502, 503, 999] {
        classes.record(StatusCode::from_u16(status).expect("a status"));
    }
    assert_eq!(classes.counts(), [0, 2, 1, 2, 3]);
}

#[test]
fn a_recorded_request_moves_its_route_families_and_leaves_flight() {
    let runtime = runtime();
    let snapshot = runtime.snapshot();
    let stats = &snapshot.routes[0].stats;
    let first = request_started(stats);
    let second = request_started(stats);
    let text = render(&runtime);
    let labels = r#"{route="checkout",cluster="shop"}"#;
    assert_eq!(
        value_of(&text, &format!("blastwall_requests_in_flight{labels}")),
        Some("2")
    );
    record_request(first, StatusCode::OK);
    drop(second); // a client that went away: no response, out of flight all the same
    let text = render(&runtime);
    assert_eq!(
        value_of(&text, &format!("blastwall_requests_in_flight{labels}")),
        Some("0")
    );
    assert_eq!(
        value_of(
            &text,
            r#"blastwall_responses_total{route="checkout",cluster="shop",class="2xx"}"#
        ),
        Some("1")
    );
    assert_eq!(
        value_of(
            &text,
            &format!("blastwall_request_duration_seconds_count{labels}")
        ),
        Some("1")
    );
}

#[test]
fn every_family_has_help_and_type_and_its_samples_together() {
    let text = render(&runtime());
    let mut seen = std::collections::HashSet::new();
    let mut current = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().expect("a name");
            assert!(seen.insert(name.to_owned()), "{name} appears twice");
            current = name.to_owned();
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            assert!(
                rest.starts_with(&format!("{current} ")),
                "TYPE after HELP: {line}"
            );
            continue;
        }
        let series = line.split(['{', ' ']).next().expect("a name");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| series.strip_suffix(suffix))
            .filter(|base| *base == current)
            .unwrap_or(series);
        assert_eq!(family, current, "a sample outside its family: {line}");
        assert!(family.starts_with("blastwall_"), "{line}");
    }
    assert!(text.contains("blastwall_cluster_breaker_state{cluster=\"shop\"} 0\n"));
    assert!(text.contains(
        "blastwall_endpoint_health{cluster=\"shop\",endpoint=\"127.0.0.1:9002\",state=\"unknown\"} "
    ));
    assert!(text.contains("blastwall_config_reloads_total{result=\"failure\"} 0\n"));
    let hash = &runtime().snapshot().config.source.hash;
    assert!(text.contains(&format!("blastwall_config_info{{hash=\"{hash}\"}} 1\n")));
}

mod cost {
    use std::fmt::Write;
    use std::path::Path;
    use std::time::{Duration, Instant};

    use http::StatusCode;

    use super::super::render;
    use crate::config::Config;
    use crate::counters::{record_request, request_started};
    use crate::reload::Runtime;

    const REQUESTS: u32 = 5_000_000;

    fn runtime_of(routes: usize, endpoints: usize) -> Runtime {
        let mut text = String::from("[[listener]]\nname = \"public\"\nlisten = \"127.0.0.1:0\"\n");
        for route in 0..routes {
            let _ = write!(
                text,
                "\n[[route]]\nname = \"r{route}\"\ncluster = \"c{route}\"\nmatch = {{ path_prefix = \"/r{route}/\" }}\n"
            );
        }
        for cluster in 0..routes {
            let list: Vec<String> = (0..endpoints)
                .map(|port| format!("{{ address = \"127.0.0.1:{}\" }}", 10_000 + port))
                .collect();
            let _ = write!(
                text,
                "\n[cluster.c{cluster}]\nendpoints = [{}]\n[cluster.c{cluster}.circuit_breaker]\n[cluster.c{cluster}.endpoint_circuit_breaker]\n",
                list.join(", ")
            );
        }
        Runtime::new(Config::parse(&text, Path::new("bench.toml")).expect("a valid config"))
    }

    /// Records `REQUESTS` requests against route 0, the way the pipeline does; ns per request.
    fn record(runtime: &Runtime) -> f64 {
        let snapshot = runtime.snapshot();
        let (route, cluster) = (&snapshot.routes[0].stats, snapshot.clusters[0].stats());
        let started = Instant::now();
        for index in 0..REQUESTS {
            let in_flight = request_started(route);
            cluster
                .attempt_duration
                .observe(Duration::from_micros(u64::from(index % 5_000)));
            record_request(in_flight, StatusCode::OK);
        }
        started.elapsed().as_nanos() as f64 / f64::from(REQUESTS)
    }

    /// What the metrics cost: the per-request recording on the hot path (in flight, status
    /// class, request and attempt duration histograms) in nanoseconds, on one thread and on two
    /// threads hitting the same route, and the time to render a scrape of a large config. A
    /// measurement, not a check: run it in release, `cargo test --release -p blastwall-proxy
    /// --lib metrics::tests::cost::what_the_metrics_cost -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement: run in release with --ignored --nocapture"]
    fn what_the_metrics_cost() {
        let small = runtime_of(1, 2);
        record(&small); // warm up
        println!("recording, 1 thread:  {:.1} ns/request", record(&small));
        let both = std::thread::scope(|scope| {
            let one = scope.spawn(|| record(&small));
            let two = record(&small);
            (one.join().expect("no panic"), two)
        });
        println!(
            "recording, 2 threads on one route: {:.1} / {:.1} ns/request",
            both.0, both.1
        );
        let large = runtime_of(50, 10);
        let started = Instant::now();
        let mut bytes = 0;
        for _ in 0..100 {
            bytes = render(&large).len();
        }
        println!(
            "render, 50 routes x 10 endpoints: {:.2} ms per scrape, {} KiB",
            started.elapsed().as_secs_f64() * 1e3 / 100.0,
            bytes / 1024
        );
    }
}
