//! The `[policy.process_kill]` section: which processes `process_kill` and `process_pause` may
//! touch, and with which signals. The host's policy holds it; the two faults take only this.

use gameday_proto::{KillSignal, ProcessPlace};
use regex::Regex;
use serde::Deserialize;

use super::process_scope::{self, Whereabouts};
use crate::os::ProcessInfo;

/// The `[policy.process_kill]` table: which processes may be signalled, and with what.
///
/// A rule is a regular expression, searched (not anchored: add `^`/`$` yourself) in the
/// process name (`comm`) and in its command line; it matches a process when it matches either,
/// so `deny = ["^postgres"]` protects postgres whether it shows as `postgres` or as
/// `/usr/lib/postgresql/16/bin/postgres -D ...`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessKillPolicy {
    /// If not empty, only processes matching one of these rules may be signalled.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Processes matching any of these rules are never signalled; deny wins over allow.
    #[serde(default)]
    pub deny: Vec<String>,
    /// Signals that may be sent; every signal `process_kill` knows when absent.
    #[serde(default)]
    pub signals: Option<Vec<String>>,
    /// If not empty, only processes inside one of these scopes may be signalled or paused:
    /// `unit:NAME.service`, `cgroup:/PATH` (that cgroup and below), `container:ID` (an id or
    /// a prefix of at least 12 hex digits, or a systemd-nspawn machine name), `netns:agent`
    /// or `pidns:agent` (the agent's own namespace). A fault that would touch any process
    /// outside them is refused whole, as for `deny`.
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// One entry of `process_kill.scopes`.
#[derive(Clone, Debug, PartialEq, Eq)]
enum PolicyScope {
    /// A unit, cgroup or container.
    Place(ProcessPlace),
    /// The agent's own network namespace.
    AgentNetns,
    /// The agent's own pid namespace.
    AgentPidns,
}

impl PolicyScope {
    fn parse(text: &str) -> Result<PolicyScope, String> {
        let Some((kind, value)) = text.split_once(':') else {
            return Err(format!(
                "{text:?} is not KIND:VALUE (unit:, cgroup:, container:, netns:agent or pidns:agent)"
            ));
        };
        match (kind, value) {
            ("netns", "agent") => Ok(PolicyScope::AgentNetns),
            ("pidns", "agent") => Ok(PolicyScope::AgentPidns),
            ("netns" | "pidns", _) => Err(format!(
                "{text:?}: a policy can only name the agent's own namespace ({kind}:agent); pids change"
            )),
            _ => ProcessPlace::parse(kind, value)
                .map(PolicyScope::Place)
                .map_err(|e| e.to_string()),
        }
    }

    fn holds(&self, at: &Whereabouts, agent: &Whereabouts) -> bool {
        match self {
            PolicyScope::Place(place) => at
                .cgroup
                .as_deref()
                .is_some_and(|cgroup| process_scope::place_holds(place, cgroup)),
            PolicyScope::AgentNetns => at.netns.is_some() && at.netns == agent.netns,
            PolicyScope::AgentPidns => at.pidns.is_some() && at.pidns == agent.pidns,
        }
    }
}

/// A `process_kill` table that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcessPolicyError {
    /// A process rule that is not a valid regular expression.
    #[error("process_kill.{list}[{index}]: invalid regular expression: {message}")]
    Regex {
        /// `allow` or `deny`.
        list: &'static str,
        /// Position in the list, from 0.
        index: usize,
        /// The regex engine's explanation (it quotes the pattern).
        message: String,
    },
    /// `signals` names a signal `process_kill` cannot send.
    #[error(
        "process_kill.signals: unknown signal {signal:?} (expected one of: {})",
        KillSignal::expected()
    )]
    UnknownSignal {
        /// The signal as written.
        signal: String,
    },
    /// An entry of `process_kill.scopes` that cannot be read.
    #[error("process_kill.scopes[{index}]: {message}")]
    Scope {
        /// Position in the list, from 0.
        index: usize,
        /// What is wrong.
        message: String,
    },
}

