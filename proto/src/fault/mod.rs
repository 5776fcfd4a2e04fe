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
pub use process::{
    is_container_id, kill_signal, Count, NamespaceScope, ProcessKill, ProcessMatch, ProcessPause,
    ProcessPlace, ProcessSelector, KILL_SIGNALS, MIN_CONTAINER_ID_PREFIX,
};

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

/// Shortest `duration` a holding fault may have: the wire carries milliseconds, and 0 there
/// means "until reverted", so anything shorter would silently hold for the whole window.
pub const MIN_FAULT_DURATION: Duration = Duration::from_millis(1);
/// Longest `duration` a holding fault may have: a day. The agent refuses longer ones too, so a
/// fault can never outlive its run by more than that, whatever a controller sends.
pub const MAX_FAULT_DURATION: Duration = Duration::from_millis(24 * 60 * 60 * 1_000);
/// Largest `size` or `leave_free` a `disk_fill` may ask for: 1 PiB, beyond any disk a fault
/// targets, and far from where byte arithmetic on it could overflow.
pub const MAX_DISK_BYTES: u64 = 1 << 50;

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
    /// A process fault with several of name/cmdline/pid_file, or with none and no place.
    #[error("a process fault needs exactly one of `name`, `cmdline` or `pid_file` (or only a place: `unit`, `cgroup` or `container`), found {found}")]
    ProcessMatch {
        /// How many selectors were given.
        found: usize,
    },
    /// A process fault with several of unit/cgroup/container.
    #[error("a process fault takes at most one of `unit`, `cgroup` or `container`, found {found}")]
    ProcessPlace {
        /// How many places were given.
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

    /// Checks the spec is complete, consistent and within the limits
    /// ([`MIN_FAULT_DURATION`]..=[`MAX_FAULT_DURATION`], [`MAX_DISK_BYTES`]).
    pub fn validate(&self) -> Result<(), FaultSpecError> {
        if let Some(duration) = self.duration() {
            check_duration(duration)?;
        }
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
            Kind::ProcessKill(k) => Fault::ProcessKill(ProcessKill::from_wire(k)?),
            Kind::ProcessPause(p) => Fault::ProcessPause(ProcessPause::from_wire(p)?),
            Kind::NetworkPartition(n) => Fault::NetworkPartition(NetworkPartition::from_wire(n)?),
            Kind::DiskFill(d) => Fault::DiskFill(DiskFill::from_wire(d)?),
            Kind::DnsPoison(d) => Fault::DnsPoison(DnsPoison::from_wire(d)?),
        };
        fault.validate()?;
        Ok(fault)
    }
}

fn check_duration(duration: Duration) -> Result<(), FaultSpecError> {
    let reason = if duration < MIN_FAULT_DURATION {
        format!(
            "{duration} is shorter than the minimum, {MIN_FAULT_DURATION} (leave `duration` out \
             to hold the fault for the whole observation window)"
        )
    } else if duration > MAX_FAULT_DURATION {
        format!("{duration} is longer than the maximum, {MAX_FAULT_DURATION}")
    } else {
        return Ok(());
    };
    Err(FaultSpecError::Invalid {
        field: "duration",
        reason,
    })
}

/// Milliseconds on the wire, 0 meaning "until reverted". Saturates rather than wraps: a
/// validated duration is far below `u64::MAX` milliseconds, and an invalid one must not wrap
/// into a short one.
fn duration_to_ms(d: Option<Duration>) -> u64 {
    d.map_or(0, |d| {
        u64::try_from(d.get().as_millis()).unwrap_or(u64::MAX)
    })
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

    fn holding_faults() -> Vec<Fault> {
        let toml = [
            "kind = \"process_pause\"\nname = \"x\"",
            "kind = \"network_partition\"\npeers = [\"10.0.0.0/8\"]",
            "kind = \"disk_fill\"\npath = \"/tmp\"\nfill_to = 90",
            "kind = \"dns_poison\"\nnames = [\"a.test\"]\nanswer = \"nxdomain\"\nmode = \"resolver\"",
        ];
        toml.iter()
            .map(|t| toml::from_str(t).expect("valid fault"))
            .collect()
    }

    fn with_duration(fault: &Fault, duration: Duration) -> Fault {
        let mut fault = fault.clone();
        match &mut fault {
            Fault::ProcessKill(_) => {}
            Fault::ProcessPause(f) => f.duration = Some(duration),
            Fault::NetworkPartition(f) => f.duration = Some(duration),
            Fault::DiskFill(f) => f.duration = Some(duration),
            Fault::DnsPoison(f) => f.duration = Some(duration),
        }
        fault
    }

    #[test]
    fn durations_are_bounded_on_both_sides() {
        for fault in holding_faults() {
            for ok in [MIN_FAULT_DURATION, MAX_FAULT_DURATION] {
                assert_eq!(with_duration(&fault, ok).validate(), Ok(()), "{ok}");
            }
            let over = Duration(MAX_FAULT_DURATION.get() + std::time::Duration::from_millis(1));
            let huge = Duration(std::time::Duration::from_secs(u64::MAX));
            for bad in [
                Duration::from_millis(0),
                Duration(std::time::Duration::from_micros(500)),
                over,
                huge,
            ] {
                let Err(FaultSpecError::Invalid { field, reason }) =
                    with_duration(&fault, bad).validate()
                else {
                    panic!("{bad} accepted for {}", fault.kind());
                };
                assert_eq!(field, "duration");
                assert!(
                    reason.contains("the minimum") || reason.contains("the maximum, 1day"),
                    "{reason}"
                );
            }
        }
    }

    #[test]
    fn the_agent_refuses_an_overlong_duration_from_the_wire() {
        let fault = with_duration(&holding_faults()[0], MAX_FAULT_DURATION);
        let mut wire = fault.to_wire();
        assert_eq!(Fault::from_wire(&wire), Ok(fault));
        if let Some(v1::fault_spec::Kind::ProcessPause(p)) = &mut wire.kind {
            p.duration_ms = u64::MAX;
        }
        assert!(matches!(
            Fault::from_wire(&wire),
            Err(FaultSpecError::Invalid {
                field: "duration",
                ..
            })
        ));
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
