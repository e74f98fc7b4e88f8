//! Spec errors that say where: `file:line:col: message`, as the proxy's config errors do.
//!
//! The chaos crate does not import the proxy (it reaches one only over HTTP), so the small
//! piece that turns a byte span into a line and column lives here again rather than being
//! shared through a dependency the architecture forbids.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One thing wrong with a spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    /// The file, as given.
    pub path: PathBuf,
    /// 1-based line and column (in characters), when the error belongs to one place.
    pub at: Option<(usize, usize)>,
    /// What is wrong and what was expected.
    pub message: String,
}

impl SpecError {
    /// An error at a byte span of `source`.
    pub fn at_span(path: &Path, source: &str, span: Range<usize>, message: String) -> Self {
        Self {
            path: path.to_owned(),
            at: Some(line_column(source, span.start)),
            message,
        }
    }

    /// An error about the file as a whole.
    pub fn whole_file(path: &Path, message: impl Into<String>) -> Self {
        Self {
            path: path.to_owned(),
            at: None,
            message: message.into(),
        }
    }
}

/// The 1-based line and column of byte `offset` in `source`.
fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    (line, before[line_start..].chars().count() + 1)
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        match self.at {
            None => write!(f, "{path}: {}", self.message),
            Some((line, column)) => write!(f, "{path}:{line}:{column}: {}", self.message),
        }
    }
}

impl std::error::Error for SpecError {}

/// Everything wrong with a spec: checking goes on past the first error, so an author fixes
/// them all in one pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecErrors(pub Vec<SpecError>);

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "error: {error}")?;
        }
        if self.0.len() > 1 {
            write!(f, "\n{} errors", self.0.len())?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_count_lines_and_characters_from_one() {
        let source = "a = 1\nbé = \"x\"\n";
        let start = source.find("\"x\"").expect("in the source");
        let error = SpecError::at_span(Path::new("s.toml"), source, start..start + 3, "no".into());
        assert_eq!(error.to_string(), "s.toml:2:6: no");
    }
}
