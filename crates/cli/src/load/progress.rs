//! The live progress line of `blastwall load`: one line on stderr, rewritten in place each
//! second, so a person watching a long run sees it move (elapsed, sent, answered, errors,
//! answers per second over the last second, p99 so far).
//!
//! It is written only to a terminal and not with `--quiet`: a script reading stderr (for
//! the `load started` line) or a CI log never sees carriage returns and escape codes.

use std::io::Write;
use std::time::Duration;

use blastwall_chaos::load::Progress;

/// Turns each [`Progress`] into the line to show, knowing the one before it.
#[derive(Debug, Default)]
pub struct ProgressLine {
    previous: Option<Progress>,
}

impl ProgressLine {
    /// The line for `progress`; the current rate is the answers since the previous one.
    pub fn line(&mut self, progress: Progress) -> String {
        let (since, answered_since) = match self.previous {
            Some(previous) => (
                progress.elapsed.saturating_sub(previous.elapsed),
                progress.answered.saturating_sub(previous.answered),
            ),
            None => (progress.elapsed, progress.answered),
        };
        self.previous = Some(progress);
        let current = if since > Duration::ZERO {
            answered_since as f64 / since.as_secs_f64()
        } else {
            0.0
        };
        format!(
            "{:>5.0}s  sent {}  answered {}  errors {}  {:.1} answers/s  p99 {:.2}ms",
            progress.elapsed.as_secs_f64(),
            progress.sent,
            progress.answered,
            progress.failed,
            current,
            progress.p99_us as f64 / 1000.0,
        )
    }
}

/// Writes the line over the previous one on stderr (carriage return, erase line).
pub fn show(line: &str) {
    let mut err = std::io::stderr().lock();
    // A terminal that cannot be written to only loses the progress line.
    let _ = write!(err, "\r\x1b[2K{line}");
    let _ = err.flush();
}

/// Erases the progress line, so the report starts on a clean line.
pub fn clear() {
    show("");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64, sent: u64, answered: u64, failed: u64) -> Progress {
        Progress {
            elapsed: Duration::from_secs(seconds),
            sent,
            answered,
            failed,
            p99_us: 2_310,
        }
    }

    #[test]
    fn the_line_shows_the_counts_so_far_and_the_p99() {
        let line = ProgressLine::default().line(at(3, 3000, 2990, 10));
        assert_eq!(
            line,
            "    3s  sent 3000  answered 2990  errors 10  996.7 answers/s  p99 2.31ms"
        );
    }

    #[test]
    fn the_current_rate_counts_only_the_answers_since_the_previous_line() {
        let mut progress = ProgressLine::default();
        progress.line(at(1, 1000, 1000, 0));
        let line = progress.line(at(2, 1500, 1200, 0));
        assert!(line.contains(" 200.0 answers/s"), "{line}");
    }

    #[test]
    fn a_line_at_the_same_instant_as_the_last_shows_no_rate_rather_than_dividing_by_zero() {
        let mut progress = ProgressLine::default();
        progress.line(at(1, 10, 10, 0));
        assert!(progress.line(at(1, 10, 10, 0)).contains(" 0.0 answers/s"));
    }
}
