//! Whole runs after preflight, in-process: a scripted agent, a scripted probe timeline and
//! tokio's paused clock, so a 10-second window takes milliseconds.

use std::time::Duration;

use super::fake::{Fixture, Op, ScriptedProbes};
use super::StopCause;
use crate::grade::Verdict;

#[tokio::test(start_paused = true)]
async fn a_run_that_recovers_in_time_passes_and_says_so_as_it_goes() {
    let mut fx = Fixture::new(Fixture::KILL);
    let report = fx.run(ScriptedProbes::down(fx.epoch, 1_020, 1_500)).await;
    assert_eq!(report.verdict, Verdict::Pass, "{}", report.reason);
    assert_eq!(fx.targets[0].calls(), vec![(Op::Apply, 1_000)]);
    let lines = fx.lines();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert_eq!(lines[0], "run 1/1: steady state for 1s");
    assert!(
        lines[1].starts_with("run 1/1: process_kill on web-1 took effect at +1.001s"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].starts_with("run 1/1: impact detected"),
        "{}",
        lines[2]
    );
}

#[tokio::test(start_paused = true)]
async fn an_unhealthy_steady_state_is_inconclusive_and_injects_nothing() {
    let fx = Fixture::new(Fixture::PAUSE);
    let report = fx.run(ScriptedProbes::down(fx.epoch, 300, 400)).await;
    assert_eq!(report.verdict, Verdict::Inconclusive);
    assert_eq!(
        report.reason,
        "steady state not healthy, nothing injected: probe http failed: connection refused"
    );
    assert!(fx.targets[0].calls().is_empty());
}

/// A pause held while the service is down for good, stopped at 2.5 s by `cause`.
async fn stopped_while_observing(cause: StopCause) -> (crate::report::RunReport, Fixture) {
    let fx = Fixture::new(&Fixture::PAUSE.replace(r#"duration = "2s""#, r#"duration = "5s""#));
    fx.stop_after(Duration::from_millis(2_500), cause);
    let report = fx
        .run(ScriptedProbes::down(fx.epoch, 1_020, u64::MAX))
        .await;
    (report, fx)
}

#[tokio::test(start_paused = true)]
async fn an_operator_abort_while_observing_reverts_everything_at_once() {
    let (report, fx) = stopped_while_observing(StopCause::Operator).await;
    assert_eq!(report.verdict, Verdict::Aborted);
    assert_eq!(
        report.reason,
        "aborted by an operator while observing; faults reverted"
    );
    assert_eq!(
        fx.targets[0].calls(),
        vec![(Op::Apply, 1_000), (Op::Revert, 2_500)]
    );
    assert_eq!(report.revert_us, Some(2_501_000));
    assert!(report.faults.iter().all(|f| f.error.is_none()));
}

#[tokio::test(start_paused = true)]
async fn a_shutdown_while_observing_reverts_everything_at_once() {
    let (report, fx) = stopped_while_observing(StopCause::Shutdown).await;
    assert_eq!(report.verdict, Verdict::Aborted);
    assert_eq!(
        report.reason,
        "the controller shut down while observing; faults reverted"
    );
    assert_eq!(
        fx.targets[0].calls(),
        vec![(Op::Apply, 1_000), (Op::Revert, 2_500)]
    );
}

#[tokio::test(start_paused = true)]
async fn an_abort_during_steady_state_injects_nothing() {
    let fx = Fixture::new(Fixture::PAUSE);
    fx.stop_after(Duration::from_millis(300), StopCause::Operator);
    let report = fx.run(ScriptedProbes::up_all_along(fx.epoch)).await;
    assert_eq!(report.verdict, Verdict::Aborted);
    assert_eq!(
        report.reason,
        "aborted by an operator during steady state; nothing injected"
    );
    assert!(fx.targets[0].calls().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_probe_that_crashes_gives_error_and_its_faults_are_reverted() {
    let fx = Fixture::new(Fixture::PAUSE);
    let probes =
        ScriptedProbes::down(fx.epoch, 1_020, u64::MAX).crashing(Duration::from_millis(1_500));
    let report = fx.run(probes).await;
    assert_eq!(report.verdict, Verdict::Error);
    assert_eq!(
        report.reason,
        "probe http stopped sampling unexpectedly (a bug); the run cannot be graded"
    );
    let calls = fx.targets[0].calls();
    assert_eq!(calls[1].0, Op::Revert, "{calls:?}");
    assert!((1_500..=1_510).contains(&calls[1].1), "{calls:?}");
}

#[tokio::test(start_paused = true)]
async fn a_fault_refused_on_one_target_is_error_with_nothing_left_applied() {
    let mut fx = Fixture::new(Fixture::PAUSE);
    let refusing = super::fake::ScriptedAgent::new("web-2", Duration::from_millis(2));
    refusing.refuse_apply("policy");
    fx.targets.push(refusing);
    let report = fx.run(ScriptedProbes::up_all_along(fx.epoch)).await;
    assert_eq!(report.verdict, Verdict::Error);
    assert_eq!(
        report.reason,
        "fault process_pause could not be applied on web-2: invalid: policy"
    );
    assert_eq!(
        fx.targets[0].calls(),
        vec![(Op::Apply, 1_000), (Op::Revert, 1_002)]
    );
    assert!(report.grade.is_none());
}
