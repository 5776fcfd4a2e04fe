//! The Markdown report: a table of runs with their figures and brackets, the evidence of each
//! fault, the summary over repeats, and the trend with its regression flag. GitHub-flavoured
//! (pipe tables); every value from outside is escaped.

use std::fmt::Write as _;

use super::escape::markdown as esc;
use super::trend::{self, RegressionRule};
use super::{fault_lines, probe_rows, utc_datetime, FaultLine, ReportInput};
use crate::grade::{fmt_us, Measured};
use crate::report::{RunReport, ScenarioReport};

fn figure(m: Option<&Measured>) -> String {
    match m {
        Some(m) => format!(
            "{} \\[{} .. {}\\]",
            fmt_us(m.us),
            fmt_us(m.low_us),
            fmt_us(m.high_us)
        ),
        None => "—".into(),
    }
}

/// Renders the Markdown report.
pub(crate) fn render(input: &ReportInput<'_>) -> String {
    let r = input.report;
    let mut out = String::new();
    let _ = writeln!(out, "# gameday report: {}\n", esc(&r.scenario));
    let _ = writeln!(
        out,
        "File {} — expects {} — RTO **{}** — verdict **{}** (exit code {})\n",
        esc(&r.file),
        esc(r.expect.as_str()),
        fmt_us(r.rto_us),
        r.summary.verdict,
        r.summary.exit_code
    );
    if let Some(e) = &r.error {
        let _ = writeln!(out, "> **ERROR before any run:** {}\n", esc(e));
    }
    runs_table(&mut out, r);
    summary(&mut out, r);
    if !input.trend.is_empty() {
        trend_section(&mut out, input);
    }
    for run in &r.runs {
        run_section(&mut out, r, run);
    }
    out
}

fn runs_table(out: &mut String, r: &ScenarioReport) {
    if r.runs.is_empty() {
        return;
    }
    out.push_str("## Runs\n\n");
    out.push_str(
        "| run | verdict | time to detect | time to recover \\[bracket\\] | RTO | reason |\n",
    );
    out.push_str("|---|---|---|---|---|---|\n");
    for run in &r.runs {
        let g = run.grade.as_ref();
        // A FAIL, an ERROR or an INCONCLUSIVE never meets an expectation; say so only where
        // the verdict alone would read as good news.
        let met = if !run.met_expectation
            && matches!(
                run.verdict,
                crate::grade::Verdict::Pass | crate::grade::Verdict::NoImpact
            ) {
            " (unexpected)"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "| {} ({}) | **{}**{met} | {} | {} | {} | {} |",
            run.index,
            esc(&run.run_id),
            run.verdict,
            figure(g.and_then(|g| g.time_to_detect.as_ref())),
            figure(g.and_then(|g| g.time_to_recover.as_ref())),
            fmt_us(r.rto_us),
            esc(&run.reason)
        );
    }
    out.push_str(
        "\nBrackets: the truth lies between the last failed sample and the first good sample.\n\n",
    );
}

fn summary(out: &mut String, r: &ScenarioReport) {
    let s = &r.summary;
    out.push_str("## Summary\n\n");
    let _ = writeln!(out, "- **{}** — {}", s.verdict, esc(&s.reason));
    match (s.recovery_p50_us, s.recovery_p95_us, s.recovery_max_us) {
        (Some(p50), Some(p95), Some(max)) => {
            let _ = writeln!(
                out,
                "- recovery: p50 {}, p95 {}, max {}",
                fmt_us(p50),
                fmt_us(p95),
                fmt_us(max)
            );
        }
        _ => out.push_str("- recovery: no run recovered\n"),
    }
    let _ = writeln!(out, "- exit code {}\n", s.exit_code);
}

