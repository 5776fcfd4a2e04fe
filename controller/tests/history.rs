//! Run history end to end with the real binaries: a served controller records a run that
//! `gameday runs` lists and `gameday runs show` reproduces exactly; a controller killed in the
//! middle of a run leaves it `interrupted` after a restart, with every sample recorded up to
//! the kill and none after.
// Integration tests start the real binaries, services and helper processes.
#![allow(clippy::disallowed_methods)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use serde_json::Value;

/// A controller, one agent (`web-1`) and an operator (`sre`) in a temp dir.
struct Fleet {
    dir: tempfile::TempDir,
    certs: Certs,
    _agent: ChildGuard,
}

impl Fleet {
    fn start() -> (Fleet, Controller) {
        let dir = tempfile::tempdir().unwrap();
        let certs = Certs::init(&dir.path().join("pki"), &["web-1"], &["sre"]);
        let controller = Controller::start(dir.path(), &certs, "2s");
        let (cert, key) = certs.pair("agent", "web-1");
        let agent = controller.agent(dir.path(), "web-1", &certs.ca(), &cert, &key, "");
        let fleet = Fleet {
            dir,
            certs,
            _agent: agent,
        };
        wait_for("web-1 to register", Duration::from_secs(15), || {
            controller.lists(&fleet.certs, "web-1")
        });
        (fleet, controller)
    }

    fn env(&self) -> Vec<(&'static str, PathBuf)> {
        let (cert, key) = self.certs.pair("operator", "sre");
        vec![
            ("GAMEDAY_CA", self.certs.ca()),
            ("GAMEDAY_CERT", cert),
            ("GAMEDAY_KEY", key),
        ]
    }

    /// `gameday ARGS --controller URL` as the operator: (exit code, stdout, stderr).
    fn cli(&self, controller: &Controller, args: &[&str]) -> (i32, String, String) {
        controller.cli(&self.certs, args)
    }

