//! The host owner's policy: what faults this agent may apply, to what, and which remediation
//! steps it may run.
//!
//! The policy comes from the agent's own config file, never from the controller, so a
//! compromised or mistaken controller cannot do what the host owner did not allow. Some targets
//! are refused whatever the config says: pid 1, the agent itself and the agent's parent (under
//! `gameday run --local` that is the controller).

use gameday_proto::FaultKind;
use serde::Deserialize;

use crate::steps::{RemediationPolicy, RemediationPolicyError};

pub use crate::faults::process_policy::{
    ProcessKillPolicy, ProcessPolicy, ProcessPolicyError, ProcessRefusal,
};

/// The `[policy]` table of the agent config file, as written.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Fault kinds this host accepts; every known kind when absent.
    #[serde(default = "all_fault_kinds")]
    pub allow_faults: Vec<String>,
    /// Limits on `process_kill`; its process rules (`allow`, `deny`) govern `process_pause` too.
    #[serde(default)]
    pub process_kill: ProcessKillPolicy,
    /// Limits on `network_partition`.
    #[serde(default)]
    pub network_partition: crate::faults::network_partition::PolicyConfig,
    /// Limits on `disk_fill`.
    #[serde(default)]
    pub disk_fill: crate::faults::disk_fill::PolicyConfig,
    /// Limits on `dns_poison`.
    #[serde(default)]
    pub dns_poison: crate::faults::dns_poison::PolicyConfig,
    /// Which remediation steps may run (none by default).
    #[serde(default)]
    pub remediation: RemediationPolicy,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            allow_faults: all_fault_kinds(),
            process_kill: ProcessKillPolicy::default(),
            network_partition: Default::default(),
            disk_fill: Default::default(),
            dns_poison: Default::default(),
            remediation: RemediationPolicy::default(),
        }
    }
}

fn all_fault_kinds() -> Vec<String> {
    FaultKind::ALL.map(|k| k.name().to_string()).to_vec()
}

/// A policy config that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// `allow_faults` names a kind gameday does not have.
    #[error(
        "allow_faults: unknown fault kind {kind:?} (expected one of: {})",
        FaultKind::expected()
    )]
    UnknownFaultKind {
        /// The kind as written.
        kind: String,
    },
    /// The `process_kill` table is not usable.
    #[error(transparent)]
    Process(#[from] ProcessPolicyError),
    /// The `remediation` table is not usable.
    #[error(transparent)]
    Remediation(#[from] RemediationPolicyError),
    /// A per-kind table (`network_partition`, `disk_fill`, `dns_poison`) that is not usable.
    #[error("{kind}: {message}")]
    Kind {
        /// The table.
        kind: &'static str,
        /// What is wrong.
        message: String,
    },
}

impl PolicyError {
    /// The key, inside the `[policy]` table, that holds the mistake, so a config loader can
    /// point at its line.
    pub fn key_path(&self) -> &'static [&'static str] {
        match self {
            PolicyError::UnknownFaultKind { .. } => &["allow_faults"],
            PolicyError::Process(e) => e.key_path(),
            PolicyError::Remediation(e) => e.key_path(),
            PolicyError::Kind {
                kind: "network_partition",
                ..
            } => &["network_partition"],
            PolicyError::Kind {
                kind: "disk_fill", ..
            } => &["disk_fill"],
            PolicyError::Kind { .. } => &["dns_poison"],
        }
    }
}

/// Why the policy will not let a fault go ahead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyRefusal {
    /// A process fault's target or signal is refused.
    #[error(transparent)]
    Process(#[from] ProcessRefusal),
    /// The fault kind is not in `allow_faults`.
    #[error("fault kind {kind} is not allowed on this host (allow_faults = {allowed:?})")]
    Kind {
        /// The kind asked for.
        kind: FaultKind,
        /// What the host allows.
        allowed: Vec<String>,
    },
}

impl PolicyRefusal {
    /// True for the refusals no config can lift (pid 1, the agent, its parent). A fault that
    /// selects processes by name or command line skips these instead of failing.
    pub fn is_protected(&self) -> bool {
        matches!(self, PolicyRefusal::Process(p) if p.is_protected())
    }
}

/// A validated policy, ready to answer questions.
#[derive(Clone, Debug)]
pub struct Policy {
    allow_faults: Vec<FaultKind>,
    /// Limits on `process_kill` and `process_pause`, checked by those faults.
    pub process: ProcessPolicy,
    /// Limits on `network_partition`, checked by that fault.
    pub network_partition: crate::faults::network_partition::Limits,
    /// Limits on `disk_fill`, checked by that fault.
    pub disk_fill: crate::faults::disk_fill::PolicyConfig,
    /// Limits on `dns_poison`, checked by that fault.
    pub dns_poison: crate::faults::dns_poison::PolicyConfig,
    /// Which remediation steps may run, checked by [`crate::steps::StepRunner`].
    pub remediation: RemediationPolicy,
}

