//! A run's identity: the invocation it is a repeat of (one `gameday run`, one schedule
//! firing), its id, who or what started it — and what an abort did and on whose behalf.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::scenario::Scenario;

/// Who or what started a scenario's runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartedBy {
    /// An operator, by the name in their certificate.
    Operator(String),
    /// A schedule of the controller, by its name.
    Schedule(String),
    /// A session on one machine (`gameday run --local`, `gameday demo`), by what it is.
    Session(String),
    /// Not said (an embedding that does not tell).
    Unspecified,
}

impl fmt::Display for StartedBy {
    /// `operator:alice`, `schedule:monthly`, `session:local`, or empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartedBy::Operator(name) => write!(f, "operator:{name}"),
            StartedBy::Schedule(name) => write!(f, "schedule:{name}"),
            StartedBy::Session(what) => write!(f, "session:{what}"),
            StartedBy::Unspecified => Ok(()),
        }
    }
}

/// The identity every repeat of one invocation shares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunIdentity {
    /// `run-` and the invocation's start in milliseconds since the Unix epoch, in hex, then
    /// two hex digits that tell apart invocations started in the same millisecond.
    pub invocation: String,
    /// Who or what started it.
    pub started_by: StartedBy,
}

impl RunIdentity {
    /// A new invocation, started now.
    pub fn new(started_by: StartedBy) -> RunIdentity {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let ms = crate::timeline::unix_ms_now();
        let seq = SEQ.fetch_add(1, Ordering::Relaxed) % 256;
        RunIdentity {
            invocation: format!("run-{ms:x}{seq:02x}"),
            started_by,
        }
    }

    /// The id of repeat `index` (1-based): the invocation id and `-index`, so the run number
    /// an operator reads is the one in the id.
    pub fn run_id(&self, index: u32) -> String {
        format!("{}-{index}", self.invocation)
    }

    /// The first progress line: which invocation this is and how to abort it.
    pub fn announcement(&self, scenario: &Scenario) -> String {
        let by = match &self.started_by {
            StartedBy::Unspecified => String::new(),
            who => format!(", started by {who}"),
        };
        format!(
            "{}: {} run(s) of {:?}{by}; abort with `gameday abort {}`",
            self.invocation, scenario.repeat, scenario.name, self.invocation
        )
    }
}

/// The invocation id of a run id made by [`RunIdentity::run_id`], if it is one.
pub fn invocation_of(run_id: &str) -> Option<&str> {
    let (invocation, index) = run_id.rsplit_once('-')?;
    (!index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()) && invocation.len() > 4)
        .then_some(invocation)
}

/// The reason of an aborted run, saying who aborted it: "aborted by an operator while
/// observing" becomes "aborted by operator alice while observing".
pub(super) fn attribute_abort(reason: &str, who: &str) -> String {
    if reason.contains("by an operator") {
        reason.replacen("by an operator", &format!("by {who}"), 1)
    } else {
        format!("{reason} (aborted by {who})")
    }
}

/// What an abort did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AbortOutcome {
    /// The runs that were going on and are aborted, by id.
    pub runs: Vec<String>,
    /// Invocations stopped between two repeats (no run was going on).
    pub invocations: Vec<String>,
    /// Every live fault the abort reverted, or tried to.
    pub faults: Vec<AbortedFault>,
}

impl AbortOutcome {
    /// Faults whose revert succeeded.
    pub fn reverted(&self) -> u32 {
        self.faults.iter().filter(|f| f.error.is_none()).count() as u32
    }
}

/// A live fault an abort reverted (or tried to).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AbortedFault {
    /// The fault.
    pub fault_id: String,
    /// Its run.
    pub run_id: String,
    /// The agent holding it.
    pub agent: String,
    /// Its kind, e.g. `network_partition`.
    pub kind: String,
    /// Why the revert failed, when it did.
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_the_invocation_and_the_run_number() {
        let a = RunIdentity::new(StartedBy::Operator("alice".into()));
        let b = RunIdentity::new(StartedBy::Unspecified);
        assert_ne!(a.invocation, b.invocation, "two invocations, two ids");
        assert!(a.invocation.starts_with("run-"), "{}", a.invocation);
        assert_eq!(a.run_id(1), format!("{}-1", a.invocation));
        assert_eq!(a.run_id(12), format!("{}-12", a.invocation));
        assert_eq!(invocation_of(&a.run_id(3)), Some(a.invocation.as_str()));
        assert_eq!(invocation_of("run-18f0a"), None);
        assert_eq!(invocation_of("abc"), None);
    }

    #[test]
    fn who_started_it_reads_as_kind_and_name() {
        assert_eq!(
            StartedBy::Operator("alice".into()).to_string(),
            "operator:alice"
        );
        assert_eq!(
            StartedBy::Schedule("monthly".into()).to_string(),
            "schedule:monthly"
        );
        assert_eq!(
            StartedBy::Session("local".into()).to_string(),
            "session:local"
        );
        assert_eq!(StartedBy::Unspecified.to_string(), "");
    }

    #[test]
    fn an_aborted_run_says_who_aborted_it() {
        assert_eq!(
            attribute_abort("aborted by an operator while observing", "operator alice"),
            "aborted by operator alice while observing"
        );
        assert_eq!(
            attribute_abort(
                "aborted by an operator during steady state",
                "the controller"
            ),
            "aborted by the controller during steady state"
        );
        assert_eq!(
            attribute_abort("stopped", "operator bob"),
            "stopped (aborted by operator bob)"
        );
    }
}