    /// `gameday runs ARGS --output json`, parsed.
    fn runs_json(&self, controller: &Controller, args: &[&str]) -> Vec<Value> {
        let mut all = vec!["runs", "--output", "json"];
        all.extend(args);
        let (code, out, err) = self.cli(controller, &all);
        assert_eq!(code, 0, "gameday runs {args:?}: {err}");
        serde_json::from_str::<Vec<Value>>(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    /// `gameday runs show RUN --output json`, parsed (Null when it fails).
    fn show_json(&self, controller: &Controller, run: &str) -> Value {
        let (code, out, _) = self.cli(controller, &["runs", "show", run, "--output", "json"]);
        if code != 0 {
            return Value::Null;
        }
        serde_json::from_str(&out).unwrap_or(Value::Null)
    }
}

fn ids(runs: &[Value]) -> Vec<&str> {
    runs.iter().filter_map(|r| r["run_id"].as_str()).collect()
}

fn samples(run: &Value) -> Vec<&Value> {
    run["probes"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["samples"].as_array().into_iter().flatten())
        .collect()
}

#[test]
fn a_served_run_is_recorded_listed_filtered_and_shown() {
    let (fleet, controller) = Fleet::start();
    let (code, agents, err) = fleet.cli(&controller, &["agents", "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    let agents: Value = serde_json::from_str(&agents).unwrap_or_else(|e| panic!("{e}: {agents}"));
    assert_eq!(agents[0]["name"], "web-1", "{agents:#}");
    assert!(agents[0]["capabilities"]
        .as_array()
        .is_some_and(|c| !c.is_empty()));
    assert_eq!(agents[0]["faults"], serde_json::json!([]), "{agents:#}");
    let service_dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _service = supervised_service(service_dir.path(), port, "300ms");
    let scenario = ScenarioBuilder::new("history-kill")
        .rto("3s")
        .repeat(2)
        .steady_state("300ms")
        .observe("6s")
        .agents(["web-1"])
        .fault(FaultBuilder::kill(service_dir.path().join("service.pid")))
        .probe(
            ProbeBuilder::tcp("port", format!("127.0.0.1:{port}"))
                .interval("10ms")
                .timeout("200ms"),
        );
    let text = scenario.to_toml();
    let file = scenario.write(fleet.dir.path().join("kill.toml"));

    let (code, out, err) = fleet.cli(
        &controller,
        &["run", "--output", "json", file.to_str().unwrap()],
    );
    assert_eq!(code, 0, "the run passes; stderr:\n{err}\n{out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let run = &report["runs"][0];
    let run_id = run["run_id"].as_str().unwrap().to_string();
    assert_eq!(run["verdict"], "PASS");
    // One invocation, its id printed first so the run can be aborted from elsewhere; run N's
    // id is the invocation's and -N.
    let invocation = run_id.strip_suffix("-1").expect("run 1 is INVOCATION-1");
    assert_eq!(report["runs"][1]["run_id"], format!("{invocation}-2"));
    let first = err.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(&format!(
            "{invocation}: 2 run(s) of \"history-kill\", started by operator:sre"
        )) && first.ends_with(&format!("abort with `gameday abort {invocation}`")),
        "{err}"
    );
    assert!(
        err.contains(&format!("run 1/2: {run_id} on web-1")),
        "{err}"
    );

    // The table.
    let (code, table, err) = fleet.cli(&controller, &["runs"]);
    assert_eq!(code, 0, "{err}");
    eprintln!("gameday runs:\n{table}");
    let header = table.lines().next().unwrap();
    for column in [
        "RUN",
        "SCENARIO",
        "#",
        "STARTED BY",
        "STATUS",
        "VERDICT",
        "STARTED",
        "RECOVERY",
        "RTO",
        "TEXT",
    ] {
        assert!(header.contains(column), "{table}");
    }
    let line = table
        .lines()
        .find(|l| l.starts_with(&run_id))
        .unwrap_or_else(|| panic!("{run_id} is listed:\n{table}"));
    for word in ["history-kill", "operator:sre", "finished", "PASS", "3.000s"] {
        assert!(line.contains(word), "{word} in {line:?}");
    }

    // JSON and filters: the repeats of the invocation together, in order.
    let all = fleet.runs_json(&controller, &[]);
    let second = format!("{invocation}-2");
    assert_eq!(ids(&all), [run_id.as_str(), second.as_str()]);
    assert_eq!(all[0]["index"], 1);
    assert_eq!(all[0]["status"], "finished");
    assert_eq!(all[0]["verdict"], "PASS");
    assert_eq!(all[0]["started_by"], "operator:sre");
    assert_eq!(all[1]["invocation"], invocation);
    assert_eq!(all[0]["rto_us"], 3_000_000);
    assert_eq!(
        all[0]["time_to_recover_us"],
        run["grade"]["time_to_recover"]["us"]
    );
    let listed = |args: &[&str]| fleet.runs_json(&controller, args).len();
    assert_eq!(listed(&["--verdict", "pass"]), 2);
    assert_eq!(listed(&["--verdict", "FAIL"]), 0);
    assert_eq!(listed(&["--scenario", "history-kill"]), 2);
    assert_eq!(listed(&["--scenario", "another"]), 0);
    assert_eq!(listed(&["--status", "running"]), 0);
    assert_eq!(listed(&["--since", "2000-01-01"]), 2);
    assert_eq!(listed(&["--since", "7d"]), 2);
    assert_eq!(listed(&["--until", "1d"]), 0);
    assert_eq!(listed(&["--until", "2000-01-01"]), 0);
    let (code, _, err) = fleet.cli(&controller, &["runs", "--verdict", "GREAT"]);
    assert_eq!(code, 2, "an unknown verdict is a usage error: {err}");

    // The scenario edited, run again: its history says the text changed, and since when.
    scenario.repeat(1).write(&file);
    let (code, out, err) = fleet.cli(
        &controller,
        &["run", "--output", "json", file.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
    let again: Value = serde_json::from_str(&out).unwrap();
    let edited_id = again["runs"][0]["run_id"].as_str().unwrap().to_string();
    let history = fleet.runs_json(&controller, &["--scenario", "history-kill"]);
    let changed: Vec<bool> = history
        .iter()
        .map(|r| r["scenario_changed"].as_bool().unwrap())
        .collect();
    assert_eq!(ids(&history)[0], edited_id);
    assert_eq!(changed, [true, false, false], "{history:#?}");
    let (_, table, _) = fleet.cli(&controller, &["runs", "--scenario", "history-kill"]);
    let edited_line = table.lines().find(|l| l.starts_with(&edited_id)).unwrap();
    assert!(edited_line.ends_with('*'), "{table}");
    assert!(table.contains("* the scenario's text changed"), "{table}");
    let (_, shown, _) = fleet.cli(&controller, &["runs", "show", &edited_id]);
    assert!(
        shown.contains(&format!("changed since its previous run, {second}")),
        "{shown}"
    );

    // The stored run is the report `gameday run` printed, samples and all.
    let shown = fleet.show_json(&controller, &run_id);
    assert_eq!(shown["status"], "finished");
    assert_eq!(&shown["run"], run, "the history keeps the run exactly");
    assert!(samples(&shown["run"]).len() > 10, "{shown:#}");
    assert_eq!(shown["scenario_toml"], text.as_str());
    assert_eq!(shown["scenario_sha256"].as_str().unwrap().len(), 64);

    let (code, human, err) = fleet.cli(&controller, &["runs", "show", &run_id]);
    assert_eq!(code, 0, "{err}");
    eprintln!("gameday runs show:\n{human}");
    assert!(human.starts_with("status: finished"), "{human}");
    assert!(human.contains("PASS"), "{human}");
    assert!(human.contains("time to recover"), "{human}");

    let (code, _, err) = fleet.cli(&controller, &["runs", "show", "run-nope"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no run"), "{err}");

    // `gameday report`: a run by id, and a scenario by name with its trend; -o is the format,
    // --out-file the file.
    let (code, junit, err) = fleet.cli(&controller, &["report", &run_id, "-o", "junit"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        junit.contains("<testsuites") && junit.contains(&run_id),
        "{junit}"
    );
    let html = fleet.dir.path().join("scenario.html");
    let (code, _, err) = fleet.cli(
        &controller,
        &[
            "report",
            "history-kill",
            "--output",
            "html",
            "--out-file",
            html.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("<svg") && page.contains("history-kill"),
        "an HTML report with plots"
    );
    assert_eq!(
        mode_of(&html),
        new_file_mode(fleet.dir.path()),
        "a report file gets the umask's mode"
    );
    // The old spelling of the format still works.
    let (code, md, err) = fleet.cli(&controller, &["report", "history-kill", "--format", "md"]);
    assert_eq!(code, 0, "{err}");
    assert!(md.contains("history-kill") && md.contains("PASS"), "{md}");
    let (code, _, err) = fleet.cli(&controller, &["report", "nothing-by-this-name"]);
    assert_eq!(code, 2, "{err}");

    // `gameday report RUN | head`: the reader goes away, the report ends quietly.
    let url = controller.url();
    let env = fleet.env();
    let env: Vec<(&str, &Path)> = env.iter().map(|(k, v)| (*k, v.as_path())).collect();
    let (code, stderr) = gameday_into_closed_pipe(
        &["report", &run_id, "-o", "html", "--controller", &url],
        &env,
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(code, Some(141), "{stderr}");
}

/// Samples of `run_id` in the database, read directly.
fn samples_in_db(db: &Path, run_id: &str) -> i64 {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    conn.query_row(
        "SELECT count(*) FROM samples WHERE run_id = ?1",
        [run_id],
        |r| r.get(0),
    )
    .unwrap()
}

#[test]
fn a_controller_killed_mid_run_leaves_the_run_interrupted_with_its_samples() {
    let (fleet, mut controller) = Fleet::start();
    let service_dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _service = bare_service(service_dir.path(), port);
    let target = sleeper(fleet.dir.path()).0;
    let file = ScenarioBuilder::new("long-pause")
        .rto("1s")
        .steady_state("200ms")
        .observe("60s")
        .agents(["web-1"])
        .fault(FaultBuilder::pause(
            fleet.dir.path().join("target.pid"),
            "60s",
        ))
        .probe(svc_probe(port))
        .write(fleet.dir.path().join("pause.toml"));
    let _run = ChildGuard {
        child: controller
            .operator_command(&fleet.certs, &["run"])
            .arg(&file)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start gameday run"),
        name: "run",
    };
    wait_for("the pause to take effect", Duration::from_secs(15), || {
        stopped(target.pid())
    });

    // The history shows the run as running, with its fault and samples, while it runs.
    let mut run_id = String::new();
    wait_for(
        "the run to be listed as running",
        Duration::from_secs(10),
        || {
            let running = fleet.runs_json(&controller, &["--status", "running"]);
            run_id = ids(&running)
                .first()
                .map(|s| s.to_string())
                .unwrap_or_default();
            !run_id.is_empty()
        },
    );
    let mut epoch_ns = 0;
    wait_for(
        "samples after the injection to be recorded",
        Duration::from_secs(10),
        || {
            let shown = fleet.show_json(&controller, &run_id);
            let run = &shown["run"];
            epoch_ns = run["epoch_monotonic_ns"].as_u64().unwrap_or(0);
            let inject = run["faults"][0]["applied"]["at_us"].as_u64();
            shown["status"] == "running"
                && inject.is_some_and(|at| {
                    samples(run)
                        .iter()
                        .any(|s| s["start_us"].as_u64().is_some_and(|t| t > at))
                })
        },
    );

    controller.kill();
    let killed_ns = gameday::timeline::monotonic_ns();
    let at_kill = samples_in_db(&history_db(fleet.dir.path()), &run_id);
    assert!(at_kill > 0);

    let controller = controller.restart(fleet.dir.path(), &fleet.certs, "2s");
    let all = fleet.runs_json(&controller, &[]);
    assert_eq!(ids(&all), [run_id.as_str()]);
    assert_eq!(all[0]["status"], "interrupted", "{all:#?}");
    assert!(all[0]["verdict"].is_null(), "never graded: {all:#?}");
    assert!(fleet
        .runs_json(&controller, &["--status", "running"])
        .is_empty());
    assert_eq!(
        fleet
            .runs_json(&controller, &["--status", "interrupted"])
            .len(),
        1
    );

    let shown = fleet.show_json(&controller, &run_id);
    assert_eq!(shown["status"], "interrupted", "{shown:#}");
    let run = &shown["run"];
    assert_eq!(run["reason"], "controller stopped during the run");
    assert!(run["faults"][0]["applied"]["at_us"].is_u64(), "{run:#}");
    let kept = samples(run);
    assert_eq!(kept.len() as i64, at_kill, "every sample up to the kill");
    let kill_us = (killed_ns - epoch_ns) / 1_000;
    for s in &kept {
        let end = s["end_us"].as_u64().unwrap();
        assert!(
            end <= kill_us,
            "sample ending at {end}µs after the kill at {kill_us}µs"
        );
    }
    let (code, human, err) = fleet.cli(&controller, &["runs", "show", &run_id]);
    assert_eq!(code, 0, "{err}");
    assert!(human.starts_with("status: interrupted"), "{human}");

    // The agent lost its controller and reverted the pause within its 3s lease.
    wait_for(
        "the agent to revert the pause",
        Duration::from_secs(10),
        || !stopped(target.pid()),
    );
}
