//! The outcomes of `gameday run --local` other than a clean PASS, each with its exit code, and
//! the promise behind it: nothing is injected when a run cannot be measured or cannot start.
//!
//! Exit codes (see `report::exit`): 0 ok, 1 breach, 2 invalid input, 3 inconclusive or aborted,
//! 4 infrastructure (agent missing, fault refused or not applied).
// Integration tests start the real binaries, services and helper processes.
#![allow(clippy::disallowed_methods)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

/// A scenario with run_outcomes' timing: 300 ms of steady state, a 1 s RTO observed for 2 s.
fn quick(name: &str) -> ScenarioBuilder {
    ScenarioBuilder::new(name)
        .rto("1s")
        .observe("2s")
        .steady_state("300ms")
}

fn write(dir: &Path, file: &str, text: &str) -> PathBuf {
    let path = dir.join(file);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn service_that_never_comes_back_fails_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut service = bare_service(dir.path(), port);
    let pid = service.pid();
    let file = quick("gone")
        .agents(["local"])
        .fault(FaultBuilder::kill(dir.path().join("service.pid")))
        .probe(demo_http_probe(port))
        .write(dir.path().join("gone.toml"));
    let (code, report, stderr) = run_local(&file);
    let ctx = format!("stderr:\n{stderr}\nreport: {report:#}");
    assert_eq!(code, 1, "a service that stays down is an RTO breach; {ctx}");
    let run = &report["runs"][0];
    assert_eq!(run["verdict"], "FAIL", "{ctx}");
    let reason = run["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("did not recover"),
        "reason {reason:?}; {ctx}"
    );
    let detect = &run["grade"]["time_to_detect"];
    assert!(
        detect["us"].as_u64().is_some(),
        "time_to_detect is reported; {ctx}"
    );
    assert!(
        run["grade"]["time_to_recover"].is_null(),
        "no recovery time; {ctx}"
    );
    let pids: Vec<i64> = run["faults"][0]["pids"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p.as_i64()).collect())
        .unwrap_or_default();
    assert!(
        pids.contains(&i64::from(pid)),
        "pids {pids:?} must hold the service's {pid}; {ctx}"
    );
    assert!(
        !service.alive(),
        "the service was killed and nothing restarted it"
    );
}

#[test]
fn unhealthy_steady_state_is_inconclusive_and_injects_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut target, pid_file) = sleeper(dir.path());
    // Nothing listens here: the steady state cannot be healthy.
    let dead_port = free_port();
    let file = quick("unsteady")
        .agents(["local"])
        .fault(FaultBuilder::kill(&pid_file))
        .probe(
            ProbeBuilder::tcp("port", format!("127.0.0.1:{dead_port}"))
                .interval("10ms")
                .timeout("200ms"),
        )
        .write(dir.path().join("unsteady.toml"));
    let (code, report, stderr) = run_local(&file);
    let ctx = format!("stderr:\n{stderr}\nreport: {report:#}");
    assert_eq!(code, 3, "an unhealthy steady state is inconclusive; {ctx}");
    let run = &report["runs"][0];
    assert_eq!(run["verdict"], "INCONCLUSIVE", "{ctx}");
    assert_eq!(
        run["faults"].as_array().map(Vec::len),
        Some(0),
        "no fault was sent; {ctx}"
    );
    assert!(run["inject"].is_null(), "nothing was injected; {ctx}");
    assert!(target.alive(), "the fault target must be untouched; {ctx}");
}

#[test]
fn absent_agent_is_an_error_before_anything_is_injected() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _service = bare_service(dir.path(), port);
    let (mut target, pid_file) = sleeper(dir.path());
    let file = quick("ghost")
        .agents(["ghost"])
        .fault(FaultBuilder::kill(&pid_file))
        .probe(demo_http_probe(port))
        .write(dir.path().join("ghost.toml"));
    let (code, report, stderr) = run_local(&file);
    let ctx = format!("stderr:\n{stderr}\nreport: {report:#}");
    assert_eq!(
        code, 4,
        "a missing agent is an infrastructure failure; {ctx}"
    );
    let error = report["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("ghost") && error.contains("not connected"),
        "error {error:?} must name the agent and say it is not connected; {ctx}"
    );
    assert_eq!(
        report["runs"].as_array().map(Vec::len),
        Some(0),
        "no run started; {ctx}"
    );
    assert!(target.alive(), "the fault target must be untouched; {ctx}");
}

