//! A fake filesystem for `disk_fill`'s unit tests: one filesystem of a fixed size that can
//! lack fallocate, run out of space part-way, fail writes, or keep a deleted file's space (as
//! when a process holds it open). It records the calls that change something.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use nix::errno::Errno;

use crate::os::disk::{DiskError, DiskOs, FillFile, FsStat};

pub(super) const MIB: u64 = 1 << 20;

/// The fake filesystem's state: `total` bytes holding every directory and file.
#[derive(Default)]
pub(super) struct State {
    pub(super) total: u64,
    /// Bytes the service's own files use.
    pub(super) used_by_others: u64,
    pub(super) dirs: BTreeSet<PathBuf>,
    /// Symlinks: path → absolute target.
    pub(super) links: BTreeMap<PathBuf, PathBuf>,
    /// Regular files and their sizes.
    pub(super) files: BTreeMap<PathBuf, u64>,
    pub(super) fallocate_unsupported: bool,
    /// fallocate fails with ENOSPC whatever the size (metadata overhead, a racing writer).
    pub(super) fallocate_no_space: bool,
    /// Writes fail with ENOSPC once this many more bytes have been written.
    pub(super) write_budget: Option<u64>,
    /// Writes fail with EIO.
    pub(super) write_eio: bool,
    /// Deleting a file does not free its space (someone holds it open).
    pub(super) held_open: bool,
    /// Space of deleted files still held open.
    pub(super) ghost: u64,
    /// The holder closes the deleted files after this many more statvfs calls.
    pub(super) ghost_released_after: Option<u32>,
    /// Remove reports success but the file stays (to exercise the residue check).
    pub(super) remove_is_noop: bool,
    /// System calls, in order, for assertions.
    pub(super) calls: Vec<String>,
}

impl State {
    fn available(&self) -> u64 {
        let files: u64 = self.files.values().sum();
        self.total
            .saturating_sub(self.used_by_others + files + self.ghost)
    }

    /// Resolves `..` and symlinks the way realpath does.
    fn resolve(&self, path: &Path) -> Option<PathBuf> {
        let mut out = PathBuf::from("/");
        for c in path.components() {
            match c {
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
                Component::ParentDir => {
                    out.pop();
                }
                Component::Normal(n) => {
                    out.push(n);
                    if let Some(target) = self.links.get(&out) {
                        out = target.clone();
                    }
                }
            }
        }
        (self.dirs.contains(&out) || self.files.contains_key(&out)).then_some(out)
    }
}

#[derive(Clone, Default)]
pub(super) struct FakeDisk(Arc<Mutex<State>>);

fn err(op: &'static str, path: &Path, errno: Errno) -> DiskError {
    DiskError::errno(op, path, errno)
}

impl FakeDisk {
    /// A 100 MiB filesystem with `/srv/data` (30 MiB of the service's data) and `/etc`.
    pub(super) fn new() -> FakeDisk {
        let disk = FakeDisk::default();
        {
            let mut s = disk.state();
            s.total = 100 * MIB;
            s.used_by_others = 30 * MIB;
            for d in [
                "/",
                "/srv",
                "/srv/data",
                "/srv/data2",
                "/etc",
                "/mnt",
                "/mnt/disk",
            ] {
                s.dirs.insert(PathBuf::from(d));
            }
            s.files.insert(PathBuf::from("/srv/data/app.db"), 0);
        }
        disk
    }

    pub(super) fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap()
    }

    pub(super) fn calls(&self) -> Vec<String> {
        self.state().calls.clone()
    }
}

impl DiskOs for FakeDisk {
    fn canonicalize(&self, path: &Path) -> Result<PathBuf, DiskError> {
        self.state()
            .resolve(path)
            .ok_or_else(|| err("resolve", path, Errno::ENOENT))
    }

    fn is_dir(&self, path: &Path) -> Result<bool, DiskError> {
        let s = self.state();
        match s.resolve(path) {
            Some(p) => Ok(s.dirs.contains(&p)),
            None => Err(err("stat", path, Errno::ENOENT)),
        }
    }

