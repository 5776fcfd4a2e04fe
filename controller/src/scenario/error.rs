//! Scenario errors with file, line and column, and the collector validation reports them to.

use std::fmt;
use std::ops::Range;

use toml::de::DeTable;

use super::position::line_column;
use super::tree;

/// One problem in a scenario file, at a 1-based line and column (columns count characters).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct ScenarioError {
    /// The file as the caller named it.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What is wrong and what was expected.
    pub message: String,
}

/// Every problem found in one scenario file, in file order; never empty when returned as an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioErrors(pub Vec<ScenarioError>);

impl fmt::Display for ScenarioErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ScenarioErrors {}

/// Collects errors for one file while validation goes on, so one pass reports them all.
pub(crate) struct Diagnostics<'a> {
    file: &'a str,
    text: &'a str,
    errors: Vec<ScenarioError>,
}

impl<'a> Diagnostics<'a> {
    /// A collector for `text`, read from the file named `file`.
    pub(crate) fn new(file: &'a str, text: &'a str) -> Self {
        Self {
            file,
            text,
            errors: Vec::new(),
        }
    }

    /// Records `message` at the start of the byte range `span`.
    pub(crate) fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        let (line, column) = line_column(self.text, span.start);
        self.errors.push(ScenarioError {
            file: self.file.to_string(),
            line,
            column,
            message: message.into(),
        });
    }

    /// Records an error from toml or serde.
    ///
    /// `within` is the table that was being deserialized: when the error points inside it, the
    /// message is prefixed with the key path (serde's type errors do not name the field). Errors
    /// without a position are put at `fallback`.
    pub(crate) fn toml_error(
        &mut self,
        error: &toml::de::Error,
        within: Option<&DeTable<'_>>,
        fallback: Range<usize>,
    ) {
        let span = error.span().unwrap_or(fallback);
        let path = within.and_then(|table| tree::path_to(table, &span));
        let message = match path {
            Some(path) => format!("`{path}`: {}", error.message()),
            None => error.message().to_string(),
        };
        self.error(span, message);
    }

    /// The 1-based line of byte `offset`, to point back at an earlier definition.
    pub(crate) fn line(&self, offset: usize) -> usize {
        line_column(self.text, offset).0
    }

    /// Whether anything was reported.
    pub(crate) fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// The errors in file order (line, then column; ties keep the order they were found in).
    pub(crate) fn into_errors(mut self) -> ScenarioErrors {
        self.errors.sort_by_key(|e| (e.line, e.column));
        ScenarioErrors(self.errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_one_error_per_line() {
        let mut diagnostics = Diagnostics::new("s.toml", "a = 1\nb = 2\n");
        diagnostics.error(6..7, "second");
        diagnostics.error(0..1, "first");
        let errors = diagnostics.into_errors();
        assert_eq!(errors.to_string(), "s.toml:1:1: first\ns.toml:2:1: second");
        assert_eq!(errors.0[1].to_string(), "s.toml:2:1: second");
    }
}
