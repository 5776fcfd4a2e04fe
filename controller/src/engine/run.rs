//! One run, phase after phase: steady state, inject, observe, revert, grade (each in its own
//! module). Time is read through tokio's clock, so tests run a whole run in virtual time.

use std::sync::Arc;
use std::time::Duration;

use gameday_proto::v1;
use tokio::sync::watch;
use tokio::time::Instant;

use super::inject::{inject_all, Injection};
use super::observe::{observe, Observed, Window};
use super::observer::{RunObserver, RunStart};
use super::preflight::PreflightError;
use super::progress::{Phase, Progress, ProgressEvent};
use super::recorder::Recorder;
use super::remediate::{Remediator, RunInfo};
use super::revert::{cap_at_deadlines, revert_all};
use super::samples::SampleSource;
use super::steady_state::{hold_steady_state, SteadyState};
use super::transport::FaultTransport;
use super::verdict::grade_run;
use super::StopCause;
use crate::grade::{fmt_us, Verdict};
use crate::probe::ProbeSet;
use crate::report::RunReport;
use crate::scenario::ScenarioFile;
use crate::timeline::{monotonic_ns, unix_ms_now};

/// Everything one run needs.
pub(super) struct RunCtx<'a> {
    /// The scenario, with its file and text.
    pub input: &'a ScenarioFile,
    pub run_id: String,
    pub index: u32,
    pub targets: Vec<Arc<dyn FaultTransport>>,
    /// The scenario's faults, peers resolved.
    pub faults: Vec<gameday_proto::Fault>,
    pub progress: &'a Progress,
    pub cancel: watch::Receiver<Option<StopCause>>,
    pub observers: &'a [Arc<dyn RunObserver>],
    pub identity: &'a super::RunIdentity,
    /// When the fault took effect (wall clock, ms), 0 before.
    pub injected_unix_ms: std::sync::atomic::AtomicU64,
    /// Alerts from the team's monitoring, when the controller receives them.
    pub alerts: Option<&'a Arc<crate::alerts::AlertLog>>,
    /// Set when an operator asks to revert now (`revert = "manual"`).
    pub revert_now: watch::Receiver<bool>,
    /// How each remediation step is carried out, in the scenario's order.
    pub steps: Vec<super::remediate::StepDriver>,
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

pub(super) fn errored(run_id: String, index: u32, reason: String) -> RunReport {
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
        stages: vec![],
        detection: None,
        annotations: vec![],
        remediation: None,
        remediation_signal: None,
        remediation_steps: vec![],
        faults: vec![],
        probes: vec![],
    }
}

pub(super) async fn run_once(mut ctx: RunCtx<'_>) -> RunReport {
    let s = &ctx.input.scenario;
    let epoch = Instant::now();
    // An ERROR until a phase says otherwise.
    let report = RunReport {
        targets: ctx.targets.iter().map(|t| t.name().to_string()).collect(),
        ..errored(ctx.run_id.clone(), ctx.index, String::new())
    };
    for o in ctx.observers {
        o.run_started(&RunStart {
            run_id: &ctx.run_id,
            index: ctx.index,
            input: ctx.input,
            targets: &report.targets,
            epoch_monotonic_ns: report.epoch_monotonic_ns,
            identity: ctx.identity,
        });
    }
    // Probes time their checks on the std clock: they measure real latency, never virtual time.
    let probes = match ProbeSet::start(&s.probes, epoch.into_std()) {
        Ok(p) => p,
        Err(e) => {
            let mut report = report;
            report.reason = format!("probe could not start: {e}");
            return report;
        }
    };
    let recorder = Recorder::start(&probes, ctx.observers, &ctx.run_id);
    let report = run_phases(&mut ctx, report, probes, epoch).await;
    recorder.finish().await;
    for o in ctx.observers {
        for f in &report.faults {
            o.fault(&ctx.run_id, f);
        }
    }
    report
}

