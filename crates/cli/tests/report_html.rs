//! The HTML report of `blastwall verify` in a real browser: headless Chromium (Debian's
//! `chromium`, driven by `playwright-core` from npm, see `dashboard/check_report.mjs`) opens a
//! sample report written by `blastwall_chaos::report::html`, with no script or console error
//! and no request but for the file; every plot and every point has a size, and what the browser
//! reads from the plots (points, event markers, the fault's band) is the report's. A screenshot
//! is saved in the target folder (`CARGO_TARGET_TMPDIR/report.png`).
//!
//! As for the dashboard's test, `.ci/run` sets `BLASTWALL_REQUIRE_BROWSER=1`, so there a
//! missing browser fails the test; elsewhere it is skipped, loudly.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use blastwall_chaos::report::{
    Check, ExperimentReport, FaultWindow, Outcome, ProxyEvent, Second, Sources, Totals,
    VerifyReport,
};

fn check(label: &str, passed: bool) -> Check {
    Check {
        label: label.into(),
        metric: "availability".into(),
        window: "fault".into(),
        scope: "all".into(),
        bound: "≥ 99%".into(),
        measured: Some(if passed { 0.997 } else { 0.93 }),
        measured_text: if passed { "99.7%" } else { "93%" }.into(),
        unit: "ratio".into(),
        passed,
        note: (!passed).then(|| "503 answered 41 times".into()),
    }
}

/// Thirty seconds of load with a fault from 10 s to 20 s that the design half absorbs.
fn experiment(name: &str, outcome: Outcome) -> ExperimentReport {
    let second = |t: u32| {
        let faulty = (10..20).contains(&t);
        let wobble = f64::from(t % 7);
        Second {
            t,
            requests: 200,
            error_rate: if faulty { 0.05 + wobble / 100.0 } else { 0.0 },
            p50_ms: Some(12.0 + wobble),
            p95_ms: if t == 15 {
                None
            } else {
                Some(if faulty { 310.0 } else { 45.0 } + wobble)
            },
            p99_ms: Some(if faulty { 640.0 } else { 80.0 } + 3.0 * wobble),
            sources: Sources {
                upstream: if faulty { 120 } else { 200 },
                fallback_static: if faulty { 40 } else { 0 },
                fallback_cluster: if faulty { 20 } else { 0 },
                fallback_stale: if faulty { 5 } else { 0 },
                shed: if faulty { 5 } else { 0 },
                failed: if faulty { 10 } else { 0 },
            },
        }
    };
    let event = |t: f64, kind: &str, failure: bool| ProxyEvent {
        t,
        kind: kind.into(),
        target: "payments/127.0.0.1:9001".into(),
        detail: "after 5 consecutive failures".into(),
        failure,
    };
    ExperimentReport {
        name: name.into(),
        failure: "payments answers 503 to half the requests".into(),
        required_behaviour:
            "checkout keeps answering </script><script>console.error('escaped?')</script>".into(),
        acceptable_degradation: "≤ 1% errors, p99 ≤ 800 ms".into(),
        design: "retry once on another endpoint, eject, static fallback".into(),
        outcome,
        error: None,
        load_s: 30.0,
        fault: Some(FaultWindow {
            start_s: 10.0,
            end_s: 20.0,
        }),
        steady_before: vec![check("availability before the fault", true)],
        expectations: vec![
            check("availability during the fault", outcome == Outcome::Passed),
            check("p99 during the fault", true),
        ],
        steady_after: vec![check("availability after the fault", true)],
        totals: Totals {
            requests: 6000,
            available: 5900,
            errors: 100,
            fallbacks: 650,
            attempts: 6400,
        },
        timeline: (0..30).map(second).collect(),
        events: vec![
            event(10.4, "endpoint_ejected", true),
            event(11.0, "breaker_opened", true),
            event(21.5, "breaker_closed", false),
        ],
    }
}

fn sample() -> VerifyReport {
    VerifyReport {
        spec: "shop".into(),
        started_unix_ms: 1_796_000_000_000,
        elapsed_s: 64.2,
        experiments: vec![
            experiment("payments <flaky> & \"slow\"", Outcome::Passed),
            experiment("search-down", Outcome::Failed),
        ],
    }
}

/// The figures a report's timeline should show: (experiment, plot) → series → t → value.
type Figures = BTreeMap<(String, String), BTreeMap<String, BTreeMap<u64, f64>>>;

