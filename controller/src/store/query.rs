//! Reading history back: run listings, one run's report (rebuilt from its rows when it was
//! never graded), and a scenario's recent runs with their recovery trend.

use std::collections::BTreeMap;

use rusqlite::types::Value;
use rusqlite::{params, Connection, OptionalExtension as _, Row};

use super::record::ProbeEntry;
use super::{
    parse_verdict, RunFilter, RunStatus, RunSummary, ScenarioHistory, Store, StoreError, StoredRun,
    TrendPoint,
};
use crate::grade::Verdict;
use crate::report::{summarize, FaultRecord, RunReport, ScenarioReport};
use crate::timeline::{Moment, ProbeTimeline, Sample};

/// The `runs` columns every query reads, in [`RunRow::read`]'s order; the last is the
/// scenario's previous run with a recorded text, as "RUN_ID SHA256", to tell when the text
/// changed.
const RUN_COLUMNS: &str = "run_id, scenario, file, scenario_text, scenario_sha256, idx, targets,
    probes, expect, rto_us, min_pass_rate, status, verdict, reason, met_expectation,
    started_unix_ms, finished_unix_ms, epoch_monotonic_ns, time_to_recover_us, samples_pruned,
    report_json, started_by, invocation,
    (SELECT p.run_id || ' ' || p.scenario_sha256 FROM runs AS p
     WHERE p.scenario = runs.scenario AND p.scenario_sha256 != ''
       AND (p.started_unix_ms < runs.started_unix_ms
            OR (p.started_unix_ms = runs.started_unix_ms AND p.rowid < runs.rowid))
     ORDER BY p.started_unix_ms DESC, p.rowid DESC LIMIT 1)";

/// One row of `runs`.
struct RunRow {
    run_id: String,
    scenario: String,
    file: String,
    scenario_text: String,
    scenario_sha256: String,
    index: u32,
    targets: String,
    probes: String,
    expect: String,
    rto_us: u64,
    min_pass_rate: f64,
    status: String,
    verdict: Option<String>,
    reason: String,
    met_expectation: Option<bool>,
    started_unix_ms: u64,
    finished_unix_ms: Option<u64>,
    epoch_monotonic_ns: u64,
    time_to_recover_us: Option<u64>,
    samples_pruned: bool,
    report_json: Option<String>,
    started_by: String,
    invocation: String,
    /// The scenario's previous run with a recorded text: "RUN_ID SHA256".
    previous: Option<String>,
}

impl RunRow {
    fn read(r: &Row<'_>) -> rusqlite::Result<RunRow> {
        Ok(RunRow {
            run_id: r.get(0)?,
            scenario: r.get(1)?,
            file: r.get(2)?,
            scenario_text: r.get(3)?,
            scenario_sha256: r.get(4)?,
            index: r.get(5)?,
            targets: r.get(6)?,
            probes: r.get(7)?,
            expect: r.get(8)?,
            rto_us: r.get(9)?,
            min_pass_rate: r.get(10)?,
            status: r.get(11)?,
            verdict: r.get(12)?,
            reason: r.get(13)?,
            met_expectation: r.get(14)?,
            started_unix_ms: r.get(15)?,
            finished_unix_ms: r.get(16)?,
            epoch_monotonic_ns: r.get(17)?,
            time_to_recover_us: r.get(18)?,
            samples_pruned: r.get(19)?,
            report_json: r.get(20)?,
            started_by: r.get(21)?,
            invocation: r.get(22)?,
            previous: r.get(23)?,
        })
    }

    /// The scenario's previous run, when its text differs from this run's.
    fn changed_since(&self) -> Option<String> {
        let (run_id, sha) = self.previous.as_deref()?.split_once(' ')?;
        (!self.scenario_sha256.is_empty() && sha != self.scenario_sha256)
            .then(|| run_id.to_string())
    }

    fn corrupt(&self, what: &'static str, message: impl ToString) -> StoreError {
        StoreError::Corrupt {
            run_id: self.run_id.clone(),
            what,
            message: message.to_string(),
        }
    }

    fn status(&self) -> Result<RunStatus, StoreError> {
        self.status.parse().map_err(|e| self.corrupt("status", e))
    }