#[test]
fn policy_refuses_pid_1_and_nothing_is_injected() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut service = bare_service(dir.path(), port);
    let pid_file = write(dir.path(), "init.pid", "1\n");
    let file = quick("init")
        .agents(["local"])
        .fault(FaultBuilder::kill(&pid_file))
        .probe(demo_http_probe(port))
        .write(dir.path().join("init.toml"));
    let (code, report, stderr) = run_local(&file);
    let ctx = format!("stderr:\n{stderr}\nreport: {report:#}");
    assert_eq!(
        code, 4,
        "a refused fault is an infrastructure failure; {ctx}"
    );
    // The agent refuses it when preflight asks it to check the fault: before any run starts.
    let error = report["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("pid 1") && error.contains("would not be applied on local"),
        "preflight error {error:?} must name pid 1; {ctx}"
    );
    assert_eq!(
        report["runs"].as_array().map(Vec::len),
        Some(0),
        "nothing ran, so nothing was injected; {ctx}"
    );
    assert!(service.alive(), "the service was not touched; {ctx}");
}

/// A valid scenario; each case below breaks one line of it. Lines are numbered in the comments.
const VALID: &str = r#"name = "valid"
rto = "1s"
observe = "2s"
steady_state = "300ms"
repeat = 1

[targets]
agents = ["local"]

[[faults]]
kind = "process_kill"
pid_file = "/nonexistent/gameday-test.pid"

[[probes]]
name = "port"
kind = "tcp"
address = "127.0.0.1:9"
"#;

/// `gameday validate FILE` and `gameday run --local FILE` both exit 2 and name `FILE:LINE:COL:`.
fn assert_invalid_at(
    dir: &Path,
    case: &str,
    text: &str,
    line: usize,
    column: usize,
    message: &str,
) {
    let file = write(dir, &format!("{case}.toml"), text);
    let at = format!("{}:{line}:{column}: ", file.display());
    for args in [
        vec!["validate", file.to_str().unwrap()],
        vec!["run", "--local", file.to_str().unwrap()],
    ] {
        let out = gameday(&args, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{case}: `gameday {}` exits 2; stderr:\n{stderr}",
            args[0]
        );
        let reported: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains(&*file.to_string_lossy()))
            .collect();
        assert_eq!(
            reported.len(),
            1,
            "{case}: `gameday {}` reports exactly one error; stderr:\n{stderr}",
            args[0]
        );
        assert!(
            reported[0].starts_with(&at) && reported[0].contains(message),
            "{case}: `gameday {}` must report `{at}...{message}...`; stderr:\n{stderr}",
            args[0]
        );
    }
}

#[test]
fn invalid_scenarios_exit_2_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let valid = write(dir.path(), "valid.toml", VALID);
    let out = gameday(&["validate", valid.to_str().unwrap()], &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the base scenario is valid; stderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Line 5: an unknown top-level key, reported at the key itself.
    assert_invalid_at(
        dir.path(),
        "unknown-key",
        &VALID.replace("repeat = 1", "retries = 2"),
        5,
        1,
        "unknown field `retries`",
    );
    // Line 2: `rto = "fast"`, reported at the value (column 7 is its opening quote).
    assert_invalid_at(
        dir.path(),
        "bad-duration",
        &VALID.replace("rto = \"1s\"", "rto = \"fast\""),
        2,
        7,
        "invalid duration \"fast\"",
    );
    // Line 11: an unknown fault kind, reported at the kind's value (column 8).
    assert_invalid_at(
        dir.path(),
        "unknown-fault",
        &VALID.replace("kind = \"process_kill\"", "kind = \"meteor_strike\""),
        11,
        8,
        "unknown fault kind \"meteor_strike\"",
    );
    // Line 7: `[targets]` with nothing in it, reported at its header.
    assert_invalid_at(
        dir.path(),
        "empty-targets",
        &VALID.replace("agents = [\"local\"]\n", ""),
        7,
        1,
        "empty targets",
    );
}

