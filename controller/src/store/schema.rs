//! The history database's schema and its migrations, versioned with `PRAGMA user_version`.
//!
//! Migrations only ever append: version N is the database after the first N entries of
//! [`MIGRATIONS`] ran, each in its own transaction together with the version bump, so a
//! controller killed during an upgrade leaves the database at a whole version.

use rusqlite::Connection;

/// Every migration, in order; `MIGRATIONS[i]` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[V1, V2, V3, V4];

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Version 1: runs, their faults and their probe samples.
const V1: &str = r#"
CREATE TABLE runs (
    run_id                  TEXT PRIMARY KEY NOT NULL,
    scenario                TEXT NOT NULL,
    file                    TEXT NOT NULL DEFAULT '',
    scenario_text           TEXT NOT NULL DEFAULT '',
    scenario_sha256         TEXT NOT NULL DEFAULT '',
    idx                     INTEGER NOT NULL,
    targets                 TEXT NOT NULL DEFAULT '[]',
    -- [{"name": ..., "recovered_after": ...}] in the scenario's order, to rebuild timelines.
    probes                  TEXT NOT NULL DEFAULT '[]',
    expect                  TEXT NOT NULL DEFAULT 'recovery',
    rto_us                  INTEGER NOT NULL,
    min_pass_rate           REAL NOT NULL DEFAULT 1.0,
    status                  TEXT NOT NULL CHECK (status IN ('running', 'finished', 'interrupted')),
    verdict                 TEXT,
    reason                  TEXT NOT NULL DEFAULT '',
    met_expectation         INTEGER,
    started_unix_ms         INTEGER NOT NULL,
    finished_unix_ms        INTEGER,
    epoch_monotonic_ns      INTEGER NOT NULL DEFAULT 0,
    time_to_recover_us      INTEGER,
    time_to_recover_low_us  INTEGER,
    time_to_recover_high_us INTEGER,
    time_to_detect_us       INTEGER,
    recover_after_revert_us INTEGER,
    samples_pruned          INTEGER NOT NULL DEFAULT 0,
    report_json             TEXT
);
CREATE INDEX runs_by_scenario ON runs (scenario, started_unix_ms);
CREATE INDEX runs_by_start ON runs (started_unix_ms);
CREATE INDEX runs_by_status ON runs (status);

CREATE TABLE faults (
    fault_id        TEXT PRIMARY KEY NOT NULL,
    run_id          TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    agent           TEXT NOT NULL,
    kind            TEXT NOT NULL,
    applied_at_us   INTEGER,
    uncertainty_us  INTEGER,
    apply_us        INTEGER,
    reverted_us     INTEGER,
    evidence        TEXT NOT NULL DEFAULT '',
    revert_evidence TEXT NOT NULL DEFAULT '',
    pids            TEXT NOT NULL DEFAULT '[]',
    figures         TEXT NOT NULL DEFAULT '{}',
    error           TEXT
);
CREATE INDEX faults_by_run ON faults (run_id);

