//! Remediation steps: runbook commands the controller asks the agent to run, under the host's
//! `[policy.remediation]`.
//!
//! A step is not a fault: it is not journaled or reverted, and the lease does not end it; its
//! timeout does. Each step runs on a task of its own, beside the fault worker and the
//! heartbeats, never in their way. A step is its process group: at its timeout the group gets
//! SIGTERM, then SIGKILL after [`KILL_GRACE`]; whatever it leaves running in the group when it
//! exits is killed; and the agent ends every step's group before it exits.

mod check;
mod output_tail;
pub mod policy;
mod report;
mod run;

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use gameday_proto::v1::{AgentMessage, RunStep};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

pub use check::{check, CheckedStep, StepCommand, StepError, SHELL};
pub use output_tail::OUTPUT_TAIL_BYTES;
pub use policy::{RemediationPolicy, RemediationPolicyError};
pub use run::KILL_GRACE;

/// Runs the steps the controller sends, at most `max_running` at once, each on a task of its
/// own that this runner tracks and joins at shutdown.
#[derive(Debug)]
pub struct StepRunner {
    policy: RemediationPolicy,
    /// The ids of the steps running now.
    running: Arc<Mutex<HashSet<String>>>,
    tasks: Mutex<JoinSet<()>>,
    /// Turns true when the agent shuts down: every step's group is ended.
    stop: watch::Sender<bool>,
}

/// A step counted as running; dropping it (when the step's task ends) frees its place.
#[derive(Debug)]
struct RunningSlot {
    running: Arc<Mutex<HashSet<String>>>,
    step_id: String,
}

impl Drop for RunningSlot {
    fn drop(&mut self) {
        lock(&self.running).remove(&self.step_id);
    }
}

/// A poisoned lock only means a panic elsewhere; the set and the task list stay consistent.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl StepRunner {
    /// A runner under `policy` (already validated, as [`crate::policy::Policy`] does).
    pub fn new(policy: RemediationPolicy) -> StepRunner {
        StepRunner {
            policy,
            running: Arc::default(),
            tasks: Mutex::default(),
            stop: watch::Sender::new(false),
        }
    }

    /// The policy steps are checked against.
    pub fn policy(&self) -> &RemediationPolicy {
        &self.policy
    }

    /// How many steps are running now.
    pub fn running(&self) -> usize {
        lock(&self.running).len()
    }

    /// Checks `step` and answers it (`check_only`, or a refusal) or starts it, reporting on
    /// `reports`; `received` is when the request arrived, which the STARTED report measures
    /// from. Never waits: whatever has to wait runs on a task of its own. Must be called on the
    /// agent's runtime.
    pub fn submit(&self, step: RunStep, received: Instant, reports: mpsc::Sender<AgentMessage>) {
        let checked = check(&step, &self.policy);
        if step.check_only {
            let refusal = checked.as_ref().err();
            match refusal {
                None => {
                    tracing::debug!(step = %step.step_id, run = %step.run_id, "step checked: would run")
                }
                Some(e) => {
                    tracing::info!(step = %step.step_id, run = %step.run_id, error = %e, "step checked: would be refused")
                }
            }
            let answer = report::checked(&step.step_id, refusal);
            self.spawn(async move {
                if !report::deliver(&reports, answer).await {
                    tracing::warn!(step = %step.step_id, "the controller's stream is gone: the check was not reported");
                }
            });
            return;
        }
        match checked.and_then(|checked| Ok((self.claim(&checked.step_id)?, checked))) {
            Ok((slot, checked)) => {
                let stop = self.stop.subscribe();
                self.spawn(run::run(checked, received, reports, stop, slot));
            }
            Err(e) => {
                tracing::warn!(step = %step.step_id, run = %step.run_id, error = %e, "remediation step refused");
                let refusal = report::not_started(&step.step_id, &e);
                self.spawn(async move {
                    if !report::deliver(&reports, refusal).await {
                        tracing::warn!(step = %step.step_id, "the controller's stream is gone: the refusal was not reported");
                    }
                });
            }
        }
    }

    /// Counts `step_id` as running, if the agent is not stopping, no step with that id runs and
    /// fewer than `max_running` do.
    fn claim(&self, step_id: &str) -> Result<RunningSlot, StepError> {
        if *self.stop.borrow() {
            return Err(StepError::ShuttingDown);
        }
        let mut running = lock(&self.running);
        if running.contains(step_id) {
            return Err(StepError::AlreadyRunning {
                step_id: step_id.to_string(),
            });
        }
        if running.len() >= self.policy.max_running as usize {
            return Err(StepError::TooManyRunning {
                max: self.policy.max_running,
            });
        }
        running.insert(step_id.to_string());
        Ok(RunningSlot {
            running: self.running.clone(),
            step_id: step_id.to_string(),
        })
    }

    /// Tracks `task`, and collects the tasks that have finished so the set stays small.
    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let mut tasks = lock(&self.tasks);
        while let Some(done) = tasks.try_join_next() {
            if let Err(e) = done {
                tracing::error!(error = %e, "a remediation step's task failed");
            }
        }
        tasks.spawn(task);
    }

    /// Starts no step from now on, and ends the group of every step running (SIGTERM, then
    /// SIGKILL after [`KILL_GRACE`]). [`StepRunner::join`] waits for them.
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// Waits up to `grace` for every step's task to end (after [`StepRunner::stop`]); then
    /// aborts the rest, which kills their groups (SIGKILL). False if any had to be aborted.
    pub async fn join(&self, grace: Duration) -> bool {
        let mut tasks = std::mem::take(&mut *lock(&self.tasks));
        let drained =
            tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} })
                .await
                .is_ok();
        if !drained {
            tracing::error!(
                ?grace,
                steps = tasks.len(),
                "remediation steps still running after the grace; killing their process groups"
            );
            tasks.abort_all();
            // An aborted task drops its step, and with it the group (SIGKILL): prompt.
            while tasks.join_next().await.is_some() {}
        }
        drained
    }
}
