//! Process faults: `process_kill` (a signal, once) and `process_pause` (SIGSTOP until revert),
//! and how both choose their processes: by name, command line or pid file, narrowed to a unit,
//! cgroup or container and to namespaces.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{check_duration, duration_from_ms, duration_to_ms, FaultSpecError, KillSignal};
use crate::v1;
use crate::Duration;

/// `process_kill`: signal processes matched by exact name, command-line regex or pid file.
/// Built only from [`RawProcessKill`] (or the wire), which checks everything once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawProcessKill", into = "RawProcessKill")]
pub struct ProcessKill {
    /// The signal to send.
    pub signal: KillSignal,
    /// The processes it goes to.
    pub selector: ProcessSelector,
    /// Every match or only the oldest.
    pub count: Count,
}

/// `process_pause`: SIGSTOP matching processes, SIGCONT them on revert.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawProcessPause", into = "RawProcessPause")]
pub struct ProcessPause {
    /// The processes to stop.
    pub selector: ProcessSelector,
    /// Every match or only the oldest.
    pub count: Count,
    /// How long the processes stay stopped; until the run reverts it when absent.
    pub duration: Option<Duration>,
}

/// Declares a process fault's table as written, unchecked: the fields given plus every field
/// that chooses processes, with `with_selector` and `take_selector` to move those as one.
macro_rules! raw_process_table {
    ($(#[$meta:meta])* $name:ident { $($(#[$fmeta:meta])* $field:ident: $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $ty,)*
            /// Exact process name (`comm`, as `ps -o comm` shows it).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub name: Option<String>,
            /// Regular expression matched against the full command line (arguments joined by
            /// spaces).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub cmdline: Option<String>,
            /// File holding the pid.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub pid_file: Option<PathBuf>,
            /// Only processes of this systemd unit (`redis-server.service`).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub unit: Option<String>,
            /// Only processes in this cgroup or below it (`/system.slice/redis-server.service`).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub cgroup: Option<String>,
            /// Only processes of this container (id, or a prefix of at least 12 hex digits; or
            /// a systemd-nspawn machine name), as read from the process's cgroup.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub container: Option<String>,
            /// Only processes in this network namespace: `"agent"` (the agent's own) or
            /// `{ same_as_pid = N }`.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub netns: Option<NamespaceScope>,
            /// Only processes in this pid namespace.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub pidns: Option<NamespaceScope>,
            /// Every match (`all`, the default) or only the oldest (`one`).
            #[serde(default)]
            pub count: Count,
        }

        impl $name {
            fn with_selector(f: Fields, count: Count, $($field: $ty,)*) -> $name {
                $name {
                    $($field,)*
                    name: f.name,
                    cmdline: f.cmdline,
                    pid_file: f.pid_file,
                    unit: f.unit,
                    cgroup: f.cgroup,
                    container: f.container,
                    netns: f.netns,
                    pidns: f.pidns,
                    count,
                }
            }

            fn take_selector(&mut self) -> Fields {
                Fields {
                    name: self.name.take(),
                    cmdline: self.cmdline.take(),
                    pid_file: self.pid_file.take(),
                    unit: self.unit.take(),
                    cgroup: self.cgroup.take(),
                    container: self.container.take(),
                    netns: self.netns.take(),
                    pidns: self.pidns.take(),
                }
            }
        }
    };
}

raw_process_table! {
    /// A `process_kill` table as written, unchecked: [`ProcessKill::try_from`] reads it.
    RawProcessKill {
        /// Signal name (`SIGKILL` or `KILL`); SIGKILL when absent.
        #[serde(default = "default_signal")]
        signal: String,
    }
}

raw_process_table! {
    /// A `process_pause` table as written, unchecked: [`ProcessPause::try_from`] reads it.
    RawProcessPause {
        /// How long the processes stay stopped; until the run reverts it when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duration: Option<Duration>,
    }
}

fn default_signal() -> String {
    KillSignal::Kill.name().to_string()
}

/// A compiled command-line regex, compared by its text.
#[derive(Clone, Debug)]
pub struct CmdlinePattern(regex::Regex);

