//! JUnit XML for CI systems: one `<testsuite>` per scenario, one `<testcase>` per run, in the
//! shape of the common junit-4 schema (Jenkins, GitLab, GitHub test reporters).
//!
//! A breached RTO is a `<failure type="FAIL">` whose message carries the figures; a run that
//! did not meet the scenario's expectation otherwise (an unexpected NO_IMPACT, say) is a
//! failure typed with its verdict; ERROR is an `<error>`; INCONCLUSIVE and ABORTED are
//! `<skipped>`, because nothing was measured. Each case's `<system-out>` is that run's text
//! report.

use std::fmt::Write as _;

use super::escape::{xml, xml_attr};
use super::{run_duration_us, utc_datetime};
use crate::grade::{fmt_us, Measured, Verdict};
use crate::report::{render_text, RunReport, ScenarioReport};

/// How one run maps onto a JUnit test case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Passed,
    Failure { kind: String, message: String },
    Error { message: String },
    Skipped { message: String },
}

/// The counts a `<testsuite>` carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub tests: usize,
    pub failures: usize,
    pub errors: usize,
    pub skipped: usize,
}

impl Counts {
    fn add(&mut self, o: &Outcome) {
        self.tests += 1;
        match o {
            Outcome::Passed => {}
            Outcome::Failure { .. } => self.failures += 1,
            Outcome::Error { .. } => self.errors += 1,
            Outcome::Skipped { .. } => self.skipped += 1,
        }
    }
}

/// The outcome of a run in JUnit's terms.
pub(crate) fn outcome(report: &ScenarioReport, run: &RunReport) -> Outcome {
    let rto = fmt_us(report.rto_us);
    let recovered = run.grade.as_ref().and_then(|g| g.time_to_recover);
    match run.verdict {
        Verdict::Pass | Verdict::NoImpact if run.met_expectation => Outcome::Passed,
        Verdict::Fail => Outcome::Failure {
            kind: run.verdict.to_string(),
            message: match recovered {
                Some(m) => format!("RTO breached: recovered in {}, RTO {rto}", fmt_us(m.us)),
                None => format!(
                    "RTO breached: did not recover within the observation window, RTO {rto}"
                ),
            },
        },
        Verdict::NoImpact => Outcome::Failure {
            kind: run.verdict.to_string(),
            message: format!(
                "no impact: no probe failed after the fault took effect, but the scenario expects {}",
                report.expect
            ),
        },
        Verdict::Pass => Outcome::Failure {
            kind: "IMPACT".into(),
            message: format!(
                "impact where none was expected: the service went down{}, but the scenario expects {}",
                recovered
                    .map(|m| format!(" and recovered in {}", fmt_us(m.us)))
                    .unwrap_or_default(),
                report.expect
            ),
        },
        Verdict::Error => Outcome::Error {
            message: run.reason.clone(),
        },
        Verdict::Inconclusive | Verdict::Aborted => Outcome::Skipped {
            message: format!("{}: {}", run.verdict, run.reason),
        },
    }
}

/// The counts of a whole report, as its `<testsuite>` states them.
pub(crate) fn counts(report: &ScenarioReport) -> Counts {
    let mut c = Counts::default();
    if report.error.is_some() && report.runs.is_empty() {
        c.add(&Outcome::Error {
            message: String::new(),
        });
    }
    for run in &report.runs {
        c.add(&outcome(report, run));
    }
    c
}

fn seconds(us: u64) -> String {
    format!("{:.3}", us as f64 / 1e6)
}

fn figure(m: &Measured) -> String {
    format!(
        "{} [{} .. {}]",
        fmt_us(m.us),
        fmt_us(m.low_us),
        fmt_us(m.high_us)
    )
}

/// The figures of a run, for the body of a failure.
fn figures(report: &ScenarioReport, run: &RunReport) -> String {
    let mut b = String::new();
    let _ = writeln!(b, "verdict: {}", run.verdict);
    let _ = writeln!(b, "reason: {}", run.reason);
    let _ = writeln!(b, "RTO: {}", fmt_us(report.rto_us));
    if let Some(g) = &run.grade {
        if let Some(d) = &g.time_to_detect {
            let _ = writeln!(b, "time to detect: {}", figure(d));
        }
        match &g.time_to_recover {
            Some(r) => {
                let _ = writeln!(
                    b,
                    "time to recover: {} (bracket: last failed sample .. first good sample)",
                    figure(r)
                );
            }
            None => {
                let _ = writeln!(b, "time to recover: did not recover");
            }
        }
        if let Some(r) = g.recover_after_revert_us {
            let _ = writeln!(b, "recover after revert: {}", fmt_us(r));
        }
    }
    b
}

