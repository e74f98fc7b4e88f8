//! The Prometheus text exposition format 0.0.4, written by hand: `# HELP`, `# TYPE`, then
//! one line per sample, every family's samples together.
//!
//! A few dozen lines instead of a client library: the values already live in the proxy's own
//! atomics (see [`crate::counters`]), so all an exporter adds is the text, and a registry would
//! only copy them.

use std::fmt::Write;

use crate::counters::histogram::{BUCKET_LABELS, HistogramSnapshot};

/// The content type of what [`super::render`] returns, for the admin listener's response.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Only goes up (names end in `_total`).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Bucketed observations with `_bucket`, `_sum` and `_count`.
    Histogram,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// The exposition being written.
#[derive(Debug, Default)]
pub(crate) struct Exposition {
    out: String,
}

/// A sample's value: an integer count or a float measure.
pub(crate) trait Value {
    /// Appends it as the format writes numbers.
    fn write_to(&self, out: &mut String);
}

impl Value for u64 {
    fn write_to(&self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}

impl Value for i64 {
    fn write_to(&self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}

impl Value for f64 {
    fn write_to(&self, out: &mut String) {
        if self.is_nan() {
            out.push_str("NaN");
        } else if self.is_infinite() {
            out.push_str(if *self > 0.0 { "+Inf" } else { "-Inf" });
        } else {
            let _ = write!(out, "{self}");
        }
    }
}

impl Exposition {
    /// Starts a family: its `# HELP` and `# TYPE` lines. Its samples must follow before the
    /// next family starts.
    pub(crate) fn family(&mut self, name: &str, kind: Kind, help: &str) {
        self.out.push_str("# HELP ");
        self.out.push_str(name);
        self.out.push(' ');
        escape_into(&mut self.out, help, false);
        self.out.push_str("\n# TYPE ");
        self.out.push_str(name);
        self.out.push(' ');
        self.out.push_str(kind.name());
        self.out.push('\n');
    }

    /// One sample line.
    pub(crate) fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Value) {
        self.out.push_str(name);
        self.labels(labels, None);
        self.out.push(' ');
        value.write_to(&mut self.out);
        self.out.push('\n');
    }

    /// The `_bucket`, `_sum` and `_count` lines of one histogram series (its family started
    /// with [`Kind::Histogram`] under `name`).
    pub(crate) fn histogram(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        histogram: &HistogramSnapshot,
    ) {
        let bucket = format!("{name}_bucket");
        for (le, count) in BUCKET_LABELS.iter().zip(histogram.cumulative) {
            self.bucket(&bucket, labels, le, count);
        }
        self.bucket(&bucket, labels, "+Inf", histogram.count);
        #[allow(clippy::cast_precision_loss)]
        let sum = histogram.sum_nanos as f64 / 1e9;
        self.sample(&format!("{name}_sum"), labels, sum);
        self.sample(&format!("{name}_count"), labels, histogram.count);
    }

    fn bucket(&mut self, name: &str, labels: &[(&str, &str)], le: &str, count: u64) {
        self.out.push_str(name);
        self.labels(labels, Some(le));
        self.out.push(' ');
        count.write_to(&mut self.out);
        self.out.push('\n');
    }

    fn labels(&mut self, labels: &[(&str, &str)], le: Option<&str>) {
        if labels.is_empty() && le.is_none() {
            return;
        }
        self.out.push('{');
        let le = le.map(|le| ("le", le));
        for (index, (name, value)) in labels.iter().copied().chain(le).enumerate() {
            if index > 0 {
                self.out.push(',');
            }
            self.out.push_str(name);
            self.out.push_str("=\"");
            escape_into(&mut self.out, value, true);
            self.out.push('"');
        }
        self.out.push('}');
    }

    /// The text written.
    pub(crate) fn finish(self) -> String {
        self.out
    }
}

/// Escapes as the format asks: `\` and newline everywhere, `"` too in label values.
fn escape_into(out: &mut String, text: &str, label_value: bool) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if label_value => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}
