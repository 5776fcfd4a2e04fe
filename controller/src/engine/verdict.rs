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
    report.met_expectation = grade::meets(s.expect, report.verdict);
    report.grade = Some(g);
}