/// The text report of one run: the scenario's header line and the run's section.
fn run_text(report: &ScenarioReport, run: &RunReport) -> String {
    let one = ScenarioReport {
        runs: vec![run.clone()],
        ..report.clone()
    };
    let mut text = render_text(&one);
    if let Some(cut) = text.rfind("\nsummary: ") {
        text.truncate(cut);
    }
    text
}

/// Renders the report as JUnit XML.
pub(crate) fn render(report: &ScenarioReport) -> String {
    let suite = format!("gameday.{}", report.scenario);
    let c = counts(report);
    let total_us: u64 = report.runs.iter().map(run_duration_us).sum();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        r#"<testsuites name="gameday" tests="{}" failures="{}" errors="{}" time="{}">"#,
        c.tests,
        c.failures,
        c.errors,
        seconds(total_us)
    );
    let timestamp = report
        .runs
        .first()
        .and_then(|r| utc_datetime(r.started_unix_ms))
        .map(|(d, t)| format!(r#" timestamp="{d}T{t}""#))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        r#"  <testsuite name="{}" tests="{}" failures="{}" errors="{}" skipped="{}" time="{}"{timestamp}>"#,
        xml_attr(&suite),
        c.tests,
        c.failures,
        c.errors,
        c.skipped,
        seconds(total_us)
    );
    let s = &report.summary;
    let mut props: Vec<(&str, String)> = vec![
        ("file", report.file.clone()),
        ("expect", report.expect.clone()),
        ("rto", fmt_us(report.rto_us)),
        ("rto_us", report.rto_us.to_string()),
        ("pass_rate", format!("{:.3}", s.pass_rate)),
        ("min_pass_rate", format!("{:.3}", s.min_pass_rate)),
        ("exit_code", s.exit_code.to_string()),
    ];
    for (name, v) in [
        ("recovery_p50_us", s.recovery_p50_us),
        ("recovery_p95_us", s.recovery_p95_us),
        ("recovery_max_us", s.recovery_max_us),
    ] {
        if let Some(v) = v {
            props.push((name, v.to_string()));
        }
    }
    out.push_str("    <properties>\n");
    for (name, value) in props {
        let _ = writeln!(
            out,
            r#"      <property name="{name}" value="{}"/>"#,
            xml_attr(&value)
        );
    }
    out.push_str("    </properties>\n");
    if let (Some(e), true) = (&report.error, report.runs.is_empty()) {
        let _ = writeln!(
            out,
            r#"    <testcase classname="{}" name="preflight" time="0.000">"#,
            xml_attr(&suite)
        );
        let _ = writeln!(
            out,
            r#"      <error type="ERROR" message="{}">{}</error>"#,
            xml_attr(e),
            xml(e)
        );
        out.push_str("    </testcase>\n");
    }
    for run in &report.runs {
        let time_us = run
            .grade
            .as_ref()
            .and_then(|g| g.time_to_recover)
            .map_or_else(|| run_duration_us(run), |m| m.us);
        let _ = writeln!(
            out,
            r#"    <testcase classname="{}" name="{}" time="{}">"#,
            xml_attr(&suite),
            xml_attr(&format!("run {} ({})", run.index, run.run_id)),
            seconds(time_us)
        );
        // junit-4 order: skipped, error, failure, system-out.
        match outcome(report, run) {
            Outcome::Passed => {}
            Outcome::Skipped { message } => {
                let _ = writeln!(out, r#"      <skipped message="{}"/>"#, xml_attr(&message));
            }
            Outcome::Error { message } => {
                let _ = writeln!(
                    out,
                    r#"      <error type="ERROR" message="{}">{}</error>"#,
                    xml_attr(&message),
                    xml(&figures(report, run))
                );
            }
            Outcome::Failure { kind, message } => {
                let _ = writeln!(
                    out,
                    r#"      <failure type="{}" message="{}">{}</failure>"#,
                    xml_attr(&kind),
                    xml_attr(&message),
                    xml(&figures(report, run))
                );
            }
        }
        let _ = writeln!(
            out,
            "      <system-out>{}</system-out>",
            xml(&run_text(report, run))
        );
        out.push_str("    </testcase>\n");
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grade::Grade;
    use crate::report::summarize;

    fn run(index: u32, verdict: Verdict, met: bool, recover_us: Option<u64>) -> RunReport {
        RunReport {
            run_id: format!("run-{index}"),
            index,
            verdict,
            reason: format!("reason <{index}> & \"why\""),
            met_expectation: met,
            targets: vec!["local".into()],
            epoch_monotonic_ns: 0,
            started_unix_ms: 1_700_000_000_000,
            inject: None,
            revert_us: None,
            grade: Some(Grade {
                verdict,
                reason: String::new(),
                time_to_detect: None,
                time_to_recover: recover_us.map(|us| Measured {
                    us,
                    low_us: us - 10,
                    high_us: us,
                }),
                recover_after_revert_us: None,
                recovered_by: None,
                probes: vec![],
            }),
            faults: vec![],
            probes: vec![],
        }
    }

    fn report(runs: Vec<RunReport>) -> ScenarioReport {
        ScenarioReport {
            scenario: "kill <api>".into(),
            file: "s.toml".into(),
            expect: "recovery".into(),
            rto_us: 2_000_000,
            error: None,
            summary: summarize(&runs, 1.0, false),
            runs,
        }
    }

    #[test]
    fn counts_follow_verdicts() {
        let r = report(vec![
            run(1, Verdict::Pass, true, Some(500_000)),
            run(2, Verdict::Fail, false, Some(3_000_000)),
            run(3, Verdict::Fail, false, None),
            run(4, Verdict::NoImpact, false, None),
            run(5, Verdict::NoImpact, true, None),
            run(6, Verdict::Error, false, None),
            run(7, Verdict::Inconclusive, false, None),
            run(8, Verdict::Aborted, false, None),
        ]);
        assert_eq!(
            counts(&r),
            Counts {
                tests: 8,
                failures: 3,
                errors: 1,
                skipped: 2
            }
        );
        let x = render(&r);
        assert!(
            x.contains(r#"tests="8" failures="3" errors="1" skipped="2""#),
            "{x}"
        );
        assert_eq!(x.matches("<testcase ").count(), 8);
        assert_eq!(x.matches("<failure ").count(), 3);
        assert_eq!(x.matches("<error ").count(), 1);
        assert_eq!(x.matches("<skipped ").count(), 2);
    }

    #[test]
    fn breach_message_carries_the_figures() {
        let r = report(vec![run(2, Verdict::Fail, false, Some(3_000_000))]);
        let x = render(&r);
        assert!(
            x.contains(
                r#"<failure type="FAIL" message="RTO breached: recovered in 3.000s, RTO 2.000s">"#
            ),
            "{x}"
        );
        assert!(x.contains("time to recover: 3.000s [3.000s .. 3.000s]"));
        assert!(
            x.contains(r#"time="3.000""#),
            "recovery time is the case's time"
        );
        let never = render(&report(vec![run(3, Verdict::Fail, false, None)]));
        assert!(never.contains("RTO breached: did not recover"), "{never}");
    }

    #[test]
    fn names_and_text_are_escaped() {
        let x = render(&report(vec![run(6, Verdict::Error, false, None)]));
        assert!(x.contains(r#"name="gameday.kill &lt;api&gt;""#), "{x}");
        assert!(x.contains(r#"message="reason &lt;6&gt; &amp; &quot;why&quot;""#));
        assert!(!x.contains("<api>"));
        assert!(!x.contains("<6>"));
    }

    #[test]
    fn a_preflight_error_is_one_errored_case() {
        let mut r = report(vec![]);
        r.error = Some("agent web-1 is not connected".into());
        let x = render(&r);
        assert!(x.contains(r#"tests="1" failures="0" errors="1""#), "{x}");
        assert!(x.contains(r#"name="preflight""#));
    }

    #[test]
    fn system_out_is_the_runs_own_text() {
        let r = report(vec![
            run(1, Verdict::Pass, true, Some(500_000)),
            run(2, Verdict::Pass, true, Some(600_000)),
        ]);
        let text = run_text(&r, &r.runs[1]);
        assert!(text.contains("run 2 (run-2)"), "{text}");
        assert!(!text.contains("run 1 (run-1)"));
        assert!(!text.contains("summary:"));
    }
}
