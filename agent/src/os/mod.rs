//! The one place that talks to the kernel: signals and the process table.
//!
//! Fault logic only sees the [`ProcessOs`] trait, so it can be unit-tested with a recording fake;
//! `clippy.toml` bans the signal-sending calls everywhere else.
// The OS boundary itself: the calls clippy.toml bans elsewhere are what this module is for.
#![allow(clippy::disallowed_methods)]

pub mod disk;
pub mod dns;
pub mod nft;
pub mod process_group;

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

/// One process as the agent sees it in the process table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Process id.
    pub pid: i32,
    /// The kernel's short name for the process (`comm`, at most 15 bytes, as `ps -o comm` shows).
    pub name: String,
    /// The command line, arguments joined by single spaces. Empty for kernel threads and zombies.
    pub cmdline: String,
    /// Start time in clock ticks since boot (`/proc/PID/stat` field 22); smaller is older.
    pub start_ticks: u64,
}

/// A kind of namespace a process fault can be confined to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Namespace {
    /// The network namespace (`/proc/PID/ns/net`).
    Net,
    /// The pid namespace (`/proc/PID/ns/pid`).
    Pid,
}

impl Namespace {
    /// Its file under `/proc/PID/ns/`, and how scenarios and policies name it (`netns`...).
    pub fn file(self) -> &'static str {
        match self {
            Namespace::Net => "net",
            Namespace::Pid => "pid",
        }
    }
}

/// A kernel operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum OsError {
    /// A file under `/proc` or a pid file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the kernel said.
        source: io::Error,
    },
    /// A file was read but its content is not what the kernel (or a pid file) should hold.
    #[error("unexpected content in {}: {reason}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
    /// The process does not exist (any more): `ESRCH`.
    #[error("no process with pid {pid}")]
    NoSuchProcess {
        /// The pid that was asked for.
        pid: i32,
    },
    /// A pid of zero or below, which `kill(2)` would read as a whole process group or as
    /// "every process": never passed on to the kernel.
    #[error("refusing to signal pid {pid}: only positive pids name a single process")]
    InvalidPid {
        /// The pid that was asked for.
        pid: i32,
    },
    /// The kernel refused to deliver a signal.
    #[error("cannot send {} to pid {pid}: {errno}", signal.as_str())]
    Signal {
        /// The target.
        pid: i32,
        /// The signal.
        signal: Signal,
        /// The kernel's answer, e.g. `EPERM`.
        errno: Errno,
    },
}

impl OsError {
    /// True when the error means the file or process simply is not there, as opposed to the
    /// kernel refusing or failing.
    pub fn is_not_found(&self) -> bool {
        match self {
            OsError::NoSuchProcess { .. } => true,
            OsError::Read { source, .. } => source.kind() == io::ErrorKind::NotFound,
            _ => false,
        }
    }
}

/// The kernel operations the process faults need.
pub trait ProcessOs: Send + Sync {
    /// Every user-space process, from a scan of the process table. Processes that exit during
    /// the scan or cannot be read, kernel threads and zombies (both have an empty command line)
    /// are left out.
    fn processes(&self) -> Result<Vec<ProcessInfo>, OsError>;

    /// One process, or `None` when no process has that pid. Kernel threads and zombies are
    /// returned too, with an empty `cmdline`.
    fn process(&self, pid: i32) -> Result<Option<ProcessInfo>, OsError>;

    /// The pid a pid file names: its whole content, whitespace trimmed, must be a positive
    /// integer. Errors name the path.
    fn read_pid_file(&self, path: &Path) -> Result<i32, OsError>;

    /// Sends `signal` to one process. `ESRCH` comes back as [`OsError::NoSuchProcess`].
    fn signal(&self, pid: i32, signal: Signal) -> Result<(), OsError>;

    /// The agent's own pid.
    fn own_pid(&self) -> i32;

    /// The agent's parent pid (the controller, under `gameday run --local`).
    fn parent_pid(&self) -> i32;

    /// The process's cgroup path as `/proc/PID/cgroup` shows it (the cgroup v2 `0::` line; on
    /// a v1-only host, the `name=systemd` hierarchy), `None` if it is gone or has none. A fake
    /// that does not know where processes are answers `None`, and no scope then holds them.
    fn cgroup(&self, pid: i32) -> Result<Option<String>, OsError> {
        let _ = pid;
        Ok(None)
    }

