//! What `verify` (and the demo) print: a live progress line per experiment on a terminal's
//! stderr, then on stdout each experiment's verdicts and a summary table. Every word from a
//! spec or an answer is printed through `one_line`: it cannot drive the terminal.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use blastwall_chaos::experiment::{Phase, Progress};
use blastwall_chaos::report::{Check, ExperimentReport, Outcome, VerifyReport, one_line};
use blastwall_chaos::spec::FailureMode;

/// Width of the progress bar, in cells.
const BAR: usize = 24;

/// Prints progress (when `live`) and results.
#[derive(Debug)]
pub struct Printer {
    live: bool,
    /// Whether a progress line is on the terminal, to be erased before other output.
    drawn: Mutex<bool>,
}

impl Printer {
    /// A printer; `live` draws the progress line (a terminal, not `--quiet`).
    pub fn new(live: bool) -> Self {
        Self {
            live,
            drawn: Mutex::new(false),
        }
    }

    fn erase(&self) {
        let mut drawn = self
            .drawn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if *drawn {
            eprint!("\r\x1b[2K");
            *drawn = false;
        }
    }

    /// A line about the system under test.
    pub fn system(&self, line: &str) {
        self.erase();
        println!("{line}");
    }

    /// An experiment begins.
    pub fn experiment_started(&self, failure: &FailureMode, index: usize, of: usize) {
        self.erase();
        println!(
            "[{}/{of}] {}: {} (fault from {:.0}s for {:.0}s)",
            index + 1,
            one_line(&failure.name),
            one_line(&failure.failure),
            failure.start.as_secs_f64(),
            failure.duration.as_secs_f64()
        );
        let _ = std::io::stdout().flush();
    }

    /// Where the experiment in progress is.
    pub fn progress(&self, progress: &Progress) {
        if !self.live {
            return;
        }
        let done = if progress.load > 0.0 {
            (progress.elapsed / progress.load).clamp(0.0, 1.0)
        } else {
            1.0
        };
        let cells = (done * BAR as f64).round() as usize;
        let phase = match progress.phase {
            Phase::Steady => "steady  ",
            Phase::Fault => "FAULT   ",
            Phase::Recovery => "recovery",
        };
        let errors = if progress.requests == 0 {
            0.0
        } else {
            progress.errors as f64 * 100.0 / progress.requests as f64
        };
        let p99 = progress
            .p99_ms
            .map_or_else(|| "-".to_owned(), |ms| format!("{ms:.0} ms"));
        let mut drawn = self
            .drawn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        eprint!(
            "\r\x1b[2K  {}{} {:>4.0}/{:.0}s {phase} {:>7} req {:>5.1}% err  p99 {p99}",
            "█".repeat(cells),
            "░".repeat(BAR - cells),
            progress.elapsed,
            progress.load,
            progress.requests,
            errors,
        );
        let _ = std::io::stderr().flush();
        *drawn = true;
    }

    /// An experiment's verdicts.
    pub fn experiment(&self, experiment: &ExperimentReport) {
        self.erase();
        println!();
        println!(
            "{} {}: {}",
            mark(experiment.outcome),
            one_line(&experiment.name),
            outcome_word(experiment.outcome)
        );
        println!(
            "  failure:                {}",
            one_line(&experiment.failure)
        );
        println!(
            "  required behaviour:     {}",
            one_line(&experiment.required_behaviour)
        );
        println!(
            "  acceptable degradation: {}",
            one_line(&experiment.acceptable_degradation)
        );
        println!("  design:                 {}", one_line(&experiment.design));
        let totals = experiment.totals;
        if totals.requests > 0 {
            println!(
                "  what the system did:    {} requests: {} answered by a fallback, {} 5xx or unanswered; {} event(s) from the proxy{}",
                totals.requests,
                totals.fallbacks,
                totals.errors,
                experiment.events.len(),
                first_events(experiment)
            );
        }
        if let Some(error) = &experiment.error {
            println!("  ! {}", one_line(error));
        }
        let width = experiment
            .checks()
            .map(|(_, check)| check.label.chars().count())
            .max()
            .unwrap_or(0);
        for (phase, check) in experiment.checks() {
            print_check(phase, check, width);
        }
    }

    /// The run's summary and where its reports are.
    pub fn summary(&self, report: &VerifyReport, html: &Path) {
        self.erase();
        let checks: Vec<&Check> = report
            .experiments
            .iter()
            .flat_map(|experiment| experiment.checks().map(|(_, check)| check))
            .collect();
        let held = checks.iter().filter(|check| check.passed).count();
        println!();
        println!(
            "{}: {} of {} experiment(s) passed, {held} of {} check(s) held, in {:.0}s",
            one_line(&report.spec),
            report
                .experiments
                .iter()
                .filter(|experiment| experiment.outcome == Outcome::Passed)
                .count(),
            report.experiments.len(),
            checks.len(),
            report.elapsed_s
        );
        match report.outcome() {
            Outcome::Passed => println!("verdict: PASSED"),
            Outcome::Failed => println!("verdict: FAILED (an expectation did not hold)"),
            Outcome::CouldNotRun => println!("verdict: COULD NOT RUN (see the reasons above)"),
        }
        println!("report: {}", html.display());
    }
}

fn print_check(phase: &str, check: &Check, width: usize) {
    let phase = match phase {
        "steady state before" => "before",
        "steady state after" => "after ",
        _ => "      ",
    };
    let note = check
        .note
        .as_ref()
        .filter(|_| !check.passed)
        .map(|note| format!(": {}", one_line(note)))
        .unwrap_or_default();
    println!(
        "  {} {phase} {:<width$}  {:>12}  (bound {}){note}",
        if check.passed { "✔" } else { "✘" },
        one_line(&check.label),
        one_line(&check.measured_text),
        one_line(&check.bound),
    );
}

/// The first few failure events, to say what the proxy did.
fn first_events(experiment: &ExperimentReport) -> String {
    let mut kinds: Vec<&str> = Vec::new();
    for event in &experiment.events {
        if event.failure
            && !kinds.contains(&event.kind.as_str())
            && !event.kind.starts_with("fault")
        {
            kinds.push(&event.kind);
        }
    }
    if kinds.is_empty() {
        String::new()
    } else {
        format!(" ({})", one_line(&kinds.join(", ").replace('_', " ")))
    }
}

fn mark(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Passed => "✔",
        Outcome::Failed => "✘",
        Outcome::CouldNotRun => "!",
    }
}

fn outcome_word(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Passed => "passed",
        Outcome::Failed => "FAILED",
        Outcome::CouldNotRun => "could not run",
    }
}