    fn expect(&self) -> Result<crate::scenario::Expectation, StoreError> {
        self.expect.parse().map_err(|e| self.corrupt("expect", e))
    }

    fn verdict(&self) -> Result<Option<Verdict>, StoreError> {
        self.verdict
            .as_deref()
            .map(parse_verdict)
            .transpose()
            .map_err(|e| self.corrupt("verdict", e))
    }

    fn summary(&self) -> Result<RunSummary, StoreError> {
        Ok(RunSummary {
            run_id: self.run_id.clone(),
            scenario: self.scenario.clone(),
            file: self.file.clone(),
            index: self.index,
            status: self.status()?,
            verdict: self.verdict()?,
            reason: self.reason.clone(),
            met_expectation: self.met_expectation,
            started_unix_ms: self.started_unix_ms,
            finished_unix_ms: self.finished_unix_ms,
            time_to_recover_us: self.time_to_recover_us,
            rto_us: self.rto_us,
            started_by: self.started_by.clone(),
            invocation: self.invocation.clone(),
            scenario_sha256: self.scenario_sha256.clone(),
            scenario_changed: self.changed_since().is_some(),
        })
    }
}

impl Store {
    /// Runs matching `filter`, newest invocation first, the repeats of one invocation
    /// together and in order.
    pub fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunSummary>, StoreError> {
        let mut clauses = Vec::new();
        let mut values: Vec<Value> = Vec::new();
        let mut push = |clause: &str, value: Value| {
            values.push(value);
            clauses.push(clause.replace('?', &format!("?{}", values.len())));
        };
        if let Some(s) = &filter.scenario {
            push("scenario = ?", Value::Text(s.clone()));
        }
        if let Some(v) = filter.verdict {
            push("verdict = ?", Value::Text(v.to_string()));
        }
        if let Some(s) = filter.status {
            push("status = ?", Value::Text(s.as_str().into()));
        }
        if let Some(t) = filter.since_unix_ms {
            push("started_unix_ms >= ?", Value::Integer(clamp_i64(t)));
        }
        if let Some(t) = filter.until_unix_ms {
            push("started_unix_ms < ?", Value::Integer(clamp_i64(t)));
        }
        let limit = match filter.limit {
            0 => RunFilter::DEFAULT_LIMIT,
            n => n.min(RunFilter::MAX_LIMIT),
        };
        let wher = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs {wher}
             ORDER BY started_unix_ms DESC, rowid DESC LIMIT {limit}"
        );
        let conn = self.reader();
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(values), RunRow::read)?
            .collect::<Result<Vec<_>, _>>()?;
        let runs = rows
            .iter()
            .map(RunRow::summary)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(group_invocations(runs))
    }

    /// One run, or `None` when there is no such run.
    pub fn get_run(&self, run_id: &str) -> Result<Option<StoredRun>, StoreError> {
        let conn = self.reader();
        let tx = conn.unchecked_transaction()?;
        let run = load_run(&tx, run_id)?;
        tx.finish()?;
        Ok(run)
    }

    /// The scenario's `limit` most recent runs (0: 20), graded together like one `gameday run`,
    /// and the recovery trend of those that were graded; `None` when it never ran.
    pub fn scenario_report(
        &self,
        scenario: &str,
        limit: u32,
    ) -> Result<Option<ScenarioHistory>, StoreError> {
        let limit = if limit == 0 { 20 } else { limit.min(1_000) };
        let conn = self.reader();
        let tx = conn.unchecked_transaction()?;
        let ids = tx
            .prepare(
                "SELECT run_id FROM runs WHERE scenario = ?1
                 ORDER BY started_unix_ms DESC, rowid DESC LIMIT ?2",
            )?
            .query_map(params![scenario, limit], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        let mut stored = Vec::with_capacity(ids.len());
        for id in ids.iter().rev() {
            stored.extend(load_run(&tx, id)?);
        }
        tx.finish()?;
        let Some(latest) = stored.last() else {
            return Ok(None);
        };
        let trend = stored
            .iter()
            .filter(|s| s.status == RunStatus::Finished)
            .map(|s| TrendPoint {
                run_id: s.run.run_id.clone(),
                started_unix_ms: s.run.started_unix_ms,
                verdict: s.run.verdict,
                recovery_us: s
                    .run
                    .grade
                    .as_ref()
                    .and_then(|g| g.time_to_recover.map(|m| m.us)),
            })
            .collect();
        let runs: Vec<RunReport> = stored.iter().map(|s| s.run.clone()).collect();
        let report = ScenarioReport {
            scenario: latest.scenario.clone(),
            file: latest.file.clone(),
            expect: latest.expect,
            rto_us: latest.rto_us,
            error: None,
            summary: summarize(&runs, latest.min_pass_rate, false),
            runs,
        };
        Ok(Some(ScenarioHistory { report, trend }))
    }
}