impl ProcessPolicyError {
    /// The key, inside the `[policy]` table, that holds the mistake.
    pub fn key_path(&self) -> &'static [&'static str] {
        match self {
            ProcessPolicyError::Regex { list: "allow", .. } => &["process_kill", "allow"],
            ProcessPolicyError::Regex { .. } => &["process_kill", "deny"],
            ProcessPolicyError::UnknownSignal { .. } => &["process_kill", "signals"],
            ProcessPolicyError::Scope { .. } => &["process_kill", "scopes"],
        }
    }
}

/// Why the policy will not let a process fault touch a process, or send a signal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcessRefusal {
    /// Signalling init takes the whole host (or container) down.
    #[error("policy refuses to signal pid 1 (init)")]
    Init,
    /// The agent must live to revert what it applied.
    #[error("policy refuses to signal the agent itself (pid {pid})")]
    Agent {
        /// The agent's pid.
        pid: i32,
    },
    /// The parent is whatever supervises the agent; under `gameday run --local` it is the
    /// controller that is measuring the run.
    #[error("policy refuses to signal the agent's parent (pid {pid})")]
    AgentParent {
        /// The parent's pid.
        pid: i32,
    },
    /// The process matches a `deny` rule.
    #[error("process {pid} ({name}) is denied by policy rule `{rule}`")]
    Denied {
        /// The process.
        pid: i32,
        /// Its name.
        name: String,
        /// The rule it matched, as written.
        rule: String,
    },
    /// `allow` is not empty and the process matches none of its rules.
    #[error(
        "process {pid} ({name}) matches no rule of the policy's process_kill.allow = {allow:?}"
    )]
    NotAllowed {
        /// The process.
        pid: i32,
        /// Its name.
        name: String,
        /// The allow rules, as written.
        allow: Vec<String>,
    },
    /// `scopes` is not empty and the process is in none of them.
    #[error(
        "process {pid} ({name}) is outside every scope the policy allows \
         (process_kill.scopes = {scopes:?}); it is in cgroup {cgroup}"
    )]
    OutOfScope {
        /// The process.
        pid: i32,
        /// Its name.
        name: String,
        /// Its cgroup, or `unknown`.
        cgroup: String,
        /// The scopes, as written.
        scopes: Vec<String>,
    },
    /// The signal is not in `process_kill.signals`.
    #[error("signal {signal} is not allowed on this host (process_kill.signals = {allowed:?})")]
    Signal {
        /// The signal asked for.
        signal: String,
        /// What the host allows.
        allowed: Vec<String>,
    },
}

impl ProcessRefusal {
    /// True for the refusals no config can lift (pid 1, the agent, its parent). A fault that
    /// selects processes by name or command line skips these instead of failing.
    pub fn is_protected(&self) -> bool {
        matches!(
            self,
            ProcessRefusal::Init
                | ProcessRefusal::Agent { .. }
                | ProcessRefusal::AgentParent { .. }
        )
    }
}

/// The `process_kill` section, checked and compiled.
#[derive(Clone, Debug)]
pub struct ProcessPolicy {
    allow: Vec<(String, Regex)>,
    deny: Vec<(String, Regex)>,
    signals: Vec<KillSignal>,
    scopes: Vec<(String, PolicyScope)>,
}

impl ProcessPolicy {
    /// Checks and compiles the section.
    pub fn from_config(config: &ProcessKillPolicy) -> Result<ProcessPolicy, ProcessPolicyError> {
        let signals = match &config.signals {
            // `KILL` and `SIGKILL` mean the same here as in scenarios.
            Some(signals) => signals
                .iter()
                .map(|signal| {
                    signal
                        .parse()
                        .map_err(|_| ProcessPolicyError::UnknownSignal {
                            signal: signal.clone(),
                        })
                })
                .collect::<Result<Vec<_>, _>>()?,
            None => KillSignal::ALL.to_vec(),
        };
        Ok(ProcessPolicy {
            allow: compile_rules("allow", &config.allow)?,
            deny: compile_rules("deny", &config.deny)?,
            signals,
            scopes: config
                .scopes
                .iter()
                .enumerate()
                .map(|(index, text)| {
                    PolicyScope::parse(text)
                        .map(|s| (text.clone(), s))
                        .map_err(|message| ProcessPolicyError::Scope { index, message })
                })
                .collect::<Result<_, _>>()?,
        })
    }

