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
use crate::grade::{self, fmt_us, GradeInput, Verdict};
use crate::probe::{micros, ProbeSet};
use crate::registry::AgentConn;
use crate::report::{FaultRecord, RunReport};
use crate::scenario::{Expectation, RevertPolicy, Scenario};
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
    pub cancel: watch::Receiver<bool>,
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
    if wait_or_cancel(&mut ctx.cancel, s.steady_state.get()).await {
        return finish_aborted(report, probes, "aborted by an operator during steady state").await;
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
    for agent in &ctx.targets {
        for (i, fault) in ctx.faults.iter().enumerate() {
            let fault_id = format!("{}-f{i}-{}", ctx.run_id, agent.name);
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
    let mut announced_impact = false;
    let mut reverted = !holds;
    loop {
        if wait_or_cancel(&mut ctx.cancel, tick).await {
            revert_all(ctx.registry, &mut report, &applied, epoch, holds).await;
            return finish_aborted(report, probes, "aborted by an operator while observing").await;
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
            });
        if !reverted && (now_us >= revert_at_us || recovered_while_held) {
            revert_all(ctx.registry, &mut report, &applied, epoch, true).await;
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
        if (grade::settled(&input) && reverted) || now_us >= window_end_us {
            break;
        }
    }
    report.probes = probes.stop().await;
    if !reverted {
        revert_all(ctx.registry, &mut report, &applied, epoch, holds).await;
    }

    let g = grade::grade(&GradeInput {
        probes: &report.probes,
        inject,
        revert_us: report.revert_us,
        rto_us,
        window_end_us,
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
    report.met_expectation = matches!(
        (s.expect, report.verdict),
        (Expectation::Recovery, Verdict::Pass) | (Expectation::NoImpact, Verdict::NoImpact)
    );
    report.grade = Some(g);
    report
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

fn failure_text(f: &v1::FaultFailure) -> String {
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

/// Sleeps for `d`; true if the run was cancelled meanwhile.
async fn wait_or_cancel(cancel: &mut watch::Receiver<bool>, d: Duration) -> bool {
    if *cancel.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => *cancel.borrow(),
        changed = cancel.changed() => changed.is_ok() && *cancel.borrow(),
    }
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
                        rec.figures.extend(ev.figures.clone());
                        if !ev.summary.is_empty() {
                            rec.revert_evidence = ev.summary.clone();
                        }
                        if !ev.residue.is_empty() {
                            rec.error =
                                Some(format!("residue after revert: {}", ev.residue.join("; ")));
                        }
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

async fn finish_aborted(mut report: RunReport, probes: ProbeSet, why: &str) -> RunReport {
    report.verdict = Verdict::Aborted;
    report.reason = why.to_string();
    report.probes = probes.stop().await;
    report
}
