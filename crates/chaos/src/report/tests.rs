//! The formats read against each other: JUnit parsed back and counted, the HTML's plots parsed
//! back and compared with the timeline the JSON holds, and hostile or degenerate reports.

use std::collections::BTreeMap;

use super::model::{
    Check, ExperimentReport, FaultWindow, Outcome, ProxyEvent, Second, Sources, Totals,
    VerifyReport,
};
use super::plots::{SOURCES, by_source};

fn check(label: &str, passed: bool) -> Check {
    Check {
        label: label.into(),
        metric: "availability".into(),
        window: "fault".into(),
        scope: "all".into(),
        bound: "≥ 99%".into(),
        measured: Some(if passed { 0.995 } else { 0.9 }),
        measured_text: if passed { "99.5%" } else { "90%" }.into(),
        unit: "ratio".into(),
        passed,
        note: (!passed).then(|| "504 answered 12 times".into()),
    }
}

fn second(t: u32) -> Second {
    let faulty = (3..6).contains(&t);
    Second {
        t,
        requests: 100,
        error_rate: if faulty { 0.25 } else { 0.0 },
        p50_ms: Some(10.0 + f64::from(t)),
        p95_ms: if t == 4 { None } else { Some(40.5) },
        p99_ms: Some(if faulty { 900.0 } else { 60.0 }),
        sources: Sources {
            upstream: if faulty { 50 } else { 100 },
            fallback_static: if faulty { 20 } else { 0 },
            fallback_stale: if faulty { 5 } else { 0 },
            failed: if faulty { 25 } else { 0 },
            ..Sources::default()
        },
    }
}

pub(super) fn experiment(name: &str, outcome: Outcome) -> ExperimentReport {
    ExperimentReport {
        name: name.into(),
        failure: "the payments upstream times out".into(),
        required_behaviour: "checkout answers".into(),
        acceptable_degradation: "p99 under 1 s, ≤ 1% errors".into(),
        design: "timeout 300ms, retry once, static fallback".into(),
        outcome,
        error: (outcome == Outcome::CouldNotRun).then(|| "the fault could not be injected".into()),
        load_s: 8.0,
        fault: Some(FaultWindow {
            start_s: 3.0,
            end_s: 6.0,
        }),
        steady_before: vec![check("availability before", true)],
        expectations: vec![
            check("availability during the fault", outcome == Outcome::Passed),
            check("p99 during the fault", true),
        ],
        steady_after: vec![check("availability after", true)],
        totals: Totals {
            requests: 800,
            available: 725,
            errors: 75,
            fallbacks: 75,
            attempts: 900,
        },
        timeline: (0..8).map(second).collect(),
        events: vec![
            ProxyEvent {
                t: 3.2,
                kind: "breaker_opened".into(),
                target: "payments".into(),
                detail: "5 consecutive failures".into(),
                failure: true,
            },
            ProxyEvent {
                t: 6.5,
                kind: "breaker_closed".into(),
                target: "payments".into(),
                detail: String::new(),
                failure: false,
            },
        ],
    }
}

pub(super) fn sample() -> VerifyReport {
    VerifyReport {
        spec: "shop".into(),
        started_unix_ms: 1_796_000_000_000,
        elapsed_s: 31.5,
        experiments: vec![
            experiment("payments-timeout", Outcome::Passed),
            experiment("search-down", Outcome::Failed),
            experiment("db-gone", Outcome::CouldNotRun),
        ],
    }
}

/// Every plot of a page: (experiment, kind) → its points, series → t → value, parsed as XML.
type Plots = BTreeMap<(String, String), BTreeMap<String, BTreeMap<u32, f64>>>;

