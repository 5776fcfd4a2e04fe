//! `network_partition`: drop traffic between a host and its peers.

use serde::{Deserialize, Serialize};

use super::{check_duration, duration_from_ms, duration_to_ms, FaultSpecError};
use crate::net::Net;
use crate::v1;
use crate::Duration;

/// Which traffic a partition drops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Packets arriving from peers.
    Ingress,
    /// Packets leaving for peers.
    Egress,
    /// Both ways (the default).
    #[default]
    Both,
}

/// Which transport a partition matches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// Every protocol (the default); with `ports`, TCP and UDP.
    #[default]
    Any,
    /// TCP only.
    Tcp,
    /// UDP only.
    Udp,
}

/// `network_partition`: nftables rules in a table of the fault's own. The agent's connection to
/// its controller is always exempt. Built only from [`RawNetworkPartition`] (or the wire),
/// which checks everything once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawNetworkPartition", into = "RawNetworkPartition")]
pub struct NetworkPartition {
    /// Ingress, egress or both.
    pub direction: Direction,
    /// Peer networks.
    pub peers: Vec<Net>,
    /// Peers named by agent: the controller resolves them into `peers` before sending.
    pub peer_agents: Vec<String>,
    /// Only packets whose source or destination port is one of these (every port when empty);
    /// never 0.
    pub ports: Vec<u16>,
    /// Transport to match.
    pub protocol: Protocol,
    /// How long the partition holds; until the run reverts it when absent.
    pub duration: Option<Duration>,
}

/// A `network_partition` table as written, unchecked: [`NetworkPartition::try_from`] reads it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNetworkPartition {
    /// Ingress, egress or both.
    #[serde(default)]
    pub direction: Direction,
    /// Peer networks in CIDR notation (`10.0.0.0/24`, `10.0.0.7/32`, `fd00::/64`); a bare
    /// address means that one host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<String>,
    /// Peers named by agent: the controller resolves them to the addresses they connect from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peer_agents: Vec<String>,
    /// Only packets whose source or destination port is one of these (every port when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<u16>,
    /// Transport to match.
    #[serde(default)]
    pub protocol: Protocol,
    /// How long the partition holds; until the run reverts it when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Duration>,
}

impl TryFrom<RawNetworkPartition> for NetworkPartition {
    type Error = FaultSpecError;

    fn try_from(n: RawNetworkPartition) -> Result<NetworkPartition, FaultSpecError> {
        if let Some(duration) = n.duration {
            check_duration(duration)?;
        }
        if n.peers.is_empty() && n.peer_agents.is_empty() && n.ports.is_empty() {
            return Err(FaultSpecError::Invalid {
                field: "peers",
                reason: "name what to cut off: `peers`, `peer_agents` or `ports` (use peers = [\"0.0.0.0/0\"] to isolate the host)".into(),
            });
        }
        let peers = n
            .peers
            .iter()
            .map(|p| {
                Net::parse(p).map_err(|e| FaultSpecError::Invalid {
                    field: "peers",
                    reason: e.to_string(),
                })
            })
            .collect::<Result<_, _>>()?;
        if n.ports.contains(&0) {
            return Err(FaultSpecError::Invalid {
                field: "ports",
                reason: "port 0 is not a port".into(),
            });
        }
        if n.peer_agents.iter().any(String::is_empty) {
            return Err(FaultSpecError::Empty {
                field: "peer_agents",
            });
        }
        Ok(NetworkPartition {
            direction: n.direction,
            peers,
            peer_agents: n.peer_agents,
            ports: n.ports,
            protocol: n.protocol,
            duration: n.duration,
        })
    }
}

impl From<NetworkPartition> for RawNetworkPartition {
    fn from(n: NetworkPartition) -> RawNetworkPartition {
        RawNetworkPartition {
            direction: n.direction,
            peers: n.peers.iter().map(Net::to_string).collect(),
            peer_agents: n.peer_agents,
            ports: n.ports,
            protocol: n.protocol,
            duration: n.duration,
        }
    }
}

impl NetworkPartition {
    pub(super) fn to_wire(&self) -> v1::NetworkPartition {
        v1::NetworkPartition {
            direction: match self.direction {
                Direction::Ingress => v1::Direction::Ingress,
                Direction::Egress => v1::Direction::Egress,
                Direction::Both => v1::Direction::Both,
            } as i32,
            cidrs: self.peers.iter().map(Net::to_string).collect(),
            ports: self.ports.iter().map(|p| u32::from(*p)).collect(),
            protocol: match self.protocol {
                Protocol::Any => v1::Protocol::Any,
                Protocol::Tcp => v1::Protocol::Tcp,
                Protocol::Udp => v1::Protocol::Udp,
            } as i32,
            duration_ms: duration_to_ms(self.duration),
        }
    }

    /// The wire form read back into the fields as written; [`NetworkPartition::try_from`]
    /// checks them.
    pub(super) fn from_wire(
        n: &v1::NetworkPartition,
    ) -> Result<RawNetworkPartition, FaultSpecError> {
        let direction = match v1::Direction::try_from(n.direction) {
            Ok(v1::Direction::Ingress) => Direction::Ingress,
            Ok(v1::Direction::Egress) => Direction::Egress,
            Ok(v1::Direction::Both) => Direction::Both,
            _ => {
                return Err(FaultSpecError::Invalid {
                    field: "direction",
                    reason: format!("unknown direction {}", n.direction),
                })
            }
        };
        let protocol = match v1::Protocol::try_from(n.protocol) {
            Ok(v1::Protocol::Any) => Protocol::Any,
            Ok(v1::Protocol::Tcp) => Protocol::Tcp,
            Ok(v1::Protocol::Udp) => Protocol::Udp,
            Err(_) => {
                return Err(FaultSpecError::Invalid {
                    field: "protocol",
                    reason: format!("unknown protocol {}", n.protocol),
                })
            }
        };
        let ports = n
            .ports
            .iter()
            .map(|p| {
                u16::try_from(*p).map_err(|_| FaultSpecError::Invalid {
                    field: "ports",
                    reason: format!("{p} is not a port"),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(RawNetworkPartition {
            direction,
            peers: n.cidrs.clone(),
            peer_agents: vec![],
            ports,
            protocol,
            duration: duration_from_ms(n.duration_ms),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_something_to_cut() {
        let n = NetworkPartition::try_from(RawNetworkPartition::default());
        assert!(matches!(
            n,
            Err(FaultSpecError::Invalid { field: "peers", .. })
        ));
    }

    #[test]
    fn peers_are_read_once_into_networks() {
        let n = NetworkPartition::try_from(RawNetworkPartition {
            peers: vec!["10.0.0.7".into(), "fd00::1/64".into()],
            ..RawNetworkPartition::default()
        })
        .unwrap();
        assert_eq!(n.peers[0], Net::host("10.0.0.7".parse().unwrap()));
        assert_eq!(n.peers[1].to_string(), "fd00::/64");
        let bad = NetworkPartition::try_from(RawNetworkPartition {
            peers: vec!["10.0.0.0/33".into()],
            ..RawNetworkPartition::default()
        });
        assert_eq!(
            bad.unwrap_err().to_string(),
            "`peers`: \"10.0.0.0/33\": prefix length must be 0..=32"
        );
    }
}
