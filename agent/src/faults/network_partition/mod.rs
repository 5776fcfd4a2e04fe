//! `network_partition`: drop the host's traffic with chosen peers, in an nftables table of the
//! fault's own.
//!
//! One `inet` table per fault, named after the fault id ([`rules::table_name`]), installed in
//! one transaction and removed by one delete, so revert is exact and a leftover is
//! recognisable by its name. The agent's own control connection is always accepted before
//! anything is dropped. Every rule counts what it matches; the revert reads the counters just
//! before deleting the table and reports them, then compares the ruleset with the fingerprint
//! taken before the fault and reports any difference as residue.

pub mod net;
pub mod residue;
pub mod rules;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use gameday_proto::fault::Direction;
use gameday_proto::v1::Evidence;
use gameday_proto::{Duration, NetworkPartition};
use serde::{Deserialize, Serialize};

use self::residue::Baseline;
use self::rules::{Net, Partition, FAMILY};
use super::{Applied, FaultError, Host, Reverted, Unavailable};
use crate::os::nft::{family_name, Firewall, Nft};

/// The host-side machinery this fault uses: nftables, behind [`Firewall`].
#[derive(Clone)]
pub struct Backend {
    firewall: Arc<dyn Firewall>,
}

impl Backend {
    /// A backend over any firewall (a fake, in unit tests).
    pub fn new(firewall: Arc<dyn Firewall>) -> Backend {
        Backend { firewall }
    }

    /// The firewall faults act on.
    pub fn firewall(&self) -> &Arc<dyn Firewall> {
        &self.firewall
    }
}

impl Default for Backend {
    /// The real machinery: `nft` from `PATH`.
    fn default() -> Self {
        Backend::new(Arc::new(Nft::default()))
    }
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backend").finish_non_exhaustive()
    }
}

/// The `[policy.network_partition]` table: what partitions this host accepts.
///
/// ```toml
/// [policy.network_partition]
/// protect = ["10.0.0.0/24"]          # never cut (e.g. the management network)
/// protect_ports = [22]               # never cut, either end, tcp and udp (e.g. ssh)
/// allowed_peers = ["10.20.0.0/16"]   # only networks inside these may be cut
/// max_duration = "5m"                # partitions must say how long, at most this
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Networks (CIDR, or a bare address) a partition never cuts: traffic with them is
    /// accepted before anything is dropped, like the controller's.
    #[serde(default)]
    pub protect: Vec<String>,
    /// Ports a partition never cuts: TCP and UDP packets with one of these as source or
    /// destination port are accepted before anything is dropped.
    #[serde(default)]
    pub protect_ports: Vec<u16>,
    /// When not empty, every peer of a partition must lie inside one of these networks, and a
    /// partition without peers (every address) is refused.
    #[serde(default)]
    pub allowed_peers: Vec<String>,
    /// When set, a partition must have a `duration`, and no longer than this.
    #[serde(default)]
    pub max_duration: Option<Duration>,
}

/// `[policy.network_partition]` read once, when the policy loads: the networks parsed, the
/// table kept as written for messages that quote it.
#[derive(Clone, Debug, Default)]
pub struct Limits {
    config: PolicyConfig,
    protect: Vec<Net>,
    allowed_peers: Vec<Net>,
}

impl PolicyConfig {
    /// Checks the table is usable (networks parse, no port 0, a positive `max_duration`) and
    /// keeps what it parsed.
    pub fn limits(&self) -> Result<Limits, String> {
        let protect = rules::minimal(&nets(&self.protect, "protect")?);
        let allowed_peers = nets(&self.allowed_peers, "allowed_peers")?;
        if self.protect_ports.contains(&0) {
            return Err("protect_ports: port 0 is not a port".into());
        }
        if self.max_duration.is_some_and(|d| d.get().is_zero()) {
            return Err("max_duration must be more than zero".into());
        }
        Ok(Limits {
            config: self.clone(),
            protect,
            allowed_peers,
        })
    }
}

