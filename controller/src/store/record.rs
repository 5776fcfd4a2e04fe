//! Writing runs down as they happen: the store as a [`RunObserver`].
//!
//! A failed write is logged and forgotten: losing a line of history must never stop or fail a
//! run that is injecting faults on real hosts.

use rusqlite::{params, Connection};
use sha2::{Digest, Sha256};

use super::{unix_ms_now, Store, StoreError};
use crate::engine::{OrphanRevert, RunObserver, RunStart};
use crate::report::{FaultRecord, RunReport};
use crate::scenario::Scenario;
use crate::timeline::Sample;

/// A probe as the history remembers it, to rebuild timelines of runs that were never graded.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(super) struct ProbeEntry {
    pub name: String,
    pub recovered_after: u32,
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    // Plain data (strings, numbers, maps with string keys) always encodes.
    serde_json::to_string(value).unwrap_or_default()
}

fn log_failure(what: &str, run_id: &str, result: Result<(), StoreError>) {
    if let Err(e) = result {
        tracing::error!(run = %run_id, error = %e, "run history: could not record {what}");
    }
}

impl Store {
    fn record_start(&self, run: &RunStart<'_>) -> Result<(), StoreError> {
        let s = &run.input.scenario;
        let probes: Vec<ProbeEntry> = s
            .probes
            .iter()
            .map(|p| ProbeEntry {
                name: p.name.clone(),
                recovered_after: p.recovered_after,
            })
            .collect();
        let hash = format!("{:x}", Sha256::digest(run.input.source.as_bytes()));
        self.writer().execute(
            "INSERT INTO runs (run_id, scenario, file, scenario_text, scenario_sha256, idx,
                targets, probes, expect, rto_us, min_pass_rate, status, started_unix_ms,
                epoch_monotonic_ns, started_by, invocation)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 'running', ?12, ?13, ?14,
                ?15)",
            params![
                run.run_id,
                s.name,
                run.input.file,
                run.input.source,
                hash,
                run.index,
                to_json(&run.targets),
                to_json(&probes),
                s.expect.as_str(),
                s.rto.get().as_micros() as u64,
                s.min_pass_rate,
                unix_ms_now(),
                run.epoch_monotonic_ns,
                run.identity.started_by.to_string(),
                run.identity.invocation,
            ],
        )?;
        Ok(())
    }

    fn record_samples(
        &self,
        run_id: &str,
        probe: &str,
        samples: &[Sample],
    ) -> Result<(), StoreError> {
        let mut conn = self.writer();
        let tx = conn.transaction()?;
        insert_samples(&tx, run_id, probe, samples)?;
        tx.commit()?;
        Ok(())
    }

    fn record_fault(&self, run_id: &str, fault: &FaultRecord) -> Result<(), StoreError> {
        upsert_fault(&self.writer(), run_id, fault)
    }

    fn record_finish(&self, scenario: &Scenario, run: &RunReport) -> Result<(), StoreError> {
        let mut conn = self.writer();
        let tx = conn.transaction()?;
        let grade = run.grade.as_ref();
        let recover = grade.and_then(|g| g.time_to_recover);
        // The samples go to their table, once: the report keeps everything else.
        let mut without_samples = run.clone();
        for p in &mut without_samples.probes {
            p.samples.clear();
        }
        // Annotations live in their table, added as they were made.
        without_samples.annotations.clear();
        without_samples.remediation = None;
        let report_json =
            serde_json::to_string(&without_samples).map_err(|e| StoreError::Corrupt {
                run_id: run.run_id.clone(),
                what: "report",
                message: e.to_string(),
            })?;
        // A repeat whose preflight failed never started: its row is made here, in its
        // invocation, started by whoever started the repeats before it.
        let invocation = crate::engine::invocation_of(&run.run_id).unwrap_or_default();
        tx.execute(
            "INSERT INTO runs (run_id, scenario, idx, targets, expect, rto_us, min_pass_rate,
                status, started_unix_ms, epoch_monotonic_ns, invocation, started_by)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'finished', ?8, ?9, ?10,
                COALESCE((SELECT started_by FROM runs
                          WHERE invocation = ?10 AND ?10 != '' LIMIT 1), ''))
             ON CONFLICT (run_id) DO NOTHING",
            params![
                run.run_id,
                scenario.name,
                run.index,
                to_json(&run.targets),
                scenario.expect.as_str(),
                scenario.rto.get().as_micros() as u64,
                scenario.min_pass_rate,
                run.started_unix_ms,
                run.epoch_monotonic_ns,
                invocation,
            ],
        )?;
        tx.execute(
            "UPDATE runs SET status = 'finished', verdict = ?2, reason = ?3, met_expectation = ?4,
                finished_unix_ms = ?5, time_to_recover_us = ?6, time_to_recover_low_us = ?7,
                time_to_recover_high_us = ?8, time_to_detect_us = ?9,
                recover_after_revert_us = ?10, report_json = ?11,
                started_unix_ms = CASE WHEN ?12 > 0 THEN ?12 ELSE started_unix_ms END
             WHERE run_id = ?1",
            params![
                run.run_id,
                run.verdict.to_string(),
                run.reason,
                run.met_expectation,
                unix_ms_now(),
                recover.map(|m| m.us),
                recover.map(|m| m.low_us),
                recover.map(|m| m.high_us),
                grade.and_then(|g| g.time_to_detect).map(|m| m.us),
                grade.and_then(|g| g.recover_after_revert_us),
                report_json,
                run.started_unix_ms,
            ],
        )?;
        for f in &run.faults {
            upsert_fault(&tx, &run.run_id, f)?;
        }
        // The report's samples are the complete set (those recorded as the run went on can
        // miss its last moments, or a write that failed): they replace what was recorded.
        tx.execute("DELETE FROM samples WHERE run_id = ?1", params![run.run_id])?;
        for p in &run.probes {
            insert_samples(&tx, &run.run_id, &p.name, &p.samples)?;
        }
        tx.commit()?;
        Ok(())
    }
}

