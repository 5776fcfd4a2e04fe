//! JUnit XML for CI systems: one `<testsuite>` per scenario, one `<testcase>` per run and probe,
//! in the shape of the common junit-4 schema (Jenkins, GitLab, GitHub test reporters).
//!
//! Test names are stable across invocations — `classname="gameday.<scenario>"`,
//! `name="run <N>: probe <P>"` — so a CI system tracks each probe's recovery from build to
//! build; run ids, which change every time, go into the suite's properties (`run.<N>.id`).
//!
//! Each case follows its probe's own verdict: a probe that recovered over the RTO, only after
//! the revert, or not at all, or that failed where no impact was expected, is a `<failure>`
//! whose message carries the figures; a run with no impact where recovery was expected fails
//! every probe's case (`NO_IMPACT`); ERROR is an `<error>`; INCONCLUSIVE and ABORTED are
//! `<skipped>`, because nothing was measured. Each case's `<system-out>` is its run's text
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
        Verdict::Fail if report.expect == crate::scenario::Expectation::NoImpact => Outcome::Failure {
            kind: "IMPACT".into(),
            message: run.reason.clone(),
        },
        Verdict::Fail => Outcome::Failure {
            kind: run.verdict.to_string(),
            message: match (recovered, run.grade.as_ref().and_then(|g| g.recover_after_revert_us)) {
                (Some(m), Some(after)) if m.us <= report.rto_us => format!(
                    "recovered only after the fault was reverted: {} after the revert, {} after the fault, RTO {rto}",
                    fmt_us(after),
                    fmt_us(m.us)
                ),
                (Some(m), _) => format!("RTO breached: recovered in {}, RTO {rto}", fmt_us(m.us)),
                (None, _) => format!(
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

/// One test case: a probe of a run, or the run itself when it has no probe to show.
pub(crate) struct Case<'a> {
    pub run: &'a RunReport,
    /// `None` for a run without probes.
    pub probe: Option<&'a str>,
    pub outcome: Outcome,
    /// The case's time: the probe's recovery when it recovered, else the run's.
    pub time_us: u64,
}

impl Case<'_> {
    /// The stable name: "run 2: probe api" (or "run 2").
    pub fn name(&self) -> String {
        match self.probe {
            Some(p) => format!("run {}: probe {p}", self.run.index),
            None => format!("run {}", self.run.index),
        }
    }
}

/// The test cases of a run: one per probe, each with its probe's own outcome.
pub(crate) fn cases<'a>(report: &ScenarioReport, run: &'a RunReport) -> Vec<Case<'a>> {
    let whole = outcome(report, run);
    let run_time = run
        .grade
        .as_ref()
        .and_then(|g| g.time_to_recover)
        .map_or_else(|| run_duration_us(run), |m| m.us);
    if run.probes.is_empty() {
        return vec![Case {
            run,
            probe: None,
            outcome: whole,
            time_us: run_time,
        }];
    }
    let graded = matches!(
        run.verdict,
        Verdict::Pass | Verdict::Fail | Verdict::NoImpact
    );
    let mut cases: Vec<Case<'a>> = run
        .probes
        .iter()
        .map(|p| {
            let rec = run
                .grade
                .as_ref()
                .and_then(|g| g.probes.iter().find(|r| r.probe == p.name));
            let outcome = match rec.and_then(|r| r.verdict.map(|v| (r, v))) {
                Some((r, v)) if graded => probe_outcome(report, run, r, v),
                _ => whole.clone(),
            };
            Case {
                run,
                probe: Some(p.name.as_str()),
                outcome,
                time_us: rec.and_then(|r| r.recovered).map_or(run_time, |m| m.us),
            }
        })
        .collect();
    // A run that missed its expectation fails somewhere, even from a report whose probes
    // carry no verdict of their own.
    if !run.met_expectation && cases.iter().all(|c| c.outcome == Outcome::Passed) {
        for c in &mut cases {
            c.outcome = whole.clone();
        }
    }
    cases
}

