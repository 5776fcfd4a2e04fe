//! Test doubles for the run's phases: a scripted agent behind [`FaultTransport`] (it checks,
//! applies and reverts as told, after a fixed round trip), a scripted
//! probe timeline behind [`SampleSource`], and a fixture that builds a run's context around
//! them. Everything reads tokio's clock, so tests run under the paused clock in virtual time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::FutureExt as _;
use gameday_proto::v1;
use gameday_proto::Fault;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::progress::ProgressEvent;
use super::run::{errored, RunCtx};
use super::samples::SampleSource;
use super::transport::FaultTransport;
use super::{RunIdentity, StartedBy, StopCause};
use crate::registry::{DispatchError, Exchange};
use crate::report::RunReport;
use crate::scenario::ScenarioFile;
use crate::timeline::{ProbeTimeline, Sample};

/// What a scripted agent was asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Op {
    Check,
    Apply,
    Revert,
}

/// How a scripted agent answers one kind of request.
#[derive(Clone, Debug)]
enum Answer {
    Done,
    Refused(String),
    HungUp,
}

/// An agent that answers after a fixed round trip, the effect half-way through it, as scripted.
pub(super) struct ScriptedAgent {
    name: String,
    round_trip: Duration,
    created: Instant,
    apply: Mutex<Answer>,
    revert: Mutex<Answer>,
    warnings: Mutex<Vec<String>>,
    up_to_date: AtomicBool,
    calls: Mutex<Vec<(Op, u64)>>,
    deadlines_ms: Mutex<Vec<u64>>,
}

impl ScriptedAgent {
    /// An agent that applies and reverts everything, `round_trip` after being asked.
    pub(super) fn new(name: &str, round_trip: Duration) -> Arc<ScriptedAgent> {
        Arc::new(ScriptedAgent {
            name: name.into(),
            round_trip,
            created: Instant::now(),
            apply: Mutex::new(Answer::Done),
            revert: Mutex::new(Answer::Done),
            warnings: Mutex::new(Vec::new()),
            up_to_date: AtomicBool::new(true),
            calls: Mutex::new(Vec::new()),
            deadlines_ms: Mutex::new(Vec::new()),
        })
    }

    /// Its applies, and preflight's checks of them, are refused as invalid with `message`.
    pub(super) fn refuse_apply(&self, message: &str) {
        *self.apply.lock().unwrap() = Answer::Refused(message.into());
    }

    /// Its answers to preflight's checks carry `warning`.
    pub(super) fn warn(&self, warning: &str) {
        self.warnings.lock().unwrap().push(warning.into());
    }

    /// It neither answers checks nor honours process scopes, as agents before them.
    pub(super) fn predates_checks_and_scopes(&self) {
        self.up_to_date.store(false, Ordering::Relaxed);
    }

    /// The deadline each apply gave it: how long it keeps the fault at most on its own.
    pub(super) fn deadlines_ms(&self) -> Vec<u64> {
        self.deadlines_ms.lock().unwrap().clone()
    }

    /// The times (ms) it was asked to apply a fault.
    pub(super) fn applied(&self) -> Vec<u64> {
        self.calls()
            .into_iter()
            .filter_map(|(op, ms)| (op == Op::Apply).then_some(ms))
            .collect()
    }

    /// Its reverts fail with a system error, `message`.
    pub(super) fn refuse_revert(&self, message: &str) {
        *self.revert.lock().unwrap() = Answer::Refused(message.into());
    }

    /// Its stream closes before it answers anything.
    pub(super) fn hang_up(&self) {
        *self.apply.lock().unwrap() = Answer::HungUp;
        *self.revert.lock().unwrap() = Answer::HungUp;
    }

    /// Every request, with when it was sent: milliseconds since the agent was made (the
    /// fixture's epoch, under a paused clock).
    pub(super) fn calls(&self) -> Vec<(Op, u64)> {
        self.calls.lock().unwrap().clone()
    }

