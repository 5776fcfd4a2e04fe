//! Fault specifications: the TOML form scenarios use, the wire form, and the checks between them.
//! One file per family: processes, network, disk, DNS.

mod disk;
mod dns;
mod network;
mod process;

use serde::{Deserialize, Serialize};

use crate::v1;
use crate::Duration;

pub use disk::{DiskAmount, DiskFill};
pub use dns::{is_dns_pattern, DnsAnswer, DnsMode, DnsPoison};
pub use network::{parse_cidr, Direction, NetworkPartition, Protocol};
pub use process::{Count, ProcessKill, ProcessMatch, ProcessPause, KILL_SIGNALS};

/// One fault a scenario injects on each of its targets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// Send a signal to matching processes.
    ProcessKill(ProcessKill),
    /// Stop matching processes (SIGSTOP) until reverted (SIGCONT).
    ProcessPause(ProcessPause),
    /// Drop traffic to and from peers.
    NetworkPartition(NetworkPartition),
    /// Fill a filesystem.
    DiskFill(DiskFill),
    /// Make names resolve wrongly.
    DnsPoison(DnsPoison),
}

/// Fault kinds by the name scenarios, capabilities and policies use.
pub const FAULT_KINDS: &[&str] = &[
    "process_kill",
    "process_pause",
    "network_partition",
    "disk_fill",
    "dns_poison",
];

/// A fault specification that is not well formed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FaultSpecError {
    /// The spec is missing or its kind is unknown.
    #[error("fault has no kind (expected one of: {})", FAULT_KINDS.join(", "))]
    MissingKind,
    /// A process fault with zero or several of name/cmdline/pid_file.
    #[error("a process fault needs exactly one of `name`, `cmdline` or `pid_file`, found {found}")]
    ProcessMatch {
        /// How many selectors were given.
        found: usize,
    },
    /// A signal outside [`KILL_SIGNALS`].
    #[error("unknown signal {signal:?} (expected one of: {})", KILL_SIGNALS.join(", "))]
    Signal {
        /// The signal as written.
        signal: String,
    },
    /// A command-line regex that does not compile.
    #[error("invalid `cmdline` regex: {0}")]
    Regex(String),
    /// An empty string where a value is required.
    #[error("`{field}` must not be empty")]
    Empty {
        /// The field name.
        field: &'static str,
    },
    /// A field whose value is not acceptable.
    #[error("`{field}`: {reason}")]
    Invalid {
        /// The field name.
        field: &'static str,
        /// What is wrong and what was expected.
        reason: String,
    },
}

impl Fault {
    /// The fault's kind as capabilities and policies name it.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::ProcessKill(_) => "process_kill",
            Fault::ProcessPause(_) => "process_pause",
            Fault::NetworkPartition(_) => "network_partition",
            Fault::DiskFill(_) => "disk_fill",
            Fault::DnsPoison(_) => "dns_poison",
        }
    }

    /// Faults that act once (a signal) and leave nothing to revert.
    pub fn is_instant(&self) -> bool {
        matches!(self, Fault::ProcessKill(_))
    }

    /// How long a holding fault holds; `None` for instant faults and for "until reverted".
    pub fn duration(&self) -> Option<Duration> {
        match self {
            Fault::ProcessKill(_) => None,
            Fault::ProcessPause(f) => f.duration,
            Fault::NetworkPartition(f) => f.duration,
            Fault::DiskFill(f) => f.duration,
            Fault::DnsPoison(f) => f.duration,
        }
    }

    /// Checks the spec is complete and consistent.
    pub fn validate(&self) -> Result<(), FaultSpecError> {
        match self {
            Fault::ProcessKill(k) => k.selector().map(|_| ()),
            Fault::ProcessPause(p) => p.selector().map(|_| ()),
            Fault::NetworkPartition(n) => n.validate(),
            Fault::DiskFill(d) => d.validate(),
            Fault::DnsPoison(d) => d.validate(),
        }
    }

    /// The wire form. Call [`Fault::validate`] first. Network peers named by agent must have
    /// been resolved into `peers` by the controller (see [`NetworkPartition::peer_agents`]).
    pub fn to_wire(&self) -> v1::FaultSpec {
        use v1::fault_spec::Kind;
        let kind = match self {
            Fault::ProcessKill(k) => Kind::ProcessKill(k.to_wire()),
            Fault::ProcessPause(p) => Kind::ProcessPause(p.to_wire()),
            Fault::NetworkPartition(n) => Kind::NetworkPartition(n.to_wire()),
            Fault::DiskFill(d) => Kind::DiskFill(d.to_wire()),
            Fault::DnsPoison(d) => Kind::DnsPoison(d.to_wire()),
        };
        v1::FaultSpec { kind: Some(kind) }
    }

    /// Reads and validates the wire form, as the agent must: it trusts nothing it receives.
    pub fn from_wire(spec: &v1::FaultSpec) -> Result<Fault, FaultSpecError> {
        use v1::fault_spec::Kind;
        let kind = spec.kind.as_ref().ok_or(FaultSpecError::MissingKind)?;
        let fault = match kind {
            Kind::ProcessKill(k) => Fault::ProcessKill(ProcessKill::from_wire(k)),
            Kind::ProcessPause(p) => Fault::ProcessPause(ProcessPause::from_wire(p)),
            Kind::NetworkPartition(n) => Fault::NetworkPartition(NetworkPartition::from_wire(n)?),
            Kind::DiskFill(d) => Fault::DiskFill(DiskFill::from_wire(d)?),
            Kind::DnsPoison(d) => Fault::DnsPoison(DnsPoison::from_wire(d)?),
        };
        fault.validate()?;
        Ok(fault)
    }
}

/// Milliseconds on the wire, 0 meaning "until reverted".
fn duration_to_ms(d: Option<Duration>) -> u64 {
    d.map_or(0, |d| d.get().as_millis() as u64)
}

fn duration_from_ms(ms: u64) -> Option<Duration> {
    (ms > 0).then(|| Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_kind_is_refused() {
        assert_eq!(
            Fault::from_wire(&v1::FaultSpec { kind: None }),
            Err(FaultSpecError::MissingKind)
        );
    }

    #[test]
    fn every_kind_is_listed() {
        for kind in FAULT_KINDS {
            let toml = match *kind {
                "process_kill" | "process_pause" => format!("kind = \"{kind}\"\nname = \"x\""),
                "network_partition" => format!("kind = \"{kind}\"\npeers = [\"10.0.0.0/8\"]"),
                "disk_fill" => format!("kind = \"{kind}\"\npath = \"/tmp\"\nfill_to = 90"),
                _ => format!("kind = \"{kind}\"\nnames = [\"a.test\"]\nanswer = \"nxdomain\"\nmode = \"resolver\""),
            };
            let fault: Fault = toml::from_str(&toml).unwrap();
            assert_eq!(fault.kind(), *kind);
            fault.validate().unwrap();
            assert_eq!(Fault::from_wire(&fault.to_wire()).unwrap(), fault);
        }
    }
}
