//! Thresholds on a load run's figures (`p99<300ms`, `errors<1%`, `rps>900`), and the
//! verdict of each against what the run measured.
//!
//! A threshold is how CI turns a load run into pass or fail: `blastwall load --expect …`
//! exits non-zero when one does not hold. They are parsed once, before the run, so that a
//! typo fails at once with what was expected rather than after ten seconds of load.
//!
//! The figures a threshold may bound, all over the whole run:
//! - latency percentiles (`p50`, `p90`, `p99`, `p99.9`, `max`, `mean`) of every request,
//!   failures included, counted from its due time as the report counts them: a timeout is
//!   a slow answer, not a missing one;
//! - `errors`, the share of requests that failed (4xx, 5xx, no answer), as `1%` or `0.01`;
//! - `rps`, the answers received per second ([`super::Summary::answer_rate`]).

use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use thiserror::Error;

use super::stats::Summary;

/// One figure of a run that a threshold can bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Figure {
    /// A latency percentile (per mille: 500, 900, 990, 999) of every request.
    Latency(u16),
    /// The largest latency.
    MaxLatency,
    /// The mean latency.
    MeanLatency,
    /// The share of requests that failed, 0 to 1.
    ErrorRate,
    /// Answers received per second.
    AnswerRate,
}

impl Figure {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "p50" => Self::Latency(500),
            "p90" => Self::Latency(900),
            "p99" => Self::Latency(990),
            "p99.9" | "p999" => Self::Latency(999),
            "max" => Self::MaxLatency,
            "mean" => Self::MeanLatency,
            "errors" => Self::ErrorRate,
            "rps" => Self::AnswerRate,
            _ => return None,
        })
    }

    fn is_latency(self) -> bool {
        matches!(
            self,
            Self::Latency(_) | Self::MaxLatency | Self::MeanLatency
        )
    }

    /// The measured value: µs for latencies, a fraction for errors, per second for rps.
    fn measure(self, summary: &Summary) -> f64 {
        let latency = &summary.total.latency_us;
        match self {
            Self::Latency(500) => latency.p50 as f64,
            Self::Latency(900) => latency.p90 as f64,
            Self::Latency(990) => latency.p99 as f64,
            Self::Latency(_) => latency.p999 as f64,
            Self::MaxLatency => latency.max as f64,
            Self::MeanLatency => latency.mean,
            Self::ErrorRate => summary.total.error_rate,
            Self::AnswerRate => summary.answer_rate,
        }
    }

    /// A value of this figure as a person reads it.
    fn show(self, value: f64) -> String {
        match self {
            Self::ErrorRate => format!("{:.2}%", value * 100.0),
            Self::AnswerRate => format!("{value:.1}/s"),
            _ => format!("{:.2}ms", value / 1000.0),
        }
    }
}

/// How a measured figure must compare with the bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// Strictly below.
    Below,
    /// Below or equal.
    AtMost,
    /// Strictly above.
    Above,
    /// Above or equal.
    AtLeast,
}

impl Comparison {
    fn holds(self, measured: f64, bound: f64) -> bool {
        match self {
            Self::Below => measured < bound,
            Self::AtMost => measured <= bound,
            Self::Above => measured > bound,
            Self::AtLeast => measured >= bound,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            Self::Below => "<",
            Self::AtMost => "<=",
            Self::Above => ">",
            Self::AtLeast => ">=",
        }
    }
}

/// A bound on one figure of a run, as `--expect` takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// What it bounds.
    pub figure: Figure,
    /// How the figure must compare.
    pub comparison: Comparison,
    /// The bound, in the figure's unit (µs, a fraction, per second).
    pub bound: f64,
    text: String,
}

/// Why a threshold's text was refused; the message says what was expected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ThresholdError {
    /// No `<`, `<=`, `>` or `>=` in it.
    #[error("expected FIGURE<BOUND or FIGURE>BOUND (like `p99<300ms`), got {0:?}")]
    NoComparison(String),
    /// The figure is not one of the known names.
    #[error("unknown figure {0:?}: expected p50, p90, p99, p99.9, max, mean, errors or rps")]
    UnknownFigure(String),
    /// The bound does not fit the figure.
    #[error("bound {bound:?} of {figure}: {expected}")]
    BadBound {
        /// The figure's name as written.
        figure: String,
        /// The bound as written.
        bound: String,
        /// What a bound of this figure looks like.
        expected: &'static str,
    },
}

