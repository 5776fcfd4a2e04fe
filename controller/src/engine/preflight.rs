//! Preflight: resolve a scenario's targets among connected agents and check each can do the job:
//! it advertises every fault's kind (or says why not), and it would accept every fault as
//! written (policy, processes, paths), asked without applying anything.

use std::sync::Arc;

use futures_util::future::join_all;
use gameday_proto::v1::UnavailableCause;
use gameday_proto::Fault;

use super::remediate::StepDriver;
use super::transport::{FaultTransport, RegisteredAgent};
use crate::registry::{AgentConn, AgentRegistry};
use crate::scenario::{Scenario, StepAction};

/// Why a run cannot start. Nothing has been injected when this is returned.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PreflightError {
    /// A target named by the scenario is not connected.
    #[error("agent {0:?} is not connected (see `gameday agents`)")]
    AgentMissing(String),
    /// No connected agent carries the labels.
    #[error("no connected agent matches labels {0}")]
    NoLabelMatch(String),
    /// More targets than the blast-radius limit allows.
    #[error("{found} agents match the targets ({names}), more than max_targets = {max}")]
    BlastRadius {
        /// Matching agents.
        found: usize,
        /// Their names.
        names: String,
        /// The limit.
        max: u32,
    },
    /// A partition names a peer agent that is not connected.
    #[error("network_partition peer agent {0:?} is not connected, so its address is unknown")]
    PeerMissing(String),
    /// A target cannot apply a kind of fault, and said why when it registered.
    #[error("{kind} is not available on {agent}: {}: {detail}", cause_text(*.cause))]
    Unavailable {
        /// The agent.
        agent: String,
        /// The fault kind.
        kind: String,
        /// Tool missing, no rights, policy, or the host.
        cause: UnavailableCause,
        /// What the agent found.
        detail: String,
    },
    /// A target would refuse a fault as written (asked at preflight, nothing applied).
    #[error("fault {kind} would not be applied on {agent}: {reason}")]
    Refused {
        /// The agent.
        agent: String,
        /// The fault kind.
        kind: String,
        /// The agent's answer, as a failed apply would report it.
        reason: String,
    },
    /// A target did not answer the check.
    #[error("agent {agent} did not answer the preflight check of {kind}: {error}")]
    Unanswered {
        /// The agent.
        agent: String,
        /// The fault kind.
        kind: String,
        /// What went wrong.
        error: String,
    },
    /// A remediation step's agent is not connected.
    #[error("remediation step {step}: agent {agent:?} is not connected (see `gameday agents`)")]
    StepAgentMissing {
        /// The step.
        step: String,
        /// Its agent.
        agent: String,
    },
    /// A remediation step's agent predates remediation steps.
    #[error("remediation step {step}: agent {agent} does not run remediation steps (it predates them); upgrade it")]
    StepAgentTooOld {
        /// The step.
        step: String,
        /// Its agent.
        agent: String,
    },
    /// A remediation step names a runbook the controller's config does not have.
    #[error(
        "remediation step {step}: no runbook {runbook:?} in the controller's config ({known})"
    )]
    NoRunbook {
        /// The step.
        step: String,
        /// The runbook named.
        runbook: String,
        /// The configured runbooks, or that there are none.
        known: String,
    },
    /// A remediation step's agent would refuse it (asked at preflight, nothing run).
    #[error("remediation step {step} would not run on {agent}: {reason}")]
    StepRefused {
        /// The step.
        step: String,
        /// Its agent.
        agent: String,
        /// The agent's answer.
        reason: String,
    },
    /// The scenario has `[detect]`, but this controller receives no alerts.
    #[error("the scenario has [detect], but this controller receives no alerts: add [alerts] to its config (gameday serve) and point Alertmanager at it")]
    NoAlertReceiver,
    /// A target lacks a capability a fault needs (an agent that does not say why).
    #[error("agent {agent:?} cannot apply {kind}: it advertises [{advertised}] (missing tool, rights, or not allowed by its policy)")]
    MissingCapability {
        /// The agent.
        agent: String,
        /// The fault kind.
        kind: String,
        /// What it can do.
        advertised: String,
    },
}

