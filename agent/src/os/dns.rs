//! The file and socket boundary of `dns_poison`: hosts and resolv.conf files, the sockets of
//! the embedded resolver (its upstream sockets carry a firewall mark), and the nftables table,
//! built as data, that redirects the host's outgoing port-53 traffic to it (applied through
//! [`crate::os::nft::Firewall`]).
//!
//! Fault logic only sees the [`DnsFiles`] and [`DnsSockets`] traits and the `Firewall` trait,
//! so it can be unit-tested with fakes in a temporary directory and on loopback.

use std::borrow::Cow;
use std::fs::{File, OpenOptions};
use std::io::{self, Read as _, Seek as _, SeekFrom, Write as _};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};

use nftables::{batch::Batch, expr, schema, stmt, types};
use socket2::{Domain, Protocol, Socket, Type};

/// A DNS-related host operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum DnsOsError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// A socket could not be made, bound or marked.
    #[error("{what}: {source}")]
    Socket {
        /// What was being done, e.g. "bind 127.0.0.1:5300/udp".
        what: String,
        /// What the system said.
        source: io::Error,
    },
}

impl DnsOsError {
    /// True when the error is "address already in use" (another port must be tried).
    pub fn is_addr_in_use(&self) -> bool {
        matches!(self, DnsOsError::Socket { source, .. } if source.kind() == io::ErrorKind::AddrInUse)
    }

    /// True when the address family or address is missing here (no IPv6 loopback).
    pub fn is_addr_unavailable(&self) -> bool {
        matches!(self, DnsOsError::Socket { source, .. }
            if source.kind() == io::ErrorKind::AddrNotAvailable
                || source.raw_os_error() == Some(nix::errno::Errno::EAFNOSUPPORT as i32))
    }
}

/// Files `dns_poison` reads and writes: the hosts file it may rewrite and the resolv.conf it
/// reads upstream servers from. Every path comes from the host's policy.
pub trait DnsFiles: Send + Sync {
    /// The file's bytes; reading more than `limit` bytes is an error (a wrong path such as
    /// `/dev/zero` must not make the agent read without bound).
    fn read(&self, path: &Path, limit: u64) -> Result<Vec<u8>, DnsOsError>;

    /// Replaces the file's content in place (same inode, mode and owner), then fsyncs it.
    fn write_in_place(&self, path: &Path, bytes: &[u8]) -> Result<(), DnsOsError>;

    /// Succeeds when the file exists and this process may write it, without changing it.
    fn check_writable(&self, path: &Path) -> Result<(), DnsOsError>;
}

/// Sockets of the embedded resolver.
pub trait DnsSockets: Send + Sync {
    /// A UDP socket bound to `addr` (where redirected queries arrive).
    fn listen_udp(&self, addr: SocketAddr) -> Result<UdpSocket, DnsOsError>;

    /// A TCP listener bound to `addr`.
    fn listen_tcp(&self, addr: SocketAddr) -> Result<TcpListener, DnsOsError>;

    /// A UDP socket for queries to upstream servers, bound to the wildcard address of its
    /// family and carrying firewall mark `mark`, which the redirect lets through: without it
    /// the resolver's own upstream queries would be redirected back to itself.
    fn upstream_udp(&self, ipv6: bool, mark: u32) -> Result<UdpSocket, DnsOsError>;

    /// An unconnected TCP socket carrying firewall mark `mark`, for one query to an upstream.
    fn upstream_tcp(&self, ipv6: bool, mark: u32) -> Result<TcpStream, DnsOsError>;
}

/// What the redirect table does: every outgoing UDP and TCP packet to port 53 not carrying
/// `exempt_mark` goes to the embedded resolver's `port` on loopback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redirect {
    /// The table's name (family `inet`); it belongs to one fault.
    pub table: String,
    /// The embedded resolver's port on 127.0.0.1 (and ::1).
    pub port: u16,
    /// Packets with this mark (the resolver's own upstream queries) are left alone.
    pub exempt_mark: u32,
    /// Whether IPv6 traffic is redirected too (only when the resolver listens on ::1).
    pub ipv6: bool,
}

/// The real host: files and sockets.
#[derive(Clone, Debug, Default)]
pub struct RealDns;

fn file_err(path: &Path) -> impl FnOnce(io::Error) -> DnsOsError + '_ {
    move |source| DnsOsError::File {
        path: path.to_path_buf(),
        source,
    }
}

impl DnsFiles for RealDns {
    fn read(&self, path: &Path, limit: u64) -> Result<Vec<u8>, DnsOsError> {
        let file = File::open(path).map_err(file_err(path))?;
        let mut bytes = Vec::new();
        file.take(limit.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(file_err(path))?;
        if bytes.len() as u64 > limit {
            return Err(file_err(path)(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("larger than {limit} bytes"),
            )));
        }
        Ok(bytes)
    }

