//! Resolver mode: the embedded resolver ([`super::server`]) answers poisoned names, and an
//! nftables table of the fault's own redirects the host's outgoing port-53 traffic (UDP and
//! TCP) to it. The resolver's upstream sockets carry a firewall mark the table lets through.
//!
//! Order matters both ways: apply starts the resolver before the redirect exists, and revert
//! deletes the redirect before stopping the resolver, so no query is ever redirected to a
//! port nobody listens on. After a crash the resolver died with the agent; the plan names the
//! table, which is all a successor needs to delete.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use gameday_proto::v1::Evidence;
use nftables::types::NfFamily;
use serde::{Deserialize, Serialize};

use super::answer::Poison;
use super::server::{Figures, Server, Settings};
use super::{Backend, Plan, PolicyConfig};
use crate::faults::{Applied, FaultError, Reverted, Unavailable};
use crate::os::dns::{counted_packets, redirect_ruleset, DnsFiles, Redirect};

/// resolv.conf files are small; more than this is not one.
const MAX_RESOLV_CONF_BYTES: u64 = 64 << 10;
/// How long revert waits for the resolver's thread to finish.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// The redirect and the resolver's settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolverPlan {
    /// The nftables table (family `inet`) that redirects port 53; deleting it undoes the fault.
    pub table: String,
    /// Real upstream servers, tried in order.
    pub upstream: Vec<SocketAddr>,
    /// Port on loopback for the resolver; 0: the kernel chooses.
    pub listen_port: u16,
    /// How long to wait for one upstream, in milliseconds.
    pub upstream_timeout_ms: u64,
    /// Firewall mark on the resolver's upstream sockets.
    pub mark: u32,
}

/// The nameservers of a resolv.conf, on port 53. Loopback servers are left out (a local stub
/// such as systemd-resolved's 127.0.0.53 sends its own queries through the redirect, back to
/// us: a loop), and so are scoped IPv6 link-local ones, which need an interface to reach.
pub fn parse_resolv_conf(text: &str) -> (Vec<SocketAddr>, Vec<String>) {
    let mut servers = Vec::new();
    let mut skipped = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            continue;
        }
        let Some(addr) = words.next() else { continue };
        match addr.parse::<IpAddr>() {
            Ok(ip) if ip.is_loopback() => skipped.push(format!("{addr} (loopback)")),
            Ok(ip) => servers.push(SocketAddr::new(ip, 53)),
            Err(_) => skipped.push(format!("{addr} (not a plain IP address)")),
        }
    }
    (servers, skipped)
}

/// The upstream servers the policy names, directly or through its resolv.conf.
pub fn upstream(policy: &PolicyConfig, files: &dyn DnsFiles) -> Result<Vec<SocketAddr>, String> {
    if !policy.upstream.is_empty() {
        return Ok(policy.upstream.clone());
    }
    let Some(path) = &policy.resolv_conf else {
        return Err(
            "resolver mode needs policy.dns_poison.upstream (the host's real DNS servers) or \
             policy.dns_poison.resolv_conf"
                .into(),
        );
    };
    let bytes = files
        .read(path, MAX_RESOLV_CONF_BYTES)
        .map_err(|e| format!("cannot read policy.dns_poison.resolv_conf: {e}"))?;
    let (servers, skipped) = parse_resolv_conf(&String::from_utf8_lossy(&bytes));
    if servers.is_empty() {
        return Err(format!(
            "{} names no usable upstream (skipped: {}); set policy.dns_poison.upstream to the \
             host's real DNS servers",
            path.display(),
            if skipped.is_empty() {
                "none found".to_string()
            } else {
                skipped.join(", ")
            }
        ));
    }
    Ok(servers)
}

