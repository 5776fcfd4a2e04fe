//! The filesystem boundary of `disk_fill`: statvfs, path resolution, directory listings and the
//! fill file itself (exclusive create, fallocate, writes, fsync, unlink).
//!
//! The fault logic only sees [`DiskOs`] and [`FillFile`], so it is unit-tested against a fake
//! that can run out of space or lack fallocate on demand; [`RealDisk`] is the kernel.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{fallocate, FallocateFlags};
use nix::sys::statvfs::statvfs;

/// A filesystem's capacity as `statvfs(3)` reports it, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FsStat {
    /// The allocation unit (`f_frsize`): a file's allocation grows in steps of this size.
    pub block_size: u64,
    /// Every block of the filesystem (`f_blocks`).
    pub total: u64,
    /// Free blocks, including those reserved for root (`f_bfree`).
    pub free: u64,
    /// Free blocks an unprivileged process may use (`f_bavail`): what `df` calls "Available"
    /// and what a service running as its own user can still write.
    pub available: u64,
}

impl FsStat {
    /// Bytes in use (`df`'s "Used").
    pub fn used(&self) -> u64 {
        self.total.saturating_sub(self.free)
    }

    /// The capacity `df` computes its percentage against: used plus available, so the blocks
    /// reserved for root do not count (which is why `df` shows 100% when a user can write no
    /// more, even on ext4 with its 5% reserve).
    pub fn capacity(&self) -> u64 {
        self.used().saturating_add(self.available)
    }

    /// `df`'s "Use%": used over capacity, rounded up.
    pub fn used_percent(&self) -> u64 {
        let capacity = u128::from(self.capacity());
        if capacity == 0 {
            return 0;
        }
        (u128::from(self.used()) * 100).div_ceil(capacity) as u64
    }
}

/// A filesystem operation that failed, with the path it was about.
#[derive(Debug, thiserror::Error)]
#[error("{op} {}: {source}", path.display())]
pub struct DiskError {
    /// What was being done (`statvfs`, `create`, `fallocate`...).
    pub op: &'static str,
    /// The path it was done to.
    pub path: PathBuf,
    /// The kernel's answer.
    pub source: io::Error,
}

impl DiskError {
    /// An error for `op` on `path`.
    pub fn new(op: &'static str, path: &Path, source: io::Error) -> Self {
        Self {
            op,
            path: path.to_path_buf(),
            source,
        }
    }

    /// An error carrying a bare errno, as the kernel would return it (also for fakes).
    pub fn errno(op: &'static str, path: &Path, errno: Errno) -> Self {
        Self::new(op, path, io::Error::from_raw_os_error(errno as i32))
    }

    /// `ENOSPC` (or `EDQUOT`): the filesystem, or the user's quota, is full.
    pub fn is_no_space(&self) -> bool {
        matches!(
            self.source.raw_os_error(),
            Some(e) if e == Errno::ENOSPC as i32 || e == Errno::EDQUOT as i32
        )
    }

    /// `EOPNOTSUPP`: the filesystem cannot preallocate (vfat before 4.x, ext2/ext3, NFSv3...).
    pub fn is_unsupported(&self) -> bool {
        self.source.raw_os_error() == Some(Errno::EOPNOTSUPP as i32)
    }

    /// `ENOENT`: the path is not there.
    pub fn is_not_found(&self) -> bool {
        self.source.kind() == io::ErrorKind::NotFound
    }

    /// `EEXIST`: an exclusive create found something already there.
    pub fn is_exists(&self) -> bool {
        self.source.kind() == io::ErrorKind::AlreadyExists
    }
}

/// A fill file the agent has just created and is filling.
pub trait FillFile: Send {
    /// Preallocates the first `len` bytes (fallocate, mode 0: the file's size grows to `len`).
    /// [`DiskError::is_unsupported`] when the filesystem cannot, [`DiskError::is_no_space`]
    /// when it has not room enough.
    fn allocate(&mut self, len: u64) -> Result<(), DiskError>;

