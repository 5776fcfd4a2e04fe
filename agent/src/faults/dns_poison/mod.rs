//! `dns_poison`: make chosen names resolve to a wrong address, NXDOMAIN, SERVFAIL, or nothing.
//!
//! Two modes. `hosts` puts a marked block on top of the hosts file the host's policy names,
//! keeping the original bytes in the (journaled) plan to write them back exactly. `resolver`
//! runs a DNS server inside the agent that answers the poisoned names and forwards the rest to
//! the real upstream, with an nftables table of the fault's own redirecting the host's
//! outgoing port-53 traffic to it. See `docs/faults/dns_poison.md`.

mod answer;
mod forward;
mod hosts;
mod names;
mod resolver;
mod server;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gameday_proto::fault::{DnsAnswer, DnsMode};
use gameday_proto::DnsPoison;
use serde::{Deserialize, Serialize};

pub use hosts::{HostsPlan, MAX_HOSTS_BYTES};
pub use names::NamePattern;
pub use resolver::{parse_resolv_conf, table_name, ResolverPlan};

use super::{Applied, FaultError, Host, Reverted, Unavailable};
use crate::os::dns::{DnsFiles, DnsOsError, DnsSockets, RealDns};
use crate::os::nft::{Firewall, Nft};
use crate::policy::Policy;
use gameday_proto::v1::UnavailableCause;

