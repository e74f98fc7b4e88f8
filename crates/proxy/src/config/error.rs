//! Config errors that say where and what: file, line, column, the offending line with a
//! caret under it, and what was expected.
//!
//! Two ways to show one. On the operator's terminal (`blastwall check`, a start from a
//! shell) the offending line is quoted: the operator owns the file. Everywhere else (the
//! admin API, its events, the log a supervisor keeps) only [`ConfigError::summary`] is
//! shown: file, line, column and message, never source text, because the offending line
//! (or the value a message would quote) may be a header value or a token, and those must
//! not travel further than the file itself.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A place in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// The text of that line, for showing the error in context.
    pub line_text: String,
    /// How many characters the caret should underline.
    pub width: usize,
}

impl Location {
    /// Where a byte span of `source` begins.
    pub fn of_span(source: &str, span: Range<usize>) -> Self {
        let start = span.start.min(source.len());
        let before = source.get(..start).unwrap_or(source);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
        let column = source
            .get(line_start..start)
            .map_or(1, |text| text.chars().count() + 1);
        let line_text = source[line_start..]
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned();
        let end = span.end.clamp(start, source.len());
        let width = source.get(start..end).map_or(1, |text| {
            text.lines()
                .next()
                .unwrap_or_default()
                .chars()
                .count()
                .max(1)
        });
        Self {
            line,
            column,
            line_text,
            width,
        }
    }
}

/// One thing wrong with a config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, as given.
    pub path: PathBuf,
    /// Where in the file, when the error belongs to one place.
    pub location: Option<Location>,
    /// What is wrong and what was expected.
    pub message: String,
}

impl ConfigError {
    /// An error about the file as a whole.
    pub fn whole_file(path: &Path, message: impl Into<String>) -> Self {
        Self {
            path: path.to_owned(),
            location: None,
            message: message.into(),
        }
    }
}

impl ConfigError {
    /// `file:line:column: message`, with no source text and no value quoted from the file:
    /// what may be shown beyond the operator's terminal.
    pub fn summary(&self) -> String {
        let path = self.path.display();
        let message = without_quoted_values(&self.message);
        match &self.location {
            None => format!("{path}: {message}"),
            Some(location) => format!("{path}:{}:{}: {message}", location.line, location.column),
        }
    }
}

/// `message` without the values serde quotes when a value has the wrong type or form
/// ("invalid type: integer `12345`, expected a string" keeps "integer"): the value may be
/// a secret. Names of keys and variants stay; they are not secrets.
fn without_quoted_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = ["invalid type: ", "invalid value: ", "invalid length "]
        .iter()
        .filter_map(|marker| rest.find(marker).map(|at| at + marker.len()))
        .min()
    {
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let end = rest.find(", expected").unwrap_or(rest.len());
        let unexpected = &rest[..end];
        let kind = unexpected
            .split(['`', '"'])
            .next()
            .unwrap_or_default()
            .trim_end();
        out.push_str(kind);
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        match &self.location {
            None => write!(f, "{path}: {}", self.message),
            Some(location) => {
                writeln!(
                    f,
                    "{path}:{}:{}: {}",
                    location.line, location.column, self.message
                )?;
                let gutter = location.line.to_string().len();
                writeln!(f, "{:gutter$} |", "")?;
                writeln!(f, "{} | {}", location.line, location.line_text)?;
                write!(
                    f,
                    "{:gutter$} | {:pad$}{}",
                    "",
                    "",
                    "^".repeat(location.width),
                    pad = location.column - 1
                )
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// Everything wrong with a config: validation goes on past the first error, so an operator
/// fixes them all in one pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
                writeln!(f)?;
            }
            write!(f, "error: {error}")?;
        }
        if self.0.len() > 1 {
            write!(f, "\n\n{} errors", self.0.len())?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl ConfigErrors {
    /// Every error's [`ConfigError::summary`], one per line, then their count: what the
    /// admin API, events and the log show.
    pub fn summary(&self) -> String {
        let mut text = self
            .0
            .iter()
            .map(|error| format!("error: {}", error.summary()))
            .collect::<Vec<_>>()
            .join("\n");
        if self.0.len() > 1 {
            text.push_str(&format!("\n{} errors", self.0.len()));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_count_lines_and_characters_from_one() {
        let source = "a = 1\nbé = \"x\"\n";
        let start = source.find("\"x\"").unwrap();
        let location = Location::of_span(source, start..start + 3);
        assert_eq!((location.line, location.column, location.width), (2, 6, 3));
        assert_eq!(location.line_text, "bé = \"x\"");
    }

    #[test]
    fn errors_show_the_line_with_a_caret_under_the_value() {
        let source = "[cluster.api]\ntimeout = \"soon\"\n";
        let start = source.find("\"soon\"").unwrap();
        let error = ConfigError {
            path: "blastwall.toml".into(),
            location: Some(Location::of_span(source, start..start + 6)),
            message: "invalid duration".into(),
        };
        assert_eq!(
            error.to_string(),
            "blastwall.toml:2:11: invalid duration\n  |\n2 | timeout = \"soon\"\n  |           ^^^^^^"
        );
    }

    #[test]
    fn a_summary_keeps_the_place_and_message_but_no_source_text() {
        let source = "[route.request_headers.add]\nauthorization = \"Bearer s3cret\u{1}\"\n";
        let start = source.find("\"Bearer").unwrap();
        let error = ConfigError {
            path: "blastwall.toml".into(),
            location: Some(Location::of_span(source, start..start + 15)),
            message: "invalid header value: only visible ASCII, spaces and tabs".into(),
        };
        assert!(
            error.to_string().contains("s3cret"),
            "the terminal shows the line"
        );
        assert_eq!(
            error.summary(),
            "blastwall.toml:2:17: invalid header value: only visible ASCII, spaces and tabs"
        );
        let errors = ConfigErrors(vec![error.clone(), error]);
        assert!(!errors.summary().contains("s3cret"));
        assert!(errors.summary().ends_with("\n2 errors"));
    }

    #[test]
    fn a_summary_names_the_type_of_a_wrong_value_but_not_the_value() {
        let error = ConfigError::whole_file(
            Path::new("b.toml"),
            "invalid type: integer `12345`, expected a string; invalid value: string \"k3y\", expected a duration",
        );
        assert_eq!(
            error.summary(),
            "b.toml: invalid type: integer, expected a string; invalid value: string, expected a duration"
        );
        let unknown = ConfigError::whole_file(
            Path::new("b.toml"),
            "unknown field `bogus`, expected `add` or `remove`",
        );
        assert_eq!(
            unknown.summary(),
            "b.toml: unknown field `bogus`, expected `add` or `remove`"
        );
    }
}
