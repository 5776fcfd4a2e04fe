//! The faults live on this host right now, each journaled and with the deadline the agent
//! enforces itself, and the lease: silence from the controller for too long reverts everything.
//!
//! Deadlines and the lease are read on tokio's clock ([`tokio::time::Instant`]): the same
//! monotonic clock in the agent, and a paused, virtual one in tests.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gameday_proto::v1::FailureKind;
use gameday_proto::Fault;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::faults::{self, Applied, FaultError, Host, Plan, Reverted};
use crate::journal::{unix_ms_in, Entry, Journal, JournalError};
use crate::policy::Policy;

/// One applied holding fault.
#[derive(Clone, Debug)]
pub struct LiveFault {
    /// What the controller asked for.
    pub fault: Fault,
    /// How to undo it.
    pub plan: Plan,
    /// The run it belongs to.
    pub run_id: String,
    /// When the agent reverts it on its own.
    pub deadline: Instant,
}

/// Faults applied and not yet reverted, and when the controller was last heard.
pub struct LiveFaults {
    faults: Mutex<BTreeMap<String, LiveFault>>,
    /// Reverts the agent did on its own (deadline, lease), kept so the controller's later
    /// revert request still gets the evidence.
    self_reverted: Mutex<BTreeMap<String, Reverted>>,
    /// Held for the whole of every revert, so the agent's own deadline and the controller's
    /// request never undo the same fault twice at once.
    reverting: Mutex<()>,
    last_heard: Mutex<Instant>,
    /// Signalled when a fault becomes live, so the enforcer, asleep until the earliest
    /// deadline it knew of, looks again.
    added: Notify,
    host: Arc<Host>,
    policy: Arc<Policy>,
    journal: Journal,
}

/// `lifetime` from now; a lifetime past what the clock can hold (a hostile or mistaken
/// deadline) is capped at a year rather than overflowing.
fn deadline_in(lifetime: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(lifetime)
        .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600))
}

/// Why a live fault is being reverted, for the one log line each revert gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RevertCause {
    /// The controller asked (end of the fault, end of the run, abort).
    Requested,
    /// The fault's own deadline passed.
    Deadline,
    /// The controller was silent for longer than the lease.
    Lease,
    /// The agent is stopping.
    Shutdown,
}

impl RevertCause {
    /// How the log and the evidence say it.
    pub fn as_str(self) -> &'static str {
        match self {
            RevertCause::Requested => "the controller asked",
            RevertCause::Deadline => "deadline passed",
            RevertCause::Lease => "controller lease expired",
            RevertCause::Shutdown => "the agent is stopping",
        }
    }
}

/// The one line a revert gets in the host's log: INFO when the host is as it was, WARN with
/// the differences when it is not.
fn log_reverted(fault_id: &str, run_id: &str, kind: &str, cause: RevertCause, r: &Reverted) {
    if r.evidence.residue.is_empty() {
        tracing::info!(fault = %fault_id, run = %run_id, kind, reason = cause.as_str(), evidence = %r.evidence.summary, "reverted");
    } else {
        tracing::warn!(fault = %fault_id, run = %run_id, kind, reason = cause.as_str(), residue = %r.evidence.residue.join("; "), "reverted, but the host is not as it was");
    }
}

fn journal_error(source: JournalError) -> FaultError {
    FaultError::Journal {
        doing: "cannot journal the fault, so it was not applied",
        source,
    }
}

impl LiveFaults {
    /// An empty set over `host`, journaling into `journal`.
    pub fn new(host: Arc<Host>, policy: Arc<Policy>, journal: Journal) -> Self {
        Self {
            faults: Mutex::new(BTreeMap::new()),
            self_reverted: Mutex::new(BTreeMap::new()),
            reverting: Mutex::new(()),
            last_heard: Mutex::new(Instant::now()),
            added: Notify::new(),
            host,
            policy,
            journal,
        }
    }

    /// The host faults act on.
    pub fn host(&self) -> &Arc<Host> {
        &self.host
    }

