//! Printing reports and choosing the exit code.

use gameday::report::{render_text, ScenarioReport};

use super::OutputFormat;

/// Prints the report on stdout in the chosen format and returns its exit code.
pub fn print_report(report: &ScenarioReport, format: OutputFormat) -> i32 {
    match format {
        OutputFormat::Text => print!("{}", render_text(report)),
        OutputFormat::Json => match serde_json::to_string_pretty(report) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("error: cannot encode the report as JSON: {e}"),
        },
    }
    report.summary.exit_code
}
