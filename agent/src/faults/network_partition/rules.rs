//! The nftables rules a partition installs, built as data: one `inet` table per fault, an
//! `input` chain for ingress and an `output` chain for egress. Each chain accepts what must
//! never be cut (the controller, then what the host's policy protects) before it drops
//! anything, and every rule counts what it matched so the revert can report it.

use std::fmt;
use std::net::SocketAddr;

use gameday_proto::fault::Protocol;
use nftables::batch::Batch;
use nftables::expr::{
    Expression, Meta, MetaKey, NamedExpression, Payload, PayloadField, Prefix, SetItem,
};
use nftables::schema::{Chain, NfCmd, NfListObject, NfObject, Nftables, Rule, Table};
use nftables::stmt::{Counter, Match, Operator, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};
use serde::{Deserialize, Serialize};

pub use super::net::{minimal, Net};
use super::residue::fnv1a;

/// Every partition table is `inet`: one table covers IPv4 and IPv6.
pub const FAMILY: NfFamily = NfFamily::INet;

/// Chain priority `filter - 10`: ahead of the host's own filter chains (priority 0), so the
/// partition's counters see every packet it cuts, even ones a host rule would drop anyway.
pub const PRIORITY: i32 = -10;

/// Every partition table's name starts with this, so leftovers are recognisable at a glance
/// (`nft list tables | grep gameday_`).
pub const TABLE_PREFIX: &str = "gameday_";

/// Longest readable part of a table name taken from the fault id; the hash keeps it unique.
const ID_CHARS: usize = 40;

/// The table of the fault `fault_id`: `gameday_<id>_<hash>`. nft names allow only
/// `[a-zA-Z0-9_]`, so other characters become `_`, and a hash of the whole id keeps two ids
/// that read alike (`a-b`, `a_b`, or long ids sharing a prefix) apart.
pub fn table_name(fault_id: &str) -> String {
    let readable: String = fault_id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(ID_CHARS)
        .collect();
    let h = fnv1a(fault_id.as_bytes());
    format!("{TABLE_PREFIX}{readable}_{:08x}", (h ^ (h >> 32)) as u32)
}

/// What a partition cuts and what it must keep. Journaled inside the plan, so the table can
/// be rebuilt and recognised exactly as it was decided.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    /// Drop packets arriving from the peers (the `input` chain).
    pub ingress: bool,
    /// Drop packets leaving for the peers (the `output` chain).
    pub egress: bool,
    /// The peers' networks, [`minimal`]; empty means every address.
    pub peers: Vec<Net>,
    /// Only packets with one of these as source or destination port; every packet when empty.
    pub ports: Vec<u16>,
    /// Transport to match; with ports, `any` means TCP and UDP.
    pub protocol: Protocol,
    /// The agent's control connection, accepted both ways before anything is dropped.
    pub controller: Vec<SocketAddr>,
    /// Networks the host's policy never lets a partition cut.
    pub protect: Vec<Net>,
    /// Ports (TCP and UDP, either end) the host's policy never lets a partition cut.
    pub protect_ports: Vec<u16>,
}

impl Partition {
    /// A sentence for the report: what is cut, and what stays exempt.
    pub fn describe(&self) -> String {
        let direction = match (self.ingress, self.egress) {
            (true, true) => "ingress and egress",
            (true, false) => "ingress",
            _ => "egress",
        };
        let peers = if self.peers.is_empty() {
            "every address".to_string()
        } else {
            join(&self.peers)
        };
        let transport = match (self.protocol, self.ports.is_empty()) {
            (Protocol::Any, true) => String::new(),
            (Protocol::Any, false) => format!(", tcp and udp ports {}", join(&self.ports)),
            (p, true) => format!(", {} only", l4_name(p)),
            (p, false) => format!(", {} ports {}", l4_name(p), join(&self.ports)),
        };
        let mut exempt = vec![];
        if !self.controller.is_empty() {
            exempt.push(format!("controller {}", join(&self.controller)));
        }
        if !self.protect.is_empty() {
            exempt.push(format!("protected {}", join(&self.protect)));
        }
        if !self.protect_ports.is_empty() {
            exempt.push(format!("protected ports {}", join(&self.protect_ports)));
        }
        let exempt = if exempt.is_empty() {
            String::new()
        } else {
            format!("; exempt: {}", exempt.join(", "))
        };
        format!("{direction} traffic with {peers}{transport}{exempt}")
    }
}