/// Puts the repeats of one invocation together, in repeat order, where the newest of them
/// was; runs recorded without an invocation stand alone.
fn group_invocations(newest_first: Vec<RunSummary>) -> Vec<RunSummary> {
    let mut groups: Vec<Vec<RunSummary>> = Vec::new();
    let mut at: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for run in newest_first {
        let key = if run.invocation.is_empty() {
            format!("\0{}", run.run_id)
        } else {
            run.invocation.clone()
        };
        match at.get(&key) {
            Some(&i) => groups[i].push(run),
            None => {
                at.insert(key, groups.len());
                groups.push(vec![run]);
            }
        }
    }
    for group in &mut groups {
        group.sort_by_key(|r| r.index);
    }
    groups.into_iter().flatten().collect()
}

fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn load_run(conn: &Connection, run_id: &str) -> Result<Option<StoredRun>, StoreError> {
    let row = conn
        .query_row(
            &format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?1"),
            params![run_id],
            RunRow::read,
        )
        .optional()?;
    let Some(row) = row else {
        return Ok(None);
    };
    let status = row.status()?;
    let scenario_changed_since = row.changed_since();
    let expect = row.expect()?;
    let run = match (&row.report_json, status) {
        (Some(json), RunStatus::Finished) => {
            let mut run: RunReport =
                serde_json::from_str(json).map_err(|e| row.corrupt("report", e))?;
            let mut samples = load_samples(conn, &row.run_id)?;
            for p in &mut run.probes {
                p.samples = samples.remove(&p.name).unwrap_or_default();
            }
            run
        }
        _ => rebuild(conn, &row, status)?,
    };
    let mut run = run;
    run.annotations = load_annotations(conn, &row.run_id)?;
    run.remediation = crate::annotation::Remediation::of(&run);
    Ok(Some(StoredRun {
        status,
        scenario: row.scenario,
        file: row.file,
        scenario_toml: row.scenario_text,
        scenario_sha256: row.scenario_sha256,
        expect,
        rto_us: row.rto_us,
        min_pass_rate: row.min_pass_rate,
        finished_unix_ms: row.finished_unix_ms,
        samples_pruned: row.samples_pruned,
        started_by: row.started_by,
        invocation: row.invocation,
        scenario_changed_since,
        run,
    }))
}