    async fn answer(&self, op: Op, fault_id: &str) -> Result<Exchange, DispatchError> {
        let sent_at = Instant::now();
        let ms = sent_at.duration_since(self.created).as_millis() as u64;
        self.calls.lock().unwrap().push((op, ms));
        let (answer, phase, kind) = match op {
            Op::Check => (
                self.apply.lock().unwrap().clone(),
                v1::FaultPhase::Checked,
                v1::FailureKind::Invalid,
            ),
            Op::Apply => (
                self.apply.lock().unwrap().clone(),
                v1::FaultPhase::Applied,
                v1::FailureKind::Invalid,
            ),
            Op::Revert => (
                self.revert.lock().unwrap().clone(),
                v1::FaultPhase::Reverted,
                v1::FailureKind::System,
            ),
        };
        tokio::time::sleep(self.round_trip).await;
        let failure = match answer {
            Answer::Done => None,
            Answer::Refused(message) => Some(v1::FaultFailure {
                kind: kind as i32,
                message,
            }),
            Answer::HungUp => return Err(DispatchError::Disconnected(self.name.clone())),
        };
        Ok(Exchange {
            report: v1::FaultReport {
                fault_id: fault_id.to_string(),
                phase: phase as i32,
                failure,
                warnings: match op {
                    Op::Check => self.warnings.lock().unwrap().clone(),
                    Op::Apply | Op::Revert => Vec::new(),
                },
                ..v1::FaultReport::default()
            },
            sent_at,
            received_at: Instant::now(),
        })
    }
}

impl FaultTransport for ScriptedAgent {
    fn name(&self) -> &str {
        &self.name
    }

    fn apply<'a>(
        &'a self,
        apply: v1::ApplyFault,
        _fault: &'a Fault,
    ) -> BoxFuture<'a, Result<Exchange, DispatchError>> {
        self.deadlines_ms.lock().unwrap().push(apply.deadline_ms);
        async move { self.answer(Op::Apply, &apply.fault_id).await }.boxed()
    }

    fn revert<'a>(&'a self, fault_id: &'a str) -> BoxFuture<'a, Result<Exchange, DispatchError>> {
        self.answer(Op::Revert, fault_id).boxed()
    }

    fn checks_faults(&self) -> bool {
        self.up_to_date.load(Ordering::Relaxed)
    }

    fn process_scopes(&self) -> bool {
        self.up_to_date.load(Ordering::Relaxed)
    }

    fn check<'a>(
        &'a self,
        fault_id: &'a str,
        _run_id: &'a str,
        _spec: v1::FaultSpec,
    ) -> BoxFuture<'a, Result<Exchange, DispatchError>> {
        self.answer(Op::Check, fault_id).boxed()
    }
}

/// One probe, `http`, whose samples are written in advance: one every interval from the epoch,
/// each answered 1 ms after it started, and visible once answered.
pub(super) struct ScriptedProbes {
    epoch: Instant,
    script: ProbeTimeline,
    crash_at: Option<Duration>,
}

impl ScriptedProbes {
    /// How far the script goes.
    const HORIZON_MS: u64 = 30_000;

    /// A check every `interval_ms`, good when `ok(ms since the epoch)` says so.
    pub(super) fn new(epoch: Instant, interval_ms: u64, ok: impl Fn(u64) -> bool) -> Self {
        let samples = (0..Self::HORIZON_MS)
            .step_by(interval_ms as usize)
            .map(|t| {
                let good = ok(t);
                Sample {
                    start_us: t * 1000,
                    end_us: t * 1000 + 1000,
                    ok: good,
                    error: if good {
                        String::new()
                    } else {
                        "connection refused".into()
                    },
                }
            })
            .collect();
        ScriptedProbes {
            epoch,
            script: ProbeTimeline {
                name: "http".into(),
                recovered_after: 3,
                samples,
                skipped: 0,
                seed: None,
            },
            crash_at: None,
        }
    }

    /// A service that never fails, sampled every 10 ms.
    pub(super) fn up_all_along(epoch: Instant) -> Self {
        Self::new(epoch, 10, |_| true)
    }

    /// A service down from `from_ms` until `to_ms` (milliseconds since the epoch).
    pub(super) fn down(epoch: Instant, from_ms: u64, to_ms: u64) -> Self {
        Self::new(epoch, 10, move |t| !(from_ms..to_ms).contains(&t))
    }

    /// A probe that never answers.
    pub(super) fn silent(epoch: Instant) -> Self {
        let mut probes = Self::up_all_along(epoch);
        probes.script.samples.clear();
        probes
    }

    /// The probe's task dies `after` the epoch.
    pub(super) fn crashing(mut self, after: Duration) -> Self {
        self.crash_at = Some(after);
        self
    }

