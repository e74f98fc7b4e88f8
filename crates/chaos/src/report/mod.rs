//! What `blastwall verify` writes: the run's findings ([`VerifyReport`], `model`) as JSON
//! (every figure, the model as is), JUnit XML (one test case per check, for CI) and one
//! self-contained HTML page with SVG plots per experiment (for the people who read it).
//!
//! The formats only read the model; the experiments fill it (`experiment`). The JSON is the
//! record: the HTML's plots carry their figures in `data-` attributes, and the tests read them
//! back and compare them with it. Every string in every format is escaped in one place
//! (`escape`): names and labels come from a user's spec.
//!
//! - `junit`: the XML document; `html`: the page, drawn by `plots` with the SVG parts of `svg`;
//! - `files`: [`write_all`], the three files in a folder, each written atomically.

mod escape;
mod files;
mod html;
mod junit;
mod model;
mod plots;
mod svg;
#[cfg(test)]
mod tests;

pub use escape::one_line;
pub use files::{Paths, prepare, write_all};
pub use model::{
    Check, ExperimentReport, FaultWindow, Outcome, ProxyEvent, Second, Sources, Totals,
    VerifyReport,
};

/// The JSON report: the model, pretty-printed.
pub fn json(report: &VerifyReport) -> String {
    serde_json::to_string_pretty(report).expect("a report serializes: plain data, string keys")
}

/// The JUnit XML report: one `<testsuite>` per experiment, one `<testcase>` per check.
pub fn junit(report: &VerifyReport) -> String {
    junit::document(report)
}

/// The HTML report: one self-contained page (inline CSS and SVG, no script, no external URL).
pub fn html(report: &VerifyReport) -> String {
    html::page(report)
}
