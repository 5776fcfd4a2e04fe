//! Scoped process faults against the real kernel: two `sleep` children with the same name and
//! command line, one inside a cgroup or network namespace the test creates and one outside;
//! a kill scoped to the cgroup or namespace must kill the inside one only. Only the test's own
//! children are ever signalled, and its cgroups and namespaces are removed however it ends.
// Integration tests start the real binaries, services and helper processes.
#![allow(clippy::disallowed_methods)]

mod common;

use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::{privileged, wait_for, NetNs, TestCgroup};
use gameday_agent::faults;
use gameday_agent::os::{ProcessOs, RealOs};
use gameday_agent::policy::Policy;
use gameday_proto::Fault;

const SIGKILL: i32 = nix::sys::signal::Signal::SIGKILL as i32;

/// A child killed and reaped however the test ends.
struct Sleeper(Child);

impl Drop for Sleeper {
    fn drop(&mut self) {
        // Child::kill does nothing once the child is reaped, so this never hits a reused pid.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Sleeper {
    fn pid(&self) -> i32 {
        self.0.id() as i32
    }

    fn is_running(&mut self) -> bool {
        self.0.try_wait().expect("try_wait").is_none()
    }

    fn wait_killed(&mut self) {
        wait_for("the child to die", Duration::from_secs(10), || {
            !self.is_running()
        });
        let status = self.0.wait().expect("wait");
        assert_eq!(status.signal(), Some(SIGKILL));
    }
}

/// `sleep 300.<test pid><n>`: an argument only this test process's children have.
fn unique_arg() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "300.{}{:04}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn fault(toml_fields: &str) -> Fault {
    toml::from_str(&format!("kind = \"process_kill\"\n{toml_fields}")).expect("a valid fault")
}

/// The agent's path: check (with its warnings), prepare, then apply, on the real host.
fn kill_for_real(fault: &Fault) -> Result<(Vec<String>, faults::Applied), faults::FaultError> {
    let host = faults::Host {
        processes: std::sync::Arc::new(RealOs::default()),
        network: Default::default(),
        disk: Default::default(),
        dns: Default::default(),
        controller: Vec::new(),
    };
    let policy = Policy::permissive();
    let warnings = faults::check(fault, "test-fault", &policy, &host)?;
    let plan = faults::prepare(fault, "test-fault", &policy, &host)?;
    Ok((warnings, faults::apply(&plan, &policy, &host)?))
}

/// Waits until `pid` runs `sleep ARG` (after `ip netns exec` has exec'd it).
fn wait_running_sleep(pid: i32, arg: &str) {
    let os = RealOs::default();
    let want = format!("sleep {arg}");
    wait_for("the child to run sleep", Duration::from_secs(10), || {
        os.process(pid)
            .ok()
            .flatten()
            .is_some_and(|p| p.cmdline == want)
    });
}

#[test]
fn a_kill_by_cgroup_touches_only_that_cgroups_process() {
    if !privileged(&["sleep"]) {
        return;
    }
    if TestCgroup::unified_root().is_none() {
        assert!(
            std::env::var("GAMEDAY_CI").map_or(true, |v| v.is_empty()),
            "this test needs a cgroup v2 hierarchy (/sys/fs/cgroup or /sys/fs/cgroup/unified)"
        );
        eprintln!("SKIPPED: no cgroup v2 hierarchy");
        return;
    }
    // Declared first, dropped last: its processes are gone by the time it is removed.
    let cgroup = TestCgroup::new();
    let arg = unique_arg();
    let mut inside = Sleeper(Command::new("sleep").arg(&arg).spawn().unwrap());
    let mut outside = Sleeper(Command::new("sleep").arg(&arg).spawn().unwrap());
    cgroup.add(inside.0.id());
    let os = RealOs::default();
    assert_eq!(
        os.cgroup(inside.pid()).unwrap().as_deref(),
        Some(cgroup.path.as_str())
    );

    // The bare command line matches both, in two cgroups: the check warns.
    let regex = format!("^sleep {}$", regex::escape(&arg));
    let host = faults::Host {
        processes: std::sync::Arc::new(RealOs::default()),
        network: Default::default(),
        disk: Default::default(),
        dns: Default::default(),
        controller: Vec::new(),
    };
    let warnings = faults::check(
        &fault(&format!("cmdline = {regex:?}")),
        "f0",
        &Policy::permissive(),
        &host,
    )
    .unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("2 cgroups"), "{warnings:?}");

    let (warnings, applied) = kill_for_real(&fault(&format!(
        "name = \"sleep\"\ncgroup = {:?}",
        cgroup.path
    )))
    .expect("kill by cgroup");
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(applied.evidence.pids, vec![inside.pid()]);
    inside.wait_killed();
    assert!(outside.is_running(), "the same-named process outside lives");
}

#[test]
fn a_kill_scoped_to_a_network_namespace_leaves_the_other_alive() {
    if !privileged(&["ip", "sleep"]) {
        return;
    }
    let ns = NetNs::new("psc");
    let arg = unique_arg();
    let mut inside = Sleeper(
        Command::new("ip")
            .args(["netns", "exec", &ns.name, "sleep", &arg])
            .spawn()
            .unwrap(),
    );
    let mut outside = Sleeper(Command::new("sleep").arg(&arg).spawn().unwrap());
    wait_running_sleep(inside.pid(), &arg);
    wait_running_sleep(outside.pid(), &arg);
    let regex = format!("^sleep {}$", regex::escape(&arg));

    // Scoped to the agent's namespace: the one outside goes, the one inside stays.
    let (warnings, applied) =
        kill_for_real(&fault(&format!("cmdline = {regex:?}\nnetns = \"agent\""))).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(applied.evidence.pids, vec![outside.pid()]);
    outside.wait_killed();
    assert!(inside.is_running());

    // A fresh outside process, then scoped to the namespace the inside one is in.
    let mut outside = Sleeper(Command::new("sleep").arg(&arg).spawn().unwrap());
    wait_running_sleep(outside.pid(), &arg);
    let (_, applied) = kill_for_real(&fault(&format!(
        "cmdline = {regex:?}\nnetns = {{ same_as_pid = {} }}",
        inside.pid()
    )))
    .unwrap();
    assert_eq!(applied.evidence.pids, vec![inside.pid()]);
    inside.wait_killed();
    assert!(outside.is_running(), "the same-named process outside lives");
}