    /// The inode that identifies the process's namespace of kind `ns` (what
    /// `readlink /proc/PID/ns/net` shows in brackets), `None` if it is gone or cannot be read.
    fn namespace(&self, pid: i32, ns: Namespace) -> Result<Option<u64>, OsError> {
        let _ = (pid, ns);
        Ok(None)
    }

    /// The process's state letter (`R`, `S`, `T` for stopped...), `None` if it is gone.
    fn state(&self, pid: i32) -> Result<Option<char>, OsError> {
        let _ = pid;
        Ok(None)
    }
}

/// The real kernel, with a configurable `/proc` root so the scan can be tested on a fake tree.
#[derive(Clone, Debug)]
pub struct RealOs {
    proc_root: PathBuf,
}

impl Default for RealOs {
    fn default() -> Self {
        Self::with_proc_root(PathBuf::from("/proc"))
    }
}

/// Pid files are a few bytes; reading more would only let a wrong path (a log, `/dev/zero`)
/// make the agent read without bound.
const PID_FILE_MAX_BYTES: u64 = 64;

impl RealOs {
    /// Reads processes from `proc_root` instead of `/proc`.
    pub fn with_proc_root(proc_root: PathBuf) -> Self {
        Self { proc_root }
    }

    /// Reads one process; `Ok(None)` when it is gone (or exits while being read).
    fn read_process(&self, pid: i32) -> Result<Option<ProcessInfo>, OsError> {
        let dir = self.proc_root.join(pid.to_string());
        let stat_path = dir.join("stat");
        let stat = match read_vanishing(&stat_path)? {
            Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            None => return Ok(None),
        };
        let (name, start_ticks) = parse_stat(&stat).map_err(|reason| OsError::Malformed {
            path: stat_path.clone(),
            reason,
        })?;
        let cmdline = match read_vanishing(&dir.join("cmdline"))? {
            Some(bytes) => join_cmdline(&bytes),
            None => return Ok(None),
        };
        Ok(Some(ProcessInfo {
            pid,
            name,
            cmdline,
            start_ticks,
        }))
    }
}

