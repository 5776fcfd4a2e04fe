//! The fault kinds, by the name scenarios, capabilities and policies use.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A kind of fault. Adding one means a variant here and its name in [`FaultKind::name`]; the
/// compiler then finds every match that must handle it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum FaultKind {
    /// `process_kill`.
    ProcessKill,
    /// `process_pause`.
    ProcessPause,
    /// `network_partition`.
    NetworkPartition,
    /// `disk_fill`.
    DiskFill,
    /// `dns_poison`.
    DnsPoison,
}

/// A name that is no fault kind.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown fault kind {kind:?} (expected one of: {expected})", expected = FaultKind::expected())]
pub struct UnknownFaultKind {
    /// The name as written.
    pub kind: String,
}

impl FaultKind {
    /// Every kind, in the order lists and messages show them.
    pub const ALL: [FaultKind; 5] = [
        FaultKind::ProcessKill,
        FaultKind::ProcessPause,
        FaultKind::NetworkPartition,
        FaultKind::DiskFill,
        FaultKind::DnsPoison,
    ];

    /// The name: `process_kill`.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::ProcessKill => "process_kill",
            FaultKind::ProcessPause => "process_pause",
            FaultKind::NetworkPartition => "network_partition",
            FaultKind::DiskFill => "disk_fill",
            FaultKind::DnsPoison => "dns_poison",
        }
    }

    /// Every name, comma-separated, for error messages.
    pub fn expected() -> String {
        FaultKind::ALL.map(FaultKind::name).join(", ")
    }
}

impl FromStr for FaultKind {
    type Err = UnknownFaultKind;

    fn from_str(name: &str) -> Result<FaultKind, UnknownFaultKind> {
        FaultKind::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| UnknownFaultKind {
                kind: name.to_string(),
            })
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl From<FaultKind> for &'static str {
    fn from(v: FaultKind) -> &'static str {
        v.name()
    }
}

impl TryFrom<String> for FaultKind {
    type Error = <FaultKind as FromStr>::Err;
    fn try_from(name: String) -> Result<FaultKind, Self::Error> {
        name.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back() {
        for kind in FaultKind::ALL {
            assert_eq!(kind.name().parse::<FaultKind>(), Ok(kind));
        }
        assert_eq!(
            "teleport".parse::<FaultKind>().unwrap_err().to_string(),
            "unknown fault kind \"teleport\" (expected one of: process_kill, process_pause, \
             network_partition, disk_fill, dns_poison)"
        );
    }
}