impl Policy {
    /// Checks and compiles a policy config.
    pub fn from_config(config: &PolicyConfig) -> Result<Policy, PolicyError> {
        let allow_faults = config
            .allow_faults
            .iter()
            .map(|kind| {
                kind.parse()
                    .map_err(|_| PolicyError::UnknownFaultKind { kind: kind.clone() })
            })
            .collect::<Result<Vec<FaultKind>, _>>()?;
        let kind = |kind: &'static str, message: String| PolicyError::Kind { kind, message };
        let network_partition = config
            .network_partition
            .limits()
            .map_err(|m| kind("network_partition", m))?;
        config
            .disk_fill
            .validate()
            .map_err(|m| kind("disk_fill", m))?;
        config
            .dns_poison
            .validate()
            .map_err(|m| kind("dns_poison", m))?;
        config.remediation.validate()?;
        Ok(Policy {
            allow_faults,
            process: ProcessPolicy::from_config(&config.process_kill)?,
            network_partition,
            disk_fill: config.disk_fill.clone(),
            dns_poison: config.dns_poison.clone(),
            remediation: config.remediation.clone(),
        })
    }

    /// Every fault kind, any process, any signal; only the always-refused targets stay refused.
    /// No remediation steps (running commands stays opt-in). For tests and the local demo.
    pub fn permissive() -> Policy {
        Policy {
            allow_faults: FaultKind::ALL.to_vec(),
            process: ProcessPolicy::permissive(),
            network_partition: Default::default(),
            disk_fill: Default::default(),
            dns_poison: Default::default(),
            remediation: RemediationPolicy::default(),
        }
    }

    /// Whether this host accepts faults of `kind`.
    pub fn allows_kind(&self, kind: FaultKind) -> bool {
        self.allow_faults.contains(&kind)
    }

