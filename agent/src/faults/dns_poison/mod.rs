//! `dns_poison`: make chosen names resolve to a wrong address, NXDOMAIN, SERVFAIL, or nothing.
//!
//! Two modes. `hosts` puts a marked block on top of the hosts file the host's policy names,
//! keeping the original bytes in the (journaled) plan to write them back exactly. `resolver`
//! runs a DNS server inside the agent that answers the poisoned names and forwards the rest to
//! the real upstream, with an nftables table of the fault's own redirecting the host's
//! outgoing port-53 traffic to it. See `docs/faults/dns_poison.md`.

mod answer;
mod forward;
mod host_policy;
mod hosts;
mod names;
mod resolver;
mod server;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use gameday_proto::fault::{DnsAnswer, DnsMode};
use gameday_proto::DnsPoison;
use serde::{Deserialize, Serialize};

pub use host_policy::{PolicyConfig, DEFAULT_MARK, DEFAULT_UPSTREAM_TIMEOUT};
pub use hosts::{HostsPlan, MAX_HOSTS_BYTES};
pub use names::NamePattern;
pub use resolver::{parse_resolv_conf, table_name, ResolverPlan};

use super::{Applied, FaultError, Host, Reverted, Unavailable};
use crate::os::dns::{DnsFiles, DnsSockets, RealDns};
use crate::os::nft::{Firewall, Nft};
use gameday_proto::v1::UnavailableCause;

/// The host-side machinery this fault uses: files, sockets, nftables, and the embedded
/// resolvers it is running.
pub struct Backend {
    files: Arc<dyn DnsFiles>,
    sockets: Arc<dyn DnsSockets>,
    firewall: Arc<dyn Firewall>,
    /// Running resolvers by fault id. Dropping the backend stops them.
    servers: Mutex<BTreeMap<String, server::Server>>,
    /// Names that are never poisoned: the controller's host name, so that a reconnecting
    /// agent can always find its controller.
    protected: Vec<String>,
}

impl Default for Backend {
    fn default() -> Self {
        Backend::with_os(
            Arc::new(RealDns),
            Arc::new(RealDns),
            Arc::new(Nft::default()),
        )
    }
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let live: Vec<String> = self
            .servers
            .lock()
            .map(|s| s.keys().cloned().collect())
            .unwrap_or_default();
        f.debug_struct("Backend")
            .field("live_resolvers", &live)
            .finish_non_exhaustive()
    }
}

impl Backend {
    /// The real machinery, sparing the controller's host name (everything else this fault may
    /// touch is named by `[policy.dns_poison]`, which reaches it through the policy).
    pub fn for_controller(controller_host: &str) -> Backend {
        Backend {
            protected: controller_name(controller_host).into_iter().collect(),
            ..Backend::default()
        }
    }

    /// Machinery over the given seams (tests pass fakes).
    pub fn with_os(
        files: Arc<dyn DnsFiles>,
        sockets: Arc<dyn DnsSockets>,
        firewall: Arc<dyn Firewall>,
    ) -> Backend {
        Backend {
            files,
            sockets,
            firewall,
            servers: Mutex::new(BTreeMap::new()),
            protected: Vec::new(),
        }
    }

    /// Never poisons `name` (tests; the real agent protects its controller's name).
    pub fn protect(mut self, name: &str) -> Backend {
        self.protected.push(names::normalize(name));
        self
    }

    /// The fault whose embedded resolver is running, if any.
    fn live_resolver(&self) -> Option<String> {
        self.servers
            .lock()
            .expect("dns servers lock")
            .keys()
            .next()
            .cloned()
    }
}

/// What poisoned names resolve to, as journaled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// This address (A for IPv4, AAAA for IPv6).
    Address(IpAddr),
    /// NXDOMAIN: the name does not exist.
    Nxdomain,
    /// SERVFAIL: the server failed.
    Servfail,
    /// No answer at all: the client times out.
    Timeout,
}

impl From<DnsAnswer> for Answer {
    fn from(a: DnsAnswer) -> Self {
        match a {
            DnsAnswer::Address(ip) => Answer::Address(ip),
            DnsAnswer::NxDomain => Answer::Nxdomain,
            DnsAnswer::ServFail => Answer::Servfail,
            DnsAnswer::Timeout => Answer::Timeout,
        }
    }
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Answer::Address(ip) => write!(f, "{ip}"),
            Answer::Nxdomain => f.write_str("NXDOMAIN"),
            Answer::Servfail => f.write_str("SERVFAIL"),
            Answer::Timeout => f.write_str("no answer (timeout)"),
        }
    }
}

