//! Reports for unit tests: one run and one scenario report, with the fields each test cares
//! about set by struct update (`RunReport { met_expectation: false, ..fixtures::run(…) }`).

use crate::grade::{Grade, Measured, Verdict};
use crate::report::{summarize, RunReport, ScenarioReport};

/// A graded run with `verdict`, recovered in `recover_us` (an exact figure) when given. It met
/// its expectation when it passed.
pub(crate) fn run(run_id: &str, verdict: Verdict, recover_us: Option<u64>) -> RunReport {
    RunReport {
        run_id: run_id.into(),
        index: 1,
        verdict,
        reason: String::new(),
        met_expectation: verdict == Verdict::Pass,
        targets: vec![],
        epoch_monotonic_ns: 0,
        started_unix_ms: 0,
        inject: None,
        revert_us: None,
        grade: Some(Grade {
            verdict,
            reason: String::new(),
            time_to_detect: None,
            time_to_recover: recover_us.map(|us| Measured {
                us,
                low_us: us,
                high_us: us,
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
        faults: vec![],
        probes: vec![],
    }
}

/// `runs` of scenario `name` (file `s.toml`, expecting recovery within `rto_us`), summarized
/// at a required pass rate of 100 %.
pub(crate) fn scenario_report(name: &str, rto_us: u64, runs: Vec<RunReport>) -> ScenarioReport {
    ScenarioReport {
        scenario: name.into(),
        file: "s.toml".into(),
        expect: crate::scenario::Expectation::Recovery,
        rto_us,
        error: None,
        summary: summarize(&runs, 1.0, false),
        runs,
    }
}

/// A remediation step `name` on agent db-2 that went as `outcome`, with no times.
pub(crate) fn step(
    name: &str,
    outcome: crate::remediation::StepOutcome,
) -> crate::remediation::StepRecord {
    crate::remediation::StepRecord {
        name: name.into(),
        place: "agent db-2".into(),
        command: "/usr/local/bin/promote".into(),
        trigger: "when the alert arrives".into(),
        triggered_us: None,
        started: None,
        ended: None,
        outcome,
        output_tail: String::new(),
    }
}
