//! Printing reports, writing the report files CI asks for (`--junit`, `--html`), and choosing
//! the exit code.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use gameday::render::{render, Format, ReportInput};
use gameday::report::{exit, ScenarioReport};

use super::OutputFormat;

/// Where a report goes: stdout in one format, plus the files `--junit` and `--html` name.
#[derive(Clone, Debug, Default)]
pub struct ReportOutput {
    /// What stdout gets.
    pub format: Format,
    /// Where to write JUnit XML as well.
    pub junit: Option<PathBuf>,
    /// Where to write the self-contained HTML report as well.
    pub html: Option<PathBuf>,
}

impl From<OutputFormat> for ReportOutput {
    fn from(format: OutputFormat) -> ReportOutput {
        ReportOutput {
            format: match format {
                OutputFormat::Text => Format::Text,
                OutputFormat::Json => Format::Json,
            },
            ..ReportOutput::default()
        }
    }
}

/// Writes the requested report files, prints the report on stdout in the chosen format, and
/// returns the exit code: the report's own, or `exit::INFRA` when a requested file could not
/// be written (a CI gate that loses its JUnit file has not done its job).
pub fn print_report(report: &ScenarioReport, out: impl Into<ReportOutput>) -> i32 {
    let out = out.into();
    let input = ReportInput::new(report);
    let mut code = report.summary.exit_code;
    for (path, format) in [(&out.junit, Format::Junit), (&out.html, Format::Html)] {
        let Some(path) = path else { continue };
        if let Err(e) = write_replacing(path, &render(&input, format)) {
            eprintln!(
                "error: cannot write the {format:?} report to {}: {e}",
                path.display()
            );
            code = exit::INFRA;
        }
    }
    print!("{}", render(&input, out.format));
    let _ = std::io::stdout().flush();
    code
}

/// Writes `contents` to a temporary file beside `path` and renames it over `path`, so a reader
/// (a CI step, a browser) never sees half a report.
fn write_replacing(path: &Path, contents: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(contents.as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
