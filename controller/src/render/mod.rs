//! Report rendering: one scenario's report, and optionally the trend of its past runs, as text,
//! Markdown, one self-contained HTML file with SVG plots, JSON, or JUnit XML for CI systems.
//!
//! Every renderer is a pure function of its input, so `gameday run`, `gameday report` and the
//! tests all produce the same bytes from the same report.

mod escape;
mod html;
mod junit;
mod markdown;
mod svg;
mod timeline_plot;
pub mod trend;

use std::fmt::Write as _;

use crate::grade::fmt_us;
use crate::report::{render_text, ScenarioReport};

pub use trend::{regression, Regression, RegressionRule};

/// The formats a report renders to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Format {
    /// For people on a terminal.
    #[default]
    Text,
    /// Markdown (GitHub flavoured tables), for tickets, wikis and pull requests.
    #[value(name = "md", alias = "markdown")]
    Markdown,
    /// One self-contained HTML file with timeline plots (no external resources, no scripts).
    Html,
    /// The full report as one JSON document.
    Json,
    /// JUnit XML: one test case per run, for CI systems.
    Junit,
}

impl Format {
    /// The usual file extension of the format, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Text => "txt",
            Format::Markdown => "md",
            Format::Html => "html",
            Format::Json => "json",
            Format::Junit => "xml",
        }
    }
}

/// A self-contained HTML page titled `title` whose content `body` writes (with the reports'
/// own style), and one scenario's report as a section of such a page: for pages that put
/// several reports together, such as a game-day session's.
pub fn html_document(title: &str, body: impl FnOnce(&mut String)) -> String {
    html::document(title, body)
}

/// See [`html_document`].
pub fn html_scenario_section(out: &mut String, report: &ScenarioReport) {
    html::scenario_body(out, &ReportInput::new(report));
}

/// Escapes text for HTML.
pub fn html_escape(text: &str) -> String {
    escape::xml(text)
}

/// One past run of a scenario, for trends: the history store's own type.
pub use crate::store::TrendPoint;

/// What a report is rendered from.
#[derive(Clone, Copy, Debug)]
pub struct ReportInput<'a> {
    /// The scenario's report.
    pub report: &'a ScenarioReport,
    /// Past runs of the scenario, in any order (they are sorted by start time); may be empty.
    /// Include the report's own runs here when they are already in the history.
    pub trend: &'a [TrendPoint],
}

impl<'a> ReportInput<'a> {
    /// A report without history.
    pub fn new(report: &'a ScenarioReport) -> ReportInput<'a> {
        ReportInput { report, trend: &[] }
    }

    /// A report with the trend of past runs.
    pub fn with_trend(report: &'a ScenarioReport, trend: &'a [TrendPoint]) -> ReportInput<'a> {
        ReportInput { report, trend }
    }
}

/// Renders a report in a format.
pub fn render(input: &ReportInput<'_>, format: Format) -> String {
    match format {
        Format::Text => render_text_with_trend(input),
        Format::Markdown => markdown::render(input),
        Format::Html => html::render(input),
        Format::Json => render_json(input),
        Format::Junit => junit::render(input.report),
    }
}

/// The text report, plus a few lines on the trend when there is one.
fn render_text_with_trend(input: &ReportInput<'_>) -> String {
    let mut out = render_text(input.report);
    if input.trend.is_empty() {
        return out;
    }
    let points = trend::sorted(input.trend);
    let measured: Vec<u64> = points.iter().filter_map(|p| p.recovery_us).collect();
    let _ = writeln!(
        out,
        "trend: {} past run(s), {} with a recovery time{}",
        points.len(),
        measured.len(),
        measured
            .last()
            .map(|us| format!(", latest {}", fmt_us(*us)))
            .unwrap_or_default()
    );
    match regression(input.trend) {
        Some(r) => {
            let _ = writeln!(out, "REGRESSION: {}", r.summary());
        }
        None => {
            let _ = writeln!(out, "regression: none ({})", trend::rule_text());
        }
    }
    out
}

