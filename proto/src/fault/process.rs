//! Process faults: `process_kill` (a signal, once) and `process_pause` (SIGSTOP until revert).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{duration_from_ms, duration_to_ms, FaultSpecError};
use crate::v1;
use crate::Duration;

/// Signals a `process_kill` may send. Stopping is `process_pause`'s job, so SIGSTOP is absent.
pub const KILL_SIGNALS: &[&str] = &[
    "SIGKILL", "SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGABRT", "SIGUSR1", "SIGUSR2",
];

/// The name in [`KILL_SIGNALS`] that `name` means: `SIGKILL`, `KILL`, `sigkill` and `kill`
/// all mean `SIGKILL`, as `kill -s` takes them. `None` for a signal a kill may not send.
pub fn kill_signal(name: &str) -> Option<&'static str> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    KILL_SIGNALS.iter().copied().find(|s| &s[3..] == bare)
}

/// Reads a signal name, writing the ones [`kill_signal`] knows the way [`KILL_SIGNALS`] does;
/// any other name is kept as written, for validation to name it.
fn deserialize_signal<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let name = String::deserialize(d)?;
    Ok(kill_signal(&name).map_or(name, str::to_string))
}

/// `process_kill`: signal processes matched by exact name, command-line regex or pid file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessKill {
    /// Signal name (`SIGKILL` or `KILL`); SIGKILL when absent.
    #[serde(default = "default_signal", deserialize_with = "deserialize_signal")]
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

/// `process_pause`: SIGSTOP matching processes, SIGCONT them on revert.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessPause {
    /// Exact process name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Regular expression over the command line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmdline: Option<String>,
    /// File holding the pid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_file: Option<PathBuf>,
    /// Every match or only the oldest.
    #[serde(default)]
    pub count: Count,
    /// How long the processes stay stopped; until the run reverts it when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Duration>,
}

fn default_signal() -> String {
    "SIGKILL".to_string()
}

/// How many matching processes a process fault hits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Count {
    /// Every matching process.
    #[default]
    All,
    /// Only the oldest matching process.
    One,
}

/// How a process fault picks its processes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProcessMatch {
    /// Exact `comm` name.
    Name(String),
    /// Regex over the command line.
    Cmdline(String),
    /// Pid read from a file.
    PidFile(PathBuf),
}

/// The one selector among name/cmdline/pid_file.
fn selector(
    name: &Option<String>,
    cmdline: &Option<String>,
    pid_file: &Option<PathBuf>,
) -> Result<ProcessMatch, FaultSpecError> {
    let found = [name.is_some(), cmdline.is_some(), pid_file.is_some()]
        .iter()
        .filter(|set| **set)
        .count();
    if found != 1 {
        return Err(FaultSpecError::ProcessMatch { found });
    }
    if let Some(name) = name {
        if name.is_empty() {
            return Err(FaultSpecError::Empty { field: "name" });
        }
        return Ok(ProcessMatch::Name(name.clone()));
    }
    if let Some(re) = cmdline {
        if re.is_empty() {
            return Err(FaultSpecError::Empty { field: "cmdline" });
        }
        return Ok(ProcessMatch::Cmdline(re.clone()));
    }
    let path = pid_file.clone().unwrap_or_default();
    if path.as_os_str().is_empty() {
        return Err(FaultSpecError::Empty { field: "pid_file" });
    }
    Ok(ProcessMatch::PidFile(path))
}

type WireTarget = (Option<String>, Option<String>, Option<PathBuf>);

fn target_to_wire(m: Result<ProcessMatch, FaultSpecError>) -> Option<v1::process_kill::Target> {
    use v1::process_kill::Target;
    match m {
        Ok(ProcessMatch::Name(n)) => Some(Target::Name(n)),
        Ok(ProcessMatch::Cmdline(c)) => Some(Target::CmdlineRegex(c)),
        Ok(ProcessMatch::PidFile(p)) => Some(Target::PidFile(p.display().to_string())),
        Err(_) => None,
    }
}

fn target_from_wire(t: &Option<v1::process_kill::Target>) -> WireTarget {
    use v1::process_kill::Target;
    match t {
        Some(Target::Name(n)) => (Some(n.clone()), None, None),
        Some(Target::CmdlineRegex(c)) => (None, Some(c.clone()), None),
        Some(Target::PidFile(p)) => (None, None, Some(PathBuf::from(p))),
        None => (None, None, None),
    }
}

