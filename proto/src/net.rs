//! IP networks as partitions and policies name them: parsed from CIDR text (or a bare address,
//! meaning that one host), kept canonical (host bits cleared), compared by containment.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// An IP network with its host bits cleared (`10.0.0.7/24` is kept as `10.0.0.0/24`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Net(IpNet);

/// CIDR text that is not an IP network; the message quotes it and says what was expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NetError(String);

impl Net {
    /// Parses `a.b.c.d/n`, `v6/n`, or a bare address (that one host).
    pub fn parse(s: &str) -> Result<Net, NetError> {
        let text = s.trim();
        let (addr, len) = match text.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (text, None),
        };
        let ip: IpAddr = addr.parse().map_err(|_| {
            NetError(format!(
                "{s:?} is not an IP network (expected e.g. \"10.0.0.0/24\")"
            ))
        })?;
        let max = max_len(ip);
        let len = match len {
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| NetError(format!("{s:?}: prefix length must be 0..={max}")))?,
            None => max,
        };
        // `len` is checked against the family's maximum just above, so this cannot fail.
        IpNet::new(ip, len)
            .map(|n| Net(n.trunc()))
            .map_err(|e| NetError(format!("{s:?}: {e}")))
    }

    /// The one-host network of `ip`.
    pub fn host(ip: IpAddr) -> Net {
        Net(IpNet::from(ip))
    }

    /// True when every address of `other` is in `self`.
    pub fn contains(&self, other: &Net) -> bool {
        self.0.contains(&other.0)
    }

    /// The network's first address.
    pub fn addr(&self) -> IpAddr {
        self.0.network()
    }

    /// The prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.0.prefix_len()
    }

    /// True when the network is one host (a /32 or /128).
    pub fn is_host(&self) -> bool {
        self.0.prefix_len() == self.0.max_prefix_len()
    }

    /// True for an IPv4 network.
    pub fn is_v4(&self) -> bool {
        matches!(self.0, IpNet::V4(_))
    }
}

fn max_len(ip: IpAddr) -> u8 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

impl FromStr for Net {
    type Err = NetError;
    fn from_str(s: &str) -> Result<Net, NetError> {
        Net::parse(s)
    }
}

impl fmt::Display for Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr(), self.prefix_len())
    }
}

impl TryFrom<String> for Net {
    type Error = NetError;
    fn try_from(s: String) -> Result<Net, NetError> {
        Net::parse(&s)
    }
}

impl From<Net> for String {
    fn from(n: Net) -> String {
        n.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_canonical() {
        let read = |s: &str| Net::parse(s).map(|n| n.to_string());
        assert_eq!(read("10.0.0.0/24").unwrap(), "10.0.0.0/24");
        assert_eq!(read("10.0.0.7/24").unwrap(), "10.0.0.0/24");
        assert_eq!(read("10.0.0.7").unwrap(), "10.0.0.7/32");
        assert_eq!(read("fd00::1/64").unwrap(), "fd00::/64");
        assert_eq!(read("0.0.0.0/0").unwrap(), "0.0.0.0/0");
        assert_eq!(
            read("10.0.0.0/33").unwrap_err().to_string(),
            "\"10.0.0.0/33\": prefix length must be 0..=32"
        );
        assert!(read("db.internal")
            .unwrap_err()
            .to_string()
            .contains("is not an IP network"));
        assert!(Net::parse("10.0.0.0/8")
            .unwrap()
            .contains(&Net::parse("10.1.2.3").unwrap()));
        assert!(!Net::parse("10.0.0.0/8")
            .unwrap()
            .contains(&Net::parse("fd00::/8").unwrap()));
    }
}
