//! `process_kill` against the real kernel: the test starts `sleep` children with a command line
//! no other process on the machine can have, kills them through the agent, and checks how they
//! died. Only the test's own children are ever signalled.
// Integration tests start the real binaries, services and helper processes.
#![allow(clippy::disallowed_methods)]

use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use gameday_agent::faults;
use gameday_agent::os::{ProcessOs, RealOs};
use gameday_agent::policy::Policy;
use gameday_proto::fault::{Count, RawProcessKill};
use gameday_proto::{Fault, ProcessKill};

/// `sleep` children that are killed and reaped however the test ends.
struct Sleepers {
    children: Vec<Child>,
    /// The fractional-seconds argument that makes these children's command line unique.
    arg: String,
}

const SIGKILL: i32 = nix::sys::signal::Signal::SIGKILL as i32;
const SIGTERM: i32 = nix::sys::signal::Signal::SIGTERM as i32;

static NEXT: AtomicU32 = AtomicU32::new(0);

impl Sleepers {
    /// Starts `n` children running `sleep 300.<test pid><counter>`: a duration GNU sleep accepts
    /// and a command line only this test process's children have.
    fn start(n: usize) -> Sleepers {
        let arg = format!(
            "300.{}{:04}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut sleepers = Sleepers {
            children: Vec::new(),
            arg,
        };
        for _ in 0..n {
            let child = Command::new("sleep")
                .arg(&sleepers.arg)
                .spawn()
                .expect("spawn sleep");
            sleepers.children.push(child);
        }
        sleepers
    }

    /// An anchored regex over the command line that matches these children and nothing else.
    fn cmdline_regex(&self) -> String {
        format!("^sleep {}$", regex::escape(&self.arg))
    }

    fn pids(&self) -> Vec<i32> {
        let mut pids: Vec<i32> = self.children.iter().map(|c| c.id() as i32).collect();
        pids.sort_unstable();
        pids
    }

    /// Waits, by polling with a deadline, for child `i` to exit.
    fn wait_exit(&mut self, i: usize) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.children[i].try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "child {i} still running after 10s"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Sleepers {
    fn drop(&mut self) {
        // Child::kill does nothing once the child is reaped, so this can never hit a reused pid.
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn kill_fault(
    signal: &str,
    cmdline: Option<String>,
    pid_file: Option<std::path::PathBuf>,
) -> Fault {
    let raw = RawProcessKill {
        signal: signal.to_string(),
        name: None,
        cmdline,
        pid_file,
        unit: None,
        cgroup: None,
        container: None,
        netns: None,
        pidns: None,
        count: Count::All,
    };
    Fault::ProcessKill(ProcessKill::try_from(raw).expect("a valid kill"))
}

/// The agent's path: prepare, then apply, on the real host.
fn apply_for_real(fault: &Fault, _os: &RealOs) -> Result<faults::Applied, faults::FaultError> {
    let host = faults::Host {
        processes: std::sync::Arc::new(RealOs::default()),
        network: Default::default(),
        disk: Default::default(),
        dns: Default::default(),
        controller: Vec::new(),
    };
    let policy = Policy::permissive();
    let plan = faults::prepare(fault, "test-fault", &policy, &host)?;
    faults::apply(&plan, &policy, &host)
}

/// Before sending anything, proves the regex selects exactly the test's children.
fn assert_selects_only(sleepers: &Sleepers, os: &RealOs) {
    let re = regex::Regex::new(&sleepers.cmdline_regex()).unwrap();
    let mut matched: Vec<i32> = os
        .processes()
        .unwrap()
        .into_iter()
        .filter(|p| re.is_match(&p.cmdline))
        .map(|p| p.pid)
        .collect();
    matched.sort_unstable();
    assert_eq!(matched, sleepers.pids());
}

#[test]
fn sigkill_by_cmdline_kills_every_match() {
    let mut sleepers = Sleepers::start(2);
    let os = RealOs::default();
    assert_selects_only(&sleepers, &os);

    let fault = kill_fault("SIGKILL", Some(sleepers.cmdline_regex()), None);
    let applied = apply_for_real(&fault, &os).expect("apply");

    let mut pids = applied.evidence.pids.clone();
    pids.sort_unstable();
    assert_eq!(pids, sleepers.pids());
    assert!(
        applied
            .evidence
            .summary
            .starts_with("sent SIGKILL to 2 processes: "),
        "{}",
        applied.evidence.summary
    );
    for i in 0..2 {
        assert_eq!(sleepers.wait_exit(i).signal(), Some(SIGKILL));
    }
}

#[test]
fn sigkill_by_pid_file() {
    let mut sleepers = Sleepers::start(1);
    let os = RealOs::default();
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("sleep.pid");
    std::fs::write(&pid_file, format!("{}\n", sleepers.pids()[0])).unwrap();

    let fault = kill_fault("SIGKILL", None, Some(pid_file));
    let applied = apply_for_real(&fault, &os).expect("apply");

    assert_eq!(applied.evidence.pids, sleepers.pids());
    assert_eq!(sleepers.wait_exit(0).signal(), Some(SIGKILL));
}

#[test]
fn sigterm_by_cmdline() {
    let mut sleepers = Sleepers::start(1);
    let os = RealOs::default();
    assert_selects_only(&sleepers, &os);

    let fault = kill_fault("SIGTERM", Some(sleepers.cmdline_regex()), None);
    let applied = apply_for_real(&fault, &os).expect("apply");

    assert_eq!(
        applied.evidence.summary,
        format!("sent SIGTERM to 1 process: {} (sleep)", sleepers.pids()[0])
    );
    assert_eq!(sleepers.wait_exit(0).signal(), Some(SIGTERM));
}

#[test]
fn a_dead_process_is_not_a_target() {
    let mut sleepers = Sleepers::start(1);
    let os = RealOs::default();
    let regex = sleepers.cmdline_regex();
    sleepers.children[0].kill().unwrap();
    sleepers.wait_exit(0);

    let err = apply_for_real(&kill_fault("SIGKILL", Some(regex.clone()), None), &os).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("no process matches cmdline {regex:?}")
    );
}
