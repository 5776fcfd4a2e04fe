//! The one-page summary that opens a session's combined report: every run's four timings
//! against their objectives (time to detect, remediation start, each stage, full restore),
//! what monitoring missed, and the action items from the notes.

use std::fmt::Write as _;

use super::SessionReport;
use crate::annotation::AnnotationKind;
use crate::grade::fmt_us;
use crate::render::{html_document, html_escape as esc, html_scenario_section};
use crate::report::{render_text as scenario_text, RunReport};

/// One run's row: (scenario, run id, verdict, detect, remediation, stages, full restore).
struct Row {
    scenario: String,
    run: String,
    verdict: String,
    detect: String,
    remediation: String,
    stages: String,
    restore: String,
}

fn rows(report: &SessionReport) -> Vec<Row> {
    report
        .scenarios
        .iter()
        .flat_map(|s| {
            s.runs.iter().map(move |run| Row {
                scenario: s.scenario.clone(),
                run: run.run_id.clone(),
                verdict: run.verdict.to_string(),
                detect: detect(run),
                remediation: remediation(run),
                stages: if run.stages.is_empty() {
                    "—".into()
                } else {
                    run.stages
                        .iter()
                        .map(|st| st.line())
                        .collect::<Vec<_>>()
                        .join("; ")
                },
                restore: restore(run, s.rto_us),
            })
        })
        .collect()
}

/// Remediation start, and how each runbook step went: "+2.319s (restart: succeeded)".
fn remediation(run: &RunReport) -> String {
    let start = run
        .remediation
        .as_ref()
        .map_or_else(|| "—".into(), |r| format!("+{}", fmt_us(r.after_fault_us)));
    if run.remediation_steps.is_empty() {
        return start;
    }
    let steps: Vec<String> = run
        .remediation_steps
        .iter()
        .map(|s| format!("{}: {}", s.name, s.outcome.word()))
        .collect();
    format!("{start} ({})", steps.join(", "))
}

fn detect(run: &RunReport) -> String {
    match &run.detection {
        None => "—".into(),
        Some(d) => match &d.alert {
            None => "UNNOTICED".into(),
            Some(a) => {
                let by = a.fired_after_us.unwrap_or(a.delivered_after_us);
                format!("+{}", fmt_us(by))
            }
        },
    }
}

fn restore(run: &RunReport, rto_us: u64) -> String {
    match run.grade.as_ref().and_then(|g| g.time_to_recover) {
        Some(m) => format!("+{} (RTO {})", fmt_us(m.us), fmt_us(rto_us)),
        None => format!("not restored (RTO {})", fmt_us(rto_us)),
    }
}

/// What monitoring missed: "scenario (run): unnoticed by monitoring: ...".
fn unnoticed(report: &SessionReport) -> Vec<String> {
    report
        .scenarios
        .iter()
        .flat_map(|s| {
            s.runs.iter().filter_map(move |run| {
                let d = run.detection.as_ref().filter(|d| !d.noticed())?;
                Some(format!("{} ({}): {}", s.scenario, run.run_id, d.summary()))
            })
        })
        .collect()
}

/// Action items from every run's notes: "scenario (run): text — author".
fn action_items(report: &SessionReport) -> Vec<String> {
    report
        .scenarios
        .iter()
        .flat_map(|s| {
            s.runs.iter().flat_map(move |run| {
                run.annotations
                    .iter()
                    .filter(|a| a.kind == AnnotationKind::ActionItem)
                    .map(move |a| {
                        format!("{} ({}): {} — {}", s.scenario, run.run_id, a.text, a.author)
                    })
            })
        })
        .collect()
}

/// The summary, then every scenario's report, for a terminal.
pub fn render_text(report: &SessionReport) -> String {
    let mut out = format!("game day {} ({})\n\n", report.name, report.session);
    for r in rows(report) {
        let _ = writeln!(
            out,
            "{} {} {}\n  time to detect: {}  remediation start: {}\n  stages: {}\n  full restore: {}",
            r.scenario, r.run, r.verdict, r.detect, r.remediation, r.stages, r.restore
        );
    }
    for (title, items) in [
        ("unnoticed by monitoring", unnoticed(report)),
        ("action items", action_items(report)),
    ] {
        let _ = writeln!(out, "\n{title}:");
        if items.is_empty() {
            out.push_str("  none\n");
        }
        for item in items {
            let _ = writeln!(out, "  - {item}");
        }
    }
    for s in &report.scenarios {
        out.push('\n');
        out.push_str(&scenario_text(s));
    }
    out
}

/// One HTML page: the summary first, then every scenario's full report.
pub fn render_html(report: &SessionReport) -> String {
    let title = format!("game day {}", report.name);
    html_document(&title, |out| {
        let _ = writeln!(
            out,
            "<header>\n<h1>{}</h1>\n<p class=\"meta\">session {} · {} scenario(s)</p>\n</header>\n<section class=\"session\">\n<h2>Summary</h2>\n<table>\n<tr><th>scenario</th><th>run</th><th>verdict</th><th>time to detect</th><th>remediation start</th><th>stages</th><th>full restore</th></tr>",
            esc(&title),
            esc(&report.session),
            report.scenarios.len()
        );
        for r in rows(report) {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&r.scenario),
                esc(&r.run),
                esc(&r.verdict),
                esc(&r.detect),
                esc(&r.remediation),
                esc(&r.stages),
                esc(&r.restore)
            );
        }
        out.push_str("</table>\n");
        for (title, items) in [
            ("Unnoticed by monitoring", unnoticed(report)),
            ("Action items", action_items(report)),
        ] {
            let _ = writeln!(out, "<h3>{title}</h3>\n<ul>");
            if items.is_empty() {
                out.push_str("<li>none</li>\n");
            }
            for item in items {
                let _ = writeln!(out, "<li>{}</li>", esc(&item));
            }
            out.push_str("</ul>\n");
        }
        out.push_str("</section>\n");
        for s in &report.scenarios {
            html_scenario_section(out, s);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::step;
    use crate::remediation::StepOutcome;

    #[test]
    fn the_remediation_column_names_each_step_and_how_it_went() {
        let mut run = crate::fixtures::run("r1", crate::grade::Verdict::Pass, Some(1_000_000));
        assert_eq!(remediation(&run), "—");
        run.remediation_steps = vec![
            step(
                "promote",
                StepOutcome::Succeeded {
                    how: "exit 0".into(),
                },
            ),
            step(
                "page",
                StepOutcome::NotRun {
                    why: "no alert".into(),
                },
            ),
        ];
        run.remediation = Some(crate::annotation::Remediation {
            after_fault_us: 2_319_000,
            after_alert_us: Some(14_000),
            before_alert: false,
            by: "remediation step promote".into(),
            text: String::new(),
        });
        assert_eq!(
            remediation(&run),
            "+2.319s (promote: succeeded, page: not run)"
        );
    }
}
