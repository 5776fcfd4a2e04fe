//! `process_kill`: send a signal to processes chosen by name, command line or pid file, within
//! a unit, cgroup, container or namespace when the fault says so (see `process_scope`).
//!
//! Every selected process is checked against the policy before the first signal goes out, so a
//! refusal leaves nothing half-applied. There is nothing to revert: a killed process is
//! restarted (or not) by whatever supervises it, and that recovery is what the run measures.

use std::time::Instant;

use gameday_proto::fault::Count;
use gameday_proto::v1::Evidence;
use gameday_proto::{KillSignal, ProcessKill, ProcessMatch, ProcessSelector};
use nix::sys::signal::Signal;

use super::process_policy::ProcessPolicy;
use super::process_scope::{self, Scope};
use super::{Applied, FaultError};
use crate::os::{OsError, ProcessInfo, ProcessOs};

/// A kill, journaled like every fault though there is nothing to undo.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Plan {
    /// The kill as requested.
    pub kill: ProcessKill,
}

/// Signals the processes `kill` selects.
pub fn apply(
    kill: &ProcessKill,
    policy: &ProcessPolicy,
    os: &dyn ProcessOs,
) -> Result<Applied, FaultError> {
    let (signal, selection) = check(kill, policy, os)?;
    send(signal, &selection.targets, os)
}

/// Everything [`apply`] decides before the first signal: the signal (allowed by the policy)
/// and the processes it would go to (each allowed), with warnings for the operator. Sends
/// nothing.
pub fn check(
    kill: &ProcessKill,
    policy: &ProcessPolicy,
    os: &dyn ProcessOs,
) -> Result<(Signal, Selection), FaultError> {
    policy.check_signal(kill.signal)?;
    let selection = select(&kill.selector, kill.count, policy, os)?;
    Ok((nix_signal(kill.signal), selection))
}

/// The kernel's number for a signal a kill may send.
fn nix_signal(signal: KillSignal) -> Signal {
    match signal {
        KillSignal::Kill => Signal::SIGKILL,
        KillSignal::Term => Signal::SIGTERM,
        KillSignal::Int => Signal::SIGINT,
        KillSignal::Hup => Signal::SIGHUP,
        KillSignal::Quit => Signal::SIGQUIT,
        KillSignal::Abrt => Signal::SIGABRT,
        KillSignal::Usr1 => Signal::SIGUSR1,
        KillSignal::Usr2 => Signal::SIGUSR2,
    }
}

/// The processes a process fault would act on, and what the operator should know about them.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// The processes, each allowed by the policy.
    pub targets: Vec<ProcessInfo>,
    /// E.g. a bare name that matches processes in several containers or namespaces.
    pub warnings: Vec<String>,
}