    /// The policy faults are checked against.
    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }

    /// Prepares, journals and applies a fault. If applying fails, whatever part took effect is
    /// reverted and the journal entry removed: nothing is half-applied. An instant fault (a
    /// kill) is over once applied: it is never live and leaves no journal entry.
    pub fn apply(
        &self,
        fault_id: &str,
        run_id: &str,
        fault: &Fault,
        lifetime: Duration,
    ) -> Result<Applied, FaultError> {
        self.ensure_not_live(fault_id)?;
        let plan = faults::prepare(fault, fault_id, &self.policy, &self.host).inspect_err(|e| {
            log_refused(fault_id, run_id, fault.kind().name(), e);
        })?;
        let entry = Entry {
            fault_id: fault_id.to_string(),
            run_id: run_id.to_string(),
            deadline_unix_ms: unix_ms_in(lifetime),
            plan: plan.clone(),
        };
        self.journal
            .record(&entry)
            .map_err(journal_error)
            .inspect_err(|e| {
                log_refused(fault_id, run_id, fault.kind().name(), e);
            })?;
        let applied = faults::apply(&plan, &self.policy, &self.host);
        match &applied {
            Ok(a) => {
                tracing::info!(fault = %fault_id, run = %run_id, kind = fault.kind().name(), evidence = %a.evidence.summary, "applied")
            }
            Err(e) => log_refused(fault_id, run_id, fault.kind().name(), e),
        }
        match applied {
            Ok(applied) if fault.is_instant() => {
                if let Err(j) = self.journal.remove(fault_id) {
                    tracing::error!(fault = %fault_id, error = %j, "could not remove the journal entry");
                }
                Ok(applied)
            }
            Ok(applied) => {
                self.faults.lock().expect("live faults lock").insert(
                    fault_id.to_string(),
                    LiveFault {
                        fault: fault.clone(),
                        plan,
                        run_id: run_id.to_string(),
                        deadline: deadline_in(lifetime),
                    },
                );
                self.added.notify_one();
                Ok(applied)
            }
            Err(e) => {
                if let Err(undo) = faults::revert(&plan, &self.host) {
                    tracing::error!(fault = %fault_id, error = %undo, "could not undo a failed apply; keeping its journal entry");
                    return Err(e);
                }
                if let Err(j) = self.journal.remove(fault_id) {
                    tracing::error!(fault = %fault_id, error = %j, "could not remove the journal entry");
                }
                Err(e)
            }
        }
    }

    /// Refuses a fault id that is live already: applying it twice would lose the first revert.
    fn ensure_not_live(&self, fault_id: &str) -> Result<(), FaultError> {
        let live = self.faults.lock().expect("live faults lock");
        if live.contains_key(fault_id) {
            return Err(FaultError::AlreadyApplied {
                fault_id: fault_id.to_string(),
            });
        }
        Ok(())
    }

    /// Checks a fault as [`LiveFaults::apply`] would, without applying or journaling it: the
    /// controller's preflight, so a policy refusal or a pattern that matches nothing shows
    /// before the steady-state wait rather than after it.
    pub fn check(&self, fault_id: &str, fault: &Fault) -> Result<Vec<String>, FaultError> {
        self.ensure_not_live(fault_id)?;
        faults::check(fault, fault_id, &self.policy, &self.host)
    }

    /// Reverts one fault at the controller's request. Reverting a fault that is not live
    /// succeeds (revert is idempotent); if the agent already reverted it on its own, that
    /// revert's evidence is returned.
    pub fn revert(&self, fault_id: &str) -> Result<Reverted, FaultError> {
        self.revert_because(fault_id, RevertCause::Requested)
    }

    /// [`LiveFaults::revert`], logged with `cause`.
    pub fn revert_because(
        &self,
        fault_id: &str,
        cause: RevertCause,
    ) -> Result<Reverted, FaultError> {
        let _one_at_a_time = self.reverting.lock().expect("reverting lock");
        self.revert_now(fault_id, cause)
    }

    /// [`LiveFaults::revert_because`] with the revert lock already held.
    fn revert_now(&self, fault_id: &str, cause: RevertCause) -> Result<Reverted, FaultError> {
        let live = self
            .faults
            .lock()
            .expect("live faults lock")
            .get(fault_id)
            .cloned();
        let Some(live) = live else {
            let earlier = self
                .self_reverted
                .lock()
                .expect("self reverted lock")
                .remove(fault_id);
            return Ok(earlier.unwrap_or_default());
        };
        let reverted = faults::revert(&live.plan, &self.host).inspect_err(|e| {
            tracing::error!(fault = %fault_id, run = %live.run_id, kind = live.fault.kind().name(), reason = cause.as_str(), error = %e, "revert failed");
        })?;
        log_reverted(
            fault_id,
            &live.run_id,
            live.fault.kind().name(),
            cause,
            &reverted,
        );
        self.faults
            .lock()
            .expect("live faults lock")
            .remove(fault_id);
        self.journal
            .remove(fault_id)
            .map_err(|source| FaultError::Journal {
                doing: "reverted, but the journal entry could not be removed",
                source,
            })?;
        Ok(reverted)
    }

    /// Every live fault, as the agent reports them when it (re)registers, so a controller that
    /// restarted learns what its predecessor left on this host.
    pub fn held(&self) -> Vec<gameday_proto::v1::HeldFault> {
        let now = Instant::now();
        self.faults
            .lock()
            .expect("live faults lock")
            .iter()
            .map(|(id, f)| gameday_proto::v1::HeldFault {
                fault_id: id.clone(),
                run_id: f.run_id.clone(),
                spec: Some(f.fault.to_wire()),
                remaining_ms: f.deadline.saturating_duration_since(now).as_millis() as u64,
            })
            .collect()
    }

    /// How many faults are live.
    pub fn len(&self) -> usize {
        self.faults.lock().expect("live faults lock").len()
    }

    /// True when nothing is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Notes that the controller spoke.
    pub fn heard_controller(&self) {
        *self.last_heard.lock().expect("last heard lock") = Instant::now();
    }

    /// When the lease runs out if the controller stays silent.
    fn lease_expiry(&self, lease: Duration) -> Instant {
        let heard = *self.last_heard.lock().expect("last heard lock");
        heard
            .checked_add(lease)
            .unwrap_or_else(|| heard + Duration::from_secs(365 * 24 * 3600))
    }

    /// The next moment [`LiveFaults::enforce`] has something to do: the earliest deadline, or
    /// the lease's expiry if that comes first; `None` when nothing is live. A heartbeat
    /// answered since only moves the lease's expiry later, so waking at the time returned is
    /// never too late.
    pub fn next_due(&self, lease: Duration) -> Option<Instant> {
        let earliest = self
            .faults
            .lock()
            .expect("live faults lock")
            .values()
            .map(|f| f.deadline)
            .min()?;
        Some(earliest.min(self.lease_expiry(lease)))
    }

    /// Resolves once a fault has become live since the last call (at once if one did while
    /// nobody waited): the enforcer's cue to look at [`LiveFaults::next_due`] again.
    pub async fn added(&self) {
        self.added.notified().await;
    }

    /// Reverts every fault past its deadline, and every fault at all when the controller has
    /// been silent for `lease` or longer. Returns the ids reverted.
    pub fn enforce(&self, lease: Duration) -> Vec<String> {
        let now = Instant::now();
        let lease_over = now >= self.lease_expiry(lease);
        let due: Vec<(String, RevertCause)> = self
            .faults
            .lock()
            .expect("live faults lock")
            .iter()
            .filter_map(|(id, f)| {
                if now >= f.deadline {
                    Some((id.clone(), RevertCause::Deadline))
                } else if lease_over {
                    Some((id.clone(), RevertCause::Lease))
                } else {
                    None
                }
            })
            .collect();
        let mut reverted = Vec::new();
        for (id, why) in due {
            let _one_at_a_time = self.reverting.lock().expect("reverting lock");
            // The controller may have reverted it while we waited for the lock.
            if !self
                .faults
                .lock()
                .expect("live faults lock")
                .contains_key(&id)
            {
                continue;
            }
            // An ordinary end of a fault: `revert_now` logs it once (at INFO), and a failure.
            if let Ok(r) = self.revert_now(&id, why) {
                let mut r = r;
                r.evidence.summary = format!(
                    "reverted by the agent ({}); {}",
                    why.as_str(),
                    r.evidence.summary
                );
                self.self_reverted
                    .lock()
                    .expect("self reverted lock")
                    .insert(id.clone(), r);
                reverted.push(id);
            }
        }
        reverted
    }

    /// Reverts everything (shutdown). Returns failures.
    pub fn revert_all(&self) -> Vec<(String, FaultError)> {
        let ids: Vec<String> = self
            .faults
            .lock()
            .expect("live faults lock")
            .keys()
            .cloned()
            .collect();
        ids.into_iter()
            .filter_map(|id| {
                self.revert_because(&id, RevertCause::Shutdown)
                    .err()
                    .map(|e| (id, e))
            })
            .collect()
    }

    /// Reverts whatever a previous agent left in the journal (after a crash). Runs before the
    /// agent registers. Returns how many were reverted, and the failures.
    pub fn recover(&self) -> Result<(usize, Vec<String>), JournalError> {
        let mut done = 0;
        let mut failures = Vec::new();
        for entry in self.journal.entries()? {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    failures.push(e.to_string());
                    continue;
                }
            };
            match faults::revert(&entry.plan, &self.host) {
                Ok(r) => {
                    // Worth the owner's attention: an agent stopped without reverting.
                    tracing::warn!(fault = %entry.fault_id, run = %entry.run_id, residue = %r.evidence.residue.join("; "), "reverted a fault left by a previous agent");
                    self.journal.remove(&entry.fault_id)?;
                    done += 1;
                }
                Err(e) => failures.push(format!("{}: {e}", entry.fault_id)),
            }
        }
        Ok((done, failures))
    }
}