fn join<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn l4_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Any => "any",
    }
}

/// Which way a chain sees packets, and so which address is the remote end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    /// `input`: the remote end is the source.
    Ingress,
    /// `output`: the remote end is the destination.
    Egress,
}

impl Side {
    fn chain(self) -> &'static str {
        match self {
            Side::Ingress => "input",
            Side::Egress => "output",
        }
    }

    fn hook(self) -> NfHook {
        match self {
            Side::Ingress => NfHook::Input,
            Side::Egress => NfHook::Output,
        }
    }

    fn remote(self) -> &'static str {
        match self {
            Side::Ingress => "saddr",
            Side::Egress => "daddr",
        }
    }
}

/// The whole table, in one batch that `nft` applies as one transaction: it exists with every
/// rule, or not at all. `create` (not `add`) refuses a table that already exists, so a second
/// apply can never stack rules on a leftover.
pub fn batch(table: &str, p: &Partition) -> Nftables<'static> {
    let mut b = Batch::new();
    b.add_cmd(NfCmd::Create(NfListObject::Table(Table {
        family: FAMILY,
        name: table.to_string().into(),
        handle: None,
    })));
    for side in sides(p) {
        b.add(NfListObject::Chain(Chain {
            family: FAMILY,
            table: table.to_string().into(),
            name: side.chain().into(),
            _type: Some(NfChainType::Filter),
            hook: Some(side.hook()),
            prio: Some(PRIORITY),
            policy: Some(NfChainPolicy::Accept),
            ..Chain::default()
        }));
        for (expr, comment) in chain_rules(side, p) {
            b.add(NfListObject::Rule(Rule {
                family: FAMILY,
                table: table.to_string().into(),
                chain: side.chain().into(),
                expr: expr.into(),
                comment: Some(comment.into()),
                ..Rule::default()
            }));
        }
    }
    b.to_nftables()
}

fn sides(p: &Partition) -> Vec<Side> {
    let mut sides = Vec::new();
    if p.ingress {
        sides.push(Side::Ingress);
    }
    if p.egress {
        sides.push(Side::Egress);
    }
    sides
}

/// The rules of one chain, in order: exemptions first (controller, protected networks,
/// protected ports), then the drops.
fn chain_rules(side: Side, p: &Partition) -> Vec<(Vec<Statement<'static>>, &'static str)> {
    let mut rules = Vec::new();
    // Both ends of the control connection in both chains: with the controller on the same
    // host, the agent's packets to it also pass `input` (from the agent's own address).
    for c in &p.controller {
        for (addr, port) in [("daddr", "dport"), ("saddr", "sport")] {
            let mut expr = vec![
                addr_match(addr, &[Net::host(c.ip())]),
                l4_match(Protocol::Tcp, false).expect("tcp always matches l4proto"),
                port_match(port, &[c.port()]),
            ];
            expr.extend(verdict(Statement::Accept(None)));
            rules.push((expr, "gameday: controller connection, never cut"));
        }
    }
    for group in by_family(&p.protect) {
        let mut expr = vec![addr_match(side.remote(), &group)];
        expr.extend(verdict(Statement::Accept(None)));
        rules.push((expr, "gameday: protected by the host's policy"));
    }
    if !p.protect_ports.is_empty() {
        for port in ["dport", "sport"] {
            let mut expr = vec![
                l4_match(Protocol::Any, true).expect("tcp and udp"),
                port_match(port, &p.protect_ports),
            ];
            expr.extend(verdict(Statement::Accept(None)));
            rules.push((expr, "gameday: protected by the host's policy"));
        }
    }
    let groups: Vec<Option<Vec<Net>>> = if p.peers.is_empty() {
        vec![None]
    } else {
        by_family(&p.peers).into_iter().map(Some).collect()
    };
    let port_ends: &[Option<&str>] = if p.ports.is_empty() {
        &[None]
    } else {
        &[Some("dport"), Some("sport")]
    };
    for group in &groups {
        for end in port_ends {
            let mut expr = Vec::new();
            if let Some(nets) = group {
                expr.push(addr_match(side.remote(), nets));
            }
            expr.extend(l4_match(p.protocol, !p.ports.is_empty()));
            if let Some(end) = end {
                expr.push(port_match(end, &p.ports));
            }
            expr.extend(verdict(Statement::Drop(None)));
            rules.push((expr, "gameday: partition"));
        }
    }
    rules
}

