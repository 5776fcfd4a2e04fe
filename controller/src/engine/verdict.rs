//! The grade phase: the run's verdict from its whole probe timeline, fault moments and RTO —
//! and ERROR, whatever the probes say, when a fault was not reverted cleanly.

use crate::grade::{self, GradeInput, StageGrade, Verdict};
use crate::remediation::StepOutcome;
use crate::report::RunReport;
use crate::scenario::Scenario;
use crate::timeline::Moment;

/// Grades `report` (its probes and revert are in) for faults that took effect at `inject`,
/// observed until `window_end_us`.
pub(super) fn grade_run(s: &Scenario, report: &mut RunReport, inject: Moment, window_end_us: u64) {
    // Signal probes mark remediation; only the others are graded.
    let (signals, health): (Vec<_>, Vec<_>) = report
        .probes
        .iter()
        .cloned()
        .partition(|p| s.signal_probes().any(|n| n == p.name));
    report.remediation_signal = crate::annotation::SignalSeen::first(&signals, inject.at_us);
    let input = GradeInput {
        probes: &health,
        inject,
        revert_us: report.revert_us,
        rto_us: super::run::saturating_us(s.rto.get()),
        window_end_us,
        expect: s.expect,
        recovery: s.recovery,
    };
    let g = grade::grade(&input);
    let stages: Vec<StageGrade> = s
        .stages
        .iter()
        .map(|stage| {
            let probes: Vec<_> = health
                .iter()
                .filter(|p| stage.probes.contains(&p.name))
                .cloned()
                .collect();
            let rto_us = super::run::saturating_us(stage.rto.get());
            let sg = grade::grade(&GradeInput {
                probes: &probes,
                rto_us,
                ..input
            });
            StageGrade {
                name: stage.name.clone(),
                rto_us,
                verdict: sg.verdict,
                reason: sg.reason,
                time_to_recover: sg.time_to_recover,
            }
        })
        .collect();
    report.verdict = g.verdict;
    report.reason = g.reason.clone();
    // Full restore may pass while a stage came too late: the run is the worst of them.
    if report.verdict == Verdict::Pass {
        if let Some(late) = stages.iter().find(|st| st.verdict == Verdict::Fail) {
            report.verdict = Verdict::Fail;
            report.reason = format!("stage {}: {}", late.name, late.reason);
        }
    }
    report.stages = stages;
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
    if let Some(step) = report
        .remediation_steps
        .iter()
        .find(|st| matches!(st.outcome, StepOutcome::Failed { .. }))
    {
        // The team's automation failing is a finding even when something else brought the
        // service back.
        if matches!(report.verdict, Verdict::Pass | Verdict::NoImpact) {
            report.verdict = Verdict::Fail;
            report.reason = format!(
                "remediation step {} on {}: {}",
                step.name, step.place, step.outcome
            );
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

    /// [`Fixture::KILL`] with a second probe, `front`, and a stage `failover` on it.
    fn staged(stage_rto: &str) -> Fixture {
        Fixture::new(&format!(
            "{}\n[[probes]]\nname = \"front\"\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\ninterval = \"10ms\"\n\n[[stages]]\nname = \"failover\"\nprobes = [\"front\"]\nrto = \"{stage_rto}\"\n",
            Fixture::KILL
        ))
    }

    /// `http` down 1.02 s .. 2.5 s (full restore ~1.5 s after the fault), `front` down
    /// 1.02 s .. 1.4 s (failover ~0.4 s after it).
    fn staged_run(fx: &Fixture) -> RunReport {
        let mut report = fx.report();
        let mut front = ScriptedProbes::down(fx.epoch, 1_020, 1_400).all();
        front[0].name = "front".into();
        report.probes = ScriptedProbes::down(fx.epoch, 1_020, 2_500).all();
        report.probes.extend(front);
        report.inject = Some(INJECT);
        grade_run(&fx.input.scenario, &mut report, INJECT, 11_000_000);
        report
    }

    #[tokio::test]
    async fn each_stage_is_graded_on_its_probes_against_its_own_rto() {
        let report = staged_run(&staged("1s"));
        assert_eq!(report.verdict, Verdict::Pass, "{}", report.reason);
        let st = &report.stages[0];
        assert_eq!((st.name.as_str(), st.verdict), ("failover", Verdict::Pass));
        let reached = st.time_to_recover.unwrap();
        assert!(
            reached.low_us <= 400_000 && 400_000 <= reached.high_us,
            "{reached:?}"
        );
        let full = report.grade.as_ref().unwrap().time_to_recover.unwrap();
        assert!(
            full.low_us <= 1_500_000 && 1_500_000 <= full.high_us,
            "{full:?}"
        );
        assert!(
            st.line().starts_with("failover: PASS, reached in 4"),
            "{}",
            st.line()
        );
    }

    #[tokio::test]
    async fn a_stage_reached_late_fails_the_run_though_full_restore_is_in_time() {
        let report = staged_run(&staged("200ms"));
        assert_eq!(report.verdict, Verdict::Fail);
        assert!(
            report.reason.starts_with("stage failover: "),
            "{}",
            report.reason
        );
        assert!(report.reason.contains("over the RTO"), "{}", report.reason);
        assert_eq!(
            report.grade.unwrap().verdict,
            Verdict::Pass,
            "full restore itself"
        );
    }

    #[tokio::test]
    async fn a_signal_probe_is_not_graded_and_its_turn_marks_remediation() {
        let fx = Fixture::new(&format!(
            "{}\n[[probes]]\nname = \"promoted\"\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\nsignals = \"remediation\"\n",
            Fixture::KILL
        ));
        let mut report = fx.report();
        // Failing from the start (a standby is not primary before the fault), good from 1.3 s.
        let mut promoted = ScriptedProbes::new(fx.epoch, 10, |t| t >= 1_300).all();
        promoted[0].name = "promoted".into();
        report.probes = ScriptedProbes::down(fx.epoch, 1_020, 1_500).all();
        report.probes.extend(promoted);
        report.inject = Some(INJECT);
        grade_run(&fx.input.scenario, &mut report, INJECT, 11_000_000);
        assert_eq!(report.verdict, Verdict::Pass, "{}", report.reason);
        assert_eq!(
            report.grade.as_ref().unwrap().probes.len(),
            1,
            "only the health probe"
        );
        let signal = report.remediation_signal.clone().expect("signalled");
        assert_eq!(signal.probe, "promoted");
        assert_eq!(
            signal.at_us, 1_301_000,
            "the answer to the check started at 1.3 s"
        );
        let r = crate::annotation::Remediation::of(&report).unwrap();
        assert_eq!(r.after_fault_us, 301_000);
        assert_eq!(r.by, "probe promoted");
    }
}