#[test]
fn demo_command_passes() {
    if let Err(e) = std::net::TcpListener::bind("127.0.0.1:18080") {
        panic!(
            "`gameday demo` needs 127.0.0.1:18080, which is taken ({e}); stop whatever listens there \
             (another `gameday demo`?) and run this test again"
        );
    }
    let (code, report, stderr) = report_of(gameday(&["demo", "--output", "json"], &[]));
    let ctx = format!("stderr:\n{stderr}\nreport: {report:#}");
    assert_eq!(code, 0, "the demo passes; {ctx}");
    let runs = report["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 3, "{ctx}");
    for run in runs {
        assert_eq!(run["verdict"], "PASS", "{ctx}");
        let us = run["grade"]["time_to_recover"]["us"]
            .as_u64()
            .expect("time_to_recover.us");
        assert!(
            (500_000..=2_000_000).contains(&us),
            "a 500ms restart delay recovers in 0.5s..2s, got {us} µs; {ctx}"
        );
    }
    // It ends by suggesting what to do next.
    let next = stderr
        .rfind("next: ")
        .map(|i| &stderr[i..])
        .unwrap_or_default();
    assert!(
        next.contains("gameday run --local my-scenario.toml"),
        "{ctx}"
    );
    // The demo stopped its service: the port is free again.
    wait_for(
        "the demo to release 127.0.0.1:18080",
        Duration::from_secs(10),
        || std::net::TcpStream::connect(("127.0.0.1", 18080)).is_err(),
    );
}

#[test]
fn a_missing_capability_fails_preflight_naming_the_host_and_the_kind() {
    // The local agent has no `[policy.disk_fill] paths`, so it does not advertise disk_fill.
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _service = bare_service(dir.path(), port);
    let file = quick("fill")
        .agents(["local"])
        .fault(
            FaultBuilder::new("disk_fill")
                .set("path", dir.path())
                .set("fill_to", 90),
        )
        .probe(demo_http_probe(port))
        .write(dir.path().join("fill.toml"));
    let (code, report, stderr) = run_local(&file);
    let ctx = format!("stderr:\n{stderr}\nreport: {report:#}");
    assert_eq!(
        code, 4,
        "a missing capability is an infrastructure failure; {ctx}"
    );
    let error = report["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("disk_fill is not available on local")
            && error.contains("the agent's policy forbids it")
            && error.contains("policy.disk_fill.paths is empty"),
        "error {error:?} must name the kind, the host and why; {ctx}"
    );
    assert_eq!(report["runs"].as_array().map(Vec::len), Some(0), "{ctx}");
}

#[test]
fn the_local_agent_takes_its_policy_from_agent_policy() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut service = bare_service(dir.path(), port);
    let pid_file = dir.path().join("service.pid");
    let file = quick("kill")
        .agents(["local"])
        .fault(FaultBuilder::kill(&pid_file))
        .probe(demo_http_probe(port))
        .write(dir.path().join("kill.toml"));
    let policy = write(
        dir.path(),
        "policy.toml",
        "[policy.process_kill]\ndeny = [\"demo-service\"]\n",
    );
    let out = gameday(
        &[
            "run",
            "--local",
            "--output",
            "json",
            "--agent-policy",
            policy.to_str().unwrap(),
            file.to_str().unwrap(),
        ],
        &[],
    );
    let (code, report, stderr) = report_of(out);
    let ctx = format!("stderr:\n{stderr}\nreport: {report:#}");
    assert_eq!(code, 4, "{ctx}");
    // Refused when preflight asked the agent to check the fault, before anything ran.
    let error = report["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("denied by policy rule `demo-service`"),
        "{ctx}"
    );
    assert!(service.alive(), "{ctx}");

    let bad = write(
        dir.path(),
        "bad.toml",
        "[policy]\nallow_faults = [\"teleport\"]\n",
    );
    let out = gameday(
        &[
            "run",
            "--local",
            "--agent-policy",
            bad.to_str().unwrap(),
            file.to_str().unwrap(),
        ],
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("teleport") && stderr.contains("before registering"),
        "{stderr}"
    );
}