/// What the fault will do and how to undo it. Journaled: it carries everything revert needs,
/// also in an agent that did not apply it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The fault's id (names the hosts block and the nftables table).
    pub fault_id: String,
    /// Poisoned names, normalised.
    pub names: Vec<NamePattern>,
    /// What they resolve to.
    pub answer: Answer,
    /// The mode and its state.
    pub mode: ModePlan,
}

/// The mode-specific half of a plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum ModePlan {
    /// A hosts file and its original bytes.
    Hosts(HostsPlan),
    /// A redirect table and the resolver's settings.
    Resolver(ResolverPlan),
}

/// The controller's host, normalized, when it is a name and not an address literal.
fn controller_name(host: &str) -> Option<String> {
    if host.parse::<IpAddr>().is_ok() {
        return None;
    }
    Some(names::normalize(host))
}

/// A fault id made safe for a hosts-file comment and an nftables name.
fn label(fault_id: &str) -> String {
    fault_id
        .chars()
        .take(100)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Whether this host can apply the fault: in at least one mode. The error names why each
/// mode is not usable; its cause is the policy's only when neither mode is configured (a mode
/// the owner configured and the host cannot do is the more useful news).
pub fn available(config: &PolicyConfig, host: &Host) -> Result<(), Unavailable> {
    let Err(hosts) = host_policy::hosts_available(config, &host.dns) else {
        return Ok(());
    };
    resolver::available(config, &host.dns).map_err(|resolver| {
        let cause = [hosts.cause, resolver.cause]
            .into_iter()
            .find(|c| *c != UnavailableCause::Policy)
            .unwrap_or(UnavailableCause::Policy);
        Unavailable {
            cause,
            detail: format!("{hosts}; {resolver}"),
        }
    })
}

/// Decides everything without changing the host: checks the names against the policy, and
/// records the hosts file's bytes or the redirect to create.
pub fn prepare(
    spec: &DnsPoison,
    fault_id: &str,
    config: &PolicyConfig,
    host: &Host,
) -> Result<Plan, FaultError> {
    let answer = Answer::from(spec.answer);
    let mut names: Vec<NamePattern> = Vec::new();
    for name in &spec.names {
        let pattern = NamePattern::parse(name).map_err(FaultError::Invalid)?;
        if !names.contains(&pattern) {
            names.push(pattern);
        }
    }
    config.check_names(&names)?;
    if let Some((pattern, name)) = names.iter().find_map(|p| {
        host.dns
            .protected
            .iter()
            .find(|n| p.matches(n))
            .map(|n| (p, n))
    }) {
        return Err(FaultError::PolicyLimit(format!(
            "refusing to poison {pattern}: it covers {name}, the controller's name, and the \
             agent must always be able to find its controller"
        )));
    }
    let mode = match spec.mode {
        DnsMode::Hosts => {
            let Some(path) = &config.hosts_file else {
                return Err(FaultError::PolicyLimit(
                    "hosts mode is not allowed on this host: its policy sets no \
                     dns_poison.hosts_file"
                        .into(),
                ));
            };
            ModePlan::Hosts(hosts::prepare(path, host.dns.files.as_ref())?)
        }
        DnsMode::Resolver => ModePlan::Resolver(resolver::prepare(fault_id, config, &host.dns)?),
    };
    Ok(Plan {
        fault_id: fault_id.to_string(),
        names,
        answer,
        mode,
    })
}

fn hosts_address(plan: &Plan) -> Result<IpAddr, FaultError> {
    match plan.answer {
        Answer::Address(ip) => Ok(ip),
        other => Err(FaultError::Invalid(format!(
            "a hosts file can only map names to an address, not {other}"
        ))),
    }
}

/// Applies the plan.
pub fn apply(plan: &Plan, host: &Host) -> Result<Applied, FaultError> {
    match &plan.mode {
        ModePlan::Hosts(h) => hosts::apply(plan, h, hosts_address(plan)?, host.dns.files.as_ref()),
        ModePlan::Resolver(r) => resolver::apply(plan, r, &host.dns),
    }
}

/// Undoes the plan; idempotent, and works on a plan read back from a crashed agent's journal.
pub fn revert(plan: &Plan, host: &Host) -> Result<Reverted, FaultError> {
    match &plan.mode {
        ModePlan::Hosts(h) => hosts::revert(plan, h, hosts_address(plan)?, host.dns.files.as_ref()),
        ModePlan::Resolver(r) => resolver::revert(plan, r, &host.dns),
    }
}
