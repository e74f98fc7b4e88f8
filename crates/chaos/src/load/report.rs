//! The report of a load run: what was asked, then what was measured, as JSON for scripts and
//! plots or as a short summary for a person.

use std::fmt;

use serde::Serialize;

use super::stats::{Summary, TallySummary};
use super::threshold::{Verdict, verdict_table};

/// The JSON report: what was asked, then what was measured.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The URL every request went to.
    pub url: String,
    /// The method of every request.
    pub method: String,
    /// Requests per second asked for; none in the closed loop (`--rate max`).
    pub rate: Option<f64>,
    /// `open` (a fixed rate, latency from each due time) or `closed` (the max rate: each
    /// connection sends when answered, latency from each send; a stall is hidden).
    pub mode: &'static str,
    /// Requests the timetable held (open loop), or that came to an outcome (closed).
    pub requests: u64,
    /// Connections kept open at most.
    pub connections: usize,
    /// The per-request timeout, seconds.
    pub timeout_s: f64,
    /// Names of the classes, `header=value`, in the order of `classes`.
    pub class_names: Vec<String>,
    /// What the run measured.
    #[serde(flatten)]
    pub summary: Summary,
    /// Each threshold judged against the run, in the order given (none when none was).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub verdicts: Vec<Verdict>,
}

impl Report {
    /// Whether every threshold held (true when there were none).
    pub fn passed(&self) -> bool {
        self.verdicts.iter().all(|verdict| verdict.pass)
    }
}

/// The summary for a person: totals, each class when traffic was split, and how late
/// requests were sent.
impl fmt::Display for Report {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        out.write_str(&human(self))
    }
}

fn ms(micros: u64) -> String {
    format!("{:.2}ms", micros as f64 / 1000.0)
}

fn tally_line(tally: &TallySummary) -> String {
    let statuses: Vec<_> = tally
        .statuses
        .iter()
        .map(|(status, count)| format!("{status}×{count}"))
        .collect();
    let errors: Vec<_> = tally
        .errors
        .iter()
        .filter(|(_, count)| **count > 0)
        .map(|(kind, count)| format!("{kind}×{count}"))
        .collect();
    let latency = &tally.latency_us;
    format!(
        "{} requests, {} ok, {} failed ({:.2}%); statuses [{}] errors [{}]\n    latency p50 {} p90 {} p99 {} p99.9 {} max {}\n",
        tally.requests,
        tally.ok,
        tally.failed,
        tally.error_rate * 100.0,
        statuses.join(" "),
        errors.join(" "),
        ms(latency.p50),
        ms(latency.p90),
        ms(latency.p99),
        ms(latency.p999),
        ms(latency.max),
    )
}

fn human(report: &Report) -> String {
    let summary = &report.summary;
    let rate = match report.rate {
        Some(rate) => format!("{rate}/s"),
        None => "the max rate (closed loop)".to_owned(),
    };
    let mut text = format!(
        "{} {} at {rate} over {} connections: {} requests in {:.2}s, {:.1} sent/s, {:.1} answers/s\n",
        report.method,
        report.url,
        report.connections,
        report.requests,
        summary.elapsed_s,
        summary.achieved_rate,
        summary.answer_rate,
    );
    text += &format!("  all: {}", tally_line(&summary.total));
    if report.class_names.len() > 1 {
        for (name, tally) in report.class_names.iter().zip(&summary.classes) {
            text += &format!("  {name}: {}", tally_line(tally));
        }
    }
    text += &if report.rate.is_none() {
        "  closed loop: latency counts from each send; a stall slows the sending rather than showing in the latency\n".to_owned()
    } else {
        format!(
            "  latency counts from each request's due time; sent late by p99 {} max {}; {} expired waiting for a connection\n",
            ms(summary.send_delay_us.p99),
            ms(summary.send_delay_us.max),
            summary.expired_unsent,
        )
    };
    if !report.verdicts.is_empty() {
        text += &verdict_table(&report.verdicts);
    }
    text
}
