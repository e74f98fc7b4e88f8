//! Config errors that say where and what: file, line, column, the offending line with a
//! caret under it, and what was expected.

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
}