/// A run's annotations, oldest first.
fn load_annotations(
    conn: &Connection,
    run_id: &str,
) -> Result<Vec<crate::annotation::Annotation>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT unix_ms, author, kind, text FROM annotations WHERE run_id = ?1
         ORDER BY unix_ms, rowid",
    )?;
    let rows = stmt
        .query_map(params![run_id], |r| {
            Ok((
                r.get::<_, u64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(unix_ms, author, kind, text)| {
            let kind =
                serde_json::from_value(serde_json::Value::String(kind.clone())).map_err(|e| {
                    StoreError::Corrupt {
                        run_id: run_id.to_string(),
                        what: "annotation",
                        message: format!("kind {kind:?}: {e}"),
                    }
                })?;
            Ok(crate::annotation::Annotation {
                unix_ms,
                author,
                kind,
                text,
            })
        })
        .collect()
}

/// A run's samples by probe, each in the order recorded (the order answers arrived).
fn load_samples(
    conn: &Connection,
    run_id: &str,
) -> Result<BTreeMap<String, Vec<Sample>>, StoreError> {
    let mut by_probe: BTreeMap<String, Vec<Sample>> = BTreeMap::new();
    let mut stmt = conn.prepare_cached(
        "SELECT probe, start_us, end_us, ok, error FROM samples WHERE run_id = ?1
         ORDER BY rowid",
    )?;
    let mut rows = stmt.query(params![run_id])?;
    while let Some(r) = rows.next()? {
        by_probe.entry(r.get(0)?).or_default().push(Sample {
            start_us: r.get(1)?,
            end_us: r.get(2)?,
            ok: r.get(3)?,
            error: r.get(4)?,
        });
    }
    Ok(by_probe)
}

/// A report for a run that was never graded, from what was recorded as it went.
fn rebuild(conn: &Connection, row: &RunRow, status: RunStatus) -> Result<RunReport, StoreError> {
    let targets: Vec<String> =
        serde_json::from_str(&row.targets).map_err(|e| row.corrupt("targets", e))?;
    let declared: Vec<ProbeEntry> =
        serde_json::from_str(&row.probes).map_err(|e| row.corrupt("probes", e))?;
    let faults = load_faults(conn, row)?;
    let mut by_probe = load_samples(conn, &row.run_id)?;
    // The scenario's probes in its order (with no samples if none were recorded), then any
    // others the rows hold.
    let mut probes: Vec<ProbeTimeline> = declared
        .iter()
        .map(|p| ProbeTimeline {
            name: p.name.clone(),
            recovered_after: p.recovered_after,
            skipped: 0,
            seed: None,
            samples: by_probe.remove(&p.name).unwrap_or_default(),
        })
        .collect();
    probes.extend(by_probe.into_iter().map(|(name, samples)| ProbeTimeline {
        name,
        recovered_after: 1,
        skipped: 0,
        seed: None,
        samples,
    }));
    for p in &mut probes {
        p.samples.sort_by_key(|s| s.start_us);
    }
    let (verdict, reason) = match status {
        RunStatus::Interrupted => (Verdict::Aborted, row.reason.clone()),
        RunStatus::Running => (Verdict::Inconclusive, "still running".to_string()),
        RunStatus::Finished => (row.verdict()?.unwrap_or(Verdict::Error), row.reason.clone()),
    };
    let inject: Option<Moment> = faults
        .iter()
        .filter_map(|f| f.applied)
        .min_by_key(|m| m.at_us);
    let revert_us = faults.iter().filter_map(|f| f.reverted_us).max();
    Ok(RunReport {
        run_id: row.run_id.clone(),
        index: row.index,
        verdict,
        reason,
        met_expectation: false,
        targets,
        epoch_monotonic_ns: row.epoch_monotonic_ns,
        started_unix_ms: row.started_unix_ms,
        inject,
        revert_us,
        grade: None,
        stages: vec![],
        detection: None,
        annotations: vec![],
        remediation: None,
        remediation_signal: None,
        remediation_steps: vec![],
        faults,
        probes,
    })
}

fn load_faults(conn: &Connection, row: &RunRow) -> Result<Vec<FaultRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT fault_id, agent, kind, applied_at_us, uncertainty_us, apply_us, reverted_us,
            evidence, revert_evidence, pids, figures, error
         FROM faults WHERE run_id = ?1 ORDER BY rowid",
    )?;
    let mut rows = stmt.query(params![row.run_id])?;
    let mut faults = Vec::new();
    while let Some(r) = rows.next()? {
        let at: Option<u64> = r.get(3)?;
        let pids: String = r.get(9)?;
        let figures: String = r.get(10)?;
        faults.push(FaultRecord {
            fault_id: r.get(0)?,
            agent: r.get(1)?,
            kind: r.get(2)?,
            applied: at.map(|at_us| Moment {
                at_us,
                uncertainty_us: r.get::<_, Option<u64>>(4).ok().flatten().unwrap_or(0),
            }),
            apply_us: r.get(5)?,
            reverted_us: r.get(6)?,
            evidence: r.get(7)?,
            revert_evidence: r.get(8)?,
            pids: serde_json::from_str(&pids).map_err(|e| row.corrupt("fault pids", e))?,
            figures: serde_json::from_str(&figures).map_err(|e| row.corrupt("fault figures", e))?,
            // The history keeps the apply figures per fault; the revert figures are in the
            // run's report once it is graded.
            revert_figures: Default::default(),
            error: r.get(11)?,
        });
    }
    Ok(faults)
}
