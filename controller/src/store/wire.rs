//! Run history on the wire: conversions between the store's types and the Operator service's
//! messages, in one place for the server and the CLI.

use gameday_proto::v1;

use super::{parse_verdict, RunFilter, RunStatus, RunSummary, StoredRun};
use crate::report::RunReport;

/// A request or response the history cannot make sense of.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// A verdict or status name that does not exist.
    #[error("{0}")]
    UnknownName(String),
    /// An embedded JSON document that does not decode.
    #[error("the run report does not decode: {0}")]
    Report(serde_json::Error),
}

impl From<serde_json::Error> for WireError {
    fn from(e: serde_json::Error) -> WireError {
        WireError::Report(e)
    }
}

impl TryFrom<&v1::ListRunsRequest> for RunFilter {
    type Error = WireError;
    fn try_from(r: &v1::ListRunsRequest) -> Result<RunFilter, WireError> {
        let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
        Ok(RunFilter {
            scenario: some(&r.scenario),
            verdict: some(&r.verdict)
                .map(|v| parse_verdict(&v))
                .transpose()
                .map_err(WireError::UnknownName)?,
            status: some(&r.status)
                .map(|s| s.parse::<RunStatus>())
                .transpose()
                .map_err(WireError::UnknownName)?,
            since_unix_ms: r.since_unix_ms,
            until_unix_ms: r.until_unix_ms,
            limit: r.limit,
        })
    }
}

impl From<&RunSummary> for v1::RunSummary {
    fn from(s: &RunSummary) -> v1::RunSummary {
        v1::RunSummary {
            run_id: s.run_id.clone(),
            scenario: s.scenario.clone(),
            file: s.file.clone(),
            index: s.index,
            status: s.status.to_string(),
            verdict: s.verdict.map(|v| v.to_string()).unwrap_or_default(),
            reason: s.reason.clone(),
            met_expectation: s.met_expectation,
            started_unix_ms: s.started_unix_ms,
            finished_unix_ms: s.finished_unix_ms,
            time_to_recover_us: s.time_to_recover_us,
            rto_us: s.rto_us,
            started_by: s.started_by.clone(),
            invocation: s.invocation.clone(),
            scenario_sha256: s.scenario_sha256.clone(),
            scenario_changed: s.scenario_changed,
        }
    }
}

impl TryFrom<v1::RunSummary> for RunSummary {
    type Error = WireError;
    fn try_from(s: v1::RunSummary) -> Result<RunSummary, WireError> {
        Ok(RunSummary {
            status: s.status.parse().map_err(WireError::UnknownName)?,
            verdict: (!s.verdict.is_empty())
                .then(|| parse_verdict(&s.verdict))
                .transpose()
                .map_err(WireError::UnknownName)?,
            run_id: s.run_id,
            scenario: s.scenario,
            file: s.file,
            index: s.index,
            reason: s.reason,
            met_expectation: s.met_expectation,
            started_unix_ms: s.started_unix_ms,
            finished_unix_ms: s.finished_unix_ms,
            time_to_recover_us: s.time_to_recover_us,
            rto_us: s.rto_us,
            started_by: s.started_by,
            invocation: s.invocation,
            scenario_sha256: s.scenario_sha256,
            scenario_changed: s.scenario_changed,
        })
    }
}

impl TryFrom<&StoredRun> for v1::GetRunResponse {
    type Error = WireError;
    fn try_from(s: &StoredRun) -> Result<v1::GetRunResponse, WireError> {
        Ok(v1::GetRunResponse {
            status: s.status.to_string(),
            run_json: serde_json::to_string(&s.run)?,
            scenario_toml: s.scenario_toml.clone(),
            scenario: s.scenario.clone(),
            file: s.file.clone(),
            scenario_sha256: s.scenario_sha256.clone(),
            expect: s.expect.clone(),
            rto_us: s.rto_us,
            min_pass_rate: s.min_pass_rate,
            finished_unix_ms: s.finished_unix_ms,
            samples_pruned: s.samples_pruned,
            started_by: s.started_by.clone(),
            invocation: s.invocation.clone(),
            scenario_changed_since: s.scenario_changed_since.clone().unwrap_or_default(),
        })
    }
}

impl TryFrom<v1::GetRunResponse> for StoredRun {
    type Error = WireError;
    fn try_from(r: v1::GetRunResponse) -> Result<StoredRun, WireError> {
        let run: RunReport = serde_json::from_str(&r.run_json)?;
        Ok(StoredRun {
            status: r.status.parse().map_err(WireError::UnknownName)?,
            scenario: r.scenario,
            file: r.file,
            scenario_toml: r.scenario_toml,
            scenario_sha256: r.scenario_sha256,
            expect: r.expect,
            rto_us: r.rto_us,
            min_pass_rate: r.min_pass_rate,
            finished_unix_ms: r.finished_unix_ms,
            samples_pruned: r.samples_pruned,
            started_by: r.started_by,
            invocation: r.invocation,
            scenario_changed_since: (!r.scenario_changed_since.is_empty())
                .then_some(r.scenario_changed_since),
            run,
        })
    }
}
