//! The steady-state phase: probes run for the scenario's window and must all answer well
//! before anything is injected, since recovery cannot be measured for a service already down.

use super::run::{say, wait_or_cancel, RunCtx};
use super::samples::SampleSource;
use super::{Phase, StopCause};
use crate::timeline::ProbeTimeline;

/// How the steady-state window went.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum SteadyState {
    /// Every probe answered, and answered well: inject.
    Healthy,
    /// Why the service did not look healthy: nothing is injected.
    Unhealthy(String),
    /// The run was stopped during the window.
    Stopped(StopCause),
}

/// Waits out the steady-state window, then judges the samples it produced.
pub(super) async fn hold_steady_state(
    ctx: &mut RunCtx<'_>,
    probes: &impl SampleSource,
) -> SteadyState {
    let s = &ctx.input.scenario;
    say(
        ctx,
        Phase::SteadyState,
        format!(
            "run {}/{}: steady state for {}",
            ctx.index, s.repeat, s.steady_state
        ),
    );
    if let Some(cause) = wait_or_cancel(&mut ctx.cancel, s.steady_state.get()).await {
        return SteadyState::Stopped(cause);
    }
    match unsteady(&ctx.input.scenario.health_only(probes.snapshot())) {
        Some(reason) => SteadyState::Unhealthy(reason),
        None => SteadyState::Healthy,
    }
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::engine::fake::{Fixture, ScriptedProbes};

    #[tokio::test(start_paused = true)]
    async fn a_healthy_service_passes_after_the_whole_window() {
        let fx = Fixture::new(Fixture::KILL);
        let probes = ScriptedProbes::up_all_along(fx.epoch);
        let outcome = hold_steady_state(&mut fx.ctx(), &probes).await;
        assert_eq!(outcome, SteadyState::Healthy);
        assert_eq!(fx.epoch.elapsed(), Duration::from_secs(1), "the window");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_or_silent_probe_is_unhealthy() {
        let fx = Fixture::new(Fixture::KILL);
        let probes = ScriptedProbes::new(fx.epoch, 10, |t| t != 500);
        assert_eq!(
            hold_steady_state(&mut fx.ctx(), &probes).await,
            SteadyState::Unhealthy("probe http failed: connection refused".into())
        );
        let fx = Fixture::new(Fixture::KILL);
        let silent = ScriptedProbes::silent(fx.epoch);
        assert_eq!(
            hold_steady_state(&mut fx.ctx(), &silent).await,
            SteadyState::Unhealthy("probe http produced no sample".into())
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_abort_ends_the_window_at_once() {
        let fx = Fixture::new(Fixture::KILL);
        let probes = ScriptedProbes::up_all_along(fx.epoch);
        fx.stop_after(Duration::from_millis(200), StopCause::Operator);
        let outcome = hold_steady_state(&mut fx.ctx(), &probes).await;
        assert_eq!(outcome, SteadyState::Stopped(StopCause::Operator));
        assert_eq!(fx.epoch.elapsed(), Duration::from_millis(200));
    }
}