/// The report as JSON: exactly the `ScenarioReport` document (what `gameday run --output json`
/// prints), with a `trend` member added when there is history:
/// `{"points": [{run_id, started_unix_ms, verdict, recovery_us}], "regression": {...} | null}`.
fn render_json(input: &ReportInput<'_>) -> String {
    // Without history, straight from the struct, so the members keep its order.
    let encoded = if input.trend.is_empty() {
        serde_json::to_string_pretty(input.report)
    } else {
        serde_json::to_value(input.report).and_then(|mut value| {
            if let Some(obj) = value.as_object_mut() {
                obj.insert("trend".into(), trend_json(input.trend));
            }
            serde_json::to_string_pretty(&value)
        })
    };
    let mut s = encoded.unwrap_or_else(|e| {
        serde_json::json!({ "error": format!("cannot encode the report: {e}") }).to_string()
    });
    s.push('\n');
    s
}

/// The `trend` member of the JSON report.
fn trend_json(points: &[TrendPoint]) -> serde_json::Value {
    let sorted: Vec<serde_json::Value> = trend::sorted(points)
        .iter()
        .map(|p| {
            serde_json::json!({
                "run_id": p.run_id,
                "started_unix_ms": p.started_unix_ms,
                "verdict": p.verdict,
                "recovery_us": p.recovery_us,
            })
        })
        .collect();
    let regression = regression(points).map(|r| {
        serde_json::json!({
            "run_id": r.run_id,
            "latest_recovery_us": r.latest_recovery_us,
            "threshold_us": r.threshold_us,
            "median_us": r.median_us,
            "p95_us": r.p95_us,
            "previous": r.previous,
            "summary": r.summary(),
        })
    });
    serde_json::json!({ "points": sorted, "regression": regression })
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) of a Unix time in milliseconds; `None` for 0 (unknown).
pub(crate) fn utc_datetime(unix_ms: u64) -> Option<(String, String)> {
    if unix_ms == 0 {
        return None;
    }
    let secs = unix_ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    Some((
        format!("{year:04}-{month:02}-{day:02}"),
        format!("{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60),
    ))
}

/// When the run's last probe answer (or revert) came, microseconds since its epoch: how long
/// the run took.
pub(crate) fn run_duration_us(run: &crate::report::RunReport) -> u64 {
    let last_sample = run
        .probes
        .iter()
        .filter_map(|p| p.samples.last().map(|s| s.end_us))
        .max()
        .unwrap_or(0);
    last_sample.max(run.revert_us.unwrap_or(0))
}

/// A fault's figures as `name=value` items, names passed through the format's escaper.
/// What a report says under one fault, after its "kind on agent: applied" line, escaped for
/// the report's format; each format lays the lines out its own way.
pub(crate) enum FaultLine {
    /// What the fault did, as the agent described it.
    Evidence(String),
    /// `key=value` figures gathered at apply (`"figures"`) or at revert (`"revert figures"`).
    Figures(&'static str, Vec<String>),
    /// When it was reverted (`+1.2s`), and what the revert found.
    Reverted(String, Option<String>),
    /// Why it failed.
    Error(String),
}

/// One probe's row in a report's probe table, its texts escaped for the report's format.
pub(crate) struct ProbeRow<'r> {
    pub name: String,
    pub samples: usize,
    pub failed: usize,
    pub impact: Option<&'r crate::grade::Measured>,
    pub recovered: Option<&'r crate::grade::Measured>,
    pub relapses: u32,
    /// Its own verdict, or "—" for a run not graded.
    pub verdict: String,
    pub first_error: String,
}

/// The rows of `run`'s probe table, in probe order.
pub(crate) fn probe_rows<'r>(
    run: &'r crate::report::RunReport,
    esc: impl Fn(&str) -> String,
) -> Vec<ProbeRow<'r>> {
    run.probes
        .iter()
        .map(|p| {
            let rec = run
                .grade
                .as_ref()
                .and_then(|g| g.probes.iter().find(|x| x.probe == p.name));
            ProbeRow {
                name: esc(&p.name),
                samples: p.samples.len(),
                failed: p.samples.iter().filter(|s| !s.ok).count(),
                impact: rec.and_then(|x| x.impact.as_ref()),
                recovered: rec.and_then(|x| x.recovered.as_ref()),
                relapses: rec.map_or(0, |x| x.relapses),
                verdict: rec
                    .and_then(|x| x.verdict)
                    .map_or_else(|| "—".to_string(), |v| v.to_string()),
                first_error: p
                    .samples
                    .iter()
                    .find(|s| !s.ok)
                    .map(|s| esc(&s.error))
                    .unwrap_or_default(),
            }
        })
        .collect()
}

