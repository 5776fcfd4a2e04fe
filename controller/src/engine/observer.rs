//! Observers receive a run's record as it happens — the run history writes it down, metrics
//! count it — so a controller that dies mid-run has lost nothing already seen.

use super::OrphanRevert;
use crate::report::{FaultRecord, RunReport, ScenarioReport};
use crate::scenario::{Scenario, ScenarioFile};
use crate::timeline::Sample;

/// A run that is starting.
#[derive(Clone, Copy, Debug)]
pub struct RunStart<'a> {
    /// Unique run id.
    pub run_id: &'a str,
    /// 1-based index among the scenario's repeats.
    pub index: u32,
    /// The scenario, its file and its text as written (kept with the run).
    pub input: &'a ScenarioFile,
    /// Targeted agents.
    pub targets: &'a [String],
    /// CLOCK_MONOTONIC at the run's epoch, nanoseconds.
    pub epoch_monotonic_ns: u64,
    /// The invocation it is a repeat of, and who or what started it.
    pub identity: &'a super::RunIdentity,
}

/// Receives a run's record as it progresses. Every method has a default that ignores the
/// event; observers must not block for long (they run on the engine's task).
pub trait RunObserver: Send + Sync {
    /// A run passed preflight and starts its steady state.
    fn run_started(&self, _run: &RunStart<'_>) {}
    /// New samples of one probe, in order, since the last call for that probe.
    fn samples(&self, _run_id: &str, _probe: &str, _samples: &[Sample]) {}
    /// A fault was applied or reverted (or failed to be).
    fn fault(&self, _run_id: &str, _fault: &FaultRecord) {}
    /// A run is graded.
    fn run_finished(&self, _scenario: &Scenario, _run: &RunReport) {}
    /// A run just reported finished was stopped because the controller shut down: it was
    /// never graded and is to be shown as interrupted, with `reason`.
    fn run_interrupted(&self, _run_id: &str, _reason: &str) {}
    /// Every run of a scenario is done.
    fn scenario_finished(&self, _report: &ScenarioReport) {}
    /// A fault an agent still held for a run that is not going on here (a run of a controller
    /// that died) was reverted when the agent re-registered, or could not be.
    fn orphan_reverted(&self, _orphan: &OrphanRevert) {}
}