    /// The whole script, as the grader would get it at the end of the run.
    pub(super) fn all(&self) -> Vec<ProbeTimeline> {
        vec![self.script.clone()]
    }
}

impl SampleSource for ScriptedProbes {
    fn snapshot(&self) -> Vec<ProbeTimeline> {
        let now_us = super::run::micros(self.epoch, Instant::now());
        let mut seen = self.script.clone();
        seen.samples.retain(|s| s.end_us <= now_us);
        vec![seen]
    }

    fn crashed(&self) -> Option<String> {
        self.crash_at
            .is_some_and(|at| self.epoch.elapsed() >= at)
            .then(|| self.script.name.clone())
    }

    async fn stop(self) -> Vec<ProbeTimeline> {
        self.snapshot()
    }
}

/// A run's context around scripted agents: one scenario, its targets, progress and a stop
/// switch, with the epoch at its making.
pub(super) struct Fixture {
    pub input: ScenarioFile,
    pub faults: Vec<Fault>,
    pub targets: Vec<Arc<ScriptedAgent>>,
    pub epoch: Instant,
    identity: RunIdentity,
    progress: mpsc::UnboundedSender<ProgressEvent>,
    lines: mpsc::UnboundedReceiver<ProgressEvent>,
    stop: Arc<watch::Sender<Option<StopCause>>>,
    /// Alerts the run reads, for `[detect]`.
    pub alerts: Option<Arc<crate::alerts::AlertLog>>,
    revert_now: Arc<watch::Sender<bool>>,
    /// How the scenario's remediation steps run.
    pub steps: Vec<super::remediate::StepDriver>,
}

impl Fixture {
    /// A kill (instant), RTO 3 s, steady state 1 s, window 10 s, a probe every 10 ms.
    pub(super) const KILL: &'static str = r#"name = "kill"
rto = "3s"
steady_state = "1s"
observe = "10s"
[targets]
agents = ["web-1"]
[[faults]]
kind = "process_kill"
pid_file = "/run/x.pid"
[[probes]]
name = "http"
kind = "http"
url = "http://127.0.0.1:1/"
interval = "10ms"
timeout = "100ms"
recovered_after = 3
"#;

    /// As [`Fixture::KILL`], with a pause held for 2 s instead.
    pub(super) const PAUSE: &'static str = r#"name = "pause"
rto = "3s"
steady_state = "1s"
observe = "10s"
[targets]
agents = ["web-1"]
[[faults]]
kind = "process_pause"
cmdline = "^redis-server"
duration = "2s"
[[probes]]
name = "http"
kind = "http"
url = "http://127.0.0.1:1/"
interval = "10ms"
timeout = "100ms"
recovered_after = 3
"#;

    /// A run of `scenario` (TOML) on one agent, web-1, with a 2 ms round trip.
    pub(super) fn new(scenario: &str) -> Fixture {
        let input = ScenarioFile::parse("s.toml", scenario.to_string()).expect("a valid scenario");
        let (progress, lines) = mpsc::unbounded_channel();
        Fixture {
            faults: input.scenario.faults.clone(),
            input,
            targets: vec![ScriptedAgent::new("web-1", Duration::from_millis(2))],
            epoch: Instant::now(),
            identity: RunIdentity::new(StartedBy::Unspecified),
            progress,
            lines,
            stop: Arc::new(watch::channel(None).0),
            alerts: None,
            revert_now: Arc::new(watch::channel(false).0),
            steps: vec![],
        }
    }

    /// [`Fixture::new`] with top-level settings (`revert = "on_recovery"`) added.
    pub(super) fn with(scenario: &str, settings: &str) -> Fixture {
        Fixture::new(&format!("{settings}\n{scenario}"))
    }

