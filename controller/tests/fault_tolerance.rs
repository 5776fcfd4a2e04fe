//! Nothing is left behind: a crashed agent's successor reverts before it registers; a lost
//! controller makes agents revert within their lease; a fault's deadline holds while the
//! controller is unreachable. Real binaries, real signals, on processes the test started.
// Integration tests start the real binaries, services and helper processes.
#![allow(clippy::disallowed_methods)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// A scenario that pauses the sleeper for `duration` (observing `observe`), probing a live
/// service so the steady state is healthy.
fn pause_scenario(dir: &Path, port: u16, duration: &str, observe: &str) -> std::path::PathBuf {
    ScenarioBuilder::new("pause")
        .rto("1s")
        .steady_state("200ms")
        .observe(observe)
        .agents(["web-1"])
        .fault(FaultBuilder::pause(dir.join("target.pid"), duration))
        .probe(svc_probe(port))
        .write(dir.join("pause.toml"))
}

/// What a pause scenario needs; everything stops when it drops.
struct PauseSetup {
    _service_dir: tempfile::TempDir,
    _service: ChildGuard,
    target: ChildGuard,
    scenario: std::path::PathBuf,
}

struct Fleet {
    dir: tempfile::TempDir,
    certs: Certs,
    controller: Controller,
}

