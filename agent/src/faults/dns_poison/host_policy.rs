//! The host owner's `[policy.dns_poison]`: which files and servers the fault may use and which
//! names it may poison, checked when the policy loads.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{Backend, NamePattern};
use crate::faults::{FaultError, Unavailable};
use crate::os::dns::DnsOsError;

/// Firewall mark on the embedded resolver's upstream sockets when the policy sets none:
/// "GDNS" in ASCII.
pub const DEFAULT_MARK: u32 = 0x4744_4e53;
/// How long the embedded resolver waits for one upstream when the policy says nothing.
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest upstream timeout the policy may set: beyond it, clients have given up anyway.
const MAX_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);

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

    /// Refuses names outside `names`, when the list is not empty.
    pub(super) fn check_names(&self, names: &[NamePattern]) -> Result<(), FaultError> {
        let allowed = self.allowed_names();
        if allowed.is_empty() {
            return Ok(());
        }
        match names.iter().find(|n| !allowed.iter().any(|a| a.covers(n))) {
            Some(refused) => Err(FaultError::PolicyLimit(format!(
                "policy refuses to poison {refused}: it is not covered by \
                 policy.dns_poison.names = {:?}",
                self.names
            ))),
            None => Ok(()),
        }
    }
}

/// Whether hosts mode is usable: the policy names a hosts file the agent may write.
pub(super) fn hosts_available(policy: &PolicyConfig, backend: &Backend) -> Result<(), Unavailable> {
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
