//! A served controller with real certificates: agents register over mutual TLS, operators list
//! and run, and every party whose certificate is foreign, or for another name or role, is
//! refused.
//!
//! Refusals are proven without fixed sleeps: a legitimate agent started after the refused one
//! serves as a barrier (once it is listed, the refused one has had its chances), together with a
//! minimum time since the refused agent started; refused agents then exit 2 (config error).
// Integration tests start the real binaries, services and helper processes.
#![allow(clippy::disallowed_methods)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

/// One row of `gameday agents`.
#[derive(Debug)]
struct AgentRow {
    name: String,
    capabilities: Vec<String>,
    labels: Vec<String>,
}

/// The rows of `gameday agents`' table (NAME PEER VERSION HEARD FAULTS CAPABILITIES LABELS).
fn rows(table: &str) -> Vec<AgentRow> {
    table
        .lines()
        .skip_while(|l| !l.starts_with("NAME"))
        .skip(1)
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols.len() >= 6).then(|| AgentRow {
                name: cols[0].to_string(),
                capabilities: cols[5].split(',').map(str::to_string).collect(),
                labels: cols
                    .get(6)
                    .map_or(vec![], |l| l.split(',').map(str::to_string).collect()),
            })
        })
        .collect()
}

/// The agents `gameday agents` lists; panics if the command fails.
fn listed(ctl: &Controller, env: &[(&str, &Path)]) -> Vec<AgentRow> {
    let (code, out) = ctl.agents(env);
    assert_eq!(code, 0, "`gameday agents` fails:\n{out}");
    rows(&out)
}

fn names(rows: &[AgentRow]) -> Vec<&str> {
    rows.iter().map(|r| r.name.as_str()).collect()
}

/// Waits until the legitimate `barrier` agent is listed and `refused` has been trying for at
/// least a second, asserting on every poll that none of `never` is listed.
fn barrier(
    ctl: &Controller,
    env: &[(&str, &Path)],
    barrier: &str,
    refused_since: Instant,
    never: &[&str],
) {
    wait_for(
        &format!("agent {barrier} to be listed, 1s after the refused agent started"),
        Duration::from_secs(20),
        || {
            let rows = listed(ctl, env);
            let names = names(&rows);
            for n in never {
                assert!(
                    !names.contains(n),
                    "agent {n} must never be listed, got {names:?}"
                );
            }
            names.contains(&barrier) && refused_since.elapsed() >= Duration::from_secs(1)
        },
    );
}

/// A certificate that cannot work is a config error the agent reports (exit 2) rather than a
/// retry loop; it checks its files at start (tests/config_checks.rs has the messages).
fn exits_with_config_error(agent: &mut ChildGuard) {
    let mut status = None;
    wait_for("the refused agent to exit", Duration::from_secs(15), || {
        status = agent.child.try_wait().unwrap();
        status.is_some()
    });
    assert_eq!(status.and_then(|s| s.code()), Some(2));
}

#[test]
fn agents_register_and_operators_list_them() {
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::init(&dir.path().join("pki"), &["web-1", "web-2"], &["sre"]);
    let ctl = Controller::start(dir.path(), &certs, "5s");
    let mut agents = Vec::new();
    for (name, zone) in [("web-1", "a"), ("web-2", "b")] {
        let (cert, key) = certs.pair("agent", name);
        let labels = format!("role = \"web\"\nzone = \"{zone}\"");
        agents.push(ctl.agent(dir.path(), name, &certs.ca(), &cert, &key, &labels));
    }
    let (op_cert, op_key) = certs.pair("operator", "sre");
    let ca = certs.ca();
    let env = ctl.operator_env(&ca, &op_cert, &op_key);
    wait_for("both agents to be listed", Duration::from_secs(20), || {
        let rows = listed(&ctl, &env);
        ["web-1", "web-2"].iter().all(|n| names(&rows).contains(n))
    });
    let rows = listed(&ctl, &env);
    for (name, zone) in [("web-1", "a"), ("web-2", "b")] {
        let row = rows.iter().find(|r| r.name == name).unwrap();
        assert!(
            row.capabilities.iter().any(|c| c == "process_kill"),
            "{name} advertises process_kill: {row:?}"
        );
        for label in ["role=web".to_string(), format!("zone={zone}")] {
            assert!(
                row.labels.contains(&label),
                "{name} carries {label}: {row:?}"
            );
        }
    }
    for agent in &mut agents {
        assert!(agent.alive(), "agents keep running");
    }
}

