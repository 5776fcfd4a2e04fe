//! Remediation steps during a run (`[[remediation]]`): each waits for its trigger while the run
//! observes (the detecting alert arriving, a delay after the fault, a stage reached), then runs
//! on its own task (a command on an agent, or a runbook call), so a long step never delays
//! probes, reverts or grading. When observing ends, running steps are waited for (up to their
//! timeout) and steps whose trigger never came are recorded as not run.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use gameday_proto::v1;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::progress::{Progress, ProgressEvent};
use super::run::{failure_text, micros, saturating_ms, saturating_us};
use crate::grade::fmt_us;
use crate::registry::{DispatchError, StepReports};
use crate::remediation::{tail, StepOutcome, StepRecord};
use crate::scenario::{RemediationStep, StepAction, StepCommand, StepTrigger};
use crate::timeline::{effect_moment, Moment};
use crate::webhook::runbook::{Runbook, RunbookCall};

/// How long after a step's timeout the agent may take to end its process group (SIGTERM, then
/// SIGKILL 2 s later) and report.
const END_GRACE: Duration = Duration::from_secs(5);

/// An agent as a remediation step sees it.
pub trait StepAgent: Send + Sync {
    /// Its name.
    fn name(&self) -> &str;
    /// It answers RunStep; older agents do not.
    fn runs_steps(&self) -> bool;
    /// Sends `step` and returns its reports as they arrive.
    fn run_step(&self, step: v1::RunStep) -> BoxFuture<'_, Result<StepReports, DispatchError>>;
}

/// How a step is carried out, resolved at preflight.
#[derive(Clone)]
pub enum StepDriver {
    /// On this agent.
    Agent(Arc<dyn StepAgent>),
    /// By calling this runbook.
    Runbook(Arc<Runbook>),
}

/// The run's steps: waiting for their trigger, running, or done.
pub(super) struct Remediator {
    slots: Vec<Slot>,
    run: RunInfo,
}

/// What every step of one run shares.
#[derive(Clone)]
pub(super) struct RunInfo {
    pub run_id: String,
    /// The scenario's name.
    pub scenario: String,
    pub epoch: Instant,
    /// When the faults took effect, µs since `epoch`.
    pub inject_us: u64,
    /// The same moment on the wall clock, ms since the Unix epoch.
    pub fault_unix_ms: u64,
    pub progress: Progress,
    /// Progress events are this with another line.
    pub template: ProgressEvent,
}

struct Slot {
    step: RemediationStep,
    driver: StepDriver,
    state: State,
}

enum State {
    Waiting,
    Running {
        record: Arc<Mutex<StepRecord>>,
        task: JoinHandle<()>,
    },
}

/// What the observe loop knows each time it looks, for the triggers.
pub(super) struct Triggers<'a> {
    /// µs since the epoch, now.
    pub now_us: u64,
    /// When the `[detect]` alert arrived, if it has.
    pub alert_us: Option<u64>,
    /// When a stage was reached, if it has been.
    pub stage_reached: &'a dyn Fn(&str) -> Option<u64>,
}

impl Remediator {
    /// The steps of `run`; `drivers` are in the scenario's order.
    pub(super) fn new(
        steps: &[RemediationStep],
        drivers: &[StepDriver],
        run: RunInfo,
    ) -> Remediator {
        Remediator {
            slots: steps
                .iter()
                .zip(drivers)
                .map(|(step, driver)| Slot {
                    step: step.clone(),
                    driver: driver.clone(),
                    state: State::Waiting,
                })
                .collect(),
            run,
        }
    }

    /// Some step still waits for the alert.
    pub(super) fn awaits_alert(&self) -> bool {
        self.slots
            .iter()
            .any(|s| matches!(s.state, State::Waiting) && s.step.when == StepTrigger::Alert)
    }

    /// Starts every waiting step whose trigger has come.
    pub(super) fn poll(&mut self, t: &Triggers<'_>) {
        for slot in &mut self.slots {
            if !matches!(slot.state, State::Waiting) {
                continue;
            }
            let due = match &slot.step.when {
                StepTrigger::Alert => t.alert_us,
                StepTrigger::After(d) => {
                    Some(self.run.inject_us.saturating_add(saturating_us(d.get())))
                }
                StepTrigger::Stage(name) => (t.stage_reached)(name),
            };
            if let Some(at) = due.filter(|at| *at <= t.now_us) {
                slot.state = launch(&self.run, &slot.step, &slot.driver, at);
            }
        }
    }

