//! Run history: every run written to an embedded SQLite database (`DATA_DIR/history.sqlite3`,
//! WAL mode) as it progresses — scenario text and hash, targets, faults, every probe sample,
//! then the verdict, figures and full report — so that nothing already seen is lost when the
//! controller dies, and runs a dead controller left behind are marked `interrupted`.
//!
//! [`Store`] is a [`crate::engine::RunObserver`]: register it with
//! `Engine::new(..).with_observer(Arc::new(store))`. Writing history never stops a run: write
//! errors are logged. Reads serve `gameday runs`, `gameday runs show` and scenario trends.

mod query;
mod record;
mod retention;
pub mod schema;
mod wire;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};

use crate::grade::Verdict;
use crate::report::{summarize, RunReport, ScenarioReport};
use crate::scenario::Expectation;

pub use retention::{prune_periodically, PruneOutcome};
pub use wire::WireError;

/// The database's file name inside the controller's data directory.
pub const FILE_NAME: &str = "history.sqlite3";

/// The reason given to runs a stopped controller left behind.
pub const INTERRUPTED_REASON: &str = "controller stopped during the run";

/// The run history database.
pub struct Store {
    path: PathBuf,
    /// Observer writes go through this connection.
    writer: Mutex<Connection>,
    /// Queries read through their own connection, so a long read never holds up a run's
    /// writes (WAL lets one writer and readers work at once).
    reader: Mutex<Connection>,
    interrupted: AtomicUsize,
}

/// What went wrong with the run history.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data directory could not be created.
    #[error("cannot create the data directory {path}: {cause}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why (in the message, not a separate source, so it is printed once).
        cause: std::io::Error,
    },
    /// The database could not be opened, configured or migrated.
    #[error("cannot open the run history {path}: {message}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A read or write failed.
    #[error("run history: {0}")]
    Sqlite(rusqlite::Error),
    /// A stored document could not be read back.
    #[error("run history: run {run_id} has an unreadable {what}: {message}")]
    Corrupt {
        /// The run.
        run_id: String,
        /// Which column.
        what: &'static str,
        /// The decoder's complaint.
        message: String,
    },
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        StoreError::Sqlite(e)
    }
}

/// Where a run is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// In progress on this controller.
    Running,
    /// Graded; the verdict and report are stored.
    Finished,
    /// The controller stopped before the run was graded; what was recorded until then is kept.
    Interrupted,
}

impl RunStatus {
    /// The name stored in the database and shown to operators.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Finished => "finished",
            RunStatus::Interrupted => "interrupted",
        }
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for RunStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "running" => Ok(RunStatus::Running),
            "finished" => Ok(RunStatus::Finished),
            "interrupted" => Ok(RunStatus::Interrupted),
            _ => Err(format!(
                "unknown run status {s:?} (expected running, finished or interrupted)"
            )),
        }
    }
}

/// Parses a verdict as operators write it: `PASS`, `fail`, `no-impact`, `NO_IMPACT`...
pub fn parse_verdict(s: &str) -> Result<Verdict, String> {
    let name = s.trim().to_ascii_uppercase().replace('-', "_");
    serde_json::from_value(serde_json::Value::String(name)).map_err(|_| {
        format!(
            "unknown verdict {s:?} (expected PASS, FAIL, NO_IMPACT, INCONCLUSIVE, ABORTED or ERROR)"
        )
    })
}

/// Which runs to list. Every field narrows the list; the newest runs come first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunFilter {
    /// Only this scenario (exact name).
    pub scenario: Option<String>,
    /// Only runs graded with this verdict (which excludes running and interrupted runs).
    pub verdict: Option<Verdict>,
    /// Only runs in this state.
    pub status: Option<RunStatus>,
    /// Runs started at or after this moment (ms since the Unix epoch).
    pub since_unix_ms: Option<u64>,
    /// Runs started before this moment (ms since the Unix epoch).
    pub until_unix_ms: Option<u64>,
    /// At most this many runs; 0 means [`RunFilter::DEFAULT_LIMIT`].
    pub limit: u32,
}

impl RunFilter {
    /// Runs listed when no limit is given.
    pub const DEFAULT_LIMIT: u32 = 100;
    /// The most runs one listing returns.
    pub const MAX_LIMIT: u32 = 10_000;
}

/// One line of `gameday runs`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSummary {
    /// Unique run id.
    pub run_id: String,
    /// Scenario name.
    pub scenario: String,
    /// The scenario file it came from.
    pub file: String,
    /// 1-based index among the scenario's repeats.
    pub index: u32,
    /// Where the run is in its life.
    pub status: RunStatus,
    /// The verdict, once graded.
    pub verdict: Option<Verdict>,
    /// Why, in one sentence (for interrupted runs: that the controller stopped).
    pub reason: String,
    /// Whether the verdict is what the scenario expects, once graded.
    pub met_expectation: Option<bool>,
    /// Wall-clock start, ms since the Unix epoch.
    pub started_unix_ms: u64,
    /// Wall-clock end (graded or marked interrupted), ms since the Unix epoch.
    pub finished_unix_ms: Option<u64>,
    /// Time to recover, microseconds, when the service recovered.
    pub time_to_recover_us: Option<u64>,
    /// The scenario's RTO, microseconds.
    pub rto_us: u64,
    /// Who or what started it (`operator:alice`, `schedule:monthly`); empty when not
    /// recorded.
    #[serde(default)]
    pub started_by: String,
    /// The invocation it is a repeat of; empty when not recorded.
    #[serde(default)]
    pub invocation: String,
    /// SHA-256 of the scenario text it ran, hex; empty when not recorded.
    #[serde(default)]
    pub scenario_sha256: String,
    /// The scenario's text differs from the one of the scenario's previous run.
    #[serde(default)]
    pub scenario_changed: bool,
}