/// The agents a scenario targets, each checked for every fault's capability.
pub fn resolve(
    scenario: &Scenario,
    registry: &AgentRegistry,
) -> Result<Vec<Arc<AgentConn>>, PreflightError> {
    let targets = &scenario.targets;
    let mut chosen: Vec<Arc<AgentConn>> = Vec::new();
    for name in &targets.agents {
        let agent = registry
            .get(name)
            .ok_or_else(|| PreflightError::AgentMissing(name.clone()))?;
        chosen.push(agent);
    }
    if !targets.labels.is_empty() {
        let matching: Vec<Arc<AgentConn>> = registry
            .all()
            .into_iter()
            .filter(|a| {
                targets
                    .labels
                    .iter()
                    .all(|(k, v)| a.labels.get(k) == Some(v))
            })
            .collect();
        if matching.is_empty() {
            let labels = targets
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",");
            return Err(PreflightError::NoLabelMatch(labels));
        }
        for a in matching {
            if !chosen.iter().any(|c| c.name == a.name) {
                chosen.push(a);
            }
        }
    }
    if chosen.len() > targets.max_targets as usize {
        return Err(PreflightError::BlastRadius {
            found: chosen.len(),
            names: chosen
                .iter()
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            max: targets.max_targets,
        });
    }
    for agent in &chosen {
        for fault in &scenario.faults {
            let kind = fault.kind().name();
            if !agent.capabilities.iter().any(|c| c == kind) {
                if let Some(why) = agent.unavailable.iter().find(|u| u.kind == kind) {
                    return Err(PreflightError::Unavailable {
                        agent: agent.name.clone(),
                        kind: kind.to_string(),
                        cause: why.cause(),
                        detail: why.detail.clone(),
                    });
                }
                return Err(PreflightError::MissingCapability {
                    agent: agent.name.clone(),
                    kind: kind.to_string(),
                    advertised: agent.capabilities.join(", "),
                });
            }
        }
    }
    Ok(chosen)
}

/// The scenario's faults with every partition's `peer_agents` resolved to the addresses those
/// agents connect from (their view of the network is the controller's best knowledge of it).
pub fn resolve_faults(
    scenario: &Scenario,
    registry: &AgentRegistry,
) -> Result<Vec<Fault>, PreflightError> {
    scenario
        .faults
        .iter()
        .map(|fault| {
            let Fault::NetworkPartition(p) = fault else {
                return Ok(fault.clone());
            };
            let mut p = p.clone();
            for name in std::mem::take(&mut p.peer_agents) {
                let agent = registry
                    .get(&name)
                    .ok_or_else(|| PreflightError::PeerMissing(name.clone()))?;
                let ip = agent
                    .peer
                    .parse::<std::net::SocketAddr>()
                    .map(|a| a.ip())
                    .map_err(|_| PreflightError::PeerMissing(name.clone()))?;
                p.peers.push(gameday_proto::Net::host(ip));
            }
            Ok(Fault::NetworkPartition(p))
        })
        .collect()
}

/// How a preflight names a cause of unavailability.
fn cause_text(cause: UnavailableCause) -> &'static str {
    match cause {
        UnavailableCause::ToolMissing => "a tool it needs is missing",
        UnavailableCause::NoRights => "the agent lacks the rights",
        UnavailableCause::Policy => "the agent's policy forbids it",
        UnavailableCause::Host | UnavailableCause::Unspecified => "the host cannot do it",
    }
}

/// The id fault number `index` of a run gets on `agent`: the same for the check and the apply.
pub fn fault_id(run_id: &str, index: usize, agent: &str) -> String {
    format!("{run_id}-f{index}-{agent}")
}

/// True for a process fault confined to a unit, cgroup, container or namespace.
fn is_scoped_process_fault(fault: &Fault) -> bool {
    match fault {
        Fault::ProcessKill(k) => k.selector.is_scoped(),
        Fault::ProcessPause(p) => p.selector.is_scoped(),
        _ => false,
    }
}

/// Asks every target whether it would apply every fault as written, without applying anything,
/// so a policy refusal, a path outside the policy or a pattern that matches no process today
/// fails the run now rather than after the steady-state wait. All checks go out at once; the
/// first refusal (in target, then fault order) is the error. Agents too old to check are
/// skipped: their refusal still comes at injection. A scoped process fault is refused for an
/// agent too old to honour the scope, which would act on every matching process instead.
/// Returns the agents' warnings, each as `AGENT: KIND: warning`.
pub async fn check_faults(
    run_id: &str,
    targets: &[Arc<dyn FaultTransport>],
    faults: &[Fault],
) -> Result<Vec<String>, PreflightError> {
    for agent in targets.iter().filter(|a| !a.process_scopes()) {
        if let Some(fault) = faults.iter().find(|f| is_scoped_process_fault(f)) {
            return Err(PreflightError::Refused {
                agent: agent.name().to_string(),
                kind: fault.kind().to_string(),
                reason: "this agent predates unit, cgroup, container and namespace scopes and \
                         would act on every matching process on its host; upgrade it"
                    .into(),
            });
        }
    }
    let mut warnings = Vec::new();
    let checks = targets
        .iter()
        .filter(|agent| agent.checks_faults())
        .flat_map(|agent| {
            faults.iter().enumerate().map(move |(i, fault)| async move {
                let id = fault_id(run_id, i, agent.name());
                let answer = agent.check(&id, run_id, fault.to_wire()).await;
                (agent, fault.kind().name(), answer)
            })
        });
    for (agent, kind, answer) in join_all(checks).await {
        let refused = |reason| PreflightError::Refused {
            agent: agent.name().to_string(),
            kind: kind.to_string(),
            reason,
        };
        match answer {
            Ok(x) => {
                if let Some(f) = &x.report.failure {
                    return Err(refused(super::run::failure_text(f)));
                }
                for warning in &x.report.warnings {
                    warnings.push(format!("{}: {kind}: {warning}", agent.name()));
                }
            }
            Err(e) => {
                return Err(PreflightError::Unanswered {
                    agent: agent.name().to_string(),
                    kind: kind.to_string(),
                    error: e.to_string(),
                })
            }
        }
    }
    Ok(warnings)
}

