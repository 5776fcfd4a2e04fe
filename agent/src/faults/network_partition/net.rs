//! IP networks as partitions and policies name them: parsed from CIDR text, kept canonical
//! (host bits cleared), compared by containment, merged to the fewest that cover the same
//! addresses.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// An IP network with its host bits cleared (`10.0.0.7/24` is kept as `10.0.0.0/24`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Net {
    addr: IpAddr,
    len: u8,
}

impl Net {
    /// Parses `a.b.c.d/n`, `v6/n`, or a bare address (that one host).
    pub fn parse(s: &str) -> Result<Net, String> {
        let (addr, len) = gameday_proto::fault::parse_cidr(s.trim())?;
        Ok(Net {
            addr: mask(addr, len),
            len,
        })
    }

    /// The one-host network of `ip`.
    pub fn host(ip: IpAddr) -> Net {
        Net {
            addr: ip,
            len: max_len(ip),
        }
    }

    /// True when every address of `other` is in `self`.
    pub fn contains(&self, other: &Net) -> bool {
        self.addr.is_ipv4() == other.addr.is_ipv4()
            && other.len >= self.len
            && mask(other.addr, self.len) == self.addr
    }

    /// The network's first address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    /// True when the network is one host (a /32 or /128).
    pub fn is_host(&self) -> bool {
        self.len == max_len(self.addr)
    }

    /// True for an IPv4 network.
    pub fn is_v4(&self) -> bool {
        self.addr.is_ipv4()
    }
}

impl fmt::Display for Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl TryFrom<String> for Net {
    type Error = String;
    fn try_from(s: String) -> Result<Net, String> {
        Net::parse(&s)
    }
}

impl From<Net> for String {
    fn from(n: Net) -> String {
        n.to_string()
    }
}

fn max_len(ip: IpAddr) -> u8 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

fn mask(ip: IpAddr, len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let m = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            IpAddr::V4((u32::from(v4) & m).into())
        }
        IpAddr::V6(v6) => {
            let m = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & m).into())
        }
    }
}

/// The fewest networks covering the same addresses: sorted, without duplicates or networks
/// inside another one. nft refuses overlapping intervals in one set, so this is also what
/// makes any list of peers installable.
pub fn minimal(nets: &[Net]) -> Vec<Net> {
    let mut sorted = nets.to_vec();
    sorted.sort();
    sorted.dedup();
    sorted
        .iter()
        .filter(|n| !sorted.iter().any(|o| o != *n && o.contains(n)))
        .copied()
        .collect()
}
