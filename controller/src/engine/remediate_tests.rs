//! Remediation steps in whole runs under the paused clock: each trigger, a step's times on the
//! run's timeline, its outcome in the verdict, and steps that never ran or never ended.

use std::sync::Arc;
use std::time::Duration;

use super::super::fake::{Fixture, ScriptedProbes, ScriptedStepAgent};
use super::super::run_tests::{deliver, detecting};
use super::super::StopCause;
use super::StepDriver;
use crate::grade::Verdict;
use crate::remediation::StepOutcome;

/// [`Fixture::KILL`] (injected at +1.001 s) with one step on a scripted agent.
fn with_step(scenario: &str, when: &str, agent: Arc<ScriptedStepAgent>) -> Fixture {
    let mut fx = Fixture::new(&format!(
        "{scenario}\n[[remediation]]\nagent = \"db-2\"\nrun = [\"/usr/local/bin/promote\", \"--now\"]\nwhen = {when}\ntimeout = \"5s\"\n"
    ));
    fx.steps = vec![StepDriver::Agent(agent)];
    fx
}

#[tokio::test(start_paused = true)]
async fn a_delayed_step_runs_then_and_its_start_is_the_remediation_start() {
    let agent = ScriptedStepAgent::new(Duration::from_millis(300), 0);
    let mut fx = with_step(Fixture::KILL, "\"500ms\"", agent.clone());
    let mut report = fx.run(ScriptedProbes::down(fx.epoch, 1_020, 2_000)).await;
    assert_eq!(report.verdict, Verdict::Pass, "{}", report.reason);
    let step = &report.remediation_steps[0];
    assert_eq!(step.name, "promote");
    assert_eq!(step.place, "agent db-2");
    assert_eq!(step.command, "/usr/local/bin/promote --now");
    assert_eq!(step.triggered_us, Some(1_501_000));
    let started = step.started.expect("started").at_us;
    // Looked at on the next tick (10 ms), then 1 ms to the agent and 1 ms to start.
    assert!((1_501_000..=1_515_000).contains(&started), "{started}");
    assert_eq!(step.ended.unwrap().at_us - started, 300_000);
    assert_eq!(
        step.outcome,
        StepOutcome::Succeeded {
            how: "exit 0".into()
        }
    );
    assert_eq!(step.output_tail, "promoted\nexit 0\n");
    assert_eq!(agent.asked.lock().unwrap().len(), 1);
    report.remediation = crate::annotation::Remediation::of(&report);
    let r = report.remediation.expect("remediation start");
    assert_eq!(r.after_fault_us, started - 1_001_000);
    assert_eq!(r.by, "remediation step promote");
    let lines = fx.lines();
    assert!(
        lines.iter().any(|l| l
            .starts_with("run 1/1: remediation step promote started on db-2 at +1.5")
            && l.ends_with("(pid 4242, +500ms after the fault)")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l == "run 1/1: remediation step promote after 300.0ms: succeeded (exit 0)"),
        "{lines:#?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_step_fails_a_run_the_probes_would_pass() {
    let agent = ScriptedStepAgent::new(Duration::from_millis(50), 3);
    let fx = with_step(Fixture::KILL, "\"100ms\"", agent);
    let report = fx.run(ScriptedProbes::down(fx.epoch, 1_020, 1_500)).await;
    assert_eq!(report.verdict, Verdict::Fail);
    assert_eq!(
        report.reason,
        "remediation step promote on agent db-2: FAILED (exit 3)"
    );
    assert!(!report.met_expectation);
}

#[tokio::test(start_paused = true)]
async fn a_stage_step_runs_once_the_stage_is_reached() {
    let scenario = format!(
        "{}\n[[stages]]\nname = \"failover\"\nprobes = [\"http\"]\nrto = \"2s\"\n",
        Fixture::KILL
    );
    let agent = ScriptedStepAgent::new(Duration::from_millis(100), 0);
    let fx = with_step(&scenario, "{ stage = \"failover\" }", agent);
    let report = fx.run(ScriptedProbes::down(fx.epoch, 1_020, 1_500)).await;
    assert_eq!(report.verdict, Verdict::Pass, "{}", report.reason);
    let step = &report.remediation_steps[0];
    // Back at 1.5 s: the first good answer (recovered_after = 3 needs two more).
    let reached = step.triggered_us.expect("triggered");
    assert!((1_500_000..=1_560_000).contains(&reached), "{reached}");
    assert!(step.started.unwrap().at_us >= reached);
    assert!(matches!(step.outcome, StepOutcome::Succeeded { .. }));
}

#[tokio::test(start_paused = true)]
async fn an_alert_step_starts_when_the_alert_arrives() {
    let mut fx = detecting(false);
    let scenario = format!(
        "{}\n[[remediation]]\nagent = \"db-2\"\nrun = [\"/usr/local/bin/promote\"]\nwhen = \"alert\"\n",
        fx.input.source
    );
    let alerts = fx.alerts.take();
    fx = Fixture::new(&scenario);
    fx.alerts = alerts;
    fx.steps = vec![StepDriver::Agent(ScriptedStepAgent::new(
        Duration::from_millis(200),
        0,
    ))];
    deliver(&fx, "RedisDown", -5_000, 1_200); // fired before the fault: not this one
    deliver(&fx, "RedisDown", 1_100, 2_300);
    let report = fx.run(ScriptedProbes::down(fx.epoch, 1_020, 4_000)).await;
    let step = &report.remediation_steps[0];
    assert_eq!(step.triggered_us, Some(2_300_000));
    let started = step.started.unwrap().at_us;
    assert!((2_300_000..=2_315_000).contains(&started), "{started}");
    assert!(report.detection.unwrap().noticed());
}

#[tokio::test(start_paused = true)]
async fn a_step_whose_trigger_never_comes_is_recorded_as_not_run() {
    let agent = ScriptedStepAgent::new(Duration::from_millis(100), 0);
    let fx = with_step(Fixture::KILL, "\"9s\"", agent.clone());
    // Back at 1.5 s: observing ends at the RTO line (+3 s), long before +9 s.
    let report = fx.run(ScriptedProbes::down(fx.epoch, 1_020, 1_500)).await;
    assert_eq!(report.verdict, Verdict::Pass, "{}", report.reason);
    let step = &report.remediation_steps[0];
    let StepOutcome::NotRun { why } = &step.outcome else {
        panic!("{:?}", step.outcome)
    };
    assert!(why.starts_with("observing ended at +3.0"), "{why}");
    assert!(why.ends_with("before +9s after the fault"), "{why}");
    assert!(agent.asked.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_run_stopped_while_a_step_runs_records_its_end_as_unknown() {
    let agent = ScriptedStepAgent::new(Duration::from_secs(4), 0);
    let fx = with_step(Fixture::KILL, "\"100ms\"", agent);
    fx.stop_after(Duration::from_millis(2_000), StopCause::Operator);
    let report = fx
        .run(ScriptedProbes::down(fx.epoch, 1_020, u64::MAX))
        .await;
    assert_eq!(report.verdict, Verdict::Aborted);
    let step = &report.remediation_steps[0];
    assert!(step.started.is_some() && step.ended.is_none());
    let StepOutcome::Unknown { why } = &step.outcome else {
        panic!("{:?}", step.outcome)
    };
    assert!(why.starts_with("the run was stopped while it ran"), "{why}");
}

#[tokio::test(start_paused = true)]
async fn a_step_the_agent_refuses_fails_the_run() {
    let agent = ScriptedStepAgent::refusing(
        "\"/usr/local/bin/promote\" is not in [policy.remediation] commands",
    );
    let fx = with_step(Fixture::KILL, "\"100ms\"", agent);
    let report = fx.run(ScriptedProbes::down(fx.epoch, 1_020, 1_500)).await;
    assert_eq!(report.verdict, Verdict::Fail);
    assert_eq!(
        report.reason,
        "remediation step promote on agent db-2: FAILED (not started: refused by the agent's \
         policy: \"/usr/local/bin/promote\" is not in [policy.remediation] commands)"
    );
}
