//! Commands the agent runs in a process group of their own (remediation steps), and the
//! signals that end such a group: the only place the agent ever signals a process group, and
//! only one it created.

use std::io;
use std::process::{ExitStatus, Stdio};

use nix::errno::Errno;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, ChildStderr, ChildStdout, Command};

/// A command to start as the leader of a new process group.
#[derive(Clone, Copy, Debug)]
pub struct GroupCommand<'a> {
    /// The program, run as given: an absolute path, never looked up in `PATH`.
    pub program: &'a str,
    /// Its arguments (without `argv[0]`, which is `program`).
    pub args: &'a [&'a str],
    /// Added to the environment it inherits from the agent.
    pub env: &'a [(&'a str, &'a str)],
}

/// A command running as the leader of its own process group, with its standard output and
/// error piped to the agent and its standard input closed.
///
/// Dropping it before [`GroupChild::wait`] has seen the leader exit kills the whole group
/// (SIGKILL): a step outlives neither its task nor the agent.
#[derive(Debug)]
pub struct GroupChild {
    child: Child,
    pgid: Pid,
}

impl GroupCommand<'_> {
    /// Starts the command in working directory `/`: `process_group(0)` makes it the leader of
    /// a group whose id is its pid, so its children (unless they leave the group) can be
    /// signalled with it.
    pub fn spawn(&self) -> io::Result<GroupChild> {
        let child = Command::new(self.program)
            .args(self.args)
            .envs(self.env.iter().copied())
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()?;
        let pid = child
            .id()
            .and_then(|pid| i32::try_from(pid).ok())
            .ok_or_else(|| io::Error::other("the started command has no pid"))?;
        Ok(GroupChild {
            child,
            pgid: Pid::from_raw(pid),
        })
    }
}

impl GroupChild {
    /// The leader's pid, which is also the group's id.
    pub fn pid(&self) -> u32 {
        self.pgid.as_raw().unsigned_abs()
    }

    /// The pipes of its standard output and error; `None` once taken.
    pub fn take_output(&mut self) -> (Option<ChildStdout>, Option<ChildStderr>) {
        (self.child.stdout.take(), self.child.stderr.take())
    }

    /// Waits for the leader to exit and reaps it. Cancel-safe, so it can race a timeout.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        self.child.wait().await
    }

    /// Sends `signal` to every process still in the group. `Ok(false)` when none is left
    /// (`ESRCH`).
    ///
    /// After the leader has been reaped the group id stays reserved as long as any member is
    /// left; only once the group is empty could the kernel hand the number to a new process,
    /// and that after cycling through every other pid. So a signal right after the leader's
    /// exit reaches the step's leftovers or nobody.
    pub fn signal_group(&self, signal: Signal) -> Result<bool, Errno> {
        match killpg(self.pgid, signal) {
            Ok(()) => Ok(true),
            Err(Errno::ESRCH) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

impl Drop for GroupChild {
    fn drop(&mut self) {
        // `id()` is `None` once `wait` has reaped the leader; until then the group id cannot
        // have been reused, so this reaches only the step's own processes.
        if self.child.id().is_some() {
            let _ = killpg(self.pgid, Signal::SIGKILL);
        }
    }
}