    /// [`Policy::allows_kind`], with the refusal to report.
    pub fn check_kind(&self, kind: FaultKind) -> Result<(), PolicyRefusal> {
        if self.allows_kind(kind) {
            Ok(())
        } else {
            Err(PolicyRefusal::Kind {
                kind,
                allowed: self.allow_faults.iter().map(ToString::to_string).collect(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::process_scope::Whereabouts;
    use crate::os::ProcessInfo;
    use gameday_proto::KillSignal;

    const OWN: i32 = 500;
    const PARENT: i32 = 499;

    fn proc(pid: i32, name: &str, cmdline: &str) -> ProcessInfo {
        ProcessInfo {
            pid,
            name: name.into(),
            cmdline: cmdline.into(),
            start_ticks: 0,
        }
    }

    fn policy(toml_text: &str) -> Result<Policy, PolicyError> {
        let config: PolicyConfig = toml::from_str(toml_text).unwrap();
        Policy::from_config(&config)
    }

    #[test]
    fn default_config_allows_every_kind() {
        let p = policy("").unwrap();
        for kind in FaultKind::ALL {
            assert!(p.allows_kind(kind));
        }
    }

    #[test]
    fn always_refuses_init_self_and_parent() {
        let p = Policy::permissive();
        let init = p
            .process
            .check_process(&proc(1, "systemd", "/sbin/init"), OWN, PARENT);
        assert_eq!(
            init.unwrap_err().to_string(),
            "policy refuses to signal pid 1 (init)"
        );
        let me = p
            .process
            .check_process(&proc(OWN, "gameday-agent", "x"), OWN, PARENT)
            .unwrap_err();
        assert_eq!(
            me.to_string(),
            "policy refuses to signal the agent itself (pid 500)"
        );
        let parent = p
            .process
            .check_process(&proc(PARENT, "gameday", "x"), OWN, PARENT)
            .unwrap_err();
        assert!(parent.is_protected());
        assert!(p
            .process
            .check_process(&proc(1234, "demo", "demo"), OWN, PARENT)
            .is_ok());
    }

    #[test]
    fn deny_wins_over_allow_and_matches_name_or_cmdline() {
        let p = policy(
            r#"
            [process_kill]
            allow = ["^nginx", "^demo$"]
            deny = ["nginx: master"]
            "#,
        )
        .unwrap();
        let master = proc(1234, "nginx", "nginx: master process /usr/sbin/nginx");
        let refusal = p.process.check_process(&master, OWN, PARENT).unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "process 1234 (nginx) is denied by policy rule `nginx: master`"
        );
        assert!(!refusal.is_protected());
        let worker = proc(1235, "nginx", "nginx: worker process");
        assert!(p.process.check_process(&worker, OWN, PARENT).is_ok());
        // Allowed by name although the command line is a full path.
        assert!(p
            .process
            .check_process(&proc(7, "demo", "/opt/demo --x"), OWN, PARENT)
            .is_ok());
        let other = p
            .process
            .check_process(&proc(8, "redis", "redis-server"), OWN, PARENT);
        assert!(matches!(other, Err(ProcessRefusal::NotAllowed { .. })));
    }

    #[test]
    fn refuses_kinds_and_signals_outside_the_lists() {
        let p = policy(
            r#"
            allow_faults = []
            [process_kill]
            signals = ["SIGTERM"]
            "#,
        )
        .unwrap();
        assert_eq!(
            p.check_kind(FaultKind::ProcessKill)
                .unwrap_err()
                .to_string(),
            "fault kind process_kill is not allowed on this host (allow_faults = [])"
        );
        assert!(p.process.check_signal(KillSignal::Term).is_ok());
        assert_eq!(
            p.process
                .check_signal(KillSignal::Kill)
                .unwrap_err()
                .to_string(),
            "signal SIGKILL is not allowed on this host (process_kill.signals = [\"SIGTERM\"])"
        );
    }

    #[test]
    fn policy_signals_take_the_names_scenarios_take() {
        let p = policy("[process_kill]\nsignals = [\"KILL\", \"term\"]\n").unwrap();
        assert!(p.process.check_signal(KillSignal::Kill).is_ok());
        assert!(p.process.check_signal(KillSignal::Term).is_ok());
        assert!(p.process.check_signal(KillSignal::Hup).is_err());
        assert!(policy("[process_kill]\nsignals = [\"STOP\"]\n").is_err());
    }

    #[test]
    fn rejects_bad_configs_with_the_key_at_fault() {
        let kind = policy(r#"allow_faults = ["meteor_strike"]"#).unwrap_err();
        assert_eq!(kind.key_path(), &["allow_faults"]);
        let regex = policy("[process_kill]\ndeny = [\"ok\", \"(unclosed\"]").unwrap_err();
        assert!(regex
            .to_string()
            .starts_with("process_kill.deny[1]: invalid regular expression"));
        assert_eq!(regex.key_path(), &["process_kill", "deny"]);
        let signal = policy("[process_kill]\nsignals = [\"SIGSTOP\"]").unwrap_err();
        assert!(matches!(
            signal,
            PolicyError::Process(ProcessPolicyError::UnknownSignal { .. })
        ));
        assert!(toml::from_str::<PolicyConfig>("allow_fault = []").is_err());
        assert!(toml::from_str::<PolicyConfig>("[process_kill]\nallw = []").is_err());
    }

    fn at(cgroup: &str, netns: u64, pidns: u64) -> Whereabouts {
        Whereabouts {
            cgroup: Some(cgroup.into()),
            netns: Some(netns),
            pidns: Some(pidns),
        }
    }

    #[test]
    fn scopes_confine_processes_to_units_cgroups_containers_and_namespaces() {
        let p = policy(
            r#"
            [process_kill]
            scopes = ["unit:redis-server.service", "cgroup:/gameday-test", "netns:agent"]
            "#,
        )
        .unwrap();
        assert!(p.process.has_scopes());
        let agent = at("/system.slice/gameday-agent.service", 1, 2);
        let redis = proc(10, "redis-server", "redis-server");
        for ok in [
            at("/system.slice/redis-server.service", 9, 9),
            at("/gameday-test/inner", 9, 9),
            at("/system.slice/other.service", 1, 9),
        ] {
            assert!(
                p.process.check_scopes(&redis, &ok, &agent).is_ok(),
                "{ok:?}"
            );
        }
        let outside = at("/system.slice/docker-abc.scope", 9, 2);
        let refusal = p
            .process
            .check_scopes(&redis, &outside, &agent)
            .unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "process 10 (redis-server) is outside every scope the policy allows \
             (process_kill.scopes = [\"unit:redis-server.service\", \"cgroup:/gameday-test\", \
             \"netns:agent\"]); it is in cgroup /system.slice/docker-abc.scope"
        );
        assert!(!refusal.is_protected());
        let unknown = Whereabouts::default();
        assert!(p.process.check_scopes(&redis, &unknown, &agent).is_err());
        // No scopes: anything goes.
        assert!(Policy::permissive()
            .process
            .check_scopes(&redis, &outside, &agent)
            .is_ok());
        let pidns =
            policy("[process_kill]\nscopes = [\"pidns:agent\", \"container:web\"]").unwrap();
        assert!(pidns.process.check_scopes(&redis, &outside, &agent).is_ok());
        assert!(pidns
            .process
            .check_scopes(
                &redis,
                &at("/machine.slice/machine-web.scope", 5, 5),
                &agent
            )
            .is_ok());
        assert!(pidns
            .process
            .check_scopes(&redis, &at("/x", 5, 5), &agent)
            .is_err());
    }

    #[test]
    fn bad_scopes_name_their_entry() {
        for (bad, says) in [
            ("redis", "not KIND:VALUE"),
            ("netns:1234", "only name the agent's own namespace"),
            ("unit:redis", "\"redis.service\""),
            ("cgroup:relative", "from `/`"),
            ("host:x", "unknown place"),
        ] {
            let err = policy(&format!(
                "[process_kill]\nscopes = [\"unit:a.service\", {bad:?}]"
            ))
            .unwrap_err();
            assert_eq!(err.key_path(), &["process_kill", "scopes"]);
            let text = err.to_string();
            assert!(text.starts_with("process_kill.scopes[1]: "), "{text}");
            assert!(text.contains(says), "{bad}: {text}");
        }
    }
}
