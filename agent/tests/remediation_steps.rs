//! Remediation steps against the real kernel: the runner starts real commands (`/bin/true`,
//! `/bin/sh`, `/bin/sleep`, `/usr/bin/touch`) under a policy the test writes, and the test
//! reads the reports a controller would get. Waits are on those reports, or polls with a
//! deadline; never a fixed sleep.

use std::path::Path;
use std::time::{Duration, Instant};

use gameday_agent::steps::{RemediationPolicy, StepRunner, OUTPUT_TAIL_BYTES};
use gameday_proto::v1::{agent_message, AgentMessage, FailureKind, RunStep, StepPhase, StepReport};
use tokio::sync::mpsc;

/// A runner under a policy, and the stream its reports go to.
struct Steps {
    runner: StepRunner,
    tx: mpsc::Sender<AgentMessage>,
    rx: mpsc::Receiver<AgentMessage>,
}

impl Steps {
    /// A runner under the `[policy.remediation]` table `policy`.
    fn new(policy: &str) -> Steps {
        let policy: RemediationPolicy = toml::from_str(policy).unwrap();
        policy.validate().unwrap();
        let (tx, rx) = mpsc::channel(64);
        Steps {
            runner: StepRunner::new(policy),
            tx,
            rx,
        }
    }

    fn submit(&self, step: RunStep) {
        self.runner.submit(step, Instant::now(), self.tx.clone());
    }

    /// The next report, within 20 s.
    async fn next(&mut self) -> StepReport {
        let msg = tokio::time::timeout(Duration::from_secs(20), self.rx.recv())
            .await
            .expect("a report within 20 s")
            .expect("the stream is open");
        match msg.msg {
            Some(agent_message::Msg::StepReport(report)) => report,
            other => panic!("not a step report: {other:?}"),
        }
    }

    /// Submits `step` and returns its STARTED report (which must not be a failure) and its
    /// ENDED one.
    async fn run(&mut self, step: RunStep) -> (StepReport, StepReport) {
        self.submit(step);
        let started = self.next().await;
        assert_eq!(started.phase(), StepPhase::Started, "{started:?}");
        assert_eq!(started.failure, None, "{started:?}");
        let ended = self.next().await;
        assert_eq!(ended.phase(), StepPhase::Ended, "{ended:?}");
        (started, ended)
    }

    /// Waits for every step to end, then returns every report not read yet: once the runner's
    /// tasks are done and the test's sender is dropped, nothing more can come.
    async fn rest(mut self) -> Vec<StepReport> {
        assert!(self.runner.join(Duration::from_secs(20)).await);
        drop(self.tx);
        let mut rest = Vec::new();
        while let Some(msg) = self.rx.recv().await {
            if let Some(agent_message::Msg::StepReport(r)) = msg.msg {
                rest.push(r);
            }
        }
        rest
    }
}

fn argv(step_id: &str, args: &[&str], timeout_ms: u64) -> RunStep {
    RunStep {
        step_id: step_id.into(),
        run_id: "r1".into(),
        argv: args.iter().map(ToString::to_string).collect(),
        timeout_ms,
        ..RunStep::default()
    }
}

/// The failure's kind and message.
fn failure(report: &StepReport) -> (FailureKind, &str) {
    let failure = report.failure.as_ref().expect("a failure");
    (failure.kind(), failure.message.as_str())
}

/// Whether `pid` is gone: no such process, or a zombie waiting for whoever reaps orphans here.
fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| matches!(rest.trim_start().chars().next(), Some('Z' | 'X'))),
    }
}

/// Polls for up to 10 s until `pid` is gone.
fn wait_gone(pid: i32) {
    gameday_test_support::wait_for(
        &format!("pid {pid} to be gone"),
        Duration::from_secs(10),
        || gone(pid),
    );
}

/// The pid the step wrote into `file`.
fn pid_in(file: &Path) -> i32 {
    let text = std::fs::read_to_string(file).expect("the step wrote its child's pid");
    text.trim().parse().expect("a pid")
}