    /// Writes `buf` at `offset`; returns how much was written (possibly less than asked).
    /// [`DiskError::is_no_space`] once nothing more fits.
    fn write_at(&mut self, buf: &[u8], offset: u64) -> Result<usize, DiskError>;

    /// The file's current size.
    fn size(&mut self) -> Result<u64, DiskError>;

    /// Flushes data and metadata (fsync).
    fn sync(&mut self) -> Result<(), DiskError>;
}

/// The filesystem operations `disk_fill` needs.
pub trait DiskOs: Send + Sync {
    /// The absolute path with every symlink and `.`/`..` resolved (`realpath(3)`); fails when
    /// the path does not exist.
    fn canonicalize(&self, path: &Path) -> Result<PathBuf, DiskError>;

    /// True when `path` is a directory (following symlinks); false when it is something else.
    fn is_dir(&self, path: &Path) -> Result<bool, DiskError>;

    /// The capacity of the filesystem holding `path`.
    fn statvfs(&self, path: &Path) -> Result<FsStat, DiskError>;

    /// The names in directory `dir` (not recursive; lossy UTF-8).
    fn list_dir(&self, dir: &Path) -> Result<Vec<String>, DiskError>;

    /// Creates `path` exclusively (`O_CREAT|O_EXCL`, so never an existing file or a symlink),
    /// mode 0600, for writing. [`DiskError::is_exists`] when something is already there.
    fn create_exclusive(&self, path: &Path) -> Result<Box<dyn FillFile>, DiskError>;

    /// The size of the file at `path` (not following a final symlink); `None` when absent.
    fn file_len(&self, path: &Path) -> Result<Option<u64>, DiskError>;

    /// Unlinks `path`; `Ok(false)` when there was nothing to remove.
    fn remove(&self, path: &Path) -> Result<bool, DiskError>;

    /// fsyncs directory `dir`, making a create or unlink in it durable.
    fn sync_dir(&self, dir: &Path) -> Result<(), DiskError>;
}

/// The real kernel.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealDisk;

impl DiskOs for RealDisk {
    fn canonicalize(&self, path: &Path) -> Result<PathBuf, DiskError> {
        fs::canonicalize(path).map_err(|e| DiskError::new("resolve", path, e))
    }

    fn is_dir(&self, path: &Path) -> Result<bool, DiskError> {
        fs::metadata(path)
            .map(|m| m.is_dir())
            .map_err(|e| DiskError::new("stat", path, e))
    }

    fn statvfs(&self, path: &Path) -> Result<FsStat, DiskError> {
        let s = statvfs(path).map_err(|e| DiskError::errno("statvfs", path, e))?;
        // c_ulong is u32 on 32-bit targets.
        #[allow(clippy::useless_conversion)]
        let unit = u64::from(s.fragment_size());
        let bytes = |blocks: u64| blocks.saturating_mul(unit);
        Ok(FsStat {
            block_size: unit,
            total: bytes(s.blocks()),
            free: bytes(s.blocks_free()),
            available: bytes(s.blocks_available()),
        })
    }

    fn list_dir(&self, dir: &Path) -> Result<Vec<String>, DiskError> {
        let err = |e| DiskError::new("list", dir, e);
        let mut names = Vec::new();
        for entry in fs::read_dir(dir).map_err(err)? {
            names.push(
                entry
                    .map_err(err)?
                    .file_name()
                    .to_string_lossy()
                    .into_owned(),
            );
        }
        names.sort();
        Ok(names)
    }

    fn create_exclusive(&self, path: &Path) -> Result<Box<dyn FillFile>, DiskError> {
        // create_new is O_CREAT|O_EXCL: it fails on anything already there, a dangling
        // symlink included, so the agent can never be tricked into filling someone's file.
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| DiskError::new("create", path, e))?;
        Ok(Box::new(RealFillFile {
            file,
            path: path.to_path_buf(),
        }))
    }

    fn file_len(&self, path: &Path) -> Result<Option<u64>, DiskError> {
        match fs::symlink_metadata(path) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(DiskError::new("stat", path, e)),
        }
    }

    fn remove(&self, path: &Path) -> Result<bool, DiskError> {
        match fs::remove_file(path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(DiskError::new("remove", path, e)),
        }
    }

    fn sync_dir(&self, dir: &Path) -> Result<(), DiskError> {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| DiskError::new("fsync", dir, e))
    }
}

