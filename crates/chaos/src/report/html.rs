//! The HTML report: one self-contained page an SRE opens after a run. A summary table first
//! (each failure mode's four columns, its outcome and its checks), then per experiment its
//! checks in full and three plots.
//!
//! Self-contained means: inline CSS, SVG written as text, no script, no external URL. A
//! content security policy that allows nothing but inline styles keeps it that way even if an
//! escape were ever missed. Every string from the spec or the proxy goes through
//! [`escape`].

use std::fmt::Write;
use std::time::{Duration, UNIX_EPOCH};

use super::escape::escape;
use super::model::{Check, ExperimentReport, Outcome, VerifyReport};
use super::plots::plots;

const STYLE: &str = r#"
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1200px;padding:0 16px;color:#1b1f24;background:#fff}
h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:32px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
h3{font-size:15px;margin:16px 0 6px}.meta{color:#57606a;margin:0 0 16px}
table{border-collapse:collapse;width:100%;margin:8px 0}th,td{border:1px solid #d0d7de;padding:6px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.outcome{display:inline-block;padding:1px 8px;border-radius:10px;font-weight:600;white-space:nowrap}
.passed{background:#dafbe1;color:#116329}.failed{background:#ffebe9;color:#a40e26}.could_not_run{background:#fff8c5;color:#7d4e00}
.checks{list-style:none;margin:0;padding:0}.checks li{margin:2px 0}.ok{color:#116329;font-weight:700}.bad{color:#a40e26;font-weight:700}
.error{background:#fff8c5;border:1px solid #d4a72c;padding:8px;border-radius:6px;white-space:pre-wrap}
figure{margin:8px 0 16px}svg.plot{max-width:100%;height:auto;display:block;border:1px solid #eaeef2;border-radius:6px}
svg.plot text{font:11px system-ui,sans-serif;fill:#57606a}svg.plot .plot-title{font-size:13px;font-weight:600;fill:#1b1f24}
svg.plot .grid{stroke:#eaeef2}svg.plot .axis{stroke:#8c959f}svg.plot .line{stroke-width:2}
svg.plot .fault{fill:#e45756;fill-opacity:.12}svg.plot .swatch.fault{stroke:#e45756;stroke-opacity:.4}
svg.plot .event line{stroke:#6e7781;stroke-width:1.5;stroke-dasharray:4 3}svg.plot .event.bad line{stroke:#a40e26}
svg.plot .event line.hit{stroke:transparent;stroke-width:9;stroke-dasharray:none}
svg.plot .event-key{fill:none;stroke:#a40e26;stroke-dasharray:3 2}
.summary td{font-size:13px}.summary td:last-child{min-width:24em}.summary td:first-child{font-weight:600}
.events{font-size:13px}.events td{padding:3px 6px}
"#;

/// The whole page.
pub(super) fn page(report: &VerifyReport) -> String {
    let outcome = outcome_text(report.outcome());
    let spec = escape(&report.spec);
    let mut html = String::new();
    let _ = write!(
        html,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>blastwall verify {spec}: {outcome}</title><style>{STYLE}</style></head>
<body><h1>blastwall verify {spec} <span class="outcome {}">{outcome}</span></h1>
<p class="meta">Started {}, took {}; {} experiment(s). Times on the plots are seconds from the start of each experiment's load.</p>
"#,
        outcome_class(report.outcome()),
        started(report.started_unix_ms),
        seconds_text(report.elapsed_s),
        report.experiments.len(),
    );
    summary(&mut html, report);
    for (index, experiment) in report.experiments.iter().enumerate() {
        section(&mut html, index, experiment);
    }
    html.push_str("</body></html>\n");
    html
}

/// The summary table: one row per experiment.
fn summary(html: &mut String, report: &VerifyReport) {
    html.push_str(
        "<h2>Summary</h2><table class=\"summary\"><thead><tr><th>Experiment</th><th>Failure</th>\
         <th>Required behaviour</th><th>Acceptable degradation</th><th>Design</th><th>Outcome</th>\
         <th>Checks (measured vs bound)</th></tr></thead><tbody>\n",
    );
    for (index, experiment) in report.experiments.iter().enumerate() {
        let _ = write!(
            html,
            r##"<tr data-experiment="{}"><td><a href="#experiment-{index}">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><span class="outcome {}">{}</span></td><td><ul class="checks">"##,
            escape(&experiment.name),
            escape(&experiment.name),
            escape(&experiment.failure),
            escape(&experiment.required_behaviour),
            escape(&experiment.acceptable_degradation),
            escape(&experiment.design),
            outcome_class(experiment.outcome),
            outcome_text(experiment.outcome),
        );
        for (_, check) in experiment.checks() {
            let _ = write!(
                html,
                "<li>{} {}: {} vs {}</li>",
                mark(check),
                escape(&check.label),
                escape(&check.measured_text),
                escape(&check.bound),
            );
        }
        if let Some(error) = &experiment.error {
            let _ = write!(
                html,
                "<li><span class=\"bad\">!</span> {}</li>",
                escape(error)
            );
        }
        html.push_str("</ul></td></tr>\n");
    }
    html.push_str("</tbody></table>\n");
}

/// One experiment: its checks in full, its totals, its plots and its events.
fn section(html: &mut String, index: usize, experiment: &ExperimentReport) {
    let _ = write!(
        html,
        r#"<section id="experiment-{index}" data-experiment="{}"><h2>{} <span class="outcome {}">{}</span></h2>"#,
        escape(&experiment.name),
        escape(&experiment.name),
        outcome_class(experiment.outcome),
        outcome_text(experiment.outcome),
    );
    if let Some(error) = &experiment.error {
        let _ = write!(
            html,
            "<p class=\"error\">Could not run: {}</p>",
            escape(error)
        );
    }
    checks(html, experiment);
    let totals = experiment.totals;
    let fault = experiment.fault.map_or_else(
        || "no fault was injected".to_owned(),
        |window| {
            format!(
                "fault in force from {} to {}",
                seconds_text(window.start_s),
                seconds_text(window.end_s)
            )
        },
    );
    let _ = write!(
        html,
        "<p class=\"meta\">Load ran {}; {fault}. {} requests, {} available, {} errors, {} served by a fallback, {} attempts at upstreams.</p>",
        seconds_text(experiment.load_s),
        totals.requests,
        totals.available,
        totals.errors,
        totals.fallbacks,
        totals.attempts,
    );
    if experiment.timeline.is_empty() {
        html.push_str("<p class=\"meta\">No second of load was recorded: the plots are empty.</p>");
    }
    for plot in plots(experiment) {
        let _ = write!(html, "<figure>{plot}</figure>");
    }
    events(html, experiment);
    html.push_str("</section>\n");
}

/// The experiment's checks, a row each.
fn checks(html: &mut String, experiment: &ExperimentReport) {
    if experiment.checks().next().is_none() {
        return;
    }
    html.push_str(
        "<table class=\"checks-table\"><thead><tr><th></th><th>Phase</th><th>Check</th><th>Measured</th>\
         <th>Bound</th><th>Note</th></tr></thead><tbody>",
    );
    for (phase, check) in experiment.checks() {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{phase}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            mark(check),
            escape(&check.label),
            escape(&check.measured_text),
            escape(&check.bound),
            escape(check.note.as_deref().unwrap_or("")),
        );
    }
    html.push_str("</tbody></table>");
}

/// What the proxy reported, as a table under the plots (the markers' tooltips, all at once).
fn events(html: &mut String, experiment: &ExperimentReport) {
    if experiment.events.is_empty() {
        html.push_str("<p class=\"meta\">The proxy reported no event.</p>");
        return;
    }
    html.push_str(
        "<h3>Proxy events</h3><table class=\"events\"><thead><tr><th>t</th><th>Event</th><th>Target</th><th>Detail</th></tr></thead><tbody>",
    );
    for event in &experiment.events {
        let _ = write!(
            html,
            "<tr><td class=\"num\">{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td></tr>",
            seconds_text(event.t),
            if event.failure { "bad" } else { "" },
            escape(&event.kind),
            escape(&event.target),
            escape(&event.detail),
        );
    }
    html.push_str("</tbody></table>");
}

fn mark(check: &Check) -> &'static str {
    if check.passed {
        "<span class=\"ok\">✔</span>"
    } else {
        "<span class=\"bad\">✘</span>"
    }
}

fn outcome_text(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Passed => "PASSED",
        Outcome::Failed => "FAILED",
        Outcome::CouldNotRun => "COULD NOT RUN",
    }
}

fn outcome_class(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Passed => "passed",
        Outcome::Failed => "failed",
        Outcome::CouldNotRun => "could_not_run",
    }
}

/// Seconds for people: "12.3 s", or "?" for a figure that is not one.
fn seconds_text(seconds: f64) -> String {
    if seconds.is_finite() {
        format!("{seconds:.1} s")
    } else {
        "?".to_owned()
    }
}

/// The start as an RFC 3339 UTC time (humantime cannot write one past the year 9999).
fn started(unix_ms: u64) -> String {
    const YEAR_10000_MS: u64 = 253_402_300_800_000;
    Some(unix_ms)
        .filter(|ms| *ms < YEAR_10000_MS)
        .and_then(|ms| UNIX_EPOCH.checked_add(Duration::from_millis(ms)))
        .map_or_else(
            || "at an unknown time".to_owned(),
            |time| humantime::format_rfc3339_seconds(time).to_string(),
        )
}
