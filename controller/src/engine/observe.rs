//! The observe phase: probes keep sampling after the injection until every impacted probe has
//! recovered (plus a tail) or the window closes; holding faults are reverted on the way, at
//! their duration or, with `revert = "on_recovery"`, as soon as the service is back.

use std::time::Duration;

use tokio::time::Instant;

use super::inject::Injection;
use super::remediate::{Remediator, Triggers};
use super::revert::{cap_at_deadlines, revert_all};
use super::run::{micros, saturating_us, say, wait_or_cancel, RunCtx};
use super::samples::SampleSource;
use super::{Phase, StopCause};
use crate::grade::{self, fmt_us, GradeInput};
use crate::report::RunReport;
use crate::scenario::{RevertPolicy, Scenario};

/// How observing ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Observed {
    /// Recovered (and the tail seen), or the window closed; `reverted` says whether holding
    /// faults were reverted on the way.
    Ended { reverted: bool },
    /// The run was stopped; faults may still be held.
    Stopped(StopCause),
    /// A probe stopped sampling (a bug); faults may still be held.
    ProbeCrashed(String),
}

/// When observing and holding end, all in microseconds since the run's epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Window {
    /// The injection plus the scenario's `observe`.
    pub end_us: u64,
    /// When holding faults are reverted at the latest: the longest duration, or the window end.
    pub revert_at_us: u64,
    /// Some fault holds (is not instant).
    pub holds: bool,
    pub rto_us: u64,
    /// How long sampling goes on after the recovery.
    pub tail_us: u64,
    /// How often the phase looks at the samples.
    pub tick: Duration,
}

impl Window {
    /// The window of a run of `s` whose faults took effect at `inject_us`.
    pub(super) fn plan(s: &Scenario, faults: &[gameday_proto::Fault], inject_us: u64) -> Window {
        let end_us = inject_us.saturating_add(saturating_us(s.observe.get()));
        // A manual revert waits for the operator; the agents still end each fault at its
        // duration, which `cap_at_deadlines` records.
        let by_duration = (s.revert != RevertPolicy::Manual).then(|| {
            faults
                .iter()
                .filter_map(|f| f.duration())
                .map(|d| inject_us.saturating_add(saturating_us(d.get())))
                .max()
        });
        Window {
            end_us,
            revert_at_us: by_duration.flatten().unwrap_or(end_us).min(end_us),
            holds: faults.iter().any(|f| !f.is_instant()),
            rto_us: saturating_us(s.rto.get()),
            tail_us: saturating_us(observe_tail(
                s.probes.iter().map(|p| (p.interval.get(), p.timeout.get())),
            )),
            tick: s
                .probes
                .iter()
                .map(|p| p.interval.get())
                .min()
                .unwrap_or(Duration::from_millis(10))
                .min(Duration::from_millis(50)),
        }
    }
}

