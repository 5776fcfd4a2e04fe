//! What the scheduler remembers across restarts, in `DATA_DIR/schedules.json`: up to when each
//! schedule's slots were handled (so a restart knows what it missed), and its last run and
//! last skip (for `gameday schedules`). Written atomically (temporary file, fsync, rename) on
//! every change; a missing or unreadable file means "no history".

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The state file's name under the data directory.
pub const STATE_FILE: &str = "schedules.json";

/// The whole file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StateFile {
    /// Format version (1).
    #[serde(default = "version_1")]
    pub version: u32,
    /// By schedule name.
    #[serde(default)]
    pub schedules: BTreeMap<String, ScheduleState>,
}

fn version_1() -> u32 {
    1
}

/// One schedule's memory.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ScheduleState {
    /// Every slot up to this instant was handled: run, skipped, or acknowledged as missed.
    #[serde(default)]
    pub handled_until: Option<DateTime<Utc>>,
    /// The last firing that tried to run its scenario.
    #[serde(default)]
    pub last_run: Option<LastRun>,
    /// The last firing that did not run, and why.
    #[serde(default)]
    pub last_skip: Option<LastSkip>,
}

/// A firing that tried to run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LastRun {
    /// The slot it was for.
    pub slot: DateTime<Utc>,
    /// When it started.
    pub started: DateTime<Utc>,
    /// When it ended; `None` while it runs (or if the controller died during it).
    pub finished: Option<DateTime<Utc>>,
    /// `PASS`, `FAIL 1/3`..., or `ERROR: why` when the scenario could not run.
    pub outcome: String,
    /// The process exit code the outcome maps to (see `report::exit`).
    pub exit_code: Option<i32>,
    /// The runs it made.
    #[serde(default)]
    pub run_ids: Vec<String>,
    /// Whether it was a catch-up for slots missed while the controller was down.
    #[serde(default)]
    pub catch_up: bool,
}

/// A firing that did not run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LastSkip {
    /// The slot.
    pub slot: DateTime<Utc>,
    /// Why it was skipped.
    pub reason: String,
}

/// The file and its in-memory copy. Every update is written through.
#[derive(Debug)]
pub struct StateStore {
    path: PathBuf,
    state: Mutex<StateFile>,
}

impl StateStore {
    /// Reads `DATA_DIR/schedules.json`, keeping only `names` (schedules no longer configured
    /// are forgotten). An unreadable file is logged and treated as empty.
    pub fn open(data_dir: &Path, names: &[&str]) -> StateStore {
        let path = data_dir.join(STATE_FILE);
        let mut state = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str::<StateFile>(&text).unwrap_or_else(|e| {
                tracing::warn!(file = %path.display(), error = %e, "schedule state unreadable; starting without it (missed firings cannot be detected this time)");
                StateFile::default()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => StateFile::default(),
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "schedule state unreadable; starting without it");
                StateFile::default()
            }
        };
        state.version = 1;
        state.schedules.retain(|k, _| names.contains(&k.as_str()));
        StateStore {
            path,
            state: Mutex::new(state),
        }
    }

    /// One schedule's state (default when unknown).
    pub fn get(&self, name: &str) -> ScheduleState {
        self.lock().schedules.get(name).cloned().unwrap_or_default()
    }

    /// Changes one schedule's state and writes the file. A failed write is logged: the
    /// schedule goes on, only its memory across a restart suffers.
    pub fn update(&self, name: &str, change: impl FnOnce(&mut ScheduleState)) {
        let mut state = self.lock();
        change(state.schedules.entry(name.to_string()).or_default());
        if let Err(e) = write_atomically(&self.path, &state) {
            tracing::warn!(file = %self.path.display(), error = %e, "could not save schedule state");
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StateFile> {
        self.state.lock().expect("schedule state lock")
    }
}

fn write_atomically(path: &Path, state: &StateFile) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    serde_json::to_writer_pretty(&mut tmp, state)?;
    tmp.write_all(b"\n")?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