fn count(all: bool) -> Count {
    if all {
        Count::All
    } else {
        Count::One
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
        selector(&self.name, &self.cmdline, &self.pid_file)
    }

    pub(super) fn to_wire(&self) -> v1::ProcessKill {
        v1::ProcessKill {
            signal: self.signal.clone(),
            target: target_to_wire(self.selector()),
            all: self.count == Count::All,
        }
    }

    pub(super) fn from_wire(k: &v1::ProcessKill) -> ProcessKill {
        let (name, cmdline, pid_file) = target_from_wire(&k.target);
        ProcessKill {
            signal: k.signal.clone(),
            name,
            cmdline,
            pid_file,
            count: count(k.all),
        }
    }
}

impl ProcessPause {
    /// The one selector this pause uses.
    pub fn selector(&self) -> Result<ProcessMatch, FaultSpecError> {
        selector(&self.name, &self.cmdline, &self.pid_file)
    }

    pub(super) fn to_wire(&self) -> v1::ProcessPause {
        use v1::process_pause::Target;
        let target = target_to_wire(self.selector()).map(|t| match t {
            v1::process_kill::Target::Name(n) => Target::Name(n),
            v1::process_kill::Target::CmdlineRegex(c) => Target::CmdlineRegex(c),
            v1::process_kill::Target::PidFile(p) => Target::PidFile(p),
        });
        v1::ProcessPause {
            target,
            all: self.count == Count::All,
            duration_ms: duration_to_ms(self.duration),
        }
    }

    pub(super) fn from_wire(p: &v1::ProcessPause) -> ProcessPause {
        use v1::process_pause::Target;
        let target = p.target.as_ref().map(|t| match t {
            Target::Name(n) => v1::process_kill::Target::Name(n.clone()),
            Target::CmdlineRegex(c) => v1::process_kill::Target::CmdlineRegex(c.clone()),
            Target::PidFile(f) => v1::process_kill::Target::PidFile(f.clone()),
        });
        let (name, cmdline, pid_file) = target_from_wire(&target);
        ProcessPause {
            name,
            cmdline,
            pid_file,
            count: count(p.all),
            duration: duration_from_ms(p.duration_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Fault;
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
            let fault = Fault::ProcessKill(k.clone());
            assert_eq!(Fault::from_wire(&fault.to_wire()).unwrap(), fault);
            let pause = Fault::ProcessPause(ProcessPause {
                name: k.name,
                cmdline: k.cmdline,
                pid_file: k.pid_file,
                count: Count::One,
                duration: Some(Duration::from_millis(1500)),
            });
            assert_eq!(Fault::from_wire(&pause.to_wire()).unwrap(), pause);
        }
    }

    #[test]
    fn needs_exactly_one_selector() {
        let none = Fault::ProcessKill(kill(None, None, None));
        assert_eq!(
            none.validate(),
            Err(FaultSpecError::ProcessMatch { found: 0 })
        );
        let two = Fault::ProcessKill(kill(Some("a"), Some("b"), None));
        assert_eq!(
            two.validate(),
            Err(FaultSpecError::ProcessMatch { found: 2 })
        );
    }

    #[test]
    fn signals_are_accepted_with_or_without_their_sig_prefix() {
        assert_eq!(kill_signal("SIGKILL"), Some("SIGKILL"));
        assert_eq!(kill_signal("KILL"), Some("SIGKILL"));
        assert_eq!(kill_signal("term"), Some("SIGTERM"));
        assert_eq!(kill_signal("SigUsr1"), Some("SIGUSR1"));
        assert_eq!(kill_signal("STOP"), None, "pausing is process_pause's job");
        assert_eq!(kill_signal("SIG"), None);
        assert_eq!(kill_signal(""), None);
        let k: ProcessKill = toml::from_str("signal = \"KILL\"\nname = \"x\"").unwrap();
        assert_eq!(k.signal, "SIGKILL");
        assert!(k.selector().is_ok());
        let k: ProcessKill = toml::from_str("signal = \"NOPE\"\nname = \"x\"").unwrap();
        assert_eq!(k.signal, "NOPE", "kept as written, for the error to name");
        assert!(k.selector().is_err());
    }

    #[test]
    fn rejects_unknown_signal() {
        let mut k = kill(Some("a"), None, None);
        k.signal = "SIGSTOP".into();
        assert!(matches!(
            Fault::ProcessKill(k).validate(),
            Err(FaultSpecError::Signal { .. })
        ));
    }
}