    /// The steps' records once observing has ended at `ended_us`: running steps are waited
    /// for, up to their timeout, unless the run was `stopped` (then their end is unknown).
    pub(super) async fn finish(self, ended_us: u64, stopped: bool) -> Vec<StepRecord> {
        let mut records = Vec::with_capacity(self.slots.len());
        for slot in self.slots {
            let record = match slot.state {
                State::Waiting => not_run(&self.run, &slot.step, ended_us, stopped),
                State::Running { record, task } => {
                    if stopped {
                        task.abort();
                        let mut r = record.lock().expect("step record lock").clone();
                        if r.ended.is_none() {
                            r.outcome = StepOutcome::Unknown {
                                why: "the run was stopped while it ran (the agent lets it run to \
                                      its end or timeout)"
                                    .into(),
                            };
                        }
                        r
                    } else {
                        let _ = task.await;
                        let r = record.lock().expect("step record lock").clone();
                        r
                    }
                }
            };
            records.push(record);
        }
        records
    }
}

fn not_run(run: &RunInfo, step: &RemediationStep, ended_us: u64, stopped: bool) -> StepRecord {
    let why = if stopped {
        "the run was stopped before its trigger came".to_string()
    } else {
        match &step.when {
            StepTrigger::Alert => "no alert matching [detect] arrived while observing".into(),
            StepTrigger::After(d) => format!(
                "observing ended at +{}, before +{d} after the fault",
                fmt_us(ended_us.saturating_sub(run.inject_us))
            ),
            StepTrigger::Stage(s) => format!("stage {s} was not reached while observing"),
        }
    };
    StepRecord {
        outcome: StepOutcome::NotRun { why },
        ..blank(step, None)
    }
}

fn blank(step: &RemediationStep, triggered_us: Option<u64>) -> StepRecord {
    StepRecord {
        name: step.name.clone(),
        place: step.action.place(),
        command: match &step.action {
            StepAction::Agent { command, .. } => command.to_string(),
            StepAction::Webhook { runbook } => format!("POST to runbook {runbook}"),
        },
        trigger: step.when.to_string(),
        triggered_us,
        started: None,
        ended: None,
        outcome: StepOutcome::Unknown {
            why: "still running".into(),
        },
        output_tail: String::new(),
    }
}

/// Starts `step` on its own task; its record fills in as reports arrive.
fn launch(run: &RunInfo, step: &RemediationStep, driver: &StepDriver, triggered_us: u64) -> State {
    let record = Arc::new(Mutex::new(blank(step, Some(triggered_us))));
    let task = tokio::spawn(execute(
        run.clone(),
        step.clone(),
        driver.clone(),
        record.clone(),
    ));
    State::Running { record, task }
}

async fn execute(
    run: RunInfo,
    step: RemediationStep,
    driver: StepDriver,
    record: Arc<Mutex<StepRecord>>,
) {
    match driver {
        StepDriver::Agent(agent) => on_agent(&run, &step, agent.as_ref(), &record).await,
        StepDriver::Runbook(runbook) => on_runbook(&run, &step, &runbook, &record).await,
    }
    let r = record.lock().expect("step record lock").clone();
    let took = match (r.started, r.ended) {
        (Some(s), Some(e)) => format!(" after {}", fmt_us(e.at_us.saturating_sub(s.at_us))),
        _ => String::new(),
    };
    say(
        &run,
        format!("remediation step {}{took}: {}", r.name, r.outcome),
    );
    if !r.output_tail.is_empty() && !matches!(r.outcome, StepOutcome::Succeeded { .. }) {
        for line in r.output_lines(5) {
            say(&run, format!("  {} | {line}", r.name));
        }
    }
}

/// The request an agent gets for `step` (a check, or the run itself).
pub(super) fn request(run_id: &str, step: &RemediationStep, check_only: bool) -> v1::RunStep {
    let (argv, shell) = match &step.action {
        StepAction::Agent {
            command: StepCommand::Argv(argv),
            ..
        } => (argv.clone(), String::new()),
        StepAction::Agent {
            command: StepCommand::Shell(line),
            ..
        } => (Vec::new(), line.clone()),
        StepAction::Webhook { .. } => (Vec::new(), String::new()),
    };
    v1::RunStep {
        step_id: format!("{run_id}/step/{}", step.name),
        run_id: run_id.to_string(),
        argv,
        shell,
        timeout_ms: saturating_ms(step.timeout.get()),
        check_only,
    }
}