/// The one line a refused or failed apply gets: a refusal by policy or a request naming
/// nothing is the policy and the controller doing their jobs (INFO; the run reports it); the
/// system failing is the owner's to look at (WARN).
fn log_refused(fault_id: &str, run_id: &str, kind: &str, e: &FaultError) {
    if e.kind() == FailureKind::System {
        tracing::warn!(fault = %fault_id, run = %run_id, kind, error = %e, "could not apply")
    } else {
        tracing::info!(fault = %fault_id, run = %run_id, kind, error = %e, "refused")
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::process::{Child, Command};

    use super::*;

    /// Log lines, as the host owner would read them (no colour, like any non-terminal).
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn lines(&self) -> Vec<String> {
            String::from_utf8_lossy(&self.0.lock().unwrap())
                .lines()
                .map(str::to_string)
                .collect()
        }
    }

    /// A `sleep` of our own to pause, killed on drop.
    struct Sleeper(Child);

    impl Drop for Sleeper {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn live(state: &std::path::Path) -> LiveFaults {
        let host = Host::without_firewall();
        LiveFaults::new(
            Arc::new(host),
            Arc::new(Policy::permissive()),
            Journal::open(state).unwrap(),
        )
    }

    fn pause_of(pid_file: &std::path::Path) -> Fault {
        toml::from_str(&format!(
            "kind = \"process_pause\"\npid_file = \"{}\"\nduration = \"1h\"",
            pid_file.display()
        ))
        .unwrap()
    }

    /// Runs `f` with the agent's log captured, at INFO as the agent logs by default.
    fn logged(f: impl FnOnce()) -> Vec<String> {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        captured.lines()
    }

    #[test]
    fn each_apply_and_each_revert_is_logged_once_and_a_deadline_revert_is_no_warning() {
        let dir = tempfile::tempdir().unwrap();
        // A process of the test's own to fault.
        #[allow(clippy::disallowed_methods)]
        let sleeper = Sleeper(Command::new("sleep").arg("300").spawn().unwrap());
        let pid_file = dir.path().join("sleep.pid");
        std::fs::write(&pid_file, sleeper.0.id().to_string()).unwrap();
        let live = live(&dir.path().join("journal"));
        let fault = pause_of(&pid_file);
        let lines = logged(|| {
            live.apply("f-deadline", "run-1", &fault, Duration::ZERO)
                .unwrap();
            // The deadline has passed: the agent reverts on its own.
            assert_eq!(live.enforce(Duration::from_secs(3600)), vec!["f-deadline"]);
            // The controller's later request finds it reverted: nothing more to log.
            live.revert("f-deadline").unwrap();
            live.apply("f-asked", "run-1", &fault, Duration::from_secs(3600))
                .unwrap();
            live.revert("f-asked").unwrap();
            live.apply("f-lease", "run-1", &fault, Duration::from_secs(3600))
                .unwrap();
            assert_eq!(live.enforce(Duration::ZERO), vec!["f-lease"]);
        });
        let text = lines.join("\n");
        for id in ["f-deadline", "f-asked", "f-lease"] {
            let of = |what: &str| {
                lines
                    .iter()
                    .filter(|l| l.contains(&format!("{what} fault={id} ")))
                    .count()
            };
            assert_eq!(of("applied"), 1, "one apply line for {id}:\n{text}");
            assert_eq!(of("reverted"), 1, "one revert line for {id}:\n{text}");
        }
        assert!(text.contains("reason=\"deadline passed\""), "{text}");
        assert!(
            text.contains("reason=\"controller lease expired\""),
            "{text}"
        );
        assert!(text.contains("reason=\"the controller asked\""), "{text}");
        assert!(
            lines.iter().all(|l| !l.contains("WARN")),
            "ordinary reverts are no warning:\n{text}"
        );
        assert!(!text.contains("Some(") && !text.contains("None"), "{text}");
    }
}
