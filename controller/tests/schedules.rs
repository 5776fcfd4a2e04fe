//! Schedules end to end with the real binaries: a seconds cron fires on time and its webhook
//! (JSON, and Slack-style after a failed first attempt) carries the verdict; a restart follows
//! the missed-firing policy read from `schedules.json`; a firing outside its window is skipped
//! while one inside it reports a broken scenario file without stopping; a bad schedule stops
//! `gameday serve` with exit code 2; `gameday schedules` lists next and last runs.
// Integration tests start the real binaries, services and helper processes.
#![allow(clippy::disallowed_methods)]

mod common;

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use serde_json::Value;

/// A webhook receiver on loopback: records every POST body; answers 500 to the first
/// `fail_first` requests and 200 after.
struct Hook {
    url: String,
    bodies: Arc<Mutex<Vec<(Instant, Value)>>>,
    attempts: Arc<AtomicUsize>,
}

impl Hook {
    fn start(fail_first: usize) -> Hook {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://{}/hooks/T000/B000/secret",
            listener.local_addr().unwrap()
        );
        let bodies: Arc<Mutex<Vec<(Instant, Value)>>> = Default::default();
        let attempts = Arc::new(AtomicUsize::new(0));
        let (b, a) = (bodies.clone(), attempts.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let Some((request_line, body)) = read_request(&mut stream) else {
                    continue;
                };
                assert_eq!(request_line, "POST /hooks/T000/B000/secret HTTP/1.1");
                let n = a.fetch_add(1, Ordering::SeqCst);
                let status = if n < fail_first {
                    "500 Internal Server Error"
                } else {
                    let json: Value = serde_json::from_slice(&body).expect("a JSON body");
                    b.lock().unwrap().push((Instant::now(), json));
                    "200 OK"
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
            }
        });
        Hook {
            url,
            bodies,
            attempts,
        }
    }

    fn bodies(&self) -> Vec<(Instant, Value)> {
        self.bodies.lock().unwrap().clone()
    }

    fn count(&self) -> usize {
        self.bodies.lock().unwrap().len()
    }
}

/// The request line and body of one HTTP/1.1 request.
fn read_request(stream: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let length: usize = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let line = head.lines().next().unwrap_or_default().to_string();
    Some((line, buf[head_end..head_end + length].to_vec()))
}

/// A scenario pausing the demo service of `dir` (its `service.pid`) for 500 ms.
fn pause_scenario(dir: &Path, name: &str, port: u16) -> PathBuf {
    ScenarioBuilder::new(name)
        .rto("3s")
        .recovery("after_revert")
        .steady_state("200ms")
        .observe("5s")
        .agents(["web-1"])
        .fault(FaultBuilder::pause(dir.join("service.pid"), "500ms"))
        .probe(
            demo_http_probe(port)
                .interval("20ms")
                .timeout("100ms")
                .recovered_after(2),
        )
        .write(dir.join(format!("{name}.toml")))
}

/// A demo service in a directory of its own and a scenario pausing it.
fn paused_service(root: &Path, name: &str) -> (ChildGuard, PathBuf) {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let service = bare_service(&dir, port);
    (service, pause_scenario(&dir, name, port))
}

/// A controller, its operator and (optionally) agent `web-1`.
/// Fields drop in order: the agent and the controller stop before their directory goes.
struct Site {
    _agent: Option<ChildGuard>,
    controller: Controller,
    logs: Lines,
    certs: Certs,
    dir: tempfile::TempDir,
}

impl Site {
    fn certs(dir: &Path) -> Certs {
        Certs::init(&dir.join("pki"), &["web-1"], &["sre"])
    }

    fn start(dir: tempfile::TempDir, certs: Certs, schedules: &str, with_agent: bool) -> Site {
        let (controller, logs) = Controller::start_with_extra(dir.path(), &certs, "2s", schedules);
        let agent = with_agent.then(|| {
            let (cert, key) = certs.pair("agent", "web-1");
            controller.agent(dir.path(), "web-1", &certs.ca(), &cert, &key, "")
        });
        Site {
            _agent: agent,
            controller,
            logs,
            certs,
            dir,
        }
    }

