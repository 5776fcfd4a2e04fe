//! One step's life: spawn its process group, report it started, read its output, end the
//! group at the timeout (or at agent shutdown), report how it ended.

use std::fmt;
use std::io;
use std::os::unix::process::ExitStatusExt as _;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use gameday_proto::v1::{AgentMessage, StepReport};
use nix::errno::Errno;
use nix::sys::signal::Signal;
use tokio::sync::{mpsc, watch};

use super::check::{CheckedStep, StepCommand, StepError};
use super::output_tail::{read_interleaved, OutputTail};
use super::report::{self, Ending};
use super::RunningSlot;
use crate::os::process_group::{GroupChild, GroupCommand};

/// How long a step's group has between SIGTERM and SIGKILL, at its timeout or at shutdown.
pub const KILL_GRACE: Duration = Duration::from_secs(2);

/// How long output is still read after the step's group is gone: a process that left the
/// group (`setsid`) may hold the pipes open for ever.
const OUTPUT_DRAIN: Duration = Duration::from_secs(1);

/// Why the agent stopped waiting for the command to exit on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cause {
    /// It exited (or died) by itself.
    Exited,
    /// Its timeout ran out.
    TimedOut,
    /// The agent is shutting down.
    Stopped,
}

/// Runs `step`, sending STARTED then ENDED (or STARTED with a failure) on `reports`. `stop`
/// turning true ends the step's group as its timeout would. `_slot` counts the step as
/// running until this returns.
pub(super) async fn run(
    step: CheckedStep,
    received: Instant,
    reports: mpsc::Sender<AgentMessage>,
    mut stop: watch::Receiver<bool>,
    _slot: RunningSlot,
) {
    let (program, args) = step.command.program_and_args();
    let env = [
        ("GAMEDAY_RUN_ID", step.run_id.as_str()),
        ("GAMEDAY_STEP_ID", step.step_id.as_str()),
    ];
    let spawned = GroupCommand {
        program,
        args: &args,
        env: &env,
    }
    .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            let error = StepError::Spawn {
                program: program.to_string(),
                errno: e
                    .raw_os_error()
                    .map_or(Errno::UnknownErrno, Errno::from_raw),
            };
            tracing::warn!(step = %step.step_id, run = %step.run_id, error = %error, "remediation step could not start");
            if !report::deliver(&reports, report::not_started(&step.step_id, &error)).await {
                tracing::warn!(step = %step.step_id, "the controller's stream is gone: the failure to start was not reported");
            }
            return;
        }
    };
    let started = Instant::now();
    let pid = child.pid();
    tracing::info!(step = %step.step_id, run = %step.run_id, pid, command = %Shown(&step.command), timeout = ?step.timeout, "remediation step started");
    let started_report = report::started(&step.step_id, pid, received, started);
    let mut tail = OutputTail::default();
    let (status, cause, ended) = follow(
        &mut child,
        &step,
        &mut stop,
        (&reports, started_report),
        &mut tail,
    )
    .await;
    let ending = ending(&status, cause);
    let outcome = Outcome(&ending, &status);
    match cause {
        Cause::Stopped => {
            tracing::warn!(step = %step.step_id, run = %step.run_id, pid, %outcome, "remediation step ended by the agent shutting down")
        }
        _ => {
            tracing::info!(step = %step.step_id, run = %step.run_id, pid, %outcome, elapsed = ?ended - started, "remediation step ended")
        }
    }
    let report = report::ended(
        &step.step_id,
        pid,
        &ending,
        (started, ended),
        tail.into_string(),
    );
    if !report::deliver(&reports, report).await {
        tracing::warn!(step = %step.step_id, run = %step.run_id, pid, %outcome, "the controller's stream is gone: the step's end was not reported");
    }
}