impl CmdlinePattern {
    /// Compiles `pattern`; the error gives the regex engine's reason on one line.
    pub fn new(pattern: &str) -> Result<CmdlinePattern, FaultSpecError> {
        regex::Regex::new(pattern)
            .map(CmdlinePattern)
            .map_err(|e| FaultSpecError::Regex(regex_reason(&e)))
    }

    /// Whether `cmdline` holds a match.
    pub fn is_match(&self, cmdline: &str) -> bool {
        self.0.is_match(cmdline)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl PartialEq for CmdlinePattern {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for CmdlinePattern {}

impl std::fmt::Display for CmdlinePattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The reason alone: regex's own message spans several lines (pattern, caret, reason), and an
/// error must fit on one.
fn regex_reason(error: &regex::Error) -> String {
    let text = error.to_string();
    let last = text
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .unwrap_or(&text);
    last.trim().trim_start_matches("error: ").to_string()
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

/// How a process fault picks its processes by what they are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProcessMatch {
    /// Exact `comm` name.
    Name(String),
    /// Regex over the command line.
    Cmdline(CmdlinePattern),
    /// Pid read from a file.
    PidFile(PathBuf),
}

/// Where a process fault's processes must be, read from each process's cgroup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProcessPlace {
    /// A systemd unit (`redis-server.service`): a component of the process's cgroup path.
    Unit(String),
    /// A cgroup path (`/system.slice/x.service`, no trailing `/`): the process's cgroup is it
    /// or lies below it.
    Cgroup(String),
    /// A container id (or id prefix, lowercase hex) or a systemd-nspawn machine name.
    Container(String),
}

impl ProcessPlace {
    /// Reads and checks a place named by its kind (`unit`, `cgroup` or `container`), as a
    /// fault's keys or an agent policy's `scopes` write it.
    pub fn parse(kind: &str, value: &str) -> Result<ProcessPlace, FaultSpecError> {
        match kind {
            "unit" => check_unit(value).map(|()| ProcessPlace::Unit(value.to_string())),
            "cgroup" => check_cgroup(value).map(ProcessPlace::Cgroup),
            "container" => {
                check_container(value).map(|()| ProcessPlace::Container(value.to_string()))
            }
            _ => Err(FaultSpecError::Invalid {
                field: "scope",
                reason: format!("unknown place {kind:?} (expected unit, cgroup or container)"),
            }),
        }
    }
}

impl std::fmt::Display for ProcessPlace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProcessPlace::Unit(u) => write!(f, "unit {u}"),
            ProcessPlace::Cgroup(c) => write!(f, "cgroup {c}"),
            ProcessPlace::Container(c) => write!(f, "container {c}"),
        }
    }
}

/// A namespace a process fault is confined to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum NamespaceScope {
    /// The agent's own namespace (`netns = "agent"`).
    Agent,
    /// The namespace process N is in (`netns = { same_as_pid = N }`).
    SameAsPid(i32),
}

/// The processes a process fault selects: what they are (name, command line, pid file), where
/// they are (unit, cgroup, container) and which namespaces they are in. Every part given must
/// hold; at least a target or a place is given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessSelector {
    /// What the processes are; `None` when the place alone selects (every process in it).
    pub target: Option<ProcessMatch>,
    /// Where they are.
    pub place: Option<ProcessPlace>,
    /// Their network namespace.
    pub netns: Option<NamespaceScope>,
    /// Their pid namespace.
    pub pidns: Option<NamespaceScope>,
}

impl ProcessSelector {
    /// True when the selector confines the fault to a place or namespace, so a name matching
    /// processes in several containers is intended, not a surprise.
    pub fn is_scoped(&self) -> bool {
        self.place.is_some() || self.netns.is_some() || self.pidns.is_some()
    }
}

/// Shortest container id prefix accepted (what `docker ps` shows).
pub const MIN_CONTAINER_ID_PREFIX: usize = 12;

/// The fields of a process fault that choose its processes, as written.
#[derive(Default)]
struct Fields {
    name: Option<String>,
    cmdline: Option<String>,
    pid_file: Option<PathBuf>,
    unit: Option<String>,
    cgroup: Option<String>,
    container: Option<String>,
    netns: Option<NamespaceScope>,
    pidns: Option<NamespaceScope>,
}

