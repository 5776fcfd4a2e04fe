//! Remediation steps against the real thing: a served controller, a real agent running a real
//! runbook script under its policy, and a runbook webhook served over HTTP on loopback. (The
//! step an alert starts is in `alerts.rs`, with Prometheus and Alertmanager.)
#![allow(clippy::disallowed_methods)] // starts the demo service, scripts and the CLI

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

/// A controller with `extra` config, one agent web-1 whose policy is `policy`, and a bare
/// demo service on a free port (down for good once killed, unless a step restarts it).
struct Stand {
    ctl: Controller,
    certs: Certs,
    port: u16,
    _service: ChildGuard,
    _agent: ChildGuard,
}

impl Stand {
    fn new(dir: &Path, extra: &str, policy: &str) -> Stand {
        let certs = Certs::init(&dir.join("pki"), &["web-1"], &["sre"]);
        let (ctl, _lines) = Controller::start_with_extra(dir, &certs, "5s", extra);
        let (cert, key) = certs.pair("agent", "web-1");
        let agent = ctl.agent_with(
            dir,
            "web-1",
            (&certs.ca(), &cert, &key),
            None,
            "role = \"web\"",
            policy,
        );
        wait_for("web-1 to register", Duration::from_secs(20), || {
            ctl.lists(&certs, "web-1")
        });
        let port = free_port();
        let service = bare_service(dir, port);
        Stand {
            ctl,
            certs,
            port,
            _service: service,
            _agent: agent,
        }
    }

    /// Runs a kill of the service with `steps` (TOML) added; exit code and JSON report.
    fn run(&self, dir: &Path, steps: &str) -> (i32, serde_json::Value, String) {
        let scenario = format!(
            r#"name = "remediated"
rto = "5s"
observe = "8s"
steady_state = "300ms"

[targets]
agents = ["web-1"]

[[faults]]
kind = "process_kill"
pid_file = "{pid}"

[[probes]]
name = "http"
kind = "http"
url = "http://127.0.0.1:{port}/"
interval = "20ms"
timeout = "500ms"

{steps}"#,
            pid = dir.join("service.pid").display(),
            port = self.port
        );
        let file = dir.join("remediated.toml");
        std::fs::write(&file, scenario).unwrap();
        self.ctl.run(&self.certs, &file)
    }
}

/// A step run by the agent 300 ms after the kill restarts the service: the run recovers
/// because of it, and its start, end, exit and output are on the record.
#[test]
fn an_agent_runs_the_runbook_script_and_its_times_and_output_land_on_the_timeline() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let _restarted = Restarted(d.to_path_buf());
    let script = d.join("restart-service");
    let policy = format!(
        "[policy.remediation]\ncommands = [\"{}\"]\n",
        script.display()
    );
    let stand = Stand::new(d, "", &policy);
    restart_script(d, "restart-service", stand.port);
    let (code, report, stderr) = stand.run(
        d,
        &format!(
            "[[remediation]]\nagent = \"web-1\"\nrun = [\"{}\"]\nwhen = \"300ms\"\ntimeout = \"10s\"\n",
            script.display()
        ),
    );
    let r = &report["runs"][0];
    assert_eq!(r["verdict"], "PASS", "{report:#}\n{stderr}");
    assert_eq!(code, 0);
    let step = &r["remediation_steps"][0];
    assert_eq!(step["name"], "restart-service");
    assert_eq!(step["place"], "agent web-1");
    assert_eq!(step["outcome"]["status"], "succeeded", "{step:#}");
    assert_eq!(step["outcome"]["how"], "exit 0");
    let output = step["output_tail"].as_str().unwrap();
    assert!(
        output.starts_with("restarted the service as pid ")
            && output.trim_end().ends_with(r["run_id"].as_str().unwrap()),
        "{output:?}"
    );
    let inject = r["inject"]["at_us"].as_u64().unwrap();
    let triggered = step["triggered_us"].as_u64().unwrap();
    let started = step["started"]["at_us"].as_u64().unwrap();
    let ended = step["ended"]["at_us"].as_u64().unwrap();
    assert_eq!(triggered, inject + 300_000);
    // Noticed at the observe loop's next look (≤ 20 ms), then a round trip to the agent.
    assert!(
        (triggered..triggered + 250_000).contains(&started),
        "started at +{started} µs, triggered at +{triggered} µs"
    );
    assert!(ended > started);
    // The service came back because of the step: after it started, by the time it ended
    // (the script waits until the service answers), plus a probe interval and slack.
    let recovered = inject + r["grade"]["time_to_recover"]["us"].as_u64().unwrap();
    assert!(
        recovered > started && recovered <= ended + 200_000,
        "recovered at +{recovered} µs; step +{started}..+{ended} µs"
    );
    let remediation = &r["remediation"];
    assert_eq!(remediation["by"], "remediation step restart-service");
    assert_eq!(
        remediation["after_fault_us"].as_u64().unwrap(),
        started - inject
    );
    assert_eq!(report["summary"]["remediation_steps"]["succeeded"], 1);
    eprintln!(
        "step: triggered +{:.3}s, started +{:.3}s, ended +{:.3}s; recovered +{:.3}s after the fault",
        (triggered - inject) as f64 / 1e6,
        (started - inject) as f64 / 1e6,
        (ended - inject) as f64 / 1e6,
        (recovered - inject) as f64 / 1e6
    );

    // The text report of the stored run says the same.
    let (code, text, _) = stand
        .ctl
        .cli(&stand.certs, &["report", r["run_id"].as_str().unwrap()]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("remediation step:   restart-service on agent web-1 (+300ms after the fault): started +"),
        "{text}"
    );
    assert!(
        text.contains("remediation steps: 1 of 1 succeeded (100%)"),
        "{text}"
    );
}