/// Observes until recovery plus the tail (and the RTO line), or the window's end; reverts
/// holding faults when their time comes.
pub(super) async fn observe(
    ctx: &mut RunCtx<'_>,
    report: &mut RunReport,
    probes: &impl SampleSource,
    injection: &Injection,
    window: &Window,
    epoch: Instant,
    steps: &mut Remediator,
) -> Observed {
    let s = &ctx.input.scenario;
    let tag = format!("run {}/{}", ctx.index, s.repeat);
    let inject = injection.at;
    let mut announced_impact = false;
    let mut reverted = !window.holds;
    loop {
        if let Some(cause) = wait_or_cancel(&mut ctx.cancel, window.tick).await {
            return Observed::Stopped(cause);
        }
        if let Some(probe) = probes.crashed() {
            return Observed::ProbeCrashed(probe);
        }
        let now_us = micros(epoch, Instant::now());
        let window_end_us = now_us.min(window.end_us);
        let recovered_while_held = !reverted
            && s.revert == RevertPolicy::OnRecovery
            && grade::settled(&GradeInput {
                probes: &s.health_only(probes.snapshot()),
                inject,
                revert_us: None,
                rto_us: window.rto_us,
                window_end_us,
                expect: s.expect,
                recovery: s.recovery,
            });
        let asked = !reverted && s.revert == RevertPolicy::Manual && *ctx.revert_now.borrow();
        if !reverted && (now_us >= window.revert_at_us || recovered_while_held || asked) {
            revert_all(report, &injection.applied, epoch, true).await;
            cap_at_deadlines(report, &injection.held);
            reverted = true;
            let by = if asked { " (asked by an operator)" } else { "" };
            say(
                ctx,
                Phase::Reverted,
                format!(
                    "{tag}: faults reverted at +{}{by}",
                    fmt_us(report.revert_us.unwrap_or(now_us))
                ),
            );
        }
        let snapshot = s.health_only(probes.snapshot());
        let input = GradeInput {
            probes: &snapshot,
            inject,
            revert_us: report.revert_us,
            rto_us: window.rto_us,
            window_end_us,
            expect: s.expect,
            recovery: s.recovery,
        };
        let alert_us = if steps.awaits_alert() {
            super::detect::alert_arrived_us(ctx, epoch, report.started_unix_ms, inject.at_us)
        } else {
            None
        };
        steps.poll(&Triggers {
            now_us,
            alert_us,
            stage_reached: &|name| stage_reached(s, name, &input),
        });
        if !announced_impact {
            if let Some(d) = grade::grade(&input).time_to_detect {
                let phase = if reverted && window.holds {
                    Phase::Reverted
                } else {
                    Phase::Observing
                };
                say(
                    ctx,
                    phase,
                    format!("{tag}: impact detected {} after the fault", fmt_us(d.us)),
                );
                announced_impact = true;
            }
        }
        if now_us >= window.end_us {
            return Observed::Ended { reverted };
        }
        if grade::settled(&input) && reverted {
            // Recovered: keep sampling for a tail after it, and up to the RTO line, so the
            // timeline shows the service staying up (or relapsing), not probes that stopped.
            let recovered_at = grade::grade(&input)
                .time_to_recover
                .map_or(now_us, |m| inject.at_us.saturating_add(m.us));
            let until = observe_until(
                recovered_at,
                inject.at_us,
                window.rto_us,
                window.tail_us,
                window.end_us,
            );
            if now_us >= until {
                return Observed::Ended { reverted };
            }
        }
    }
}

/// When stage `name` was reached (every one of its probes recovered), if it has been.
fn stage_reached(s: &Scenario, name: &str, input: &GradeInput<'_>) -> Option<u64> {
    let stage = s.stages.iter().find(|st| st.name == name)?;
    let probes: Vec<_> = input
        .probes
        .iter()
        .filter(|p| stage.probes.contains(&p.name))
        .cloned()
        .collect();
    let staged = GradeInput {
        probes: &probes,
        rto_us: saturating_us(stage.rto.get()),
        ..*input
    };
    if !grade::settled(&staged) {
        return None;
    }
    grade::grade(&staged)
        .time_to_recover
        .map(|m| input.inject.at_us.saturating_add(m.us))
}

/// How long probes keep sampling after the service recovered: ten intervals of the slowest
/// probe, a timeout and an interval of the most patient one (a check that hangs after the
/// recovery only fails a timeout after it started), and at least [`MIN_OBSERVE_TAIL`], so a
/// relapse right after the recovery is seen and every lane of the timeline goes on past it.
fn observe_tail(probes: impl Iterator<Item = (Duration, Duration)>) -> Duration {
    probes
        .map(|(interval, timeout)| {
            interval
                .saturating_mul(10)
                .max(timeout.saturating_add(interval))
        })
        .max()
        .unwrap_or_default()
        .max(MIN_OBSERVE_TAIL)
}

/// The least time probes keep sampling after the recovery.
const MIN_OBSERVE_TAIL: Duration = Duration::from_millis(500);