#[allow(clippy::cast_precision_loss)]
fn expected(report: &VerifyReport) -> Figures {
    let mut figures = Figures::new();
    for experiment in &report.experiments {
        let mut put = |plot: &str, series: &str, t: u32, value: f64| {
            figures
                .entry((experiment.name.clone(), plot.to_owned()))
                .or_default()
                .entry(series.to_owned())
                .or_default()
                .insert(u64::from(t), value);
        };
        for second in &experiment.timeline {
            for (series, value) in [
                ("p50", second.p50_ms),
                ("p95", second.p95_ms),
                ("p99", second.p99_ms),
            ] {
                if let Some(value) = value {
                    put("latency", series, second.t, value);
                }
            }
            put("errors", "error rate", second.t, second.error_rate * 100.0);
            let sources = second.sources;
            for (series, count) in [
                ("upstream", sources.upstream),
                ("fallback static", sources.fallback_static),
                ("fallback cluster", sources.fallback_cluster),
                ("fallback stale", sources.fallback_stale),
                ("shed", sources.shed),
                ("failed", sources.failed),
            ] {
                if count > 0 {
                    put("sources", series, second.t, count as f64);
                }
            }
        }
    }
    figures
}

/// What the browser read from the plots, in the same shape.
fn read_back(found: &serde_json::Value) -> Figures {
    let mut figures = Figures::new();
    for plot in found["plots"].as_array().expect("plots") {
        let key = (
            plot["experiment"].as_str().expect("experiment").to_owned(),
            plot["plot"].as_str().expect("plot").to_owned(),
        );
        let series = figures.entry(key).or_default();
        for point in plot["points"].as_array().expect("points") {
            series
                .entry(point["series"].as_str().expect("series").to_owned())
                .or_default()
                .insert(
                    point["t"].as_u64().expect("t"),
                    point["value"].as_f64().expect("value"),
                );
        }
    }
    figures
}

#[test]
fn the_html_report_renders_in_a_browser_and_its_plots_show_the_timeline() {
    let Some(folder) = support::browser::browser_or_skip("report browser test") else {
        return;
    };
    let report = sample();
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let (page, screenshot) = (target.join("report.html"), target.join("report.png"));
    std::fs::write(&page, blastwall_chaos::report::html(&report)).expect("the page is written");
    let output = Command::new("node")
        .arg(folder.join("check_report.mjs"))
        .arg(&page)
        .arg(&screenshot)
        .current_dir(&folder)
        .stderr(Stdio::inherit())
        .output()
        .expect("node runs");
    assert!(
        output.status.success(),
        "the browser check failed (see its output above)"
    );
    let found: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("the script prints JSON");

    let rows = found["rows"].as_array().expect("rows");
    let names: Vec<_> = rows
        .iter()
        .map(|row| row["experiment"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(names, ["payments <flaky> & \"slow\"", "search-down"]);
    let cells = rows[0]["cells"].as_array().expect("cells");
    assert!(
        cells[2]
            .as_str()
            .is_some_and(|text| text.contains("</script><script>")),
        "the spec's text is shown as text: {cells:?}"
    );
    assert_eq!(found["plots"].as_array().map(Vec::len), Some(6));
    assert_eq!(read_back(&found), expected(&report));
    for plot in found["plots"].as_array().expect("plots") {
        let experiment = report
            .experiments
            .iter()
            .find(|experiment| plot["experiment"] == experiment.name.as_str())
            .expect("a plot of a known experiment");
        let events: Vec<_> = plot["events"]
            .as_array()
            .expect("events")
            .iter()
            .map(|event| {
                (
                    event["kind"].as_str().unwrap_or("").to_owned(),
                    event["t"].as_f64(),
                )
            })
            .collect();
        let known: Vec<_> = experiment
            .events
            .iter()
            .map(|event| (event.kind.clone(), Some(event.t)))
            .collect();
        assert_eq!(events, known, "the markers of {}", plot["plot"]);
        let window = experiment.fault.expect("the sample has a fault");
        assert_eq!(plot["fault"]["start"].as_f64(), Some(window.start_s));
        assert_eq!(plot["fault"]["end"].as_f64(), Some(window.end_s));
    }
    assert!(
        screenshot.exists(),
        "no screenshot at {}",
        screenshot.display()
    );
    println!(
        "report: {}\nscreenshot: {}",
        page.display(),
        screenshot.display()
    );
}