fn nets(list: &[String], key: &str) -> Result<Vec<Net>, String> {
    list.iter()
        .map(|s| Net::parse(s).map_err(|e| format!("{key}: {e}")))
        .collect()
}

/// What the fault will do and how to undo it. Journaled before it is applied.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Plan {
    /// The fault's table (family `inet`).
    pub table: String,
    /// What the table cuts and what it keeps.
    pub partition: Partition,
    /// The ruleset before the fault, for the residue check.
    pub before: Baseline,
}

/// Whether this host can apply the fault: `nft` is installed and the agent may use it.
pub fn available(host: &Host) -> Result<(), Unavailable> {
    host.network
        .firewall
        .tables()
        .map(|_| ())
        .map_err(|e| Unavailable::nftables(&e, ""))
}

/// Decides everything without changing the host: the rules, the policy's verdict, and the
/// fingerprint of the ruleset for the residue check.
pub fn prepare(
    spec: &NetworkPartition,
    fault_id: &str,
    limits: &Limits,
    host: &Host,
) -> Result<Plan, FaultError> {
    if !spec.peer_agents.is_empty() {
        return Err(FaultError::Invalid(format!(
            "peer_agents {:?} reached the agent unresolved; the controller resolves them to addresses before it sends the fault",
            spec.peer_agents
        )));
    }
    let peers = rules::minimal(&spec.peers);
    let mut ports = spec.ports.clone();
    ports.sort_unstable();
    ports.dedup();
    let protect = check_policy(spec, &peers, &ports, limits)?;
    if host.controller.is_empty() {
        // Without the controller's address there is nothing to exempt, and a partition could
        // cut the agent off from the only one who can tell it to stop.
        return Err(FaultError::ControllerUnknown);
    }
    let (ingress, egress) = match spec.direction {
        Direction::Ingress => (true, false),
        Direction::Egress => (false, true),
        Direction::Both => (true, true),
    };
    let mut protect_ports = limits.config.protect_ports.clone();
    protect_ports.sort_unstable();
    protect_ports.dedup();
    let table = rules::table_name(fault_id);
    let ruleset = host
        .network
        .firewall
        .ruleset()
        .map_err(FaultError::firewall(
            "cannot record the ruleset before the partition",
        ))?;
    Ok(Plan {
        before: residue::baseline(&ruleset, &table),
        table,
        partition: Partition {
            ingress,
            egress,
            peers,
            ports,
            protocol: spec.protocol,
            controller: host.controller.clone(),
            protect,
            protect_ports,
        },
    })
}

/// Applies the host's policy; returns the protected networks the partition must exempt
/// (those overlapping its peers; all of them when it cuts every address).
fn check_policy(
    spec: &NetworkPartition,
    peers: &[Net],
    ports: &[u16],
    limits: &Limits,
) -> Result<Vec<Net>, FaultError> {
    let (config, allowed) = (&limits.config, &limits.allowed_peers);
    let protect = limits.protect.clone();
    if !allowed.is_empty() {
        if peers.is_empty() {
            return Err(FaultError::PolicyLimit(format!(
                "this partition names no peers, so it would cut every address, but this host only allows partitions of policy.network_partition.allowed_peers = {:?}",
                config.allowed_peers
            )));
        }
        if let Some(p) = peers
            .iter()
            .find(|p| !allowed.iter().any(|a| a.contains(p)))
        {
            return Err(FaultError::PolicyLimit(format!(
                "peer {p} is outside policy.network_partition.allowed_peers = {:?}",
                config.allowed_peers
            )));
        }
    }
    if !peers.is_empty() && peers.iter().all(|p| protect.iter().any(|n| n.contains(p))) {
        return Err(FaultError::PolicyLimit(format!(
            "every peer is protected by policy.network_partition.protect = {:?}, so the partition would cut nothing",
            config.protect
        )));
    }
    if !ports.is_empty() && ports.iter().all(|p| config.protect_ports.contains(p)) {
        return Err(FaultError::PolicyLimit(format!(
            "every port is protected by policy.network_partition.protect_ports = {:?}, so the partition would cut nothing",
            config.protect_ports
        )));
    }
    if let Some(max) = config.max_duration {
        match spec.duration {
            None => {
                return Err(FaultError::PolicyLimit(format!(
                    "this host allows partitions of at most {max} (policy.network_partition.max_duration): give the fault a `duration`"
                )))
            }
            Some(d) if d > max => {
                return Err(FaultError::PolicyLimit(format!(
                    "duration {d} is longer than policy.network_partition.max_duration = {max}"
                )))
            }
            Some(_) => {}
        }
    }
    Ok(if peers.is_empty() {
        protect
    } else {
        protect
            .into_iter()
            .filter(|n| peers.iter().any(|p| p.contains(n) || n.contains(p)))
            .collect()
    })
}

