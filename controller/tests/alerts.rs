//! The alert receiver and time to detect against the real thing: Prometheus scraping a
//! blackbox probe of the demo service, an alert rule, and Alertmanager delivering to the
//! controller with a bearer token over TLS; and crafted deliveries that must be refused or
//! ignored without changing anything.
#![allow(clippy::disallowed_methods)] // starts curl and the Prometheus stack

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use gameday_test_support::{privileged, FaultBuilder, ScenarioBuilder};

const TOKEN: &str = "s3cret-token-for-tests";

/// A served controller with the alert receiver on `alerts_port`, one agent (web-1) and an
/// operator (sre).
struct Room {
    ctl: Controller,
    certs: Certs,
    alerts_port: u16,
    token_file: PathBuf,
    _agent: ChildGuard,
}

impl Room {
    fn new(dir: &Path) -> Room {
        Room::with_policy(dir, "")
    }

    /// A room whose agent has `policy` (TOML) in its config.
    fn with_policy(dir: &Path, policy: &str) -> Room {
        let certs = Certs::init(&dir.join("pki"), &["web-1"], &["sre"]);
        let token_file = dir.join("alerts.token");
        std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
        let alerts_port = free_port();
        let extra = format!(
            "[alerts]\nlisten = \"127.0.0.1:{alerts_port}\"\ntoken_file = \"{}\"\n",
            token_file.display()
        );
        let (ctl, _lines) = Controller::start_with_extra(dir, &certs, "5s", &extra);
        let (cert, key) = certs.pair("agent", "web-1");
        let agent = ctl.agent_with(
            dir,
            "web-1",
            (&certs.ca(), &cert, &key),
            None,
            "role = \"web\"",
            policy,
        );
        let room = Room {
            ctl,
            certs,
            alerts_port,
            token_file,
            _agent: agent,
        };
        let env = room.env();
        let env: Vec<(&str, &Path)> = env.iter().map(|(k, v)| (*k, v.as_path())).collect();
        wait_for("web-1 to register", Duration::from_secs(20), || {
            room.ctl.agents(&env).1.contains("web-1")
        });
        room
    }

    fn env(&self) -> Vec<(&'static str, PathBuf)> {
        let (cert, key) = self.certs.pair("operator", "sre");
        self.ctl
            .operator_env(&self.certs.ca(), &cert, &key)
            .into_iter()
            .map(|(k, v)| (k, v.to_path_buf()))
            .collect()
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.alerts_port)
    }

    /// POSTs `body` to `path` with `auth` (curl arguments); the HTTP status and the body.
    fn post(&self, path: &str, body: &str, auth: &[&str]) -> (u16, String) {
        let out = Command::new("curl")
            .args(["-sS", "-o", "-", "-w", "\n%{http_code}", "--cacert"])
            .arg(self.certs.ca())
            .args(auth)
            .args([
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                body,
            ])
            .arg(self.url(path))
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }

    /// Runs `scenario` remotely, in the background; its JSON report when it ends.
    fn run(&self, dir: &Path, scenario: &str) -> std::thread::JoinHandle<serde_json::Value> {
        let file = dir.join(format!("s{}.toml", free_port()));
        std::fs::write(&file, scenario).unwrap();
        let url = self.ctl.url();
        let env = self.env();
        std::thread::spawn(move || {
            let env: Vec<(&str, &Path)> = env.iter().map(|(k, v)| (*k, v.as_path())).collect();
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
            let (_, report, stderr) = report_of(out);
            assert!(report.is_object(), "no report; stderr:\n{stderr}");
            report
        })
    }
}

/// A kill of the demo service (restarted `restart` later) watched by an HTTP probe, noticed by
/// an alert `{alertname="ServiceDown", service="demo"}` within `within`.
fn scenario(dir: &Path, port: u16, within: &str, observe: &str) -> String {
    format!(
        r#"name = "noticed"
rto = "{observe}"
observe = "{observe}"
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
interval = "50ms"
timeout = "500ms"

[detect]
alerts = {{ alertname = "ServiceDown", service = "demo" }}
within = "{within}"
expect_alert = true
"#,
        pid = dir.join("service.pid").display()
    )
}