/// The table a fault's redirect lives in: `gameday_dns_<id>_<hash>`. nft names allow only
/// `[a-zA-Z0-9_]`, so other characters become `_` and the readable part is cut at 40; a hash
/// of the whole id keeps ids that read alike (`a-b`, `a_b`) apart. The `gameday_` prefix is
/// shared with the partition tables, so `nft list tables | grep gameday_` shows every leftover.
pub fn table_name(fault_id: &str) -> String {
    let readable: String = fault_id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(40)
        .collect();
    // FNV-1a: stable across builds and platforms, unlike std's hasher; a journaled plan
    // names the table, but names must also read the same in every agent version.
    let h = fault_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("gameday_dns_{readable}_{:08x}", (h ^ (h >> 32)) as u32)
}

/// Whether resolver mode can work here: an upstream is configured and nftables is usable.
pub fn available(policy: &PolicyConfig, backend: &Backend) -> Result<(), Unavailable> {
    upstream(policy, backend.files.as_ref()).map_err(|e| {
        if policy.upstream.is_empty() && policy.resolv_conf.is_none() {
            Unavailable::policy(e)
        } else {
            Unavailable::host(e)
        }
    })?;
    backend
        .firewall
        .tables()
        .map(drop)
        .map_err(|e| Unavailable::nftables(&e, "resolver mode needs nftables: "))
}

/// Decides the redirect and the resolver's settings.
pub fn prepare(
    fault_id: &str,
    policy: &PolicyConfig,
    backend: &Backend,
) -> Result<ResolverPlan, FaultError> {
    let upstream = upstream(policy, backend.files.as_ref()).map_err(FaultError::PolicyLimit)?;
    let table = table_name(fault_id);
    let tables = backend
        .firewall
        .tables()
        .map_err(FaultError::ResolverNeedsNftables)?;
    if tables
        .iter()
        .any(|(family, name)| family == "inet" && *name == table)
    {
        return Err(FaultError::Invalid(format!(
            "nftables table inet {table} already exists: fault {fault_id} is live or was left \
             behind"
        )));
    }
    if let Some(live) = backend.live_resolver() {
        return Err(FaultError::Invalid(format!(
            "resolver-mode fault {live} is live on this host; two redirects of port 53 cannot \
             both win, so one at a time"
        )));
    }
    Ok(ResolverPlan {
        table,
        upstream,
        listen_port: policy.listen_port,
        upstream_timeout_ms: policy.upstream_timeout().as_millis() as u64,
        mark: policy.mark(),
    })
}