fn plots_of(html: &str) -> Plots {
    let mut plots = Plots::new();
    for (start, _) in html.match_indices("<svg ") {
        let end = start + html[start..].find("</svg>").expect("every svg is closed") + 6;
        let document = roxmltree::Document::parse(&html[start..end])
            .unwrap_or_else(|error| panic!("a plot is not well-formed XML: {error}"));
        let root = document.root_element();
        let key = (
            root.attribute("data-experiment")
                .expect("data-experiment")
                .to_owned(),
            root.attribute("data-plot").expect("data-plot").to_owned(),
        );
        let mut series: BTreeMap<String, BTreeMap<u32, f64>> = BTreeMap::new();
        for node in root
            .descendants()
            .filter(|node| node.has_attribute("data-series"))
        {
            let value = node.attribute("data-value").expect("a value").parse();
            let t = node.attribute("data-t").expect("a t").parse();
            series
                .entry(node.attribute("data-series").expect("a series").to_owned())
                .or_default()
                .insert(
                    t.expect("t is a whole second"),
                    value.expect("value is a number"),
                );
        }
        assert!(plots.insert(key, series).is_none(), "a plot appears twice");
    }
    plots
}

#[test]
fn the_html_has_one_plot_of_each_kind_per_experiment() {
    let report = sample();
    let plots = plots_of(&super::html(&report));
    assert_eq!(plots.len(), 9);
    for experiment in &report.experiments {
        for kind in ["latency", "errors", "sources"] {
            assert!(
                plots.contains_key(&(experiment.name.clone(), kind.into())),
                "{kind}"
            );
        }
    }
}

#[test]
fn the_html_plots_hold_the_figures_the_json_holds() {
    let html = super::html(&sample());
    let report: VerifyReport =
        serde_json::from_str(&super::json(&sample())).expect("the JSON reads back");
    let plots = plots_of(&html);
    for experiment in &report.experiments {
        let plot = |kind: &str| &plots[&(experiment.name.clone(), kind.to_owned())];
        let latency = plot("latency");
        let errors = plot("errors");
        let sources = plot("sources");
        for second in &experiment.timeline {
            for (series, value) in [
                ("p50", second.p50_ms),
                ("p95", second.p95_ms),
                ("p99", second.p99_ms),
            ] {
                assert_eq!(
                    latency[series].get(&second.t).copied(),
                    value,
                    "{series} at {}",
                    second.t
                );
            }
            assert_eq!(errors["error rate"][&second.t], second.error_rate * 100.0);
            for ((series, _), count) in SOURCES.iter().zip(by_source(second)) {
                #[allow(clippy::cast_precision_loss)]
                let expected = (count > 0).then_some(count as f64);
                let drawn = sources
                    .get(*series)
                    .and_then(|points| points.get(&second.t))
                    .copied();
                assert_eq!(drawn, expected, "{series} at {}", second.t);
            }
        }
    }
}

#[test]
fn junit_parses_and_counts_one_case_per_check_plus_one_per_experiment_that_could_not_run() {
    let xml = super::junit(&sample());
    let document = roxmltree::Document::parse(&xml).expect("the JUnit report is XML");
    let root = document.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    assert_eq!(root.attribute("tests"), Some("13"));
    assert_eq!(root.attribute("failures"), Some("2"));
    assert_eq!(root.attribute("errors"), Some("1"));
    let suites: Vec<_> = root
        .children()
        .filter(|node| node.has_tag_name("testsuite"))
        .collect();
    assert_eq!(suites.len(), 3);
    for suite in suites {
        let cases: Vec<_> = suite
            .children()
            .filter(|node| node.has_tag_name("testcase"))
            .collect();
        let count = |tag: &str| {
            cases
                .iter()
                .filter(|case| case.children().any(|child| child.has_tag_name(tag)))
                .count()
        };
        assert_eq!(
            suite.attribute("tests"),
            Some(cases.len().to_string().as_str())
        );
        assert_eq!(
            suite.attribute("failures"),
            Some(count("failure").to_string().as_str())
        );
        assert_eq!(
            suite.attribute("errors"),
            Some(count("error").to_string().as_str())
        );
        assert_eq!(suite.attribute("time"), Some("8.000"));
    }
    let failure = document
        .descendants()
        .find(|node| node.has_tag_name("failure"))
        .expect("a failure");
    assert_eq!(
        failure.attribute("message"),
        Some("measured 90%, bound ≥ 99%")
    );
    assert_eq!(failure.text(), Some("504 answered 12 times"));
    let case = failure.parent().expect("its test case");
    assert_eq!(case.attribute("classname"), Some("verify.shop.search-down"));
    assert_eq!(
        case.attribute("name"),
        Some("expectation: availability during the fault")
    );
    let error = document
        .descendants()
        .find(|node| node.has_tag_name("error"))
        .expect("an error");
    assert_eq!(
        error.attribute("message"),
        Some("the fault could not be injected")
    );
}

