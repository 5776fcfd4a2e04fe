//! This agent installation's identity, and its exclusive hold on the state directory.
//!
//! The controller tells a restarted agent from a second agent presenting the same certificate
//! by this id: it is kept in the state directory (which survives restarts), so the same
//! installation reconnecting replaces its old stream at once, while another installation with
//! a copy of the certificate is refused as long as the first one is live. Two processes on one
//! state directory would share an id (and a journal), so the directory is locked for as long
//! as the agent runs.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};

/// The file holding the id, under the state directory.
const ID_FILE: &str = "instance-id";
/// The file locked while the agent runs.
const LOCK_FILE: &str = "lock";

/// Why the agent cannot claim its state directory.
#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// Another agent process holds the state directory.
    #[error(
        "another gameday-agent is running with state_dir {} (it holds {}); two agents cannot share \
         a state directory",
        dir.display(),
        dir.join(LOCK_FILE).display()
    )]
    Locked {
        /// The state directory.
        dir: PathBuf,
    },
}

/// The agent's id, and the lock that keeps it this process's for as long as it lives.
#[derive(Debug)]
pub struct Instance {
    /// 32 hex digits, the same across restarts of this installation.
    pub id: String,
    /// Held open and locked; the lock goes with the process.
    _lock: File,
}

/// Locks `state_dir` for this process and reads its instance id, creating both on first use.
pub fn claim(state_dir: &Path) -> Result<Instance, InstanceError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| InstanceError::Io { path, source }
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state_dir)
        .map_err(io_err(state_dir))?;
    let lock_path = state_dir.join(LOCK_FILE);
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io_err(&lock_path))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            return Err(InstanceError::Locked {
                dir: state_dir.to_path_buf(),
            })
        }
        Err(fs::TryLockError::Error(e)) => return Err(io_err(&lock_path)(e)),
    }
    let id_path = state_dir.join(ID_FILE);
    let id = match fs::read_to_string(&id_path) {
        Ok(text) if valid(text.trim()) => text.trim().to_string(),
        // Missing or garbled: a new id (the controller then sees a new installation, which
        // only matters while an old stream of this agent still looks live).
        Ok(_) => create(&id_path)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => create(&id_path)?,
        Err(e) => return Err(io_err(&id_path)(e)),
    };
    Ok(Instance { id, _lock: lock })
}

fn valid(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Writes a fresh random id: to a temporary file, synced, then renamed into place.
fn create(path: &Path) -> Result<String, InstanceError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| InstanceError::Io { path, source }
    };
    let urandom = Path::new("/dev/urandom");
    let mut bytes = [0u8; 16];
    File::open(urandom)
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(io_err(urandom))?;
    let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp).map_err(io_err(&tmp))?;
    file.write_all(format!("{id}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io_err(&tmp))?;
    fs::rename(&tmp, path).map_err(io_err(path))?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_survives_a_restart_and_the_directory_is_held_by_one_process() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let first = claim(&state).unwrap();
        assert!(valid(&first.id), "{}", first.id);
        let second = claim(&state).unwrap_err();
        assert!(matches!(second, InstanceError::Locked { .. }), "{second}");
        assert!(
            second.to_string().contains("another gameday-agent"),
            "{second}"
        );
        let id = first.id.clone();
        drop(first);
        let again = claim(&state).unwrap();
        assert_eq!(again.id, id, "a restart keeps the id");
        let other = claim(&dir.path().join("elsewhere")).unwrap();
        assert_ne!(other.id, id, "another installation has its own");
    }

    #[test]
    fn a_garbled_id_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(ID_FILE), "not an id").unwrap();
        let instance = claim(dir.path()).unwrap();
        assert!(valid(&instance.id));
    }
}