#[tokio::test]
async fn a_listed_program_runs_and_exits_zero() {
    let mut steps = Steps::new(r#"commands = ["/bin/true"]"#);
    let (started, ended) = steps.run(argv("s1", &["/bin/true"], 10_000)).await;
    assert_eq!(started.step_id, "s1");
    assert!(started.pid > 0);
    assert_eq!(ended.pid, started.pid);
    assert!(ended.exited);
    assert_eq!(ended.exit_code, 0);
    assert_eq!(ended.signal, "");
    assert!(!ended.timed_out);
    assert_eq!(ended.output_tail, "");
    assert!(steps.rest().await.is_empty());
}

#[tokio::test]
async fn exit_code_and_both_output_streams_are_reported() {
    let mut steps = Steps::new(r#"commands = ["/bin/sh"]"#);
    let script = "echo out; echo err >&2; exit 3";
    let (_, ended) = steps
        .run(argv("s1", &["/bin/sh", "-c", script], 10_000))
        .await;
    assert!(ended.exited);
    assert_eq!(ended.exit_code, 3);
    assert!(
        ended.output_tail.contains("out\n"),
        "{:?}",
        ended.output_tail
    );
    assert!(
        ended.output_tail.contains("err\n"),
        "{:?}",
        ended.output_tail
    );
    assert_eq!(ended.output_tail.len(), "out\nerr\n".len());
}

#[tokio::test]
async fn a_step_runs_in_slash_with_its_ids_in_the_environment() {
    let mut steps = Steps::new(r#"commands = ["/bin/sh"]"#);
    let script = "echo \"$GAMEDAY_RUN_ID $GAMEDAY_STEP_ID $(pwd)\"; cat; echo \"stdin ended\"";
    let (_, ended) = steps
        .run(argv("step-7", &["/bin/sh", "-c", script], 10_000))
        .await;
    assert_eq!(ended.output_tail, "r1 step-7 /\nstdin ended\n");
}

#[tokio::test]
async fn a_shell_step_runs_under_sh_only_when_the_policy_allows_a_shell() {
    let line = RunStep {
        step_id: "s1".into(),
        run_id: "r1".into(),
        shell: "echo $((6 * 7)) | tr 4 X; exit 5".into(),
        timeout_ms: 10_000,
        ..RunStep::default()
    };
    let mut steps = Steps::new("shell = true");
    let (_, ended) = steps.run(line.clone()).await;
    assert_eq!(ended.output_tail, "X2\n");
    assert_eq!(ended.exit_code, 5);

    let mut refusing = Steps::new(r#"commands = ["/bin/sh"]"#);
    refusing.submit(line);
    let refused = refusing.next().await;
    assert_eq!(refused.phase(), StepPhase::Started);
    assert_eq!(
        failure(&refused),
        (
            FailureKind::Policy,
            "shell steps are not allowed on this host ([policy.remediation] shell = false)"
        )
    );
    assert_eq!(refused.pid, 0);
    assert!(refusing.rest().await.is_empty());
}

#[tokio::test]
async fn at_its_timeout_the_whole_group_ends_grandchildren_too() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("grandchild.pid");
    let script = format!("sleep 60 & echo $! > {}; wait", pid_file.display());
    let mut steps = Steps::new(r#"commands = ["/bin/sh"]"#);
    let (started, ended) = steps
        .run(argv("s1", &["/bin/sh", "-c", &script], 1_000))
        .await;
    assert!(ended.timed_out);
    assert!(!ended.exited);
    assert_eq!(ended.signal, "SIGTERM");
    assert!(ended.elapsed_us >= 1_000_000, "{}", ended.elapsed_us);
    wait_gone(started.pid as i32);
    wait_gone(pid_in(&pid_file));
}

#[tokio::test]
async fn a_group_that_ignores_sigterm_gets_sigkill_after_the_grace() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("grandchild.pid");
    // SIG_IGN is inherited across fork and exec: neither the shell nor its sleep can be
    // terminated, only killed.
    let script = format!(
        "trap '' TERM; sleep 60 & echo $! > {}; wait",
        pid_file.display()
    );
    let mut steps = Steps::new(r#"commands = ["/bin/sh"]"#);
    // The timeout leaves the shell ample time to set its trap first.
    let (_, ended) = steps
        .run(argv("s1", &["/bin/sh", "-c", &script], 1_000))
        .await;
    assert!(ended.timed_out);
    assert_eq!(ended.signal, "SIGKILL");
    assert!(ended.elapsed_us >= 3_000_000, "{}", ended.elapsed_us);
    wait_gone(pid_in(&pid_file));
}

#[tokio::test]
async fn only_the_last_four_kib_of_output_are_kept() {
    let mut steps = Steps::new(r#"commands = ["/bin/sh"]"#);
    let script = "i=0; while [ $i -lt 2000 ]; do echo line$i; i=$((i + 1)); done";
    let (_, ended) = steps
        .run(argv("s1", &["/bin/sh", "-c", script], 30_000))
        .await;
    assert_eq!(ended.exit_code, 0);
    assert_eq!(ended.output_tail.len(), OUTPUT_TAIL_BYTES);
    assert!(ended.output_tail.ends_with("line1998\nline1999\n"));
    assert!(!ended.output_tail.contains("line0\n"));
}

#[tokio::test]
async fn a_listed_program_that_cannot_start_reports_why_and_nothing_more() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("promote-replica");
    let not_executable = dir.path().join("not-executable");
    std::fs::write(&not_executable, "#!/bin/sh\n").unwrap();
    let mut steps = Steps::new(&format!(
        "commands = [{:?}, {:?}]",
        missing.display().to_string(),
        not_executable.display().to_string()
    ));
    steps.submit(argv("s1", &[missing.to_str().unwrap()], 10_000));
    let report = steps.next().await;
    assert_eq!(report.phase(), StepPhase::Started);
    assert_eq!(report.pid, 0);
    assert_eq!(
        failure(&report),
        (
            FailureKind::System,
            format!(
                "cannot start {:?}: ENOENT: No such file or directory",
                missing.display().to_string()
            )
            .as_str()
        )
    );
    // Root, too, needs an execute bit.
    steps.submit(argv("s2", &[not_executable.to_str().unwrap()], 10_000));
    let report = steps.next().await;
    let (kind, message) = failure(&report);
    assert_eq!(kind, FailureKind::System);
    assert!(message.contains("EACCES"), "{message}");
    assert!(message.contains("not-executable"), "{message}");
    assert!(steps.rest().await.is_empty());
}

#[tokio::test]
async fn a_program_the_policy_does_not_list_is_refused() {
    let mut steps = Steps::new(r#"commands = ["/usr/local/bin/promote-replica"]"#);
    steps.submit(argv("s1", &["/usr/bin/rm", "-rf", "/tmp/x"], 10_000));
    let report = steps.next().await;
    assert_eq!(report.phase(), StepPhase::Started);
    assert_eq!(
        failure(&report),
        (
            FailureKind::Policy,
            "\"/usr/bin/rm\" is not in [policy.remediation] commands (allowed: \
             /usr/local/bin/promote-replica)"
        )
    );
    assert!(steps.rest().await.is_empty());
}

#[tokio::test]
async fn check_only_answers_at_once_and_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("created");
    let mut steps = Steps::new(r#"commands = ["/usr/bin/touch"]"#);
    let touch = RunStep {
        check_only: true,
        ..argv("s1", &["/usr/bin/touch", file.to_str().unwrap()], 10_000)
    };
    steps.submit(touch.clone());
    assert_eq!(steps.runner.running(), 0);
    let report = steps.next().await;
    assert_eq!(report.phase(), StepPhase::Checked);
    assert_eq!(report.failure, None);
    assert_eq!(report.pid, 0);
    let too_long = RunStep {
        timeout_ms: 3_600_000,
        ..touch
    };
    steps.submit(too_long);
    let report = steps.next().await;
    assert_eq!(report.phase(), StepPhase::Checked);
    assert_eq!(
        failure(&report),
        (
            FailureKind::Policy,
            "timeout 1h is longer than [policy.remediation] max_timeout = 10m"
        )
    );
    assert!(steps.rest().await.is_empty());
    assert!(!file.exists());
}

#[tokio::test]
async fn max_running_and_duplicate_ids_are_refused_and_shutdown_ends_every_group() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("grandchild.pid");
    let script = format!("sleep 60 & echo $! > {}; wait", pid_file.display());
    let mut steps = Steps::new(
        r#"commands = ["/bin/sh"]
           max_running = 1"#,
    );
    steps.submit(argv("long", &["/bin/sh", "-c", &script], 60_000));
    let started = steps.next().await;
    assert_eq!(started.failure, None);
    assert_eq!(steps.runner.running(), 1);
    steps.submit(argv("long", &["/bin/sh", "-c", "true"], 1_000));
    let duplicate = steps.next().await;
    assert_eq!(
        failure(&duplicate),
        (FailureKind::Invalid, "step long is already running")
    );
    steps.submit(argv("other", &["/bin/sh", "-c", "true"], 1_000));
    let over = steps.next().await;
    assert_eq!(
        failure(&over),
        (
            FailureKind::Policy,
            "this host is already running as many steps as [policy.remediation] max_running = \
             1 allows"
        )
    );
    gameday_test_support::wait_for("the grandchild's pid", Duration::from_secs(10), || {
        std::fs::read_to_string(&pid_file).is_ok_and(|t| t.ends_with('\n'))
    });
    let grandchild = pid_in(&pid_file);
    // The agent shutting down.
    steps.runner.stop();
    steps.submit(argv("late", &["/bin/sh", "-c", "true"], 1_000));
    let rest = steps.rest().await;
    let ended = rest
        .iter()
        .find(|r| r.step_id == "long")
        .expect("the long step's end");
    assert_eq!(ended.phase(), StepPhase::Ended);
    assert_eq!(ended.signal, "SIGTERM");
    assert!(!ended.timed_out);
    let late = rest
        .iter()
        .find(|r| r.step_id == "late")
        .expect("the late step's refusal");
    assert_eq!(
        failure(late),
        (FailureKind::System, "the agent is shutting down")
    );
    wait_gone(started.pid as i32);
    wait_gone(grandchild);
}

#[tokio::test]
async fn a_step_outliving_the_shutdown_grace_is_killed_with_its_group() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("grandchild.pid");
    let script = format!(
        "trap '' TERM; sleep 60 & echo $! > {}; wait",
        pid_file.display()
    );
    let mut steps = Steps::new(r#"commands = ["/bin/sh"]"#);
    steps.submit(argv("s1", &["/bin/sh", "-c", &script], 60_000));
    let started = steps.next().await;
    gameday_test_support::wait_for("the grandchild's pid", Duration::from_secs(10), || {
        std::fs::read_to_string(&pid_file).is_ok_and(|t| t.ends_with('\n'))
    });
    steps.runner.stop();
    // Shorter than the SIGTERM-to-SIGKILL grace: the runner gives up on the step and aborts it.
    assert!(!steps.runner.join(Duration::from_millis(100)).await);
    wait_gone(started.pid as i32);
    wait_gone(pid_in(&pid_file));
}
