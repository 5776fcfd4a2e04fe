//! [`FaultError`]: why a fault could not be applied, reverted or checked, as a sentence for the
//! operator and, for failures of the host, with the OS error that caused it.

use std::path::PathBuf;

use gameday_proto::v1::FailureKind;
use gameday_proto::{FaultSpecError, ProcessMatch};

use super::process_kill::describe_target;
use super::process_policy::ProcessRefusal;
use crate::journal::JournalError;
use crate::os::disk::DiskError;
use crate::os::dns::DnsOsError;
use crate::os::nft::NftError;
use crate::os::OsError;
use crate::policy::PolicyRefusal;

/// Why a fault could not be applied or reverted. Every message is a full sentence meant for
/// the operator; [`FaultError::kind`] says which side is to blame.
///
/// A variant caused by another error keeps it as its [`source`](std::error::Error::source)
/// and, like the OS layer's errors, also ends its own message with it ("cannot install the
/// partition: nft failed while ..."): `to_string()` is what the controller is sent, whole.
#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    // --- Policy: the host's owner does not allow it.
    /// The agent's policy refuses the fault's kind, its signal or one of its processes.
    #[error(transparent)]
    Refused(#[from] PolicyRefusal),
    /// The fault asks for more than its kind's policy table allows (a path outside
    /// `disk_fill.paths`, a partition longer than `max_duration`...); the sentence names the
    /// setting and its value.
    #[error("{0}")]
    PolicyLimit(String),

    // --- Invalid: the request names nothing that exists, or cannot be done as asked.
    /// No process (that policy would ever signal) matches the selector.
    #[error("{}", no_match(target.as_ref(), scope.as_deref(), skipped))]
    NoMatchingProcess {
        /// What the selector matches on; `None` when only a place chooses.
        target: Option<ProcessMatch>,
        /// The scope it had to be in, described.
        scope: Option<String>,
        /// Matching processes policy never signals (pid 1, the agent, its parent), described.
        skipped: Vec<String>,
    },
    /// The selector's pid file is not there.
    #[error("pid file {} does not exist", path.display())]
    NoSuchPidFile {
        /// The pid file.
        path: PathBuf,
    },
    /// The selector's pid file holds no pid.
    #[error("unexpected content in {}: {reason}", path.display())]
    MalformedPidFile {
        /// The pid file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The selector's pid file names a process that is not running.
    #[error("pid file {} names pid {pid}, which is not running", path.display())]
    PidNotRunning {
        /// The pid file.
        path: PathBuf,
        /// The pid it holds.
        pid: i32,
    },
    /// The selector's pid file names a process outside the selector's scope.
    #[error("pid file {} names pid {pid} ({name}), which is not in {scope}", path.display())]
    PidOutOfScope {
        /// The pid file.
        path: PathBuf,
        /// The pid it holds.
        pid: i32,
        /// That process's name.
        name: String,
        /// The scope, described.
        scope: String,
    },
    /// A fault with this id is live already: applying it twice would lose the first revert.
    #[error("fault {fault_id} is already applied")]
    AlreadyApplied {
        /// The fault's id.
        fault_id: String,
    },
    /// The fault spec the controller sent is not well formed.
    #[error("{0}")]
    Spec(#[from] FaultSpecError),
    /// Any other request that cannot be carried out here as asked; the sentence says why.
    #[error("{0}")]
    Invalid(String),

    // --- System: the host failed, or refused what the policy allows.
    /// A process operation failed: reading `/proc`, a pid file, or sending a signal.
    #[error("{0}")]
    Process(#[source] OsError),
    /// A signal failed after others had already gone out.
    #[error("{source} (after sending {signal} to {signalled})")]
    PartlySignalled {
        /// Why the signal failed.
        source: OsError,
        /// The signal (`SIGKILL`...).
        signal: &'static str,
        /// The processes that did get it, described.
        signalled: String,
    },
    /// An nftables operation failed.
    #[error("{doing}: {source}")]
    Firewall {
        /// What the agent was doing, naming the table when there is one.
        doing: String,
        /// What went wrong.
        source: NftError,
    },
    /// A filesystem operation of a disk fill failed.
    #[error("{0}")]
    Disk(#[source] DiskError),
    /// The hosts file or the embedded resolver's sockets failed.
    #[error("{doing}: {source}")]
    Dns {
        /// What the agent was doing.
        doing: &'static str,
        /// What went wrong.
        source: DnsOsError,
    },
    /// The journal, which lets a restarted agent revert, could not be written.
    #[error("{doing}: {source}")]
    Journal {
        /// What the agent was doing, and what that means for the fault.
        doing: &'static str,
        /// What went wrong.
        source: JournalError,
    },
    /// A partition without the controller's address could cut the agent off from it.
    #[error(
        "the agent does not know its controller's address, so it cannot exempt its control \
         connection; refusing to partition"
    )]
    ControllerUnknown,
    /// A disk fill plan (perhaps read back from the journal) names a file that is not a fill
    /// file inside its directory: nothing else is ever touched.
    #[error(
        "refusing to touch {}: not a disk_fill file inside {} (corrupt plan?)",
        file.display(),
        dir.display()
    )]
    CorruptPlan {
        /// The file the plan names.
        file: PathBuf,
        /// The directory it names.
        dir: PathBuf,
    },
    /// The agent is stopping and applies nothing more.
    #[error("the agent is shutting down")]
    ShuttingDown,

    // --- Unsupported: this agent cannot do this kind of fault here.
    /// Resolver-mode DNS poisoning redirects port 53 with nftables, which cannot be used.
    #[error("resolver mode needs nftables on this host: {0}")]
    ResolverNeedsNftables(#[source] NftError),
    /// Hosts-mode DNS poisoning cannot write the hosts file.
    #[error("hosts mode cannot write the hosts file: {0}")]
    HostsFileNotWritable(#[source] DnsOsError),
}

impl FaultError {
    /// The failure kind reported to the controller.
    pub fn kind(&self) -> FailureKind {
        use FaultError::*;
        match self {
            Refused(_) | PolicyLimit(_) => FailureKind::Policy,
            NoMatchingProcess { .. }
            | NoSuchPidFile { .. }
            | MalformedPidFile { .. }
            | PidNotRunning { .. }
            | PidOutOfScope { .. }
            | AlreadyApplied { .. }
            | Spec(_)
            | Invalid(_) => FailureKind::Invalid,
            Process(_)
            | PartlySignalled { .. }
            | Firewall { .. }
            | Disk(_)
            | Dns { .. }
            | Journal { .. }
            | ControllerUnknown
            | CorruptPlan { .. }
            | ShuttingDown => FailureKind::System,
            ResolverNeedsNftables(_) | HostsFileNotWritable(_) => FailureKind::Unsupported,
        }
    }

    /// An nftables failure while doing `doing`.
    pub fn firewall(doing: impl Into<String>) -> impl FnOnce(NftError) -> FaultError {
        let doing = doing.into();
        move |source| FaultError::Firewall { doing, source }
    }

    /// A hosts file or resolver failure while doing `doing`.
    pub fn dns(doing: &'static str) -> impl FnOnce(DnsOsError) -> FaultError {
        move |source| FaultError::Dns { doing, source }
    }
}

impl From<ProcessRefusal> for FaultError {
    fn from(refusal: ProcessRefusal) -> Self {
        FaultError::Refused(refusal.into())
    }
}

/// "no process matches name "redis" in ... apart from processes policy never signals: ...".
fn no_match(target: Option<&ProcessMatch>, scope: Option<&str>, skipped: &[String]) -> String {
    let mut message = match (target, scope) {
        (None, Some(scope)) => format!("no process is in {scope}"),
        (target, Some(scope)) => {
            format!("no process matches {} in {scope}", describe_target(target))
        }
        (target, None) => format!("no process matches {}", describe_target(target)),
    };
    if !skipped.is_empty() {
        message.push_str(" apart from processes policy never signals: ");
        message.push_str(&skipped.join(", "));
    }
    // comm is cut to 15 bytes by the kernel, so a longer name can never match.
    if let Some(ProcessMatch::Name(name)) = target {
        if name.len() > 15 {
            message.push_str(
                " (the kernel cuts process names to 15 bytes; use `cmdline` to match longer ones)",
            );
        }
    }
    message
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;
    use std::io;

    use super::*;

    #[test]
    fn errors_map_to_wire_failure_kinds() {
        assert_eq!(
            FaultError::PolicyLimit("x".into()).kind(),
            FailureKind::Policy
        );
        assert_eq!(FaultError::Invalid("x".into()).kind(), FailureKind::Invalid);
        assert_eq!(
            FaultError::NoSuchPidFile {
                path: "/run/x.pid".into()
            }
            .kind(),
            FailureKind::Invalid
        );
        assert_eq!(FaultError::ShuttingDown.kind(), FailureKind::System);
        assert_eq!(
            FaultError::ShuttingDown.to_string(),
            "the agent is shutting down"
        );
        let nft = NftError::NotFound {
            program: "nft".into(),
        };
        assert_eq!(
            FaultError::ResolverNeedsNftables(nft).kind(),
            FailureKind::Unsupported
        );
    }

    #[test]
    fn a_system_error_keeps_the_os_error_as_its_source_and_says_it() {
        let disk = DiskError::new(
            "write",
            "/x/fill".as_ref(),
            io::Error::from_raw_os_error(28),
        );
        let err = FaultError::Disk(disk);
        assert_eq!(err.kind(), FailureKind::System);
        assert!(
            err.to_string()
                .starts_with("write /x/fill: No space left on device"),
            "{err}"
        );
        let source = err.source().expect("the disk error is the source");
        let disk = source.downcast_ref::<DiskError>().expect("typed");
        assert_eq!(disk.path, PathBuf::from("/x/fill"));
        assert!(disk.is_no_space());
        // And down to the kernel's answer.
        let io = source.source().expect("the io error under it");
        assert_eq!(
            io.downcast_ref::<io::Error>()
                .and_then(io::Error::raw_os_error),
            Some(28)
        );

        let err = FaultError::firewall("cannot install the partition")(NftError::Permission {
            message: "Operation not permitted".into(),
        });
        assert_eq!(
            err.to_string(),
            "cannot install the partition: no permission for nftables (the agent needs \
             CAP_NET_ADMIN): Operation not permitted"
        );
        assert!(matches!(
            err.source().and_then(|s| s.downcast_ref::<NftError>()),
            Some(NftError::Permission { .. })
        ));

        let err = FaultError::Process(OsError::NoSuchProcess { pid: 42 });
        assert!(err.source().is_some_and(|s| s.is::<OsError>()));
        assert_eq!(err.to_string(), "no process with pid 42");
    }

    #[test]
    fn no_match_says_what_was_looked_for_and_what_was_skipped() {
        let err = FaultError::NoMatchingProcess {
            target: Some(ProcessMatch::Name("a-very-long-process-name".into())),
            scope: None,
            skipped: vec!["pid 1 (init)".into()],
        };
        assert_eq!(
            err.to_string(),
            "no process matches name \"a-very-long-process-name\" apart from processes policy \
             never signals: pid 1 (init) (the kernel cuts process names to 15 bytes; use \
             `cmdline` to match longer ones)"
        );
        let err = FaultError::NoMatchingProcess {
            target: None,
            scope: Some("unit \"x.service\"".into()),
            skipped: Vec::new(),
        };
        assert_eq!(err.to_string(), "no process is in unit \"x.service\"");
    }
}