async fn on_agent(
    run: &RunInfo,
    step: &RemediationStep,
    agent: &dyn StepAgent,
    record: &Mutex<StepRecord>,
) {
    let set = |f: &dyn Fn(&mut StepRecord)| f(&mut record.lock().expect("step record lock"));
    let sent = Instant::now();
    let mut reports = match agent.run_step(request(&run.run_id, step, false)).await {
        Ok(r) => r,
        Err(e) => {
            set(&|r| {
                r.outcome = StepOutcome::Failed {
                    how: format!("not started: {e}"),
                }
            });
            return;
        }
    };
    let deadline = sent + step.timeout.get() + END_GRACE + crate::registry::ANSWER_TIMEOUT;
    let mut started: Option<Moment> = None;
    loop {
        let next = tokio::time::timeout_at(deadline, reports.recv()).await;
        let (report, received) = match next {
            Ok(Some(r)) => r,
            Ok(None) => {
                let why = format!(
                    "agent {} disconnected {}",
                    agent.name(),
                    if started.is_some() {
                        "while the step ran (it lets the step run to its end or timeout)"
                    } else {
                        "before the step started"
                    }
                );
                set(&|r| r.outcome = StepOutcome::Unknown { why: why.clone() });
                return;
            }
            Err(_) => {
                let why = format!(
                    "agent {} reported no end within its timeout ({}) and {} more",
                    agent.name(),
                    step.timeout,
                    gameday_proto::Duration::from(END_GRACE + crate::registry::ANSWER_TIMEOUT)
                );
                set(&|r| r.outcome = StepOutcome::Unknown { why: why.clone() });
                return;
            }
        };
        if let Some(f) = &report.failure {
            let how = format!("not started: {}", failure_text(f));
            set(&|r| r.outcome = StepOutcome::Failed { how: how.clone() });
            return;
        }
        match v1::StepPhase::try_from(report.phase).unwrap_or(v1::StepPhase::Unspecified) {
            v1::StepPhase::Started => {
                let at = effect_moment(
                    micros(run.epoch, sent),
                    micros(run.epoch, received),
                    report.elapsed_us,
                    report.since_us,
                );
                started = Some(at);
                set(&|r| r.started = Some(at));
                say(
                    run,
                    format!(
                        "remediation step {} started on {} at +{} (pid {}, {})",
                        step.name,
                        agent.name(),
                        fmt_us(at.at_us),
                        report.pid,
                        step.when
                    ),
                );
            }
            v1::StepPhase::Ended => {
                // The agent timed the step on its own clock: the end is the start plus that.
                let start = started.unwrap_or_else(|| {
                    effect_moment(
                        micros(run.epoch, sent),
                        micros(run.epoch, received),
                        0,
                        report.since_us.saturating_add(report.elapsed_us),
                    )
                });
                let ended = Moment {
                    at_us: start.at_us.saturating_add(report.elapsed_us),
                    uncertainty_us: start.uncertainty_us,
                };
                let outcome = ended_outcome(&report, step);
                let output = tail(&report.output_tail);
                set(&|r| {
                    r.started = Some(start);
                    r.ended = Some(ended);
                    r.outcome = outcome.clone();
                    r.output_tail = output.clone();
                });
                return;
            }
            v1::StepPhase::Checked | v1::StepPhase::Unspecified => {}
        }
    }
}

/// How an ENDED report says the command ended.
fn ended_outcome(report: &v1::StepReport, step: &RemediationStep) -> StepOutcome {
    if report.timed_out {
        return StepOutcome::Failed {
            how: format!(
                "timed out after {}; the agent ended its process group",
                step.timeout
            ),
        };
    }
    match (report.exited, report.exit_code) {
        (true, 0) => StepOutcome::Succeeded {
            how: "exit 0".into(),
        },
        (true, code) => StepOutcome::Failed {
            how: format!("exit {code}"),
        },
        (false, _) if !report.signal.is_empty() => StepOutcome::Failed {
            how: format!("killed by {}", report.signal),
        },
        (false, _) => StepOutcome::Unknown {
            why: "the agent reported an end without an exit status or signal".into(),
        },
    }
}

async fn on_runbook(
    run: &RunInfo,
    step: &RemediationStep,
    runbook: &Runbook,
    record: &Mutex<StepRecord>,
) {
    let call = RunbookCall {
        run_id: run.run_id.clone(),
        scenario: run.scenario.clone(),
        step: step.name.clone(),
        trigger: step.when.to_string(),
        fault_unix_ms: run.fault_unix_ms,
    };
    let start = Moment {
        at_us: micros(run.epoch, Instant::now()),
        uncertainty_us: 0,
    };
    {
        let mut r = record.lock().expect("step record lock");
        r.started = Some(start);
        r.command = format!("POST {}", runbook.redacted());
    }
    say(
        run,
        format!(
            "remediation step {} calls its runbook at +{} ({})",
            step.name,
            fmt_us(start.at_us),
            step.when
        ),
    );
    let answer = runbook.call(&call, step.timeout.get()).await;
    let ended = Moment {
        at_us: micros(run.epoch, Instant::now()),
        uncertainty_us: 0,
    };
    let mut r = record.lock().expect("step record lock");
    r.ended = Some(ended);
    match answer {
        Ok(a) => {
            let how = format!("HTTP {}", a.status);
            r.outcome = if (200..300).contains(&a.status) {
                StepOutcome::Succeeded { how }
            } else {
                StepOutcome::Failed { how }
            };
            r.output_tail = tail(&a.body);
        }
        Err(e) => r.outcome = StepOutcome::Failed { how: e },
    }
}

fn say(run: &RunInfo, line: String) {
    let _ = run.progress.send(ProgressEvent {
        line: format!("{}: {line}", run.template.line),
        ..run.template.clone()
    });
}

#[cfg(test)]
#[path = "remediate_tests.rs"]
mod tests;
