//! Tests of the embedded resolver: the real server on loopback with unmarked sockets and fake
//! upstreams (UDP and TCP).

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::AtomicBool;

use hickory_proto::op::{Edns, Message, MessageType, Query};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::*;
use crate::faults::dns_poison::names::NamePattern;
use crate::faults::dns_poison::Answer;
use crate::os::dns::DnsOsError;

/// Sockets without the firewall mark (setting one needs CAP_NET_ADMIN).
pub(crate) struct PlainSockets;

impl DnsSockets for PlainSockets {
    fn listen_udp(&self, addr: SocketAddr) -> Result<std::net::UdpSocket, DnsOsError> {
        crate::os::dns::RealDns.listen_udp(addr)
    }

    fn listen_tcp(&self, addr: SocketAddr) -> Result<std::net::TcpListener, DnsOsError> {
        crate::os::dns::RealDns.listen_tcp(addr)
    }

    fn upstream_udp(&self, ipv6: bool, _mark: u32) -> Result<std::net::UdpSocket, DnsOsError> {
        let any: SocketAddr = if ipv6 {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        };
        crate::os::dns::RealDns.listen_udp(any)
    }

    fn upstream_tcp(&self, ipv6: bool, _mark: u32) -> Result<std::net::TcpStream, DnsOsError> {
        let domain = if ipv6 {
            socket2::Domain::IPV6
        } else {
            socket2::Domain::IPV4
        };
        let socket =
            socket2::Socket::new(domain, socket2::Type::STREAM, None).map_err(|source| {
                DnsOsError::Socket {
                    what: "socket".into(),
                    source,
                }
            })?;
        Ok(socket.into())
    }
}

fn query_bytes(id: u16, name: &str, qtype: RecordType, edns: bool) -> Vec<u8> {
    let mut m = Message::new();
    m.set_id(id)
        .set_recursion_desired(true)
        .add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    if edns {
        m.set_edns(Edns::new());
    }
    m.to_vec().unwrap()
}

/// The answer to a query, as a client would read it.
fn answer_to(upstream_ip: Ipv4Addr, query: &[u8]) -> Vec<u8> {
    let q = Message::from_vec(query).unwrap();
    let mut r = Message::new();
    r.set_id(q.id())
        .set_message_type(MessageType::Response)
        .set_recursion_available(true)
        .add_query(q.queries()[0].clone())
        .add_answer(Record::from_rdata(
            q.queries()[0].name().clone(),
            60,
            RData::A(A(upstream_ip)),
        ));
    r.to_vec().unwrap()
}

/// An upstream on loopback answering every A query with one address, over UDP and TCP on
/// the same port. Stops when dropped.
pub(crate) struct FakeUpstream {
    pub(crate) addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl FakeUpstream {
    pub(crate) fn start(answer: Ipv4Addr) -> FakeUpstream {
        // The kernel picks a free UDP port; the same TCP port may be taken by anything else
        // running in parallel, so try again with another pair rather than fail.
        let (udp, tcp, addr) = (0..50)
            .find_map(|_| {
                let udp = UdpSocket::bind("127.0.0.1:0").ok()?;
                let addr = udp.local_addr().ok()?;
                let tcp = std::net::TcpListener::bind(addr).ok()?;
                Some((udp, tcp, addr))
            })
            .expect("a loopback port free for both UDP and TCP");
        udp.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        tcp.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !flag.load(Ordering::Relaxed) {
                if let Ok((n, from)) = udp.recv_from(&mut buf) {
                    let _ = udp.send_to(&answer_to(answer, &buf[..n]), from);
                }
                if let Ok((mut s, _)) = tcp.accept() {
                    s.set_nonblocking(false).unwrap();
                    let mut len = [0u8; 2];
                    s.read_exact(&mut len).unwrap();
                    let mut q = vec![0u8; usize::from(u16::from_be_bytes(len))];
                    s.read_exact(&mut q).unwrap();
                    let a = answer_to(answer, &q);
                    s.write_all(&(a.len() as u16).to_be_bytes()).unwrap();
                    s.write_all(&a).unwrap();
                }
            }
        });
        FakeUpstream { addr, stop }
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Asks `server` over UDP; `None` when no answer comes within a second.
pub(crate) fn ask_udp(server: SocketAddr, name: &str, qtype: RecordType) -> Option<Message> {
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    client
        .send_to(&query_bytes(0x1234, name, qtype, false), server)
        .unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = client.recv_from(&mut buf).ok()?;
    let reply = Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(reply.id(), 0x1234, "the client's own id comes back");
    Some(reply)
}

fn ask_tcp(server: SocketAddr, name: &str) -> Option<Message> {
    let mut s = std::net::TcpStream::connect(server).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let q = query_bytes(0x4321, name, RecordType::A, false);
    s.write_all(&(q.len() as u16).to_be_bytes()).unwrap();
    s.write_all(&q).unwrap();
    let mut len = [0u8; 2];
    s.read_exact(&mut len).ok()?;
    let mut a = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut a).ok()?;
    Some(Message::from_vec(&a).unwrap())
}

