//! `network_partition` against the real kernel, inside network namespaces the test creates
//! (never the machine's own): a "host" namespace where the agent's fault runs, a "peer"
//! namespace joined to it by a veth pair, real TCP services and UDP sockets on both ends, and
//! real clients. Each test shows the effect from outside, the counters in the evidence, and a
//! ruleset that is byte-for-byte as before once the fault is reverted.
// Integration tests start the real binaries, services and helper processes.
#![allow(clippy::disallowed_methods)]

mod common;

use std::io::{self, BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{link, privileged, wait_for, NetNs};
use gameday_agent::faults::{self, Host, Plan, Reverted};
use gameday_agent::os::RealOs;
use gameday_agent::policy::Policy;
use gameday_proto::fault::{Direction, Protocol};
use gameday_proto::{Fault, NetworkPartition};

const WAIT: Duration = Duration::from_secs(10);
/// How long a client waits for a TCP handshake: a dropped SYN never gets an answer.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(300);

/// Two namespaces on a private /24 of this test's own: `host` (.1) and `peer` (.2).
struct Lab {
    host: NetNs,
    peer: NetNs,
    host_ip: IpAddr,
    peer_ip: IpAddr,
}

impl Lab {
    fn new() -> Lab {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        // 10.<from the pid>.<per test>.0/24: distinct from other test processes' labs.
        let net = format!(
            "10.{}.{}",
            150 + std::process::id() % 100,
            100 + SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let host = NetNs::new("nph");
        let peer = NetNs::new("npp");
        link(&host, &format!("{net}.1/24"), &peer, &format!("{net}.2/24"));
        Lab {
            host,
            peer,
            host_ip: format!("{net}.1").parse().unwrap(),
            peer_ip: format!("{net}.2").parse().unwrap(),
        }
    }

    /// Gives the host a firewall of its own, so "as before" has something to compare.
    fn with_site_firewall(self) -> Lab {
        self.host.ok(&["nft", "add", "table", "inet", "site"]);
        self.host.ok(&[
            "nft",
            "add",
            "chain",
            "inet",
            "site",
            "input",
            "{ type filter hook input priority 0; policy accept; }",
        ]);
        self.host.ok(&[
            "nft", "add", "rule", "inet", "site", "input", "tcp", "dport", "9999", "accept",
        ]);
        self
    }

    fn ruleset(&self) -> String {
        self.host.ok(&["nft", "list", "ruleset"])
    }

    /// Prepares and applies `spec` as the agent would, from a thread inside the host
    /// namespace (so `nft` acts there); prints how long applying took.
    fn apply(&self, spec: NetworkPartition, controller: Vec<SocketAddr>) -> Plan {
        let fault = Fault::NetworkPartition(spec);
        let (plan, prepared, took) = self.host.run_in(|| {
            let host = real_host(controller);
            let policy = Policy::permissive();
            let start = Instant::now();
            let plan = faults::prepare(&fault, "np-test-f0", &policy, &host).expect("prepare");
            let prepared = start.elapsed();
            let start = Instant::now();
            faults::apply(&plan, &policy, &host).expect("apply");
            (plan, prepared, start.elapsed())
        });
        println!(
            "prepare took {:.1} ms, apply took {:.1} ms",
            prepared.as_secs_f64() * 1e3,
            took.as_secs_f64() * 1e3
        );
        plan
    }

    /// Reverts from inside the host namespace; prints how long it took.
    fn revert(&self, plan: &Plan) -> Reverted {
        let (reverted, took) = self.host.run_in(|| {
            let host = real_host(Vec::new());
            let start = Instant::now();
            let r = faults::revert(plan, &host).expect("revert");
            (r, start.elapsed())
        });
        println!(
            "revert took {:.1} ms: {}",
            took.as_secs_f64() * 1e3,
            reverted.evidence.summary
        );
        reverted
    }
}

fn real_host(controller: Vec<SocketAddr>) -> Host {
    Host {
        processes: Arc::new(RealOs::default()),
        network: Default::default(),
        disk: Default::default(),
        dns: Default::default(),
        controller,
    }
}

fn table_of(plan: &Plan) -> String {
    match plan {
        Plan::NetworkPartition(p) => p.table.clone(),
        other => panic!("not a partition plan: {other:?}"),
    }
}

fn partition(
    direction: Direction,
    peers: &[IpAddr],
    ports: &[u16],
    protocol: Protocol,
) -> NetworkPartition {
    NetworkPartition {
        direction,
        peers: peers
            .iter()
            .map(|ip| gameday_proto::Net::host(*ip))
            .collect(),
        peer_agents: vec![],
        ports: ports.to_vec(),
        protocol,
        duration: None,
    }
}

/// A TCP echo service listening inside a namespace, stopped on drop.
struct Echo {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Echo {
    fn start(ns: &NetNs, addr: SocketAddr) -> Echo {
        // The socket belongs to the namespace it was made in, whichever thread serves it.
        let listener = ns.run_in(|| TcpListener::bind(addr)).expect("bind");
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        std::thread::spawn(move || echo(conn));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => return,
                }
            }
        });
        Echo {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

fn echo(conn: TcpStream) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(WAIT));
    let mut out = conn.try_clone().unwrap();
    for line in BufReader::new(conn).lines() {
        let Ok(line) = line else { return };
        if writeln!(out, "{line}").is_err() {
            return;
        }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A TCP handshake from inside `ns`: `Ok` when it completes, else the error's kind.
fn connect(ns: &NetNs, to: SocketAddr) -> Result<(), io::ErrorKind> {
    ns.run_in(|| {
        TcpStream::connect_timeout(&to, CONNECT_TIMEOUT)
            .map(|_| ())
            .map_err(|e| e.kind())
    })
}

/// One line there and back on an open connection.
fn round_trip(conn: &mut BufReader<TcpStream>, text: &str) -> String {
    writeln!(conn.get_mut(), "{text}").unwrap();
    let mut line = String::new();
    conn.read_line(&mut line).unwrap();
    line.trim_end().to_string()
}

/// Packets dropped so far by the partition table's rules, read with `nft` in `ns`.
fn dropped(ns: &NetNs, table: &str) -> u64 {
    let listing: serde_json::Value =
        serde_json::from_str(&ns.ok(&["nft", "-j", "list", "table", "inet", table])).unwrap();
    listing["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o.get("rule"))
        .filter(|r| {
            r["expr"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s.get("drop").is_some())
        })
        .flat_map(|r| r["expr"].as_array().unwrap().iter())
        .filter_map(|s| s.get("counter").and_then(|c| c["packets"].as_u64()))
        .sum()
}

fn udp(ns: &NetNs, addr: SocketAddr) -> UdpSocket {
    let s = ns.run_in(|| UdpSocket::bind(addr)).expect("bind udp");
    s.set_nonblocking(true).unwrap();
    s
}

/// Sends datagrams from `from` to `to` until one arrives.
fn delivered(from: &UdpSocket, to: &UdpSocket) -> bool {
    let dest = to.local_addr().unwrap();
    let mut buf = [0u8; 64];
    let _ = from.send_to(b"ping", dest);
    matches!(to.recv_from(&mut buf), Ok((4, _)))
}

/// Nothing is queued on `s`.
fn nothing_arrived(s: &UdpSocket) -> bool {
    let mut buf = [0u8; 64];
    matches!(s.recv_from(&mut buf), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

fn figure(r: &Reverted, name: &str) -> i64 {
    *r.evidence
        .figures
        .get(name)
        .unwrap_or_else(|| panic!("no figure {name} in {:?}", r.evidence))
}

#[test]
fn both_ways_cut_but_the_controller_stays_reachable() {
    if !privileged(&["ip", "nft"]) {
        return;
    }
    let lab = Lab::new().with_site_firewall();
    let service = Echo::start(&lab.peer, SocketAddr::new(lab.peer_ip, 8080));
    let controller = Echo::start(&lab.peer, SocketAddr::new(lab.peer_ip, 7443));
    let host_service = Echo::start(&lab.host, SocketAddr::new(lab.host_ip, 9000));
    wait_for("the peer's service to answer", WAIT, || {
        connect(&lab.host, service.addr).is_ok()
    });
    assert_eq!(connect(&lab.peer, host_service.addr), Ok(()));
    // The agent's control connection, open before the partition as it would be.
    let mut control = BufReader::new(
        lab.host
            .run_in(|| TcpStream::connect_timeout(&controller.addr, WAIT))
            .unwrap(),
    );
    assert_eq!(round_trip(&mut control, "hello"), "hello");
    let before = lab.ruleset();

    let plan = lab.apply(
        partition(Direction::Both, &[lab.peer_ip], &[], Protocol::Any),
        vec![controller.addr],
    );

    assert_eq!(
        connect(&lab.host, service.addr),
        Err(io::ErrorKind::TimedOut)
    );
    assert_eq!(
        connect(&lab.peer, host_service.addr),
        Err(io::ErrorKind::TimedOut)
    );
    // Everything else to that peer is cut; the controller is not, old connection or new.
    assert_eq!(round_trip(&mut control, "still there"), "still there");
    assert_eq!(connect(&lab.host, controller.addr), Ok(()));

    let reverted = lab.revert(&plan);
    assert!(
        figure(&reverted, "packets_dropped") > 0,
        "{:?}",
        reverted.evidence
    );
    assert!(figure(&reverted, "bytes_dropped") > 0);
    assert!(figure(&reverted, "packets_exempted") > 0);
    assert!(
        reverted.evidence.residue.is_empty(),
        "{:?}",
        reverted.evidence.residue
    );
    wait_for("the peer's service to answer again", WAIT, || {
        connect(&lab.host, service.addr).is_ok()
    });
    assert_eq!(connect(&lab.peer, host_service.addr), Ok(()));
    assert_eq!(
        lab.ruleset(),
        before,
        "the ruleset is byte-for-byte as before"
    );

    // Reverting again (a retry, a journal replay) succeeds and changes nothing.
    let again = lab.revert(&plan);
    assert!(again.evidence.summary.ends_with("was already gone"));
    assert!(again.evidence.residue.is_empty());
    assert_eq!(lab.ruleset(), before);
}

#[test]
fn ingress_only_drops_what_arrives_from_the_peer() {
    if !privileged(&["ip", "nft"]) {
        return;
    }
    let lab = Lab::new();
    let at_host = udp(&lab.host, SocketAddr::new(lab.host_ip, 5300));
    let at_peer = udp(&lab.peer, SocketAddr::new(lab.peer_ip, 5300));
    wait_for("datagrams to flow", WAIT, || delivered(&at_peer, &at_host));
    let before = lab.ruleset();

    let plan = lab.apply(
        partition(Direction::Ingress, &[lab.peer_ip], &[], Protocol::Any),
        vec![SocketAddr::new(lab.peer_ip, 7443)],
    );
    let table = table_of(&plan);

    // Peer → host is dropped on arrival: the counter proves it, and nothing was delivered.
    at_peer
        .send_to(b"ping", at_host.local_addr().unwrap())
        .unwrap();
    wait_for("the drop counter to move", WAIT, || {
        dropped(&lab.host, &table) > 0
    });
    assert!(nothing_arrived(&at_host));
    // Host → peer still flows.
    wait_for("host → peer datagrams", WAIT, || {
        delivered(&at_host, &at_peer)
    });
    assert_eq!(
        connect(&lab.host, SocketAddr::new(lab.peer_ip, 1)),
        Err(io::ErrorKind::TimedOut),
        "the peer's answers are dropped too"
    );

    let reverted = lab.revert(&plan);
    assert!(figure(&reverted, "packets_dropped") > 0);
    assert!(
        reverted.evidence.residue.is_empty(),
        "{:?}",
        reverted.evidence.residue
    );
    wait_for("peer → host datagrams again", WAIT, || {
        delivered(&at_peer, &at_host)
    });
    assert_eq!(lab.ruleset(), before);
}

#[test]
fn egress_only_drops_what_leaves_for_the_peer() {
    if !privileged(&["ip", "nft"]) {
        return;
    }
    let lab = Lab::new().with_site_firewall();
    let at_host = udp(&lab.host, SocketAddr::new(lab.host_ip, 5300));
    let at_peer = udp(&lab.peer, SocketAddr::new(lab.peer_ip, 5300));
    wait_for("datagrams to flow", WAIT, || delivered(&at_host, &at_peer));
    let before = lab.ruleset();

    let plan = lab.apply(
        partition(Direction::Egress, &[lab.peer_ip], &[], Protocol::Udp),
        vec![SocketAddr::new(lab.peer_ip, 7443)],
    );
    let table = table_of(&plan);

    // The output hook's drop comes back to the sender as EPERM: that is the fault working.
    let _ = at_host.send_to(b"ping", at_peer.local_addr().unwrap());
    // Dropped on the way out: counted, never delivered.
    wait_for("the drop counter to move", WAIT, || {
        dropped(&lab.host, &table) > 0
    });
    assert!(nothing_arrived(&at_peer));
    wait_for("peer → host datagrams", WAIT, || {
        delivered(&at_peer, &at_host)
    });

    let reverted = lab.revert(&plan);
    assert_eq!(figure(&reverted, "packets_dropped"), 1);
    assert!(
        reverted.evidence.residue.is_empty(),
        "{:?}",
        reverted.evidence.residue
    );
    wait_for("host → peer datagrams again", WAIT, || {
        delivered(&at_host, &at_peer)
    });
    assert_eq!(lab.ruleset(), before);
}

#[test]
fn a_port_partition_spares_every_other_port() {
    if !privileged(&["ip", "nft"]) {
        return;
    }
    let lab = Lab::new();
    let cut = Echo::start(&lab.peer, SocketAddr::new(lab.peer_ip, 8080));
    let spared = Echo::start(&lab.peer, SocketAddr::new(lab.peer_ip, 9090));
    wait_for("the services to answer", WAIT, || {
        connect(&lab.host, cut.addr).is_ok() && connect(&lab.host, spared.addr).is_ok()
    });
    let before = lab.ruleset();

    // No peers: port 8080 with every address.
    let plan = lab.apply(
        partition(Direction::Both, &[], &[8080], Protocol::Tcp),
        vec![SocketAddr::new(lab.peer_ip, 7443)],
    );

    assert_eq!(connect(&lab.host, cut.addr), Err(io::ErrorKind::TimedOut));
    assert_eq!(connect(&lab.host, spared.addr), Ok(()));

    let reverted = lab.revert(&plan);
    assert!(figure(&reverted, "packets_dropped") > 0);
    assert!(
        reverted.evidence.residue.is_empty(),
        "{:?}",
        reverted.evidence.residue
    );
    wait_for("port 8080 to answer again", WAIT, || {
        connect(&lab.host, cut.addr).is_ok()
    });
    assert_eq!(lab.ruleset(), before);
}

#[test]
fn a_ruleset_changed_under_the_fault_is_reported_as_residue() {
    if !privileged(&["ip", "nft"]) {
        return;
    }
    let lab = Lab::new().with_site_firewall();
    let plan = lab.apply(
        partition(Direction::Both, &[lab.peer_ip], &[], Protocol::Any),
        vec![SocketAddr::new(lab.peer_ip, 7443)],
    );
    lab.host.ok(&[
        "nft", "add", "rule", "inet", "site", "input", "tcp", "dport", "9998", "accept",
    ]);
    let reverted = lab.revert(&plan);
    assert_eq!(
        reverted.evidence.residue,
        ["nftables table inet site differs from before the fault (its chains, rules or sets changed)"]
    );
    assert!(
        !lab.ruleset().contains(&table_of(&plan)),
        "the fault's own table is gone"
    );
}