    /// Any process, any signal; only the always-refused targets stay refused.
    pub fn permissive() -> ProcessPolicy {
        ProcessPolicy {
            allow: Vec::new(),
            deny: Vec::new(),
            signals: KillSignal::ALL.to_vec(),
            scopes: Vec::new(),
        }
    }

    /// Whether `process_kill` may send `signal`.
    pub fn check_signal(&self, signal: KillSignal) -> Result<(), ProcessRefusal> {
        if self.signals.contains(&signal) {
            Ok(())
        } else {
            Err(ProcessRefusal::Signal {
                signal: signal.to_string(),
                allowed: self.signals.iter().map(ToString::to_string).collect(),
            })
        }
    }

    /// Whether `process_kill.scopes` restricts where processes may be.
    pub fn has_scopes(&self) -> bool {
        !self.scopes.is_empty()
    }

    /// Whether process `p`, found at `at`, lies in one of `process_kill.scopes` (`agent` is
    /// where the agent itself is). Always true when the list is empty.
    pub fn check_scopes(
        &self,
        p: &ProcessInfo,
        at: &Whereabouts,
        agent: &Whereabouts,
    ) -> Result<(), ProcessRefusal> {
        if self.scopes.is_empty() || self.scopes.iter().any(|(_, s)| s.holds(at, agent)) {
            return Ok(());
        }
        Err(ProcessRefusal::OutOfScope {
            pid: p.pid,
            name: p.name.clone(),
            cgroup: at.cgroup.clone().unwrap_or_else(|| "unknown".into()),
            scopes: self.scopes.iter().map(|(t, _)| t.clone()).collect(),
        })
    }

    /// Whether process `p` may be signalled by an agent whose pid is `own_pid` and whose
    /// parent is `parent_pid`. The always-refused targets come first, then deny, then allow.
    pub fn check_process(
        &self,
        p: &ProcessInfo,
        own_pid: i32,
        parent_pid: i32,
    ) -> Result<(), ProcessRefusal> {
        if p.pid == 1 {
            return Err(ProcessRefusal::Init);
        }
        if p.pid == own_pid {
            return Err(ProcessRefusal::Agent { pid: p.pid });
        }
        if p.pid == parent_pid {
            return Err(ProcessRefusal::AgentParent { pid: p.pid });
        }
        let matches = |re: &Regex| re.is_match(&p.name) || re.is_match(&p.cmdline);
        if let Some((rule, _)) = self.deny.iter().find(|(_, re)| matches(re)) {
            return Err(ProcessRefusal::Denied {
                pid: p.pid,
                name: p.name.clone(),
                rule: rule.clone(),
            });
        }
        if !self.allow.is_empty() && !self.allow.iter().any(|(_, re)| matches(re)) {
            return Err(ProcessRefusal::NotAllowed {
                pid: p.pid,
                name: p.name.clone(),
                allow: self.allow.iter().map(|(r, _)| r.clone()).collect(),
            });
        }
        Ok(())
    }
}

fn compile_rules(
    list: &'static str,
    rules: &[String],
) -> Result<Vec<(String, Regex)>, ProcessPolicyError> {
    rules
        .iter()
        .enumerate()
        .map(|(index, rule)| {
            Regex::new(rule)
                .map(|re| (rule.clone(), re))
                .map_err(|e| ProcessPolicyError::Regex {
                    list,
                    index,
                    message: e.to_string(),
                })
        })
        .collect()
}