    /// The run's context.
    pub(super) fn ctx(&self) -> RunCtx<'_> {
        RunCtx {
            input: &self.input,
            run_id: "r1-1".into(),
            index: 1,
            targets: self
                .targets
                .iter()
                .map(|t| t.clone() as Arc<dyn FaultTransport>)
                .collect(),
            faults: self.faults.clone(),
            progress: &self.progress,
            cancel: self.stop.subscribe(),
            observers: &[],
            identity: &self.identity,
            injected_unix_ms: Default::default(),
            alerts: self.alerts.as_ref(),
            revert_now: self.revert_now.subscribe(),
            steps: self.steps.clone(),
        }
    }

    /// An operator asks to revert `after` the epoch (`gameday revert`).
    pub(super) fn revert_after(&self, after: Duration) {
        let revert = self.revert_now.clone();
        let at = self.epoch + after;
        tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            revert.send_replace(true);
        });
    }

    /// A fresh record for the run.
    pub(super) fn report(&self) -> RunReport {
        let mut report = errored("r1-1".into(), 1, String::new());
        report.targets = self.targets.iter().map(|t| t.name().to_string()).collect();
        report
    }

    /// Stops the run `after` the epoch, as an operator's abort or a shutdown would.
    pub(super) fn stop_after(&self, after: Duration, cause: StopCause) {
        let stop = self.stop.clone();
        let at = self.epoch + after;
        tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            stop.send_replace(Some(cause));
        });
    }

    /// Where the run's progress goes.
    pub(super) fn progress(&self) -> super::progress::Progress {
        self.progress.clone()
    }

    /// Every progress line so far.
    pub(super) fn lines(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Ok(e) = self.lines.try_recv() {
            lines.push(e.line);
        }
        lines
    }

    /// Runs every phase after preflight against `probes`.
    pub(super) async fn run(&self, probes: ScriptedProbes) -> RunReport {
        super::run::run_phases(&mut self.ctx(), self.report(), probes, self.epoch).await
    }
}

/// An agent that runs remediation steps as scripted: after a 2 ms round trip it starts the
/// step, which then ends after `runs_for` with `exit_code`; or it refuses every step.
pub(super) struct ScriptedStepAgent {
    runs_for: Duration,
    exit_code: i32,
    refuse: Option<String>,
    /// When each step was asked for (ms since the agent's making), and whether as a check.
    pub asked: Mutex<Vec<(u64, bool)>>,
    created: Instant,
}

impl ScriptedStepAgent {
    pub(super) fn new(runs_for: Duration, exit_code: i32) -> Arc<ScriptedStepAgent> {
        Self::answering(runs_for, exit_code, None)
    }

    /// An agent whose policy refuses every step with `message`.
    pub(super) fn refusing(message: &str) -> Arc<ScriptedStepAgent> {
        Self::answering(Duration::ZERO, 0, Some(message.into()))
    }

    fn answering(runs_for: Duration, exit_code: i32, refuse: Option<String>) -> Arc<Self> {
        Arc::new(ScriptedStepAgent {
            runs_for,
            exit_code,
            refuse,
            asked: Mutex::new(Vec::new()),
            created: Instant::now(),
        })
    }
}

impl super::remediate::StepAgent for ScriptedStepAgent {
    fn name(&self) -> &str {
        "db-2"
    }

    fn runs_steps(&self) -> bool {
        true
    }

    fn run_step(
        &self,
        step: v1::RunStep,
    ) -> BoxFuture<'_, Result<crate::registry::StepReports, DispatchError>> {
        self.asked
            .lock()
            .unwrap()
            .push((self.created.elapsed().as_millis() as u64, step.check_only));
        let (tx, rx) = mpsc::unbounded_channel();
        let (runs_for, exit_code, refuse) = (self.runs_for, self.exit_code, self.refuse.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            let report = |phase: v1::StepPhase| v1::StepReport {
                step_id: step.step_id.clone(),
                phase: phase as i32,
                ..v1::StepReport::default()
            };
            let failure = refuse.map(|message| v1::FaultFailure {
                kind: v1::FailureKind::Policy as i32,
                message,
            });
            if step.check_only || failure.is_some() {
                let phase = if step.check_only {
                    v1::StepPhase::Checked
                } else {
                    v1::StepPhase::Started
                };
                let answer = v1::StepReport {
                    failure,
                    ..report(phase)
                };
                tokio::time::sleep(Duration::from_millis(1)).await;
                let _ = tx.send((answer, Instant::now()));
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
            let _ = tx.send((
                v1::StepReport {
                    pid: 4242,
                    ..report(v1::StepPhase::Started)
                },
                Instant::now(),
            ));
            tokio::time::sleep(runs_for).await;
            let _ = tx.send((
                v1::StepReport {
                    exited: true,
                    exit_code,
                    elapsed_us: runs_for.as_micros() as u64,
                    output_tail: format!("promoted\nexit {exit_code}\n"),
                    ..report(v1::StepPhase::Ended)
                },
                Instant::now(),
            ));
        });
        async move { Ok(rx) }.boxed()
    }
}
