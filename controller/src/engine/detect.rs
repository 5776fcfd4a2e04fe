//! The detect phase, for a scenario with `[detect]`: waits until an alert matching its selector
//! has arrived or its `within` has passed since the injection, whichever is first, then grades
//! detection on the alerts that arrived.

use tokio::time::Instant;

use super::progress::Phase;
use super::run::{say, RunCtx};
use crate::grade::detect::{detect, Detection, SeenAlert};
use crate::report::RunReport;

/// Detection for the run in `report` (injected, observed and reverted), or `None` when the
/// scenario has no `[detect]` or no fault took effect.
pub(super) async fn await_detection(
    ctx: &mut RunCtx<'_>,
    report: &RunReport,
    epoch: Instant,
) -> Option<Detection> {
    let spec = ctx.input.scenario.detect.as_ref()?;
    let inject_us = report.inject?.at_us;
    let injected = epoch + std::time::Duration::from_micros(inject_us);
    let deadline = injected + spec.within.get();
    let Some(log) = ctx.alerts else {
        // Preflight refuses a [detect] scenario on a controller without a receiver; a run
        // that got here anyway has seen no alert.
        return Some(detect(spec, inject_us, &[]));
    };
    let mut said = false;
    loop {
        // Taken before looking, so an alert landing in between still wakes us.
        let arrived = log.arrived();
        let seen: Vec<SeenAlert> = log
            .since(injected)
            .iter()
            .map(|r| SeenAlert::on_run(r, epoch, report.started_unix_ms))
            .collect();
        let detection = detect(spec, inject_us, &seen);
        if detection.noticed() || Instant::now() >= deadline {
            say(
                ctx,
                Phase::Observing,
                format!(
                    "run {}/{}: {}",
                    ctx.index,
                    ctx.input.scenario.repeat,
                    detection.summary()
                ),
            );
            return Some(detection);
        }
        if !said {
            say(
                ctx,
                Phase::Observing,
                format!(
                    "run {}/{}: waiting up to +{} after the fault for an alert matching {}",
                    ctx.index,
                    ctx.input.scenario.repeat,
                    gameday_proto::Duration::from_millis(detection.within_us / 1000),
                    detection.selector
                ),
            );
            said = true;
        }
        tokio::select! {
            _ = arrived => {}
            _ = tokio::time::sleep_until(deadline) => {}
            _ = ctx.cancel.changed() => {
                // Stopped: grade on what arrived; the faults are already reverted.
                return Some(detection);
            }
        }
    }
}

/// When the alert that notices the fault (the `[detect]` selector, started after the
/// injection at `inject_us`) arrived, µs since `epoch`; `None` until it has.
pub(super) fn alert_arrived_us(
    ctx: &RunCtx<'_>,
    epoch: Instant,
    started_unix_ms: u64,
    inject_us: u64,
) -> Option<u64> {
    let spec = ctx.input.scenario.detect.as_ref()?;
    let log = ctx.alerts?;
    let injected = epoch + std::time::Duration::from_micros(inject_us);
    let seen: Vec<SeenAlert> = log
        .since(injected)
        .iter()
        .map(|r| SeenAlert::on_run(r, epoch, started_unix_ms))
        .collect();
    detect(spec, inject_us, &seen)
        .alert
        .map(|a| inject_us.saturating_add(a.delivered_after_us))
}
