//! Fault implementations. Every fault goes through three steps: `prepare` decides everything
//! (targets, policy, the state it will touch, how to undo it) without changing the host; the
//! plan is journaled; `apply` makes it happen; `revert` undoes it, idempotently, and reports
//! any residue: a difference between the state before and after.

pub mod disk_fill;
pub mod dns_poison;
mod error;
pub mod network_partition;
pub mod process_kill;
pub mod process_pause;
pub mod process_policy;
pub mod process_scope;

pub use error::FaultError;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use gameday_proto::v1::{Evidence, KindUnavailable, UnavailableCause};
use gameday_proto::{Fault, FaultKind};
use serde::{Deserialize, Serialize};

use crate::config::ControllerUrl;
use crate::os::ProcessOs;
use crate::policy::Policy;

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
    /// The real host for unit tests, with a firewall that cannot run: unit tests never touch
    /// the machine's nftables.
    #[cfg(test)]
    pub fn without_firewall() -> Host {
        Host {
            processes: Arc::new(crate::os::RealOs::default()),
            network: network_partition::Backend::new(Arc::new(crate::os::nft::Nft::with_program(
                "/nonexistent/nft",
            ))),
            disk: disk_fill::Backend::default(),
            dns: dns_poison::Backend::default(),
            controller: Vec::new(),
        }
    }

    /// The real host, configured from the agent's config. The controller's addresses come from
    /// its URL, so partitions can exempt the agent's control connection.
    pub fn from_config(config: &crate::config::AgentConfig) -> Host {
        Host {
            processes: Arc::new(crate::os::RealOs::default()),
            network: network_partition::Backend::default(),
            disk: disk_fill::Backend::default(),
            dns: dns_poison::Backend::for_controller(config.controller.host()),
            controller: controller_addrs(&config.controller),
        }
    }
}