/// When observing stops after a recovery at `recovered_at_us`: the later of the recovery plus
/// the tail and the RTO line (injection + RTO), never past the window.
fn observe_until(
    recovered_at_us: u64,
    inject_us: u64,
    rto_us: u64,
    tail_us: u64,
    window_end_us: u64,
) -> u64 {
    recovered_at_us
        .saturating_add(tail_us)
        .max(inject_us.saturating_add(rto_us))
        .min(window_end_us)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observing_goes_on_past_the_recovery_and_up_to_the_rto_line() {
        const S: u64 = 1_000_000;
        // Recovered at 1.5 s after an injection at 1 s, RTO 5 s: on to the RTO line at 6 s.
        assert_eq!(observe_until(2 * S + S / 2, S, 5 * S, S / 2, 31 * S), 6 * S);
        // Recovered at 5.8 s: the tail reaches past the RTO line.
        assert_eq!(
            observe_until(5 * S + 800_000, S, 5 * S, S / 2, 31 * S),
            6 * S + 300_000
        );
        // Never past the window.
        assert_eq!(
            observe_until(5 * S, S, 5 * S, S, 5 * S + 500_000),
            5 * S + 500_000
        );
    }

    #[test]
    fn the_tail_is_ten_intervals_and_at_least_half_a_second() {
        let ms = Duration::from_millis;
        assert_eq!(
            observe_tail([(ms(10), ms(100)), (ms(20), ms(200))].into_iter()),
            ms(500)
        );
        assert_eq!(
            observe_tail([(ms(10), ms(100)), (ms(100), ms(200))].into_iter()),
            ms(1_000)
        );
        // A check that hangs after the recovery fails a timeout later: wait for it.
        assert_eq!(observe_tail([(ms(10), ms(1_000))].into_iter()), ms(1_010));
        assert_eq!(observe_tail(std::iter::empty()), ms(500));
    }

    use crate::engine::fake::{Fixture, Op, ScriptedProbes};
    use crate::engine::inject::inject_all;
    use crate::grade::Verdict;

    /// Injects at the epoch (the scripted agent answers in 2 ms, the effect at 1 ms) and
    /// observes `probes`; returns how it ended, the record and when it ended (ms).
    async fn observe_from_epoch(
        fx: &Fixture,
        probes: &ScriptedProbes,
    ) -> (Observed, RunReport, u64) {
        let mut ctx = fx.ctx();
        let mut report = fx.report();
        let injection = inject_all(&ctx, &mut report, fx.epoch).await.unwrap();
        assert_eq!(injection.at.at_us, 1_000);
        let window = Window::plan(&fx.input.scenario, &fx.faults, injection.at.at_us);
        let run = crate::engine::remediate::RunInfo {
            run_id: "r1-1".into(),
            scenario: "s".into(),
            epoch: fx.epoch,
            inject_us: injection.at.at_us,
            fault_unix_ms: 0,
            progress: fx.progress(),
            template: crate::engine::ProgressEvent::new(
                String::new(),
                crate::engine::Phase::Observing,
                1,
                &fx.input.scenario,
            ),
        };
        let mut steps = Remediator::new(&fx.input.scenario.remediation, &fx.steps, run);
        let observed = observe(
            &mut ctx,
            &mut report,
            probes,
            &injection,
            &window,
            fx.epoch,
            &mut steps,
        )
        .await;
        (observed, report, fx.epoch.elapsed().as_millis() as u64)
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_quick_recovery_observing_goes_on_to_the_rto_line() {
        let fx = Fixture::new(Fixture::KILL);
        let probes = ScriptedProbes::down(fx.epoch, 100, 1_500);
        let (observed, _, ended_ms) = observe_from_epoch(&fx, &probes).await;
        assert_eq!(
            observed,
            Observed::Ended { reverted: true },
            "a kill holds nothing"
        );
        // Injected at 1 ms, RTO 3 s: the line is at 3001 ms; the tail (500 ms) ended before.
        assert!(
            (3_001..=3_011).contains(&ended_ms),
            "ended at {ended_ms} ms"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_recovery_near_the_rto_line_is_followed_by_the_tail() {
        let fx = Fixture::new(Fixture::KILL);
        let probes = ScriptedProbes::down(fx.epoch, 100, 2_800);
        let (observed, _, ended_ms) = observe_from_epoch(&fx, &probes).await;
        assert_eq!(observed, Observed::Ended { reverted: true });
        // Back at 2.8 s, plus a tail of ten 10 ms intervals or 500 ms, whichever is longer.
        assert!(
            (3_300..=3_310).contains(&ended_ms),
            "ended at {ended_ms} ms"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_service_that_never_recovers_is_observed_to_the_window_end() {
        let fx = Fixture::new(Fixture::KILL);
        let probes = ScriptedProbes::down(fx.epoch, 100, u64::MAX);
        let (observed, _, ended_ms) = observe_from_epoch(&fx, &probes).await;
        assert_eq!(observed, Observed::Ended { reverted: true });
        assert!(
            (10_001..=10_011).contains(&ended_ms),
            "ended at {ended_ms} ms"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_holding_fault_is_reverted_at_its_duration() {
        let fx = Fixture::new(Fixture::PAUSE);
        // Back by itself at 1.5 s while the pause (2 s) still holds.
        let probes = ScriptedProbes::down(fx.epoch, 100, 1_500);
        let (observed, report, ended_ms) = observe_from_epoch(&fx, &probes).await;
        assert_eq!(observed, Observed::Ended { reverted: true });
        let calls = fx.targets[0].calls();
        assert_eq!(calls.len(), 2, "{calls:?}");
        assert_eq!(calls[1].0, Op::Revert);
        assert!((2_001..=2_011).contains(&calls[1].1), "{calls:?}");
        // The agent lifted it at its deadline (effect + 2 s) before the revert reached it.
        assert_eq!(report.revert_us, Some(2_001_000));
        assert!(
            (3_001..=3_011).contains(&ended_ms),
            "ended at {ended_ms} ms"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn with_revert_on_recovery_a_holding_fault_is_reverted_once_the_probes_recover() {
        let fx = Fixture::with(
            &Fixture::PAUSE.replace(r#"duration = "2s""#, r#"duration = "5s""#),
            r#"revert = "on_recovery""#,
        );
        let probes = ScriptedProbes::down(fx.epoch, 100, 1_500);
        let (observed, report, _) = observe_from_epoch(&fx, &probes).await;
        assert_eq!(observed, Observed::Ended { reverted: true });
        let calls = fx.targets[0].calls();
        // Three good checks from 1.5 s, the last answered at 1521 ms: reverted at the next look,
        // long before the 5 s duration.
        assert_eq!(calls[1].0, Op::Revert);
        assert!((1_521..=1_531).contains(&calls[1].1), "{calls:?}");
        assert!(report.revert_us.is_some_and(|us| us < 1_540_000));
    }

    #[tokio::test(start_paused = true)]
    async fn with_revert_on_recovery_a_fault_the_service_does_not_absorb_holds_its_duration() {
        let fx = Fixture::with(Fixture::PAUSE, r#"revert = "on_recovery""#);
        let probes = ScriptedProbes::down(fx.epoch, 100, u64::MAX);
        let (_, report, _) = observe_from_epoch(&fx, &probes).await;
        let calls = fx.targets[0].calls();
        assert!((2_001..=2_011).contains(&calls[1].1), "{calls:?}");
        assert_eq!(report.revert_us, Some(2_001_000));
        assert_eq!(report.verdict, Verdict::Error, "not graded here");
    }

    /// A pause without a duration, `revert = "manual"`, window 10 s.
    fn manual() -> Fixture {
        Fixture::with(
            &Fixture::PAUSE.replace("duration = \"2s\"\n", ""),
            r#"revert = "manual""#,
        )
    }

    #[tokio::test(start_paused = true)]
    async fn with_revert_manual_the_fault_holds_until_an_operator_reverts_it() {
        let fx = manual();
        fx.revert_after(Duration::from_millis(4_000));
        // The service heals while the fault holds; the fault stays until asked.
        let probes = ScriptedProbes::down(fx.epoch, 100, 1_500);
        let (observed, report, _) = observe_from_epoch(&fx, &probes).await;
        assert_eq!(observed, Observed::Ended { reverted: true });
        let calls = fx.targets[0].calls();
        assert_eq!(calls[1].0, Op::Revert);
        assert!((4_000..=4_060).contains(&calls[1].1), "{calls:?}");
        assert!(report.revert_us.is_some_and(|us| us >= 4_000_000));
    }

    #[tokio::test(start_paused = true)]
    async fn with_revert_manual_and_nobody_asking_the_window_end_reverts() {
        let fx = manual();
        let probes = ScriptedProbes::down(fx.epoch, 100, 1_500);
        let (observed, _, _) = observe_from_epoch(&fx, &probes).await;
        assert_eq!(observed, Observed::Ended { reverted: true });
        let calls = fx.targets[0].calls();
        // Injected at the epoch, window 10 s.
        assert!((10_000..=10_060).contains(&calls[1].1), "{calls:?}");
    }
}
