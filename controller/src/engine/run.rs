//! One run, step by step: steady state, inject, observe, revert, grade.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use gameday_proto::v1;
use tokio::sync::watch;

use super::observer::{RunObserver, RunStart};
use super::preflight::PreflightError;
use super::progress::{Phase, Progress, ProgressEvent};
use super::recorder::Recorder;
use super::StopCause;
use crate::grade::{self, fmt_us, GradeInput, Verdict};
use crate::probe::{micros, ProbeSet};
use crate::registry::AgentConn;
use crate::report::{FaultRecord, RunReport};
use crate::scenario::{RevertPolicy, Scenario};
use crate::timeline::{effect_moment, monotonic_ns, unix_ms_now, Moment, ProbeTimeline};

/// How much longer than the observation window an agent keeps a fault before reverting it on
/// its own, so the controller's revert normally wins and the agent's deadline is the backstop.
const DEADLINE_MARGIN: Duration = Duration::from_secs(5);

/// Everything one run needs.
pub(super) struct RunCtx<'a> {
    pub scenario: &'a Scenario,
    pub run_id: String,
    pub index: u32,
    pub targets: Vec<Arc<AgentConn>>,
    /// The scenario's faults, peers resolved.
    pub faults: Vec<gameday_proto::Fault>,
    pub progress: &'a Progress,
    /// The agents' current connections: a revert goes to the connection an agent has now,
    /// which is not the one the fault was applied through if the agent reconnected meanwhile.
    pub registry: &'a crate::registry::AgentRegistry,
    pub cancel: watch::Receiver<Option<StopCause>>,
    pub observers: &'a [Arc<dyn RunObserver>],
    pub identity: &'a super::RunIdentity,
    /// When the fault took effect (wall clock, ms), 0 before.
    pub injected_unix_ms: std::sync::atomic::AtomicU64,
    pub file: &'a str,
    pub source: &'a str,
}

/// A run that could not start because preflight failed (on a repeat after the first).
pub(super) fn preflight_failed(run_id: String, index: u32, e: PreflightError) -> RunReport {
    errored(run_id, index, format!("preflight: {e}"))
}

/// A run whose task panicked: graded ERROR with the panic's message.
pub(super) fn crashed(run_id: String, index: u32, panic: &str) -> RunReport {
    errored(
        run_id,
        index,
        format!("internal error: the run stopped unexpectedly ({panic}); its faults were reverted"),
    )
}

fn errored(run_id: String, index: u32, reason: String) -> RunReport {
    RunReport {
        run_id,
        index,
        verdict: Verdict::Error,
        reason,
        met_expectation: false,
        targets: vec![],
        epoch_monotonic_ns: monotonic_ns(),
        started_unix_ms: unix_ms_now(),
        inject: None,
        revert_us: None,
        grade: None,
        faults: vec![],
        probes: vec![],
    }
}

pub(super) async fn run_once(mut ctx: RunCtx<'_>) -> RunReport {
    let s = ctx.scenario;
    let epoch = Instant::now();
    let mut report = RunReport {
        run_id: ctx.run_id.clone(),
        index: ctx.index,
        verdict: Verdict::Error,
        reason: String::new(),
        met_expectation: false,
        targets: ctx.targets.iter().map(|t| t.name.clone()).collect(),
        epoch_monotonic_ns: monotonic_ns(),
        started_unix_ms: unix_ms_now(),
        inject: None,
        revert_us: None,
        grade: None,
        faults: vec![],
        probes: vec![],
    };
    for o in ctx.observers {
        o.run_started(&RunStart {
            run_id: &ctx.run_id,
            index: ctx.index,
            scenario: s,
            source: ctx.source,
            file: ctx.file,
            targets: &report.targets,
            epoch_monotonic_ns: report.epoch_monotonic_ns,
            identity: ctx.identity,
        });
    }
    let probes = match ProbeSet::start(&s.probes, epoch) {
        Ok(p) => p,
        Err(e) => {
            report.reason = format!("probe could not start: {e}");
            return report;
        }
    };
    let recorder = Recorder::start(&probes, ctx.observers, &ctx.run_id);
    let report = run_with_probes(&mut ctx, report, probes, epoch).await;
    recorder.finish().await;
    for o in ctx.observers {
        for f in &report.faults {
            o.fault(&ctx.run_id, f);
        }
    }
    report
}

