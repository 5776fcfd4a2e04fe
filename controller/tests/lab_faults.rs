//! Game days across hosts: the controller, agents and services each in a network namespace of
//! their own on a bridge, faults applied by the real agent inside its host, probes crossing
//! the bridge from the controller's host.
// Integration tests start the real binaries, services and helper processes.
#![allow(clippy::disallowed_methods)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::lab::{privileged, Lab, NetNs};
use common::*;

/// The demo service inside `ns`, listening on `addr:port`, its pid in `dir/service.pid`.
fn service_in(ns: &NetNs, dir: &Path, addr: &str, port: u16) -> ChildGuard {
    let child = in_netns(Some(&ns.name), &gameday_bin())
        .args(["demo-service", "--listen", &format!("{addr}:{port}")])
        .spawn()
        .expect("start the service");
    // `ip netns exec` execs the program, so the child's pid is the service's.
    std::fs::write(dir.join("service.pid"), format!("{}\n", child.id())).unwrap();
    let guard = ChildGuard {
        child,
        name: "service",
    };
    wait_for("the service to listen", Duration::from_secs(10), || {
        ns.exec(&["bash", "-c", &format!("exec 3<>/dev/tcp/{addr}/{port}")])
            .status
            .success()
    });
    guard
}

struct Setup {
    dir: tempfile::TempDir,
    certs: Certs,
    lab: Lab,
    /// The controller's host; `ctl` runs, and is asked, from inside it.
    _ctl_ns: NetNs,
    ctl: Controller,
    web_ns: NetNs,
    web_ip: String,
    ctl_ip: String,
    agent: ChildGuard,
    agent_extra: String,
}

impl Setup {
    /// Starts another agent process for web-1 (same state directory, so the same journal).
    fn restart_agent(&mut self) {
        let (cert, key) = self.certs.pair("agent", "web-1");
        self.agent = self.ctl.agent_with(
            self.dir.path(),
            "web-1",
            (&self.certs.ca(), &cert, &key),
            Some(&self.web_ns.name),
            "role = \"web\"",
            &self.agent_extra,
        );
    }

    /// Whether web-1 is in `gameday agents`, asked from the controller's host.
    fn listed(&self) -> bool {
        self.ctl.lists(&self.certs, "web-1")
    }

    /// Starts `gameday run FILE` from the controller's host, its output thrown away.
    fn run_in_background(&self, scenario: &Path) -> ChildGuard {
        let child = self
            .ctl
            .run_command(&self.certs, scenario)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        ChildGuard { child, name: "run" }
    }

    /// nftables tables in the web host's namespace.
    fn web_tables(&self) -> String {
        self.web_ns.ok(&["nft", "list", "tables"])
    }
}

fn setup(agent_extra: &str) -> Setup {
    setup_leased(agent_extra, "3s")
}

