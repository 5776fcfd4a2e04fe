//! Two agents presenting one certificate: the second is refused while the first is live, with
//! a reason logged on both sides, and it stops (exit 2) instead of taking the name from the
//! first in turn. The same installation restarted at once takes its name back.
// Integration tests start the real binaries, services and helper processes.
#![allow(clippy::disallowed_methods)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

/// `(name, peer)` of every agent `gameday agents` lists.
fn listed(ctl: &Controller, env: &[(&str, &Path)]) -> Vec<(String, String)> {
    let (code, out) = ctl.agents(env);
    assert_eq!(code, 0, "`gameday agents` fails:\n{out}");
    out.lines()
        .skip_while(|l| !l.starts_with("NAME"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols.len() >= 2).then(|| (cols[0].to_string(), cols[1].to_string()))
        })
        .collect()
}

#[test]
fn a_second_agent_with_the_same_certificate_is_refused_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::init(&dir.path().join("pki"), &["web-1"], &["sre"]);
    let (ctl, controller_log) = Controller::start_with_extra(dir.path(), &certs, "5s", "");
    let (op_cert, op_key) = certs.pair("operator", "sre");
    let ca = certs.ca();
    let env = ctl.operator_env(&ca, &op_cert, &op_key);
    let (cert, key) = certs.pair("agent", "web-1");

    // The first, on "host a".
    let host_a = dir.path().join("a");
    std::fs::create_dir_all(&host_a).unwrap();
    let mut first = ctl.agent(&host_a, "web-1", &ca, &cert, &key, "");
    let mut peer = String::new();
    wait_for(
        "web-1 to be listed",
        Duration::from_secs(20),
        || match listed(&ctl, &env).into_iter().find(|(n, _)| n == "web-1") {
            Some((_, p)) => {
                peer = p;
                true
            }
            None => false,
        },
    );

    // The second, on "host b", with a copy of the same certificate.
    let host_b = dir.path().join("b");
    std::fs::create_dir_all(&host_b).unwrap();
    let config = agent_config(&host_b, "web-1", &ctl.url(), (&ca, &cert, &key), "", "");
    let (code, stderr) = exit_within(
        Command::new(agent_bin()).arg("--config").arg(&config),
        Duration::from_secs(30),
    );
    assert_eq!(
        code, 2,
        "the second agent stops with a config error:\n{stderr}"
    );
    assert!(
        stderr.contains("another agent with this certificate is connected to the controller")
            && stderr.contains(&format!("agent web-1 is already connected from {peer}")),
        "the second agent says why, naming where the first connects from:\n{stderr}"
    );
    wait_for(
        "the controller to log the refusal",
        Duration::from_secs(10),
        || {
            controller_log
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains("refused a second agent presenting the same certificate"))
        },
    );

    // The first keeps its place and its stream.
    assert!(first.alive(), "the first agent keeps running");
    assert_eq!(
        listed(&ctl, &env),
        vec![("web-1".to_string(), peer.clone())],
        "the first agent is still the one listed"
    );

    // Restarted at once from the same state directory, the first takes its name back.
    let _ = first.child.kill();
    let _ = first.child.wait();
    let mut restarted = ctl.agent(&host_a, "web-1", &ca, &cert, &key, "");
    wait_for(
        "the restarted agent to be listed on a new connection",
        Duration::from_secs(20),
        || {
            listed(&ctl, &env)
                .iter()
                .any(|(n, p)| n == "web-1" && *p != peer)
        },
    );
    assert!(restarted.alive(), "the restarted agent is not refused");
}
