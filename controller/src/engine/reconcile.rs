//! Faults an agent reports when it (re)registers: adopted when their run is going on here,
//! reverted at once when it is not (a run of a controller that died and came back within the
//! agents' lease). Either way they are live, visible and abortable until confirmed reverted.

use std::sync::Arc;

use futures_util::future::join_all;
use gameday_proto::v1;
use gameday_proto::Fault;

use super::Engine;
use crate::registry::{AgentConn, LiveState};

/// What became of a fault a re-registering agent held for a run this controller is not running.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrphanRevert {
    /// The run it belonged to.
    pub run_id: String,
    /// The fault.
    pub fault_id: String,
    /// The agent that held it.
    pub agent: String,
    /// Its kind, e.g. `network_partition`.
    pub kind: String,
    /// What the agent's revert reported (empty when it failed).
    pub evidence: String,
    /// Why the revert failed, when it did; the fault then stays live for `abort` to retry.
    pub error: Option<String>,
}

impl OrphanRevert {
    /// One sentence for the run's record.
    pub fn sentence(&self) -> String {
        match &self.error {
            None => format!(
                "{} on {} was still held when the agent re-registered with a restarted \
                 controller; reverted then",
                self.kind, self.agent
            ),
            Some(e) => format!(
                "{} on {} was still held when the agent re-registered with a restarted \
                 controller; reverting it failed: {e}",
                self.kind, self.agent
            ),
        }
    }
}

fn kind_of(held: &v1::HeldFault) -> String {
    held.spec
        .as_ref()
        .and_then(|s| Fault::from_wire(s).ok())
        .map_or("unknown fault", |f| f.kind().name())
        .to_string()
}

impl Engine {
    /// Reconciles the faults `conn`'s agent reported at registration with the runs going on.
    /// Returns once every orphan's revert was answered (or failed).
    pub async fn reconcile(&self, conn: &Arc<AgentConn>, held: Vec<v1::HeldFault>) {
        let mut orphans = Vec::new();
        for h in held {
            let kind = kind_of(&h);
            // Decided under the lock of the active runs, so a run that ends meanwhile either
            // sees the adopted fault in its final sweep or leaves it to be reverted here.
            let adopted = self.while_active(&h.run_id, || {
                conn.track(
                    h.fault_id.clone(),
                    h.run_id.clone(),
                    &kind,
                    LiveState::Adopted,
                )
            });
            if adopted {
                tracing::info!(agent = %conn.name, fault = %h.fault_id, run = %h.run_id, kind = %kind, "adopted a fault the agent still holds for a run going on");
            } else {
                tracing::warn!(agent = %conn.name, fault = %h.fault_id, run = %h.run_id, kind = %kind, remaining_ms = h.remaining_ms, "the agent holds a fault of a run this controller is not running: reverting it now");
                conn.track(
                    h.fault_id.clone(),
                    h.run_id.clone(),
                    &kind,
                    LiveState::Reverting,
                );
                orphans.push((h, kind));
            }
        }
        let outcomes = join_all(orphans.into_iter().map(|(h, kind)| async move {
            let result = conn.revert(&h.fault_id).await;
            let mut outcome = OrphanRevert {
                run_id: h.run_id,
                fault_id: h.fault_id,
                agent: conn.name.clone(),
                kind,
                evidence: String::new(),
                error: None,
            };
            match result {
                Ok(x) => match x.report.failure {
                    None => {
                        let ev = x.report.evidence.unwrap_or_default();
                        outcome.evidence = ev.summary;
                        if !ev.residue.is_empty() {
                            outcome.error =
                                Some(format!("residue after revert: {}", ev.residue.join("; ")));
                        }
                    }
                    Some(f) => outcome.error = Some(f.message),
                },
                Err(e) => outcome.error = Some(e.to_string()),
            }
            outcome
        }))
        .await;
        for o in outcomes {
            match &o.error {
                None => {
                    tracing::warn!(agent = %o.agent, fault = %o.fault_id, run = %o.run_id, evidence = %o.evidence, "reverted a fault left by an earlier controller's run")
                }
                Some(e) => {
                    tracing::error!(agent = %o.agent, fault = %o.fault_id, run = %o.run_id, error = %e, "could not revert a fault left by an earlier controller's run; it stays listed for abort")
                }
            }
            for observer in &self.observers {
                observer.orphan_reverted(&o);
            }
        }
    }

    /// Reverts whatever any agent still holds for `run_id` (a run that just ended): a fault
    /// adopted after the run's own revert, or whose revert went to a connection that had
    /// since been replaced.
    pub(super) async fn revert_leftovers(&self, run_id: &str) {
        for agent in self.registry.all() {
            for (fault_id, entry) in agent.live_faults() {
                if entry.run_id != run_id {
                    continue;
                }
                match agent.revert(&fault_id).await {
                    Ok(x) if x.report.failure.is_none() => {
                        tracing::warn!(agent = %agent.name, fault = %fault_id, run = %run_id, "reverted a fault still held after its run ended")
                    }
                    Ok(x) => {
                        tracing::error!(agent = %agent.name, fault = %fault_id, run = %run_id, error = %x.report.failure.map(|f| f.message).unwrap_or_default(), "could not revert a fault still held after its run ended")
                    }
                    Err(e) => {
                        tracing::error!(agent = %agent.name, fault = %fault_id, run = %run_id, error = %e, "could not revert a fault still held after its run ended")
                    }
                }
            }
        }
    }
}