impl ProcessOs for RealOs {
    fn processes(&self) -> Result<Vec<ProcessInfo>, OsError> {
        let read_err = |source| OsError::Read {
            path: self.proc_root.clone(),
            source,
        };
        let mut found = Vec::new();
        for entry in fs::read_dir(&self.proc_root).map_err(read_err)? {
            let entry = entry.map_err(read_err)?;
            // Everything that is not a positive number (`self`, `sys`, `meminfo`...) is no process.
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<i32>().ok())
            else {
                continue;
            };
            if pid <= 0 {
                continue;
            }
            match self.read_process(pid) {
                Ok(Some(p)) if !p.cmdline.is_empty() => found.push(p),
                Ok(_) => {}
                // One process the agent may not inspect (another user's, under a hardened
                // /proc) must not make every name or cmdline selection fail; it just cannot
                // be selected.
                Err(OsError::Read { source, .. })
                    if source.kind() == io::ErrorKind::PermissionDenied =>
                {
                    tracing::debug!(pid, "skipping a process /proc will not show us");
                }
                Err(e) => return Err(e),
            }
        }
        found.sort_by_key(|p| p.pid);
        Ok(found)
    }

    fn process(&self, pid: i32) -> Result<Option<ProcessInfo>, OsError> {
        if pid <= 0 {
            return Ok(None);
        }
        self.read_process(pid)
    }

    fn read_pid_file(&self, path: &Path) -> Result<i32, OsError> {
        let read_err = |source| OsError::Read {
            path: path.to_path_buf(),
            source,
        };
        let mut text = String::new();
        fs::File::open(path)
            .map_err(read_err)?
            .take(PID_FILE_MAX_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(read_err)?;
        let malformed = |reason: String| OsError::Malformed {
            path: path.to_path_buf(),
            reason,
        };
        if text.len() as u64 > PID_FILE_MAX_BYTES {
            return Err(malformed(format!(
                "a pid file holds one number, but this one is longer than {PID_FILE_MAX_BYTES} bytes"
            )));
        }
        let trimmed = text.trim();
        match trimmed.parse::<i32>() {
            Ok(pid) if pid > 0 => Ok(pid),
            _ => Err(malformed(format!(
                "expected a positive process id, found {trimmed:?}"
            ))),
        }
    }

    fn signal(&self, pid: i32, signal: Signal) -> Result<(), OsError> {
        // kill(2) reads 0 as "my process group" and -1 as "every process I may signal".
        if pid <= 0 {
            return Err(OsError::InvalidPid { pid });
        }
        // This is the one call site the project-wide ban in clippy.toml exists to funnel through.
        let result = nix::sys::signal::kill(Pid::from_raw(pid), signal);
        match result {
            Ok(()) => Ok(()),
            Err(Errno::ESRCH) => Err(OsError::NoSuchProcess { pid }),
            Err(errno) => Err(OsError::Signal { pid, signal, errno }),
        }
    }

    fn own_pid(&self) -> i32 {
        pid_from_u32(std::process::id())
    }

    fn parent_pid(&self) -> i32 {
        pid_from_u32(std::os::unix::process::parent_id())
    }

    fn cgroup(&self, pid: i32) -> Result<Option<String>, OsError> {
        if pid <= 0 {
            return Ok(None);
        }
        let path = self.proc_root.join(pid.to_string()).join("cgroup");
        let Some(bytes) = read_vanishing(&path)? else {
            return Ok(None);
        };
        Ok(parse_cgroup(&String::from_utf8_lossy(&bytes)))
    }

    fn namespace(&self, pid: i32, ns: Namespace) -> Result<Option<u64>, OsError> {
        if pid <= 0 {
            return Ok(None);
        }
        let path = self
            .proc_root
            .join(pid.to_string())
            .join("ns")
            .join(ns.file());
        let target = match fs::read_link(&path) {
            Ok(target) => target,
            Err(e)
                if e.kind() == io::ErrorKind::NotFound
                    || e.raw_os_error() == Some(Errno::ESRCH as i32) =>
            {
                return Ok(None)
            }
            // Another user's process under a hardened /proc: its namespace is unknown, so no
            // namespace scope will hold it (never the other way round).
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => return Ok(None),
            Err(source) => return Err(OsError::Read { path, source }),
        };
        let text = target.to_string_lossy();
        parse_ns_link(&text)
            .map(Some)
            .ok_or_else(|| OsError::Malformed {
                path,
                reason: format!("expected `{}:[INODE]`, found {text:?}", ns.file()),
            })
    }

    fn state(&self, pid: i32) -> Result<Option<char>, OsError> {
        let path = self.proc_root.join(pid.to_string()).join("stat");
        let Some(bytes) = read_vanishing(&path)? else {
            return Ok(None);
        };
        let stat = String::from_utf8_lossy(&bytes);
        // The state is the first field after the parenthesised name.
        Ok(stat
            .rfind(')')
            .and_then(|close| stat[close + 1..].split_whitespace().next())
            .and_then(|f| f.chars().next()))
    }
}

/// Pids fit in an i32 on Linux (`pid_max` is at most 2^22); anything else would be a kernel bug,
/// and 0 is a safe answer because nothing ever signals pid 0.
fn pid_from_u32(pid: u32) -> i32 {
    i32::try_from(pid).unwrap_or(0)
}

