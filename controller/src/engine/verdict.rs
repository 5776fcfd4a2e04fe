//! The grade phase: the run's verdict from its whole probe timeline, fault moments and RTO —
//! and ERROR, whatever the probes say, when a fault was not reverted cleanly.

use crate::grade::{self, GradeInput, Verdict};
use crate::report::RunReport;
use crate::scenario::Scenario;
use crate::timeline::Moment;

/// Grades `report` (its probes and revert are in) for faults that took effect at `inject`,
/// observed until `window_end_us`.
pub(super) fn grade_run(s: &Scenario, report: &mut RunReport, inject: Moment, window_end_us: u64) {
    let g = grade::grade(&GradeInput {
        probes: &report.probes,
        inject,
        revert_us: report.revert_us,
        rto_us: super::run::saturating_us(s.rto.get()),
        window_end_us,
        expect: s.expect,
        recovery: s.recovery,
    });
    report.verdict = g.verdict;
    report.reason = g.reason.clone();
    if let Some(f) = report.faults.iter().find(|f| f.error.is_some()) {
        report.verdict = Verdict::Error;
        report.reason = format!(
            "{} on {} was not reverted cleanly: {}",
            f.kind,
            f.agent,
            f.error.clone().unwrap_or_default()
        );
    }
    if let Some(d) = report
        .detection
        .as_ref()
        .filter(|d| d.expect_alert && !d.noticed())
    {
        // The probes' verdict stands when it already says something is wrong.
        if matches!(report.verdict, Verdict::Pass | Verdict::NoImpact) {
            report.verdict = Verdict::Fail;
            report.reason = format!("{} (expect_alert = true)", d.summary());
        }
    }
    report.met_expectation = grade::meets(s.expect, report.verdict);
    report.grade = Some(g);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fake::{Fixture, ScriptedProbes};
    use crate::report::FaultRecord;

    const INJECT: Moment = Moment {
        at_us: 1_000_000,
        uncertainty_us: 500,
    };

    /// The grade of a kill at 1 s (RTO 3 s, window 10 s) over the scripted timeline.
    fn graded(probes: ScriptedProbes, fx: &Fixture) -> RunReport {
        let mut report = fx.report();
        report.probes = probes.all();
        report.inject = Some(INJECT);
        grade_run(&fx.input.scenario, &mut report, INJECT, 11_000_000);
        report
    }

    #[tokio::test]
    async fn the_verdict_follows_the_scripted_timeline() {
        let fx = Fixture::new(Fixture::KILL);
        let pass = graded(ScriptedProbes::down(fx.epoch, 1_020, 1_500), &fx);
        assert_eq!(pass.verdict, Verdict::Pass, "{}", pass.reason);
        assert!(pass.met_expectation);
        let ttr = pass.grade.as_ref().unwrap().time_to_recover.unwrap();
        // Back with the check that started at 1.5 s: 500 ms after the effect.
        assert!(ttr.low_us <= 500_000 && 500_000 <= ttr.high_us, "{ttr:?}");

        let late = graded(ScriptedProbes::down(fx.epoch, 1_020, 4_500), &fx);
        assert_eq!(late.verdict, Verdict::Fail, "{}", late.reason);

        let never = graded(ScriptedProbes::down(fx.epoch, 1_020, u64::MAX), &fx);
        assert_eq!(never.verdict, Verdict::Fail, "{}", never.reason);

        let missed = graded(ScriptedProbes::up_all_along(fx.epoch), &fx);
        assert_eq!(missed.verdict, Verdict::NoImpact);
        assert!(!missed.met_expectation, "the scenario expected an outage");
    }

    #[tokio::test]
    async fn a_fault_not_reverted_cleanly_is_an_error_whatever_the_probes_say() {
        let fx = Fixture::new(Fixture::KILL);
        let mut report = fx.report();
        report.probes = ScriptedProbes::down(fx.epoch, 1_020, 1_500).all();
        report.faults.push(FaultRecord {
            kind: "process_pause".into(),
            agent: "web-1".into(),
            error: Some("revert: system error: SIGCONT failed".into()),
            ..FaultRecord::default()
        });
        grade_run(&fx.input.scenario, &mut report, INJECT, 11_000_000);
        assert_eq!(report.verdict, Verdict::Error);
        assert_eq!(
            report.reason,
            "process_pause on web-1 was not reverted cleanly: revert: system error: SIGCONT failed"
        );
        assert!(!report.met_expectation);
        assert_eq!(
            report.grade.map(|g| g.verdict),
            Some(Verdict::Pass),
            "the probes' own"
        );
    }
}