impl FromStr for Threshold {
    type Err = ThresholdError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let at = text
            .find(['<', '>'])
            .ok_or_else(|| ThresholdError::NoComparison(text.to_owned()))?;
        let (name, rest) = (text[..at].trim(), &text[at..]);
        let (comparison, bound) = match rest.as_bytes() {
            [b'<', b'=', ..] => (Comparison::AtMost, &rest[2..]),
            [b'>', b'=', ..] => (Comparison::AtLeast, &rest[2..]),
            [b'<', ..] => (Comparison::Below, &rest[1..]),
            _ => (Comparison::Above, &rest[1..]),
        };
        let figure = Figure::parse(&name.to_ascii_lowercase())
            .ok_or_else(|| ThresholdError::UnknownFigure(name.to_owned()))?;
        let bad = |expected| ThresholdError::BadBound {
            figure: name.to_owned(),
            bound: bound.trim().to_owned(),
            expected,
        };
        let bound = match figure {
            _ if figure.is_latency() => parse_micros(bound.trim())
                .ok_or_else(|| bad("expected a duration like `300ms`, `1.5s` or `800us`"))?,
            Figure::ErrorRate => parse_share(bound.trim())
                .ok_or_else(|| bad("expected a share like `1%` or `0.01`, at most 100%"))?,
            // `/s` is allowed, as the verdict table writes the rate that way.
            _ => parse_number(bound.trim().trim_end_matches("/s").trim_end())
                .ok_or_else(|| bad("expected answers per second, like `900`"))?,
        };
        Ok(Self {
            figure,
            comparison,
            bound,
            text: format!("{name}{}{}", comparison.symbol(), figure.show(bound)),
        })
    }
}

fn parse_number(text: &str) -> Option<f64> {
    text.parse::<f64>()
        .ok()
        .filter(|value| value.is_finite() && *value >= 0.0)
}

/// A duration in µs: a number and one of `us`, `µs`, `ms`, `s`.
fn parse_micros(text: &str) -> Option<f64> {
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = text.split_at(split);
    let scale = match unit.trim() {
        "us" | "µs" => 1.0,
        "ms" => 1_000.0,
        "s" => 1_000_000.0,
        _ => return None,
    };
    parse_number(number).map(|value| value * scale)
}

/// A share from 0 to 1, written as a percentage or a fraction.
fn parse_share(text: &str) -> Option<f64> {
    let share = match text.strip_suffix('%') {
        Some(percent) => parse_number(percent.trim())? / 100.0,
        None => parse_number(text)?,
    };
    (share <= 1.0).then_some(share)
}

impl fmt::Display for Threshold {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        out.write_str(&self.text)
    }
}

impl Threshold {
    /// Whether the run's figure meets the bound, with the figure measured.
    pub fn judge(&self, summary: &Summary) -> Verdict {
        let measured = self.figure.measure(summary);
        Verdict {
            expectation: self.text.clone(),
            measured: self.figure.show(measured),
            value: measured,
            bound: self.bound,
            pass: self.comparison.holds(measured, self.bound),
        }
    }
}

/// One threshold judged against a run.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// The threshold, normalized (`p99<300.00ms`).
    pub expectation: String,
    /// The figure measured, as a person reads it.
    pub measured: String,
    /// The figure measured, in its unit (µs, a fraction, per second).
    pub value: f64,
    /// The bound, in the same unit.
    pub bound: f64,
    /// Whether the figure met the bound.
    pub pass: bool,
}

/// The verdicts as a table for a person: one line each, then whether all passed.
pub fn verdict_table(verdicts: &[Verdict]) -> String {
    let width = verdicts
        .iter()
        .map(|verdict| verdict.expectation.len())
        .max()
        .unwrap_or(0)
        .max("expectation".len());
    let mut text = format!("  {:<width$}  {:>12}  verdict\n", "expectation", "measured");
    for verdict in verdicts {
        let pass = if verdict.pass { "pass" } else { "FAIL" };
        text += &format!(
            "  {:<width$}  {:>12}  {pass}\n",
            verdict.expectation, verdict.measured
        );
    }
    let failed = verdicts.iter().filter(|verdict| !verdict.pass).count();
    text += &if failed == 0 {
        format!("  all {} expectations held\n", verdicts.len())
    } else {
        format!("  {failed} of {} expectations failed\n", verdicts.len())
    };
    text
}

#[cfg(test)]
#[path = "threshold_tests.rs"]
mod tests;
