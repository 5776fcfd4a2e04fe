//! The faults live on this host right now, each with the deadline the agent enforces itself,
//! and the lease: silence from the controller for too long reverts everything.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gameday_proto::Fault;

use crate::faults::{self, FaultError};
use crate::os::ProcessOs;

/// One applied fault.
#[derive(Clone, Debug)]
pub struct LiveFault {
    /// The fault.
    pub fault: Fault,
    /// The run it belongs to.
    pub run_id: String,
    /// When the agent reverts it on its own.
    pub deadline: Instant,
}

/// Faults applied and not yet reverted, and when the controller was last heard.
pub struct LiveFaults {
    faults: Mutex<BTreeMap<String, LiveFault>>,
    last_heard: Mutex<Instant>,
    os: Arc<dyn ProcessOs>,
}

impl LiveFaults {
    /// An empty set.
    pub fn new(os: Arc<dyn ProcessOs>) -> Self {
        Self {
            faults: Mutex::new(BTreeMap::new()),
            last_heard: Mutex::new(Instant::now()),
            os,
        }
    }

    /// Records a fault that took effect.
    pub fn insert(&self, fault_id: String, live: LiveFault) {
        self.faults.lock().expect("live faults lock").insert(fault_id, live);
    }

    /// Reverts one fault. Reverting a fault that is not live succeeds: revert is idempotent.
    pub fn revert(&self, fault_id: &str) -> Result<(), FaultError> {
        let live = self.faults.lock().expect("live faults lock").get(fault_id).cloned();
        let Some(live) = live else { return Ok(()) };
        faults::revert(&live.fault, self.os.as_ref())?;
        self.faults.lock().expect("live faults lock").remove(fault_id);
        Ok(())
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
            match self.revert(&id) {
                Ok(()) => {
                    tracing::warn!(fault = %id, reason = why, "reverted by the agent itself");
                    reverted.push(id);
                }
                Err(e) => tracing::error!(fault = %id, reason = why, error = %e, "revert failed"),
            }
        }
        reverted
    }

    /// Reverts everything (shutdown). Returns failures.
    pub fn revert_all(&self) -> Vec<(String, FaultError)> {
        let ids: Vec<String> = self.faults.lock().expect("live faults lock").keys().cloned().collect();
        ids.into_iter()
            .filter_map(|id| self.revert(&id).err().map(|e| (id, e)))
            .collect()
    }
}