    fn write_in_place(&self, path: &Path, bytes: &[u8]) -> Result<(), DnsOsError> {
        // In place rather than a temporary file renamed over: a hosts file is often a bind
        // mount (`ip netns exec` mounts /etc/netns/NAME/hosts over /etc/hosts, containers
        // mount theirs), which a rename cannot replace and which would keep showing the old
        // inode. Writing before truncating means a reader racing us never sees an empty file.
        let mut file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(file_err(path))?;
        file.seek(SeekFrom::Start(0)).map_err(file_err(path))?;
        file.write_all(bytes).map_err(file_err(path))?;
        file.set_len(bytes.len() as u64).map_err(file_err(path))?;
        file.sync_all().map_err(file_err(path))
    }

    fn check_writable(&self, path: &Path) -> Result<(), DnsOsError> {
        // Opening for writing (no create, no truncate) changes nothing, and fails exactly
        // when writing would: missing file, permissions, read-only filesystem.
        OpenOptions::new()
            .write(true)
            .open(path)
            .map(drop)
            .map_err(file_err(path))
    }
}

fn socket_err(what: String) -> impl FnOnce(io::Error) -> DnsOsError {
    move |source| DnsOsError::Socket { what, source }
}

fn marked(ipv6: bool, kind: Type, protocol: Protocol, mark: u32) -> Result<Socket, DnsOsError> {
    let domain = if ipv6 { Domain::IPV6 } else { Domain::IPV4 };
    let socket = Socket::new(domain, kind, Some(protocol))
        .map_err(socket_err("create an upstream socket".into()))?;
    socket.set_mark(mark).map_err(socket_err(format!(
        "set SO_MARK {mark:#x} (needs CAP_NET_ADMIN)"
    )))?;
    Ok(socket)
}

impl DnsSockets for RealDns {
    fn listen_udp(&self, addr: SocketAddr) -> Result<UdpSocket, DnsOsError> {
        UdpSocket::bind(addr).map_err(socket_err(format!("bind {addr}/udp")))
    }

    fn listen_tcp(&self, addr: SocketAddr) -> Result<TcpListener, DnsOsError> {
        // std sets SO_REUSEADDR, so a port freed by the last revert can be bound again at once.
        TcpListener::bind(addr).map_err(socket_err(format!("bind {addr}/tcp")))
    }

    fn upstream_udp(&self, ipv6: bool, mark: u32) -> Result<UdpSocket, DnsOsError> {
        let socket = marked(ipv6, Type::DGRAM, Protocol::UDP, mark)?;
        let any: SocketAddr = if ipv6 {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        };
        socket
            .bind(&any.into())
            .map_err(socket_err(format!("bind {any}/udp")))?;
        Ok(socket.into())
    }

    fn upstream_tcp(&self, ipv6: bool, mark: u32) -> Result<TcpStream, DnsOsError> {
        Ok(marked(ipv6, Type::STREAM, Protocol::TCP, mark)?.into())
    }
}

fn table_ref(name: &str) -> schema::Table<'_> {
    schema::Table {
        family: types::NfFamily::INet,
        name: Cow::Borrowed(name),
        handle: None,
    }
}

fn eq<'a>(left: expr::Expression<'a>, right: expr::Expression<'a>) -> stmt::Statement<'a> {
    stmt::Statement::Match(stmt::Match {
        left,
        right,
        op: stmt::Operator::EQ,
    })
}

fn meta(key: expr::MetaKey) -> expr::Expression<'static> {
    expr::Expression::Named(expr::NamedExpression::Meta(expr::Meta { key }))
}

fn payload<'a>(protocol: &'a str, field: &'a str) -> expr::Expression<'a> {
    expr::Expression::Named(expr::NamedExpression::Payload(expr::Payload::PayloadField(
        expr::PayloadField {
            protocol: Cow::Borrowed(protocol),
            field: Cow::Borrowed(field),
        },
    )))
}

/// The chain every redirect table holds.
const CHAIN: &str = "output";

