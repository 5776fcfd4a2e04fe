//! `network_partition`: drop traffic between a host and its peers.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{duration_from_ms, duration_to_ms, FaultSpecError};
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
/// its controller is always exempt.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkPartition {
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

/// Checks `a.b.c.d/n`, `addr`, `v6/n`.
pub fn parse_cidr(s: &str) -> Result<(IpAddr, u8), String> {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| format!("{s:?} is not an IP network (expected e.g. \"10.0.0.0/24\")"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match len {
        Some(l) => l
            .parse::<u8>()
            .ok()
            .filter(|l| *l <= max)
            .ok_or_else(|| format!("{s:?}: prefix length must be 0..={max}"))?,
        None => max,
    };
    Ok((ip, len))
}

impl NetworkPartition {
    pub(super) fn validate(&self) -> Result<(), FaultSpecError> {
        if self.peers.is_empty() && self.peer_agents.is_empty() && self.ports.is_empty() {
            return Err(FaultSpecError::Invalid {
                field: "peers",
                reason: "name what to cut off: `peers`, `peer_agents` or `ports` (use peers = [\"0.0.0.0/0\"] to isolate the host)".into(),
            });
        }
        for p in &self.peers {
            parse_cidr(p).map_err(|reason| FaultSpecError::Invalid {
                field: "peers",
                reason,
            })?;
        }
        if self.ports.contains(&0) {
            return Err(FaultSpecError::Invalid {
                field: "ports",
                reason: "port 0 is not a port".into(),
            });
        }
        if self.peer_agents.iter().any(String::is_empty) {
            return Err(FaultSpecError::Empty {
                field: "peer_agents",
            });
        }
        Ok(())
    }

    pub(super) fn to_wire(&self) -> v1::NetworkPartition {
        v1::NetworkPartition {
            direction: match self.direction {
                Direction::Ingress => v1::Direction::Ingress,
                Direction::Egress => v1::Direction::Egress,
                Direction::Both => v1::Direction::Both,
            } as i32,
            cidrs: self.peers.clone(),
            ports: self.ports.iter().map(|p| u32::from(*p)).collect(),
            protocol: match self.protocol {
                Protocol::Any => v1::Protocol::Any,
                Protocol::Tcp => v1::Protocol::Tcp,
                Protocol::Udp => v1::Protocol::Udp,
            } as i32,
            duration_ms: duration_to_ms(self.duration),
        }
    }

    pub(super) fn from_wire(n: &v1::NetworkPartition) -> Result<NetworkPartition, FaultSpecError> {
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
        Ok(NetworkPartition {
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
    fn cidrs_parse() {
        assert_eq!(parse_cidr("10.0.0.0/24").unwrap().1, 24);
        assert_eq!(parse_cidr("10.0.0.7").unwrap().1, 32);
        assert_eq!(parse_cidr("fd00::/64").unwrap().1, 64);
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("db.internal").is_err());
    }

    #[test]
    fn needs_something_to_cut() {
        let n = NetworkPartition::default();
        assert!(matches!(
            n.validate(),
            Err(FaultSpecError::Invalid { field: "peers", .. })
        ));
    }
}