/// Firewall mark on the embedded resolver's upstream sockets when the policy sets none:
/// "GDNS" in ASCII.
pub const DEFAULT_MARK: u32 = 0x4744_4e53;
/// How long the embedded resolver waits for one upstream when the policy says nothing.
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest upstream timeout the policy may set: beyond it, clients have given up anyway.
const MAX_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);

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
    /// The real machinery, configured from the agent's config (everything this fault may
    /// touch is named by `[policy.dns_poison]`, which reaches it through the policy).
    pub fn from_config(config: &crate::config::AgentConfig) -> Backend {
        Backend {
            protected: controller_name(&config.controller).into_iter().collect(),
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

/// The `[policy.dns_poison]` table: which files and servers this fault may use. Each mode is
/// off until the host owner configures it.
///
/// ```toml
/// [policy.dns_poison]
/// hosts_file = "/srv/hosts/app.hosts" # hosts mode may rewrite this file (no default)
/// upstream = ["10.0.0.2:53"]          # resolver mode forwards here (or: resolv_conf = "...")
/// names = ["*.internal.example"]      # only these may be poisoned (any when absent)
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// The hosts file hosts mode may rewrite. No default: absent, hosts mode is refused and
    /// not advertised, so nobody's real hosts file is touched unless its owner says so.
    #[serde(default)]
    pub hosts_file: Option<PathBuf>,
    /// A resolv.conf to read the real upstream servers from (its loopback entries are
    /// skipped). Give this or `upstream`, not both.
    #[serde(default)]
    pub resolv_conf: Option<PathBuf>,
    /// The real upstream DNS servers resolver mode forwards to, tried in order, e.g.
    /// `["10.0.0.2:53"]`. Never loopback: a local resolver's own queries would be redirected
    /// back to the agent, in a loop.
    #[serde(default)]
    pub upstream: Vec<SocketAddr>,
    /// The embedded resolver's port on 127.0.0.1 and ::1. The redirect always goes to
    /// loopback, so only the port is configurable; 0 (the default) lets the kernel pick a
    /// free port at each apply, which can never collide with another service.
    #[serde(default)]
    pub listen_port: u16,
    /// How long the embedded resolver waits for one upstream before trying the next
    /// (default 2s, at most 30s).
    #[serde(default)]
    pub upstream_timeout: Option<gameday_proto::Duration>,
    /// Firewall mark (SO_MARK) on the resolver's upstream sockets, which the redirect lets
    /// through (default 0x47444e53). Change it if the host's policy routing uses that mark.
    #[serde(default)]
    pub mark: Option<u32>,
    /// If not empty, only these names may be poisoned: exact names, or `*.suffix` patterns
    /// covering names (and narrower wildcards) below `suffix`.
    #[serde(default)]
    pub names: Vec<String>,
}

impl PolicyConfig {
    /// Checks the table is usable.
    pub fn validate(&self) -> Result<(), String> {
        for (key, path) in [
            ("hosts_file", &self.hosts_file),
            ("resolv_conf", &self.resolv_conf),
        ] {
            if let Some(path) = path {
                if !path.is_absolute() {
                    return Err(format!(
                        "{key}: expected an absolute path, found {:?}",
                        path.display().to_string()
                    ));
                }
            }
        }
        if self.resolv_conf.is_some() && !self.upstream.is_empty() {
            return Err(
                "give either upstream or resolv_conf, not both (which one would win?)".into(),
            );
        }
        for addr in &self.upstream {
            if addr.ip().is_loopback() || addr.ip().is_unspecified() || addr.port() == 0 {
                return Err(format!(
                    "upstream: {addr} cannot be an upstream (expected a real DNS server's \
                     address and port; a loopback resolver's own queries would be redirected \
                     back to the agent)"
                ));
            }
        }
        if let Some(t) = self.upstream_timeout {
            if t.get().is_zero() || t.get() > MAX_UPSTREAM_TIMEOUT {
                return Err(format!(
                    "upstream_timeout: expected more than zero and at most 30s, found {t}"
                ));
            }
        }
        if self.mark == Some(0) {
            return Err("mark: 0 is every unmarked packet; choose another mark".into());
        }
        for name in &self.names {
            NamePattern::parse(name).map_err(|e| format!("names: {e}"))?;
        }
        Ok(())
    }

    /// The upstream timeout, defaulted.
    pub fn upstream_timeout(&self) -> Duration {
        self.upstream_timeout
            .map_or(DEFAULT_UPSTREAM_TIMEOUT, |t| t.get())
    }

    /// The upstream sockets' mark, defaulted.
    pub fn mark(&self) -> u32 {
        self.mark.unwrap_or(DEFAULT_MARK)
    }

    fn allowed_names(&self) -> Vec<NamePattern> {
        // validate() already refused bad patterns.
        self.names
            .iter()
            .filter_map(|n| NamePattern::parse(n).ok())
            .collect()
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

/// The host name of the controller's URL, when it is a name and not an address literal.
fn controller_name(url: &crate::config::ControllerUrl) -> Option<String> {
    let host = url.host();
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

fn hosts_available(policy: &PolicyConfig, backend: &Backend) -> Result<(), Unavailable> {
    let Some(path) = &policy.hosts_file else {
        return Err(Unavailable::policy(
            "hosts mode is off: policy.dns_poison.hosts_file is not set",
        ));
    };
    backend.files.check_writable(path).map_err(|e| {
        let detail = format!("hosts mode cannot write {e}");
        match &e {
            DnsOsError::File { source, .. } | DnsOsError::Socket { source, .. } => {
                Unavailable::file(source, detail)
            }
        }
    })
}

/// Whether this host can apply the fault: in at least one mode. The error names why each
/// mode is not usable; its cause is the policy's only when neither mode is configured (a mode
/// the owner configured and the host cannot do is the more useful news).
pub fn available(policy: &Policy, host: &Host) -> Result<(), Unavailable> {
    let config = &policy.dns_poison;
    let Err(hosts) = hosts_available(config, &host.dns) else {
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
    policy: &Policy,
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
    let config = &policy.dns_poison;
    let allowed = config.allowed_names();
    if !allowed.is_empty() {
        if let Some(refused) = names.iter().find(|n| !allowed.iter().any(|a| a.covers(n))) {
            return Err(FaultError::Policy(format!(
                "policy refuses to poison {refused}: it is not covered by \
                 policy.dns_poison.names = {:?}",
                config.names
            )));
        }
    }
    if let Some((pattern, name)) = names.iter().find_map(|p| {
        host.dns
            .protected
            .iter()
            .find(|n| p.matches(n))
            .map(|n| (p, n))
    }) {
        return Err(FaultError::Policy(format!(
            "refusing to poison {pattern}: it covers {name}, the controller's name, and the \
             agent must always be able to find its controller"
        )));
    }
    let mode = match spec.mode {
        DnsMode::Hosts => {
            let Some(path) = &config.hosts_file else {
                return Err(FaultError::Policy(
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