/// [`setup`] with the agent's lease set to `lease`.
fn setup_leased(agent_extra: &str, lease: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let mut lab = Lab::new();
    let (ctl_ns, ctl_ip) = lab.host("ctl");
    let ctl_ip = ctl_ip.clone();
    let (web_ns, web_ip) = lab.host("web");
    let pki = dir.path().join("pki");
    let out = gameday(
        &[
            "certs",
            "init",
            "--dir",
            pki.to_str().unwrap(),
            "--agent",
            "web-1",
            "--operator",
            "sre",
            "--controller-san",
            &ctl_ip,
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let certs = Certs { dir: pki };
    let ctl = Controller::start_in(dir.path(), &certs, "2s", Some(&ctl_ns.name), &ctl_ip);
    let (cert, key) = certs.pair("agent", "web-1");
    let agent = ctl.agent_leased(
        dir.path(),
        "web-1",
        (&certs.ca(), &cert, &key),
        Some(&web_ns.name),
        "role = \"web\"",
        agent_extra,
        lease,
    );
    wait_for("web-1 to register", Duration::from_secs(20), || {
        ctl.lists(&certs, "web-1")
    });
    Setup {
        dir,
        certs,
        lab,
        _ctl_ns: ctl_ns,
        ctl,
        web_ns,
        web_ip,
        ctl_ip,
        agent,
        agent_extra: agent_extra.to_string(),
    }
}

#[test]
fn a_pause_on_another_host_is_graded_through_the_bridge() {
    if !privileged(&["ip"]) {
        return;
    }
    let s = setup("");
    let port = 8080;
    let _service = service_in(&s.web_ns, s.dir.path(), &s.web_ip, port);
    let scenario = ScenarioBuilder::new("pause-across-hosts")
        .rto("3s")
        .recovery("after_revert")
        .steady_state("300ms")
        .observe("10s")
        .labels(&[("role", "web")])
        .fault(FaultBuilder::pause(s.dir.path().join("service.pid"), "1s"))
        .probe(web_http_probe(&s.web_ip, port))
        .write(s.dir.path().join("pause.toml"));
    let (code, report, stderr) = s.ctl.run(&s.certs, &scenario);
    assert_eq!(code, 0, "stderr:\n{stderr}\nreport: {report:#}");
    let run = &report["runs"][0];
    assert_eq!(run["verdict"], "PASS");
    let recovered = run["grade"]["time_to_recover"]["us"].as_u64().unwrap();
    // Frozen for 1 s; the probe sees it back within an interval plus its timeout.
    assert!(
        (1_000_000..1_300_000).contains(&recovered),
        "recovery {recovered} µs for a 1 s pause"
    );
    let _ = &s.lab;
}

/// The service on web-1 seen from the controller's host: every 20 ms, each check bounded by
/// 100 ms, recovered after 3 good answers.
fn web_http_probe(web_ip: &str, port: u16) -> ProbeBuilder {
    ProbeBuilder::http("http", format!("http://{web_ip}:{port}/"))
        .interval("20ms")
        .timeout("100ms")
        .recovered_after(3)
}

/// A partition scenario: web-1 drops traffic from the controller's host to port 8080 only.
fn partition_scenario(s: &Setup, duration: &str) -> std::path::PathBuf {
    ScenarioBuilder::new("partition-across-hosts")
        .rto("3s")
        .recovery("after_revert")
        .steady_state("300ms")
        .observe("20s")
        .agents(["web-1"])
        .fault(
            FaultBuilder::new("network_partition")
                .set("direction", "ingress")
                .set("peers", [format!("{}/32", s.ctl_ip)])
                .set("ports", [8080])
                .set("protocol", "tcp")
                .set("duration", duration),
        )
        .probe(web_http_probe(&s.web_ip, 8080))
        .write(s.dir.path().join("partition.toml"))
}

#[test]
fn a_partition_cuts_the_service_but_never_the_agents_control_connection() {
    if !privileged(&["ip", "nft"]) {
        return;
    }
    let s = setup("");
    let _service = service_in(&s.web_ns, s.dir.path(), &s.web_ip, 8080);
    let before = s.web_tables();
    let scenario = partition_scenario(&s, "1s");
    let (code, report, stderr) = s.ctl.run(&s.certs, &scenario);
    assert_eq!(code, 0, "stderr:\n{stderr}\nreport: {report:#}");
    let run = &report["runs"][0];
    assert_eq!(run["verdict"], "PASS");
    let fault = &run["faults"][0];
    // The revert was acknowledged over the control connection the partition exempted, and
    // the rules really dropped the probe's packets.
    assert!(fault["reverted_us"].as_u64().is_some(), "{fault:#}");
    assert!(
        fault["revert_figures"]["packets_dropped"].as_i64().unwrap() > 0,
        "{fault:#}"
    );
    let recovered = run["grade"]["time_to_recover"]["us"].as_u64().unwrap();
    assert!(
        (1_000_000..1_400_000).contains(&recovered),
        "recovery {recovered} µs for a 1 s partition"
    );
    assert_eq!(s.web_tables(), before, "no table left behind");
}

#[test]
fn an_agent_killed_mid_partition_is_succeeded_by_one_that_reverts_before_registering() {
    if !privileged(&["ip", "nft"]) {
        return;
    }
    let mut s = setup("");
    let _service = service_in(&s.web_ns, s.dir.path(), &s.web_ip, 8080);
    let before = s.web_tables();
    let scenario = partition_scenario(&s, "60s");
    let _run = s.run_in_background(&scenario);
    wait_for(
        "the partition table to appear",
        Duration::from_secs(20),
        || s.web_tables().contains("gameday_"),
    );

    s.agent.child.kill().unwrap();
    s.agent.child.wait().unwrap();
    assert!(
        s.web_tables().contains("gameday_"),
        "the table outlives the killed agent"
    );
    wait_for(
        "web-1 to drop off the list",
        Duration::from_secs(10),
        || !s.listed(),
    );

    s.restart_agent();
    wait_for("the successor to register", Duration::from_secs(20), || {
        s.listed()
    });
    assert_eq!(s.web_tables(), before, "reverted before registering");
}

#[test]
fn a_controller_restarted_mid_partition_reverts_it_within_a_second_of_re_registration() {
    if !privileged(&["ip", "nft"]) {
        return;
    }
    // The agent's lease outlasts the test: only the new controller can lift the partition.
    let mut s = setup_leased("", "60s");
    let _service = service_in(&s.web_ns, s.dir.path(), &s.web_ip, 8080);
    let before = s.web_tables();
    let scenario = partition_scenario(&s, "30s");
    let _run = s.run_in_background(&scenario);
    wait_for(
        "the partition table to appear",
        Duration::from_secs(20),
        || s.web_tables().contains("gameday_"),
    );

    // SIGKILL and restart on the same address, as systemd would.
    s.ctl.restart_in_place(s.dir.path(), &s.certs, "2s");
    wait_for("web-1 to re-register", Duration::from_secs(20), || {
        s.listed()
    });
    let registered = std::time::Instant::now();
    wait_for(
        "the orphaned partition to be reverted",
        Duration::from_secs(3),
        || s.web_tables() == before,
    );
    eprintln!(
        "orphaned partition reverted {:?} after re-registration was seen",
        registered.elapsed()
    );
    let out = s
        .ctl
        .operator_command(&s.certs, &["runs", "--output", "json"])
        .output()
        .unwrap();
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs[0]["status"], "interrupted", "{runs:#}");
    assert!(
        runs[0]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("network_partition on web-1 was still held"),
        "{runs:#}"
    );
}

/// A small tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(path: std::path::PathBuf) -> Tmpfs {
        std::fs::create_dir_all(&path).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"])
            .arg(&path)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount a tmpfs on {}", path.display());
        Tmpfs(path)
    }

    fn fill_files(&self) -> Vec<String> {
        std::fs::read_dir(&self.0)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".gameday-fill-"))
            .collect()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn an_agent_killed_mid_disk_fill_is_succeeded_by_one_that_deletes_the_fill_before_registering() {
    if !privileged(&["ip", "mount", "umount"]) {
        return;
    }
    let base = tempfile::tempdir().unwrap();
    let disk = Tmpfs::mount(base.path().join("data"));
    let policy = format!("[policy.disk_fill]\npaths = [\"{}\"]\n", disk.0.display());
    let mut s = setup(&policy);
    let _service = service_in(&s.web_ns, s.dir.path(), &s.web_ip, 8080);
    let scenario = ScenarioBuilder::new("fill")
        .rto("3s")
        .steady_state("300ms")
        .observe("60s")
        .agents(["web-1"])
        .fault(
            FaultBuilder::new("disk_fill")
                .set("path", &disk.0)
                .set("fill_to", 90)
                .set("duration", "60s"),
        )
        .probe(ProbeBuilder::http("http", format!("http://{}:8080/", s.web_ip)).interval("50ms"))
        .write(s.dir.path().join("fill.toml"));
    let _run = s.run_in_background(&scenario);
    wait_for("the fill file to appear", Duration::from_secs(20), || {
        !disk.fill_files().is_empty()
    });

    s.agent.child.kill().unwrap();
    s.agent.child.wait().unwrap();
    assert!(
        !disk.fill_files().is_empty(),
        "the fill outlives the killed agent"
    );
    wait_for(
        "web-1 to drop off the list",
        Duration::from_secs(10),
        || !s.listed(),
    );

    s.restart_agent();
    wait_for("the successor to register", Duration::from_secs(20), || {
        s.listed()
    });
    assert!(
        disk.fill_files().is_empty(),
        "deleted before registering: {:?}",
        disk.fill_files()
    );
}