/// The ruleset that creates `redirect`'s table, as one nftables transaction:
///
/// ```text
/// table inet T {
///   chain output {
///     type nat hook output priority -100; policy accept;
///     meta mark 0x47444e53 return
///     meta nfproto ipv4 udp dport 53 counter redirect to :PORT
///     meta nfproto ipv4 tcp dport 53 counter redirect to :PORT
///     (the same for ipv6 when the resolver listens on ::1)
///   }
/// }
/// ```
pub fn redirect_ruleset(redirect: &Redirect) -> schema::Nftables<'_> {
    let mut batch = Batch::new();
    let table: &str = &redirect.table;
    batch.add(schema::NfListObject::Table(table_ref(table)));
    batch.add(schema::NfListObject::Chain(schema::Chain {
        family: types::NfFamily::INet,
        table: Cow::Borrowed(table),
        name: Cow::Borrowed(CHAIN),
        _type: Some(types::NfChainType::NAT),
        hook: Some(types::NfHook::Output),
        // dstnat: the usual priority for destination NAT.
        prio: Some(-100),
        policy: Some(types::NfChainPolicy::Accept),
        ..schema::Chain::default()
    }));
    let rule = |expr: Vec<stmt::Statement<'static>>| {
        schema::NfListObject::Rule(schema::Rule {
            family: types::NfFamily::INet,
            table: Cow::Owned(table.to_string()),
            chain: Cow::Borrowed(CHAIN),
            expr: Cow::Owned(expr),
            handle: None,
            index: None,
            comment: None,
        })
    };
    batch.add(rule(vec![
        eq(
            meta(expr::MetaKey::Mark),
            expr::Expression::Number(redirect.exempt_mark),
        ),
        stmt::Statement::Return(None),
    ]));
    let families: &[&'static str] = if redirect.ipv6 {
        &["ipv4", "ipv6"]
    } else {
        &["ipv4"]
    };
    for family in families {
        for proto in ["udp", "tcp"] {
            batch.add(rule(vec![
                eq(
                    meta(expr::MetaKey::Nfproto),
                    expr::Expression::String(Cow::Borrowed(family)),
                ),
                eq(payload(proto, "dport"), expr::Expression::Number(53)),
                stmt::Statement::Counter(stmt::Counter::Anonymous(None)),
                stmt::Statement::Redirect(Some(stmt::NAT {
                    addr: None,
                    family: None,
                    port: Some(expr::Expression::Number(u32::from(redirect.port))),
                    flags: None,
                })),
            ]));
        }
    }
    batch.to_nftables()
}

/// Sums the packet counters of the rules in a listed table (`nft -j list table`).
pub fn counted_packets(ruleset: &schema::Nftables<'_>) -> u64 {
    ruleset
        .objects
        .iter()
        .filter_map(|o| match o {
            schema::NfObject::ListObject(schema::NfListObject::Rule(r)) => Some(r),
            _ => None,
        })
        .flat_map(|r| r.expr.iter())
        .filter_map(|s| match s {
            stmt::Statement::Counter(stmt::Counter::Anonymous(Some(c))) => c.packets,
            _ => None,
        })
        .map(|p| p as u64)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_place_writes_keep_the_inode_and_mode() {
        use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        std::fs::write(&path, b"127.0.0.1 localhost\n10.0.0.1 a.test\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let before = std::fs::metadata(&path).unwrap();
        RealDns.write_in_place(&path, b"short").unwrap();
        let after = std::fs::metadata(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"short");
        assert_eq!(before.ino(), after.ino());
        assert_eq!(after.mode() & 0o777, 0o640);
        assert_eq!(RealDns.read(&path, 5).unwrap(), b"short");
        let err = RealDns.read(&path, 4).unwrap_err().to_string();
        assert!(err.contains("larger than 4 bytes"), "{err}");
        assert!(RealDns.check_writable(&path).is_ok());
        assert!(RealDns.check_writable(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn the_redirect_is_one_table_exempting_the_mark() {
        let redirect = Redirect {
            table: "gameday_dns_f1".into(),
            port: 5300,
            exempt_mark: 0x4744_4e53,
            ipv6: false,
        };
        let json = serde_json::to_string(&redirect_ruleset(&redirect)).unwrap();
        assert!(
            json.contains(r#"{"add":{"table":{"family":"inet","name":"gameday_dns_f1"}}}"#),
            "{json}"
        );
        assert!(json.contains(r#""hook":"output""#), "{json}");
        assert!(json.contains(r#""right":1195658835"#), "{json}");
        assert!(json.contains(r#"{"redirect":{"port":5300}}"#), "{json}");
        assert!(!json.contains("ipv6"), "{json}");
        let both = Redirect {
            ipv6: true,
            ..redirect
        };
        let json = serde_json::to_string(&redirect_ruleset(&both)).unwrap();
        assert_eq!(json.matches("redirect").count(), 4, "{json}");
    }

    #[test]
    fn counters_are_summed_from_a_listed_table() {
        let listed: schema::Nftables<'_> = serde_json::from_str(
            r#"{"nftables":[{"metainfo":{"version":"1.0.6","release_name":"x","json_schema_version":1}},
            {"table":{"family":"inet","name":"t","handle":1}},
            {"rule":{"family":"inet","table":"t","chain":"output","handle":3,"expr":[
              {"match":{"op":"==","left":{"payload":{"protocol":"udp","field":"dport"}},"right":53}},
              {"counter":{"packets":3,"bytes":180}},{"redirect":{"port":5300}}]}},
            {"rule":{"family":"inet","table":"t","chain":"output","handle":4,"expr":[
              {"counter":{"packets":2,"bytes":120}},{"redirect":{"port":5300}}]}}]}"#,
        )
        .unwrap();
        assert_eq!(counted_packets(&listed), 5);
    }
}
