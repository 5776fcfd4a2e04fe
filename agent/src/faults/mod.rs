//! Fault implementations. Every fault goes through three steps: `prepare` decides everything
//! (targets, policy, the state it will touch, how to undo it) without changing the host; the
//! plan is journaled; `apply` makes it happen; `revert` undoes it, idempotently, and reports
//! any residue: a difference between the state before and after.

pub mod disk_fill;
pub mod dns_poison;
pub mod network_partition;
pub mod process_kill;
pub mod process_pause;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use gameday_proto::v1::{Evidence, FailureKind};
use gameday_proto::Fault;
use serde::{Deserialize, Serialize};

use crate::os::ProcessOs;
use crate::policy::{Policy, PolicyRefusal};

/// Fault kinds this build of the agent implements. Whether it can apply them on this host is
/// [`capabilities`]' question.
const SUPPORTED_KINDS: &[&str] = &[
    "process_kill",
    "process_pause",
    "network_partition",
    "disk_fill",
    "dns_poison",
];

/// Everything faults may touch on this host, each behind its own seam.
pub struct Host {
    /// Processes and signals.
    pub processes: Arc<dyn ProcessOs>,
    /// nftables.
    pub network: network_partition::Backend,
    /// Filesystems.
    pub disk: disk_fill::Backend,
    /// Hosts file and the embedded resolver.
    pub dns: dns_poison::Backend,
    /// Where the controller is: partitions always let this traffic through.
    pub controller: Vec<SocketAddr>,
}

impl Host {
    /// The real host, configured from the agent's config. The controller's addresses come from
    /// its URL, so partitions can exempt the agent's control connection.
    pub fn from_config(config: &crate::config::AgentConfig) -> Host {
        Host {
            processes: Arc::new(crate::os::RealOs::default()),
            network: network_partition::Backend::from_config(config),
            disk: disk_fill::Backend::from_config(config),
            dns: dns_poison::Backend::from_config(config),
            controller: controller_addrs(&config.controller),
        }
    }
}

/// The socket addresses a controller URL names (`https://host:port`; 443 when no port).
pub fn controller_addrs(url: &str) -> Vec<SocketAddr> {
    use std::net::ToSocketAddrs as _;
    let Ok(uri) = url.parse::<tonic::codegen::http::Uri>() else {
        return Vec::new();
    };
    let Some(host) = uri.host() else {
        return Vec::new();
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (host, uri.port_u16().unwrap_or(443))
        .to_socket_addrs()
        .map(|a| a.collect())
        .unwrap_or_default()
}

/// What a fault will do and how to undo it. Written to the journal before the fault is applied,
/// so an agent restarted after a crash can revert it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Plan {
    /// A signal; nothing to undo.
    ProcessKill(process_kill::Plan),
    /// Stopped processes to continue.
    ProcessPause(process_pause::Plan),
    /// An nftables table to delete.
    NetworkPartition(network_partition::Plan),
    /// A fill file to delete.
    DiskFill(disk_fill::Plan),
    /// A hosts file to restore, or a resolver to stop.
    DnsPoison(dns_poison::Plan),
}

/// A fault that took effect.
#[derive(Clone, Debug)]
pub struct Applied {
    /// When the fault took effect: right after the last system call that made it happen.
    pub effect_at: Instant,
    /// What the fault did, for the report.
    pub evidence: Evidence,
}

/// A fault that was undone, with what it did while it held and any residue.
#[derive(Clone, Debug, Default)]
pub struct Reverted {
    /// Figures gathered at revert (packets dropped, queries answered...) and `residue`.
    pub evidence: Evidence,
}

/// Why a fault could not be applied or reverted. Every message is a full sentence meant for
/// the operator; [`FaultError::kind`] says which side is to blame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaultError {
    /// The host's policy refused it.
    #[error("{0}")]
    Policy(String),
    /// The request is malformed or names nothing that exists (no matching process...).
    #[error("{0}")]
    Invalid(String),
    /// The operating system refused or failed.
    #[error("{0}")]
    System(String),
    /// This agent cannot apply this kind of fault.
    #[error("{0}")]
    Unsupported(String),
}

impl FaultError {
    /// The failure kind reported to the controller.
    pub fn kind(&self) -> FailureKind {
        match self {
            FaultError::Policy(_) => FailureKind::Policy,
            FaultError::Invalid(_) => FailureKind::Invalid,
            FaultError::System(_) => FailureKind::System,
            FaultError::Unsupported(_) => FailureKind::Unsupported,
        }
    }

    /// The human-readable message without the kind.
    pub fn message(&self) -> &str {
        match self {
            FaultError::Policy(m)
            | FaultError::Invalid(m)
            | FaultError::System(m)
            | FaultError::Unsupported(m) => m,
        }
    }
}

impl From<PolicyRefusal> for FaultError {
    fn from(refusal: PolicyRefusal) -> Self {
        FaultError::Policy(refusal.to_string())
    }
}