#[test]
fn revert_on_recovery_ends_a_holding_fault_as_soon_as_the_service_is_back() {
    // Kill the supervised service (it is back after ~300 ms) while pausing a bystander for a
    // long time: with `revert = "on_recovery"` the pause ends with the recovery, not after 30s.
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _service = supervised_service(dir.path(), port, "300ms");
    let (mut bystander, bystander_pid) = sleeper(dir.path());
    let file = ScenarioBuilder::new("on-recovery")
        .rto("2s")
        .observe("40s")
        .steady_state("300ms")
        .revert("on_recovery")
        .agents(["local"])
        .fault(FaultBuilder::kill(dir.path().join("service.pid")))
        .fault(FaultBuilder::pause(&bystander_pid, "30s"))
        .probe(demo_http_probe(port))
        .write(dir.path().join("on_recovery.toml"));
    let started = std::time::Instant::now();
    let (code, report, stderr) = run_local(&file);
    let ctx = format!("stderr:\n{stderr}\nreport: {report:#}");
    assert_eq!(code, 0, "{ctx}");
    assert!(started.elapsed() < Duration::from_secs(15), "{ctx}");
    let run = &report["runs"][0];
    let inject = run["inject"]["at_us"].as_u64().unwrap();
    let recovered = run["grade"]["time_to_recover"]["us"].as_u64().unwrap();
    let reverted = run["revert_us"].as_u64().expect("the pause was reverted");
    assert!(
        reverted >= inject + recovered && reverted < inject + recovered + 1_000_000,
        "reverted at +{} µs, recovered at +{recovered} µs after the fault; {ctx}",
        reverted - inject
    );
    assert!(!stopped(bystander.pid()) && bystander.alive(), "{ctx}");
}

/// A pause of the service held 600 ms with a 3 s RTO: the service is back right after the
/// revert, well within the RTO, but it did not heal; it only came back because the fault was
/// lifted.
fn pause_only(dir: &Path, port: u16) -> ScenarioBuilder {
    ScenarioBuilder::new("pause-only")
        .rto("3s")
        .observe("4s")
        .steady_state("300ms")
        .agents(["local"])
        .fault(FaultBuilder::pause(dir.join("service.pid"), "600ms"))
        .probe(demo_http_probe(port))
}

#[test]
fn a_service_back_only_after_the_revert_fails_even_within_the_rto() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _service = bare_service(dir.path(), port);
    let file = pause_only(dir.path(), port).write(dir.path().join("pause.toml"));
    let (code, report, stderr) = run_local(&file);
    let ctx = format!("stderr:\n{stderr}\nreport: {report:#}");
    assert_eq!(code, 1, "{ctx}");
    let run = &report["runs"][0];
    assert_eq!(run["verdict"], "FAIL", "{ctx}");
    assert_eq!(run["met_expectation"], false, "{ctx}");
    assert!(
        run["reason"]
            .as_str()
            .unwrap_or_default()
            .starts_with("recovered only after the fault was reverted ("),
        "{ctx}"
    );
    let recovered = run["grade"]["time_to_recover"]["us"].as_u64().unwrap();
    assert!(recovered < 3_000_000, "within the RTO all the same; {ctx}");
    assert!(
        run["grade"]["recover_after_revert_us"].as_u64().is_some(),
        "{ctx}"
    );
    assert_eq!(report["summary"]["verdict"], "FAIL", "{ctx}");
    // Probes keep sampling after the recovery, up to the RTO line at least.
    let inject = run["inject"]["at_us"].as_u64().unwrap();
    let last = run["probes"][0]["samples"]
        .as_array()
        .and_then(|s| s.last())
        .and_then(|s| s["end_us"].as_u64())
        .unwrap();
    // (within a probe interval and a tick of it)
    assert!(
        last + 50_000 >= inject + 3_000_000,
        "sampled up to the RTO line: last answer at +{} µs; {ctx}",
        last - inject
    );

    // The same game day, saying that coming back after the revert is what it measures.
    let file = pause_only(dir.path(), port)
        .recovery("after_revert")
        .write(dir.path().join("pause-after.toml"));
    let (code, report, stderr) = run_local(&file);
    let ctx = format!("stderr:\n{stderr}\nreport: {report:#}");
    assert_eq!(code, 0, "{ctx}");
    assert_eq!(report["runs"][0]["verdict"], "PASS", "{ctx}");
}