fn hostile() -> VerifyReport {
    let evil = "</script><svg onload=alert(1)>\"'&\u{1}\u{1b}";
    let mut report = sample();
    report.spec = evil.into();
    for experiment in &mut report.experiments {
        experiment.name = format!("{evil}{}", experiment.name);
        experiment.failure = evil.into();
        experiment.design = evil.into();
        experiment.expectations[0].label = evil.into();
        experiment.expectations[0].note = Some(evil.into());
        experiment.events[0].detail = evil.into();
        experiment.error = Some(evil.into());
    }
    report
}

#[test]
fn junit_carries_a_hostile_spec_verbatim_but_for_control_characters() {
    let report = hostile();
    let xml = super::junit(&report);
    let document = roxmltree::Document::parse(&xml).expect("still XML");
    let suite = document
        .descendants()
        .find(|node| node.has_tag_name("testsuite"))
        .expect("a suite");
    assert_eq!(
        suite.attribute("name"),
        Some("</script><svg onload=alert(1)>\"'&\u{FFFD}\u{FFFD}payments-timeout")
    );
}

#[test]
fn the_html_of_a_hostile_spec_has_no_markup_of_its_own() {
    let html = super::html(&hostile());
    assert!(!html.contains("<script"), "a script element");
    assert!(!html.contains("<svg onload"), "an svg with a handler");
    assert!(!html.contains("\u{1}"), "a control character");
    assert_eq!(html.matches("<svg ").count(), 9);
    assert_eq!(
        plots_of(&html).len(),
        9,
        "every plot still parses, with its name"
    );
}

#[test]
fn degenerate_experiments_still_draw_plots_without_nan_or_infinity() {
    let mut empty = experiment("empty", Outcome::CouldNotRun);
    empty.timeline.clear();
    empty.events.clear();
    empty.fault = None;
    empty.load_s = 0.0;
    let mut silent = experiment("all-none", Outcome::Failed);
    for second in &mut silent.timeline {
        (second.p50_ms, second.p95_ms, second.p99_ms) = (None, None, None);
        second.error_rate = f64::NAN;
    }
    let mut one = experiment("one-second", Outcome::Passed);
    one.timeline.truncate(1);
    one.load_s = 1.0;
    one.fault = None;
    let mut huge = experiment("huge", Outcome::Passed);
    huge.timeline[2].p99_ms = Some(1e300);
    huge.timeline[3].p99_ms = Some(f64::INFINITY);
    huge.timeline[4].sources.upstream = u64::MAX;
    huge.events[0].t = f64::NAN;
    huge.fault = Some(FaultWindow {
        start_s: f64::NEG_INFINITY,
        end_s: f64::NAN,
    });
    huge.load_s = f64::INFINITY;
    let report = VerifyReport {
        spec: "edges".into(),
        started_unix_ms: u64::MAX,
        elapsed_s: f64::NAN,
        experiments: vec![empty, silent, one, huge],
    };
    let html = super::html(&report);
    for bad in ["NaN", "inf", "Infinity"] {
        assert!(!html.contains(bad), "{bad} written");
    }
    let plots = plots_of(&html);
    assert_eq!(plots.len(), 12);
    assert!(plots[&("all-none".into(), "latency".into())].is_empty());
    assert_eq!(plots[&("huge".into(), "latency".into())]["p99"][&2], 1e300);
    roxmltree::Document::parse(&super::junit(&report)).expect("JUnit of degenerate figures");
}

