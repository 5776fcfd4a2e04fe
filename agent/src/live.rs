//! The faults live on this host right now, each journaled and with the deadline the agent
//! enforces itself, and the lease: silence from the controller for too long reverts everything.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gameday_proto::Fault;

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

fn journal_error(e: JournalError) -> FaultError {
    FaultError::System(format!(
        "cannot journal the fault, so it was not applied: {e}"
    ))
}

impl LiveFaults {
    /// An empty set over `host`, journaling into `journal`.
    pub fn new(host: Arc<Host>, policy: Arc<Policy>, journal: Journal) -> Self {
        Self {
            faults: Mutex::new(BTreeMap::new()),
            self_reverted: Mutex::new(BTreeMap::new()),
            reverting: Mutex::new(()),
            last_heard: Mutex::new(Instant::now()),
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
        if self
            .faults
            .lock()
            .expect("live faults lock")
            .contains_key(fault_id)
        {
            return Err(FaultError::Invalid(format!(
                "fault {fault_id} is already applied"
            )));
        }
        let plan = faults::prepare(fault, fault_id, &self.policy, &self.host)?;
        let entry = Entry {
            fault_id: fault_id.to_string(),
            run_id: run_id.to_string(),
            deadline_unix_ms: unix_ms_in(lifetime),
            plan: plan.clone(),
        };
        self.journal.record(&entry).map_err(journal_error)?;
        match faults::apply(&plan, &self.policy, &self.host) {
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

    /// Reverts one fault. Reverting a fault that is not live succeeds (revert is idempotent);
    /// if the agent already reverted it on its own, that revert's evidence is returned.
    pub fn revert(&self, fault_id: &str) -> Result<Reverted, FaultError> {
        let _one_at_a_time = self.reverting.lock().expect("reverting lock");
        self.revert_now(fault_id)
    }

    /// [`LiveFaults::revert`] with the revert lock already held.
    fn revert_now(&self, fault_id: &str) -> Result<Reverted, FaultError> {
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
        let reverted = faults::revert(&live.plan, &self.host)?;
        self.faults
            .lock()
            .expect("live faults lock")
            .remove(fault_id);
        self.journal.remove(fault_id).map_err(|e| {
            FaultError::System(format!(
                "reverted, but the journal entry could not be removed: {e}"
            ))
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

    /// Reverts every fault past its deadline, and every fault at all when the controller has
    /// been silent for longer than `lease`. Returns the ids reverted.
    pub fn enforce(&self, lease: Duration) -> Vec<String> {
        let now = Instant::now();
        let lease_over = self.last_heard.lock().expect("last heard lock").elapsed() > lease;
        let due: Vec<(String, &'static str)> = self
            .faults
            .lock()
            .expect("live faults lock")
            .iter()
            .filter_map(|(id, f)| {
                if now >= f.deadline {
                    Some((id.clone(), "deadline passed"))
                } else if lease_over {
                    Some((id.clone(), "controller lease expired"))
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
            match self.revert_now(&id) {
                Ok(r) => {
                    tracing::warn!(fault = %id, reason = why, residue = ?r.evidence.residue, "reverted by the agent itself");
                    let mut r = r;
                    r.evidence.summary =
                        format!("reverted by the agent ({why}); {}", r.evidence.summary);
                    self.self_reverted
                        .lock()
                        .expect("self reverted lock")
                        .insert(id.clone(), r);
                    reverted.push(id);
                }
                Err(e) => tracing::error!(fault = %id, reason = why, error = %e, "revert failed"),
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
            .filter_map(|id| self.revert(&id).err().map(|e| (id, e)))
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
                    tracing::warn!(fault = %entry.fault_id, run = %entry.run_id, residue = ?r.evidence.residue, "reverted a fault left by a previous agent");
                    self.journal.remove(&entry.fault_id)?;
                    done += 1;
                }
                Err(e) => failures.push(format!("{}: {e}", entry.fault_id)),
            }
        }
        Ok((done, failures))
    }
}