/// An open fill file on the real kernel.
struct RealFillFile {
    file: File,
    path: PathBuf,
}

impl FillFile for RealFillFile {
    fn allocate(&mut self, len: u64) -> Result<(), DiskError> {
        let len = i64::try_from(len).map_err(|_| {
            DiskError::new(
                "fallocate",
                &self.path,
                io::Error::new(io::ErrorKind::InvalidInput, "length beyond off_t"),
            )
        })?;
        // Mode 0 allocates real blocks (unwritten extents on ext4/xfs) and grows the file:
        // the space is gone from statvfs at once, without writing a byte.
        fallocate(&self.file, FallocateFlags::empty(), 0, len)
            .map_err(|e| DiskError::errno("fallocate", &self.path, e))
    }

    fn write_at(&mut self, buf: &[u8], offset: u64) -> Result<usize, DiskError> {
        loop {
            match self.file.write_at(buf, offset) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other.map_err(|e| DiskError::new("write", &self.path, e)),
            }
        }
    }

    fn size(&mut self) -> Result<u64, DiskError> {
        self.file
            .metadata()
            .map(|m| m.len())
            .map_err(|e| DiskError::new("stat", &self.path, e))
    }

    fn sync(&mut self) -> Result<(), DiskError> {
        self.file
            .sync_all()
            .map_err(|e| DiskError::new("fsync", &self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_is_df_style() {
        let s = FsStat {
            block_size: 4096,
            total: 1000,
            free: 150,
            available: 100,
        };
        assert_eq!(s.used(), 850);
        assert_eq!(s.capacity(), 950);
        // 850/950 = 89.47…%, which df shows as 90%.
        assert_eq!(s.used_percent(), 90);
        let empty = FsStat {
            block_size: 0,
            total: 0,
            free: 0,
            available: 0,
        };
        assert_eq!(empty.used_percent(), 0);
    }

    #[test]
    fn real_fill_file_in_a_temp_dir() {
        let dir = tempfile::tempdir().unwrap();
        let os = RealDisk;
        let path = dir.path().join(".gameday-fill-t");
        let mut f = os.create_exclusive(&path).unwrap();
        assert!(os.create_exclusive(&path).err().unwrap().is_exists());
        assert_eq!(f.write_at(&[0u8; 4096], 0).unwrap(), 4096);
        f.sync().unwrap();
        assert_eq!(f.size().unwrap(), 4096);
        let mode = fs::metadata(&path).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        assert_eq!(os.file_len(&path).unwrap(), Some(4096));
        assert!(os
            .list_dir(dir.path())
            .unwrap()
            .contains(&".gameday-fill-t".into()));
        assert!(os.statvfs(dir.path()).unwrap().total > 0);
        assert!(os.remove(&path).unwrap());
        assert!(!os.remove(&path).unwrap());
        assert_eq!(os.file_len(&path).unwrap(), None);
        os.sync_dir(dir.path()).unwrap();
    }

    #[test]
    fn exclusive_create_refuses_a_planted_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        let link = dir.path().join(".gameday-fill-x");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let err = RealDisk.create_exclusive(&link).err().unwrap();
        assert!(err.is_exists(), "{err}");
        assert!(!victim.exists());
    }

    #[test]
    fn errno_classification() {
        let p = Path::new("/x");
        assert!(DiskError::errno("write", p, Errno::ENOSPC).is_no_space());
        assert!(DiskError::errno("fallocate", p, Errno::EOPNOTSUPP).is_unsupported());
        assert!(DiskError::errno("stat", p, Errno::ENOENT).is_not_found());
        assert!(DiskError::errno("create", p, Errno::EEXIST).is_exists());
        assert!(DiskError::errno("write", p, Errno::ENOSPC)
            .to_string()
            .starts_with("write /x: "));
    }
}