impl From<ProcessSelector> for Fields {
    fn from(s: ProcessSelector) -> Fields {
        let mut f = Fields {
            netns: s.netns,
            pidns: s.pidns,
            ..Fields::default()
        };
        match s.target {
            Some(ProcessMatch::Name(n)) => f.name = Some(n),
            Some(ProcessMatch::Cmdline(c)) => f.cmdline = Some(c.as_str().to_string()),
            Some(ProcessMatch::PidFile(p)) => f.pid_file = Some(p),
            None => {}
        }
        match s.place {
            Some(ProcessPlace::Unit(u)) => f.unit = Some(u),
            Some(ProcessPlace::Cgroup(c)) => f.cgroup = Some(c),
            Some(ProcessPlace::Container(c)) => f.container = Some(c),
            None => {}
        }
        f
    }
}

/// True for a lowercase hex string of a container id's length or a prefix of one.
pub fn is_container_id(s: &str) -> bool {
    (MIN_CONTAINER_ID_PREFIX..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn invalid(field: &'static str, reason: String) -> FaultSpecError {
    FaultSpecError::Invalid { field, reason }
}

fn check_unit(unit: &str) -> Result<(), FaultSpecError> {
    if unit.is_empty() {
        return Err(FaultSpecError::Empty { field: "unit" });
    }
    if unit.contains('/') || unit.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(invalid(
            "unit",
            format!("{unit:?} is not a unit name (no `/`, spaces or control characters)"),
        ));
    }
    if ![".service", ".scope", ".slice"]
        .iter()
        .any(|suffix| unit.len() > suffix.len() && unit.ends_with(suffix))
    {
        return Err(invalid(
            "unit",
            format!(
                "{unit:?} names no unit type with processes: write it in full, e.g. \
                 \"{unit}.service\" (.service, .scope or .slice)"
            ),
        ));
    }
    Ok(())
}

fn check_cgroup(path: &str) -> Result<String, FaultSpecError> {
    if path.is_empty() {
        return Err(FaultSpecError::Empty { field: "cgroup" });
    }
    if !path.starts_with('/') || path.chars().any(char::is_control) {
        return Err(invalid(
            "cgroup",
            format!(
                "{path:?} is not a cgroup path: write it as /proc/PID/cgroup shows it, from `/`, \
                 e.g. \"/system.slice/redis-server.service\""
            ),
        ));
    }
    if path.split('/').any(|c| c == ".." || c == ".") {
        return Err(invalid(
            "cgroup",
            format!("{path:?} holds `.` or `..`; write the path as the kernel shows it"),
        ));
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return Err(invalid(
            "cgroup",
            "\"/\" is the root cgroup, which holds every process on the host; name a cgroup \
             below it"
                .into(),
        ));
    }
    Ok(trimmed.to_string())
}

fn check_container(c: &str) -> Result<(), FaultSpecError> {
    if c.is_empty() {
        return Err(FaultSpecError::Empty { field: "container" });
    }
    if is_container_id(c) {
        return Ok(());
    }
    let name_ok = c.chars().next().is_some_and(|f| f.is_ascii_alphanumeric())
        && c.len() <= 64
        && c.chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '_' | '-' | '.'));
    if !name_ok {
        return Err(invalid(
            "container",
            format!(
                "{c:?} is neither a container id (12 to 64 lowercase hex digits) nor a machine \
                 name (letters, digits, `_`, `-`, `.`)"
            ),
        ));
    }
    Ok(())
}

fn check_namespace(field: &'static str, ns: Option<NamespaceScope>) -> Result<(), FaultSpecError> {
    match ns {
        Some(NamespaceScope::SameAsPid(pid)) if pid <= 0 => Err(invalid(
            field,
            format!("same_as_pid = {pid}: a pid is a positive number"),
        )),
        _ => Ok(()),
    }
}

