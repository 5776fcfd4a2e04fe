//! The run engine: preflight, steady state, inject, observe, revert, grade — for every repeat of
//! a scenario — and the table of active runs that operators can abort.

pub mod observer;
pub mod preflight;
pub mod progress;
mod reconcile;
mod recorder;
mod run;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::registry::AgentRegistry;

use crate::report::{summarize, ScenarioReport};
use crate::scenario::{Expectation, Scenario};
pub use observer::{RunObserver, RunStart};
pub use reconcile::OrphanRevert;

pub use progress::{Phase, Progress, ProgressEvent};

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
    active: Mutex<HashMap<String, watch::Sender<Option<StopCause>>>>,
    observers: Vec<Arc<dyn RunObserver>>,
    validator: crate::limits::Validator,
    /// Cancelled when the controller starts shutting down: no run starts after that.
    closing: CancellationToken,
    /// Every task the controller spawns for operators and agents, joined at shutdown.
    tasks: TaskTracker,
}

impl Engine {
    /// An engine dispatching to `registry`'s agents.
    pub fn new(registry: Arc<AgentRegistry>) -> Engine {
        Engine {
            registry,
            active: Mutex::new(HashMap::new()),
            observers: Vec::new(),
            validator: crate::limits::Validator::default(),
            closing: CancellationToken::new(),
            tasks: TaskTracker::new(),
        }
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
            for cancel in active.values() {
                let _ = cancel.send(Some(StopCause::Shutdown));
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

    /// Runs every repeat of `scenario` and returns the graded report.
    pub async fn run_scenario(
        &self,
        file: &str,
        source: &str,
        scenario: &Scenario,
        progress: &Progress,
    ) -> ScenarioReport {
        let mut report = ScenarioReport {
            scenario: scenario.name.clone(),
            file: file.to_string(),
            expect: match scenario.expect {
                Expectation::Recovery => "recovery".into(),
                Expectation::NoImpact => "no_impact".into(),
            },
            rto_us: scenario.rto.get().as_micros() as u64,
            error: None,
            runs: Vec::new(),
            summary: summarize(&[], scenario.min_pass_rate, false),
        };
        for index in 1..=scenario.repeat {
            let run_id = new_run_id();
            let resolved = preflight::resolve(scenario, &self.registry)
                .and_then(|t| Ok((t, preflight::resolve_faults(scenario, &self.registry)?)));
            // Every fault checked by its agents before the steady-state wait, not after it.
            let resolved = match resolved {
                Ok((targets, faults)) => preflight::check_faults(&run_id, &targets, &faults)
                    .await
                    .map(|()| (targets, faults)),
                Err(e) => Err(e),
            };
            let (targets, faults) = match resolved {
                Ok(t) => t,
                Err(e) => {
                    let _ = progress.send(ProgressEvent {
                        line: format!("preflight failed: {e}"),
                        phase: Phase::Graded,
                        run: index,
                        runs: scenario.repeat,
                        rto_ms: scenario.rto.get().as_millis() as u64,
                        injected_unix_ms: None,
                    });
                    if report.runs.is_empty() {
                        report.error = Some(format!("preflight: {e}"));
                    } else {
                        report.runs.push(run::preflight_failed(run_id, index, e));
                    }
                    break;
                }
            };
            let (cancel_tx, cancel) = watch::channel(None);
            {
                // Checked under the lock shutdown takes to stop runs, so none slips through.
                let mut active = self.active.lock().expect("active runs lock");
                if self.closing.is_cancelled() {
                    if report.runs.is_empty() {
                        report.error = Some("the controller is shutting down; nothing ran".into());
                    }
                    break;
                }
                active.insert(run_id.clone(), cancel_tx);
            }
            let ctx = run::RunCtx {
                scenario,
                run_id: run_id.clone(),
                index,
                targets,
                faults,
                progress,
                registry: &self.registry,
                observers: &self.observers,
                injected_unix_ms: Default::default(),
                file,
                source,
                cancel,
            };
            // A bug that panics a run must still grade it ERROR and record it, never leave it
            // `running`; its faults are reverted by the sweep below.
            let result = match AssertUnwindSafe(run::run_once(ctx)).catch_unwind().await {
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
            let stopped_by = self
                .active
                .lock()
                .expect("active runs lock")
                .remove(&run_id)
                .and_then(|cancel| *cancel.borrow());
            self.revert_leftovers(&run_id).await;
            let _ = progress.send(ProgressEvent {
                line: format!(
                    "run {index}/{}: {} — {}",
                    scenario.repeat, result.verdict, result.reason
                ),
                phase: Phase::Graded,
                run: index,
                runs: scenario.repeat,
                rto_ms: scenario.rto.get().as_millis() as u64,
                injected_unix_ms: None,
            });
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
            if index < scenario.repeat && !scenario.cooldown.get().is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(scenario.cooldown.get()) => {}
                    _ = self.closing.cancelled() => {}
                }
            }
        }
        report.summary = summarize(&report.runs, scenario.min_pass_rate, report.error.is_some());
        for o in &self.observers {
            o.scenario_finished(&report);
        }
        report
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

    /// Aborts one run, or all of them, and reverts every live fault agents hold for them.
    /// Returns (runs aborted, faults reverted).
    pub async fn abort(&self, run_id: Option<&str>) -> (u32, u32) {
        let mut aborted = 0;
        for (id, cancel) in self.active.lock().expect("active runs lock").iter() {
            if run_id.is_none_or(|r| r == id) {
                let _ = cancel.send(Some(StopCause::Operator));
                aborted += 1;
            }
        }
        let mut reverted = 0;
        for agent in self.registry.all() {
            for (fault_id, entry) in agent.live_faults() {
                if run_id.is_none_or(|r| r == entry.run_id)
                    && agent
                        .revert(&fault_id)
                        .await
                        .is_ok_and(|x| x.report.failure.is_none())
                {
                    reverted += 1;
                }
            }
        }
        (aborted, reverted)
    }
}

fn new_run_id() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let ms = crate::timeline::unix_ms_now();
    format!("run-{ms:x}-{}", SEQ.fetch_add(1, Ordering::Relaxed))
}