fn am_body(name: &str, service: &str, starts_at: &str) -> String {
    format!(
        r#"{{"version":"4","status":"firing","receiver":"gameday","truncatedAlerts":0,"alerts":[{{"status":"firing","labels":{{"alertname":"{name}","service":"{service}"}},"annotations":{{"summary":"crafted"}},"startsAt":"{starts_at}","endsAt":"0001-01-01T00:00:00Z","generatorURL":"","fingerprint":"{name}{service}{starts_at}"}}]}}"#
    )
}

fn rfc3339(offset: chrono::Duration) -> String {
    (chrono::Utc::now() + offset).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn service_down(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
}

#[test]
fn refused_deliveries_change_nothing_and_ignored_alerts_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let room = Room::new(dir.path());
    let port = free_port();
    let _service = supervised_service(dir.path(), port, "200ms");
    let run = room.run(dir.path(), &scenario(dir.path(), port, "3s", "2s"));
    wait_for("the kill", Duration::from_secs(30), || service_down(port));

    let matching = am_body("ServiceDown", "demo", &rfc3339(chrono::Duration::zero()));
    let bearer = format!("Authorization: Bearer {TOKEN}");
    let token = ["-H", bearer.as_str()];
    let (agent_cert, agent_key) = room.certs.pair("agent", "web-1");
    let agent_tls = [
        "--cert".to_string(),
        agent_cert.display().to_string(),
        "--key".to_string(),
        agent_key.display().to_string(),
    ];
    let agent_tls: Vec<&str> = agent_tls.iter().map(String::as_str).collect();
    let cases: [(&str, &str, &[&str], u16, &str); 6] = [
        ("/alerts/alertmanager", &matching, &["-H", "Authorization: Bearer wrong"], 401, "wrong bearer token"),
        ("/alerts/alertmanager", &matching, &[], 401, "a bearer token or an operator certificate"),
        ("/alerts/alertmanager", &matching, &agent_tls, 403, "may not deliver alerts"),
        ("/alerts/alertmanager", "{\"alerts\": [", &token, 400, "not a valid alert payload"),
        ("/alerts/alertmanager", "{\"alerts\":[{\"labels\":{\"alertname\":\"ServiceDown\",\"service\":\"demo\"},\"startsAt\":\"soon\"}]}", &token, 400, "startsAt \"soon\""),
        ("/nowhere", &matching, &token, 404, "no endpoint at /nowhere"),
    ];
    for (path, body, auth, status, says) in cases {
        let (code, text) = room.post(path, body, auth);
        assert_eq!(code, status, "{path} {auth:?}: {text}");
        assert!(text.contains(says), "{path} {auth:?}: {text}");
    }
    // A certificate from another fleet fails the handshake, with a TLS alert saying so.
    let foreign = Certs::init(&dir.path().join("foreign"), &["web-9"], &[]);
    let (fcert, fkey) = foreign.pair("agent", "web-9");
    for _ in 0..4 {
        let out = Command::new("curl")
            .args(["-sS", "--cacert"])
            .arg(room.certs.ca())
            .arg("--cert")
            .arg(&fcert)
            .arg("--key")
            .arg(&fkey)
            .args(["--data-binary", &matching])
            .arg(room.url("/alerts/alertmanager"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "a foreign certificate is refused");
        assert!(err.contains("alert"), "the refusal is said: {err}");
    }
    // Accepted, but not what the scenario waits for: one from before the fault, one for
    // another service.
    let earlier = am_body("ServiceDown", "demo", &rfc3339(chrono::Duration::hours(-1)));
    assert_eq!(room.post("/alerts/alertmanager", &earlier, &token).0, 200);
    let other = am_body("ServiceDown", "billing", &rfc3339(chrono::Duration::zero()));
    assert_eq!(room.post("/alerts/alertmanager", &other, &token).0, 200);

    let report = run.join().unwrap();
    let r = &report["runs"][0];
    assert_eq!(r["verdict"], "FAIL", "{report:#}");
    let reason = r["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("unnoticed by monitoring: no alert matching {alertname=\"ServiceDown\", service=\"demo\"} within 3s"),
        "{reason}"
    );
    assert_eq!(r["detection"]["ignored_before"], 1, "{report:#}");
    assert_eq!(r["detection"]["ignored_unmatched"], 1, "{report:#}");

    // The same run noticed through the generic form, sent with an operator certificate.
    let run = room.run(dir.path(), &scenario(dir.path(), port, "10s", "2s"));
    wait_for("the second kill", Duration::from_secs(30), || {
        service_down(port)
    });
    let (op_cert, op_key) = room.certs.pair("operator", "sre");
    let generic =
        r#"{"alerts":[{"labels":{"alertname":"ServiceDown","service":"demo","severity":"page"}}]}"#;
    let op = [
        "--cert".to_string(),
        op_cert.display().to_string(),
        "--key".to_string(),
        op_key.display().to_string(),
    ];
    let op: Vec<&str> = op.iter().map(String::as_str).collect();
    let (code, text) = room.post("/alerts", generic, &op);
    assert_eq!((code, text.trim()), (200, "{\"accepted\":1}"));
    let report = run.join().unwrap();
    let r = &report["runs"][0];
    assert_eq!(r["verdict"], "PASS", "{report:#}");
    let alert = &r["detection"]["alert"];
    assert_eq!(alert["labels"]["severity"], "page", "{report:#}");
    assert!(
        alert["delivered_after_us"].as_u64().unwrap() < 10_000_000,
        "{report:#}"
    );
    assert!(
        alert["fired_after_us"].is_null(),
        "the generic form gave no start: {report:#}"
    );
    let _ = &room.token_file;
}

/// A process of the Prometheus stack, ended (by its pid) when dropped.
struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn daemon(dir: &Path, name: &str, program: &str, args: &[String]) -> Daemon {
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    Daemon(
        Command::new(program)
            .args(args)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {program}: {e}")),
    )
}

/// The team's monitoring on loopback: the blackbox exporter probing the demo service on
/// `port`, Prometheus scraping it and evaluating `ServiceDown` every second, and Alertmanager
/// (group_wait 1s) delivering to the room's receiver with its bearer token over TLS. Returns
/// once Prometheus has seen the service up, so an alert can only come from a fault after.
struct Monitoring {
    _daemons: [Daemon; 3],
}

impl Monitoring {
    fn start(d: &Path, room: &Room, port: u16) -> Monitoring {
        let (bb, am, prom) = (free_port(), free_port(), free_port());
        std::fs::write(
            d.join("blackbox.yml"),
            "modules:\n  http_2xx:\n    prober: http\n    timeout: 800ms\n",
        )
        .unwrap();
        std::fs::write(
            d.join("rules.yml"),
            r#"groups:
  - name: gameday
    interval: 1s
    rules:
      - alert: ServiceDown
        expr: probe_success{job="demo"} == 0
        labels: { service: demo }
        annotations: { summary: "the demo service does not answer" }
"#,
        )
        .unwrap();
        std::fs::write(
            d.join("prometheus.yml"),
            format!(
                r#"global: {{ scrape_interval: 1s, evaluation_interval: 1s, scrape_timeout: 900ms }}
rule_files: ["{rules}"]
alerting:
  alertmanagers: [{{ static_configs: [{{ targets: ["127.0.0.1:{am}"] }}] }}]
scrape_configs:
  - job_name: demo
    metrics_path: /probe
    params: {{ module: [http_2xx] }}
    static_configs: [{{ targets: ["http://127.0.0.1:{port}/"] }}]
    relabel_configs:
      - {{ source_labels: [__address__], target_label: __param_target }}
      - {{ target_label: __address__, replacement: "127.0.0.1:{bb}" }}
"#,
                rules = d.join("rules.yml").display()
            ),
        )
        .unwrap();
        std::fs::write(
            d.join("alertmanager.yml"),
            format!(
                r#"route: {{ receiver: gameday, group_wait: 1s, group_interval: 1s, repeat_interval: 1h }}
receivers:
  - name: gameday
    webhook_configs:
      - url: "{url}"
        send_resolved: true
        http_config:
          authorization: {{ credentials_file: "{token}" }}
          tls_config: {{ ca_file: "{ca}" }}
"#,
                url = room.url("/alerts/alertmanager"),
                token = room.token_file.display(),
                ca = room.certs.ca().display()
            ),
        )
        .unwrap();
        let s = |x: String| x;
        let blackbox = daemon(
            d,
            "blackbox",
            "prometheus-blackbox-exporter",
            &[
                s(format!(
                    "--config.file={}",
                    d.join("blackbox.yml").display()
                )),
                s(format!("--web.listen-address=127.0.0.1:{bb}")),
            ],
        );
        let alertmanager = daemon(
            d,
            "alertmanager",
            "prometheus-alertmanager",
            &[
                s(format!(
                    "--config.file={}",
                    d.join("alertmanager.yml").display()
                )),
                s(format!("--storage.path={}", d.join("am-data").display())),
                s(format!("--web.listen-address=127.0.0.1:{am}")),
                s("--cluster.listen-address=".into()),
            ],
        );
        let prometheus = daemon(
            d,
            "prometheus",
            "prometheus",
            &[
                s(format!(
                    "--config.file={}",
                    d.join("prometheus.yml").display()
                )),
                s(format!(
                    "--storage.tsdb.path={}",
                    d.join("prom-data").display()
                )),
                s(format!("--web.listen-address=127.0.0.1:{prom}")),
            ],
        );
        // Prometheus sees the service up before the fault, so the alert can only come from it.
        let up = format!(
            "http://127.0.0.1:{prom}/api/v1/query?query=probe_success%7Bjob%3D%22demo%22%7D%3D%3D1"
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !Command::new("curl")
            .args(["-sf", &up])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("\"value\""))
        {
            if std::time::Instant::now() > deadline {
                let logs = ["prometheus", "blackbox", "alertmanager"]
                    .map(|n| {
                        let log =
                            std::fs::read_to_string(d.join(format!("{n}.log"))).unwrap_or_default();
                        let tail: Vec<&str> = log.lines().rev().take(15).collect();
                        format!(
                            "--- {n}.log (last lines, newest first)\n{}",
                            tail.join("\n")
                        )
                    })
                    .join("\n");
                panic!("Prometheus did not see the service up within 60s\n{logs}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Monitoring {
            _daemons: [blackbox, alertmanager, prometheus],
        }
    }
}

/// The stack a monitoring test needs; false (and why) when it is missing outside CI.
fn monitoring_stack() -> bool {
    privileged(&[
        "curl",
        "prometheus",
        "prometheus-alertmanager",
        "prometheus-blackbox-exporter",
    ])
}

/// Prometheus scrapes a blackbox probe of the demo service every second and evaluates an alert
/// rule every second; Alertmanager (group_wait 1s) delivers to the controller with a bearer
/// token over TLS. The service is killed and stays down 6 s: the alert must fire within a
/// scrape and an evaluation of the kill, and be delivered within group_wait (and one more
/// evaluation for Prometheus to hand it over) of firing.
#[test]
fn alertmanager_delivers_and_time_to_detect_falls_where_the_intervals_say() {
    if !monitoring_stack() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let room = Room::new(d);
    let port = free_port();
    let _service = supervised_service(d, port, "6s");
    let _monitoring = Monitoring::start(d, &room, port);

    let report = room
        .run(d, &scenario(d, port, "30s", "10s"))
        .join()
        .unwrap();
    let r = &report["runs"][0];
    let logs = || {
        ["prometheus", "alertmanager"]
            .map(|n| std::fs::read_to_string(d.join(format!("{n}.log"))).unwrap_or_default())
            .join("\n")
    };
    assert_eq!(r["verdict"], "PASS", "{report:#}\n{}", logs());
    let alert = &r["detection"]["alert"];
    let fired = alert["fired_after_us"]
        .as_u64()
        .expect("Alertmanager gives startsAt");
    let delivered = alert["delivered_after_us"].as_u64().unwrap();
    eprintln!(
        "time to detect: fired +{:.3}s, delivered +{:.3}s after the fault",
        fired as f64 / 1e6,
        delivered as f64 / 1e6
    );
    assert_eq!(alert["labels"]["alertname"], "ServiceDown", "{report:#}");
    // The next scrape (≤ 1 s) sees the failure, the next evaluation (≤ 1 s) fires; Prometheus
    // stamps startsAt with the evaluation's time. 0.5 s for scheduling on a loaded machine.
    assert!(fired <= 2_500_000, "fired +{fired} µs: {report:#}");
    // Alertmanager holds a new group for group_wait (1 s) before the first delivery;
    // Prometheus hands the alert over right after the evaluation (and resends each second).
    let gap = delivered.saturating_sub(fired);
    assert!(
        (900_000..=3_000_000).contains(&gap),
        "delivered {gap} µs after firing: {report:#}"
    );
}

/// The game day's automation: the team's alert (Prometheus, Alertmanager) starts a runbook
/// step on the agent that brings the killed service back. The step starts when the alert
/// arrives, and its start, end and exit are on the run's timeline with the four timings.
#[test]
fn the_alert_starts_the_runbook_step_that_restores_the_service() {
    if !monitoring_stack() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let script = d.join("restart-service");
    let room = Room::with_policy(
        d,
        &format!(
            "[policy.remediation]\ncommands = [\"{}\"]\n",
            script.display()
        ),
    );
    let port = free_port();
    let _service = bare_service(d, port);
    let _restarted = Restarted(d.to_path_buf());
    restart_script(d, "restart-service", port);
    let _monitoring = Monitoring::start(d, &room, port);
    let scenario = format!(
        "{}\n[[remediation]]\nagent = \"web-1\"\nrun = [\"{}\"]\nwhen = \"alert\"\ntimeout = \"10s\"\n",
        scenario(d, port, "20s", "20s"),
        script.display()
    );
    let report = room.run(d, &scenario).join().unwrap();
    let r = &report["runs"][0];
    assert_eq!(r["verdict"], "PASS", "{report:#}");
    let inject = r["inject"]["at_us"].as_u64().unwrap();
    let delivered = inject
        + r["detection"]["alert"]["delivered_after_us"]
            .as_u64()
            .unwrap();
    let step = &r["remediation_steps"][0];
    assert_eq!(step["outcome"]["status"], "succeeded", "{report:#}");
    let triggered = step["triggered_us"].as_u64().unwrap();
    let started = step["started"]["at_us"].as_u64().unwrap();
    let ended = step["ended"]["at_us"].as_u64().unwrap();
    // The step's trigger is the alert's arrival; the observe loop looks every 50 ms.
    assert_eq!(triggered, delivered, "{report:#}");
    assert!(
        (delivered..delivered + 300_000).contains(&started),
        "alert delivered +{delivered} µs, step started +{started} µs"
    );
    let recovered = inject + r["grade"]["time_to_recover"]["us"].as_u64().unwrap();
    assert!(
        recovered > started && recovered <= ended + 300_000,
        "recovered +{recovered} µs, step +{started}..+{ended} µs"
    );
    let remediation = &r["remediation"];
    assert_eq!(remediation["by"], "remediation step restart-service");
    let after_alert = remediation["after_alert_us"].as_u64().unwrap();
    assert!(after_alert < 300_000, "{remediation:#}");
    let fired = r["detection"]["alert"]["fired_after_us"].as_u64().unwrap();
    eprintln!(
        "timeline after the fault: alert fired +{:.3}s, delivered +{:.3}s; step started +{:.3}s \
         ({:.0} ms after the alert), ended +{:.3}s; service restored +{:.3}s",
        fired as f64 / 1e6,
        (delivered - inject) as f64 / 1e6,
        (started - inject) as f64 / 1e6,
        after_alert as f64 / 1e3,
        (ended - inject) as f64 / 1e6,
        (recovered - inject) as f64 / 1e6
    );
}

/// The id of the run going on, from `gameday runs`.
fn running_run(room: &Room) -> Option<String> {
    let (code, out, _) = room.ctl.cli(&room.certs, &["runs", "--output", "json"]);
    let runs: serde_json::Value = serde_json::from_str(&out).ok().filter(|_| code == 0)?;
    runs.as_array()?
        .iter()
        .find(|r| r["status"] == "running")
        .and_then(|r| r["run_id"].as_str().map(str::to_string))
}

#[test]
fn people_and_runbooks_annotate_live_and_finished_runs() {
    let dir = tempfile::tempdir().unwrap();
    let room = Room::new(dir.path());
    let port = free_port();
    let _service = supervised_service(dir.path(), port, "200ms");
    let run = room.run(dir.path(), &scenario(dir.path(), port, "4s", "4s"));
    wait_for("the kill", Duration::from_secs(30), || service_down(port));
    let mut id = None;
    wait_for("the run to be listed", Duration::from_secs(10), || {
        id = running_run(&room);
        id.is_some()
    });
    let id = id.unwrap();
    let bearer = format!("Authorization: Bearer {TOKEN}");
    let token = ["-H", bearer.as_str()];
    let alert = r#"{"alerts":[{"labels":{"alertname":"ServiceDown","service":"demo"}}]}"#;
    assert_eq!(room.post("/alerts", alert, &token).0, 200);
    let (code, text) = room.post(
        "/remediation",
        &format!(r#"{{"run":"{id}","text":"runbook: restart demo"}}"#),
        &token,
    );
    assert_eq!((code, text.trim()), (200, "{\"recorded\":true}"));
    let (code, text) = room.post("/remediation", r#"{"run":"no-such-run"}"#, &token);
    assert_eq!(code, 404, "{text}");
    let (code, out, err) = room.ctl.cli(
        &room.certs,
        &[
            "annotate",
            &id,
            "--action-item",
            "the alert should page sooner",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with(&format!("annotated live run {id} as operator sre")),
        "{out}"
    );
    let (code, _, err) = room
        .ctl
        .cli(&room.certs, &["annotate", &id, "two\u{7}lines"]);
    assert_eq!(code, 2, "control characters are refused");
    assert!(err.contains("control character"), "{err}");

    let report = run.join().unwrap();
    let r = &report["runs"][0];
    assert_eq!(r["verdict"], "PASS", "{report:#}");
    let notes = r["annotations"].as_array().expect("annotations");
    assert_eq!(notes.len(), 2, "{report:#}");
    let remediation = &r["remediation"];
    assert_eq!(remediation["text"], "runbook: restart demo", "{report:#}");
    assert!(
        remediation["by"]
            .as_str()
            .unwrap()
            .starts_with("webhook 127.0.0.1"),
        "{report:#}"
    );
    assert!(remediation["after_alert_us"].is_u64(), "{report:#}");

    // After the run: a note on the finished run, and the history has all three.
    let (code, out, err) = room
        .ctl
        .cli(&room.certs, &["annotate", &id, "reviewed in the retro"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("annotated finished run"), "{out}");
    let (code, out, _) = room.ctl.cli(&room.certs, &["runs", "show", &id]);
    assert_eq!(code, 0);
    assert!(out.contains("  remediation start:  +"), "{out}");
    assert!(
        out.contains("(action item): the alert should page sooner"),
        "{out}"
    );
    assert!(out.contains("operator sre: reviewed in the retro"), "{out}");
    // The HTML and Markdown reports carry the timeline too, escaped.
    let (code, html, err) = room
        .ctl
        .cli(&room.certs, &["report", &id, "--output", "html"]);
    assert_eq!(code, 0, "{err}");
    for part in [
        "<th>monitoring</th><td>ServiceDown noticed it: start not given, delivered +",
        "<th>remediation start</th><td>+",
        "(action item): the alert should page sooner</td>",
        r#"<line class="event""#,
    ] {
        assert!(html.contains(part), "{part:?} missing from the HTML report");
    }
    let (code, md, _) = room
        .ctl
        .cli(&room.certs, &["report", &id, "--output", "markdown"]);
    assert_eq!(code, 0);
    assert!(md.contains("- note: +"), "{md}");
    let (code, _, err) = room
        .ctl
        .cli(&room.certs, &["annotate", "no-such-run", "hello"]);
    assert_eq!(code, 2);
    assert!(err.contains("no run \"no-such-run\""), "{err}");
}

/// A pause of the demo service held for people (`revert = "manual"`): it holds, healed or
/// not, until an operator says `gameday revert`, and the run measures recovery after it.
#[test]
fn a_fault_held_for_people_lasts_until_gameday_revert() {
    let dir = tempfile::tempdir().unwrap();
    let room = Room::new(dir.path());
    let port = free_port();
    let _service = supervised_service(dir.path(), port, "200ms");
    let text = format!(
        r#"name = "held"
rto = "5s"
observe = "10s"
steady_state = "300ms"
revert = "manual"
recovery = "after_revert"

[targets]
agents = ["web-1"]

[[faults]]
kind = "process_pause"
pid_file = "{pid}"

[[probes]]
name = "http"
kind = "http"
url = "http://127.0.0.1:{port}/"
interval = "50ms"
timeout = "300ms"
"#,
        pid = dir.path().join("service.pid").display()
    );
    let run = room.run(dir.path(), &text);
    let mut id = None;
    wait_for("the run to be listed", Duration::from_secs(10), || {
        id = running_run(&room);
        id.is_some()
    });
    let id = id.unwrap();
    // A request that hangs for a second (three of the probe's timeouts): the pause holds and
    // the probes have seen it.
    wait_for("the pause to bite", Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port))
            .and_then(|mut s| {
                use std::io::{Read, Write};
                s.set_read_timeout(Some(Duration::from_secs(1)))?;
                s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
                let mut b = [0u8; 1];
                s.read(&mut b)
            })
            .is_err()
    });
    let (code, out, err) = room.ctl.cli(&room.certs, &["revert", &id]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("reverts its faults now (asked by operator sre)"),
        "{out}"
    );
    let (code, _, err) = room.ctl.cli(&room.certs, &["revert", &id]);
    assert_eq!(code, 2, "asked twice");
    assert!(err.contains("already asked to revert"), "{err}");
    let report = run.join().unwrap();
    let r = &report["runs"][0];
    assert_eq!(r["verdict"], "PASS", "{report:#}");
    let revert_us = r["revert_us"].as_u64().unwrap();
    let inject_us = r["inject"]["at_us"].as_u64().unwrap();
    assert!(revert_us > inject_us, "{report:#}");
    let notes = r["annotations"].as_array().unwrap();
    assert!(
        notes
            .iter()
            .any(|n| n["text"] == "reverted the faults (gameday revert)"),
        "{report:#}"
    );
    let (code, _, err) = room.ctl.cli(&room.certs, &["revert", &id]);
    assert_eq!(code, 2, "the run has ended");
    assert!(err.contains("is going on"), "{err}");
}

/// A two-scenario game day with a pause for discussion: the session waits for `gameday
/// continue`, notes added meanwhile reach the combined report, and the report's HTML renders
/// in a real browser.
#[test]
fn a_session_pauses_for_people_and_hands_over_one_report() {
    if !privileged(&["chromium"]) {
        return;
    }
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let room = Room::new(d);
    let port = free_port();
    let _service = supervised_service(d, port, "200ms");
    let kill = |name: &str| {
        ScenarioBuilder::new(name)
            .rto("3s")
            .observe("3s")
            .steady_state("300ms")
            .agents(["web-1"])
            .fault(FaultBuilder::kill(d.join("service.pid")))
            .probe(demo_http_probe(port))
            .write(d.join(format!("{name}.toml")))
    };
    kill("first-kill");
    kill("second-kill");
    let session = d.join("day.toml");
    std::fs::write(
        &session,
        "name = \"December game day\"\n[[scenarios]]\nfile = \"first-kill.toml\"\npause_after = \"manual\"\n[[scenarios]]\nfile = \"second-kill.toml\"\n",
    )
    .unwrap();
    let html = d.join("day.html");
    let mut child = room
        .ctl
        .operator_command(
            &room.certs,
            &[
                "session",
                "run",
                session.to_str().unwrap(),
                "--html",
                html.to_str().unwrap(),
            ],
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut out, &mut text).unwrap();
        text
    });
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            eprintln!("[session] {line}");
            let _ = tx.send(line);
        }
    });
    let paused = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the session pauses after its first scenario");
        if line.contains("paused for discussion until") {
            break line;
        }
    };
    let id = paused
        .split_whitespace()
        .nth(1)
        .unwrap()
        .trim_end_matches(':')
        .to_string();
    let (_, runs, _) = room.ctl.cli(&room.certs, &["runs", "--output", "json"]);
    let runs: serde_json::Value = serde_json::from_str(&runs).unwrap();
    let first = runs[0]["run_id"].as_str().unwrap().to_string();
    let (code, out, err) = room.ctl.cli(
        &room.certs,
        &[
            "annotate",
            &first,
            "--action-item",
            "page <the> DB team sooner",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = room.ctl.cli(&room.certs, &["continue", &id]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("continues (by operator sre)"), "{out}");
    let (code, _, err) = room.ctl.cli(&room.certs, &["continue", &id]);
    assert_eq!(code, 2, "nothing is pausing now");
    assert!(err.contains("is pausing"), "{err}");
    let mut status = None;
    wait_for("the session to end", Duration::from_secs(60), || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    let stdout = reader.join().unwrap();
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{stdout}");
    assert!(
        stdout.starts_with(&format!("game day December game day ({id})")),
        "{stdout}"
    );
    assert!(stdout.contains("first-kill"), "{stdout}");
    assert!(stdout.contains("second-kill"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "action items:\n  - first-kill ({first}): page <the> DB team sooner — operator sre"
        )),
        "{stdout}"
    );
    // The page as a browser renders it.
    let dom = Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom"])
        .arg(format!("file://{}", html.display()))
        .output()
        .expect("chromium");
    let dom = String::from_utf8_lossy(&dom.stdout);
    for part in [
        "<h1>game day December game day</h1>",
        "<h3>Action items</h3>",
        "page &lt;the&gt; DB team sooner",
        "gameday report: first-kill",
        "gameday report: second-kill",
    ] {
        assert!(
            dom.contains(part),
            "{part:?} missing from the rendered page:\n{dom}"
        );
    }
}