/// Installs the table, whole, in one `nft` transaction.
pub fn apply(plan: &Plan, host: &Host) -> Result<Applied, FaultError> {
    let batch = rules::batch(&plan.table, &plan.partition);
    host.network
        .firewall
        .apply(&batch)
        .map_err(FaultError::firewall("cannot install the partition"))?;
    let effect_at = Instant::now();
    let summary = format!(
        "cut {} (nftables table {} {})",
        plan.partition.describe(),
        family_name(FAMILY),
        plan.table
    );
    // `live` logs the one line for the host owner.
    tracing::debug!(%summary, "network_partition applied");
    Ok(Applied {
        effect_at,
        evidence: Evidence {
            summary,
            ..Evidence::default()
        },
    })
}

/// Reads the counters, deletes the table (already gone is success), and compares the ruleset
/// with the fingerprint taken before the fault.
pub fn revert(plan: &Plan, host: &Host) -> Result<Reverted, FaultError> {
    let firewall = host.network.firewall.as_ref();
    let family = family_name(FAMILY);
    // Counters first: they go with the table. A listing that fails must not stop the revert.
    let tally = match firewall.table(FAMILY, &plan.table) {
        Ok(listing) => Ok(listing.map(|l| rules::tally(&l))),
        Err(e) => {
            tracing::warn!(table = %plan.table, error = %e, "cannot read the partition's counters");
            Err(e)
        }
    };
    let deleted = firewall
        .delete_table(FAMILY, &plan.table)
        .map_err(FaultError::firewall(format!(
            "cannot delete nftables table {family} {}",
            plan.table
        )))?;
    let residue = match firewall.ruleset() {
        Ok(now) => residue::compare(&plan.before, &now, family, &plan.table),
        Err(e) => vec![format!("cannot list the ruleset to check for residue: {e}")],
    };
    let mut figures = HashMap::new();
    let summary = match (&tally, deleted) {
        (Ok(Some(t)), _) => {
            figures.insert("packets_dropped".to_string(), t.packets_dropped as i64);
            figures.insert("bytes_dropped".to_string(), t.bytes_dropped as i64);
            figures.insert("packets_exempted".to_string(), t.packets_exempted as i64);
            format!(
                "deleted nftables table {family} {}; it dropped {} ({} bytes) and let {} through as exempt",
                plan.table,
                packets(t.packets_dropped),
                t.bytes_dropped,
                packets(t.packets_exempted)
            )
        }
        (Err(e), true) => format!(
            "deleted nftables table {family} {}; its counters could not be read: {e}",
            plan.table
        ),
        (_, _) => format!("nftables table {family} {} was already gone", plan.table),
    };
    if !residue.is_empty() {
        tracing::error!(table = %plan.table, ?residue, "network_partition left residue");
    }
    Ok(Reverted {
        evidence: Evidence {
            summary,
            figures,
            residue,
            ..Evidence::default()
        },
    })
}

fn packets(n: u64) -> String {
    if n == 1 {
        "1 packet".into()
    } else {
        format!("{n} packets")
    }
}