/// Appends one probe's samples to its run's, in the order given (the order answers arrived).
fn insert_samples(
    conn: &Connection,
    run_id: &str,
    probe: &str,
    samples: &[Sample],
) -> Result<(), StoreError> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO samples (run_id, probe, start_us, end_us, ok, error)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for s in samples {
        insert.execute(params![run_id, probe, s.start_us, s.end_us, s.ok, s.error])?;
    }
    Ok(())
}

/// Inserts a fault or updates it in place (it is reported when applied and again when
/// reverted), keeping its first insertion's order.
fn upsert_fault(conn: &Connection, run_id: &str, f: &FaultRecord) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO faults (fault_id, run_id, agent, kind, applied_at_us, uncertainty_us,
            apply_us, reverted_us, evidence, revert_evidence, pids, figures, error)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
         ON CONFLICT (fault_id) DO UPDATE SET
            agent = excluded.agent, kind = excluded.kind,
            applied_at_us = excluded.applied_at_us, uncertainty_us = excluded.uncertainty_us,
            apply_us = excluded.apply_us, reverted_us = excluded.reverted_us,
            evidence = excluded.evidence, revert_evidence = excluded.revert_evidence,
            pids = excluded.pids, figures = excluded.figures, error = excluded.error",
        params![
            f.fault_id,
            run_id,
            f.agent,
            f.kind,
            f.applied.map(|m| m.at_us),
            f.applied.map(|m| m.uncertainty_us),
            f.apply_us,
            f.reverted_us,
            f.evidence,
            f.revert_evidence,
            to_json(&f.pids),
            to_json(&f.figures),
            f.error,
        ],
    )?;
    Ok(())
}

impl Store {
    /// Writes down, on the fault and on its run, that the fault was still held when its agent
    /// re-registered and what its revert then did. A run this history never saw is skipped.
    fn record_orphan(&self, o: &OrphanRevert) -> Result<(), StoreError> {
        let mut conn = self.writer();
        let tx = conn.transaction()?;
        let known: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM runs WHERE run_id = ?1)",
            params![o.run_id],
            |r| r.get(0),
        )?;
        if !known {
            return Ok(());
        }
        let sentence = o.sentence();
        tx.execute(
            "INSERT INTO faults (fault_id, run_id, agent, kind, revert_evidence, error)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (fault_id) DO UPDATE SET
                revert_evidence = excluded.revert_evidence,
                error = COALESCE(excluded.error, faults.error)",
            params![
                o.fault_id,
                o.run_id,
                o.agent,
                o.kind,
                format!("{sentence}: {}", o.evidence),
                o.error
                    .as_ref()
                    .map(|e| format!("revert after the restart: {e}")),
            ],
        )?;
        tx.execute(
            "UPDATE runs SET reason = CASE WHEN reason = '' THEN ?2 ELSE reason || '; ' || ?2 END
             WHERE run_id = ?1",
            params![o.run_id, sentence],
        )?;
        tx.commit()?;
        Ok(())
    }
}

impl Store {
    /// Adds `note` to run `run_id`; false when this history has no such run.
    pub fn add_annotation(
        &self,
        run_id: &str,
        note: &crate::annotation::Annotation,
    ) -> Result<bool, StoreError> {
        let kind = serde_json::to_value(note.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let added = self.writer().execute(
            "INSERT INTO annotations (run_id, unix_ms, author, kind, text)
             SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS (SELECT 1 FROM runs WHERE run_id = ?1)",
            params![run_id, note.unix_ms, note.author, kind, note.text],
        )?;
        Ok(added == 1)
    }
}

impl Store {
    /// Marks a run stopped by the controller's shutdown as interrupted (never graded), keeping
    /// everything recorded about it.
    fn record_interrupted(&self, run_id: &str, reason: &str) -> Result<(), StoreError> {
        self.writer().execute(
            "UPDATE runs SET status = 'interrupted', verdict = NULL, met_expectation = NULL,
                reason = ?2
             WHERE run_id = ?1",
            params![run_id, reason],
        )?;
        Ok(())
    }
}

impl RunObserver for Store {
    fn run_interrupted(&self, run_id: &str, reason: &str) {
        log_failure(
            "that the run was interrupted",
            run_id,
            self.record_interrupted(run_id, reason),
        );
    }

    fn orphan_reverted(&self, orphan: &OrphanRevert) {
        log_failure(
            "a fault reverted after a restart",
            &orphan.run_id,
            self.record_orphan(orphan),
        );
    }

    fn run_started(&self, run: &RunStart<'_>) {
        log_failure("the start of the run", run.run_id, self.record_start(run));
    }

    fn samples(&self, run_id: &str, probe: &str, samples: &[Sample]) {
        log_failure(
            "probe samples",
            run_id,
            self.record_samples(run_id, probe, samples),
        );
    }

    fn fault(&self, run_id: &str, fault: &FaultRecord) {
        log_failure("a fault", run_id, self.record_fault(run_id, fault));
    }

    fn run_finished(&self, scenario: &Scenario, run: &RunReport) {
        log_failure(
            "the graded run",
            &run.run_id,
            self.record_finish(scenario, run),
        );
    }
}