impl Fleet {
    fn start() -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        let certs = Certs::init(&dir.path().join("pki"), &["web-1"], &["sre"]);
        let controller = Controller::start(dir.path(), &certs, "2s");
        Fleet {
            dir,
            certs,
            controller,
        }
    }

    /// A healthy service for the probe, a `sleep` target, and a scenario pausing the target
    /// for `duration` while observing `observe`.
    fn pause_setup(&self, duration: &str, observe: &str) -> PauseSetup {
        let service_dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let service = bare_service(service_dir.path(), port);
        let target = sleeper(self.dir.path()).0;
        let scenario = pause_scenario(self.dir.path(), port, duration, observe);
        PauseSetup {
            _service_dir: service_dir,
            _service: service,
            target,
            scenario,
        }
    }

    fn agent(&self) -> ChildGuard {
        self.agent_leased("3s")
    }

    /// The agent, with a lease of its own: a long one proves something other than the lease
    /// reverted a fault.
    fn agent_leased(&self, lease: &str) -> ChildGuard {
        let (cert, key) = self.certs.pair("agent", "web-1");
        self.controller.agent_leased(
            self.dir.path(),
            "web-1",
            (&self.certs.ca(), &cert, &key),
            None,
            "role = \"web\"",
            "",
            lease,
        )
    }

    /// SIGKILLs the controller and starts it again on the same address and data, as systemd
    /// would.
    fn restart_controller(&mut self) {
        self.controller
            .restart_in_place(self.dir.path(), &self.certs, "2s");
    }

    /// `gameday agents` as text.
    fn agents_text(&self) -> String {
        let (cert, key) = self.certs.pair("operator", "sre");
        let ca = self.certs.ca();
        let env = self.controller.operator_env(&ca, &cert, &key);
        self.controller.agents(&env).1
    }

    /// `gameday runs --output json`.
    fn runs(&self) -> serde_json::Value {
        let out = self
            .controller
            .operator_command(&self.certs, &["runs", "--output", "json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn listed(&self) -> bool {
        self.controller.lists(&self.certs, "web-1")
    }

    /// Starts `gameday run FILE --output json` with its report piped back.
    fn run_piped(&self, scenario: &Path) -> std::process::Child {
        self.controller
            .run_command(&self.certs, scenario)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start gameday run")
    }

    /// Starts `gameday run FILE` against the controller in the background.
    fn run_in_background(&self, scenario: &Path) -> ChildGuard {
        let child = self
            .controller
            .run_command(&self.certs, scenario)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start gameday run");
        ChildGuard { child, name: "run" }
    }
}

#[test]
fn a_crashed_agents_successor_reverts_its_pause_before_registering() {
    let fleet = Fleet::start();
    let mut agent = fleet.agent();
    wait_for("web-1 to register", Duration::from_secs(15), || {
        fleet.listed()
    });
    let mut setup = fleet.pause_setup("60s", "60s");
    let (target, scenario) = (&mut setup.target, &setup.scenario);
    let _run = fleet.run_in_background(scenario);
    wait_for("the pause to take effect", Duration::from_secs(15), || {
        stopped(target.pid())
    });

    // kill -9: the agent cannot revert; its journal is all that remembers the pause.
    agent.child.kill().unwrap();
    agent.child.wait().unwrap();
    wait_for(
        "web-1 to drop off the list",
        Duration::from_secs(10),
        || !fleet.listed(),
    );
    assert!(
        stopped(target.pid()),
        "the pause outlives the crashed agent"
    );

    let _successor = fleet.agent();
    wait_for("the successor to register", Duration::from_secs(15), || {
        fleet.listed()
    });
    // Registration comes after recovery, so by the time it is listed the pause is gone.
    assert!(!stopped(target.pid()), "reverted before registering");
    assert!(target.alive());
}

/// The FAULTS column of web-1 in `gameday agents`.
fn faults_column(agents: &str) -> Option<u32> {
    let line = agents.lines().find(|l| l.starts_with("web-1 "))?;
    line.split_whitespace().nth(4)?.parse().ok()
}

#[test]
fn a_controller_restarted_within_the_lease_reverts_the_pause_its_predecessor_left() {
    let mut fleet = Fleet::start();
    // A lease far longer than the test: only the new controller can end the pause early.
    let _agent = fleet.agent_leased("60s");
    wait_for("web-1 to register", Duration::from_secs(15), || {
        fleet.listed()
    });
    let setup = fleet.pause_setup("60s", "60s");
    let (target, scenario) = (&setup.target, &setup.scenario);
    let _run = fleet.run_in_background(scenario);
    wait_for("the pause to take effect", Duration::from_secs(15), || {
        stopped(target.pid())
    });

    fleet.restart_controller();
    wait_for("web-1 to re-register", Duration::from_secs(15), || {
        fleet.listed()
    });
    let registered = Instant::now();
    wait_for(
        "the new controller to revert the orphaned pause",
        Duration::from_secs(3),
        || !stopped(target.pid()),
    );
    eprintln!(
        "orphaned pause reverted {:?} after re-registration was seen",
        registered.elapsed()
    );
    wait_for("FAULTS to drop to 0", Duration::from_secs(5), || {
        faults_column(&fleet.agents_text()) == Some(0)
    });
    let runs = fleet.runs();
    let run = &runs[0];
    assert_eq!(run["status"], "interrupted", "{runs:#}");
    let reason = run["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("process_pause on web-1 was still held when the agent re-registered")
            && reason.contains("reverted then"),
        "the run's record says what happened: {reason}"
    );
}

#[test]
fn an_agent_that_reconnects_mid_run_has_its_fault_adopted_and_reverted_by_the_run() {
    let fleet = Fleet::start();
    let mut agent = fleet.agent_leased("60s");
    wait_for("web-1 to register", Duration::from_secs(15), || {
        fleet.listed()
    });
    let setup = fleet.pause_setup("8s", "20s");
    let (target, scenario) = (&setup.target, &setup.scenario);
    let run = fleet.run_piped(scenario);
    wait_for("the pause to take effect", Duration::from_secs(15), || {
        stopped(target.pid())
    });

    // Freeze the agent past the heartbeat timeout: the controller drops its stream, and the
    // agent (lease 60s) keeps the pause and dials again once it runs.
    let pid = agent.pid().to_string();
    assert!(Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap()
        .success());
    let cont = scopeguard(pid);
    wait_for("web-1 to be dropped", Duration::from_secs(10), || {
        !fleet.listed()
    });
    drop(cont);
    wait_for("web-1 to come back", Duration::from_secs(10), || {
        fleet.agents_text().contains("adopted")
    });
    assert!(stopped(target.pid()), "the run's pause is still on");

    // The run reverts through the agent's new connection when its 8 s are up.
    let (code, report, stderr) = report_of(run.wait_with_output().unwrap());
    let fault = &report["runs"][0]["faults"][0];
    assert!(fault["error"].is_null(), "{fault:#}\n{stderr}");
    assert!(fault["reverted_us"].as_u64().is_some(), "{fault:#}");
    assert!(!stopped(target.pid()));
    assert_ne!(code, 4, "{stderr}");
    assert!(agent.alive());
}

#[test]
fn sigterm_with_agents_attached_and_a_run_going_on_reverts_and_exits_within_the_grace() {
    let mut fleet = Fleet::start();
    // A lease far longer than the test: only the controller's own shutdown can end the pause.
    let mut agent = fleet.agent_leased("60s");
    wait_for("web-1 to register", Duration::from_secs(15), || {
        fleet.listed()
    });
    let setup = fleet.pause_setup("60s", "60s");
    let (target, scenario) = (&setup.target, &setup.scenario);
    let run = fleet.run_piped(scenario);
    wait_for("the pause to take effect", Duration::from_secs(15), || {
        stopped(target.pid())
    });

    let pid = fleet.controller.guard.pid().to_string();
    let signalled = Instant::now();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    // The default grace is 10 s; a stop that waits for the agents' streams never ends.
    wait_for("the controller to exit", Duration::from_secs(12), || {
        !fleet.controller.guard.alive()
    });
    eprintln!("controller exited {:?} after SIGTERM", signalled.elapsed());
    let status = fleet.controller.guard.child.wait().unwrap();
    assert!(status.success(), "a clean stop exits 0: {status:?}");
    assert!(
        !stopped(target.pid()),
        "the pause was reverted before exiting"
    );
    let (code, report, stderr) = report_of(run.wait_with_output().unwrap());
    assert_eq!(code, 3, "{stderr}\n{report:#}");
    assert_eq!(report["runs"][0]["verdict"], "ABORTED", "{report:#}");
    assert!(agent.alive(), "the agent outlives its controller");

    fleet.restart_controller();
    let runs = fleet.runs();
    assert_eq!(runs[0]["status"], "interrupted", "{runs:#}");
    assert!(
        runs[0]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("the controller shut down while observing"),
        "{runs:#}"
    );
}

#[test]
fn kills_are_never_live_faults() {
    let fleet = Fleet::start();
    let _agent = fleet.agent();
    wait_for("web-1 to register", Duration::from_secs(15), || {
        fleet.listed()
    });
    let service_dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _service = supervised_service(service_dir.path(), port, "100ms");
    let scenario = ScenarioBuilder::new("kill-twice")
        .rto("2s")
        .steady_state("200ms")
        .observe("3s")
        .repeat(2)
        .agents(["web-1"])
        .fault(FaultBuilder::kill(service_dir.path().join("service.pid")))
        .probe(svc_probe(port))
        .write(fleet.dir.path().join("kill.toml"));
    let (code, report, stderr) = report_of(fleet.run_piped(&scenario).wait_with_output().unwrap());
    assert_eq!(code, 0, "{stderr}\n{report:#}");
    assert_eq!(
        faults_column(&fleet.agents_text()),
        Some(0),
        "{}",
        fleet.agents_text()
    );
    let out = fleet
        .controller
        .operator_command(&fleet.certs, &["abort", "--all"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("no fault was live, nothing to revert"),
        "{said}"
    );
}

#[test]
fn agents_revert_within_their_lease_when_the_controller_dies() {
    let mut fleet = Fleet::start();
    let _agent = fleet.agent();
    wait_for("web-1 to register", Duration::from_secs(15), || {
        fleet.listed()
    });
    let setup = fleet.pause_setup("60s", "60s");
    let (target, scenario) = (&setup.target, &setup.scenario);
    let _run = fleet.run_in_background(scenario);
    wait_for("the pause to take effect", Duration::from_secs(15), || {
        stopped(target.pid())
    });

    fleet.controller.guard.child.kill().unwrap();
    fleet.controller.guard.child.wait().unwrap();
    let killed = Instant::now();
    // The harness gives agents a 3 s lease; allow the enforcement tick and process start-up.
    wait_for(
        "the agent to revert on its own",
        Duration::from_secs(6),
        || !stopped(target.pid()),
    );
    let took = killed.elapsed();
    eprintln!("reverted {took:?} after the controller died (lease 3s)");
    assert!(
        took >= Duration::from_secs(2),
        "not before the lease: {took:?}"
    );
}

#[test]
fn a_deadline_passes_on_time_while_the_controller_is_unreachable() {
    let fleet = Fleet::start();
    let _agent = fleet.agent();
    wait_for("web-1 to register", Duration::from_secs(15), || {
        fleet.listed()
    });
    let setup = fleet.pause_setup("1s", "30s");
    let (target, scenario) = (&setup.target, &setup.scenario);
    let _run = fleet.run_in_background(scenario);
    wait_for("the pause to take effect", Duration::from_secs(15), || {
        stopped(target.pid())
    });
    let applied = Instant::now();

    // SIGSTOP the controller: its sockets stay open but nothing answers, so only the agent's
    // own deadline can end the pause.
    let pid = fleet.controller.guard.pid().to_string();
    assert!(Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap()
        .success());
    let cont = scopeguard(pid.clone());
    wait_for(
        "the agent to revert at the deadline",
        Duration::from_secs(3),
        || !stopped(target.pid()),
    );
    let took = applied.elapsed();
    eprintln!("pause of 1s reverted after {took:?} with the controller stopped");
    assert!(
        took < Duration::from_millis(2_500),
        "the 3 s lease did not do it: {took:?}"
    );
    drop(cont);
}

/// Continues a stopped process when dropped, so the controller can be shut down cleanly.
struct Cont(String);

impl Drop for Cont {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-CONT", &self.0]).status();
    }
}

fn scopeguard(pid: String) -> Cont {
    Cont(pid)
}

#[test]
fn abort_all_reverts_a_live_pause_now_and_the_run_is_aborted() {
    let fleet = Fleet::start();
    let _agent = fleet.agent();
    wait_for("web-1 to register", Duration::from_secs(15), || {
        fleet.listed()
    });
    let setup = fleet.pause_setup("60s", "60s");
    let (target, scenario) = (&setup.target, &setup.scenario);
    let run = fleet
        .controller
        .run_command(&fleet.certs, scenario)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the pause to take effect", Duration::from_secs(15), || {
        stopped(target.pid())
    });
    let out = fleet
        .controller
        .operator_command(&fleet.certs, &["abort", "--all"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("aborted 1 run(s): run-"), "{said}");
    // What the abort reverted, named.
    assert!(
        said.contains("reverted: process_pause on web-1 (run run-"),
        "{said}"
    );
    assert!(
        said.contains("(recorded as aborted by operator sre)"),
        "{said}"
    );
    assert!(!stopped(target.pid()), "reverted by the time abort answers");
    let (code, report, stderr) = report_of(run.wait_with_output().unwrap());
    assert_eq!(code, 3, "aborted is exit 3; stderr: {stderr}");
    assert_eq!(report["runs"][0]["verdict"], "ABORTED");
    // The run record says who aborted it; the run id was printed first for that purpose.
    let reason = report["runs"][0]["reason"].as_str().unwrap_or_default();
    assert!(reason.starts_with("aborted by operator sre "), "{reason}");
    let invocation = report["runs"][0]["run_id"]
        .as_str()
        .and_then(|id| id.strip_suffix("-1"))
        .expect("run 1 is INVOCATION-1")
        .to_string();
    assert!(
        stderr.contains(&format!("abort with `gameday abort {invocation}`")),
        "{stderr}"
    );
}
