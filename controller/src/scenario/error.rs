//! Scenario errors with file, line and column, and the collector validation reports them to.

use std::collections::BinaryHeap;
use std::fmt;
use std::ops::Range;

use toml::de::DeTable;

use super::echo;
use super::limits::MAX_REPORTED_ERRORS;
use super::tree;
use gameday_proto::position::LineIndex;

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

/// The problems found in one scenario file: the first [`MAX_REPORTED_ERRORS`] in file order,
/// and how many there were in all. Never empty when returned as an error.
///
/// Displayed one error per line, then `… and N more errors` when some were left out: a file
/// with 30,000 mistakes needs its first ones fixed, not a 30,000-line answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioErrors {
    errors: Vec<ScenarioError>,
    total: usize,
}

impl ScenarioErrors {
    /// The errors reported, in file order: at most [`MAX_REPORTED_ERRORS`].
    pub fn errors(&self) -> &[ScenarioError] {
        &self.errors
    }

    /// How many errors the file has in all, reported or not.
    pub fn total(&self) -> usize {
        self.total
    }

    /// How many errors were counted but left out of [`ScenarioErrors::errors`].
    pub fn omitted(&self) -> usize {
        self.total - self.errors.len()
    }
}

impl fmt::Display for ScenarioErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        match self.omitted() {
            0 => Ok(()),
            1 => write!(f, "\n… and 1 more error"),
            n => write!(f, "\n… and {n} more errors"),
        }
    }
}

impl std::error::Error for ScenarioErrors {}

/// Messages are cut after this many bytes. Every echo of input is already short (see
/// `echo`); this only keeps the promise if one is missed.
const MAX_MESSAGE_BYTES: usize = 1024;

/// An error waiting to be placed: ordered by where it is, then by when it was found.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Pending {
    offset: usize,
    found: usize,
    message: String,
}

/// Collects errors for one file while validation goes on, so one pass reports them all.
///
/// Only the first [`MAX_REPORTED_ERRORS`] in file order are kept (a max-heap drops the last
/// one when a better one comes), so memory and the final sort stay bounded however many
/// errors a file has; positions are looked up in an index built once for the file.
pub(crate) struct Diagnostics<'a> {
    file: &'a str,
    index: LineIndex<'a>,
    kept: BinaryHeap<Pending>,
    total: usize,
}

impl<'a> Diagnostics<'a> {
    /// A collector for `text`, read from the file named `file`.
    pub(crate) fn new(file: &'a str, text: &'a str) -> Self {
        Self {
            file,
            index: LineIndex::new(text),
            kept: BinaryHeap::new(),
            total: 0,
        }
    }

    /// Records `message` at the start of the byte range `span`.
    pub(crate) fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        let pending = Pending {
            offset: span.start,
            found: self.total,
            message: String::new(),
        };
        self.total += 1;
        if self.kept.len() == MAX_REPORTED_ERRORS {
            match self.kept.peek() {
                Some(last) if pending < *last => {
                    self.kept.pop();
                }
                _ => return,
            }
        }
        let mut message = message.into();
        if message.len() > MAX_MESSAGE_BYTES {
            let mut cut = MAX_MESSAGE_BYTES;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        self.kept.push(Pending { message, ..pending });
    }

    /// Records an error from toml or serde.
    ///
    /// `within` is the table that was being deserialized: when the error points inside it, the
    /// message is prefixed with the key path (serde's type errors do not name the field). Errors
    /// without a position are put at `fallback`. Input that toml or serde quote is cut short.
    pub(crate) fn toml_error(
        &mut self,
        error: &toml::de::Error,
        within: Option<&DeTable<'_>>,
        fallback: Range<usize>,
    ) {
        let span = error.span().unwrap_or(fallback);
        let path = within.and_then(|table| tree::path_to(table, &span));
        let reason = echo::shorten_quotes(error.message());
        let message = match path {
            Some(path) => format!("{}: {reason}", echo::ticked(&path)),
            None => reason,
        };
        self.error(span, message);
    }

    /// The 1-based line of byte `offset`, to point back at an earlier definition.
    pub(crate) fn line(&self, offset: usize) -> usize {
        self.index.line(offset)
    }

    /// Whether anything was reported.
    pub(crate) fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The first errors in file order (line, then column; ties keep the order they were found
    /// in), and the count of all.
    pub(crate) fn into_errors(self) -> ScenarioErrors {
        let errors = self
            .kept
            .into_sorted_vec()
            .into_iter()
            .map(|pending| {
                let (line, column) = self.index.line_column(pending.offset);
                ScenarioError {
                    file: self.file.to_string(),
                    line,
                    column,
                    message: pending.message,
                }
            })
            .collect();
        ScenarioErrors {
            errors,
            total: self.total,
        }
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
        assert_eq!(errors.errors()[1].to_string(), "s.toml:2:1: second");
        assert_eq!((errors.total(), errors.omitted()), (2, 0));
    }

    #[test]
    fn keeps_the_first_errors_in_file_order_and_counts_the_rest() {
        let text = "x\n".repeat(1_000);
        let mut diagnostics = Diagnostics::new("s.toml", &text);
        // Found from the last line up, so the ones kept are not simply the first found.
        for line in (0..1_000).rev() {
            diagnostics.error(line * 2..line * 2 + 1, format!("on line {}", line + 1));
        }
        let errors = diagnostics.into_errors();
        assert_eq!(errors.total(), 1_000);
        assert_eq!(errors.errors().len(), MAX_REPORTED_ERRORS);
        assert_eq!(errors.omitted(), 1_000 - MAX_REPORTED_ERRORS);
        let lines: Vec<usize> = errors.errors().iter().map(|e| e.line).collect();
        assert_eq!(lines, (1..=MAX_REPORTED_ERRORS).collect::<Vec<_>>());
        let shown = errors.to_string();
        assert_eq!(shown.lines().count(), MAX_REPORTED_ERRORS + 1);
        assert!(
            shown.ends_with("\n… and 900 more errors"),
            "{}",
            &shown[shown.len() - 60..]
        );
    }

    #[test]
    fn overlong_messages_are_cut() {
        let mut diagnostics = Diagnostics::new("s.toml", "");
        diagnostics.error(0..0, "é".repeat(MAX_MESSAGE_BYTES));
        let errors = diagnostics.into_errors();
        let message = &errors.errors()[0].message;
        assert!(
            message.len() <= MAX_MESSAGE_BYTES + '…'.len_utf8(),
            "{}",
            message.len()
        );
        assert!(message.ends_with("é…"));
    }

    #[test]
    fn errors_at_the_same_place_keep_the_order_they_were_found_in() {
        let mut diagnostics = Diagnostics::new("s.toml", "");
        for i in 0..(MAX_REPORTED_ERRORS + 1) {
            diagnostics.error(0..0, format!("error {i}"));
        }
        let errors = diagnostics.into_errors();
        assert_eq!(errors.errors()[0].message, "error 0");
        assert_eq!(
            errors.errors()[MAX_REPORTED_ERRORS - 1].message,
            format!("error {}", MAX_REPORTED_ERRORS - 1)
        );
        assert!(errors.to_string().ends_with("… and 1 more error"));
    }
}