/// How each of the scenario's remediation steps will be carried out: its agent connected and
/// able to run steps, or its runbook configured.
pub fn resolve_steps(
    scenario: &Scenario,
    registry: &Arc<AgentRegistry>,
    runbooks: &crate::webhook::runbook::Runbooks,
) -> Result<Vec<StepDriver>, PreflightError> {
    scenario
        .remediation
        .iter()
        .map(|step| match &step.action {
            StepAction::Agent { agent, .. } => {
                let conn = registry
                    .get(agent)
                    .ok_or_else(|| PreflightError::StepAgentMissing {
                        step: step.name.clone(),
                        agent: agent.clone(),
                    })?;
                if !conn.runs_steps {
                    return Err(PreflightError::StepAgentTooOld {
                        step: step.name.clone(),
                        agent: agent.clone(),
                    });
                }
                Ok(StepDriver::Agent(Arc::new(RegisteredAgent::new(
                    registry.clone(),
                    conn,
                ))))
            }
            StepAction::Webhook { runbook } => runbooks
                .get(runbook)
                .map(|r| StepDriver::Runbook(r.clone()))
                .ok_or_else(|| PreflightError::NoRunbook {
                    step: step.name.clone(),
                    runbook: runbook.clone(),
                    known: if runbooks.is_empty() {
                        "it has no [runbooks]".into()
                    } else {
                        format!(
                            "runbooks: {}",
                            runbooks.keys().cloned().collect::<Vec<_>>().join(", ")
                        )
                    },
                }),
        })
        .collect()
}