fn trend_section(out: &mut String, input: &ReportInput<'_>) {
    let points = trend::sorted(input.trend);
    let base = trend::baseline(&points, &RegressionRule::default());
    out.push_str("## Trend\n\n");
    match trend::regression(input.trend) {
        Some(reg) => {
            let _ = writeln!(out, "> **REGRESSION:** {}\n", esc(&reg.summary()));
        }
        None if base.is_some() => out.push_str("No regression.\n\n"),
        None => out.push_str(
            "Not enough history to judge a regression (3 earlier runs with a recovery time are needed).\n\n",
        ),
    }
    out.push_str("| run | started (UTC) | verdict | recovery | vs RTO | |\n");
    out.push_str("|---|---|---|---|---|---|\n");
    let flagged = trend::regression(input.trend).is_some();
    for (i, p) in points.iter().enumerate() {
        let when = utc_datetime(p.started_unix_ms)
            .map(|(d, t)| format!("{d} {t}"))
            .unwrap_or_else(|| "—".into());
        let (recovery, vs) = match p.recovery_us {
            Some(us) => (
                fmt_us(us),
                if us <= input.report.rto_us {
                    "within"
                } else {
                    "over"
                },
            ),
            None => ("—".into(), ""),
        };
        let flag = match &base {
            Some(b) if b.latest == i && flagged => "**regression**",
            Some(b) if b.latest == i => "latest",
            _ => "",
        };
        let _ = writeln!(
            out,
            "| {} | {when} | {} | {recovery} | {vs} | {flag} |",
            esc(&p.run_id),
            p.verdict
        );
    }
    let _ = writeln!(out, "\nRule: {}.\n", trend::rule_text());
}