/// Reads a file under `/proc/PID`, with `None` when the process is gone. A process that exits
/// mid-read shows up as `ENOENT` or `ESRCH`, depending on how far the kernel got.
fn read_vanishing(path: &Path) -> Result<Option<Vec<u8>>, OsError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e)
            if e.kind() == io::ErrorKind::NotFound
                || e.raw_os_error() == Some(Errno::ESRCH as i32) =>
        {
            Ok(None)
        }
        Err(source) => Err(OsError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Parses `/proc/PID/stat` into (comm, starttime). The name sits in parentheses and may itself
/// hold spaces and parentheses, so the fields after it are found from the last `)`.
fn parse_stat(stat: &str) -> Result<(String, u64), String> {
    let open = stat.find('(').ok_or("no `(` before the process name")?;
    let close = stat.rfind(')').ok_or("no `)` after the process name")?;
    if close < open {
        return Err("`)` before `(`".into());
    }
    let name = stat[open + 1..close].to_string();
    // Fields after the name start at field 3 (state); starttime is field 22, so index 19 here.
    let start = stat[close + 1..]
        .split_whitespace()
        .nth(19)
        .ok_or("fewer than 22 fields")?;
    let start_ticks = start
        .parse::<u64>()
        .map_err(|_| format!("field 22 (starttime) is {start:?}, not a number"))?;
    Ok((name, start_ticks))
}

/// The cgroup path in `/proc/PID/cgroup`: the unified hierarchy's `0::PATH` line, or on a host
/// with only cgroup v1, the `name=systemd` hierarchy's path (where systemd puts units).
fn parse_cgroup(text: &str) -> Option<String> {
    let mut v1_systemd = None;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if id == "0" && controllers.is_empty() {
            return Some(path.to_string());
        }
        if controllers.split(',').any(|c| c == "name=systemd") {
            v1_systemd = Some(path.to_string());
        }
    }
    v1_systemd
}

/// The inode in a namespace link's text, `net:[4026531992]`.
fn parse_ns_link(text: &str) -> Option<u64> {
    let open = text.find(":[")?;
    text[open + 2..].strip_suffix(']')?.parse().ok()
}