/// The selector the fields describe, checked.
fn selector(f: Fields) -> Result<ProcessSelector, FaultSpecError> {
    let targets = [f.name.is_some(), f.cmdline.is_some(), f.pid_file.is_some()]
        .iter()
        .filter(|set| **set)
        .count();
    let places = [f.unit.is_some(), f.cgroup.is_some(), f.container.is_some()]
        .iter()
        .filter(|set| **set)
        .count();
    if targets > 1 || (targets == 0 && places == 0) {
        return Err(FaultSpecError::ProcessMatch { found: targets });
    }
    if places > 1 {
        return Err(FaultSpecError::ProcessPlace { found: places });
    }
    let target = if let Some(name) = f.name {
        if name.is_empty() {
            return Err(FaultSpecError::Empty { field: "name" });
        }
        Some(ProcessMatch::Name(name))
    } else if let Some(re) = f.cmdline {
        if re.is_empty() {
            return Err(FaultSpecError::Empty { field: "cmdline" });
        }
        Some(ProcessMatch::Cmdline(CmdlinePattern::new(&re)?))
    } else if let Some(path) = f.pid_file {
        if path.as_os_str().is_empty() {
            return Err(FaultSpecError::Empty { field: "pid_file" });
        }
        Some(ProcessMatch::PidFile(path))
    } else {
        None
    };
    let place = if let Some(unit) = f.unit {
        check_unit(&unit)?;
        Some(ProcessPlace::Unit(unit))
    } else if let Some(path) = f.cgroup {
        Some(ProcessPlace::Cgroup(check_cgroup(&path)?))
    } else if let Some(c) = f.container {
        check_container(&c)?;
        Some(ProcessPlace::Container(c))
    } else {
        None
    };
    check_namespace("netns", f.netns)?;
    check_namespace("pidns", f.pidns)?;
    Ok(ProcessSelector {
        target,
        place,
        netns: f.netns,
        pidns: f.pidns,
    })
}

fn target_to_wire(s: &ProcessSelector) -> Option<v1::process_kill::Target> {
    use v1::process_kill::Target;
    match &s.target {
        Some(ProcessMatch::Name(n)) => Some(Target::Name(n.clone())),
        Some(ProcessMatch::Cmdline(c)) => Some(Target::CmdlineRegex(c.as_str().to_string())),
        Some(ProcessMatch::PidFile(p)) => Some(Target::PidFile(p.display().to_string())),
        None => None,
    }
}

fn namespace_to_wire(ns: Option<NamespaceScope>) -> Option<v1::NamespaceScope> {
    use v1::namespace_scope::Of;
    ns.map(|ns| v1::NamespaceScope {
        of: Some(match ns {
            NamespaceScope::Agent => Of::Agent(true),
            NamespaceScope::SameAsPid(pid) => Of::SameAsPid(pid),
        }),
    })
}

fn scope_to_wire(s: &ProcessSelector) -> Option<v1::ProcessScope> {
    use v1::process_scope::Place;
    if !s.is_scoped() {
        return None;
    }
    Some(v1::ProcessScope {
        place: s.place.as_ref().map(|p| match p {
            ProcessPlace::Unit(u) => Place::Unit(u.clone()),
            ProcessPlace::Cgroup(c) => Place::Cgroup(c.clone()),
            ProcessPlace::Container(c) => Place::Container(c.clone()),
        }),
        netns: namespace_to_wire(s.netns),
        pidns: namespace_to_wire(s.pidns),
    })
}

fn namespace_from_wire(
    field: &'static str,
    ns: &Option<v1::NamespaceScope>,
) -> Result<Option<NamespaceScope>, FaultSpecError> {
    use v1::namespace_scope::Of;
    match ns {
        None => Ok(None),
        Some(v1::NamespaceScope {
            of: Some(Of::Agent(true)),
        }) => Ok(Some(NamespaceScope::Agent)),
        Some(v1::NamespaceScope {
            of: Some(Of::SameAsPid(pid)),
        }) => Ok(Some(NamespaceScope::SameAsPid(*pid))),
        // A scope that names no namespace must not silently widen into "any namespace".
        Some(_) => Err(invalid(
            field,
            "names no namespace (expected \"agent\" or { same_as_pid = N })".into(),
        )),
    }
}

