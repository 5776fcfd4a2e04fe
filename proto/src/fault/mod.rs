//! Fault specifications: the form scenarios write (`Raw*`, unchecked), the wire form, and the
//! typed form both sides work with. A typed spec holds parsed values (a signal, networks, an
//! answer, an amount) and is only ever built by `TryFrom` a raw one, the one place a spec is
//! checked; the wire is read into the raw form first. One file per family: processes, network,
//! disk, DNS.

mod disk;
mod dns;
mod kind;
mod network;
mod process;
mod signal;

use serde::{Deserialize, Serialize};

use crate::v1;
use crate::Duration;

pub use crate::net::Net;
pub use disk::{DiskAmount, DiskFill, RawDiskFill};
pub use dns::{is_dns_pattern, DnsAnswer, DnsMode, DnsPoison, RawDnsPoison};
pub use kind::{FaultKind, UnknownFaultKind};
pub use network::{Direction, NetworkPartition, Protocol, RawNetworkPartition};
pub use process::{
    is_container_id, CmdlinePattern, Count, NamespaceScope, ProcessKill, ProcessMatch,
    ProcessPause, ProcessPlace, ProcessSelector, RawProcessKill, RawProcessPause,
    MIN_CONTAINER_ID_PREFIX,
};
pub use signal::KillSignal;

/// One fault a scenario injects on each of its targets, checked. Serde reads and writes it as
/// a [`RawFault`] (`kind = "..."` and the kind's keys), checking it on the way in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawFault", into = "RawFault")]
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

/// A fault as written, unchecked: what TOML and JSON hold. [`Fault::try_from`] checks it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RawFault {
    /// `process_kill`.
    ProcessKill(RawProcessKill),
    /// `process_pause`.
    ProcessPause(RawProcessPause),
    /// `network_partition`.
    NetworkPartition(RawNetworkPartition),
    /// `disk_fill`.
    DiskFill(RawDiskFill),
    /// `dns_poison`.
    DnsPoison(RawDnsPoison),
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