/// The processes a selector picks, every one of them allowed by the policy (checked before
/// anything is done to any of them, so a refusal leaves nothing half-applied).
pub fn select(
    selector: &ProcessSelector,
    count: Count,
    policy: &ProcessPolicy,
    os: &dyn ProcessOs,
) -> Result<Selection, FaultError> {
    let (own_pid, parent_pid) = (os.own_pid(), os.parent_pid());
    let scope = Scope::resolve(selector, os)?;
    let mut warnings = Vec::new();
    let targets = match &selector.target {
        // A pid file names one process on purpose: if it is protected, say so rather than skip.
        Some(ProcessMatch::PidFile(path)) => {
            let p = pid_file_target(path, os)?;
            if scope.is_some() && !scope.holds(&process_scope::locate(p.pid, os)?) {
                return Err(FaultError::PidOutOfScope {
                    path: path.clone(),
                    pid: p.pid,
                    name: p.name,
                    scope: scope.describe(),
                });
            }
            vec![p]
        }
        target => {
            let mut matched = scan(target.as_ref(), os)?;
            if scope.is_some() {
                let mut inside = Vec::new();
                for p in matched {
                    if scope.holds(&process_scope::locate(p.pid, os)?) {
                        inside.push(p);
                    }
                }
                matched = inside;
            }
            // A pattern can easily also match pid 1, the agent or its parent (a cmdline regex
            // that matches the shell that started everything); those are never candidates.
            let (protected, candidates): (Vec<_>, Vec<_>) = matched.into_iter().partition(|p| {
                matches!(
                    policy.check_process(p, own_pid, parent_pid),
                    Err(r) if r.is_protected()
                )
            });
            for p in &protected {
                tracing::debug!(pid = p.pid, name = %p.name, "skipping a process policy never signals");
            }
            if candidates.is_empty() {
                return Err(no_match(selector, &scope, &protected, own_pid));
            }
            if !scope.is_some() {
                let located = candidates
                    .iter()
                    .map(|p| Ok((p.clone(), process_scope::locate(p.pid, os)?)))
                    .collect::<Result<Vec<_>, FaultError>>()?;
                warnings.extend(process_scope::spread_warning(
                    &describe_target(selector.target.as_ref()),
                    &located,
                ));
            }
            match count {
                Count::All => candidates,
                Count::One => candidates
                    .into_iter()
                    .min_by_key(|p| (p.start_ticks, p.pid))
                    .into_iter()
                    .collect(),
            }
        }
    };
    let agent_at = if policy.has_scopes() {
        Some(process_scope::agent(os)?)
    } else {
        None
    };
    for p in &targets {
        policy.check_process(p, own_pid, parent_pid)?;
        if let Some(agent_at) = &agent_at {
            policy.check_scopes(p, &process_scope::locate(p.pid, os)?, agent_at)?;
        }
    }
    Ok(Selection { targets, warnings })
}

/// Processes matching a name or command-line selector; every process when there is none (the
/// place then selects).
fn scan(target: Option<&ProcessMatch>, os: &dyn ProcessOs) -> Result<Vec<ProcessInfo>, FaultError> {
    let all = os.processes().map_err(FaultError::Process)?;
    Ok(match target {
        Some(ProcessMatch::Name(name)) => all.into_iter().filter(|p| &p.name == name).collect(),
        Some(ProcessMatch::Cmdline(pattern)) => all
            .into_iter()
            .filter(|p| pattern.is_match(&p.cmdline))
            .collect(),
        Some(ProcessMatch::PidFile(_)) => Vec::new(),
        None => all,
    })
}

/// The process a pid file names; it must be running.
fn pid_file_target(path: &std::path::Path, os: &dyn ProcessOs) -> Result<ProcessInfo, FaultError> {
    let pid = os.read_pid_file(path).map_err(|e| match e {
        // A missing or garbled pid file is a mistake in the request, not a host failure.
        OsError::Malformed { path, reason } => FaultError::MalformedPidFile { path, reason },
        e if e.is_not_found() => FaultError::NoSuchPidFile {
            path: path.to_path_buf(),
        },
        e => FaultError::Process(e),
    })?;
    os.process(pid)
        .map_err(FaultError::Process)?
        .ok_or_else(|| FaultError::PidNotRunning {
            path: path.to_path_buf(),
            pid,
        })
}

