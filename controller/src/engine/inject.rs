//! The inject phase: every fault goes to every target at once, and the first effect is
//! `t_inject`. A fault that cannot be applied undoes those that were, so nothing is left
//! half-applied.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use gameday_proto::v1;
use tokio::time::Instant;

use super::revert::revert_all;
use super::run::{failure_text, micros, saturating_ms, saturating_us, RunCtx};
use super::transport::FaultTransport;
use crate::report::{FaultRecord, RunReport};
use crate::timeline::{effect_moment, Moment};

/// How much longer than the observation window an agent keeps a fault before reverting it on
/// its own, so the controller's revert normally wins and the agent's deadline is the backstop.
const DEADLINE_MARGIN: Duration = Duration::from_secs(5);

/// A fault that took effect on one agent, to be reverted there.
pub(super) struct Applied {
    pub agent: Arc<dyn FaultTransport>,
    pub fault_id: String,
}

/// Every fault applied: when they took effect, and how to undo them.
pub(super) struct Injection {
    /// `t_inject`: the first effect on any target.
    pub at: Moment,
    pub applied: Vec<Applied>,
    /// How long each holding fault is planned to hold (fault id, microseconds): the agent
    /// lifts it then on its own.
    pub held: Vec<(String, u64)>,
}

/// A fault could not be applied; what did apply has been reverted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("fault {kind} could not be applied on {agent}: {error}")]
pub(super) struct InjectFailed {
    kind: String,
    agent: String,
    error: String,
}

/// Applies every fault on every target at once and records each in `report` (and tells the
/// observers). Times are microseconds since `epoch`.
pub(super) async fn inject_all(
    ctx: &RunCtx<'_>,
    report: &mut RunReport,
    epoch: Instant,
) -> Result<Injection, InjectFailed> {
    let deadline_ms = saturating_ms(
        ctx.input
            .scenario
            .observe
            .get()
            .saturating_add(DEADLINE_MARGIN),
    );
    let mut requests = Vec::new();
    let mut held = Vec::new();
    for agent in &ctx.targets {
        for (i, fault) in ctx.faults.iter().enumerate() {
            let fault_id = super::preflight::fault_id(&ctx.run_id, i, agent.name());
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
    let mut applied = Vec::new();
    for (agent, fault_id, kind, result) in join_all(requests).await {
        let mut rec = FaultRecord {
            fault_id: fault_id.clone(),
            agent: agent.name().to_string(),
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
                        applied.push(Applied { agent, fault_id });
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
        let failed = InjectFailed {
            kind: failed.kind.clone(),
            agent: failed.agent.clone(),
            error: failed.error.clone().unwrap_or_default(),
        };
        revert_all(report, &applied, epoch, false).await;
        return Err(failed);
    }
    let at = report
        .faults
        .iter()
        .filter_map(|f| f.applied)
        .min_by_key(|m| m.at_us)
        .unwrap_or(Moment {
            at_us: micros(epoch, Instant::now()),
            uncertainty_us: 0,
        });
    report.inject = Some(at);
    Ok(Injection { at, applied, held })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fake::{Fixture, Op, ScriptedAgent};

    #[tokio::test(start_paused = true)]
    async fn every_target_is_applied_at_once_and_the_first_effect_is_t_inject() {
        let mut fx = Fixture::new(Fixture::PAUSE);
        fx.targets = vec![
            ScriptedAgent::new("web-1", Duration::from_millis(4)),
            ScriptedAgent::new("web-2", Duration::from_millis(100)),
            ScriptedAgent::new("web-3", Duration::from_millis(40)),
        ];
        let mut report = fx.report();
        let injection = inject_all(&fx.ctx(), &mut report, fx.epoch).await.unwrap();
        // All sent at 0; one round trip of the slowest, not the sum of all three.
        assert_eq!(fx.epoch.elapsed(), Duration::from_millis(100));
        for agent in &fx.targets {
            assert_eq!(agent.calls(), vec![(Op::Apply, 0)], "{}", agent.name());
        }
        // The fastest took effect half its round trip after it was sent.
        assert_eq!(injection.at.at_us, 2_000);
        assert_eq!(report.inject, Some(injection.at));
        assert_eq!(injection.applied.len(), 3);
        assert_eq!(injection.held.len(), 3, "a pause holds");
        assert!(injection.held.iter().all(|(_, us)| *us == 2_000_000));
        assert!(report.faults.iter().all(|f| f.error.is_none()));
        // The agent's own backstop: the 10 s window plus a margin, so the controller's revert
        // normally comes first.
        assert_eq!(fx.targets[0].deadlines_ms(), vec![15_000]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_apply_reverts_what_did_apply() {
        let mut fx = Fixture::new(Fixture::PAUSE);
        let refusing = ScriptedAgent::new("web-2", Duration::from_millis(10));
        refusing.refuse_apply("no process matches");
        fx.targets = vec![
            ScriptedAgent::new("web-1", Duration::from_millis(10)),
            refusing,
            ScriptedAgent::new("web-3", Duration::from_millis(10)),
        ];
        let mut report = fx.report();
        let failed = inject_all(&fx.ctx(), &mut report, fx.epoch)
            .await
            .err()
            .expect("the inject fails");
        assert_eq!(
            failed.to_string(),
            "fault process_pause could not be applied on web-2: invalid: no process matches"
        );
        // Both others were reverted once their applies were in; the refused one never was.
        assert_eq!(
            fx.targets[0].calls(),
            vec![(Op::Apply, 0), (Op::Revert, 10)]
        );
        assert_eq!(fx.targets[1].calls(), vec![(Op::Apply, 0)]);
        assert_eq!(
            fx.targets[2].calls(),
            vec![(Op::Apply, 0), (Op::Revert, 10)]
        );
        assert_eq!(report.inject, None);
        assert_eq!(
            report.revert_us, None,
            "no revert time for an inject that failed"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_agent_that_hangs_up_fails_the_inject() {
        let mut fx = Fixture::new(Fixture::KILL);
        let gone = ScriptedAgent::new("web-1", Duration::from_millis(10));
        gone.hang_up();
        fx.targets = vec![gone];
        let mut report = fx.report();
        let failed = inject_all(&fx.ctx(), &mut report, fx.epoch).await.err();
        assert_eq!(
            failed.map(|f| f.to_string()).as_deref(),
            Some("fault process_kill could not be applied on web-1: agent web-1 disconnected before answering")
        );
    }
}