fn poison(names: &[&str], answer: Answer) -> Poison {
    Poison {
        names: names
            .iter()
            .map(|n| NamePattern::parse(n).unwrap())
            .collect(),
        answer,
    }
}

fn settings(p: Poison, upstream: Vec<SocketAddr>) -> Settings {
    Settings {
        poison: p,
        upstream,
        upstream_timeout: Duration::from_millis(200),
        mark: 1,
        listen_port: 0,
    }
}

#[test]
fn serves_poison_and_forwards_over_udp_and_tcp() {
    let upstream = FakeUpstream::start(Ipv4Addr::new(192, 0, 2, 7));
    let p = poison(
        &["*.api.test"],
        Answer::Address("10.9.9.9".parse().unwrap()),
    );
    let server = Server::start(settings(p, vec![upstream.addr]), Arc::new(PlainSockets)).unwrap();
    let at: SocketAddr = (Ipv4Addr::LOCALHOST, server.port()).into();
    let a = ask_udp(at, "www.api.test", RecordType::A).unwrap();
    assert_eq!(a.answers()[0].data().to_string(), "10.9.9.9");
    let a = ask_udp(at, "other.test", RecordType::A).unwrap();
    assert_eq!(a.answers()[0].data().to_string(), "192.0.2.7");
    let a = ask_tcp(at, "www.api.test").unwrap();
    assert_eq!(a.id(), 0x4321);
    assert_eq!(a.answers()[0].data().to_string(), "10.9.9.9");
    let a = ask_tcp(at, "other.test").unwrap();
    assert_eq!(a.answers()[0].data().to_string(), "192.0.2.7");
    if server.ipv6() {
        let at6: SocketAddr = (Ipv6Addr::LOCALHOST, server.port()).into();
        let client = UdpSocket::bind("[::1]:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        client
            .send_to(&query_bytes(5, "other.test", RecordType::A, false), at6)
            .unwrap();
        let mut buf = [0u8; 512];
        let (n, _) = client.recv_from(&mut buf).unwrap();
        assert_eq!(Message::from_vec(&buf[..n]).unwrap().id(), 5);
    }
    let port = server.port();
    let ipv6 = server.ipv6();
    let figures = server.stop(Duration::from_secs(2)).unwrap();
    assert_eq!(figures.answered, 2);
    assert_eq!(figures.forwarded, 2 + u64::from(ipv6));
    assert_eq!(figures.failed, 0);
    // Stopped means the port is free again.
    UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
}

#[test]
fn a_silent_upstream_is_skipped_and_counted() {
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let upstream = FakeUpstream::start(Ipv4Addr::new(192, 0, 2, 8));
    let p = poison(&["api.test"], Answer::Timeout);
    let server = Server::start(
        settings(p, vec![silent.local_addr().unwrap(), upstream.addr]),
        Arc::new(PlainSockets),
    )
    .unwrap();
    let at: SocketAddr = (Ipv4Addr::LOCALHOST, server.port()).into();
    // The first upstream says nothing; after its timeout the second answers.
    let a = ask_udp(at, "other.test", RecordType::A).unwrap();
    assert_eq!(a.answers()[0].data().to_string(), "192.0.2.8");
    // A poisoned name with the timeout answer gets nothing at all.
    assert!(ask_udp(at, "api.test", RecordType::A).is_none());
    let figures = server.stop(Duration::from_secs(2)).unwrap();
    assert_eq!(figures.dropped, 1);
    assert_eq!(figures.forwarded, 1);
    assert_eq!(figures.failed, 0);

    // With only the silent upstream the query is given up and counted.
    let lonely = Server::start(
        settings(
            poison(&["x.test"], Answer::Nxdomain),
            vec![silent.local_addr().unwrap()],
        ),
        Arc::new(PlainSockets),
    )
    .unwrap();
    let at: SocketAddr = (Ipv4Addr::LOCALHOST, lonely.port()).into();
    assert!(ask_udp(at, "other.test", RecordType::A).is_none());
    let figures = lonely.stop(Duration::from_secs(2)).unwrap();
    assert_eq!((figures.forwarded, figures.failed), (1, 1));
}

#[test]
fn a_fixed_port_in_use_is_an_error() {
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut s = settings(poison(&["a.test"], Answer::Nxdomain), vec![]);
    s.listen_port = taken.local_addr().unwrap().port();
    let err = Server::start(s, Arc::new(PlainSockets)).unwrap_err();
    assert!(err.is_addr_in_use(), "{err}");
}