#[test]
fn remote_run_passes_against_a_served_controller() {
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::init(&dir.path().join("pki"), &["web-1"], &["sre"]);
    let ctl = Controller::start(dir.path(), &certs, "5s");
    let (cert, key) = certs.pair("agent", "web-1");
    let _agent = ctl.agent(
        dir.path(),
        "web-1",
        &certs.ca(),
        &cert,
        &key,
        "role = \"web\"",
    );
    let (op_cert, op_key) = certs.pair("operator", "sre");
    let ca = certs.ca();
    let env = ctl.operator_env(&ca, &op_cert, &op_key);
    wait_for("web-1 to be listed", Duration::from_secs(20), || {
        names(&listed(&ctl, &env)).contains(&"web-1")
    });

    let port = free_port();
    let _service = supervised_service(dir.path(), port, "200ms");
    let file = ScenarioBuilder::new("remote")
        .rto("3s")
        .observe("5s")
        .steady_state("300ms")
        .labels(&[("role", "web")])
        .max_targets(1)
        .fault(FaultBuilder::kill(dir.path().join("service.pid")))
        .probe(demo_http_probe(port))
        .write(dir.path().join("remote.toml"));
    let url = ctl.url();
    let out = gameday(
        &[
            "run",
            file.to_str().unwrap(),
            "--controller",
            &url,
            "--output",
            "json",
        ],
        &env,
    );
    let (code, report, stderr) = report_of(out);
    let ctx = format!("stderr:\n{stderr}\nreport: {report:#}");
    assert_eq!(code, 0, "the remote run passes; {ctx}");
    let run = &report["runs"][0];
    assert_eq!(run["verdict"], "PASS", "{ctx}");
    assert_eq!(run["targets"], serde_json::json!(["web-1"]), "{ctx}");
    assert_eq!(run["faults"][0]["agent"], "web-1", "{ctx}");
}

#[test]
fn agent_with_foreign_ca_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::init(&dir.path().join("pki"), &["web-2"], &["sre"]);
    let foreign = Certs::init(&dir.path().join("foreign"), &["web-1"], &[]);
    let ctl = Controller::start(dir.path(), &certs, "5s");
    let (op_cert, op_key) = certs.pair("operator", "sre");
    let ca = certs.ca();
    let env = ctl.operator_env(&ca, &op_cert, &op_key);

    // Trusts the real CA (so it could verify the controller), but its own certificate is not
    // signed by it.
    let (cert, key) = foreign.pair("agent", "web-1");
    let mut intruder = ctl.agent(
        dir.path(),
        "web-1",
        &certs.ca(),
        &cert,
        &key,
        "role = \"web\"",
    );
    let since = Instant::now();
    let (cert, key) = certs.pair("agent", "web-2");
    let _legit = ctl.agent(
        dir.path(),
        "web-2",
        &certs.ca(),
        &cert,
        &key,
        "role = \"web\"",
    );

    barrier(&ctl, &env, "web-2", since, &["web-1"]);
    assert!(
        !names(&listed(&ctl, &env)).contains(&"web-1"),
        "the foreign agent is never listed"
    );
    exits_with_config_error(&mut intruder);
}

/// The controller's refusal reaches the agent on its first attempt, as the TLS alert: in TLS
/// 1.3 the agent has already sent its first bytes when the refusal comes, and a controller
/// that closed with those bytes unread made the kernel reset the connection, so the agent saw a
/// broken pipe, took it for a network failure and retried for seconds before an attempt
/// happened to read the alert.
#[test]
fn a_refused_agent_learns_why_on_its_first_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::init(&dir.path().join("pki"), &["web-2"], &[]);
    let foreign = Certs::init(&dir.path().join("foreign"), &["web-1"], &[]);
    let ctl = Controller::start(dir.path(), &certs, "5s");
    let (cert, key) = foreign.pair("agent", "web-1");
    // The agent trusts both CAs, so its own certificate passes its checks at start and it can
    // verify the controller: only the controller refuses.
    let bundle = dir.path().join("both-cas.pem");
    let both = [certs.ca(), foreign.ca()].map(|ca| std::fs::read_to_string(ca).unwrap());
    std::fs::write(&bundle, both.concat()).unwrap();
    for attempt in 0..8 {
        let config = agent_config(
            dir.path(),
            "web-1",
            &ctl.url(),
            (&bundle, &cert, &key),
            "",
            "",
        );
        let mut agent = in_netns(None, &agent_bin());
        agent.arg("--config").arg(&config);
        let out = output_within(&mut agent, Duration::from_secs(30));
        let log = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "attempt {attempt}: {log}");
        assert!(
            log.contains("refused this agent's certificate"),
            "attempt {attempt}: {log}"
        );
        assert!(
            !log.contains("cannot reach the controller"),
            "attempt {attempt}: the agent retried a refusal it should have read at once: {log}"
        );
    }
}

