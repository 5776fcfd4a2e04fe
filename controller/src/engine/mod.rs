//! The run engine: preflight, steady state, inject, observe, revert, grade — for every repeat of
//! a scenario — and the table of active runs that operators can abort.

mod detect;
#[cfg(test)]
mod fake;
mod identity;
mod inject;
mod observe;
pub mod observer;
pub mod preflight;
pub mod progress;
mod reconcile;
mod recorder;
pub mod remediate;
mod revert;
mod run;
#[cfg(test)]
mod run_tests;
pub mod samples;
mod steady_state;
#[cfg(test)]
mod tests;
pub mod transport;
mod verdict;

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::registry::{AgentConn, AgentRegistry};
use transport::{FaultTransport, RegisteredAgent};

use crate::report::{summarize, ScenarioReport};
use crate::scenario::ScenarioFile;
pub use identity::{invocation_of, AbortOutcome, AbortedFault, RunIdentity, StartedBy};
pub use observer::{RunObserver, RunStart};
pub use reconcile::OrphanRevert;

pub use progress::{Phase, Progress, ProgressEvent};

/// Why `gameday revert` could not be done.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RevertError {
    /// No such run is going on.
    #[error("no run {0:?} is going on")]
    NotActive(String),
    /// The run reverts by itself.
    #[error("run {0:?} reverts its faults itself (its scenario does not say revert = \"manual\"); `gameday abort` stops it")]
    NotManual(String),
    /// Asked before.
    #[error("run {0:?} was already asked to revert")]
    Already(String),
}

/// Why a run was stopped before its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopCause {
    /// `gameday abort`.
    Operator,
    /// The controller is shutting down (SIGTERM): the run is recorded as interrupted.
    Shutdown,
}

/// Runs scenarios against the connected agents.
pub struct Engine {
    registry: Arc<AgentRegistry>,
    active: Mutex<HashMap<String, ActiveRun>>,
    /// Invocations going on, each with who aborted it once someone has.
    invocations: Mutex<HashMap<String, watch::Sender<Option<String>>>>,
    observers: Vec<Arc<dyn RunObserver>>,
    validator: crate::limits::Validator,
    /// Cancelled when the controller starts shutting down: no run starts after that.
    closing: CancellationToken,
    /// Every task the controller spawns for operators and agents, joined at shutdown.
    tasks: TaskTracker,
    /// Alerts from the team's monitoring, when this controller receives them.
    alerts: Option<Arc<crate::alerts::AlertLog>>,
    /// The runbooks remediation steps may call (`[runbooks.NAME]`).
    runbooks: crate::webhook::runbook::Runbooks,
}

impl Engine {
    /// An engine dispatching to `registry`'s agents.
    pub fn new(registry: Arc<AgentRegistry>) -> Engine {
        Engine {
            registry,
            active: Mutex::new(HashMap::new()),
            invocations: Mutex::new(HashMap::new()),
            observers: Vec::new(),
            validator: crate::limits::Validator::default(),
            closing: CancellationToken::new(),
            tasks: TaskTracker::new(),
            alerts: None,
            runbooks: Default::default(),
        }
    }

    /// Lets remediation steps call `runbooks` by name.
    pub fn with_runbooks(mut self, runbooks: crate::webhook::runbook::Runbooks) -> Engine {
        self.runbooks = runbooks;
        self
    }

    /// Grades scenarios' `[detect]` on the alerts `log` receives.
    pub fn with_alerts(mut self, log: Arc<crate::alerts::AlertLog>) -> Engine {
        self.alerts = Some(log);
        self
    }