    fn statvfs(&self, path: &Path) -> Result<FsStat, DiskError> {
        let mut s = self.state();
        if s.resolve(path).is_none() {
            return Err(err("statvfs", path, Errno::ENOENT));
        }
        if let Some(n) = s.ghost_released_after.as_mut() {
            if *n == 0 {
                s.ghost = 0;
            } else {
                *n -= 1;
            }
        }
        let available = s.available();
        Ok(FsStat {
            block_size: 4096,
            total: s.total,
            free: available,
            available,
        })
    }

    fn list_dir(&self, dir: &Path) -> Result<Vec<String>, DiskError> {
        let s = self.state();
        if !s.dirs.contains(dir) {
            return Err(err("list", dir, Errno::ENOENT));
        }
        let children = s.files.keys().chain(s.dirs.iter());
        Ok(children
            .filter(|p| p.parent() == Some(dir))
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect())
    }

    fn create_exclusive(&self, path: &Path) -> Result<Box<dyn FillFile>, DiskError> {
        let mut s = self.state();
        s.calls.push(format!("create {}", path.display()));
        if s.files.contains_key(path) || s.dirs.contains(path) || s.links.contains_key(path) {
            return Err(err("create", path, Errno::EEXIST));
        }
        if !path.parent().is_some_and(|p| s.dirs.contains(p)) {
            return Err(err("create", path, Errno::ENOENT));
        }
        s.files.insert(path.to_path_buf(), 0);
        Ok(Box::new(FakeFile {
            disk: self.clone(),
            path: path.to_path_buf(),
        }))
    }

    fn file_len(&self, path: &Path) -> Result<Option<u64>, DiskError> {
        Ok(self.state().files.get(path).copied())
    }

    fn remove(&self, path: &Path) -> Result<bool, DiskError> {
        let mut s = self.state();
        s.calls.push(format!("remove {}", path.display()));
        if s.remove_is_noop {
            return Ok(s.files.contains_key(path));
        }
        match s.files.remove(path) {
            Some(len) => {
                if s.held_open {
                    s.ghost += len;
                }
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn sync_dir(&self, dir: &Path) -> Result<(), DiskError> {
        self.state().calls.push(format!("fsync {}", dir.display()));
        Ok(())
    }
}

struct FakeFile {
    disk: FakeDisk,
    path: PathBuf,
}

impl FillFile for FakeFile {
    fn allocate(&mut self, len: u64) -> Result<(), DiskError> {
        let mut s = self.disk.state();
        s.calls.push(format!("fallocate {len}"));
        if s.fallocate_unsupported {
            return Err(err("fallocate", &self.path, Errno::EOPNOTSUPP));
        }
        let current = s.files[&self.path];
        if s.fallocate_no_space || len > current + s.available() {
            return Err(err("fallocate", &self.path, Errno::ENOSPC));
        }
        s.files.insert(self.path.clone(), len.max(current));
        Ok(())
    }

    fn write_at(&mut self, buf: &[u8], offset: u64) -> Result<usize, DiskError> {
        let mut s = self.disk.state();
        s.calls.push(format!("write {} at {offset}", buf.len()));
        if s.write_eio {
            return Err(err("write", &self.path, Errno::EIO));
        }
        let room = s.available().min(s.write_budget.unwrap_or(u64::MAX));
        let n = (buf.len() as u64).min(room);
        if n == 0 {
            return Err(err("write", &self.path, Errno::ENOSPC));
        }
        if let Some(b) = s.write_budget.as_mut() {
            *b -= n;
        }
        let current = s.files[&self.path];
        s.files.insert(self.path.clone(), current.max(offset + n));
        Ok(n as usize)
    }

    fn size(&mut self) -> Result<u64, DiskError> {
        Ok(self.disk.state().files[&self.path])
    }

    fn sync(&mut self) -> Result<(), DiskError> {
        self.disk.state().calls.push("fsync".into());
        Ok(())
    }
}