#[test]
fn agent_claiming_another_agents_name_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::init(
        &dir.path().join("pki"),
        &["web-1", "web-2", "web-3"],
        &["sre"],
    );
    let ctl = Controller::start(dir.path(), &certs, "5s");
    let (op_cert, op_key) = certs.pair("operator", "sre");
    let ca = certs.ca();
    let env = ctl.operator_env(&ca, &op_cert, &op_key);

    // Configured as web-2, holding web-1's certificate.
    let (cert, key) = certs.pair("agent", "web-1");
    let mut impostor = ctl.agent(
        dir.path(),
        "web-2",
        &certs.ca(),
        &cert,
        &key,
        "role = \"web\"",
    );
    let since = Instant::now();
    let (cert, key) = certs.pair("agent", "web-3");
    let _legit = ctl.agent(
        dir.path(),
        "web-3",
        &certs.ca(),
        &cert,
        &key,
        "role = \"web\"",
    );

    barrier(&ctl, &env, "web-3", since, &["web-1", "web-2"]);
    let now = listed(&ctl, &env);
    assert_eq!(
        names(&now),
        vec!["web-3"],
        "only the legitimate agent is listed"
    );
    exits_with_config_error(&mut impostor);
}

#[test]
fn operator_with_foreign_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::init(&dir.path().join("pki"), &["web-1"], &["sre"]);
    let foreign = Certs::init(&dir.path().join("foreign"), &[], &["sre"]);
    let ctl = Controller::start(dir.path(), &certs, "5s");
    let ca = certs.ca();

    // A control: the fleet's own operator gets through.
    let (op_cert, op_key) = certs.pair("operator", "sre");
    let (code, out) = ctl.agents(&ctl.operator_env(&ca, &op_cert, &op_key));
    assert_eq!(code, 0, "the fleet's operator is accepted:\n{out}");

    let (cert, key) = foreign.pair("operator", "sre");
    let (code, out) = ctl.agents(&ctl.operator_env(&ca, &cert, &key));
    assert_eq!(
        code, 4,
        "an operator certificate from another CA is refused:\n{out}"
    );
    assert!(out.contains("error"), "the refusal is explained:\n{out}");
    assert!(!out.contains("NAME"), "no agent table is printed:\n{out}");

    // The right CA, the wrong role.
    let (cert, key) = certs.pair("agent", "web-1");
    let (code, out) = ctl.agents(&ctl.operator_env(&ca, &cert, &key));
    assert_ne!(
        code, 0,
        "an agent certificate cannot act as an operator:\n{out}"
    );
    assert_eq!(code, 4, "refused calls are exit 4:\n{out}");
    let lower = out.to_lowercase();
    assert!(
        lower.contains("permission") || lower.contains("needs operator"),
        "the refusal says the role is wrong:\n{out}"
    );
    assert!(!out.contains("NAME"), "no agent table is printed:\n{out}");
}

#[test]
fn lost_agent_disappears_within_heartbeat_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::init(&dir.path().join("pki"), &["web-1"], &["sre"]);
    let ctl = Controller::start(dir.path(), &certs, "1s");
    let (cert, key) = certs.pair("agent", "web-1");
    let mut agent = ctl.agent(
        dir.path(),
        "web-1",
        &certs.ca(),
        &cert,
        &key,
        "role = \"web\"",
    );
    let (op_cert, op_key) = certs.pair("operator", "sre");
    let ca = certs.ca();
    let env = ctl.operator_env(&ca, &op_cert, &op_key);
    wait_for("web-1 to be listed", Duration::from_secs(20), || {
        names(&listed(&ctl, &env)).contains(&"web-1")
    });

    agent.child.kill().expect("SIGKILL the agent");
    agent.child.wait().expect("reap the agent");
    wait_for(
        "the lost agent to be dropped from the list",
        Duration::from_secs(5),
        || !names(&listed(&ctl, &env)).contains(&"web-1"),
    );
}