#[test]
fn impact_where_none_was_expected_is_a_fail_in_every_view() {
    use gameday::render::{render, Format, ReportInput};
    use gameday::report::ScenarioReport;

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _service = supervised_service(dir.path(), port, "300ms");
    let file = ScenarioBuilder::new("not-redundant")
        .rto("2s")
        .observe("4s")
        .steady_state("300ms")
        .expect("no_impact")
        .agents(["local"])
        .fault(FaultBuilder::kill(dir.path().join("service.pid")))
        .probe(demo_http_probe(port))
        .write(dir.path().join("redundant.toml"));
    let (code, json, stderr) = run_local(&file);
    let ctx = format!("stderr:\n{stderr}\nreport: {json:#}");
    assert_eq!(code, 1, "{ctx}");
    let run = &json["runs"][0];
    assert_eq!(run["verdict"], "FAIL", "never a PASS; {ctx}");
    assert_eq!(run["met_expectation"], false, "{ctx}");
    assert!(
        run["reason"]
            .as_str()
            .unwrap_or_default()
            .starts_with("impact where none was expected: probe http failed "),
        "{ctx}"
    );
    assert_eq!(json["summary"]["verdict"], "FAIL", "{ctx}");
    let report: ScenarioReport = serde_json::from_value(json.clone()).unwrap();
    let input = ReportInput::new(&report);
    let text = render(&input, Format::Text);
    assert!(
        text.contains("): FAIL — impact where none was expected"),
        "{text}"
    );
    assert!(
        text.contains("summary: FAIL — 0 of 1 graded run met"),
        "{text}"
    );
    let md = render(&input, Format::Markdown);
    assert!(
        md.contains("verdict **FAIL**") && md.contains("| **FAIL** |"),
        "{md}"
    );
    assert!(!md.contains("**PASS**"), "{md}");
    let html = render(&input, Format::Html);
    assert!(
        html.contains(r#"<span class="badge big o-1">FAIL</span>"#),
        "{html}"
    );
    assert!(!html.contains(">PASS<"), "{html}");
    let junit = render(&input, Format::Junit);
    assert!(junit.contains(r#"<failure type="IMPACT""#), "{junit}");
}

#[test]
fn validate_warns_about_a_fault_held_no_longer_than_the_rto() {
    let dir = tempfile::tempdir().unwrap();
    let file = pause_only(dir.path(), free_port()).write(dir.path().join("short.toml"));
    let out = gameday(&["validate", file.to_str().unwrap()], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "a warning is not an error; {stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{}: warning: fault 1 (process_pause) holds for 600ms, not longer than the RTO (3s)",
            file.display()
        )),
        "{stderr}"
    );
    let file = pause_only(dir.path(), free_port())
        .recovery("after_revert")
        .write(dir.path().join("after.toml"));
    let out = gameday(&["validate", file.to_str().unwrap()], &[]);
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("warning"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_fleet_scenario_runs_on_the_local_agent_with_target() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _service = supervised_service(dir.path(), port, "300ms");
    let pid_file = dir.path().join("service.pid");
    // A scenario written for the fleet: it targets web-1 by name and role, and spells the
    // signal the way `kill -s` does.
    let file = ScenarioBuilder::new("fleet-kill")
        .rto("3s")
        .observe("5s")
        .steady_state("300ms")
        .agents(["web-1"])
        .labels(&[("role", "web")])
        .fault(
            FaultBuilder::new("process_kill")
                .set("signal", "KILL")
                .set("pid_file", &pid_file),
        )
        .probe(
            ProbeBuilder::tcp("port", format!("127.0.0.1:{port}"))
                .interval("10ms")
                .timeout("200ms"),
        )
        .write(dir.path().join("fleet.toml"));
    let before = std::fs::read_to_string(&pid_file).unwrap();

    // Without --target the local agent is not what the scenario targets: preflight fails as
    // for any absent agent, nothing is injected, and a hint says what to add.
    let (code, report, stderr) = run_local(&file);
    assert_eq!(code, 4, "stderr:\n{stderr}");
    assert_eq!(
        report["runs"].as_array().map(Vec::len),
        Some(0),
        "{report:#}"
    );
    assert!(
        stderr.contains("hint: ") && stderr.contains("add `--target web-1`"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&pid_file).unwrap(), before);

    let out = gameday(
        &[
            "run",
            "--local",
            "--target",
            "web-1",
            "--output",
            "json",
            file.to_str().unwrap(),
        ],
        &[],
    );
    let (code, report, stderr) = report_of(out);
    let ctx = format!("stderr:\n{stderr}\nreport: {report:#}");
    assert_eq!(code, 0, "{ctx}");
    let run = &report["runs"][0];
    assert_eq!(run["verdict"], "PASS", "{ctx}");
    assert_eq!(run["targets"], serde_json::json!(["web-1"]), "{ctx}");
    assert!(
        run["faults"][0]["evidence"]
            .as_str()
            .unwrap_or_default()
            .contains("SIGKILL"),
        "{ctx}"
    );
    assert!(
        stderr.contains("the local agent stands in for \"web-1\""),
        "{ctx}"
    );
    assert!(stderr.contains("started by session:local"), "{ctx}");
}