/// Networks split into IPv4 and IPv6 groups (nft matches each family with its own header).
fn by_family(nets: &[Net]) -> Vec<Vec<Net>> {
    let (v4, v6): (Vec<Net>, Vec<Net>) = nets.iter().partition(|n| n.is_v4());
    [v4, v6].into_iter().filter(|g| !g.is_empty()).collect()
}

/// Every matching rule counts before its verdict: the evidence of what the fault did.
fn verdict(v: Statement<'static>) -> [Statement<'static>; 2] {
    [Statement::Counter(Counter::Anonymous(None)), v]
}

fn eq(left: Expression<'static>, right: Expression<'static>) -> Statement<'static> {
    Statement::Match(Match {
        left,
        right,
        op: Operator::EQ,
    })
}

fn one_or_set(mut items: Vec<Expression<'static>>) -> Expression<'static> {
    if items.len() == 1 {
        items.remove(0)
    } else {
        Expression::Named(NamedExpression::Set(
            items.into_iter().map(SetItem::Element).collect(),
        ))
    }
}

fn meta(key: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

fn payload(protocol: &'static str, field: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: protocol.into(),
            field: field.into(),
        },
    )))
}

/// The expression nft matches a network with: an address for one host, a prefix else.
fn net_expr(net: &Net) -> Expression<'static> {
    let addr = Expression::String(net.addr().to_string().into());
    if net.is_host() {
        addr
    } else {
        Expression::Named(NamedExpression::Prefix(Prefix {
            addr: Box::new(addr),
            len: u32::from(net.prefix_len()),
        }))
    }
}

/// `ip saddr { ... }` for one family's networks; a `/0` among them is the whole family,
/// which nft matches as `meta nfproto ipv4` rather than as a zero-length prefix.
fn addr_match(field: &'static str, nets: &[Net]) -> Statement<'static> {
    let v4 = nets[0].is_v4();
    if nets.iter().any(|n| n.prefix_len() == 0) {
        let family = if v4 { "ipv4" } else { "ipv6" };
        return eq(meta(MetaKey::Nfproto), Expression::String(family.into()));
    }
    let header = if v4 { "ip" } else { "ip6" };
    eq(
        payload(header, field),
        one_or_set(nets.iter().map(net_expr).collect()),
    )
}

/// `meta l4proto ...`: needed before `th` port matches (they read the transport header
/// blindly); `None` when every protocol is cut and no port is named.
fn l4_match(protocol: Protocol, has_ports: bool) -> Option<Statement<'static>> {
    let names: &[&'static str] = match protocol {
        Protocol::Tcp => &["tcp"],
        Protocol::Udp => &["udp"],
        Protocol::Any if has_ports => &["tcp", "udp"],
        Protocol::Any => return None,
    };
    Some(eq(
        meta(MetaKey::L4proto),
        one_or_set(
            names
                .iter()
                .map(|n| Expression::String((*n).into()))
                .collect(),
        ),
    ))
}

fn port_match(end: &'static str, ports: &[u16]) -> Statement<'static> {
    eq(
        payload("th", end),
        one_or_set(
            ports
                .iter()
                .map(|p| Expression::Number(u32::from(*p)))
                .collect(),
        ),
    )
}

/// What a partition's counters say.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Packets dropped by the partition's rules.
    pub packets_dropped: u64,
    /// Bytes in those packets.
    pub bytes_dropped: u64,
    /// Packets accepted by its exemptions (controller, protected networks and ports).
    pub packets_exempted: u64,
}

/// Adds up the counters in a listing of a partition's table: drop rules into the dropped
/// figures, accept rules into the exempted one.
pub fn tally(listing: &Nftables<'_>) -> Tally {
    let mut t = Tally::default();
    for o in listing.objects.iter() {
        let NfObject::ListObject(NfListObject::Rule(rule)) = o else {
            continue;
        };
        let Some((packets, bytes)) = rule.expr.iter().find_map(|s| match s {
            Statement::Counter(Counter::Anonymous(Some(c))) => {
                Some((c.packets.unwrap_or(0) as u64, c.bytes.unwrap_or(0) as u64))
            }
            _ => None,
        }) else {
            continue;
        };
        if rule.expr.iter().any(|s| matches!(s, Statement::Drop(_))) {
            t.packets_dropped += packets;
            t.bytes_dropped += bytes;
        } else if rule.expr.iter().any(|s| matches!(s, Statement::Accept(_))) {
            t.packets_exempted += packets;
        }
    }
    t
}