#[test]
fn abort_all_with_no_runs_reports_zero() {
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::init(&dir.path().join("pki"), &[], &["sre"]);
    let ctl = Controller::start(dir.path(), &certs, "5s");
    let (op_cert, op_key) = certs.pair("operator", "sre");
    let ca = certs.ca();
    let env = ctl.operator_env(&ca, &op_cert, &op_key);
    let url = ctl.url();
    let out = gameday(&["abort", "--all", "--controller", &url], &env);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert_eq!(
        stdout, "no run was going on\nno fault was live, nothing to revert\n",
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
}

#[test]
fn a_silent_agent_is_dropped_at_the_heartbeat_timeout_and_comes_back() {
    // SIGSTOP keeps the agent's connection open while it says nothing: only the heartbeat
    // timeout can notice it.
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::init(&dir.path().join("pki"), &["web-1"], &["sre"]);
    let ctl = Controller::start(dir.path(), &certs, "1s");
    let (cert, key) = certs.pair("agent", "web-1");
    let agent = ctl.agent(
        dir.path(),
        "web-1",
        &certs.ca(),
        &cert,
        &key,
        "role = \"web\"",
    );
    let (op_cert, op_key) = certs.pair("operator", "sre");
    let ca = certs.ca();
    let env = ctl.operator_env(&ca, &op_cert, &op_key);
    wait_for("web-1 to be listed", Duration::from_secs(20), || {
        names(&listed(&ctl, &env)).contains(&"web-1")
    });

    let pid = agent.pid().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap()
        .success());
    let stopped = std::time::Instant::now();
    wait_for(
        "the silent agent to be dropped",
        Duration::from_secs(5),
        || !names(&listed(&ctl, &env)).contains(&"web-1"),
    );
    let took = stopped.elapsed();
    assert!(
        took >= Duration::from_millis(800),
        "dropped before the 1s timeout could have passed: {took:?}"
    );
    eprintln!("silent agent dropped after {took:?} (heartbeat timeout 1s)");

    assert!(std::process::Command::new("kill")
        .args(["-CONT", &pid])
        .status()
        .unwrap()
        .success());
    wait_for("the agent to reconnect", Duration::from_secs(15), || {
        names(&listed(&ctl, &env)).contains(&"web-1")
    });
}

/// Runs `openssl s_client` against the controller with `extra` arguments, its stdin closed.
fn s_client(ctl: &Controller, ca: &Path, extra: &[&str]) {
    let _ = std::process::Command::new("openssl")
        .args(["s_client", "-connect", &ctl.addr.to_string(), "-CAfile"])
        .arg(ca)
        .args(extra)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl s_client");
}

#[test]
fn the_controller_logs_refused_handshakes_with_the_peer_and_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::init(&dir.path().join("pki"), &["web-1"], &["sre"]);
    let foreign = Certs::init(&dir.path().join("foreign"), &["web-1"], &[]);
    let (ctl, lines) = Controller::start_with_extra(dir.path(), &certs, "5s", "");
    let refused = |why: &str| {
        lines.lock().unwrap().iter().any(|l| {
            l.contains("TLS handshake refused") && l.contains("127.0.0.1:") && l.contains(why)
        })
    };

    // Plaintext, as an http:// URL would send.
    let mut plain = std::net::TcpStream::connect(ctl.addr).unwrap();
    std::io::Write::write_all(&mut plain, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
    wait_for("the plaintext refusal", Duration::from_secs(10), || {
        refused("did not speak TLS")
    });

    // TLS without a client certificate.
    s_client(&ctl, &certs.ca(), &[]);
    wait_for(
        "the no-certificate refusal",
        Duration::from_secs(10),
        || refused("presented no certificate"),
    );

    // A certificate from another fleet.
    let (cert, key) = foreign.pair("agent", "web-1");
    s_client(
        &ctl,
        &certs.ca(),
        &[
            "-cert",
            cert.to_str().unwrap(),
            "-key",
            key.to_str().unwrap(),
        ],
    );
    wait_for("the foreign-CA refusal", Duration::from_secs(10), || {
        refused("not signed by this fleet's CA")
    });

    // The fleet's own operator still gets through.
    let (op_cert, op_key) = certs.pair("operator", "sre");
    let ca = certs.ca();
    let (code, out) = ctl.agents(&ctl.operator_env(&ca, &op_cert, &op_key));
    assert_eq!(code, 0, "{out}");
}
