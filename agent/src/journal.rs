//! The fault journal: every fault's plan is written here, durably, before the fault is applied,
//! and removed only after it is reverted. An agent that starts after a crash reverts whatever
//! its predecessor left here before it registers.
//!
//! One JSON file per fault, written to a temporary name, fsynced, renamed into place, and the
//! directory fsynced, so an entry is either whole or absent even if the power goes.

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::faults::Plan;

/// A journal that could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// A file operation failed.
    #[error("journal {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// An entry is not readable JSON.
    #[error("journal entry {path} is corrupt: {message}")]
    Corrupt {
        /// The entry.
        path: PathBuf,
        /// The decoder's complaint.
        message: String,
    },
    /// A fault id that cannot be a file name.
    #[error("fault id {0:?} is not usable (expected letters, digits, '.', '_' or '-')")]
    BadId(String),
}

/// One live fault, as journaled.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Entry {
    /// The fault's id.
    pub fault_id: String,
    /// The run it belongs to.
    pub run_id: String,
    /// Wall-clock deadline (ms since the Unix epoch): the one clock that survives a restart.
    pub deadline_unix_ms: u64,
    /// What was (or is about to be) done, and how to undo it.
    pub plan: Plan,
}

/// The journal directory.
#[derive(Clone, Debug)]
pub struct Journal {
    dir: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Milliseconds since the Unix epoch, `d` from now.
pub fn unix_ms_in(d: Duration) -> u64 {
    let now = SystemTime::now();
    // A duration past what the clock can hold saturates instead of panicking.
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600))
        .duration_since(UNIX_EPOCH)
        .map(|t| t.as_millis() as u64)
        .unwrap_or(0)
}

impl Journal {
    /// Opens (creating, mode 0700) the journal in `dir`.
    pub fn open(dir: &Path) -> Result<Journal, JournalError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io(dir))?;
        Ok(Journal {
            dir: dir.to_path_buf(),
        })
    }

    fn path_of(&self, fault_id: &str) -> Result<PathBuf, JournalError> {
        let ok = !fault_id.is_empty()
            && fault_id.len() <= 200
            && !fault_id.starts_with('.')
            && fault_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !ok {
            return Err(JournalError::BadId(fault_id.to_string()));
        }
        Ok(self.dir.join(format!("{fault_id}.json")))
    }

    /// Writes an entry durably; when this returns, the entry survives a crash.
    pub fn record(&self, entry: &Entry) -> Result<(), JournalError> {
        let path = self.path_of(&entry.fault_id)?;
        let tmp = path.with_extension("json.tmp");
        let json = serde_json::to_vec_pretty(entry).map_err(|e| JournalError::Corrupt {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io(&tmp))?;
        f.write_all(&json).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        fs::rename(&tmp, &path).map_err(io(&path))?;
        self.sync_dir()
    }

    /// Removes an entry (a missing one is fine: removal is idempotent).
    pub fn remove(&self, fault_id: &str) -> Result<(), JournalError> {
        let path = self.path_of(fault_id)?;
        match fs::remove_file(&path) {
            Ok(()) => self.sync_dir(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// Every entry, in name order. An unreadable entry is returned as an error in its place,
    /// never skipped: a fault nobody can revert must be shouted about.
    pub fn entries(&self) -> Result<Vec<Result<Entry, JournalError>>, JournalError> {
        let mut paths: Vec<PathBuf> = fs::read_dir(&self.dir)
            .map_err(io(&self.dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        Ok(paths
            .into_iter()
            .map(|p| {
                let bytes = fs::read(&p).map_err(io(&p))?;
                serde_json::from_slice(&bytes).map_err(|e| JournalError::Corrupt {
                    path: p.clone(),
                    message: e.to_string(),
                })
            })
            .collect())
    }

    fn sync_dir(&self) -> Result<(), JournalError> {
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::process_pause;

    fn entry(id: &str) -> Entry {
        Entry {
            fault_id: id.into(),
            run_id: "run-1".into(),
            deadline_unix_ms: unix_ms_in(Duration::from_secs(5)),
            plan: Plan::ProcessPause(process_pause::Plan { targets: vec![] }),
        }
    }

    #[test]
    fn records_survive_reopening_and_removal_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("journal")).unwrap();
        j.record(&entry("run-1-f0-web")).unwrap();
        j.record(&entry("run-1-f1-web")).unwrap();
        let again = Journal::open(&dir.path().join("journal")).unwrap();
        let ids: Vec<String> = again
            .entries()
            .unwrap()
            .into_iter()
            .map(|e| e.unwrap().fault_id)
            .collect();
        assert_eq!(ids, ["run-1-f0-web", "run-1-f1-web"]);
        again.remove("run-1-f0-web").unwrap();
        again.remove("run-1-f0-web").unwrap();
        assert_eq!(again.entries().unwrap().len(), 1);
        // No temporary files are left behind.
        assert_eq!(fs::read_dir(dir.path().join("journal")).unwrap().count(), 1);
    }

    #[test]
    fn hostile_ids_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        for id in ["../etc/passwd", "", ".hidden", "a/b", "a b"] {
            assert!(
                matches!(j.record(&entry(id)), Err(JournalError::BadId(_))),
                "{id}"
            );
        }
    }

    #[test]
    fn corrupt_entries_are_reported_not_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        fs::write(dir.path().join("broken.json"), b"{not json").unwrap();
        j.record(&entry("fine")).unwrap();
        let entries = j.entries().unwrap();
        assert!(matches!(entries[0], Err(JournalError::Corrupt { .. })));
        assert!(entries[1].is_ok());
    }
}