/// The wire's target oneof and scope, read back into the TOML fields (unchecked).
fn fields_from_wire(
    t: &Option<v1::process_kill::Target>,
    scope: &Option<v1::ProcessScope>,
) -> Result<Fields, FaultSpecError> {
    use v1::process_kill::Target;
    use v1::process_scope::Place;
    let mut f = Fields::default();
    match t {
        Some(Target::Name(n)) => f.name = Some(n.clone()),
        Some(Target::CmdlineRegex(c)) => f.cmdline = Some(c.clone()),
        Some(Target::PidFile(p)) => f.pid_file = Some(PathBuf::from(p)),
        None => {}
    }
    let empty = v1::ProcessScope::default();
    let scope = scope.as_ref().unwrap_or(&empty);
    match &scope.place {
        Some(Place::Unit(u)) => f.unit = Some(u.clone()),
        Some(Place::Cgroup(c)) => f.cgroup = Some(c.clone()),
        Some(Place::Container(c)) => f.container = Some(c.clone()),
        None => {}
    }
    f.netns = namespace_from_wire("netns", &scope.netns)?;
    f.pidns = namespace_from_wire("pidns", &scope.pidns)?;
    Ok(f)
}

fn count(all: bool) -> Count {
    if all {
        Count::All
    } else {
        Count::One
    }
}

impl TryFrom<RawProcessKill> for ProcessKill {
    type Error = FaultSpecError;

    fn try_from(mut k: RawProcessKill) -> Result<ProcessKill, FaultSpecError> {
        let signal = k.signal.parse()?;
        let selector = selector(k.take_selector())?;
        Ok(ProcessKill {
            signal,
            selector,
            count: k.count,
        })
    }
}

impl From<ProcessKill> for RawProcessKill {
    fn from(k: ProcessKill) -> RawProcessKill {
        let signal = k.signal.name().to_string();
        RawProcessKill::with_selector(Fields::from(k.selector), k.count, signal)
    }
}

impl TryFrom<RawProcessPause> for ProcessPause {
    type Error = FaultSpecError;

    fn try_from(mut p: RawProcessPause) -> Result<ProcessPause, FaultSpecError> {
        if let Some(duration) = p.duration {
            check_duration(duration)?;
        }
        let selector = selector(p.take_selector())?;
        Ok(ProcessPause {
            selector,
            count: p.count,
            duration: p.duration,
        })
    }
}

impl From<ProcessPause> for RawProcessPause {
    fn from(p: ProcessPause) -> RawProcessPause {
        RawProcessPause::with_selector(Fields::from(p.selector), p.count, p.duration)
    }
}

impl ProcessKill {
    pub(super) fn to_wire(&self) -> v1::ProcessKill {
        v1::ProcessKill {
            signal: self.signal.name().to_string(),
            target: target_to_wire(&self.selector),
            all: self.count == Count::All,
            scope: scope_to_wire(&self.selector),
        }
    }

    /// The wire form read back into the fields as written; [`ProcessKill::try_from`] checks
    /// them.
    pub(super) fn from_wire(k: &v1::ProcessKill) -> Result<RawProcessKill, FaultSpecError> {
        let f = fields_from_wire(&k.target, &k.scope)?;
        Ok(RawProcessKill::with_selector(
            f,
            count(k.all),
            k.signal.clone(),
        ))
    }
}

impl ProcessPause {
    pub(super) fn to_wire(&self) -> v1::ProcessPause {
        use v1::process_pause::Target;
        let target = target_to_wire(&self.selector).map(|t| match t {
            v1::process_kill::Target::Name(n) => Target::Name(n),
            v1::process_kill::Target::CmdlineRegex(c) => Target::CmdlineRegex(c),
            v1::process_kill::Target::PidFile(p) => Target::PidFile(p),
        });
        v1::ProcessPause {
            target,
            all: self.count == Count::All,
            duration_ms: duration_to_ms(self.duration),
            scope: scope_to_wire(&self.selector),
        }
    }