/// The lines under fault `f`, in report order.
pub(crate) fn fault_lines(
    f: &crate::report::FaultRecord,
    esc: impl Fn(&str) -> String,
) -> Vec<FaultLine> {
    let mut lines = Vec::new();
    if !f.evidence.is_empty() {
        lines.push(FaultLine::Evidence(esc(&f.evidence)));
    }
    for (what, figures) in [
        ("figures", &f.figures),
        ("revert figures", &f.revert_figures),
    ] {
        if !figures.is_empty() {
            lines.push(FaultLine::Figures(what, figure_items(figures, &esc)));
        }
    }
    if let Some(at) = f.reverted_us {
        let found = (!f.revert_evidence.is_empty()).then(|| esc(&f.revert_evidence));
        lines.push(FaultLine::Reverted(format!("+{}", fmt_us(at)), found));
    }
    if let Some(e) = &f.error {
        lines.push(FaultLine::Error(esc(e)));
    }
    lines
}

fn figure_items(
    figures: &std::collections::BTreeMap<String, i64>,
    esc: impl Fn(&str) -> String,
) -> Vec<String> {
    figures
        .iter()
        .map(|(k, v)| format!("{}={v}", esc(k)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(utc_datetime(0), None);
        assert_eq!(
            utc_datetime(1),
            Some(("1970-01-01".into(), "00:00:00".into()))
        );
        // 2024-02-29T23:59:59Z, a leap day.
        assert_eq!(
            utc_datetime(1_709_251_199_000),
            Some(("2024-02-29".into(), "23:59:59".into()))
        );
        assert_eq!(
            utc_datetime(1_735_689_600_000),
            Some(("2025-01-01".into(), "00:00:00".into()))
        );
    }

    #[test]
    fn json_is_the_report_plus_the_trend() {
        use crate::grade::Verdict;
        let report = ScenarioReport {
            scenario: "s".into(),
            file: "s.toml".into(),
            expect: crate::scenario::Expectation::Recovery,
            rto_us: 1_000_000,
            error: None,
            runs: vec![],
            summary: crate::report::summarize(&[], 1.0, false),
        };
        let plain = render(&ReportInput::new(&report), Format::Json);
        let back: ScenarioReport = serde_json::from_str(&plain).unwrap();
        assert_eq!(back, report);
        assert!(!plain.contains("\"trend\""));
        let trend: Vec<TrendPoint> = [100, 100, 100, 900]
            .iter()
            .enumerate()
            .map(|(i, ms)| TrendPoint {
                run_id: format!("r{i}"),
                started_unix_ms: 1_000 + i as u64,
                verdict: Verdict::Pass,
                recovery_us: Some(ms * 1000),
            })
            .collect();
        let with = render(&ReportInput::with_trend(&report, &trend), Format::Json);
        let v: serde_json::Value = serde_json::from_str(&with).unwrap();
        assert_eq!(v["trend"]["points"].as_array().unwrap().len(), 4);
        assert_eq!(v["trend"]["regression"]["run_id"], "r3");
        assert_eq!(v["trend"]["regression"]["threshold_us"], 150_000);
        let back: ScenarioReport = serde_json::from_value(v).unwrap();
        assert_eq!(
            back, report,
            "still a ScenarioReport for readers that ignore the trend"
        );
        let text = render(&ReportInput::with_trend(&report, &trend), Format::Text);
        assert!(text.contains("REGRESSION: the latest run (r3)"), "{text}");
    }

    #[test]
    fn format_names_parse_as_cli_values() {
        use clap::ValueEnum as _;
        for (name, f) in [
            ("text", Format::Text),
            ("md", Format::Markdown),
            ("markdown", Format::Markdown),
            ("html", Format::Html),
            ("json", Format::Json),
            ("junit", Format::Junit),
        ] {
            assert_eq!(Format::from_str(name, false), Ok(f), "{name}");
        }
    }
}
