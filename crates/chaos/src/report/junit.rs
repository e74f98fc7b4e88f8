//! The JUnit XML report, so CI systems show a run like a test run: one `<testsuite>` per
//! experiment, one `<testcase>` per check.
//!
//! A check's test case is named `<phase>: <label>` in the class `verify.<spec>.<experiment>`;
//! a check that did not hold has a `<failure message="measured X, bound Y">` whose text is the
//! check's note. An experiment that could not run adds one test case, `experiment: could not
//! run`, with an `<error>` saying why; the checks it did get to keep their own test cases. All
//! text is escaped by [`escape`], which also keeps out what XML 1.0 cannot carry.

use std::fmt::Write;

use super::escape::escape;
use super::model::{ExperimentReport, Outcome, VerifyReport};

/// The test case an experiment that could not run adds.
pub(super) const COULD_NOT_RUN: &str = "experiment: could not run";

/// The whole document.
pub(super) fn document(report: &VerifyReport) -> String {
    let (mut tests, mut failures, mut errors) = (0, 0, 0);
    let mut suites = String::new();
    for experiment in &report.experiments {
        let counts = suite(&mut suites, &report.spec, experiment);
        tests += counts.tests;
        failures += counts.failures;
        errors += counts.errors;
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{}\">\n{suites}</testsuites>\n",
        escape(&format!("verify.{}", report.spec)),
        time(report.elapsed_s),
    )
}

/// A suite's counts, as its attributes say them.
#[derive(Debug, Default)]
struct Counts {
    tests: usize,
    failures: usize,
    errors: usize,
}

/// One experiment's `<testsuite>`, appended to `xml`.
fn suite(xml: &mut String, spec: &str, experiment: &ExperimentReport) -> Counts {
    let classname = escape(&format!("verify.{spec}.{}", experiment.name));
    let mut cases = String::new();
    let mut counts = Counts::default();
    for (phase, check) in experiment.checks() {
        counts.tests += 1;
        let name = escape(&format!("{phase}: {}", check.label));
        let _ = write!(
            cases,
            "    <testcase classname=\"{classname}\" name=\"{name}\" time=\"0\""
        );
        if check.passed {
            cases.push_str("/>\n");
            continue;
        }
        counts.failures += 1;
        let _ = write!(
            cases,
            ">\n      <failure message=\"{}\" type=\"{}\">{}</failure>\n    </testcase>\n",
            escape(&format!(
                "measured {}, bound {}",
                check.measured_text, check.bound
            )),
            escape(&check.metric),
            escape(check.note.as_deref().unwrap_or("")),
        );
    }
    if experiment.outcome == Outcome::CouldNotRun {
        counts.tests += 1;
        counts.errors += 1;
        let why = experiment
            .error
            .as_deref()
            .unwrap_or("the experiment could not run");
        let _ = write!(
            cases,
            "    <testcase classname=\"{classname}\" name=\"{COULD_NOT_RUN}\" time=\"0\">\n      <error message=\"{}\">{}</error>\n    </testcase>\n",
            escape(why),
            escape(why),
        );
    }
    let _ = write!(
        xml,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"0\" time=\"{}\">\n{cases}  </testsuite>\n",
        escape(&experiment.name),
        counts.tests,
        counts.failures,
        counts.errors,
        time(experiment.load_s),
    );
    counts
}

/// Seconds as JUnit writes them; a figure that is not finite (or negative) is 0.
fn time(seconds: f64) -> String {
    if seconds.is_finite() && seconds >= 0.0 {
        format!("{seconds:.3}")
    } else {
        "0".to_owned()
    }
}