    fn state(&self) -> Value {
        std::fs::read_to_string(state_file(self.dir.path()))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null)
    }

    fn logged(&self, needle: &str) -> bool {
        self.logs.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    /// `gameday schedules` as the operator: (exit code, stdout, stderr).
    fn schedules_cli(&self) -> (i32, String, String) {
        self.cli(&["schedules"])
    }

    /// `gameday ARGS` as the operator: (exit code, stdout, stderr).
    fn cli(&self, args: &[&str]) -> (i32, String, String) {
        self.controller.cli(&self.certs, args)
    }
}

fn state_file(dir: &Path) -> PathBuf {
    dir.join("controller-data").join("schedules.json")
}

fn schedule_toml(name: &str, scenario: &Path, cron: &str, extra: &str) -> String {
    format!(
        "\n[[schedules]]\nname = \"{name}\"\nscenario = \"{}\"\ncron = \"{cron}\"\n{extra}\n",
        scenario.display()
    )
}

fn time(v: &Value) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("a time: {v}")))
        .unwrap()
        .with_timezone(&chrono::Utc)
}

#[test]
fn a_seconds_cron_fires_on_time_and_its_webhooks_carry_the_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let certs = Site::certs(dir.path());
    let (_json_service, json_scenario) = paused_service(dir.path(), "pause-json");
    let (_slack_service, slack_scenario) = paused_service(dir.path(), "pause-slack");
    let json_hook = Hook::start(0);
    let slack_hook = Hook::start(1);
    let schedules = schedule_toml(
        "every-2s",
        &json_scenario,
        "*/2 * * * * *",
        &format!(
            "timezone = \"Europe/Paris\"\nwebhook = \"{}\"",
            json_hook.url
        ),
    ) + &schedule_toml(
        "slack-2s",
        &slack_scenario,
        "1-59/2 * * * * *",
        &format!(
            "webhook = \"{}\"\nwebhook_format = \"slack\"\nreport_url = \"https://reports.example.com/runs/{{run_id}}\"",
            slack_hook.url
        ),
    );
    let started = Instant::now();
    let site = Site::start(dir, certs, &schedules, true);

    // The first firing is at most 2 s away; it may come before the agent registered (then it
    // is an ERROR), but it comes, on an even second.
    wait_for("the first delivery", Duration::from_secs(10), || {
        json_hook.count() > 0
    });
    let (first_at, first) = json_hook.bodies()[0].clone();
    eprintln!("first delivery after {:?}: {first:#}", first_at - started);
    let slot = time(&first["slot"]);
    assert_eq!(slot.timestamp() % 2, 0, "{first:#}");
    assert_eq!(slot.timestamp_subsec_nanos(), 0, "{first:#}");
    let late = time(&first["started"]) - slot;
    assert!(
        late >= chrono::TimeDelta::zero() && late < chrono::TimeDelta::milliseconds(500),
        "started {late:?} after its slot"
    );
    assert_eq!(first["schedule"], "every-2s");
    assert_eq!(first["catch_up"], false);

    wait_for("a PASS delivery", Duration::from_secs(20), || {
        json_hook
            .bodies()
            .iter()
            .any(|(_, b)| b["verdicts"] == serde_json::json!(["PASS"]))
    });
    let bodies = json_hook.bodies();
    let (_, pass) = bodies
        .iter()
        .find(|(_, b)| b["verdicts"] == serde_json::json!(["PASS"]))
        .unwrap();
    assert_eq!(pass["event"], "finished", "{pass:#}");
    assert_eq!(pass["scenario"], "pause-json");
    assert_eq!(pass["file"], json_scenario.display().to_string());
    assert_eq!(pass["exit_code"], 0);
    assert_eq!(pass["result"], "ok");
    assert_eq!(pass["pass_rate"], 1.0);
    assert_eq!(pass["rto_us"], 3_000_000);
    let p50 = pass["recovery_p50_us"].as_u64().expect("a recovery p50");
    assert!((300_000..3_000_000).contains(&p50), "{pass:#}");
    assert_eq!(pass["recovery_max_us"], p50);
    let run_id = pass["run_ids"][0].as_str().unwrap();
    assert_eq!(pass["runs"][0]["run_id"], run_id);
    assert_eq!(pass["report"], format!("gameday report {run_id}"));
    // The history says which schedule started it.
    let (code, shown, err) = site.cli(&["runs", "show", run_id, "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    let shown: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["started_by"], "schedule:every-2s", "{shown:#}");

    // Never two runs of one schedule at once, even though a run outlasts the 2 s period.
    let mut spans: Vec<_> = bodies
        .iter()
        .map(|(_, b)| (time(&b["started"]), time(&b["finished"])))
        .collect();
    spans.sort();
    for w in spans.windows(2) {
        assert!(w[0].1 <= w[1].0, "overlapping runs: {spans:?}");
    }

    // Slack: `{"text": ...}` only, delivered on the second attempt after a 500.
    wait_for("a Slack PASS delivery", Duration::from_secs(20), || {
        slack_hook
            .bodies()
            .iter()
            .any(|(_, b)| b["text"].as_str().unwrap_or("").contains("PASS"))
    });
    let (_, slack) = slack_hook
        .bodies()
        .into_iter()
        .find(|(_, b)| b["text"].as_str().unwrap_or("").contains("PASS"))
        .unwrap();
    assert_eq!(slack.as_object().unwrap().len(), 1, "{slack:#}");
    let text = slack["text"].as_str().unwrap();
    assert!(text.contains("schedule `slack-2s`"), "{text}");
    assert!(text.contains("scenario *pause-slack*"), "{text}");
    assert!(
        text.contains("<https://reports.example.com/runs/run-"),
        "{text}"
    );
    assert!(
        slack_hook.attempts.load(Ordering::SeqCst) > slack_hook.count(),
        "the failed first attempt was retried"
    );

    // What the scheduler remembers.
    let state = site.state();
    let last = &state["schedules"]["every-2s"]["last_run"];
    assert!(last["started"].is_string(), "{state:#}");
    assert!(state["schedules"]["every-2s"]["handled_until"].is_string());
}

#[test]
fn gameday_schedules_lists_next_and_last_runs() {
    let dir = tempfile::tempdir().unwrap();
    let certs = Site::certs(dir.path());
    let scenario = dir.path().join("broken.toml");
    std::fs::write(&scenario, "name = \"broken\"\n").unwrap();
    let hook = Hook::start(0);
    let schedules = schedule_toml(
        "every-2s",
        &scenario,
        "*/2 * * * * *",
        &format!("webhook = \"{}\"", hook.url),
    ) + &schedule_toml(
        "monthly",
        &scenario,
        "0 10 1-7 * MON",
        "timezone = \"Europe/Paris\"\nwindow = { start = \"09:00\", end = \"17:00\" }\nmissed = \"run_once\"",
    );
    let site = Site::start(dir, certs, &schedules, false);
    wait_for("a firing", Duration::from_secs(10), || hook.count() > 0);
    let (code, out, err) = site.schedules_cli();
    eprintln!("gameday schedules:\n{out}{err}");
    assert_eq!(code, 0, "{out}{err}");
    let row = |name: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no row for {name} in\n{out}"))
            .to_string()
    };
    assert!(out.starts_with("NAME"), "{out}");
    let monthly = row("monthly");
    assert!(
        monthly.contains("Europe/Paris")
            && monthly.contains("09:00-17:00")
            && monthly.contains("run_once")
            && monthly.contains("T10:00:00+0")
            && monthly.contains(":00:00Z")
            && monthly.ends_with("never"),
        "{monthly}"
    );
    let every = row("every-2s");
    assert!(
        every.contains("UTC") && every.contains("any time"),
        "{every}"
    );
    assert!(
        every.contains("ERROR:") || every.contains("running since"),
        "{every}"
    );
    assert!(!out.contains("secret"), "webhook URLs stay secret: {out}");

    let (code, json, err) = site.cli(&["schedules", "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    let json: Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    let names: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names.len(), 2, "{json:#}");
    assert!(
        names.contains(&"monthly") && names.contains(&"every-2s"),
        "{json:#}"
    );
    let monthly = json
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "monthly")
        .unwrap();
    assert_eq!(monthly["timezone"], "Europe/Paris");
    assert_eq!(
        monthly["last_run_utc"],
        Value::Null,
        "never ran: {monthly:#}"
    );
}

/// The state a controller that last handled its slots on 2020-01-01 leaves behind.
fn old_state(dir: &Path, schedule: &str) {
    let data = dir.join("controller-data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("schedules.json"),
        format!(
            r#"{{"version": 1, "schedules": {{"{schedule}": {{"handled_until": "2020-01-01T00:00:00Z"}}}}}}"#
        ),
    )
    .unwrap();
}

#[test]
fn a_missed_yearly_slot_runs_once_at_startup_with_run_once() {
    let dir = tempfile::tempdir().unwrap();
    let certs = Site::certs(dir.path());
    let (_service, scenario) = paused_service(dir.path(), "pause-yearly");
    old_state(dir.path(), "yearly");
    let hook = Hook::start(0);
    let schedules = schedule_toml(
        "yearly",
        &scenario,
        "0 0 0 1 1 *",
        &format!("missed = \"run_once\"\nwebhook = \"{}\"", hook.url),
    );
    let site = Site::start(dir, certs, &schedules, true);

    wait_for("the catch-up run", Duration::from_secs(45), || {
        hook.count() > 0
    });
    let (_, body) = hook.bodies()[0].clone();
    assert_eq!(body["catch_up"], true, "{body:#}");
    assert_eq!(body["verdicts"], serde_json::json!(["PASS"]), "{body:#}");
    // The catch-up is for the latest missed slot: the 1st of January of this year.
    let year = chrono::Utc::now().format("%Y").to_string();
    assert_eq!(body["slot"], format!("{year}-01-01T00:00:00Z"), "{body:#}");

    // Exactly one, however many were missed.
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        assert_eq!(hook.count(), 1, "a second catch-up run");
        std::thread::sleep(Duration::from_millis(50));
    }
    let state = site.state();
    let yearly = &state["schedules"]["yearly"];
    assert_eq!(yearly["handled_until"], body["slot"], "{state:#}");
    assert_eq!(yearly["last_run"]["catch_up"], true, "{state:#}");
    assert_eq!(yearly["last_run"]["outcome"], "PASS", "{state:#}");
}

#[test]
fn a_missed_yearly_slot_is_skipped_with_skip() {
    let dir = tempfile::tempdir().unwrap();
    let certs = Site::certs(dir.path());
    let scenario = pause_scenario(dir.path(), "pause-skip", free_port());
    old_state(dir.path(), "yearly");
    let hook = Hook::start(0);
    let schedules = schedule_toml(
        "yearly",
        &scenario,
        "0 0 0 1 1 *",
        &format!("missed = \"skip\"\nwebhook = \"{}\"", hook.url),
    );
    let site = Site::start(dir, certs, &schedules, false);

    wait_for(
        "the missed slots to be acknowledged",
        Duration::from_secs(10),
        || {
            site.state()["schedules"]["yearly"]["last_skip"]["reason"]
                .as_str()
                .is_some_and(|r| r.contains("missed while the controller was down"))
        },
    );
    assert!(site.logged("policy is skip"), "the skip is logged");
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        assert_eq!(hook.count(), 0, "nothing runs before the next slot");
        std::thread::sleep(Duration::from_millis(50));
    }
    let state = site.state();
    assert!(
        time(&state["schedules"]["yearly"]["handled_until"])
            > time(&Value::from("2025-01-01T00:00:00Z")),
        "{state:#}"
    );
    assert!(
        state["schedules"]["yearly"]["last_run"].is_null(),
        "{state:#}"
    );
}

/// `HH:MM` (UTC) `offset_min` minutes from now.
fn utc_hhmm(offset_min: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let m = ((now / 60 + offset_min) % 1440 + 1440) % 1440;
    format!("{:02}:{:02}", m / 60, m % 60)
}

#[test]
fn a_firing_outside_its_window_is_skipped_and_a_broken_file_is_reported_inside_it() {
    let dir = tempfile::tempdir().unwrap();
    let certs = Site::certs(dir.path());
    let scenario = pause_scenario(dir.path(), "pause-window", free_port());
    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "name = \"broken\"\nrto = \"soon\"\n").unwrap();
    let outside = Hook::start(0);
    let inside = Hook::start(0);
    let schedules = schedule_toml(
        "outside",
        &scenario,
        "*/2 * * * * *",
        &format!(
            "webhook = \"{}\"\nwindow = {{ start = \"{}\", end = \"{}\" }}",
            outside.url,
            utc_hhmm(120),
            utc_hhmm(180)
        ),
    ) + &schedule_toml(
        "inside",
        &broken,
        "*/2 * * * * *",
        &format!(
            "webhook = \"{}\"\nwindow = {{ start = \"{}\", end = \"{}\" }}",
            inside.url,
            utc_hhmm(-60),
            utc_hhmm(60)
        ),
    );
    let site = Site::start(dir, certs, &schedules, false);

    wait_for(
        "the skip outside the window",
        Duration::from_secs(10),
        || {
            site.state()["schedules"]["outside"]["last_skip"]["reason"]
                .as_str()
                .is_some_and(|r| r.contains("outside its window"))
        },
    );
    assert!(site.logged("firing skipped: outside its window"));

    // Inside its window the broken file is reported at every firing, and firing goes on.
    wait_for("two error reports", Duration::from_secs(15), || {
        inside.count() >= 2
    });
    for (_, body) in inside.bodies() {
        assert_eq!(body["event"], "error", "{body:#}");
        assert_eq!(body["exit_code"], 2, "{body:#}");
        assert!(body["verdicts"].as_array().unwrap().is_empty());
        let error = body["error"].as_str().unwrap();
        assert!(
            error.contains("broken.toml") && error.contains("rto"),
            "{error}"
        );
    }
    assert_eq!(outside.count(), 0, "nothing is posted for a skipped firing");
    assert!(site.controller.guard.child.id() > 0);
    let state = site.state();
    assert!(
        state["schedules"]["inside"]["last_run"]["outcome"]
            .as_str()
            .unwrap()
            .starts_with("ERROR: "),
        "{state:#}"
    );
}

#[test]
fn a_bad_schedule_stops_serve_with_exit_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let certs = Site::certs(dir.path());
    let scenario = pause_scenario(dir.path(), "pause-bad", free_port());
    for (extra, expected) in [
        ("", "schedule \"bad\": invalid cron \"0 0 32 * *\""),
        ("timezone = \"Europe/Pariss\"", "unknown time zone"),
    ] {
        let cron = if extra.is_empty() {
            "0 0 32 * *"
        } else {
            "0 0 1 * *"
        };
        let config = dir.path().join("bad.toml");
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n\n[tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n{}",
                dir.path().join("data").display(),
                certs.ca().display(),
                certs.dir.join("controller.pem").display(),
                certs.dir.join("controller.key").display(),
                schedule_toml("bad", &scenario, cron, extra),
            ),
        )
        .unwrap();
        let out = gameday(&["serve", "--config", config.to_str().unwrap()], &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
        assert!(!stderr.contains("listening"), "nothing started: {stderr}");
    }
}