/// Decides everything about `fault` without changing the host.
pub fn prepare(
    fault: &Fault,
    fault_id: &str,
    policy: &Policy,
    host: &Host,
) -> Result<Plan, FaultError> {
    let kind = fault.kind();
    if !SUPPORTED_KINDS.contains(&kind) {
        return Err(unsupported(kind));
    }
    policy.check_kind(kind)?;
    Ok(match fault {
        Fault::ProcessKill(kill) => Plan::ProcessKill(process_kill::Plan { kill: kill.clone() }),
        Fault::ProcessPause(p) => Plan::ProcessPause(process_pause::prepare(p, policy, host)?),
        Fault::NetworkPartition(n) => {
            Plan::NetworkPartition(network_partition::prepare(n, fault_id, policy, host)?)
        }
        Fault::DiskFill(d) => Plan::DiskFill(disk_fill::prepare(d, fault_id, policy, host)?),
        Fault::DnsPoison(d) => Plan::DnsPoison(dns_poison::prepare(d, fault_id, policy, host)?),
    })
}

/// Makes a prepared fault happen.
pub fn apply(plan: &Plan, policy: &Policy, host: &Host) -> Result<Applied, FaultError> {
    match plan {
        Plan::ProcessKill(p) => process_kill::apply(&p.kill, policy, host.processes.as_ref()),
        Plan::ProcessPause(p) => process_pause::apply(p, host),
        Plan::NetworkPartition(p) => network_partition::apply(p, host),
        Plan::DiskFill(p) => disk_fill::apply(p, host),
        Plan::DnsPoison(p) => dns_poison::apply(p, host),
    }
}

/// Undoes a fault. Safe to call more than once, for faults whose apply failed half-way, and
/// for plans read back from the journal of a crashed agent.
pub fn revert(plan: &Plan, host: &Host) -> Result<Reverted, FaultError> {
    match plan {
        Plan::ProcessKill(_) => Ok(Reverted::default()),
        Plan::ProcessPause(p) => process_pause::revert(p, host),
        Plan::NetworkPartition(p) => network_partition::revert(p, host),
        Plan::DiskFill(p) => disk_fill::revert(p, host),
        Plan::DnsPoison(p) => dns_poison::revert(p, host),
    }
}

/// The fault kinds this agent can apply here: implemented, allowed by policy, and possible on
/// this host (tools present, rights held). Each missing one is logged with the reason.
pub fn capabilities(policy: &Policy, host: &Host) -> Vec<String> {
    SUPPORTED_KINDS
        .iter()
        .filter(|kind| policy.allows_kind(kind))
        .filter(|kind| {
            let available = match **kind {
                "network_partition" => network_partition::available(policy, host),
                "disk_fill" => disk_fill::available(policy, host),
                "dns_poison" => dns_poison::available(policy, host),
                _ => Ok(()),
            };
            if let Err(why) = &available {
                tracing::warn!(kind = *kind, reason = %why, "fault kind not available on this host");
            }
            available.is_ok()
        })
        .map(|kind| kind.to_string())
        .collect()
}

fn unsupported(kind: &str) -> FaultError {
    FaultError::Unsupported(format!(
        "this agent cannot apply {kind} faults (it supports: {})",
        SUPPORTED_KINDS.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::PolicyConfig;
    use gameday_proto::fault::FAULT_KINDS;

    #[test]
    fn supported_kinds_are_protocol_kinds() {
        for kind in SUPPORTED_KINDS {
            assert!(FAULT_KINDS.contains(kind), "{kind}");
        }
    }

    fn test_host() -> Host {
        Host {
            processes: Arc::new(crate::os::RealOs::default()),
            // A firewall that cannot run: unit tests never touch the machine's nftables.
            network: network_partition::Backend::new(Arc::new(crate::os::nft::Nft::with_program(
                "/nonexistent/nft",
            ))),
            disk: disk_fill::Backend::default(),
            dns: dns_poison::Backend::default(),
            controller: Vec::new(),
        }
    }

    #[test]
    fn capabilities_follow_the_policy() {
        let all = capabilities(&Policy::permissive(), &test_host());
        assert!(all.contains(&"process_kill".to_string()), "{all:?}");
        assert!(all.contains(&"process_pause".to_string()), "{all:?}");
        let none = PolicyConfig {
            allow_faults: Vec::new(),
            ..PolicyConfig::default()
        };
        assert!(capabilities(&Policy::from_config(&none).unwrap(), &test_host()).is_empty());
    }

    #[test]
    fn controller_addresses_come_from_the_url() {
        assert_eq!(
            controller_addrs("https://127.0.0.1:7443"),
            vec!["127.0.0.1:7443".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(
            controller_addrs("https://[::1]:7443/"),
            vec!["[::1]:7443".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(
            controller_addrs("https://127.0.0.1"),
            vec!["127.0.0.1:443".parse::<SocketAddr>().unwrap()]
        );
    }

    #[test]
    fn errors_map_to_wire_failure_kinds() {
        assert_eq!(FaultError::Policy("x".into()).kind(), FailureKind::Policy);
        assert_eq!(FaultError::Invalid("x".into()).kind(), FailureKind::Invalid);
        assert_eq!(FaultError::System("x".into()).kind(), FailureKind::System);
        assert_eq!(unsupported("dns_poison").kind(), FailureKind::Unsupported);
        assert_eq!(FaultError::System("boom".into()).message(), "boom");
    }
}
