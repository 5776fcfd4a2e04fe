//! Run history on the wire: conversions between the store's types and the Operator service's
//! messages, in one place for the server and the CLI.

use gameday_proto::v1;

use super::{RunFilter, RunStatus, RunSummary, StoredRun};
use crate::grade::Verdict;
use crate::report::RunReport;
use crate::scenario::Expectation;

/// A request or response the history cannot make sense of.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// A verdict, status or expectation this build does not know (a newer peer's).
    #[error("unknown {what} {value} on the wire (a newer gameday?)")]
    Unknown {
        /// Which enum.
        what: &'static str,
        /// Its wire value.
        value: i32,
    },
    /// A field that must be set was not.
    #[error("the {0} is missing")]
    Missing(&'static str),
    /// An embedded JSON document that does not decode.
    #[error("the run report does not decode: {0}")]
    Report(serde_json::Error),
}

impl From<serde_json::Error> for WireError {
    fn from(e: serde_json::Error) -> WireError {
        WireError::Report(e)
    }
}

impl From<Verdict> for v1::Verdict {
    fn from(v: Verdict) -> Self {
        match v {
            Verdict::Pass => v1::Verdict::Pass,
            Verdict::Fail => v1::Verdict::Fail,
            Verdict::NoImpact => v1::Verdict::NoImpact,
            Verdict::Inconclusive => v1::Verdict::Inconclusive,
            Verdict::Aborted => v1::Verdict::Aborted,
            Verdict::Error => v1::Verdict::Error,
        }
    }
}

/// A wire verdict: `None` when unspecified (a run not graded, a filter not set).
pub fn verdict_from_wire(value: i32) -> Result<Option<Verdict>, WireError> {
    let unknown = WireError::Unknown {
        what: "verdict",
        value,
    };
    Ok(match v1::Verdict::try_from(value).map_err(|_| unknown)? {
        v1::Verdict::Unspecified => None,
        v1::Verdict::Pass => Some(Verdict::Pass),
        v1::Verdict::Fail => Some(Verdict::Fail),
        v1::Verdict::NoImpact => Some(Verdict::NoImpact),
        v1::Verdict::Inconclusive => Some(Verdict::Inconclusive),
        v1::Verdict::Aborted => Some(Verdict::Aborted),
        v1::Verdict::Error => Some(Verdict::Error),
    })
}

impl From<RunStatus> for v1::RunStatus {
    fn from(s: RunStatus) -> Self {
        match s {
            RunStatus::Running => v1::RunStatus::Running,
            RunStatus::Finished => v1::RunStatus::Finished,
            RunStatus::Interrupted => v1::RunStatus::Interrupted,
        }
    }
}

/// A wire run status: `None` when unspecified.
pub fn status_from_wire(value: i32) -> Result<Option<RunStatus>, WireError> {
    let unknown = WireError::Unknown {
        what: "run status",
        value,
    };
    Ok(match v1::RunStatus::try_from(value).map_err(|_| unknown)? {
        v1::RunStatus::Unspecified => None,
        v1::RunStatus::Running => Some(RunStatus::Running),
        v1::RunStatus::Finished => Some(RunStatus::Finished),
        v1::RunStatus::Interrupted => Some(RunStatus::Interrupted),
    })
}

impl From<Expectation> for v1::Expectation {
    fn from(e: Expectation) -> Self {
        match e {
            Expectation::Recovery => v1::Expectation::Recovery,
            Expectation::NoImpact => v1::Expectation::NoImpact,
        }
    }
}

fn expectation_from_wire(value: i32) -> Result<Expectation, WireError> {
    let unknown = WireError::Unknown {
        what: "expectation",
        value,
    };
    match v1::Expectation::try_from(value).map_err(|_| unknown)? {
        v1::Expectation::Unspecified => Err(WireError::Missing("expectation")),
        v1::Expectation::Recovery => Ok(Expectation::Recovery),
        v1::Expectation::NoImpact => Ok(Expectation::NoImpact),
    }
}

impl TryFrom<&v1::ListRunsRequest> for RunFilter {
    type Error = WireError;
    fn try_from(r: &v1::ListRunsRequest) -> Result<RunFilter, WireError> {
        let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
        Ok(RunFilter {
            scenario: some(&r.scenario),
            verdict: verdict_from_wire(r.verdict)?,
            status: status_from_wire(r.status)?,
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
            status: v1::RunStatus::from(s.status).into(),
            verdict: s
                .verdict
                .map_or(v1::Verdict::Unspecified, v1::Verdict::from)
                .into(),
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
            status: status_from_wire(s.status)?.ok_or(WireError::Missing("run status"))?,
            verdict: verdict_from_wire(s.verdict)?,
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
            status: v1::RunStatus::from(s.status).into(),
            run_json: serde_json::to_string(&s.run)?,
            scenario_toml: s.scenario_toml.clone(),
            scenario: s.scenario.clone(),
            file: s.file.clone(),
            scenario_sha256: s.scenario_sha256.clone(),
            expect: v1::Expectation::from(s.expect).into(),
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
            status: status_from_wire(r.status)?.ok_or(WireError::Missing("run status"))?,
            expect: expectation_from_wire(r.expect)?,
            scenario: r.scenario,
            file: r.file,
            scenario_toml: r.scenario_toml,
            scenario_sha256: r.scenario_sha256,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_statuses_and_expectations_round_trip_and_unknowns_are_named() {
        use Verdict::*;
        for v in [Pass, Fail, NoImpact, Inconclusive, Aborted, Error] {
            assert_eq!(
                verdict_from_wire(v1::Verdict::from(v).into()).unwrap(),
                Some(v)
            );
        }
        assert_eq!(
            verdict_from_wire(0).unwrap(),
            None,
            "unspecified: not graded"
        );
        let e = verdict_from_wire(99).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown verdict 99 on the wire (a newer gameday?)"
        );
        for s in [
            RunStatus::Running,
            RunStatus::Finished,
            RunStatus::Interrupted,
        ] {
            assert_eq!(
                status_from_wire(v1::RunStatus::from(s).into()).unwrap(),
                Some(s)
            );
        }
        for x in [Expectation::Recovery, Expectation::NoImpact] {
            assert_eq!(
                expectation_from_wire(v1::Expectation::from(x).into()).unwrap(),
                x
            );
        }
        assert!(matches!(
            expectation_from_wire(0),
            Err(WireError::Missing("expectation"))
        ));
    }
}