    /// The wire form read back into the fields as written, like [`ProcessKill::from_wire`].
    pub(super) fn from_wire(p: &v1::ProcessPause) -> Result<RawProcessPause, FaultSpecError> {
        use v1::process_pause::Target;
        let target = p.target.as_ref().map(|t| match t {
            Target::Name(n) => v1::process_kill::Target::Name(n.clone()),
            Target::CmdlineRegex(c) => v1::process_kill::Target::CmdlineRegex(c.clone()),
            Target::PidFile(f) => v1::process_kill::Target::PidFile(f.clone()),
        });
        let f = fields_from_wire(&target, &p.scope)?;
        Ok(RawProcessPause::with_selector(
            f,
            count(p.all),
            duration_from_ms(p.duration_ms),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::super::Fault;
    use super::*;

    fn kill(name: Option<&str>, cmdline: Option<&str>, pid_file: Option<&str>) -> RawProcessKill {
        let target = Fields {
            name: name.map(Into::into),
            cmdline: cmdline.map(Into::into),
            pid_file: pid_file.map(Into::into),
            ..Fields::default()
        };
        RawProcessKill::with_selector(target, Count::All, default_signal())
    }

    #[test]
    fn wire_round_trip_keeps_every_selector() {
        for k in [
            kill(Some("nginx"), None, None),
            kill(None, Some("redis-server .*:6379"), None),
            kill(None, None, Some("/run/x.pid")),
        ] {
            let fault = Fault::ProcessKill(k.clone().try_into().unwrap());
            assert_eq!(Fault::try_from(&fault.to_wire()).unwrap(), fault);
            let pause = Fault::ProcessPause(
                RawProcessPause::with_selector(
                    k.clone().take_selector(),
                    Count::One,
                    Some(Duration::from_millis(1500)),
                )
                .try_into()
                .unwrap(),
            );
            assert_eq!(Fault::try_from(&pause.to_wire()).unwrap(), pause);
        }
    }

    #[test]
    fn needs_exactly_one_selector() {
        assert_eq!(
            ProcessKill::try_from(kill(None, None, None)),
            Err(FaultSpecError::ProcessMatch { found: 0 })
        );
        assert_eq!(
            ProcessKill::try_from(kill(Some("a"), Some("b"), None)),
            Err(FaultSpecError::ProcessMatch { found: 2 })
        );
    }

    #[test]
    fn signals_are_accepted_with_or_without_their_sig_prefix() {
        let k: Fault =
            toml::from_str("kind = \"process_kill\"\nsignal = \"KILL\"\nname = \"x\"").unwrap();
        assert!(matches!(
            k,
            Fault::ProcessKill(ProcessKill {
                signal: KillSignal::Kill,
                ..
            })
        ));
        let raw: RawProcessKill = toml::from_str("signal = \"NOPE\"\nname = \"x\"").unwrap();
        assert_eq!(raw.signal, "NOPE", "kept as written, for the error to name");
        assert_eq!(
            ProcessKill::try_from(raw),
            Err(FaultSpecError::Signal {
                signal: "NOPE".into()
            })
        );
    }

    #[test]
    fn rejects_unknown_signal() {
        let mut k = kill(Some("a"), None, None);
        k.signal = "SIGSTOP".into();
        assert!(matches!(
            ProcessKill::try_from(k),
            Err(FaultSpecError::Signal { .. })
        ));
    }

    #[test]
    fn cmdline_regexes_are_compiled_once_and_errors_fit_on_a_line() {
        let Err(FaultSpecError::Regex(reason)) =
            ProcessKill::try_from(kill(None, Some("redis-server ("), None))
        else {
            panic!("an unclosed group compiled");
        };
        assert_eq!(reason, "unclosed group");
        let k = ProcessKill::try_from(kill(None, Some("^redis .*:6379$"), None)).unwrap();
        let Some(ProcessMatch::Cmdline(pattern)) = &k.selector.target else {
            panic!("{k:?}");
        };
        assert!(pattern.is_match("redis 0.0.0.0:6379"));
        assert_eq!(pattern.as_str(), "^redis .*:6379$");
    }

    fn parse(fields: &str) -> Result<Fault, String> {
        toml::from_str(&format!("kind = \"process_kill\"\n{fields}")).map_err(|e| {
            // The check's own message, without toml's position and quoting of the input.
            e.message().to_string()
        })
    }

    fn selector_of(fields: &str) -> ProcessSelector {
        match parse(fields).unwrap() {
            Fault::ProcessKill(k) => k.selector,
            _ => unreachable!(),
        }
    }

    #[test]
    fn places_and_namespaces_parse_into_a_selector() {
        let s = selector_of("name = \"redis-server\"\nunit = \"redis-server.service\"");
        assert_eq!(s.target, Some(ProcessMatch::Name("redis-server".into())));
        assert_eq!(
            s.place,
            Some(ProcessPlace::Unit("redis-server.service".into()))
        );
        assert!(s.is_scoped());
        // A place alone selects every process in it.
        let s = selector_of("cgroup = \"/system.slice/x.service/\"");
        assert_eq!(s.target, None);
        assert_eq!(
            s.place,
            Some(ProcessPlace::Cgroup("/system.slice/x.service".into()))
        );
        let id = "0123456789abcdef".repeat(4);
        let s = selector_of(&format!("container = \"{id}\""));
        assert_eq!(s.place, Some(ProcessPlace::Container(id)));
        let s = selector_of("name = \"sleep\"\nnetns = \"agent\"\npidns = { same_as_pid = 42 }");
        assert_eq!(s.netns, Some(NamespaceScope::Agent));
        assert_eq!(s.pidns, Some(NamespaceScope::SameAsPid(42)));
        assert!(!selector_of("name = \"x\"").is_scoped());
    }

    #[test]
    fn bad_places_and_namespaces_are_refused_naming_the_field() {
        for (fields, field, says) in [
            (
                "unit = \"redis-server\"",
                "unit",
                "\"redis-server.service\"",
            ),
            ("unit = \"a/b.service\"", "unit", "not a unit name"),
            ("cgroup = \"system.slice\"", "cgroup", "from `/`"),
            ("cgroup = \"/\"", "cgroup", "root cgroup"),
            ("cgroup = \"/a/../b\"", "cgroup", "`..`"),
            (
                "container = \"ab cd\"",
                "container",
                "neither a container id",
            ),
            (
                "name = \"x\"\nnetns = { same_as_pid = 0 }",
                "netns",
                "positive",
            ),
        ] {
            let err = parse(fields).unwrap_err();
            assert!(err.starts_with(&format!("`{field}`")), "{fields}: {err}");
            assert!(err.contains(says), "{fields}: {err}");
        }
        assert_eq!(
            parse("unit = \"a.service\"\ncgroup = \"/a\"").unwrap_err(),
            FaultSpecError::ProcessPlace { found: 2 }.to_string()
        );
        assert!(parse("name = \"x\"\nnetns = \"host\"").is_err());
        assert!(parse("name = \"x\"\nnetns = { pid = 3 }").is_err());
        // Short hex is a machine name, not an id prefix: it must match a machine exactly.
        assert!(!is_container_id("abc123"));
        assert!(is_container_id("abc123abc123"));
        assert!(!is_container_id("ABC123ABC123"));
    }

    #[test]
    fn scopes_survive_the_wire_and_an_empty_namespace_is_refused() {
        for fields in [
            "name = \"redis-server\"\nunit = \"redis-server.service\"\nnetns = \"agent\"",
            "cgroup = \"/gameday-test/a\"\npidns = { same_as_pid = 7 }",
            "cmdline = \"^sleep\"\ncontainer = \"abcdefabcdef\"",
        ] {
            let fault = parse(fields).unwrap();
            assert_eq!(
                Fault::try_from(&fault.to_wire()).unwrap(),
                fault,
                "{fields}"
            );
        }
        let mut wire = parse("name = \"x\"\nnetns = \"agent\"").unwrap().to_wire();
        if let Some(v1::fault_spec::Kind::ProcessKill(k)) = &mut wire.kind {
            k.scope.as_mut().unwrap().netns = Some(v1::NamespaceScope { of: None });
        }
        assert!(matches!(
            Fault::try_from(&wire),
            Err(FaultSpecError::Invalid { field: "netns", .. })
        ));
        // No target and no place on the wire is no selection at all.
        let mut wire = parse("unit = \"a.service\"").unwrap().to_wire();
        if let Some(v1::fault_spec::Kind::ProcessKill(k)) = &mut wire.kind {
            k.scope = None;
        }
        assert_eq!(
            Fault::try_from(&wire),
            Err(FaultSpecError::ProcessMatch { found: 0 })
        );
    }
}