/// Asks every step's agent whether its policy would run the step, running nothing, so a
/// command the host owner did not allow fails the run before anything is injected.
pub async fn check_steps(
    run_id: &str,
    steps: &[crate::scenario::RemediationStep],
    drivers: &[StepDriver],
) -> Result<(), PreflightError> {
    let checks = steps
        .iter()
        .zip(drivers)
        .filter_map(|(step, driver)| match driver {
            StepDriver::Agent(agent) => Some(async move {
                let request = super::remediate::request(run_id, step, true);
                let answer = match agent.run_step(request).await {
                    Ok(mut reports) => {
                        match tokio::time::timeout(crate::registry::ANSWER_TIMEOUT, reports.recv())
                            .await
                        {
                            Ok(Some((report, _))) => Ok(report),
                            Ok(None) => Err("the agent disconnected before answering".to_string()),
                            Err(_) => Err(format!(
                                "no answer within {:?}",
                                crate::registry::ANSWER_TIMEOUT
                            )),
                        }
                    }
                    Err(e) => Err(e.to_string()),
                };
                (step, agent.name().to_string(), answer)
            }),
            StepDriver::Runbook(_) => None,
        });
    for (step, agent, answer) in join_all(checks).await {
        let refused = |reason: String| PreflightError::StepRefused {
            step: step.name.clone(),
            agent: agent.clone(),
            reason,
        };
        match answer {
            Ok(report) => {
                if let Some(f) = &report.failure {
                    return Err(refused(super::run::failure_text(f)));
                }
            }
            Err(e) => return Err(refused(e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::engine::fake::{Op, ScriptedAgent};
    use gameday_proto::v1;

    #[test]
    fn an_unavailable_kind_says_which_cause() {
        let e = PreflightError::Unavailable {
            agent: "web-1".into(),
            kind: "network_partition".into(),
            cause: UnavailableCause::ToolMissing,
            detail: "nft not found (nft): install the nftables package".into(),
        };
        assert_eq!(
            e.to_string(),
            "network_partition is not available on web-1: a tool it needs is missing: nft not \
             found (nft): install the nftables package"
        );
        let e = PreflightError::Unavailable {
            agent: "web-1".into(),
            kind: "disk_fill".into(),
            cause: UnavailableCause::Policy,
            detail: "policy.disk_fill.paths is empty, so no directory may be filled".into(),
        };
        assert!(
            e.to_string()
                .contains("disk_fill is not available on web-1: the agent's policy forbids it"),
            "{e}"
        );
    }

    #[test]
    fn resolve_reports_why_a_kind_is_missing() {
        let registry = AgentRegistry::default();
        let (tx, _rx) = tokio::sync::mpsc::channel(1);
        let register = v1::Register {
            name: "web-1".into(),
            capabilities: vec!["process_kill".into()],
            unavailable: vec![v1::KindUnavailable {
                kind: "network_partition".into(),
                cause: UnavailableCause::NoRights as i32,
                detail: "no permission for nftables (the agent needs CAP_NET_ADMIN)".into(),
            }],
            ..v1::Register::default()
        };
        let conn = Arc::new(AgentConn::new(register, "10.0.0.5:41234".into(), tx));
        registry.register(conn, Duration::from_secs(5)).unwrap();
        let scenario = crate::scenario::parse(
            "s.toml",
            "name = \"s\"\nrto = \"1s\"\n[targets]\nagents = [\"web-1\"]\n[[faults]]\nkind = \"network_partition\"\npeers = [\"10.0.0.0/8\"]\nduration = \"1s\"\n[[probes]]\nname = \"p\"\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\n",
        )
        .unwrap();
        let Err(e) = resolve(&scenario, &registry) else {
            panic!("resolve must fail");
        };
        assert_eq!(
            e.to_string(),
            "network_partition is not available on web-1: the agent lacks the rights: no \
             permission for nftables (the agent needs CAP_NET_ADMIN)"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_scoped_process_fault_is_refused_for_an_agent_that_would_ignore_the_scope() {
        let conn = |up_to_date: bool| {
            let agent = ScriptedAgent::new("web-1", Duration::from_millis(2));
            if !up_to_date {
                agent.predates_checks_and_scopes();
            }
            agent
        };
        let scoped: Fault =
            toml::from_str("kind = \"process_kill\"\nname = \"redis-server\"\nnetns = \"agent\"")
                .unwrap();
        let bare: Fault =
            toml::from_str("kind = \"process_kill\"\nname = \"redis-server\"").unwrap();
        let err = check_faults("r1", &[conn(false)], &[bare.clone(), scoped.clone()])
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "fault process_kill would not be applied on web-1: this agent predates unit, \
             cgroup, container and namespace scopes and would act on every matching process \
             on its host; upgrade it"
        );
        // Unscoped faults go to old agents as before, unchecked; new agents are asked.
        let (old, new) = (conn(false), conn(true));
        let targets: [Arc<dyn FaultTransport>; 1] = [old.clone()];
        assert!(check_faults("r1", &targets, &[bare])
            .await
            .unwrap()
            .is_empty());
        assert!(old.calls().is_empty());
        let targets: [Arc<dyn FaultTransport>; 1] = [new.clone()];
        assert!(check_faults("r1", &targets, &[scoped])
            .await
            .unwrap()
            .is_empty());
        assert_eq!(new.calls(), vec![(Op::Check, 0)]);
    }

    #[tokio::test(start_paused = true)]
    async fn every_target_is_checked_at_once_and_its_warnings_are_shown() {
        let start = tokio::time::Instant::now();
        let quick = ScriptedAgent::new("web-1", Duration::from_millis(5));
        quick.warn("redis-server also matches a process in another cgroup");
        let slow = ScriptedAgent::new("web-2", Duration::from_millis(80));
        let kill: Fault =
            toml::from_str("kind = \"process_kill\"\nname = \"redis-server\"").unwrap();
        let warnings = check_faults("r1", &[quick.clone(), slow.clone()], &[kill])
            .await
            .unwrap();
        assert_eq!(
            start.elapsed(),
            Duration::from_millis(80),
            "not one after the other"
        );
        assert_eq!(quick.calls(), vec![(Op::Check, 0)]);
        assert_eq!(slow.calls(), vec![(Op::Check, 0)]);
        assert_eq!(
            warnings,
            vec!["web-1: process_kill: redis-server also matches a process in another cgroup"]
        );
        assert!(
            quick.applied().is_empty() && slow.applied().is_empty(),
            "nothing applied"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_or_no_answer_fails_preflight() {
        let kill: Fault =
            toml::from_str("kind = \"process_kill\"\nname = \"redis-server\"").unwrap();
        let refusing = ScriptedAgent::new("web-1", Duration::from_millis(5));
        refusing.refuse_apply("no process matches redis-server");
        let err = check_faults("r1", &[refusing], std::slice::from_ref(&kill))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "fault process_kill would not be applied on web-1: invalid: no process matches \
             redis-server"
        );
        let gone = ScriptedAgent::new("web-2", Duration::from_millis(5));
        gone.hang_up();
        let err = check_faults("r1", &[gone], &[kill]).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "agent web-2 did not answer the preflight check of process_kill: agent web-2 \
             disconnected before answering"
        );
    }
}