/// A probe's case in a graded run.
fn probe_outcome(
    report: &ScenarioReport,
    run: &RunReport,
    r: &crate::grade::ProbeRecovery,
    verdict: Verdict,
) -> Outcome {
    let rto = fmt_us(report.rto_us);
    let after_revert = run
        .revert_us
        .zip(run.inject)
        .zip(r.recovered)
        .and_then(|((rv, inject), m)| (inject.at_us + m.us).checked_sub(rv));
    match verdict {
        Verdict::Pass => Outcome::Passed,
        // A probe that never failed holds nothing back, unless nothing failed at all where
        // recovery was expected.
        Verdict::NoImpact if run.verdict == Verdict::NoImpact && !run.met_expectation => {
            outcome(report, run)
        }
        Verdict::NoImpact => Outcome::Passed,
        _ if report.expect == crate::scenario::Expectation::NoImpact => Outcome::Failure {
            kind: "IMPACT".into(),
            message: format!(
                "impact where none was expected: probe {} failed {} after the fault{}",
                r.probe,
                r.impact.map_or_else(String::new, |m| fmt_us(m.us)),
                r.recovered
                    .map(|m| format!(" and recovered in {}", fmt_us(m.us)))
                    .unwrap_or_default()
            ),
        },
        _ => Outcome::Failure {
            kind: "FAIL".into(),
            message: match (r.recovered, after_revert) {
                (None, _) => format!(
                    "RTO breached: probe {} did not recover within the observation window, RTO {rto}",
                    r.probe
                ),
                (Some(m), Some(after)) if m.us <= report.rto_us => format!(
                    "recovered only after the fault was reverted: probe {} came back {} after the revert, {} after the fault, RTO {rto}",
                    r.probe,
                    fmt_us(after),
                    fmt_us(m.us)
                ),
                (Some(m), _) => format!(
                    "RTO breached: probe {} recovered in {}, RTO {rto}",
                    r.probe,
                    fmt_us(m.us)
                ),
            },
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
        for case in cases(report, run) {
            c.add(&case.outcome);
        }
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
    for (what, text) in run.timeline_facts() {
        let _ = writeln!(b, "{what}: {text}");
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
    let mut props: Vec<(String, String)> = vec![
        ("file".into(), report.file.clone()),
        ("expect".into(), report.expect.to_string()),
        ("rto".into(), fmt_us(report.rto_us)),
        ("rto_us".into(), report.rto_us.to_string()),
        ("verdict".into(), s.verdict.to_string()),
        ("reason".into(), s.reason.clone()),
        ("runs".into(), s.runs.to_string()),
        ("graded".into(), s.graded.to_string()),
        ("passed".into(), s.passed.to_string()),
        ("pass_rate".into(), format!("{:.3}", s.pass_rate)),
        ("min_pass_rate".into(), format!("{:.3}", s.min_pass_rate)),
        ("exit_code".into(), s.exit_code.to_string()),
    ];
    for (name, v) in [
        ("recovery_p50_us", s.recovery_p50_us),
        ("recovery_p95_us", s.recovery_p95_us),
        ("recovery_max_us", s.recovery_max_us),
    ] {
        if let Some(v) = v {
            props.push((name.into(), v.to_string()));
        }
    }
    // Run ids change with every run, so they are properties, not part of a test's name.
    for run in &report.runs {
        props.push((format!("run.{}.id", run.index), run.run_id.clone()));
        props.push((
            format!("run.{}.verdict", run.index),
            run.verdict.to_string(),
        ));
    }
    out.push_str("    <properties>\n");
    for (name, value) in props {
        let _ = writeln!(
            out,
            r#"      <property name="{}" value="{}"/>"#,
            xml_attr(&name),
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
        let text = run_text(report, run);
        for case in cases(report, run) {
            let _ = writeln!(
                out,
                r#"    <testcase classname="{}" name="{}" time="{}">"#,
                xml_attr(&suite),
                xml_attr(&case.name()),
                seconds(case.time_us)
            );
            // junit-4 order: skipped, error, failure, system-out.
            match case.outcome {
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
            let _ = writeln!(out, "      <system-out>{}</system-out>", xml(&text));
            out.push_str("    </testcase>\n");
        }
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(index: u32, verdict: Verdict, met: bool, recover_us: Option<u64>) -> RunReport {
        let mut run = crate::fixtures::run(&format!("run-{index}"), verdict, recover_us);
        run.index = index;
        run.reason = format!("reason <{index}> & \"why\"");
        run.met_expectation = met;
        run.targets = vec!["local".into()];
        run.started_unix_ms = 1_700_000_000_000;
        if let Some(m) = run.grade.as_mut().and_then(|g| g.time_to_recover.as_mut()) {
            m.low_us -= 10;
        }
        run
    }

    fn report(runs: Vec<RunReport>) -> ScenarioReport {
        crate::fixtures::scenario_report("kill <api>", 2_000_000, runs)
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

    fn with_probes(mut r: RunReport, probes: &[(&str, Verdict, Option<u64>)]) -> RunReport {
        use crate::grade::ProbeRecovery;
        use crate::timeline::ProbeTimeline;
        let m = |us: u64| Measured {
            us,
            low_us: us - 10,
            high_us: us,
        };
        for (name, verdict, recovered) in probes {
            r.probes.push(ProbeTimeline {
                name: (*name).into(),
                recovered_after: 2,
                skipped: 0,
                seed: None,
                samples: vec![],
            });
            r.grade.as_mut().unwrap().probes.push(ProbeRecovery {
                probe: (*name).into(),
                impact: (*verdict != Verdict::NoImpact).then(|| m(1_000)),
                recovered: recovered.map(m),
                relapses: 0,
                partial: None,
                verdict: Some(*verdict),
            });
        }
        r
    }

    #[test]
    fn test_names_are_stable_and_run_ids_are_properties() {
        let one = report(vec![with_probes(
            run(1, Verdict::Pass, true, Some(500_000)),
            &[("api", Verdict::Pass, Some(500_000))],
        )]);
        let mut other = one.clone();
        other.runs[0].run_id = "run-1b".into();
        let (a, b) = (render(&one), render(&other));
        let names = |x: &str| -> Vec<String> {
            x.lines()
                .filter(|l| l.contains("<testcase "))
                .map(str::to_string)
                .collect()
        };
        assert_eq!(names(&a), names(&b), "names do not carry the run id");
        assert!(
            a.contains(r#"<testcase classname="gameday.kill &lt;api&gt;" name="run 1: probe api" time="0.500">"#),
            "{a}"
        );
        assert!(
            a.contains(r#"<property name="run.1.id" value="run-1"/>"#),
            "{a}"
        );
        assert!(
            b.contains(r#"<property name="run.1.id" value="run-1b"/>"#),
            "{b}"
        );
        assert!(a.contains(r#"<property name="run.1.verdict" value="PASS"/>"#));
        assert!(a.contains(r#"<property name="verdict" value="PASS"/>"#));
    }

    #[test]
    fn each_probe_case_follows_its_probes_verdict() {
        // "db" recovered over the RTO; "api" in time; "cache" never failed.
        let r = report(vec![with_probes(
            run(1, Verdict::Fail, false, Some(3_000_000)),
            &[
                ("api", Verdict::Pass, Some(500_000)),
                ("db", Verdict::Fail, Some(3_000_000)),
                ("cache", Verdict::NoImpact, None),
            ],
        )]);
        let x = render(&r);
        assert!(
            x.contains(r#"tests="3" failures="1" errors="0" skipped="0""#),
            "{x}"
        );
        assert!(
            x.contains(r#"<failure type="FAIL" message="RTO breached: probe db recovered in 3.000s, RTO 2.000s">"#),
            "{x}"
        );
        // Nothing failed where recovery was expected: every probe's case says so.
        let r = report(vec![with_probes(
            run(1, Verdict::NoImpact, false, None),
            &[
                ("api", Verdict::NoImpact, None),
                ("db", Verdict::NoImpact, None),
            ],
        )]);
        assert_eq!(counts(&r).failures, 2);
        // Only after the revert, within the RTO.
        let mut back = run(1, Verdict::Fail, false, Some(1_000_000));
        back.inject = Some(crate::timeline::Moment {
            at_us: 1_000_000,
            uncertainty_us: 0,
        });
        back.revert_us = Some(1_900_000);
        let r = report(vec![with_probes(
            back,
            &[("api", Verdict::Fail, Some(1_000_000))],
        )]);
        let x = render(&r);
        assert!(
            x.contains("recovered only after the fault was reverted: probe api came back 100.0ms after the revert, 1.000s after the fault, RTO 2.000s"),
            "{x}"
        );
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