    /// Spawns `task` so that shutdown can wait for it.
    pub fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tasks.spawn(task)
    }

    /// True once shutdown began: new runs are refused.
    pub fn is_closing(&self) -> bool {
        self.closing.is_cancelled()
    }

    /// The first steps of a controller's shutdown: no new run starts, every run going on is
    /// stopped (it reverts its faults and is recorded as interrupted), and whatever any agent
    /// still holds is reverted — all while the agents' streams are still open. Waits at most
    /// `grace` for the runs to end.
    pub async fn shutdown_runs(&self, grace: Duration) {
        self.closing.cancel();
        let stopped = {
            let active = self.active.lock().expect("active runs lock");
            for run in active.values() {
                let _ = run.cancel.send(Some(StopCause::Shutdown));
            }
            active.len()
        };
        if stopped > 0 {
            tracing::info!(
                runs = stopped,
                "stopping the runs going on and reverting their faults"
            );
        }
        let deadline = tokio::time::Instant::now() + grace;
        while !self.active.lock().expect("active runs lock").is_empty() {
            if tokio::time::Instant::now() >= deadline {
                tracing::error!(?grace, "runs still going on after the grace period; their agents revert within their lease");
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for agent in self.registry.all() {
            for (fault_id, entry) in agent.live_faults() {
                if let Err(e) = agent.revert(&fault_id).await {
                    tracing::error!(agent = %agent.name, fault = %fault_id, run = %entry.run_id, error = %e, "could not revert at shutdown; the agent reverts it within its lease");
                }
            }
        }
    }

    /// Waits (at most `grace`) for every tracked task to end: called once the agents' streams
    /// are closed.
    pub async fn join_tasks(&self, grace: Duration) {
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                ?grace,
                tasks = self.tasks.len(),
                "tasks still running after the grace period; leaving them"
            );
        }
    }

    /// Adds an observer that receives every run's record as it progresses.
    pub fn with_observer(mut self, observer: Arc<dyn RunObserver>) -> Engine {
        self.observers.push(observer);
        self
    }

    /// Validates scenarios off the async workers, one at a time for the whole controller.
    pub fn validator(&self) -> &crate::limits::Validator {
        &self.validator
    }

    /// The agents.
    pub fn registry(&self) -> &Arc<AgentRegistry> {
        &self.registry
    }

    /// Runs every repeat of `scenario` and returns the graded report; the history does not
    /// say who started it (see [`Engine::run_scenario_as`]).
    pub async fn run_scenario(&self, input: &ScenarioFile, progress: &Progress) -> ScenarioReport {
        self.run_scenario_as(StartedBy::Unspecified, input, progress)
            .await
    }

    /// Runs every repeat of `scenario`, started by `started_by`, and returns the graded
    /// report. The repeats share one invocation id, announced first on `progress`; run N's id
    /// is that id plus `-N`.
    pub async fn run_scenario_as(
        &self,
        started_by: StartedBy,
        input: &ScenarioFile,
        progress: &Progress,
    ) -> ScenarioReport {
        let scenario = &input.scenario;
        let identity = RunIdentity::new(started_by);
        let (stop_tx, mut stopped) = watch::channel(None);
        self.invocations
            .lock()
            .expect("invocations lock")
            .insert(identity.invocation.clone(), stop_tx);
        let _ = progress.send(ProgressEvent::new(
            identity.announcement(scenario),
            Phase::Preflight,
            1,
            scenario,
        ));
        let report = self.repeat(&identity, &mut stopped, input, progress).await;
        self.invocations
            .lock()
            .expect("invocations lock")
            .remove(&identity.invocation);
        report
    }

    async fn repeat(
        &self,
        identity: &RunIdentity,
        stopped: &mut watch::Receiver<Option<String>>,
        input: &ScenarioFile,
        progress: &Progress,
    ) -> ScenarioReport {
        let scenario = &input.scenario;
        let mut report = ScenarioReport {
            scenario: scenario.name.clone(),
            file: input.file.clone(),
            expect: scenario.expect,
            rto_us: scenario.rto.get().as_micros() as u64,
            error: None,
            runs: Vec::new(),
            summary: summarize(&[], scenario.min_pass_rate, false),
        };
        for index in 1..=scenario.repeat {
            if let Some(who) = stopped.borrow().clone() {
                let _ = progress.send(ProgressEvent::new(
                    format!(
                        "{}: aborted by {who} before run {index}/{}",
                        identity.invocation, scenario.repeat
                    ),
                    Phase::Graded,
                    index,
                    scenario,
                ));
                break;
            }
            let run_id = identity.run_id(index);
            let receives = scenario.detect.is_none() || self.alerts.is_some();
            let resolved = receives
                .then_some(())
                .ok_or(preflight::PreflightError::NoAlertReceiver)
                .and_then(|()| preflight::resolve(scenario, &self.registry))
                .map(|conns| self.transports(conns))
                .and_then(|t| Ok((t, preflight::resolve_faults(scenario, &self.registry)?)))
                .and_then(|(t, f)| {
                    let steps = preflight::resolve_steps(scenario, &self.registry, &self.runbooks)?;
                    Ok((t, f, steps))
                });
            // Every fault and step checked by its agents before the steady-state wait.
            let resolved = match resolved {
                Ok((targets, faults, steps)) => {
                    match preflight::check_faults(&run_id, &targets, &faults).await {
                        Ok(warnings) => {
                            // Shown, not fatal: the default (a bare name hits every match)
                            // stays.
                            for warning in warnings {
                                let _ = progress.send(ProgressEvent::new(
                                    format!("warning: {warning}"),
                                    Phase::Preflight,
                                    index,
                                    scenario,
                                ));
                            }
                            preflight::check_steps(&run_id, &scenario.remediation, &steps)
                                .await
                                .map(|()| (targets, faults, steps))
                        }
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            };
            let (targets, faults, steps) = match resolved {
                Ok(t) => t,
                Err(e) => {
                    let _ = progress.send(ProgressEvent::new(
                        format!("preflight failed: {e}"),
                        Phase::Graded,
                        index,
                        scenario,
                    ));
                    if report.runs.is_empty() {
                        report.error = Some(format!("preflight: {e}"));
                    } else {
                        report.runs.push(run::preflight_failed(run_id, index, e));
                    }
                    break;
                }
            };
            let (cancel_tx, cancel) = watch::channel(None);
            let (revert_tx, revert_now) = watch::channel(false);
            {
                // Checked under the lock shutdown takes to stop runs, so none slips through.
                let mut active = self.active.lock().expect("active runs lock");
                if self.closing.is_cancelled() {
                    if report.runs.is_empty() {
                        report.error = Some("the controller is shutting down; nothing ran".into());
                    }
                    break;
                }
                active.insert(
                    run_id.clone(),
                    ActiveRun {
                        invocation: identity.invocation.clone(),
                        cancel: cancel_tx,
                        aborted_by: None,
                        annotations: Vec::new(),
                        revert_now: revert_tx,
                        revert: scenario.revert,
                    },
                );
            }
            let _ = progress.send(ProgressEvent::new(
                format!(
                    "run {index}/{}: {run_id} on {}",
                    scenario.repeat,
                    targets
                        .iter()
                        .map(|t| t.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Phase::Preflight,
                index,
                scenario,
            ));
            let ctx = run::RunCtx {
                input,
                run_id: run_id.clone(),
                index,
                targets,
                faults,
                progress,
                observers: &self.observers,
                identity,
                injected_unix_ms: Default::default(),
                cancel,
                alerts: self.alerts.as_ref(),
                revert_now,
                steps,
            };
            // A bug that panics a run must still grade it ERROR and record it, never leave it
            // `running`; its faults are reverted by the sweep below.
            let mut result = match AssertUnwindSafe(run::run_once(ctx)).catch_unwind().await {
                Ok(r) => r,
                Err(panic) => {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown panic".into());
                    tracing::error!(run = %run_id, panic = %what, "the run task panicked");
                    run::crashed(run_id.clone(), index, &what)
                }
            };
            let (aborted_by, stopped_by, annotations) = self
                .active
                .lock()
                .expect("active runs lock")
                .remove(&run_id)
                .map_or((None, None, Vec::new()), |a| {
                    let stopped_by = *a.cancel.borrow();
                    (a.aborted_by, stopped_by, a.annotations)
                });
            result.annotations = annotations;
            result.remediation = crate::annotation::Remediation::of(&result);
            if let (crate::grade::Verdict::Aborted, Some(who)) = (result.verdict, aborted_by) {
                result.reason = identity::attribute_abort(&result.reason, &who);
            }
            self.revert_leftovers(&run_id).await;
            let _ = progress.send(ProgressEvent::new(
                format!(
                    "run {index}/{}: {} — {}",
                    scenario.repeat, result.verdict, result.reason
                ),
                Phase::Graded,
                index,
                scenario,
            ));
            let stop = matches!(
                result.verdict,
                crate::grade::Verdict::Aborted | crate::grade::Verdict::Error
            );
            for o in &self.observers {
                o.run_finished(scenario, &result);
                if stopped_by == Some(StopCause::Shutdown) {
                    o.run_interrupted(&result.run_id, &result.reason);
                }
            }
            report.runs.push(result);
            if stop {
                break;
            }
            if index < scenario.repeat {
                cool_down(scenario.cooldown.get(), stopped, &self.closing).await;
            }
        }
        report.summary = summarize(&report.runs, scenario.min_pass_rate, report.error.is_some());
        for o in &self.observers {
            o.scenario_finished(&report);
        }
        report
    }

    /// A run's view of its resolved targets: each reached through the registry, so a revert
    /// finds the agent's current connection.
    fn transports(&self, conns: Vec<Arc<AgentConn>>) -> Vec<Arc<dyn FaultTransport>> {
        conns
            .into_iter()
            .map(|conn| {
                Arc::new(RegisteredAgent::new(self.registry.clone(), conn))
                    as Arc<dyn FaultTransport>
            })
            .collect()
    }

    /// Asks run `run_id`, whose scenario says `revert = "manual"`, to revert its faults now;
    /// it does within a tick of its observe loop (at most 50 ms) and goes on observing.
    pub fn revert_run(&self, run_id: &str) -> Result<(), RevertError> {
        let active = self.active.lock().expect("active runs lock");
        let run = active
            .get(run_id)
            .ok_or_else(|| RevertError::NotActive(run_id.to_string()))?;
        if run.revert != crate::scenario::RevertPolicy::Manual {
            return Err(RevertError::NotManual(run_id.to_string()));
        }
        if run.revert_now.send_replace(true) {
            return Err(RevertError::Already(run_id.to_string()));
        }
        Ok(())
    }

    /// Adds `note` to run `run_id` if it is going on here, for its report; false otherwise.
    pub fn annotate_live(&self, run_id: &str, note: crate::annotation::Annotation) -> bool {
        match self
            .active
            .lock()
            .expect("active runs lock")
            .get_mut(run_id)
        {
            Some(run) => {
                run.annotations.push(note);
                true
            }
            None => false,
        }
    }

    /// Whether `run_id` is going on here; if so, runs `f` before the run can end.
    fn while_active(&self, run_id: &str, f: impl FnOnce()) -> bool {
        let active = self.active.lock().expect("active runs lock");
        let running = active.contains_key(run_id);
        if running {
            f();
        }
        running
    }

    /// Aborts a run, every repeat of an invocation (`target` is its id), or every run
    /// (`None`), on behalf of `who` ("operator alice"), and reverts every live fault agents
    /// hold for them. The aborted runs' records say who aborted them.
    pub async fn abort_by(&self, target: Option<&str>, who: &str) -> AbortOutcome {
        let mut outcome = AbortOutcome::default();
        let mut runs_of = Vec::new();
        for (id, run) in self.active.lock().expect("active runs lock").iter_mut() {
            if target.is_none_or(|t| t == id || t == run.invocation) {
                run.aborted_by.get_or_insert_with(|| who.to_string());
                let _ = run.cancel.send(Some(StopCause::Operator));
                outcome.runs.push(id.clone());
                runs_of.push(run.invocation.clone());
            }
        }
        outcome.runs.sort();
        // An aborted run ends its invocation: no further repeat starts.
        for (invocation, stop) in self.invocations.lock().expect("invocations lock").iter() {
            let named = target.is_none_or(|t| t == invocation);
            if (named || runs_of.contains(invocation)) && stop.borrow().is_none() {
                stop.send_replace(Some(who.to_string()));
                if !runs_of.contains(invocation) {
                    outcome.invocations.push(invocation.clone());
                }
            }
        }
        for agent in self.registry.all() {
            for (fault_id, entry) in agent.live_faults() {
                let ours = target.is_none_or(|t| t == entry.run_id)
                    || outcome.runs.contains(&entry.run_id);
                if !ours {
                    continue;
                }
                let error = match agent.revert(&fault_id).await {
                    Ok(x) => x.report.failure.map(|f| f.message),
                    Err(e) => Some(e.to_string()),
                };
                outcome.faults.push(AbortedFault {
                    fault_id,
                    run_id: entry.run_id,
                    agent: agent.name.clone(),
                    kind: entry.kind,
                    error,
                });
            }
        }
        outcome
    }
}

/// Waits `cooldown` between two repeats; an abort of the invocation, or shutdown, ends it at
/// once.
async fn cool_down(
    cooldown: Duration,
    stopped: &mut watch::Receiver<Option<String>>,
    closing: &CancellationToken,
) {
    if cooldown.is_zero() {
        return;
    }
    tokio::select! {
        _ = tokio::time::timeout(cooldown, stopped.wait_for(Option::is_some)) => {}
        _ = closing.cancelled() => {}
    }
}

/// A run going on: what an abort needs.
struct ActiveRun {
    invocation: String,
    cancel: watch::Sender<Option<StopCause>>,
    /// Who aborted it, once someone has.
    aborted_by: Option<String>,
    /// Notes added while it goes on, for its report.
    annotations: Vec<crate::annotation::Annotation>,
    /// Set by `gameday revert` for a run with `revert = "manual"`.
    revert_now: watch::Sender<bool>,
    /// Its scenario's revert policy.
    revert: crate::scenario::RevertPolicy,
}