fn run_section(out: &mut String, r: &ScenarioReport, run: &RunReport) {
    let _ = writeln!(
        out,
        "## Run {} — {} ({})\n",
        run.index,
        run.verdict,
        esc(&run.run_id)
    );
    let _ = writeln!(out, "{}\n", esc(&run.reason));
    if !run.targets.is_empty() {
        let targets: Vec<String> = run.targets.iter().map(|t| esc(t)).collect();
        let _ = writeln!(out, "- targets: {}", targets.join(", "));
    }
    if let Some((d, t)) = utc_datetime(run.started_unix_ms) {
        let _ = writeln!(out, "- started: {d} {t} UTC");
    }
    if let Some(m) = &run.inject {
        let _ = writeln!(
            out,
            "- fault took effect at +{} (±{}) after the run's start",
            fmt_us(m.at_us),
            fmt_us(m.uncertainty_us)
        );
    }
    if let Some(g) = &run.grade {
        if let Some(p) = &g.recovered_by {
            let _ = writeln!(
                out,
                "- recovered last: probe {} (it set the time to recover)",
                esc(p)
            );
        }
        if let Some(us) = g.recover_after_revert_us {
            let _ = writeln!(out, "- recovery after the revert: {}", fmt_us(us));
        }
    }
    for (what, text) in run.timeline_facts() {
        let _ = writeln!(out, "- {what}: {}", esc(&text));
    }
    let _ = writeln!(out, "- RTO: {}", fmt_us(r.rto_us));
    if !run.faults.is_empty() {
        out.push_str("\n### Faults\n\n");
    }
    for f in &run.faults {
        let applied = f.applied_text();
        let _ = writeln!(
            out,
            "- **{}** on {}: {applied}",
            esc(&f.kind),
            esc(&f.agent)
        );
        for line in fault_lines(f, esc) {
            let _ = match line {
                FaultLine::Evidence(e) => writeln!(out, "  - evidence: {e}"),
                FaultLine::Figures(what, items) => {
                    writeln!(out, "  - {what}: {}", items.join(", "))
                }
                FaultLine::Reverted(at, None) => writeln!(out, "  - reverted at {at}"),
                FaultLine::Reverted(at, Some(found)) => {
                    writeln!(out, "  - reverted at {at}: {found}")
                }
                FaultLine::Error(e) => writeln!(out, "  - **error:** {e}"),
            };
        }
    }
    if !run.probes.is_empty() {
        out.push_str("\n### Probes\n\n");
        out.push_str(
            "| probe | samples | failed | impact | recovered | relapses | verdict | first error |\n",
        );
        out.push_str("|---|---|---|---|---|---|---|---|\n");
        for p in probe_rows(run, esc) {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                p.name,
                p.samples,
                p.failed,
                figure(p.impact),
                figure(p.recovered),
                p.relapses,
                p.verdict,
                p.first_error
            );
        }
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grade::{Grade, Verdict};
    use crate::render::TrendPoint;
    use crate::report::{summarize, FaultRecord};

    fn report() -> ScenarioReport {
        let runs = vec![RunReport {
            run_id: "run-1".into(),
            index: 1,
            verdict: Verdict::Pass,
            reason: "recovered in 511.1ms (RTO 2.000s)".into(),
            met_expectation: true,
            targets: vec!["web|1".into()],
            epoch_monotonic_ns: 0,
            started_unix_ms: 1_700_000_000_000,
            inject: None,
            revert_us: None,
            grade: Some(Grade {
                verdict: Verdict::Pass,
                reason: String::new(),
                time_to_detect: None,
                time_to_recover: Some(Measured {
                    us: 511_100,
                    low_us: 501_600,
                    high_us: 511_800,
                }),
                recover_after_revert_us: None,
                recovered_by: None,
                probes: vec![],
            }),
            stages: vec![],
            detection: None,
            annotations: vec![],
            remediation: None,
            remediation_signal: None,
            remediation_steps: vec![],
            faults: vec![FaultRecord {
                kind: "process_kill".into(),
                agent: "web|1".into(),
                evidence: "sent SIGKILL to 1 process: 42 (<api>)".into(),
                ..FaultRecord::default()
            }],
            probes: vec![],
        }];
        crate::fixtures::scenario_report("kill *api*", 2_000_000, runs)
    }

    #[test]
    fn table_row_has_figures_with_brackets_and_escapes() {
        let r = report();
        let md = render(&ReportInput::new(&r));
        assert!(md.contains("# gameday report: kill \\*api\\*"), "{md}");
        assert!(
            md.contains("| 1 (run-1) | **PASS** | — | 511.1ms \\[501.6ms .. 511.8ms\\] | 2.000s |"),
            "{md}"
        );
        assert!(md.contains("web\\|1"));
        assert!(md.contains("(&lt;api&gt;)"));
        assert!(md.contains("p50 511.1ms"));
        assert!(!md.contains("## Trend"));
    }

    #[test]
    fn headline_and_summary_say_the_scenarios_verdict() {
        let r = report();
        let md = render(&ReportInput::new(&r));
        assert!(md.contains("— verdict **PASS** (exit code 0)"), "{md}");
        assert!(
            md.contains(
                "- **PASS** — 1 of 1 graded run met the expectation (pass rate 100%, required \
                 100%)"
            ),
            "{md}"
        );
        let mut fail = report();
        fail.runs[0].verdict = Verdict::Fail;
        fail.runs[0].met_expectation = false;
        fail.summary = summarize(&fail.runs, 1.0, false);
        let md = render(&ReportInput::new(&fail));
        assert!(md.contains("— verdict **FAIL** (exit code 1)"), "{md}");
        assert!(!md.contains("RTO BREACHED"), "{md}");
        let mut none = report();
        none.runs.clear();
        none.error = Some("agent web-1 is not connected".into());
        none.summary = summarize(&[], 1.0, true);
        let md = render(&ReportInput::new(&none));
        assert!(
            md.contains("- **ERROR** — no run: preflight stopped"),
            "{md}"
        );
        assert!(!md.contains("0/0") && !md.contains(" 0%"), "{md}");
    }

    #[test]
    fn trend_table_flags_the_regression() {
        let r = report();
        let trend: Vec<TrendPoint> = [100, 110, 120, 900]
            .iter()
            .enumerate()
            .map(|(i, ms)| TrendPoint {
                run_id: format!("r{i}"),
                started_unix_ms: 1_700_000_000_000 + i as u64,
                verdict: Verdict::Pass,
                recovery_us: Some(ms * 1000),
            })
            .collect();
        let md = render(&ReportInput::with_trend(&r, &trend));
        assert!(md.contains("## Trend"), "{md}");
        assert!(md.contains("> **REGRESSION:**"), "{md}");
        assert!(
            md.contains("| r3 | 2023-11-14 22:13:20 | PASS | 900.0ms | within | **regression** |"),
            "{md}"
        );
    }
}
