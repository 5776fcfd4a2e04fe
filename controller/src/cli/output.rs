//! Printing reports, writing the report files CI asks for (`--junit`, `--html`,
//! `--out-file`), and choosing the exit code.
//!
//! Everything the CLI prints on stdout goes through [`print`], so a reader that goes away
//! (`gameday report RUN | head`) ends the program quietly with [`PIPE_CLOSED`], as
//! Unix tools do, instead of a panic and exit 101.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use gameday::render::{render, Format, ReportInput};
use gameday::report::{exit, ScenarioReport};

use super::OutputFormat;

/// Exit status when stdout's reader went away: 128 + SIGPIPE, what a shell reports for a
/// Unix tool that SIGPIPE ended.
pub const PIPE_CLOSED: i32 = 141;

/// Stdout was closed by its reader; the program stops printing and ends with
/// [`PIPE_CLOSED`], saying nothing.
#[derive(Debug, thiserror::Error)]
#[error("stdout was closed by its reader")]
pub struct StdoutClosed;

/// Writes `text` to stdout and flushes it. A closed pipe is [`StdoutClosed`]; other write
/// errors (a full disk behind a redirection) are reported.
pub fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        Err(e) => Err(anyhow::Error::new(e).context("writing to stdout")),
    }
}

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
pub fn print_report(report: &ScenarioReport, out: impl Into<ReportOutput>) -> anyhow::Result<i32> {
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
    print(&render(&input, out.format))?;
    Ok(code)
}

/// Writes `contents` to a temporary file beside `path` and renames it over `path`, so a reader
/// (a CI step, a browser) never sees half a report. The file gets the mode any new file of
/// the user gets (0666 less the umask, 0644 typically), not the temporary file's 0600: a
/// report is for sharing.
pub fn write_replacing(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // open(2) applies the umask to the mode asked for, as it does for any new file.
    let mut tmp = tempfile::Builder::new()
        .prefix(".gameday-report-")
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)?;
    tmp.write_all(contents.as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn report_files_get_the_mode_of_any_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.html");
        write_replacing(&path, "<html></html>").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        // What the umask leaves of 0666, whatever this process's umask is.
        let probe = dir.path().join("plain");
        std::fs::write(&probe, "").unwrap();
        let plain = std::fs::metadata(&probe).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, plain, "a report is {mode:o}, a new file {plain:o}");
        assert_ne!(mode, 0o600, "not tempfile's private mode");
        // Replacing keeps working and leaves no temporary file behind.
        write_replacing(&path, "two").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }
}