/// Signals every target in turn. A target that exited since the scan (`ESRCH`) is noted and
/// skipped; any other failure stops at once and says what was already signalled.
fn send(
    signal: Signal,
    targets: &[ProcessInfo],
    os: &dyn ProcessOs,
) -> Result<Applied, FaultError> {
    // Between the scan and kill(2) a pid could in theory be reused by a new process; with
    // pid_max in the millions that needs a full wrap-around in microseconds, so it is accepted.
    let mut signalled = Vec::new();
    let mut vanished = Vec::new();
    let mut effect_at = None;
    for p in targets {
        // The signal takes effect inside kill(2): the moment before the call is a bound the
        // effect can never precede, whereas a stamp after it can be late by however long the
        // thread is preempted on its way out (milliseconds on a busy host), which would make
        // the first refused probe look older than the fault.
        let before = Instant::now();
        match os.signal(p.pid, signal) {
            Ok(()) => {
                effect_at.get_or_insert(before);
                signalled.push(p);
            }
            Err(OsError::NoSuchProcess { .. }) => vanished.push(p),
            Err(e) if signalled.is_empty() => return Err(FaultError::Process(e)),
            Err(source) => {
                return Err(FaultError::PartlySignalled {
                    source,
                    signal: signal.as_str(),
                    signalled: list(&signalled),
                })
            }
        }
    }
    let Some(effect_at) = effect_at else {
        return Err(FaultError::Invalid(format!(
            "every matching process exited before it could be signalled: {}",
            list(&vanished)
        )));
    };
    let mut summary = format!(
        "sent {} to {}: {}",
        signal.as_str(),
        processes(signalled.len()),
        list(&signalled)
    );
    if !vanished.is_empty() {
        summary.push_str(&format!(
            "; {} exited before it could be signalled: {}",
            processes(vanished.len()),
            list(&vanished)
        ));
    }
    // `live` logs the one line for the host owner.
    tracing::debug!(%summary, "process_kill applied");
    Ok(Applied {
        effect_at,
        evidence: Evidence {
            pids: signalled.iter().map(|p| p.pid).collect(),
            summary,
            ..Evidence::default()
        },
    })
}

/// A selector's target in words: `name "redis-server"`.
pub(super) fn describe_target(target: Option<&ProcessMatch>) -> String {
    match target {
        Some(ProcessMatch::Name(name)) => format!("name {name:?}"),
        Some(ProcessMatch::Cmdline(re)) => format!("cmdline {:?}", re.as_str()),
        Some(ProcessMatch::PidFile(path)) => format!("pid_file {:?}", path.display().to_string()),
        None => "any process".to_string(),
    }
}

/// Nothing the policy would signal matches: says what was looked for, where, and which
/// matching processes were skipped as protected.
fn no_match(
    selector: &ProcessSelector,
    scope: &Scope,
    protected: &[ProcessInfo],
    own_pid: i32,
) -> FaultError {
    FaultError::NoMatchingProcess {
        target: selector.target.clone(),
        scope: scope.is_some().then(|| scope.describe()),
        skipped: protected
            .iter()
            .map(|p| match p.pid {
                1 => "pid 1 (init)".to_string(),
                pid if pid == own_pid => format!("{pid} (the agent itself)"),
                pid => format!("{pid} (the agent's parent)"),
            })
            .collect(),
    }
}

fn processes(n: usize) -> String {
    if n == 1 {
        "1 process".to_string()
    } else {
        format!("{n} processes")
    }
}

