//! Game days across hosts: the controller, agents and services each in a network namespace of
//! their own on a bridge, faults applied by the real agent inside its host, probes crossing
//! the bridge from the controller's host.

mod common;

use std::path::Path;
use std::time::Duration;

use common::lab::{privileged, Lab, NetNs};
use common::*;

/// `gameday run FILE --output json` from inside the controller's namespace.
fn run_from(
    ns: &NetNs,
    ctl: &Controller,
    certs: &Certs,
    scenario: &Path,
) -> (i32, serde_json::Value, String) {
    let (cert, key) = certs.pair("operator", "sre");
    let out = in_netns(Some(&ns.name), &gameday_bin())
        .args(["run", "--output", "json", "--controller", &ctl.url()])
        .arg(scenario)
        .env("GAMEDAY_CA", certs.ca())
        .env("GAMEDAY_CERT", cert)
        .env("GAMEDAY_KEY", key)
        .output()
        .expect("gameday run");
    report_of(out)
}

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
    ctl_ns: NetNs,
    ctl: Controller,
    web_ns: NetNs,
    web_ip: String,
    _agent: ChildGuard,
}

fn setup(agent_extra: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let mut lab = Lab::new();
    let (ctl_ns, ctl_ip) = lab.host("ctl");
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
    let agent = ctl.agent_with(
        dir.path(),
        "web-1",
        (&certs.ca(), &cert, &key),
        Some(&web_ns.name),
        "role = \"web\"",
        agent_extra,
    );
    let op = certs.pair("operator", "sre");
    let ca = certs.ca();
    wait_for("web-1 to register", Duration::from_secs(20), || {
        let out = in_netns(Some(&ctl_ns.name), &gameday_bin())
            .args(["agents", "--controller", &ctl.url()])
            .env("GAMEDAY_CA", &ca)
            .env("GAMEDAY_CERT", &op.0)
            .env("GAMEDAY_KEY", &op.1)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l.starts_with("web-1 "))
    });
    Setup {
        dir,
        certs,
        lab,
        ctl_ns,
        ctl,
        web_ns,
        web_ip,
        _agent: agent,
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
    let scenario = s.dir.path().join("pause.toml");
    std::fs::write(
        &scenario,
        format!(
            r#"
name = "pause-across-hosts"
rto = "3s"
steady_state = "300ms"
observe = "10s"

[targets]
labels = {{ role = "web" }}

[[faults]]
kind = "process_pause"
pid_file = "{pid}"
duration = "1s"

[[probes]]
name = "http"
kind = "http"
url = "http://{ip}:{port}/"
interval = "20ms"
timeout = "100ms"
recovered_after = 3
"#,
            pid = s.dir.path().join("service.pid").display(),
            ip = s.web_ip
        ),
    )
    .unwrap();
    let (code, report, stderr) = run_from(&s.ctl_ns, &s.ctl, &s.certs, &scenario);
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
