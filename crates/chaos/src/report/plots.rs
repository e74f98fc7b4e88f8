//! An experiment's three plots: latency percentiles, error rate and answers by source, each
//! over the seconds of its load, with the fault's window shaded and the proxy's events marked.
//!
//! The figures each point carries (`data-value`) are the timeline's as they are, but for the
//! error rate, which is in percent (`error_rate × 100`, clamped to 0–100) as its axis is. A
//! second with no latency (no request) has no point: its lines break there.

use super::model::{ExperimentReport, Second};
use super::svg::{Frame, Plot, nice_max};

/// The percentiles' series: name and color.
const PERCENTILES: [(&str, &str); 3] = [("p50", "#1f77b4"), ("p95", "#ff7f0e"), ("p99", "#d62728")];

/// The sources' series, stacked from the bottom in this order: name and color.
pub(super) const SOURCES: [(&str, &str); 6] = [
    ("upstream", "#4c78a8"),
    ("fallback static", "#72b7b2"),
    ("fallback cluster", "#54a24b"),
    ("fallback stale", "#b79a20"),
    ("shed", "#f58518"),
    ("failed", "#e45756"),
];

/// A second's answers by source, in [`SOURCES`]' order.
pub(super) fn by_source(second: &Second) -> [u64; 6] {
    let sources = second.sources;
    [
        sources.upstream,
        sources.fallback_static,
        sources.fallback_cluster,
        sources.fallback_stale,
        sources.shed,
        sources.failed,
    ]
}

/// The seconds an experiment's x axis covers: its load, its timeline and its fault, at least one.
fn seconds(experiment: &ExperimentReport) -> f64 {
    let timeline = experiment
        .timeline
        .iter()
        .map(|second| f64::from(second.t) + 1.0)
        .fold(0.0, f64::max);
    let fault = experiment
        .fault
        .map_or(0.0, |window| window.end_s.max(window.start_s));
    [experiment.load_s, timeline, fault]
        .into_iter()
        .filter(|value| value.is_finite())
        .fold(1.0, f64::max)
}

/// The three plots, as SVG text, in the order latency, errors, sources.
pub(super) fn plots(experiment: &ExperimentReport) -> [String; 3] {
    [latency(experiment), errors(experiment), sources(experiment)]
}

/// p50, p95 and p99 latency per second, ms.
fn latency(experiment: &ExperimentReport) -> String {
    let series = |pick: fn(&Second) -> Option<f64>| {
        experiment
            .timeline
            .iter()
            .map(|second| (second.t, pick(second).filter(|value| value.is_finite())))
            .collect::<Vec<_>>()
    };
    let lines = [
        series(|second| second.p50_ms),
        series(|second| second.p95_ms),
        series(|second| second.p99_ms),
    ];
    let top = lines
        .iter()
        .flatten()
        .filter_map(|(_, value)| *value)
        .fold(0.0, f64::max);
    let mut plot = Plot::new(
        &Frame {
            experiment: &experiment.name,
            kind: "latency",
            title: "Latency percentiles per second",
            seconds: seconds(experiment),
            y_max: nice_max(top, 1.0),
            y_unit: "latency, ms",
        },
        experiment.fault,
    );
    for ((name, color), points) in PERCENTILES.iter().zip(&lines) {
        plot.line(name, color, points);
    }
    plot.markers(&experiment.events);
    plot.legend(&PERCENTILES);
    plot.finish()
}

/// The share of requests that failed (5xx or no answer) per second, 0 to 100%.
fn errors(experiment: &ExperimentReport) -> String {
    let points = experiment
        .timeline
        .iter()
        .map(|second| {
            let percent = second.error_rate * 100.0;
            (
                second.t,
                percent.is_finite().then(|| percent.clamp(0.0, 100.0)),
            )
        })
        .collect::<Vec<_>>();
    let mut plot = Plot::new(
        &Frame {
            experiment: &experiment.name,
            kind: "errors",
            title: "Error rate per second (5xx or no answer)",
            seconds: seconds(experiment),
            y_max: 100.0,
            y_unit: "errors, % of requests",
        },
        experiment.fault,
    );
    plot.line("error rate", "#e45756", &points);
    plot.markers(&experiment.events);
    plot.legend(&[("error rate", "#e45756")]);
    plot.finish()
}

/// Answers per second, stacked by where they came from.
fn sources(experiment: &ExperimentReport) -> String {
    #[allow(clippy::cast_precision_loss)] // an axis's top needs no exactness
    let top = experiment
        .timeline
        .iter()
        .map(|second| {
            by_source(second)
                .iter()
                .fold(0u64, |sum, n| sum.saturating_add(*n))
        })
        .max()
        .unwrap_or(0) as f64;
    let mut plot = Plot::new(
        &Frame {
            experiment: &experiment.name,
            kind: "sources",
            title: "Answers per second, by source",
            seconds: seconds(experiment),
            y_max: nice_max(top, 1.0),
            y_unit: "answers per second",
        },
        experiment.fault,
    );
    for second in &experiment.timeline {
        let counts = by_source(second);
        let parts = SOURCES
            .iter()
            .zip(counts)
            .map(|(&(name, color), count)| (name, color, count))
            .collect::<Vec<_>>();
        plot.stack(second.t, &parts);
    }
    plot.markers(&experiment.events);
    plot.legend(&SOURCES);
    plot.finish()
}