/// One run as the history holds it: its record and the report, rebuilt from the recorded rows
/// when the run was never graded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredRun {
    /// Where the run is in its life.
    pub status: RunStatus,
    /// Scenario name.
    pub scenario: String,
    /// The scenario file it came from.
    pub file: String,
    /// The scenario file's text as it was run.
    pub scenario_toml: String,
    /// SHA-256 of that text, hex.
    pub scenario_sha256: String,
    /// What the scenario expects.
    pub expect: Expectation,
    /// The scenario's RTO, microseconds.
    pub rto_us: u64,
    /// The scenario's required pass rate.
    pub min_pass_rate: f64,
    /// Wall-clock end (graded or marked interrupted), ms since the Unix epoch.
    pub finished_unix_ms: Option<u64>,
    /// The samples were removed by the retention setting (the figures are kept).
    pub samples_pruned: bool,
    /// Who or what started it; empty when not recorded.
    #[serde(default)]
    pub started_by: String,
    /// The invocation it is a repeat of; empty when not recorded.
    #[serde(default)]
    pub invocation: String,
    /// The scenario's previous run, when the scenario text changed since.
    #[serde(default)]
    pub scenario_changed_since: Option<String>,
    /// The run. For runs never graded, the verdict is a stand-in — `ABORTED` for interrupted
    /// runs, `INCONCLUSIVE` for running ones — and `status` says what really happened.
    pub run: RunReport,
}

impl StoredRun {
    /// A scenario report holding just this run, as `gameday run` prints it.
    pub fn scenario_report(&self) -> ScenarioReport {
        let runs = vec![self.run.clone()];
        ScenarioReport {
            scenario: self.scenario.clone(),
            file: self.file.clone(),
            expect: self.expect,
            rto_us: self.rto_us,
            error: None,
            summary: summarize(&runs, self.min_pass_rate, false),
            runs,
        }
    }
}

/// One point of a scenario's recovery trend across game days.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrendPoint {
    /// The run.
    pub run_id: String,
    /// Its wall-clock start, ms since the Unix epoch.
    pub started_unix_ms: u64,
    /// Its verdict.
    pub verdict: crate::grade::Verdict,
    /// Its time to recover, microseconds, when the service recovered.
    pub recovery_us: Option<u64>,
}

/// A scenario's recent history: its runs graded together, and the recovery trend.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScenarioHistory {
    /// The most recent runs, oldest first, summarised like one `gameday run`.
    pub report: ScenarioReport,
    /// The graded runs among them, oldest first.
    pub trend: Vec<TrendPoint>,
}

impl Store {
    /// Opens (creating when needed) `data_dir/history.sqlite3`; the directory is created with
    /// mode 0700 when missing.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(data_dir)
            .map_err(|cause| StoreError::CreateDir {
                path: data_dir.to_path_buf(),
                cause,
            })?;
        Store::open_file(&data_dir.join(FILE_NAME))
    }

    /// Opens (creating when needed) the database at `path` and brings its schema up to date.
    pub fn open_file(path: &Path) -> Result<Store, StoreError> {
        let fail = |message: String| StoreError::Open {
            path: path.to_path_buf(),
            message,
        };
        let mut writer = Connection::open(path).map_err(|e| fail(e.to_string()))?;
        configure(&writer, true).map_err(|e| fail(e.to_string()))?;
        schema::migrate(&mut writer).map_err(|e| fail(e.to_string()))?;
        let reader = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| fail(e.to_string()))?;
        configure(&reader, false).map_err(|e| fail(e.to_string()))?;
        Ok(Store {
            path: path.to_path_buf(),
            writer: Mutex::new(writer),
            reader: Mutex::new(reader),
            interrupted: AtomicUsize::new(0),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Marks every run still `running` as `interrupted` (finished now, with the reason
    /// [`INTERRUPTED_REASON`]) and returns how many. Call it once at startup, before any run
    /// starts: no run can be in progress in a controller that has just started.
    pub fn mark_interrupted_runs(&self, now_unix_ms: u64) -> Result<usize, StoreError> {
        let n = self.writer().execute(
            "UPDATE runs SET status = 'interrupted', finished_unix_ms = ?1, reason = ?2
             WHERE status = 'running'",
            rusqlite::params![now_unix_ms, INTERRUPTED_REASON],
        )?;
        self.interrupted.fetch_add(n, Ordering::Relaxed);
        Ok(n)
    }

    /// How many runs [`Store::mark_interrupted_runs`] has marked since this store was opened.
    pub fn interrupted_runs_marked(&self) -> usize {
        self.interrupted.load(Ordering::Relaxed)
    }

    fn writer(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (transactions roll back),
        // so a poisoned lock is still usable.
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn reader(&self) -> MutexGuard<'_, Connection> {
        self.reader.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn configure(conn: &Connection, writer: bool) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "foreign_keys", true)?;
    if !writer {
        return Ok(());
    }
    // WAL survives a crash of the process; NORMAL may lose the last transactions on a power
    // cut, never corrupt the file.
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(mode = %mode, "run history: SQLite did not switch to WAL mode");
    }
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(())
}

pub use crate::timeline::unix_ms_now;

#[cfg(test)]
mod tests;