#[test]
fn write_all_writes_the_three_files_into_a_new_folder() {
    let dir = std::env::temp_dir().join(format!("blastwall-report-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let report = sample();
    let paths = super::write_all(&report, &dir.join("nested")).expect("written");
    let read = |path: &std::path::Path| std::fs::read_to_string(path).expect("readable");
    assert_eq!(read(&paths.json), super::json(&report));
    assert_eq!(read(&paths.junit), super::junit(&report));
    assert_eq!(read(&paths.html), super::html(&report));
    let again = super::write_all(&report, &dir.join("nested")).expect("overwritten");
    assert_eq!(again, paths);
    let names: Vec<_> = std::fs::read_dir(dir.join("nested"))
        .expect("listed")
        .map(|entry| entry.expect("an entry").file_name())
        .collect();
    assert_eq!(names.len(), 3, "no temporary file left: {names:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn write_all_says_which_path_it_could_not_write() {
    let file = std::env::temp_dir().join(format!("blastwall-report-file-{}", std::process::id()));
    std::fs::write(&file, "not a folder").expect("written");
    let error = super::write_all(&sample(), &file).expect_err("a file is no folder");
    assert!(
        error.to_string().contains(&file.display().to_string()),
        "{error}"
    );
    let _ = std::fs::remove_file(&file);
}

/// The attributes of a plot that are coordinates or sizes, and so must be finite numbers.
const GEOMETRY: [&str; 10] = [
    "x", "y", "width", "height", "cx", "cy", "x1", "x2", "y1", "y2",
];

fn geometry_is_finite(html: &str) -> Result<(), String> {
    for (start, _) in html.match_indices("<svg ") {
        let end = start + html[start..].find("</svg>").ok_or("an unclosed svg")? + 6;
        let document =
            roxmltree::Document::parse(&html[start..end]).map_err(|error| error.to_string())?;
        for node in document.descendants().filter(roxmltree::Node::is_element) {
            for name in GEOMETRY {
                if let Some(value) = node.attribute(name) {
                    let number: f64 = value.parse().map_err(|_| format!("{name}={value}"))?;
                    if !number.is_finite() {
                        return Err(format!("{name}={value}"));
                    }
                }
            }
            for pair in node.attribute("points").unwrap_or("").split_whitespace() {
                for value in pair.split(',') {
                    if !value.parse::<f64>().is_ok_and(f64::is_finite) {
                        return Err(format!("points {pair}"));
                    }
                }
            }
        }
    }
    Ok(())
}

proptest::proptest! {
    #[test]
    fn any_text_escaped_reads_back_as_itself_but_for_control_characters(text in ".*") {
        let xml = format!(
            "<a b=\"{}\">{}</a>",
            super::escape::escape(&text),
            super::escape::escape(&text)
        );
        let document = roxmltree::Document::parse(&xml).map_err(|error| {
            proptest::test_runner::TestCaseError::fail(format!("{error}: {xml}"))
        })?;
        let expected: String = text
            .chars()
            .map(|c| {
                let kept = matches!(c, '\t' | '\n' | '\r')
                    || !(c.is_control() || c == '\u{FFFE}' || c == '\u{FFFF}');
                if kept { c } else { super::escape::REPLACEMENT }
            })
            .collect();
        proptest::prop_assert_eq!(document.root_element().attribute("b"), Some(expected.as_str()));
        // As references, even carriage returns come through (a literal one would not).
        let read = document.root_element().text().unwrap_or("");
        proptest::prop_assert_eq!(read, expected.as_str());
    }

    #[test]
    fn plots_of_any_figures_have_finite_geometry(
        figures in proptest::collection::vec(
            (proptest::num::f64::ANY, proptest::option::of(proptest::num::f64::ANY), proptest::num::u64::ANY),
            0..20,
        ),
        load_s in proptest::num::f64::ANY,
        event_t in proptest::num::f64::ANY,
    ) {
        let mut report = sample();
        report.experiments.truncate(1);
        let experiment = &mut report.experiments[0];
        experiment.load_s = load_s;
        experiment.events[0].t = event_t;
        experiment.timeline = figures
            .iter()
            .zip(0u32..)
            .map(|(&(error_rate, latency, count), t)| {
                let mut second = second(t);
                second.error_rate = error_rate;
                (second.p50_ms, second.p99_ms) = (latency, latency);
                second.sources.shed = count;
                second
            })
            .collect();
        let html = super::html(&report);
        proptest::prop_assert!(geometry_is_finite(&html).is_ok(), "{:?}", geometry_is_finite(&html));
    }
}