async fn run_with_probes(
    ctx: &mut RunCtx<'_>,
    mut report: RunReport,
    probes: ProbeSet,
    epoch: Instant,
) -> RunReport {
    let s = ctx.scenario;
    let tag = format!("run {}/{}", ctx.index, s.repeat);

    // Steady state: every probe must answer, and answer well, before anything is injected.
    say(
        ctx,
        Phase::SteadyState,
        format!("{tag}: steady state for {}", s.steady_state),
    );
    if let Some(cause) = wait_or_cancel(&mut ctx.cancel, s.steady_state.get()).await {
        let why = match cause {
            StopCause::Operator => "aborted by an operator during steady state; nothing injected",
            StopCause::Shutdown => "the controller shut down during steady state; nothing injected",
        };
        return finish_aborted(report, probes, why).await;
    }
    let steady = probes.snapshot();
    if let Some(reason) = unsteady(&steady) {
        report.verdict = Verdict::Inconclusive;
        report.reason = format!("steady state not healthy, nothing injected: {reason}");
        report.probes = probes.stop().await;
        return report;
    }

    // Inject on every target at once; the first effect is t_inject.
    let window = s.observe.get();
    let deadline_ms = saturating_ms(window.saturating_add(DEADLINE_MARGIN));
    let mut requests = Vec::new();
    // How long each holding fault is planned to hold: the agent lifts it then on its own.
    let mut held: Vec<(String, u64)> = Vec::new();
    for agent in &ctx.targets {
        for (i, fault) in ctx.faults.iter().enumerate() {
            let fault_id = super::preflight::fault_id(&ctx.run_id, i, &agent.name);
            if let Some(d) = fault.duration() {
                held.push((fault_id.clone(), saturating_us(d.get())));
            }
            let apply = v1::ApplyFault {
                fault_id: fault_id.clone(),
                run_id: ctx.run_id.clone(),
                spec: Some(fault.to_wire()),
                deadline_ms,
            };
            let agent = agent.clone();
            let kind = fault.kind().to_string();
            requests.push(async move {
                let result = agent.apply(apply, fault).await;
                (agent, fault_id, kind, result)
            });
        }
    }
    let mut applied: Vec<(Arc<AgentConn>, String)> = Vec::new();
    for (agent, fault_id, kind, result) in join_all(requests).await {
        let mut rec = FaultRecord {
            fault_id: fault_id.clone(),
            agent: agent.name.clone(),
            kind,
            ..FaultRecord::default()
        };
        match result {
            Ok(x) => {
                let r = &x.report;
                if let Some(ev) = &r.evidence {
                    rec.evidence = ev.summary.clone();
                    rec.pids = ev.pids.clone();
                    rec.figures.extend(ev.figures.clone());
                }
                match &r.failure {
                    None => {
                        rec.apply_us = Some(r.apply_us);
                        rec.applied = Some(effect_moment(
                            micros(epoch, x.sent_at),
                            micros(epoch, x.received_at),
                            r.apply_us,
                            r.since_effect_us,
                        ));
                        applied.push((agent.clone(), fault_id));
                    }
                    Some(f) => rec.error = Some(failure_text(f)),
                }
            }
            Err(e) => rec.error = Some(e.to_string()),
        }
        for o in ctx.observers {
            o.fault(&ctx.run_id, &rec);
        }
        report.faults.push(rec);
    }
    if let Some(failed) = report.faults.iter().find(|f| f.error.is_some()) {
        report.reason = format!(
            "fault {} could not be applied on {}: {}",
            failed.kind,
            failed.agent,
            failed.error.clone().unwrap_or_default()
        );
        // Nothing half-applied: undo what did take effect.
        revert_all(ctx.registry, &mut report, &applied, epoch, false).await;
        report.probes = probes.stop().await;
        return report;
    }
    let inject = report
        .faults
        .iter()
        .filter_map(|f| f.applied)
        .min_by_key(|m| m.at_us)
        .unwrap_or(Moment {
            at_us: micros(epoch, Instant::now()),
            uncertainty_us: 0,
        });
    report.inject = Some(inject);
    // The wall-clock moment of the effect, for live RTO timers elsewhere.
    let injected_unix_ms = report.started_unix_ms.saturating_add(inject.at_us / 1000);
    ctx.injected_unix_ms
        .store(injected_unix_ms, std::sync::atomic::Ordering::Relaxed);
    for f in &report.faults {
        say(
            ctx,
            Phase::Observing,
            format!(
                "{tag}: {} on {} took effect at +{} (±{}): {}",
                f.kind,
                f.agent,
                fmt_us(f.applied.map_or(0, |m| m.at_us)),
                fmt_us(f.applied.map_or(0, |m| m.uncertainty_us)),
                f.evidence
            ),
        );
    }

    // Observe until every impacted probe has recovered (and holding faults are reverted) or
    // the window closes. Holding faults stay for their duration, or the whole window.
    let window_end_us = inject.at_us.saturating_add(saturating_us(window));
    let holds = ctx.faults.iter().any(|f| !f.is_instant());
    let revert_at_us = ctx
        .faults
        .iter()
        .filter_map(|f| f.duration())
        .map(|d| inject.at_us.saturating_add(saturating_us(d.get())))
        .max()
        .unwrap_or(window_end_us)
        .min(window_end_us);
    let tick = s
        .probes
        .iter()
        .map(|p| p.interval.get())
        .min()
        .unwrap_or(Duration::from_millis(10))
        .min(Duration::from_millis(50));
    let rto_us = saturating_us(s.rto.get());
    let tail_us = saturating_us(observe_tail(
        s.probes.iter().map(|p| (p.interval.get(), p.timeout.get())),
    ));
    let mut announced_impact = false;
    let mut reverted = !holds;
    loop {
        if let Some(cause) = wait_or_cancel(&mut ctx.cancel, tick).await {
            revert_all(ctx.registry, &mut report, &applied, epoch, holds).await;
            let why = match cause {
                StopCause::Operator => "aborted by an operator while observing; faults reverted",
                StopCause::Shutdown => "the controller shut down while observing; faults reverted",
            };
            return finish_aborted(report, probes, why).await;
        }
        if let Some(probe) = probes.crashed() {
            // A probe that stopped sampling would read as a service that never failed.
            revert_all(ctx.registry, &mut report, &applied, epoch, holds).await;
            report.verdict = Verdict::Error;
            report.reason = format!(
                "probe {probe} stopped sampling unexpectedly (a bug); the run cannot be graded"
            );
            report.probes = probes.stop().await;
            return report;
        }
        let now_us = micros(epoch, Instant::now());
        let recovered_while_held = !reverted
            && s.revert == RevertPolicy::OnRecovery
            && grade::settled(&GradeInput {
                probes: &probes.snapshot(),
                inject,
                revert_us: None,
                rto_us,
                window_end_us: now_us.min(window_end_us),
                expect: s.expect,
                recovery: s.recovery,
            });
        if !reverted && (now_us >= revert_at_us || recovered_while_held) {
            revert_all(ctx.registry, &mut report, &applied, epoch, true).await;
            cap_at_deadlines(&mut report, &held);
            reverted = true;
            say(
                ctx,
                Phase::Reverted,
                format!(
                    "{tag}: faults reverted at +{}",
                    fmt_us(report.revert_us.unwrap_or(now_us))
                ),
            );
        }
        let snapshot = probes.snapshot();
        let input = GradeInput {
            probes: &snapshot,
            inject,
            revert_us: report.revert_us,
            rto_us,
            window_end_us: now_us.min(window_end_us),
            expect: s.expect,
            recovery: s.recovery,
        };
        if !announced_impact {
            if let Some(d) = grade::grade(&input).time_to_detect {
                let phase = if reverted && holds {
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
        if now_us >= window_end_us {
            break;
        }
        if grade::settled(&input) && reverted {
            // Recovered: keep sampling for a tail after it, and up to the RTO line, so the
            // timeline shows the service staying up (or relapsing), not probes that stopped.
            let recovered_at = grade::grade(&input)
                .time_to_recover
                .map_or(now_us, |m| inject.at_us.saturating_add(m.us));
            if now_us >= observe_until(recovered_at, inject.at_us, rto_us, tail_us, window_end_us) {
                break;
            }
        }
    }
    report.probes = probes.stop().await;
    if !reverted {
        revert_all(ctx.registry, &mut report, &applied, epoch, holds).await;
        cap_at_deadlines(&mut report, &held);
    }

    let g = grade::grade(&GradeInput {
        probes: &report.probes,
        inject,
        revert_us: report.revert_us,
        rto_us,
        window_end_us,
        expect: s.expect,
        recovery: s.recovery,
    });
    report.verdict = g.verdict;
    report.reason = g.reason.clone();
    if let Some(f) = report.faults.iter().find(|f| f.error.is_some()) {
        report.verdict = Verdict::Error;
        report.reason = format!(
            "{} on {} was not reverted cleanly: {}",
            f.kind,
            f.agent,
            f.error.clone().unwrap_or_default()
        );
    }
    report.met_expectation = grade::meets(s.expect, report.verdict);
    report.grade = Some(g);
    report
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

/// Microseconds in `d`, saturating instead of wrapping for durations past u64's range.
fn saturating_us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn saturating_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn say(ctx: &RunCtx<'_>, phase: Phase, line: String) {
    let injected = ctx
        .injected_unix_ms
        .load(std::sync::atomic::Ordering::Relaxed);
    let _ = ctx.progress.send(ProgressEvent {
        line,
        phase,
        run: ctx.index,
        runs: ctx.scenario.repeat,
        rto_ms: ctx.scenario.rto.get().as_millis() as u64,
        injected_unix_ms: (injected > 0).then_some(injected),
    });
}

pub(super) fn failure_text(f: &v1::FaultFailure) -> String {
    let kind = match v1::FailureKind::try_from(f.kind).unwrap_or(v1::FailureKind::Unspecified) {
        v1::FailureKind::Policy => "refused by the agent's policy",
        v1::FailureKind::Invalid => "invalid",
        v1::FailureKind::System => "system error",
        v1::FailureKind::Unsupported => "unsupported",
        v1::FailureKind::Unspecified => "failed",
    };
    format!("{kind}: {}", f.message)
}

/// Why the steady-state samples do not show a healthy service, if they don't.
fn unsteady(probes: &[ProbeTimeline]) -> Option<String> {
    for p in probes {
        if p.samples.is_empty() {
            return Some(format!("probe {} produced no sample", p.name));
        }
        if let Some(s) = p.samples.iter().find(|s| !s.ok) {
            return Some(format!("probe {} failed: {}", p.name, s.error));
        }
    }
    None
}

/// Sleeps for `d`; why the run was stopped, if it was meanwhile.
async fn wait_or_cancel(
    cancel: &mut watch::Receiver<Option<StopCause>>,
    d: Duration,
) -> Option<StopCause> {
    if let Some(cause) = *cancel.borrow() {
        return Some(cause);
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = cancel.changed() => {}
    }
    *cancel.borrow()
}

async fn revert_all(
    registry: &crate::registry::AgentRegistry,
    report: &mut RunReport,
    applied: &[(Arc<AgentConn>, String)],
    epoch: Instant,
    record_time: bool,
) {
    let results = join_all(applied.iter().map(|(agent, fault_id)| async move {
        let agent = registry.get(&agent.name).unwrap_or_else(|| agent.clone());
        (fault_id.clone(), agent.revert(fault_id).await)
    }))
    .await;
    let mut last = None;
    for (fault_id, result) in results {
        let Some(rec) = report.faults.iter_mut().find(|f| f.fault_id == fault_id) else {
            continue;
        };
        match result {
            Ok(x) => match &x.report.failure {
                None => {
                    if let Some(ev) = &x.report.evidence {
                        record_revert_evidence(rec, ev);
                    }
                    let at = effect_moment(
                        micros(epoch, x.sent_at),
                        micros(epoch, x.received_at),
                        x.report.apply_us,
                        x.report.since_effect_us,
                    )
                    .at_us;
                    if record_time {
                        rec.reverted_us = Some(at);
                        last = last.max(Some(at));
                    }
                }
                Some(f) => rec.error = Some(format!("revert: {}", failure_text(f))),
            },
            Err(e) => rec.error = Some(format!("revert: {e}")),
        }
    }
    if record_time {
        report.revert_us = last;
    }
}

/// Holding faults are lifted by their agent when their duration is up, and a revert the
/// controller sends after that only finds them gone: the moment it records is then later than
/// the real one. Each fault's revert is the earlier of the recorded moment and its effect plus
/// its duration (`held`: fault id, microseconds), and the run's is the last of them, so "back
/// only after the revert" is judged against when the fault really ended.
fn cap_at_deadlines(report: &mut RunReport, held: &[(String, u64)]) {
    let mut last = None;
    for f in &mut report.faults {
        let deadline = held
            .iter()
            .find(|(id, _)| *id == f.fault_id)
            .zip(f.applied)
            .map(|((_, us), m)| m.at_us.saturating_add(*us));
        if let (Some(r), Some(d)) = (f.reverted_us, deadline) {
            f.reverted_us = Some(r.min(d));
        }
        last = last.max(f.reverted_us);
    }
    if report.revert_us.is_some() {
        report.revert_us = last;
    }
}

/// What the agent reported when it reverted a fault, written down beside what it reported
/// when it applied it.
fn record_revert_evidence(rec: &mut FaultRecord, ev: &v1::Evidence) {
    rec.revert_figures.extend(ev.figures.clone());
    if !ev.summary.is_empty() {
        rec.revert_evidence = ev.summary.clone();
    }
    if !ev.residue.is_empty() {
        rec.error = Some(format!("residue after revert: {}", ev.residue.join("; ")));
    }
}

async fn finish_aborted(mut report: RunReport, probes: ProbeSet, why: &str) -> RunReport {
    report.verdict = Verdict::Aborted;
    report.reason = why.to_string();
    report.probes = probes.stop().await;
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_its_agent_lifted_at_its_deadline_is_reverted_then() {
        let fault = |id: &str, at_us: u64, reverted_us: u64| FaultRecord {
            fault_id: id.into(),
            applied: Some(Moment {
                at_us,
                uncertainty_us: 0,
            }),
            reverted_us: Some(reverted_us),
            ..FaultRecord::default()
        };
        let mut report = errored("r".into(), 1, String::new());
        // Held 600 ms from 305 ms: the agent lifted it at 905 ms; the controller's revert
        // found it gone at 918 ms. A kill (not held) keeps its moment.
        report.faults = vec![
            fault("pause", 305_000, 917_700),
            fault("kill", 305_000, 310_000),
        ];
        report.revert_us = Some(917_700);
        cap_at_deadlines(&mut report, &[("pause".into(), 600_000)]);
        assert_eq!(report.faults[0].reverted_us, Some(905_000));
        assert_eq!(report.faults[1].reverted_us, Some(310_000));
        assert_eq!(report.revert_us, Some(905_000));
        // A revert before the deadline (revert = "on_recovery") is when it happened.
        report.faults = vec![fault("pause", 305_000, 500_000)];
        report.revert_us = Some(500_000);
        cap_at_deadlines(&mut report, &[("pause".into(), 600_000)]);
        assert_eq!(report.revert_us, Some(500_000));
    }

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

    #[test]
    fn revert_figures_do_not_overwrite_apply_figures() {
        // A disk fill: what applying found and did, then what reverting found.
        let mut rec = FaultRecord {
            evidence: "filled /data to 95%: wrote 800 bytes".into(),
            figures: [
                ("free_before", 1_000),
                ("free_after", 200),
                ("bytes_written", 800),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
            ..FaultRecord::default()
        };
        let revert = v1::Evidence {
            summary: "removed the fill file".into(),
            figures: [("free_before", 200), ("free_after", 1_000)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            ..v1::Evidence::default()
        };
        record_revert_evidence(&mut rec, &revert);
        assert_eq!(
            rec.figures.get("free_after"),
            Some(&200),
            "the apply figure stays"
        );
        assert_eq!(rec.figures.get("free_before"), Some(&1_000));
        assert_eq!(rec.revert_figures.get("free_after"), Some(&1_000));
        assert_eq!(rec.revert_figures.get("free_before"), Some(&200));
        assert_eq!(rec.revert_evidence, "removed the fill file");
    }
}