/// A command the agent's policy does not list fails the run at preflight: nothing is
/// injected, and the error is the agent's own refusal.
#[test]
fn a_step_the_policy_does_not_allow_fails_preflight_and_nothing_is_injected() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let stand = Stand::new(
        d,
        "",
        "[policy.remediation]\ncommands = [\"/usr/local/bin/promote-replica\"]\n",
    );
    let (code, report, stderr) = stand.run(
        d,
        "[[remediation]]\nagent = \"web-1\"\nrun = [\"/usr/bin/rm\", \"-rf\", \"/srv\"]\nwhen = \"1s\"\n",
    );
    assert_eq!(code, 4, "{report:#}\n{stderr}");
    let error = report["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with(
            "preflight: remediation step rm would not run on web-1: refused by the agent's \
             policy: \"/usr/bin/rm\" is not in [policy.remediation] commands"
        ),
        "{report:#}"
    );
    assert!(report["runs"].as_array().unwrap().is_empty());
    // The service was never touched.
    assert!(std::net::TcpStream::connect(("127.0.0.1", stand.port)).is_ok());
}

/// What a runbook endpoint received: the request line, headers and body.
type Received = Arc<Mutex<Vec<String>>>;

/// A runbook endpoint on loopback answering every POST with `status` and `body`; it records
/// what it received.
fn runbook_endpoint(status: u16, body: &'static str) -> (u16, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let received: Received = Arc::default();
    let seen = received.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut head = String::new();
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                head.push_str(&line);
            }
            let mut payload = vec![0; length];
            let _ = reader.read_exact(&mut payload);
            seen.lock()
                .unwrap()
                .push(format!("{head}\n{}", String::from_utf8_lossy(&payload)));
            let _ = write!(
                conn,
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, received)
}

/// A step that calls the team's runbook automation: the controller POSTs the run's facts
/// with the bearer token from its config, and the answer decides the step's outcome.
#[test]
fn a_runbook_webhook_step_posts_the_run_and_its_answer_decides_the_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ok_port, ok_seen) = runbook_endpoint(200, "promotion queued as job 77");
    let (bad_port, _) = runbook_endpoint(500, "runner offline");
    std::fs::write(d.join("runbook.token"), "rb-t0ken\n").unwrap();
    let extra = format!(
        "[runbooks.promote]\nurl = \"http://127.0.0.1:{ok_port}/hooks/promote?key=secret\"\ntoken_file = \"runbook.token\"\n\
         [runbooks.broken]\nurl = \"http://127.0.0.1:{bad_port}/hooks/x\"\n"
    );
    let stand = Stand::new(d, &extra, "");
    let _restarted = Restarted(d.to_path_buf());
    // The service stays down: the window runs out, and the verdict says the service never
    // came back; the step's own outcome is what this test reads.
    let (_, report, stderr) = stand.run(
        d,
        "[[remediation]]\nwebhook = \"promote\"\nwhen = \"100ms\"\n",
    );
    let r = &report["runs"][0];
    let step = &r["remediation_steps"][0];
    assert_eq!(
        step["outcome"]["status"], "succeeded",
        "{report:#}\n{stderr}"
    );
    assert_eq!(step["outcome"]["how"], "HTTP 200");
    assert_eq!(step["output_tail"], "promotion queued as job 77");
    assert_eq!(
        step["command"],
        "POST http://127.0.0.1:{ok_port}/...".replace("{ok_port}", &ok_port.to_string())
    );
    let seen = ok_seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "called once: {seen:#?}");
    let request = &seen[0];
    assert!(
        request.starts_with("POST /hooks/promote?key=secret HTTP/1.1"),
        "{request}"
    );
    assert!(
        request.contains("authorization: Bearer rb-t0ken")
            || request.contains("Authorization: Bearer rb-t0ken"),
        "{request}"
    );
    let body: serde_json::Value = serde_json::from_str(
        request
            .split("\r\n\n")
            .nth(1)
            .or(request.split("\n\n").nth(1))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(body["run_id"], r["run_id"]);
    assert_eq!(body["step"], "promote");
    assert_eq!(body["scenario"], "remediated");
    assert!(body["fault_unix_ms"].as_u64().unwrap() > 0);

    // A 500 fails the step, and with it the run.
    let service = bare_service(d, stand.port);
    let (_, report, stderr) = stand.run(
        d,
        "[[remediation]]\nwebhook = \"broken\"\nwhen = \"100ms\"\n",
    );
    drop(service);
    let r = &report["runs"][0];
    let step = &r["remediation_steps"][0];
    assert_eq!(step["outcome"]["status"], "failed", "{report:#}\n{stderr}");
    assert_eq!(step["outcome"]["how"], "HTTP 500");
    assert_eq!(step["output_tail"], "runner offline");
    assert_eq!(r["verdict"], "FAIL");

    // A runbook the config does not name is refused at preflight.
    let service = bare_service(d, stand.port);
    let (code, report, _) = stand.run(
        d,
        "[[remediation]]\nwebhook = \"pagerduty\"\nwhen = \"100ms\"\n",
    );
    drop(service);
    assert_eq!(code, 4);
    assert_eq!(
        report["error"],
        "preflight: remediation step pagerduty: no runbook \"pagerduty\" in the controller's config (runbooks: broken, promote)"
    );
}