/// A fault specification that is not well formed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FaultSpecError {
    /// The spec is missing or its kind is unknown.
    #[error("fault has no kind (expected one of: {})", FaultKind::expected())]
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
    /// A signal a kill may not send (see [`KillSignal`]).
    #[error(
        "unknown signal {signal:?} (expected one of: {})",
        KillSignal::expected()
    )]
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
    /// The fault's kind.
    pub fn kind(&self) -> FaultKind {
        match self {
            Fault::ProcessKill(_) => FaultKind::ProcessKill,
            Fault::ProcessPause(_) => FaultKind::ProcessPause,
            Fault::NetworkPartition(_) => FaultKind::NetworkPartition,
            Fault::DiskFill(_) => FaultKind::DiskFill,
            Fault::DnsPoison(_) => FaultKind::DnsPoison,
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

    /// The wire form. Network peers named by agent must have been resolved into `peers` by
    /// the controller (see [`NetworkPartition::peer_agents`]).
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

    /// Reads and checks the wire form, as the agent must: it trusts nothing it receives. The
    /// same as `Fault::try_from(spec)`.
    pub fn from_wire(spec: &v1::FaultSpec) -> Result<Fault, FaultSpecError> {
        Fault::try_from(spec)
    }
}

impl TryFrom<RawFault> for Fault {
    type Error = FaultSpecError;

    /// The one check of a spec: complete, consistent and within the limits
    /// ([`MIN_FAULT_DURATION`]..=[`MAX_FAULT_DURATION`], [`MAX_DISK_BYTES`]).
    fn try_from(raw: RawFault) -> Result<Fault, FaultSpecError> {
        Ok(match raw {
            RawFault::ProcessKill(k) => Fault::ProcessKill(k.try_into()?),
            RawFault::ProcessPause(p) => Fault::ProcessPause(p.try_into()?),
            RawFault::NetworkPartition(n) => Fault::NetworkPartition(n.try_into()?),
            RawFault::DiskFill(d) => Fault::DiskFill(d.try_into()?),
            RawFault::DnsPoison(d) => Fault::DnsPoison(d.try_into()?),
        })
    }
}

impl From<Fault> for RawFault {
    fn from(fault: Fault) -> RawFault {
        match fault {
            Fault::ProcessKill(k) => RawFault::ProcessKill(k.into()),
            Fault::ProcessPause(p) => RawFault::ProcessPause(p.into()),
            Fault::NetworkPartition(n) => RawFault::NetworkPartition(n.into()),
            Fault::DiskFill(d) => RawFault::DiskFill(d.into()),
            Fault::DnsPoison(d) => RawFault::DnsPoison(d.into()),
        }
    }
}

impl TryFrom<&v1::FaultSpec> for Fault {
    type Error = FaultSpecError;

    /// Decodes the wire into the raw form (enum numbers, port ranges, namespace scopes), then
    /// checks it like a scenario's.
    fn try_from(spec: &v1::FaultSpec) -> Result<Fault, FaultSpecError> {
        use v1::fault_spec::Kind;
        let kind = spec.kind.as_ref().ok_or(FaultSpecError::MissingKind)?;
        let raw = match kind {
            Kind::ProcessKill(k) => RawFault::ProcessKill(ProcessKill::from_wire(k)?),
            Kind::ProcessPause(p) => RawFault::ProcessPause(ProcessPause::from_wire(p)?),
            Kind::NetworkPartition(n) => {
                RawFault::NetworkPartition(NetworkPartition::from_wire(n)?)
            }
            Kind::DiskFill(d) => RawFault::DiskFill(DiskFill::from_wire(d)?),
            Kind::DnsPoison(d) => RawFault::DnsPoison(DnsPoison::from_wire(d)?),
        };
        Fault::try_from(raw)
    }
}

pub(crate) fn check_duration(duration: Duration) -> Result<(), FaultSpecError> {
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

    fn holding_faults() -> Vec<RawFault> {
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

    fn with_duration(fault: &RawFault, duration: Duration) -> Result<Fault, FaultSpecError> {
        let mut fault = fault.clone();
        match &mut fault {
            RawFault::ProcessKill(_) => {}
            RawFault::ProcessPause(f) => f.duration = Some(duration),
            RawFault::NetworkPartition(f) => f.duration = Some(duration),
            RawFault::DiskFill(f) => f.duration = Some(duration),
            RawFault::DnsPoison(f) => f.duration = Some(duration),
        }
        Fault::try_from(fault)
    }

    #[test]
    fn durations_are_bounded_on_both_sides() {
        for fault in holding_faults() {
            for ok in [MIN_FAULT_DURATION, MAX_FAULT_DURATION] {
                let held = with_duration(&fault, ok).expect("in bounds");
                assert_eq!(held.duration(), Some(ok));
            }
            let over = Duration(MAX_FAULT_DURATION.get() + std::time::Duration::from_millis(1));
            let huge = Duration(std::time::Duration::from_secs(u64::MAX));
            for bad in [
                Duration::from_millis(0),
                Duration(std::time::Duration::from_micros(500)),
                over,
                huge,
            ] {
                let Err(FaultSpecError::Invalid { field, reason }) = with_duration(&fault, bad)
                else {
                    panic!("{bad} accepted for {fault:?}");
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
        let fault = with_duration(&holding_faults()[0], MAX_FAULT_DURATION).unwrap();
        let mut wire = fault.to_wire();
        assert_eq!(Fault::try_from(&wire), Ok(fault));
        if let Some(v1::fault_spec::Kind::ProcessPause(p)) = &mut wire.kind {
            p.duration_ms = u64::MAX;
        }
        assert!(matches!(
            Fault::try_from(&wire),
            Err(FaultSpecError::Invalid {
                field: "duration",
                ..
            })
        ));
    }

    #[test]
    fn every_kind_is_listed() {
        for kind in FaultKind::ALL {
            let toml = match kind {
                FaultKind::ProcessKill | FaultKind::ProcessPause => format!("kind = \"{kind}\"\nname = \"x\""),
                FaultKind::NetworkPartition => format!("kind = \"{kind}\"\npeers = [\"10.0.0.0/8\"]"),
                FaultKind::DiskFill => format!("kind = \"{kind}\"\npath = \"/tmp\"\nfill_to = 90"),
                FaultKind::DnsPoison => format!("kind = \"{kind}\"\nnames = [\"a.test\"]\nanswer = \"nxdomain\"\nmode = \"resolver\""),
            };
            let fault: Fault = toml::from_str(&toml).unwrap();
            assert_eq!(fault.kind(), kind);
            assert_eq!(Fault::try_from(&fault.to_wire()).unwrap(), fault);
        }
    }

    #[test]
    fn serde_checks_on_the_way_in_and_writes_what_it_read() {
        let text =
            "kind = \"process_kill\"\nsignal = \"term\"\ncmdline = \"^redis\"\ncount = \"one\"\n";
        let fault: Fault = toml::from_str(text).unwrap();
        let Fault::ProcessKill(k) = &fault else {
            panic!("{fault:?}");
        };
        assert_eq!(k.signal, KillSignal::Term);
        let json = serde_json::to_value(&fault).unwrap();
        assert_eq!(json["signal"], "SIGTERM");
        assert_eq!(json["cmdline"], "^redis");
        assert_eq!(serde_json::from_value::<Fault>(json).unwrap(), fault);
        let bad =
            toml::from_str::<Fault>("kind = \"process_kill\"\nsignal = \"STOP\"\nname = \"x\"");
        assert!(bad
            .unwrap_err()
            .to_string()
            .contains("unknown signal \"STOP\""));
    }
}