/// Every phase after preflight, reading samples from `probes`; times are microseconds since
/// `epoch`. Whatever happens, no fault applied here is left held when this returns.
pub(super) async fn run_phases(
    ctx: &mut RunCtx<'_>,
    mut report: RunReport,
    probes: impl SampleSource,
    epoch: Instant,
) -> RunReport {
    match hold_steady_state(ctx, &probes).await {
        SteadyState::Healthy => {}
        SteadyState::Unhealthy(reason) => {
            report.verdict = Verdict::Inconclusive;
            report.reason = format!("steady state not healthy, nothing injected: {reason}");
            report.probes = probes.stop().await;
            return report;
        }
        SteadyState::Stopped(cause) => {
            let why = match cause {
                StopCause::Operator => {
                    "aborted by an operator during steady state; nothing injected"
                }
                StopCause::Shutdown => {
                    "the controller shut down during steady state; nothing injected"
                }
            };
            return finish_aborted(report, probes, why).await;
        }
    }

    let injection = match inject_all(ctx, &mut report, epoch).await {
        Ok(injection) => injection,
        Err(failed) => {
            report.reason = failed.to_string();
            report.probes = probes.stop().await;
            return report;
        }
    };
    announce_injection(ctx, &report, &injection);

    let window = Window::plan(&ctx.input.scenario, &ctx.faults, injection.at.at_us);
    let run = RunInfo {
        run_id: ctx.run_id.clone(),
        scenario: ctx.input.scenario.name.clone(),
        epoch,
        inject_us: injection.at.at_us,
        fault_unix_ms: ctx
            .injected_unix_ms
            .load(std::sync::atomic::Ordering::Relaxed),
        progress: ctx.progress.clone(),
        template: event(
            ctx,
            Phase::Observing,
            format!("run {}/{}", ctx.index, ctx.input.scenario.repeat),
        ),
    };
    let mut steps = Remediator::new(&ctx.input.scenario.remediation, &ctx.steps, run);
    let observed = observe(
        ctx,
        &mut report,
        &probes,
        &injection,
        &window,
        epoch,
        &mut steps,
    )
    .await;
    let ended_us = micros(epoch, Instant::now());
    let stopped = !matches!(observed, Observed::Ended { .. });
    report.remediation_steps = steps.finish(ended_us, stopped).await;
    let reverted = match observed {
        Observed::Ended { reverted } => reverted,
        Observed::Stopped(cause) => {
            revert_all(&mut report, &injection.applied, epoch, window.holds).await;
            let why = match cause {
                StopCause::Operator => "aborted by an operator while observing; faults reverted",
                StopCause::Shutdown => "the controller shut down while observing; faults reverted",
            };
            return finish_aborted(report, probes, why).await;
        }
        Observed::ProbeCrashed(probe) => {
            // A probe that stopped sampling would read as a service that never failed.
            revert_all(&mut report, &injection.applied, epoch, window.holds).await;
            report.verdict = Verdict::Error;
            report.reason = format!(
                "probe {probe} stopped sampling unexpectedly (a bug); the run cannot be graded"
            );
            report.probes = probes.stop().await;
            return report;
        }
    };
    report.probes = probes.stop().await;
    if !reverted {
        revert_all(&mut report, &injection.applied, epoch, window.holds).await;
        cap_at_deadlines(&mut report, &injection.held);
    }
    report.detection = super::detect::await_detection(ctx, &report, epoch).await;
    grade_run(
        &ctx.input.scenario,
        &mut report,
        injection.at,
        window.end_us,
    );
    report
}

/// Publishes when the faults took effect: the wall-clock moment for live RTO timers, and a line
/// per fault with its evidence.
fn announce_injection(ctx: &RunCtx<'_>, report: &RunReport, injection: &Injection) {
    let injected_unix_ms = report
        .started_unix_ms
        .saturating_add(injection.at.at_us / 1000);
    ctx.injected_unix_ms
        .store(injected_unix_ms, std::sync::atomic::Ordering::Relaxed);
    for f in &report.faults {
        say(
            ctx,
            Phase::Observing,
            format!(
                "run {}/{}: {} on {} took effect at +{} (±{}): {}",
                ctx.index,
                ctx.input.scenario.repeat,
                f.kind,
                f.agent,
                fmt_us(f.applied.map_or(0, |m| m.at_us)),
                fmt_us(f.applied.map_or(0, |m| m.uncertainty_us)),
                f.evidence
            ),
        );
    }
}

/// Microseconds from `epoch` to `t` on tokio's clock (zero if `t` is earlier).
pub(super) fn micros(epoch: Instant, t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(epoch).as_micros()).unwrap_or(u64::MAX)
}

/// Microseconds in `d`, saturating instead of wrapping for durations past u64's range.
pub(super) fn saturating_us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

pub(super) fn saturating_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

pub(super) fn say(ctx: &RunCtx<'_>, phase: Phase, line: String) {
    let _ = ctx.progress.send(event(ctx, phase, line));
}

/// A progress event of this run.
pub(super) fn event(ctx: &RunCtx<'_>, phase: Phase, line: String) -> ProgressEvent {
    let injected = ctx
        .injected_unix_ms
        .load(std::sync::atomic::Ordering::Relaxed);
    ProgressEvent {
        line,
        phase,
        run: ctx.index,
        runs: ctx.input.scenario.repeat,
        rto_ms: ctx.input.scenario.rto.get().as_millis() as u64,
        injected_unix_ms: (injected > 0).then_some(injected),
    }
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

/// Sleeps for `d`; why the run was stopped, if it was meanwhile.
pub(super) async fn wait_or_cancel(
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

async fn finish_aborted(mut report: RunReport, probes: impl SampleSource, why: &str) -> RunReport {
    report.verdict = Verdict::Aborted;
    report.reason = why.to_string();
    report.probes = probes.stop().await;
    report
}