/// Turns the NUL-separated `/proc/PID/cmdline` into one line. Processes that rewrite their
/// argv (nginx, postgres) leave a single string with spaces and trailing NULs; both forms end
/// up as the text `ps -o args` would show.
fn join_cmdline(bytes: &[u8]) -> String {
    let end = bytes.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    String::from_utf8_lossy(&bytes[..end]).replace('\0', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_proc(entries: &[(i32, &str, &[u8])]) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        for (pid, stat, cmdline) in entries {
            let dir = root.path().join(pid.to_string());
            fs::create_dir(&dir).unwrap();
            fs::write(dir.join("stat"), stat).unwrap();
            fs::write(dir.join("cmdline"), cmdline).unwrap();
        }
        // Non-process entries that a real /proc has.
        fs::create_dir(root.path().join("sys")).unwrap();
        fs::write(root.path().join("meminfo"), "MemTotal: 1 kB\n").unwrap();
        root
    }

    fn stat_line(pid: i32, comm: &str, start: u64) -> String {
        format!("{pid} ({comm}) S 1 {pid} {pid} 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 {start} 1000 10 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0")
    }

    #[test]
    fn parses_stat_with_awkward_names() {
        let (name, start) = parse_stat(&stat_line(42, "we(ird) name", 12345)).unwrap();
        assert_eq!(name, "we(ird) name");
        assert_eq!(start, 12345);
        assert!(parse_stat("42 (x) S 1").is_err());
    }

    #[test]
    fn joins_cmdlines_in_both_forms() {
        assert_eq!(join_cmdline(b"sleep\x00300\x00"), "sleep 300");
        assert_eq!(
            join_cmdline(b"nginx: master process /usr/sbin/nginx\x00\x00\x00"),
            "nginx: master process /usr/sbin/nginx"
        );
        assert_eq!(join_cmdline(b""), "");
    }

    #[test]
    fn scan_skips_kernel_threads_and_non_pid_entries() {
        let init = stat_line(1, "init", 1);
        let kthread = stat_line(2, "kthreadd", 1);
        let demo = stat_line(300, "demo", 900);
        let root = fake_proc(&[
            (1, &init, b"/sbin/init\x00"),
            (2, &kthread, b""),
            (300, &demo, b"demo\x00--port\x008080\x00"),
        ]);
        let os = RealOs::with_proc_root(root.path().to_path_buf());
        let found = os.processes().unwrap();
        assert_eq!(
            found.iter().map(|p| p.pid).collect::<Vec<_>>(),
            vec![1, 300]
        );
        assert_eq!(found[1].cmdline, "demo --port 8080");
        assert_eq!(found[1].start_ticks, 900);
        assert_eq!(os.process(2).unwrap().unwrap().cmdline, "");
        assert_eq!(os.process(999).unwrap(), None);
    }

    #[test]
    fn reads_cgroups_and_namespaces_from_the_proc_tree() {
        let stat = stat_line(300, "redis-server", 900);
        let root = fake_proc(&[(300, &stat, b"redis-server *:6379\x00")]);
        let dir = root.path().join("300");
        fs::write(
            dir.join("cgroup"),
            "0::/system.slice/redis-server.service\n",
        )
        .unwrap();
        fs::create_dir(dir.join("ns")).unwrap();
        std::os::unix::fs::symlink("net:[4026532001]", dir.join("ns/net")).unwrap();
        std::os::unix::fs::symlink("pid:[4026531836]", dir.join("ns/pid")).unwrap();
        let os = RealOs::with_proc_root(root.path().to_path_buf());
        assert_eq!(
            os.cgroup(300).unwrap().as_deref(),
            Some("/system.slice/redis-server.service")
        );
        assert_eq!(os.namespace(300, Namespace::Net).unwrap(), Some(4026532001));
        assert_eq!(os.namespace(300, Namespace::Pid).unwrap(), Some(4026531836));
        assert_eq!(os.cgroup(301).unwrap(), None, "gone");
        assert_eq!(os.namespace(301, Namespace::Net).unwrap(), None, "gone");
        std::os::unix::fs::symlink("garbage", dir.join("ns/mnt")).unwrap();
        fs::remove_file(dir.join("ns/net")).unwrap();
        std::os::unix::fs::symlink("garbage", dir.join("ns/net")).unwrap();
        assert!(matches!(
            os.namespace(300, Namespace::Net),
            Err(OsError::Malformed { .. })
        ));
    }

    #[test]
    fn cgroup_lines_prefer_the_unified_hierarchy() {
        assert_eq!(
            parse_cgroup("12:cpu,cpuacct:/x\n1:name=systemd:/system.slice/a.service\n0::/b\n")
                .as_deref(),
            Some("/b")
        );
        assert_eq!(
            parse_cgroup("12:cpu,cpuacct:/x\n1:name=systemd:/system.slice/a.service\n").as_deref(),
            Some("/system.slice/a.service")
        );
        assert_eq!(parse_cgroup("12:cpu:/x\n"), None);
        assert_eq!(parse_ns_link("net:[42]"), Some(42));
        assert_eq!(parse_ns_link("net:42"), None);
    }

    #[test]
    fn sees_its_own_cgroup_and_namespaces_in_the_real_proc() {
        let os = RealOs::default();
        let me = os.own_pid();
        assert!(os.cgroup(me).unwrap().is_some_and(|c| c.starts_with('/')));
        assert!(os.namespace(me, Namespace::Net).unwrap().is_some());
        assert!(os.namespace(me, Namespace::Pid).unwrap().is_some());
    }

    #[test]
    fn pid_files_must_hold_one_positive_number() {
        let dir = tempfile::tempdir().unwrap();
        let os = RealOs::default();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            fs::write(&path, text).unwrap();
            path
        };
        assert_eq!(os.read_pid_file(&write("ok", " 1234\n")).unwrap(), 1234);
        for bad in ["", "0", "-5", "12 13", "abc", "99999999999"] {
            let path = write("bad", bad);
            let err = os.read_pid_file(&path).unwrap_err().to_string();
            assert!(err.contains(&path.display().to_string()), "{err}");
        }
        let missing = dir.path().join("missing.pid");
        let err = os.read_pid_file(&missing).unwrap_err();
        assert!(err.is_not_found());
        assert!(err.to_string().contains("missing.pid"), "{err}");
    }

    #[test]
    fn never_passes_group_pids_to_the_kernel() {
        let os = RealOs::default();
        for pid in [0, -1, -42] {
            assert!(matches!(
                os.signal(pid, Signal::SIGKILL),
                Err(OsError::InvalidPid { .. })
            ));
        }
    }

    #[test]
    fn sees_itself_in_the_real_proc() {
        let os = RealOs::default();
        let me = os.process(os.own_pid()).unwrap().unwrap();
        assert!(!me.cmdline.is_empty());
        assert!(os.parent_pid() > 0);
    }
}
