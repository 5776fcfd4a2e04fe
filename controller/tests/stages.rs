//! Recovery in stages against real haproxy on loopback: a primary and a backup demo service
//! behind it. Killing the primary (restarted 3 s later) makes haproxy fail over to the backup
//! once its health checks mark the primary DOWN (fall 2 × inter 100 ms), which is the
//! "failover" stage; full restore is the primary answering again.
#![allow(clippy::disallowed_methods)] // starts haproxy

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use gameday_test_support::{privileged, wait_for};

struct Haproxy(std::process::Child);

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn failover_and_full_restore_are_each_timed_against_their_own_rto() {
    if !privileged(&["haproxy"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (primary_dir, backup_dir) = (dir.path().join("primary"), dir.path().join("backup"));
    std::fs::create_dir_all(&primary_dir).unwrap();
    std::fs::create_dir_all(&backup_dir).unwrap();
    let (primary, backup, front) = (free_port(), free_port(), free_port());
    let _primary = supervised_service(&primary_dir, primary, "3s");
    let _backup = bare_service(&backup_dir, backup);
    let cfg = dir.path().join("haproxy.cfg");
    std::fs::write(
        &cfg,
        format!(
            "defaults\n  mode http\n  timeout connect 200ms\n  timeout client 2s\n  timeout server 2s\n\
             frontend fe\n  bind 127.0.0.1:{front}\n  default_backend be\n\
             backend be\n  option httpchk GET /\n\
             \x20 server primary 127.0.0.1:{primary} check inter 100ms fall 2 rise 2\n\
             \x20 server standby 127.0.0.1:{backup} check inter 100ms fall 2 rise 2 backup\n"
        ),
    )
    .unwrap();
    let _haproxy = Haproxy(
        Command::new("haproxy")
            .args(["-db", "-f"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .spawn()
            .expect("start haproxy"),
    );
    wait_for("haproxy to serve", Duration::from_secs(10), || {
        Command::new("curl")
            .args(["-sf", &format!("http://127.0.0.1:{front}/")])
            .output()
            .is_ok_and(|o| o.status.success())
    });

    let file = dir.path().join("staged.toml");
    std::fs::write(
        &file,
        format!(
            r#"name = "staged"
rto = "6s"
observe = "8s"
steady_state = "500ms"

[targets]
agents = ["local"]

[[faults]]
kind = "process_kill"
pid_file = "{pid}"

[[probes]]
name = "front"
kind = "http"
url = "http://127.0.0.1:{front}/"
interval = "20ms"
timeout = "500ms"
expect_body = "ok"

[[probes]]
name = "primary"
kind = "http"
url = "http://127.0.0.1:{primary}/"
interval = "20ms"
timeout = "500ms"
expect_body = "ok"

[[stages]]
name = "failover"
probes = ["front"]
rto = "1s"
"#,
            pid = primary_dir.join("service.pid").display()
        ),
    )
    .unwrap();
    let (code, report, stderr) = run_local(&file);
    let ctx = format!("stderr:\n{stderr}\nreport: {report:#}");
    assert_eq!(code, 0, "{ctx}");
    let run = &report["runs"][0];
    assert_eq!(run["verdict"], "PASS", "{ctx}");
    let stage = &run["stages"][0];
    assert_eq!(stage["name"], "failover", "{ctx}");
    assert_eq!(stage["verdict"], "PASS", "{ctx}");
    let failover = stage["time_to_recover"]["us"].as_u64().expect("reached");
    let full = run["grade"]["time_to_recover"]["us"]
        .as_u64()
        .expect("restored");
    eprintln!(
        "failover reached +{:.3}s, full restore +{:.3}s",
        failover as f64 / 1e6,
        full as f64 / 1e6
    );
    // haproxy marks the primary DOWN after two failed checks 100 ms apart: 100-200 ms after the
    // kill, plus up to a check's own latency; then the backup answers. 150 ms of slack for a
    // loaded machine and the probe's 20 ms period.
    assert!(
        (100_000..=450_000).contains(&failover),
        "failover +{failover} µs: {ctx}"
    );
    // The supervisor restarts the primary 3 s after it died; the demo service listens at once.
    assert!(
        (3_000_000..=3_600_000).contains(&full),
        "full restore +{full} µs: {ctx}"
    );
}