/// The socket addresses the controller's URL names; none when its name does not resolve.
pub fn controller_addrs(url: &ControllerUrl) -> Vec<SocketAddr> {
    use std::net::ToSocketAddrs as _;
    (url.host(), url.port())
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

/// Decides everything about `fault` without changing the host.
pub fn prepare(
    fault: &Fault,
    fault_id: &str,
    policy: &Policy,
    host: &Host,
) -> Result<Plan, FaultError> {
    policy.check_kind(fault.kind())?;
    Ok(match fault {
        Fault::ProcessKill(kill) => Plan::ProcessKill(process_kill::Plan { kill: kill.clone() }),
        Fault::ProcessPause(p) => {
            Plan::ProcessPause(process_pause::prepare(p, &policy.process, host)?)
        }
        Fault::NetworkPartition(n) => Plan::NetworkPartition(network_partition::prepare(
            n,
            fault_id,
            &policy.network_partition,
            host,
        )?),
        Fault::DiskFill(d) => {
            Plan::DiskFill(disk_fill::prepare(d, fault_id, &policy.disk_fill, host)?)
        }
        Fault::DnsPoison(d) => {
            Plan::DnsPoison(dns_poison::prepare(d, fault_id, &policy.dns_poison, host)?)
        }
    })
}

/// Makes a prepared fault happen.
pub fn apply(plan: &Plan, policy: &Policy, host: &Host) -> Result<Applied, FaultError> {
    match plan {
        Plan::ProcessKill(p) => {
            process_kill::apply(&p.kill, &policy.process, host.processes.as_ref())
        }
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

/// Why this agent cannot apply a kind of fault here, in the terms a host owner acts on: a tool
/// to install, rights to grant, or a policy to change.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct Unavailable {
    /// Which of those it is.
    pub cause: UnavailableCause,
    /// What the agent found, as a sentence.
    pub detail: String,
}

impl Unavailable {
    /// The policy forbids the kind, or names nothing the fault may act on.
    pub fn policy(detail: impl Into<String>) -> Unavailable {
        Unavailable {
            cause: UnavailableCause::Policy,
            detail: detail.into(),
        }
    }

    /// Something about this host other than tools, rights and policy.
    pub fn host(detail: impl Into<String>) -> Unavailable {
        Unavailable {
            cause: UnavailableCause::Host,
            detail: detail.into(),
        }
    }

    /// Why nftables cannot be used: `nft` missing, no `CAP_NET_ADMIN`, or `nft` failing.
    pub fn nftables(error: &crate::os::nft::NftError, context: &str) -> Unavailable {
        use crate::os::nft::NftError;
        let cause = match error {
            NftError::NotFound { .. } => UnavailableCause::ToolMissing,
            NftError::Permission { .. } => UnavailableCause::NoRights,
            NftError::Failed { .. } | NftError::Output { .. } => UnavailableCause::Host,
        };
        Unavailable {
            cause,
            detail: format!("{context}{error}"),
        }
    }

    /// A file the fault needs cannot be used: no rights when the system says so.
    pub fn file(error: &std::io::Error, detail: String) -> Unavailable {
        let cause = match error.kind() {
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => {
                UnavailableCause::NoRights
            }
            _ => UnavailableCause::Host,
        };
        Unavailable { cause, detail }
    }
}

/// What the agent can and cannot apply here, as it registers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Survey {
    /// Kinds it can apply.
    pub capabilities: Vec<String>,
    /// Kinds it implements but cannot apply here, with why.
    pub unavailable: Vec<KindUnavailable>,
}

/// Which fault kinds this agent can apply here (every kind is implemented; allowed by policy,
/// possible on this host: tools present, rights held) and why each other one is not. Each
/// missing one is logged with the reason.
pub fn survey(policy: &Policy, host: &Host) -> Survey {
    let mut survey = Survey::default();
    for kind in FaultKind::ALL {
        let available = if policy.allows_kind(kind) {
            match kind {
                FaultKind::ProcessKill | FaultKind::ProcessPause => Ok(()),
                FaultKind::NetworkPartition => network_partition::available(host),
                FaultKind::DiskFill => disk_fill::available(&policy.disk_fill, host),
                FaultKind::DnsPoison => dns_poison::available(&policy.dns_poison, host),
            }
        } else {
            Err(Unavailable::policy(format!(
                "policy.allow_faults does not list {kind}"
            )))
        };
        match available {
            Ok(()) => survey.capabilities.push(kind.to_string()),
            Err(why) => {
                // The owner's policy choosing not to allow a kind is no news; a kind the policy
                // allows that the host cannot do needs the owner's attention.
                if why.cause == UnavailableCause::Policy {
                    tracing::info!(kind = kind.name(), reason = %why, "fault kind not offered under this policy");
                } else {
                    tracing::warn!(kind = kind.name(), cause = why.cause.as_str_name(), reason = %why, "fault kind allowed by the policy but not available on this host");
                }
                survey.unavailable.push(KindUnavailable {
                    kind: kind.to_string(),
                    cause: why.cause as i32,
                    detail: why.detail,
                });
            }
        }
    }
    survey
}

/// The fault kinds this agent can apply here (see [`survey`]).
pub fn capabilities(policy: &Policy, host: &Host) -> Vec<String> {
    survey(policy, host).capabilities
}

/// Checks `fault` as applying it would (kind, policy, process matching, paths, limits), without
/// changing the host or journaling anything. A kill's targets are chosen here too, so a pattern
/// that matches nothing today fails the check. Returns warnings for the operator: things that
/// do not stop the fault but may not be what was meant (a bare process name that matches
/// processes in several cgroups or namespaces).
pub fn check(
    fault: &Fault,
    fault_id: &str,
    policy: &Policy,
    host: &Host,
) -> Result<Vec<String>, FaultError> {
    let plan = prepare(fault, fault_id, policy, host)?;
    let os = host.processes.as_ref();
    Ok(match (fault, &plan) {
        (_, Plan::ProcessKill(p)) => {
            process_kill::check(&p.kill, &policy.process, os)?
                .1
                .warnings
        }
        (Fault::ProcessPause(pause), _) => {
            process_kill::select(&pause.selector, pause.count, &policy.process, os)?.warnings
        }
        _ => Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use gameday_proto::v1::FailureKind;

    use super::*;
    use crate::policy::PolicyConfig;

    fn test_host() -> Host {
        Host::without_firewall()
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
    fn the_survey_says_why_each_missing_kind_is_missing() {
        let only_kills = PolicyConfig {
            allow_faults: vec!["process_kill".into()],
            ..PolicyConfig::default()
        };
        let survey = survey(&Policy::from_config(&only_kills).unwrap(), &test_host());
        assert_eq!(survey.capabilities, vec!["process_kill".to_string()]);
        let pause = survey
            .unavailable
            .iter()
            .find(|u| u.kind == "process_pause")
            .expect("process_pause is accounted for");
        assert_eq!(pause.cause(), UnavailableCause::Policy);
        assert_eq!(
            pause.detail,
            "policy.allow_faults does not list process_pause"
        );
        assert_eq!(survey.unavailable.len(), FaultKind::ALL.len() - 1);
        // Allowed, but the firewall cannot run here.
        let all = super::survey(&Policy::permissive(), &test_host());
        let partition = all
            .unavailable
            .iter()
            .find(|u| u.kind == "network_partition")
            .expect("network_partition is accounted for");
        assert_eq!(
            partition.cause(),
            UnavailableCause::ToolMissing,
            "{partition:?}"
        );
    }

    #[test]
    fn check_refuses_what_apply_would_refuse_without_touching_anything() {
        let host = test_host();
        let nothing: Fault = toml::from_str(
            "kind = \"process_kill\"\ncmdline = \"^gameday-no-such-process-[0-9]{40}$\"",
        )
        .unwrap();
        let err = check(&nothing, "f1", &Policy::permissive(), &host).unwrap_err();
        assert_eq!(err.kind(), FailureKind::Invalid, "{err}");
        assert!(err.to_string().starts_with("no process matches"), "{err}");
        let no_kills = PolicyConfig {
            allow_faults: vec!["process_pause".into()],
            ..PolicyConfig::default()
        };
        let err = check(
            &nothing,
            "f1",
            &Policy::from_config(&no_kills).unwrap(),
            &host,
        )
        .unwrap_err();
        assert_eq!(err.kind(), FailureKind::Policy, "{err}");
    }

    #[test]
    fn controller_addresses_come_from_the_url() {
        let addrs = |url: &str| controller_addrs(&ControllerUrl::parse(url).unwrap());
        assert_eq!(
            addrs("https://127.0.0.1:7443"),
            vec!["127.0.0.1:7443".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(
            addrs("https://[::1]:7443/"),
            vec!["[::1]:7443".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(
            addrs("https://127.0.0.1"),
            vec!["127.0.0.1:443".parse::<SocketAddr>().unwrap()]
        );
    }
}