CREATE TABLE samples (
    run_id   TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    probe    TEXT NOT NULL,
    start_us INTEGER NOT NULL,
    end_us   INTEGER NOT NULL,
    ok       INTEGER NOT NULL,
    error    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX samples_by_run ON samples (run_id);
"#;

/// Version 2: who or what started each run, and the invocation it is a repeat of. Runs
/// recorded before have both empty.
const V2: &str = r#"
ALTER TABLE runs ADD COLUMN started_by TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN invocation TEXT NOT NULL DEFAULT '';
CREATE INDEX runs_by_invocation ON runs (invocation);
"#;

/// Version 3: probe samples live once, in the samples table. A graded run's report used to
/// carry them too: the table takes the report's copy (the complete one: samples recorded while
/// the run went on could miss its last quarter second), and the report keeps everything else.
const V3: &str = r#"
DELETE FROM samples WHERE run_id IN (
    SELECT run_id FROM runs WHERE report_json IS NOT NULL AND samples_pruned = 0);
INSERT INTO samples (run_id, probe, start_us, end_us, ok, error)
    SELECT r.run_id, json_extract(p.value, '$.name'), json_extract(s.value, '$.start_us'),
           json_extract(s.value, '$.end_us'), json_extract(s.value, '$.ok'),
           COALESCE(json_extract(s.value, '$.error'), '')
    FROM runs r, json_each(r.report_json, '$.probes') p, json_each(p.value, '$.samples') s
    WHERE r.report_json IS NOT NULL AND r.samples_pruned = 0
    ORDER BY r.run_id, p.key, s.key;
UPDATE runs SET report_json = json_set(report_json, '$.probes', (
        SELECT json_group_array(json_set(p.value, '$.samples', json('[]')) ORDER BY p.key)
        FROM json_each(runs.report_json, '$.probes') p))
    WHERE report_json IS NOT NULL AND json_type(report_json, '$.probes') = 'array';
"#;

/// Version 4: annotations, kept here alone (a finished run's report does not carry them).
const V4: &str = r#"
CREATE TABLE annotations (
    run_id  TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    unix_ms INTEGER NOT NULL,
    author  TEXT NOT NULL,
    kind    TEXT NOT NULL,
    text    TEXT NOT NULL
);
CREATE INDEX annotations_by_run ON annotations (run_id, unix_ms);
"#;

/// Why the schema could not be brought up to date.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    /// A newer gameday wrote this database; this build must not touch it.
    #[error(
        "the database has schema version {found}, newer than this build's {supported}; \
         upgrade gameday or point data_dir elsewhere"
    )]
    Newer {
        /// The version found.
        found: u32,
        /// The newest version this build knows.
        supported: u32,
    },
    /// SQLite failed.
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// Brings the schema up to [`SCHEMA_VERSION`] and returns the version it found.
pub fn migrate(conn: &mut Connection) -> Result<u32, MigrationError> {
    let found: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(MigrationError::Newer {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for (done, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", done as u32 + 1)?;
        tx.commit()?;
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_a_fresh_database_once() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(migrate(&mut conn).unwrap(), 0);
        assert_eq!(migrate(&mut conn).unwrap(), SCHEMA_VERSION);
        let tables: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(tables, ["annotations", "faults", "runs", "samples"]);
    }

    #[test]
    fn a_version_1_database_keeps_its_runs_and_gains_the_new_columns() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(V1).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute(
            "INSERT INTO runs (run_id, scenario, idx, rto_us, status, started_unix_ms)
             VALUES ('run-old-0', 'kill', 1, 1000, 'finished', 5)",
            [],
        )
        .unwrap();
        assert_eq!(migrate(&mut conn).unwrap(), 1);
        let (by, invocation): (String, String) = conn
            .query_row(
                "SELECT started_by, invocation FROM runs WHERE run_id = 'run-old-0'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((by.as_str(), invocation.as_str()), ("", ""));
        assert_eq!(migrate(&mut conn).unwrap(), SCHEMA_VERSION);
    }

    #[test]
    fn a_version_2_database_moves_report_samples_into_the_samples_table() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(V1).unwrap();
        conn.execute_batch(V2).unwrap();
        conn.pragma_update(None, "user_version", 2).unwrap();
        let report = r#"{"run_id":"r1","probes":[
            {"name":"http","recovered_after":3,"samples":[
                {"start_us":0,"end_us":900,"ok":true},
                {"start_us":1000,"end_us":1900,"ok":false,"error":"refused"},
                {"start_us":2000,"end_us":2900,"ok":true}]},
            {"name":"dns","recovered_after":1,"seed":7,"samples":[
                {"start_us":5,"end_us":6,"ok":true}]}]}"#;
        conn.execute(
            "INSERT INTO runs (run_id, scenario, idx, rto_us, status, started_unix_ms,
                report_json) VALUES ('r1', 'kill', 1, 1000, 'finished', 5, ?1)",
            [report],
        )
        .unwrap();
        // The recorder had written only the first sample before the run ended.
        conn.execute(
            "INSERT INTO samples (run_id, probe, start_us, end_us, ok) VALUES ('r1', 'http', 0, 900, 1)",
            [],
        )
        .unwrap();
        assert_eq!(migrate(&mut conn).unwrap(), 2);
        let rows: Vec<(String, u64, u64, bool, String)> = conn
            .prepare("SELECT probe, start_us, end_us, ok, error FROM samples ORDER BY rowid")
            .unwrap()
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            rows,
            [
                ("http".to_string(), 0, 900, true, String::new()),
                ("http".to_string(), 1000, 1900, false, "refused".to_string()),
                ("http".to_string(), 2000, 2900, true, String::new()),
                ("dns".to_string(), 5, 6, true, String::new()),
            ]
        );
        let json: String = conn
            .query_row("SELECT report_json FROM runs", [], |r| r.get(0))
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["probes"][0]["name"], "http");
        assert_eq!(v["probes"][1]["seed"], 7);
        assert!(v["probes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["samples"] == serde_json::json!([])));
    }

    #[test]
    fn refuses_a_newer_schema() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        let e = migrate(&mut conn).unwrap_err();
        assert!(matches!(e, MigrationError::Newer { .. }), "{e}");
        assert!(e.to_string().contains("newer than this build"));
    }
}
