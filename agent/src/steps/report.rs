//! The reports a step gets (CHECKED; or STARTED, then ENDED) and their delivery on the stream
//! the step came from.

use std::time::Instant;

use gameday_proto::v1::{agent_message, AgentMessage, FaultFailure, StepPhase, StepReport};
use tokio::sync::mpsc;

use super::check::StepError;

/// How a started step ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Ending {
    /// The exit code, when it exited.
    pub exit_code: Option<i32>,
    /// The signal that ended it (`SIGKILL`...), when one did.
    pub signal: Option<String>,
    /// Its timeout ran out and the agent ended its group.
    pub timed_out: bool,
}

/// The answer to a `check_only` step: refused or not, nothing ran.
pub(super) fn checked(step_id: &str, refusal: Option<&StepError>) -> StepReport {
    StepReport {
        step_id: step_id.to_string(),
        phase: StepPhase::Checked as i32,
        failure: refusal.map(failure),
        ..StepReport::default()
    }
}

/// A step that did not start: refused, malformed, or the kernel would not run it.
pub(super) fn not_started(step_id: &str, error: &StepError) -> StepReport {
    StepReport {
        step_id: step_id.to_string(),
        phase: StepPhase::Started as i32,
        failure: Some(failure(error)),
        ..StepReport::default()
    }
}

/// The step's command is running as `pid`, spawned at `started` for a request that arrived at
/// `received`.
pub(super) fn started(step_id: &str, pid: u32, received: Instant, started: Instant) -> StepReport {
    StepReport {
        step_id: step_id.to_string(),
        phase: StepPhase::Started as i32,
        pid,
        elapsed_us: micros(started.saturating_duration_since(received)),
        since_us: micros(started.elapsed()),
        ..StepReport::default()
    }
}

/// The step's command, spawned at `started`, ended at `ended`.
pub(super) fn ended(
    step_id: &str,
    pid: u32,
    ending: &Ending,
    (started, ended): (Instant, Instant),
    output_tail: String,
) -> StepReport {
    StepReport {
        step_id: step_id.to_string(),
        phase: StepPhase::Ended as i32,
        pid,
        exited: ending.exit_code.is_some(),
        exit_code: ending.exit_code.unwrap_or_default(),
        signal: ending.signal.clone().unwrap_or_default(),
        timed_out: ending.timed_out,
        elapsed_us: micros(ended.saturating_duration_since(started)),
        since_us: micros(ended.elapsed()),
        output_tail,
        ..StepReport::default()
    }
}

fn failure(error: &StepError) -> FaultFailure {
    FaultFailure {
        kind: error.kind() as i32,
        message: error.to_string(),
    }
}

fn micros(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Sends `report` on the stream the step came from; false when that stream is gone (the
/// controller disconnected or the agent is shutting down), so the caller logs what it could not
/// report.
pub(super) async fn deliver(reports: &mpsc::Sender<AgentMessage>, report: StepReport) -> bool {
    reports
        .send(AgentMessage {
            msg: Some(agent_message::Msg::StepReport(report)),
        })
        .await
        .is_ok()
}