/// Starts the resolver, then redirects port 53 to it.
pub fn apply(plan: &Plan, r: &ResolverPlan, backend: &Backend) -> Result<Applied, FaultError> {
    let mut servers = backend.servers.lock().expect("dns servers lock");
    if servers.contains_key(&plan.fault_id) {
        return Err(FaultError::AlreadyApplied {
            fault_id: plan.fault_id.clone(),
        });
    }
    if let Some(live) = servers.keys().next() {
        return Err(FaultError::Invalid(format!(
            "resolver-mode fault {live} is live on this host; one at a time"
        )));
    }
    let settings = Settings {
        poison: Poison {
            names: plan.names.clone(),
            answer: plan.answer,
        },
        upstream: r.upstream.clone(),
        upstream_timeout: Duration::from_millis(r.upstream_timeout_ms),
        mark: r.mark,
        listen_port: r.listen_port,
    };
    let server = Server::start(settings, backend.sockets.clone())
        .map_err(FaultError::dns("cannot start the embedded resolver"))?;
    let redirect = Redirect {
        table: r.table.clone(),
        port: server.port(),
        exempt_mark: r.mark,
        ipv6: server.ipv6(),
    };
    if let Err(e) = backend.firewall.apply(&redirect_ruleset(&redirect)) {
        let _ = server.stop(STOP_GRACE);
        return Err(FaultError::Firewall {
            doing: "cannot redirect port 53 to the embedded resolver".into(),
            source: e,
        });
    }
    let effect_at = Instant::now();
    let summary = format!(
        "embedded resolver on 127.0.0.1:{port}{v6} answers {names} with {answer}; nftables \
         table inet {table} redirects outgoing port 53 (UDP, TCP) to it; other names go to {up}",
        port = server.port(),
        v6 = if server.ipv6() { " and [::1]" } else { "" },
        names = plan
            .names
            .iter()
            .map(|n| n.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        answer = plan.answer,
        table = r.table,
        up = r
            .upstream
            .iter()
            .map(|u| u.to_string())
            .collect::<Vec<_>>()
            .join(", "),
    );
    // `live` logs the one line for the host owner.
    tracing::debug!(%summary, "dns_poison applied (resolver mode)");
    let port = server.port();
    servers.insert(plan.fault_id.clone(), server);
    Ok(Applied {
        effect_at,
        evidence: Evidence {
            summary,
            figures: [
                ("names_poisoned".to_string(), plan.names.len() as i64),
                ("listen_port".to_string(), i64::from(port)),
            ]
            .into(),
            ..Evidence::default()
        },
    })
}

fn figure(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Deletes the redirect, then stops the resolver, and checks the table is gone.
pub fn revert(plan: &Plan, r: &ResolverPlan, backend: &Backend) -> Result<Reverted, FaultError> {
    let firewall = backend.firewall.as_ref();
    let table = format!("nftables table inet {}", r.table);
    // Counters first: deleting the table deletes them.
    let redirected = firewall
        .table(NfFamily::INet, &r.table)
        .map_err(FaultError::firewall(format!("cannot read {table}")))?
        .map(|t| counted_packets(&t));
    // If the table cannot be deleted the resolver keeps running: redirected queries still
    // get answers (and forwarding) instead of a closed port.
    let deleted = firewall
        .delete_table(NfFamily::INet, &r.table)
        .map_err(FaultError::firewall(format!("cannot delete {table}")))?;
    let server = backend
        .servers
        .lock()
        .expect("dns servers lock")
        .remove(&plan.fault_id);
    let mut residue = Vec::new();
    let figures = match server {
        Some(server) => {
            let port = server.port();
            match server.stop(STOP_GRACE) {
                Ok(f) => Some(f),
                Err(f) => {
                    residue.push(format!(
                        "the embedded resolver on port {port} did not stop within {STOP_GRACE:?}"
                    ));
                    Some(f)
                }
            }
        }
        // Applied by a previous agent (its resolver died with it) or never started.
        None => None,
    };
    if firewall
        .table(NfFamily::INet, &r.table)
        .map_err(FaultError::firewall(format!(
            "cannot check that {table} is gone"
        )))?
        .is_some()
    {
        residue.push(format!("{table} still exists"));
    }
    let f = figures.unwrap_or_default();
    let mut evidence_figures: std::collections::HashMap<String, i64> = [
        ("queries_answered".to_string(), figure(f.answered)),
        ("queries_dropped".to_string(), figure(f.dropped)),
        ("queries_forwarded".to_string(), figure(f.forwarded)),
        ("forward_failures".to_string(), figure(f.failed)),
    ]
    .into();
    if let Some(packets) = redirected {
        evidence_figures.insert("packets_redirected".to_string(), figure(packets));
    }
    Ok(Reverted {
        evidence: Evidence {
            summary: summary(&r.table, deleted, figures, redirected),
            figures: evidence_figures,
            residue,
            ..Evidence::default()
        },
    })
}

fn summary(
    table: &str,
    deleted: bool,
    figures: Option<Figures>,
    redirected: Option<u64>,
) -> String {
    let table_part = if deleted {
        format!("deleted nftables table inet {table}")
    } else {
        format!("nftables table inet {table} was already gone")
    };
    let server_part = match figures {
        Some(f) => format!(
            "the embedded resolver answered {} poisoned queries, left {} unanswered, forwarded \
             {} ({} without an upstream answer)",
            f.answered, f.dropped, f.forwarded, f.failed
        ),
        None => "no embedded resolver was running (it died with a previous agent)".to_string(),
    };
    match redirected {
        Some(p) => format!("{table_part} after it redirected {p} packets; {server_part}"),
        None => format!("{table_part}; {server_part}"),
    }
}
