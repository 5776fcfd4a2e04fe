//! Preflight: resolve a scenario's targets among connected agents and check each can do the job.

use std::sync::Arc;

use gameday_proto::Fault;

use crate::registry::{AgentConn, AgentRegistry};
use crate::scenario::Scenario;

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
    /// A target lacks a capability a fault needs.
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
            let kind = fault.kind();
            if !agent.capabilities.iter().any(|c| c == kind) {
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
                p.peers.push(ip.to_string());
            }
            Ok(Fault::NetworkPartition(p))
        })
        .collect()
}
