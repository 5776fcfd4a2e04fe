//! Preflight asks every target to check every fault without applying it, so a mistake the
//! agent would refuse at injection (a forbidden process, a path outside its policy, a pattern
//! that matches no process today) fails the run before the steady-state wait, with the agent's
//! own message; and a kind the agent cannot apply says whether its policy forbids it.
//!
//! Every scenario here waits an hour in steady state: a run that reached it would not end
//! within the test's deadline.
// Integration tests start the real binaries, services and helper processes.
#![allow(clippy::disallowed_methods)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

/// A scenario whose `fault` targets the local agent, with an hour of steady state.
fn scenario(dir: &Path, fault: FaultBuilder) -> PathBuf {
    ScenarioBuilder::new("preflight")
        .rto("1s")
        .steady_state("1h")
        .observe("2s")
        .agents(["local"])
        .fault(fault)
        .probe(ProbeBuilder::tcp(
            "tcp",
            format!("127.0.0.1:{}", free_port()),
        ))
        .write(dir.join("scenario.toml"))
}

/// `gameday run --local FILE --agent-policy POLICY --output json`, which must end well before
/// the steady state would: exit code, report, stderr.
fn run_with_policy(file: &Path, policy: &str) -> (i32, serde_json::Value, String) {
    let policy_file = file.with_file_name("policy.toml");
    std::fs::write(&policy_file, policy).unwrap();
    let out = output_within(
        Command::new(gameday_bin())
            .args(["run", "--local", "--output", "json", "--agent-policy"])
            .arg(&policy_file)
            .arg(file)
            .env("GAMEDAY_AGENT_BIN", agent_bin()),
        Duration::from_secs(60),
    );
    report_of(out)
}

/// The run failed in preflight (exit 4, no run, nothing injected) with an error containing
/// every one of `parts`, and never reached the steady state.
fn assert_refused_in_preflight(
    (code, report, stderr): (i32, serde_json::Value, String),
    parts: &[&str],
) {
    let ctx = format!("stderr:\n{stderr}\nreport: {report:#}");
    assert_eq!(
        code, 4,
        "a preflight refusal is an infrastructure failure; {ctx}"
    );
    let error = report["error"].as_str().unwrap_or_default();
    for part in parts {
        assert!(
            error.contains(part),
            "error {error:?} must say {part:?}; {ctx}"
        );
    }
    assert_eq!(report["runs"].as_array().map(Vec::len), Some(0), "{ctx}");
    assert!(
        !stderr.contains("steady state for"),
        "the steady state must not have started; {ctx}"
    );
}

#[test]
fn a_forbidden_process_fails_preflight_before_the_steady_state() {
    let dir = tempfile::tempdir().unwrap();
    let (mut target, pid_file) = sleeper(dir.path());
    let file = scenario(dir.path(), FaultBuilder::kill(&pid_file));
    let result = run_with_policy(&file, "[policy.process_kill]\ndeny = [\"^sleep\"]\n");
    assert_refused_in_preflight(
        result,
        &[
            "fault process_kill would not be applied on local",
            "refused by the agent's policy",
            "is denied by policy rule `^sleep`",
        ],
    );
    assert!(target.alive(), "nothing was killed");
}

#[test]
fn a_pattern_matching_no_process_fails_preflight_before_the_steady_state() {
    let dir = tempfile::tempdir().unwrap();
    let file = scenario(
        dir.path(),
        FaultBuilder::new("process_kill").set("cmdline", "^gameday-no-such-process-[0-9]{40}$"),
    );
    assert_refused_in_preflight(
        run_with_policy(&file, ""),
        &[
            "fault process_kill would not be applied on local",
            "invalid: no process matches",
        ],
    );
}

#[test]
fn a_path_outside_the_policy_fails_preflight_before_the_steady_state() {
    let dir = tempfile::tempdir().unwrap();
    let allowed = dir.path().join("allowed");
    let other = dir.path().join("other");
    std::fs::create_dir_all(&allowed).unwrap();
    std::fs::create_dir_all(&other).unwrap();
    let file = scenario(
        dir.path(),
        FaultBuilder::new("disk_fill")
            .set("path", &other)
            .set("size", "1MiB")
            .set("duration", "1s"),
    );
    let policy = format!("[policy.disk_fill]\npaths = [\"{}\"]\n", allowed.display());
    assert_refused_in_preflight(
        run_with_policy(&file, &policy),
        &[
            "fault disk_fill would not be applied on local",
            "refused by the agent's policy",
        ],
    );
    assert_eq!(
        std::fs::read_dir(&other).unwrap().count(),
        0,
        "nothing was written"
    );
}

#[test]
fn a_kind_the_policy_does_not_allow_says_so_in_preflight() {
    let dir = tempfile::tempdir().unwrap();
    let (_target, pid_file) = sleeper(dir.path());
    let file = scenario(dir.path(), FaultBuilder::pause(&pid_file, "1s"));
    assert_refused_in_preflight(
        run_with_policy(&file, "[policy]\nallow_faults = [\"process_kill\"]\n"),
        &[
            "process_pause is not available on local",
            "the agent's policy forbids it",
            "policy.allow_faults does not list process_pause",
        ],
    );
}

#[test]
fn a_process_outside_the_policys_scopes_fails_preflight() {
    let dir = tempfile::tempdir().unwrap();
    let (mut target, pid_file) = sleeper(dir.path());
    let file = scenario(dir.path(), FaultBuilder::kill(&pid_file));
    // No process is in this cgroup, so the sleeper is outside every allowed scope.
    let policy = "[policy.process_kill]\nscopes = [\"cgroup:/gameday-no-such-cgroup\"]\n";
    assert_refused_in_preflight(
        run_with_policy(&file, policy),
        &[
            "fault process_kill would not be applied on local",
            "is outside every scope the policy allows",
        ],
    );
    assert!(target.alive(), "nothing was killed");
}
