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

/// [`Fixture::KILL`] with `[detect]` for RedisDown within 30 s, and an alert log.
pub(super) fn detecting(expect_alert: bool) -> Fixture {
    let mut fx = Fixture::new(&format!(
        "{}\n[detect]\nalerts = {{ alertname = \"RedisDown\" }}\nwithin = \"30s\"\nexpect_alert = {expect_alert}\n",
        Fixture::KILL
    ));
    fx.alerts = Some(std::sync::Arc::new(crate::alerts::AlertLog::default()));
    fx
}

/// Records an alert named `name`, started `started_ms` after the epoch (wall clock, as the run
/// sees it), delivered `arrive_ms` after the epoch.
pub(super) fn deliver(fx: &Fixture, name: &str, started_ms: i64, arrive_ms: u64) {
    let log = fx.alerts.clone().unwrap();
    let at = fx.epoch + Duration::from_millis(arrive_ms);
    let started_unix_ms = fx.report().started_unix_ms as i64 + started_ms;
    let alert = crate::alerts::Alert {
        labels: [("alertname".to_string(), name.to_string())].into(),
        annotations: Default::default(),
        status: crate::alerts::AlertStatus::Firing,
        starts_at_unix_ms: Some(started_unix_ms),
        ends_at_unix_ms: None,
        fingerprint: Some(format!("{name}{started_ms}")),
        generator_url: None,
    };
    tokio::spawn(async move {
        tokio::time::sleep_until(at).await;
        log.record(vec![alert], at);
    });
}

#[tokio::test(start_paused = true)]
async fn the_run_waits_for_the_alert_after_observing_and_times_detection_both_ways() {
    let fx = detecting(true);
    deliver(&fx, "RedisDown", -5_000, 2_000); // fired before the fault: ignored
    deliver(&fx, "DiskFull", 3_000, 4_000); // other labels: ignored
    deliver(&fx, "RedisDown", 14_000, 15_000); // after the 10 s window
    let report = fx.run(ScriptedProbes::down(fx.epoch, 1_020, 1_500)).await;
    assert_eq!(report.verdict, Verdict::Pass, "{}", report.reason);
    let d = report.detection.expect("graded");
    let a = d.alert.as_ref().expect("noticed");
    // Injected at +1.001 s.
    assert_eq!(a.delivered_after_us, 13_999_000);
    let fired = a.fired_after_us.unwrap();
    assert!((12_900_000..=13_000_000).contains(&fired), "{fired}");
    assert_eq!((d.ignored_before, d.ignored_unmatched), (1, 1));
    assert_eq!(
        tokio::time::Instant::now() - fx.epoch,
        Duration::from_millis(15_000),
        "it stopped waiting when the alert came"
    );
}

#[tokio::test(start_paused = true)]
async fn an_unnoticed_fault_fails_only_with_expect_alert() {
    let fx = detecting(true);
    let report = fx.run(ScriptedProbes::down(fx.epoch, 1_020, 1_500)).await;
    assert_eq!(report.verdict, Verdict::Fail);
    assert!(
        report.reason.starts_with(
            "unnoticed by monitoring: no alert matching {alertname=\"RedisDown\"} within 30s"
        ),
        "{}",
        report.reason
    );
    assert_eq!(
        tokio::time::Instant::now() - fx.epoch,
        Duration::from_millis(31_001),
        "waited the whole 30 s after the fault"
    );

    let fx = detecting(false);
    let report = fx.run(ScriptedProbes::down(fx.epoch, 1_020, 1_500)).await;
    assert_eq!(report.verdict, Verdict::Pass, "{}", report.reason);
    assert!(!report.detection.unwrap().noticed());
}