/// Announces the start and reads the output while waiting for the command to end (or ending
/// it); then kills its leftovers and reads what output remains, for a bounded time. Returns how
/// and when it ended.
async fn follow(
    child: &mut GroupChild,
    step: &CheckedStep,
    stop: &mut watch::Receiver<bool>,
    (reports, started_report): (&mpsc::Sender<AgentMessage>, StepReport),
    tail: &mut OutputTail,
) -> (io::Result<ExitStatus>, Cause, Instant) {
    let (stdout, stderr) = child.take_output();
    let mut reading = std::pin::pin!(read_interleaved(stdout, stderr, tail));
    let mut read_all = false;
    // Sent while the output is read: a step that writes more than a pipe holds must not stall
    // behind a busy stream.
    let mut announce = std::pin::pin!(report::deliver(reports, started_report));
    let mut announced = false;
    let not_announced = || {
        tracing::warn!(step = %step.step_id, "the controller's stream is gone: the start was not reported");
    };
    let (status, cause) = {
        let mut supervising = std::pin::pin!(supervise(child, step.timeout, stop));
        loop {
            tokio::select! {
                ended = &mut supervising => break ended,
                () = &mut reading, if !read_all => read_all = true,
                sent = &mut announce, if !announced => {
                    announced = true;
                    if !sent {
                        not_announced();
                    }
                }
            }
        }
    };
    let ended = Instant::now();
    kill_leftovers(child, &step.step_id);
    if !read_all
        && tokio::time::timeout(OUTPUT_DRAIN, &mut reading)
            .await
            .is_err()
    {
        tracing::warn!(step = %step.step_id, pid = child.pid(), "a process outside the step's group holds its output open; reporting the output read so far");
    }
    if !announced && !announce.await {
        not_announced();
    }
    (status, cause, ended)
}

/// A step is its process group: what it left running there ends with it, as a oneshot
/// service's leftovers do under systemd. Called once the leader has exited, when the group is
/// empty or holds only leftovers.
fn kill_leftovers(child: &GroupChild, step_id: &str) {
    match child.signal_group(Signal::SIGKILL) {
        Ok(true) => {
            tracing::warn!(step = %step_id, pid = child.pid(), "the step left processes in its group; killed them")
        }
        Ok(false) => {}
        Err(errno) => {
            tracing::error!(step = %step_id, pid = child.pid(), %errno, "cannot kill what the step left in its group")
        }
    }
}

/// Waits for the command to exit, or ends its group at the timeout or when `stop` turns true.
async fn supervise(
    child: &mut GroupChild,
    timeout: Duration,
    stop: &mut watch::Receiver<bool>,
) -> (io::Result<ExitStatus>, Cause) {
    let stopping = async {
        // A dropped sender (the runner is gone) means stop too.
        let _ = stop.wait_for(|stop| *stop).await;
    };
    let cause = tokio::select! {
        status = child.wait() => return (status, Cause::Exited),
        () = tokio::time::sleep(timeout) => Cause::TimedOut,
        () = stopping => Cause::Stopped,
    };
    (terminate(child).await, cause)
}

/// SIGTERM to the group, then SIGKILL if the command has not exited within [`KILL_GRACE`].
async fn terminate(child: &mut GroupChild) -> io::Result<ExitStatus> {
    signal(child, Signal::SIGTERM);
    match tokio::time::timeout(KILL_GRACE, child.wait()).await {
        Ok(status) => status,
        Err(_) => {
            signal(child, Signal::SIGKILL);
            child.wait().await
        }
    }
}

fn signal(child: &GroupChild, signal: Signal) {
    if let Err(errno) = child.signal_group(signal) {
        tracing::error!(pid = child.pid(), %errno, signal = signal.as_str(), "cannot signal a step's process group");
    }
}

fn ending(status: &io::Result<ExitStatus>, cause: Cause) -> Ending {
    let status = status.as_ref().ok();
    Ending {
        exit_code: status.and_then(ExitStatus::code),
        signal: status.and_then(ExitStatus::signal).map(signal_name),
        timed_out: cause == Cause::TimedOut,
    }
}

fn signal_name(number: i32) -> String {
    Signal::try_from(number).map_or_else(|_| format!("signal {number}"), |s| s.as_str().into())
}

/// A step's command as the host owner's log shows it.
struct Shown<'a>(&'a StepCommand);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            StepCommand::Argv(argv) => write!(f, "{argv:?}"),
            StepCommand::Shell(line) => write!(f, "sh -c {line:?}"),
        }
    }
}

/// How a step ended, for the log.
struct Outcome<'a>(&'a Ending, &'a io::Result<ExitStatus>);

impl fmt::Display for Outcome<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Outcome(ending, status) = self;
        if let Err(e) = status {
            return write!(f, "cannot tell how it ended: {e}");
        }
        match (&ending.exit_code, &ending.signal) {
            (Some(code), _) => write!(f, "exited with {code}")?,
            (None, Some(signal)) => write!(f, "killed by {signal}")?,
            (None, None) => f.write_str("ended")?,
        }
        if ending.timed_out {
            f.write_str(" at its timeout")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_are_named_as_the_proto_says() {
        assert_eq!(signal_name(9), "SIGKILL");
        assert_eq!(signal_name(15), "SIGTERM");
        assert_eq!(signal_name(1000), "signal 1000");
    }
}