pub(super) fn list(ps: &[&ProcessInfo]) -> String {
    ps.iter()
        .map(|p| format!("{} ({})", p.pid, p.name))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    use gameday_proto::Fault;
    use nix::errno::Errno;

    use super::*;
    use crate::os::Namespace;
    use crate::policy::{Policy, PolicyConfig};

    const OWN: i32 = 500;
    const PARENT: i32 = 499;

    /// A process table in memory that records every signal asked of it.
    #[derive(Default)]
    struct FakeOs {
        procs: Vec<ProcessInfo>,
        pid_files: HashMap<PathBuf, i32>,
        /// Pids that exit between the scan and the signal.
        vanish: HashSet<i32>,
        /// Pids the kernel refuses to signal.
        forbidden: HashSet<i32>,
        /// Each process's cgroup path.
        cgroups: HashMap<i32, String>,
        /// Each process's (network, pid) namespace inodes.
        namespaces: HashMap<i32, (u64, u64)>,
        sent: Mutex<Vec<(i32, Signal)>>,
    }

    impl FakeOs {
        fn with(procs: &[(i32, &str, &str, u64)]) -> Self {
            FakeOs {
                procs: procs
                    .iter()
                    .map(|&(pid, name, cmdline, start_ticks)| ProcessInfo {
                        pid,
                        name: name.into(),
                        cmdline: cmdline.into(),
                        start_ticks,
                    })
                    .collect(),
                ..FakeOs::default()
            }
        }

        fn sent(&self) -> Vec<(i32, Signal)> {
            self.sent.lock().unwrap().clone()
        }
    }

    impl ProcessOs for FakeOs {
        fn processes(&self) -> Result<Vec<ProcessInfo>, OsError> {
            Ok(self.procs.clone())
        }
        fn process(&self, pid: i32) -> Result<Option<ProcessInfo>, OsError> {
            Ok(self.procs.iter().find(|p| p.pid == pid).cloned())
        }
        fn read_pid_file(&self, path: &Path) -> Result<i32, OsError> {
            self.pid_files
                .get(path)
                .copied()
                .ok_or_else(|| OsError::Read {
                    path: path.to_path_buf(),
                    source: std::io::ErrorKind::NotFound.into(),
                })
        }
        fn signal(&self, pid: i32, signal: Signal) -> Result<(), OsError> {
            if self.vanish.contains(&pid) {
                return Err(OsError::NoSuchProcess { pid });
            }
            if self.forbidden.contains(&pid) {
                return Err(OsError::Signal {
                    pid,
                    signal,
                    errno: Errno::EPERM,
                });
            }
            self.sent.lock().unwrap().push((pid, signal));
            Ok(())
        }
        fn cgroup(&self, pid: i32) -> Result<Option<String>, OsError> {
            Ok(self.cgroups.get(&pid).cloned())
        }
        fn namespace(&self, pid: i32, ns: Namespace) -> Result<Option<u64>, OsError> {
            Ok(self.namespaces.get(&pid).map(|&(net, pid_ns)| match ns {
                Namespace::Net => net,
                Namespace::Pid => pid_ns,
            }))
        }
        fn own_pid(&self) -> i32 {
            OWN
        }
        fn parent_pid(&self) -> i32 {
            PARENT
        }
    }

    /// A host with init, the agent, its parent shell and a demo service with two processes.
    fn host() -> FakeOs {
        FakeOs::with(&[
            (1, "systemd", "/sbin/init demo", 1),
            (PARENT, "bash", "bash -c gameday-agent --demo", 40),
            (OWN, "gameday-agent", "gameday-agent --demo", 50),
            (1240, "demo", "demo --port 8080", 90),
            (1234, "demo", "demo --port 8080", 80),
            (1300, "nginx", "nginx: master process /usr/sbin/nginx", 70),
        ])
    }

    fn kill(toml_fields: &str) -> Fault {
        toml::from_str(&format!("kind = \"process_kill\"\n{toml_fields}")).unwrap()
    }

    fn policy(toml_text: &str) -> Policy {
        Policy::from_config(&toml::from_str::<PolicyConfig>(toml_text).unwrap()).unwrap()
    }

    /// As the agent does: the kind through the policy, then the kill.
    fn via_policy(fault: &Fault, policy: &Policy, os: &FakeOs) -> Result<Applied, FaultError> {
        policy.check_kind(fault.kind())?;
        let Fault::ProcessKill(kill) = fault else {
            panic!("not a kill: {fault:?}")
        };
        super::apply(kill, &policy.process, os)
    }

    fn apply(fault: &Fault, os: &FakeOs) -> Result<Applied, FaultError> {
        via_policy(fault, &Policy::permissive(), os)
    }

    #[test]
    fn name_selects_every_exact_match() {
        let os = host();
        let applied = apply(&kill(r#"name = "demo""#), &os).unwrap();
        assert_eq!(
            os.sent(),
            vec![(1240, Signal::SIGKILL), (1234, Signal::SIGKILL)]
        );
        assert_eq!(applied.evidence.pids, vec![1240, 1234]);
        assert_eq!(
            applied.evidence.summary,
            "sent SIGKILL to 2 processes: 1240 (demo), 1234 (demo)"
        );
        assert!(applied.effect_at <= Instant::now());
    }

    #[test]
    fn cmdline_selects_by_regex_and_skips_protected_processes() {
        let os = host();
        // Matches init, the parent shell and the agent too; only the service may be hit.
        let applied = apply(&kill(r#"cmdline = "demo""#), &os).unwrap();
        assert_eq!(applied.evidence.pids, vec![1240, 1234]);
        assert!(os
            .sent()
            .iter()
            .all(|(pid, _)| ![1, OWN, PARENT].contains(pid)));
    }

    #[test]
    fn only_protected_matches_is_no_match() {
        let os = host();
        let err = apply(&kill(r#"name = "gameday-agent""#), &os).unwrap_err();
        assert_eq!(err.kind(), gameday_proto::v1::FailureKind::Invalid);
        assert_eq!(
            err.to_string(),
            "no process matches name \"gameday-agent\" apart from processes policy never \
             signals: 500 (the agent itself)"
        );
        let err = apply(&kill(r#"cmdline = "^(/sbin/init|bash)""#), &os).unwrap_err();
        assert!(err.to_string().contains("pid 1 (init)"), "{err}");
        assert!(
            err.to_string().contains("499 (the agent's parent)"),
            "{err}"
        );
        assert!(os.sent().is_empty());
    }

    #[test]
    fn count_one_picks_the_oldest() {
        let os = host();
        let applied = apply(&kill("name = \"demo\"\ncount = \"one\""), &os).unwrap();
        assert_eq!(os.sent(), vec![(1234, Signal::SIGKILL)]);
        assert_eq!(
            applied.evidence.summary,
            "sent SIGKILL to 1 process: 1234 (demo)"
        );

        // Equal start times: the smaller pid wins.
        let twins = FakeOs::with(&[(20, "w", "w", 5), (10, "w", "w", 5)]);
        apply(&kill("name = \"w\"\ncount = \"one\""), &twins).unwrap();
        assert_eq!(twins.sent(), vec![(10, Signal::SIGKILL)]);
    }

    #[test]
    fn pid_file_signals_the_named_process_with_the_requested_signal() {
        let mut os = host();
        os.pid_files.insert("/run/demo.pid".into(), 1234);
        let fault = kill("pid_file = \"/run/demo.pid\"\nsignal = \"SIGTERM\"");
        let applied = apply(&fault, &os).unwrap();
        assert_eq!(os.sent(), vec![(1234, Signal::SIGTERM)]);
        assert_eq!(
            applied.evidence.summary,
            "sent SIGTERM to 1 process: 1234 (demo)"
        );
    }

    #[test]
    fn pid_file_naming_a_protected_process_is_refused() {
        let mut os = host();
        for (file, pid) in [
            ("/run/init.pid", 1),
            ("/run/me.pid", OWN),
            ("/run/up.pid", PARENT),
        ] {
            os.pid_files.insert(file.into(), pid);
            let err = apply(&kill(&format!("pid_file = {file:?}")), &os).unwrap_err();
            assert_eq!(err.kind(), gameday_proto::v1::FailureKind::Policy, "{err}");
        }
        assert!(os.sent().is_empty());
    }

    #[test]
    fn pid_file_errors_are_invalid_requests() {
        let mut os = host();
        let missing = apply(&kill("pid_file = \"/run/none.pid\""), &os).unwrap_err();
        assert_eq!(missing.kind(), gameday_proto::v1::FailureKind::Invalid);
        assert_eq!(missing.to_string(), "pid file /run/none.pid does not exist");
        os.pid_files.insert("/run/stale.pid".into(), 4242);
        let stale = apply(&kill("pid_file = \"/run/stale.pid\""), &os).unwrap_err();
        assert_eq!(
            stale.to_string(),
            "pid file /run/stale.pid names pid 4242, which is not running"
        );
    }

    #[test]
    fn a_deny_rule_refuses_the_whole_fault_before_any_signal() {
        let os = host();
        let policy = policy("[process_kill]\ndeny = [\"^nginx\"]");
        // Matches the two demo processes and nginx, which is denied.
        let fault = kill(r#"cmdline = "^(demo|nginx)""#);
        let err = via_policy(&fault, &policy, &os).unwrap_err();
        assert_eq!(err.kind(), gameday_proto::v1::FailureKind::Policy);
        assert_eq!(
            err.to_string(),
            "process 1300 (nginx) is denied by policy rule `^nginx`"
        );
        assert!(os.sent().is_empty());
    }

    #[test]
    fn kinds_and_signals_outside_the_policy_are_refused() {
        let os = host();
        let no_kinds = policy("allow_faults = []");
        let err = via_policy(&kill(r#"name = "demo""#), &no_kinds, &os).unwrap_err();
        assert_eq!(
            err.to_string(),
            "fault kind process_kill is not allowed on this host (allow_faults = [])"
        );
        let term_only = policy("[process_kill]\nsignals = [\"SIGTERM\"]");
        let err = via_policy(&kill(r#"name = "demo""#), &term_only, &os).unwrap_err();
        assert_eq!(err.kind(), gameday_proto::v1::FailureKind::Policy);
        assert!(os.sent().is_empty());
    }

    #[test]
    fn processes_that_vanish_are_noted_and_skipped() {
        let mut os = host();
        os.vanish.insert(1240);
        let applied = apply(&kill(r#"name = "demo""#), &os).unwrap();
        assert_eq!(applied.evidence.pids, vec![1234]);
        assert_eq!(
            applied.evidence.summary,
            "sent SIGKILL to 1 process: 1234 (demo); 1 process exited before it could be \
             signalled: 1240 (demo)"
        );
        os.vanish.insert(1234);
        let err = apply(&kill(r#"name = "demo""#), &os).unwrap_err();
        assert_eq!(err.kind(), gameday_proto::v1::FailureKind::Invalid);
        assert!(
            err.to_string().starts_with("every matching process exited"),
            "{err}"
        );
    }

    #[test]
    fn kernel_refusals_are_system_errors_that_say_what_was_done() {
        let mut os = host();
        os.forbidden.insert(1234);
        let err = apply(&kill(r#"name = "demo""#), &os).unwrap_err();
        assert_eq!(err.kind(), gameday_proto::v1::FailureKind::System);
        assert_eq!(
            err.to_string(),
            "cannot send SIGKILL to pid 1234: EPERM: Operation not permitted \
             (after sending SIGKILL to 1240 (demo))"
        );
    }

    #[test]
    fn no_match_and_bad_regex_are_invalid() {
        let os = host();
        let err = apply(&kill(r#"name = "x""#), &os).unwrap_err();
        assert_eq!(err.to_string(), "no process matches name \"x\"");
        // A bad regex is refused where the spec is read, once: it never becomes a kill.
        let err = toml::from_str::<Fault>("kind = \"process_kill\"\ncmdline = \"(unclosed\"")
            .unwrap_err();
        assert!(
            err.message().starts_with("invalid `cmdline` regex"),
            "{err}"
        );
        assert!(os.sent().is_empty());
    }

    #[test]
    fn check_decides_like_apply_and_sends_nothing() {
        let os = host();
        let deny = policy("[process_kill]\ndeny = [\"^nginx\"]");
        let Fault::ProcessKill(forbidden) = kill(r#"cmdline = "^(demo|nginx)""#) else {
            unreachable!()
        };
        let err = super::check(&forbidden, &deny.process, &os).unwrap_err();
        assert_eq!(
            err.to_string(),
            "process 1300 (nginx) is denied by policy rule `^nginx`"
        );
        let Fault::ProcessKill(nothing) = kill(r#"cmdline = "^no such thing$""#) else {
            unreachable!()
        };
        let err = super::check(&nothing, &ProcessPolicy::permissive(), &os).unwrap_err();
        assert_eq!(err.kind(), gameday_proto::v1::FailureKind::Invalid);
        assert!(err.to_string().starts_with("no process matches"), "{err}");
        let Fault::ProcessKill(demo) = kill(r#"name = "demo""#) else {
            unreachable!()
        };
        let (signal, selection) = super::check(&demo, &ProcessPolicy::permissive(), &os).unwrap();
        assert_eq!(signal, Signal::SIGKILL);
        assert_eq!(selection.targets.len(), 2);
        assert!(os.sent().is_empty(), "a check signals nothing");
    }

    const ID: &str = "3f2a9c1b7d8e4f6a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6";
    const HOST_NET: u64 = 4026531840;
    const HOST_PID: u64 = 4026531836;

    /// A host running redis-server three times: as a systemd unit, in a docker container (own
    /// network and pid namespaces), and in a network namespace of its own; plus the agent.
    fn containers() -> FakeOs {
        let mut os = FakeOs::with(&[
            (1, "systemd", "/sbin/init", 1),
            (PARENT, "systemd", "/lib/systemd/systemd --user", 2),
            (OWN, "gameday-agent", "gameday-agent", 3),
            (
                100,
                "redis-server",
                "/usr/bin/redis-server 127.0.0.1:6379",
                10,
            ),
            (101, "redis-check", "/usr/bin/redis-check", 11),
            (200, "redis-server", "redis-server *:6379", 20),
            (300, "redis-server", "redis-server *:6379", 30),
        ]);
        let docker = format!("/system.slice/docker-{ID}.scope");
        for (pid, cgroup, net, pidns) in [
            (1, "/init.scope", HOST_NET, HOST_PID),
            (
                PARENT,
                "/system.slice/gameday-agent.service",
                HOST_NET,
                HOST_PID,
            ),
            (
                OWN,
                "/system.slice/gameday-agent.service",
                HOST_NET,
                HOST_PID,
            ),
            (
                100,
                "/system.slice/redis-server.service",
                HOST_NET,
                HOST_PID,
            ),
            (
                101,
                "/system.slice/redis-server.service/check",
                HOST_NET,
                HOST_PID,
            ),
            (200, docker.as_str(), 4026532500, 4026532501),
            (300, "/system.slice/lab.service", 4026532600, HOST_PID),
        ] {
            os.cgroups.insert(pid, cgroup.to_string());
            os.namespaces.insert(pid, (net, pidns));
        }
        os
    }

    fn pids(fault: &str, os: &FakeOs) -> Result<Vec<i32>, FaultError> {
        apply(&kill(fault), os).map(|a| a.evidence.pids)
    }

    #[test]
    fn a_unit_selects_its_cgroups_processes_only() {
        let os = containers();
        assert_eq!(
            pids(
                "name = \"redis-server\"\nunit = \"redis-server.service\"",
                &os
            )
            .unwrap(),
            vec![100]
        );
        // A unit alone: every process in its cgroup and below it.
        assert_eq!(
            pids("unit = \"redis-server.service\"", &os).unwrap(),
            vec![100, 101]
        );
        // The agent's own unit: the agent (and its parent) are skipped, so nothing is left.
        let err = pids("unit = \"gameday-agent.service\"", &os).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no process is in unit gameday-agent.service apart from processes policy never \
             signals: 499 (the agent's parent), 500 (the agent itself)"
        );
        let err = pids("name = \"redis-server\"\nunit = \"nope.service\"", &os).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no process matches name \"redis-server\" in unit nope.service"
        );
    }

    #[test]
    fn a_cgroup_selects_it_and_below() {
        let os = containers();
        assert_eq!(
            pids("cgroup = \"/system.slice/redis-server.service/check\"", &os).unwrap(),
            vec![101]
        );
        assert_eq!(
            pids("name = \"redis-server\"\ncgroup = \"/system.slice\"", &os).unwrap(),
            vec![100, 200, 300]
        );
    }

    #[test]
    fn a_container_is_found_by_id_or_prefix_in_the_cgroup() {
        let os = containers();
        assert_eq!(
            pids(&format!("container = \"{ID}\""), &os).unwrap(),
            vec![200]
        );
        assert_eq!(
            pids(
                &format!("name = \"redis-server\"\ncontainer = \"{}\"", &ID[..12]),
                &os
            )
            .unwrap(),
            vec![200]
        );
        assert!(pids("container = \"0123456789abcdef\"", &os).is_err());
    }

    #[test]
    fn namespaces_scope_by_the_agents_or_another_processs() {
        let os = containers();
        assert_eq!(
            pids("name = \"redis-server\"\nnetns = \"agent\"", &os).unwrap(),
            vec![100]
        );
        assert_eq!(
            pids(
                "name = \"redis-server\"\nnetns = { same_as_pid = 300 }",
                &os
            )
            .unwrap(),
            vec![300]
        );
        assert_eq!(
            pids("name = \"redis-server\"\npidns = \"agent\"", &os).unwrap(),
            vec![100, 300]
        );
        assert_eq!(
            pids("name = \"redis-server\"\npidns = { same_as_pid = 200 }\nnetns = { same_as_pid = 200 }", &os)
                .unwrap(),
            vec![200]
        );
        let err = pids(
            "name = \"redis-server\"\nnetns = { same_as_pid = 9999 }",
            &os,
        )
        .unwrap_err();
        assert_eq!(err.kind(), gameday_proto::v1::FailureKind::Invalid);
        assert!(
            err.to_string().starts_with("netns: cannot read pid 9999's"),
            "{err}"
        );
    }

    #[test]
    fn a_pid_file_outside_the_scope_is_refused() {
        let mut os = containers();
        os.pid_files.insert("/run/redis.pid".into(), 200);
        let err = pids("pid_file = \"/run/redis.pid\"\nnetns = \"agent\"", &os).unwrap_err();
        assert_eq!(err.kind(), gameday_proto::v1::FailureKind::Invalid);
        assert!(
            err.to_string().starts_with(
                "pid file /run/redis.pid names pid 200 (redis-server), which is not in the \
                 agent's net namespace"
            ),
            "{err}"
        );
        assert!(os.sent().is_empty());
        assert_eq!(
            pids(
                &format!("pid_file = \"/run/redis.pid\"\ncontainer = \"{ID}\""),
                &os
            )
            .unwrap(),
            vec![200]
        );
    }

    #[test]
    fn a_bare_name_across_containers_is_checked_with_a_warning() {
        let os = containers();
        let Fault::ProcessKill(bare) = kill("name = \"redis-server\"") else {
            unreachable!()
        };
        let (_, selection) = super::check(&bare, &ProcessPolicy::permissive(), &os).unwrap();
        assert_eq!(
            selection.targets.len(),
            3,
            "default behaviour stays as it was"
        );
        assert_eq!(selection.warnings.len(), 1, "{:?}", selection.warnings);
        let warning = &selection.warnings[0];
        assert!(
            warning.starts_with("name \"redis-server\" matches processes in 3 cgroups ("),
            "{warning}"
        );
        assert!(warning.contains("3 network namespaces"), "{warning}");
        assert!(warning.contains("2 pid namespaces"), "{warning}");
        let Fault::ProcessKill(scoped) = kill("name = \"redis-server\"\nnetns = \"agent\"") else {
            unreachable!()
        };
        let (_, selection) = super::check(&scoped, &ProcessPolicy::permissive(), &os).unwrap();
        assert!(selection.warnings.is_empty());
        assert!(os.sent().is_empty());
    }

    #[test]
    fn policy_scopes_refuse_a_fault_that_reaches_outside_them() {
        let os = containers();
        let confined =
            policy("[process_kill]\nscopes = [\"unit:redis-server.service\", \"netns:agent\"]");
        let err = via_policy(&kill("name = \"redis-server\""), &confined, &os).unwrap_err();
        assert_eq!(err.kind(), gameday_proto::v1::FailureKind::Policy);
        assert!(
            err.to_string()
                .starts_with("process 200 (redis-server) is outside every scope"),
            "{err}"
        );
        assert!(os.sent().is_empty(), "refused whole, before any signal");
        let applied = via_policy(
            &kill("name = \"redis-server\"\nunit = \"redis-server.service\""),
            &confined,
            &os,
        )
        .unwrap();
        assert_eq!(applied.evidence.pids, vec![100]);
    }
}
