//! Fault specifications: the TOML form scenarios use, the wire form, and the checks between them.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::v1;

/// Signals a `process_kill` may send. Stopping is `process_pause`'s job, so SIGSTOP is absent.
pub const KILL_SIGNALS: &[&str] = &[
    "SIGKILL", "SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGABRT", "SIGUSR1", "SIGUSR2",
];

/// One fault a scenario injects on each of its targets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// Send a signal to matching processes.
    ProcessKill(ProcessKill),
}

/// Fault kinds by the name scenarios, capabilities and policies use.
pub const FAULT_KINDS: &[&str] = &["process_kill"];

/// `process_kill`: signal processes matched by exact name, command-line regex or pid file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessKill {
    /// Signal name; SIGKILL when absent.
    #[serde(default = "default_signal")]
    pub signal: String,
    /// Exact process name (`comm`, as `ps -o comm` shows it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Regular expression matched against the full command line (arguments joined by spaces).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmdline: Option<String>,
    /// File holding the pid to signal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_file: Option<PathBuf>,
    /// Signal every match (`all`, the default) or only the oldest (`one`).
    #[serde(default)]
    pub count: Count,
}

fn default_signal() -> String {
    "SIGKILL".to_string()
}

/// How many matching processes a kill signals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Count {
    /// Every matching process.
    #[default]
    All,
    /// Only the oldest matching process.
    One,
}

/// How a `process_kill` picks its processes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProcessMatch {
    /// Exact `comm` name.
    Name(String),
    /// Regex over the command line.
    Cmdline(String),
    /// Pid read from a file.
    PidFile(PathBuf),
}

/// A fault specification that is not well formed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FaultSpecError {
    /// The spec is missing or its kind is unknown.
    #[error("fault has no kind (expected one of: {})", FAULT_KINDS.join(", "))]
    MissingKind,
    /// A process_kill with zero or several of name/cmdline/pid_file.
    #[error("process_kill needs exactly one of `name`, `cmdline` or `pid_file`, found {found}")]
    ProcessMatch {
        /// How many selectors were given.
        found: usize,
    },
    /// A signal outside [`KILL_SIGNALS`].
    #[error("unknown signal {signal:?} (expected one of: {})", KILL_SIGNALS.join(", "))]
    Signal {
        /// The signal as written.
        signal: String,
    },
    /// A command-line regex that does not compile.
    #[error("invalid `cmdline` regex: {0}")]
    Regex(String),
    /// An empty string where a value is required.
    #[error("`{field}` must not be empty")]
    Empty {
        /// The field name.
        field: &'static str,
    },
}

impl Fault {
    /// The fault's kind as capabilities and policies name it.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::ProcessKill(_) => "process_kill",
        }
    }

    /// Checks the spec is complete and consistent.
    pub fn validate(&self) -> Result<(), FaultSpecError> {
        match self {
            Fault::ProcessKill(k) => k.selector().map(|_| ()),
        }
    }

    /// The wire form. Call [`Fault::validate`] first.
    pub fn to_wire(&self) -> v1::FaultSpec {
        match self {
            Fault::ProcessKill(k) => {
                use v1::process_kill::Target;
                let target = match k.selector() {
                    Ok(ProcessMatch::Name(n)) => Some(Target::Name(n)),
                    Ok(ProcessMatch::Cmdline(c)) => Some(Target::CmdlineRegex(c)),
                    Ok(ProcessMatch::PidFile(p)) => Some(Target::PidFile(p.display().to_string())),
                    Err(_) => None,
                };
                v1::FaultSpec {
                    kind: Some(v1::fault_spec::Kind::ProcessKill(v1::ProcessKill {
                        signal: k.signal.clone(),
                        target,
                        all: k.count == Count::All,
                    })),
                }
            }
        }
    }

    /// Reads and validates the wire form, as the agent must: it trusts nothing it receives.
    pub fn from_wire(spec: &v1::FaultSpec) -> Result<Fault, FaultSpecError> {
        let kind = spec.kind.as_ref().ok_or(FaultSpecError::MissingKind)?;
        let fault = match kind {
            v1::fault_spec::Kind::ProcessKill(k) => {
                use v1::process_kill::Target;
                let (name, cmdline, pid_file) = match &k.target {
                    Some(Target::Name(n)) => (Some(n.clone()), None, None),
                    Some(Target::CmdlineRegex(c)) => (None, Some(c.clone()), None),
                    Some(Target::PidFile(p)) => (None, None, Some(PathBuf::from(p))),
                    None => (None, None, None),
                };
                Fault::ProcessKill(ProcessKill {
                    signal: k.signal.clone(),
                    name,
                    cmdline,
                    pid_file,
                    count: if k.all { Count::All } else { Count::One },
                })
            }
        };
        fault.validate()?;
        Ok(fault)
    }
}

impl ProcessKill {
    /// The one selector this kill uses, after checking the signal and the selector are valid.
    pub fn selector(&self) -> Result<ProcessMatch, FaultSpecError> {
        if !KILL_SIGNALS.contains(&self.signal.as_str()) {
            return Err(FaultSpecError::Signal {
                signal: self.signal.clone(),
            });
        }
        let found = [self.name.is_some(), self.cmdline.is_some(), self.pid_file.is_some()]
            .iter()
            .filter(|set| **set)
            .count();
        if found != 1 {
            return Err(FaultSpecError::ProcessMatch { found });
        }
        if let Some(name) = &self.name {
            if name.is_empty() {
                return Err(FaultSpecError::Empty { field: "name" });
            }
            return Ok(ProcessMatch::Name(name.clone()));
        }
        if let Some(re) = &self.cmdline {
            if re.is_empty() {
                return Err(FaultSpecError::Empty { field: "cmdline" });
            }
            return Ok(ProcessMatch::Cmdline(re.clone()));
        }
        let path = self.pid_file.clone().unwrap_or_default();
        if path.as_os_str().is_empty() {
            return Err(FaultSpecError::Empty { field: "pid_file" });
        }
        Ok(ProcessMatch::PidFile(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kill(name: Option<&str>, cmdline: Option<&str>, pid_file: Option<&str>) -> ProcessKill {
        ProcessKill {
            signal: default_signal(),
            name: name.map(Into::into),
            cmdline: cmdline.map(Into::into),
            pid_file: pid_file.map(Into::into),
            count: Count::All,
        }
    }

    #[test]
    fn wire_round_trip_keeps_every_selector() {
        for k in [
            kill(Some("nginx"), None, None),
            kill(None, Some("redis-server .*:6379"), None),
            kill(None, None, Some("/run/x.pid")),
        ] {
            let fault = Fault::ProcessKill(k);
            assert_eq!(Fault::from_wire(&fault.to_wire()).unwrap(), fault);
        }
    }

    #[test]
    fn needs_exactly_one_selector() {
        let none = Fault::ProcessKill(kill(None, None, None));
        assert_eq!(none.validate(), Err(FaultSpecError::ProcessMatch { found: 0 }));
        let two = Fault::ProcessKill(kill(Some("a"), Some("b"), None));
        assert_eq!(two.validate(), Err(FaultSpecError::ProcessMatch { found: 2 }));
    }

    #[test]
    fn rejects_unknown_signal_and_empty_kind() {
        let mut k = kill(Some("a"), None, None);
        k.signal = "SIGSTOP".into();
        assert!(matches!(
            Fault::ProcessKill(k).validate(),
            Err(FaultSpecError::Signal { .. })
        ));
        assert_eq!(
            Fault::from_wire(&v1::FaultSpec { kind: None }),
            Err(FaultSpecError::MissingKind)
        );
    }
}
