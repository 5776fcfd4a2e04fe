//! Progress of a run as it happens: a line for logs and CI, plus where the run stands (phase,
//! injection time, RTO) so a terminal can show a live RTO timer.

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// Where the engine sends progress.
pub type Progress = mpsc::UnboundedSender<ProgressEvent>;

/// The phase a run is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Resolving targets.
    Preflight,
    /// Probing before anything is injected.
    SteadyState,
    /// The fault took effect; waiting for recovery.
    Observing,
    /// Holding faults were reverted; still observing.
    Reverted,
    /// The run has its verdict.
    Graded,
}

impl From<Phase> for gameday_proto::v1::Phase {
    fn from(p: Phase) -> Self {
        use gameday_proto::v1::Phase as W;
        match p {
            Phase::Preflight => W::Preflight,
            Phase::SteadyState => W::SteadyState,
            Phase::Observing => W::Observing,
            Phase::Reverted => W::Reverted,
            Phase::Graded => W::Graded,
        }
    }
}

impl Phase {
    /// The phase as logs and the wire name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Preflight => "preflight",
            Phase::SteadyState => "steady_state",
            Phase::Observing => "observing",
            Phase::Reverted => "reverted",
            Phase::Graded => "graded",
        }
    }

    /// The phase a wire update names; `None` for one this build does not know.
    pub fn from_wire(p: gameday_proto::v1::Phase) -> Option<Phase> {
        use gameday_proto::v1::Phase as W;
        match p {
            W::Unspecified => None,
            W::Preflight => Some(Phase::Preflight),
            W::SteadyState => Some(Phase::SteadyState),
            W::Observing => Some(Phase::Observing),
            W::Reverted => Some(Phase::Reverted),
            W::Graded => Some(Phase::Graded),
        }
    }
}

/// One progress event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressEvent {
    /// What happened, for people (and CI logs).
    pub line: String,
    /// The phase the run is in after this event.
    pub phase: Phase,
    /// 1-based run index.
    pub run: u32,
    /// Runs in the scenario.
    pub runs: u32,
    /// The scenario's RTO, milliseconds.
    pub rto_ms: u64,
    /// When the fault took effect, wall clock (ms since the Unix epoch), once it has.
    pub injected_unix_ms: Option<u64>,
}

impl ProgressEvent {
    /// An event of run `run` of `scenario`, before any fault took effect.
    pub fn new(
        line: String,
        phase: Phase,
        run: u32,
        scenario: &crate::scenario::Scenario,
    ) -> ProgressEvent {
        ProgressEvent {
            line,
            phase,
            run,
            runs: scenario.repeat,
            rto_ms: scenario.rto.get().as_millis() as u64,
            injected_unix_ms: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_phase_crosses_the_wire() {
        for p in [
            Phase::Preflight,
            Phase::SteadyState,
            Phase::Observing,
            Phase::Reverted,
            Phase::Graded,
        ] {
            assert_eq!(Phase::from_wire(p.into()), Some(p));
        }
        assert_eq!(
            Phase::from_wire(gameday_proto::v1::Phase::Unspecified),
            None
        );
    }
}
