//! The control channel: dial the controller over mutual TLS, register, send heartbeats, apply
//! and revert faults and run remediation steps on request, and reconnect with backoff when the
//! stream breaks — unless the failure cannot heal by retrying (see [`dial::classify`]).

pub mod dial;
pub mod enforcer;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gameday_proto::tls::TlsMaterial;
use gameday_proto::v1::agent_control_client::AgentControlClient;
use gameday_proto::v1::{
    self, agent_message, controller_message, AgentMessage, FaultPhase, FaultReport,
};
use gameday_proto::Fault;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt as _};
use tonic::transport::{Channel, Endpoint};

use crate::config::AgentConfig;
use crate::faults::{self, FaultError, Host};
use crate::journal::{Journal, JournalError};
use crate::live::LiveFaults;
use crate::policy::Policy;
use crate::steps::{StepRunner, KILL_GRACE};

/// First and longest wait between reconnect attempts.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Why the agent stopped, or could not start talking to its controller.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The controller URL or TLS settings are unusable.
    #[error("controller endpoint: {0}")]
    Endpoint(#[from] tonic::transport::Error),
    /// Connecting failed in a way retrying with the same config cannot fix.
    #[error("cannot work with the controller: {0}")]
    Permanent(dial::Failure),
    /// The journal cannot be opened or read.
    #[error("{0}")]
    Journal(#[from] JournalError),
    /// Faults a previous agent left could not all be reverted; the agent will not register
    /// with the host in an unknown state.
    #[error("could not revert faults left by a previous agent: {}", .0.join("; "))]
    Leftovers(Vec<String>),
    /// The state directory is another agent's, or its instance id cannot be kept.
    #[error("{0}")]
    Instance(#[from] crate::instance::InstanceError),
}

/// What the agent runs with.
pub struct Agent {
    /// Its configuration.
    pub config: Arc<AgentConfig>,
    /// Live faults, with the host and policy they act under.
    pub live: Arc<LiveFaults>,
    /// The TLS files, checked at start.
    tls: TlsMaterial,
    /// This installation's id, with the state directory held for this process.
    instance: crate::instance::Instance,
    /// How often its loops woke.
    pub wakeups: Arc<Wakeups>,
    /// Remediation steps running, under the policy's `[policy.remediation]`.
    steps: StepRunner,
}

/// How many times the agent's own loops woke up: the seam that shows an idle agent sleeps
/// between heartbeats instead of polling.
#[derive(Debug, Default)]
pub struct Wakeups {
    /// Passes of the enforcer (deadlines and lease).
    pub enforcer: AtomicU64,
    /// Turns of the conversation with the controller: a heartbeat sent or a message received.
    pub conversation: AtomicU64,
}

/// A fault operation queued for the worker, which runs them one at a time, in order. The
/// instant is when the request arrived, on the std clock: the effect times it is measured
/// against are real ones.
enum Work {
    Apply(v1::ApplyFault, Instant),
    Revert(String, Instant),
    Check(v1::CheckFault),
}

/// A queued operation and the stream its report goes back on.
type Job = (Work, mpsc::Sender<AgentMessage>);

/// How long shutdown waits for a fault operation in progress (a disk fill writing gigabytes)
/// before it reverts everything anyway.
const WORKER_GRACE: Duration = Duration::from_secs(20);

/// How long shutdown waits for remediation steps to end once their groups got SIGTERM (and,
/// after [`KILL_GRACE`], SIGKILL) before it kills what is left outright.
const STEPS_GRACE: Duration = KILL_GRACE.saturating_add(Duration::from_secs(3));

impl Agent {
    /// An agent with nothing live, journaling under the config's state directory, dialing
    /// with `tls` (see [`crate::config::tls::load`]).
    pub fn new(
        config: Arc<AgentConfig>,
        policy: Arc<Policy>,
        host: Arc<Host>,
        tls: TlsMaterial,
    ) -> Result<Agent, ControlError> {
        let instance = crate::instance::claim(&config.state_dir)?;
        let journal = Journal::open(&config.state_dir.join("journal"))?;
        let steps = StepRunner::new(policy.remediation.clone());
        let live = Arc::new(LiveFaults::new(host, policy, journal));
        Ok(Agent {
            config,
            live,
            tls,
            instance,
            wakeups: Arc::default(),
            steps,
        })
    }

    /// Runs until `shutdown` resolves, or until connecting fails in a way that cannot heal
    /// ([`ControlError::Permanent`]), then reverts every live fault. Before anything else it
    /// reverts whatever a crashed predecessor left in the journal.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ControlError> {
        let live = self.live.clone();
        let (recovered, failures) = tokio::task::spawn_blocking(move || live.recover())
            .await
            .map_err(|e| ControlError::Leftovers(vec![e.to_string()]))??;
        if !failures.is_empty() {
            return Err(ControlError::Leftovers(failures));
        }
        if recovered > 0 {
            tracing::warn!(
                recovered,
                "reverted faults left by a previous agent before registering"
            );
        }
        let endpoint = dial::endpoint(&self.config, &self.tls)?;
        // The lease and deadlines are enforced whether or not the controller is reachable.
        let enforcer = tokio::spawn(enforcer::run(
            self.live.clone(),
            self.config.lease.get(),
            self.wakeups.clone(),
        ));
        // One worker for the agent's whole life, not one per session: shutdown must know when
        // the last operation has finished, so no apply lands after the final revert.
        let (work_tx, work_rx) = mpsc::unbounded_channel::<Job>();
        let closing = Arc::new(AtomicBool::new(false));
        let worker = tokio::spawn(worker(self.live.clone(), work_rx, closing.clone()));
        let this = Arc::new(self);
        let session_loop = {
            let this = this.clone();
            let work_tx = work_tx.clone();
            async move {
                let mut backoff = BACKOFF_MIN;
                loop {
                    let started = tokio::time::Instant::now();
                    match this.session(&endpoint, &work_tx).await {
                        Ok(()) => tracing::warn!("controller closed the stream; reconnecting"),
                        Err(e) => {
                            let failure = dial::classify(&e);
                            match failure.outlook {
                                dial::Outlook::Permanent => return failure,
                                dial::Outlook::Unresolved => tracing::warn!(
                                    controller = %this.config.controller,
                                    cause = %failure.cause,
                                    "cannot resolve the controller's host; retrying"
                                ),
                                dial::Outlook::Retry => tracing::warn!(
                                    controller = %this.config.controller,
                                    cause = %failure.cause,
                                    "cannot reach the controller; retrying"
                                ),
                            }
                        }
                    }
                    // A session that lasted a while was healthy: start the backoff over.
                    if started.elapsed() > BACKOFF_MAX {
                        backoff = BACKOFF_MIN;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        };
        let gave_up = tokio::select! {
            failure = session_loop => {
                tracing::error!(controller = %this.config.controller, error = %failure, "giving up: retrying cannot fix this");
                Some(failure)
            }
            _ = shutdown => {
                tracing::info!("shutting down");
                None
            }
        };
        // No new apply starts from here; the one in progress, if any, finishes (bounded) and
        // is then reverted with the rest.
        closing.store(true, Ordering::SeqCst);
        // Steps get their SIGTERM now, and end while faults are reverted.
        this.steps.stop();
        drop(work_tx);
        if tokio::time::timeout(WORKER_GRACE, worker).await.is_err() {
            tracing::error!(grace = ?WORKER_GRACE, "a fault operation is still running; reverting what is live now (the journal covers the rest at the next start)");
        }
        enforcer.abort();
        for (id, e) in this.live.revert_all() {
            tracing::error!(fault = %id, error = %e, "could not revert at shutdown");
        }
        this.steps.join(STEPS_GRACE).await;
        match gave_up {
            Some(failure) => Err(ControlError::Permanent(failure)),
            None => Ok(()),
        }
    }

    /// One connected session, until the stream ends.
    async fn session(
        &self,
        endpoint: &Endpoint,
        work_tx: &mpsc::UnboundedSender<Job>,
    ) -> Result<(), dial::SessionError> {
        let channel: Channel = endpoint
            .connect()
            .await
            .map_err(dial::SessionError::Connect)?;
        let mut client = AgentControlClient::new(channel);
        let (tx, rx) = mpsc::channel::<AgentMessage>(64);
        let survey = faults::survey(self.live.policy(), self.live.host());
        let register = v1::Register {
            name: self.config.name.clone(),
            labels: self.config.labels.clone().into_iter().collect(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            capabilities: survey.capabilities,
            held_faults: self.live.held(),
            unavailable: survey.unavailable,
            instance_id: self.instance.id.clone(),
            checks_faults: true,
            process_scopes: true,
            runs_steps: true,
        };
        send(&tx, agent_message::Msg::Register(register)).await;
        let attached = client.attach(ReceiverStream::new(rx)).await;
        let result = match attached {
            Ok(inbound) => {
                tracing::info!(controller = %self.config.controller, "connected");
                let conversation = Conversation {
                    live: &self.live,
                    config: &self.config,
                    wakeups: &self.wakeups,
                    steps: &self.steps,
                };
                conversation.run(inbound.into_inner(), &tx, work_tx).await
            }
            Err(status) => Err(status),
        };
        result.map_err(dial::SessionError::Stream)
    }
}

/// What one conversation with the controller works with.
struct Conversation<'a> {
    live: &'a LiveFaults,
    config: &'a AgentConfig,
    wakeups: &'a Wakeups,
    steps: &'a StepRunner,
}

impl Conversation<'_> {
    /// Sends heartbeats at the configured period and hands the controller's requests to the
    /// worker (faults) or the step runner (steps), until `inbound` ends. It wakes for nothing
    /// else, and waits for neither.
    async fn run(
        &self,
        inbound: impl Stream<Item = Result<v1::ControllerMessage, tonic::Status>>,
        tx: &mpsc::Sender<AgentMessage>,
        work_tx: &mpsc::UnboundedSender<Job>,
    ) -> Result<(), tonic::Status> {
        let mut inbound = std::pin::pin!(inbound);
        let mut heartbeat = tokio::time::interval(self.config.heartbeat.get());
        let mut seq = 0u64;
        loop {
            tokio::select! {
                _ = heartbeat.tick() => {
                    self.wakeups.conversation.fetch_add(1, Ordering::Relaxed);
                    seq += 1;
                    send(tx, agent_message::Msg::Heartbeat(v1::Heartbeat { seq })).await;
                }
                msg = inbound.next() => {
                    self.wakeups.conversation.fetch_add(1, Ordering::Relaxed);
                    let Some(msg) = msg.transpose()? else { return Ok(()) };
                    self.live.heard_controller();
                    let Some(msg) = msg.msg else { continue };
                    match msg {
                        controller_message::Msg::Registered(r) => {
                            tracing::info!(controller_lease_ms = r.lease_ms, own_lease = %self.config.lease, "registered; the agent enforces its own lease");
                        }
                        controller_message::Msg::HeartbeatAck(_) => {}
                        controller_message::Msg::Apply(apply) => {
                            // Fault operations can take a while (a disk fill writes
                            // gigabytes); the worker runs them in order while heartbeats
                            // keep flowing.
                            let _ = work_tx.send((Work::Apply(apply, Instant::now()), tx.clone()));
                        }
                        controller_message::Msg::Revert(revert) => {
                            let _ = work_tx.send((Work::Revert(revert.fault_id, Instant::now()), tx.clone()));
                        }
                        controller_message::Msg::Check(check) => {
                            let _ = work_tx.send((Work::Check(check), tx.clone()));
                        }
                        controller_message::Msg::RunStep(step) => {
                            // Not the fault worker's queue: a step may run for minutes, and
                            // faults (and reverts) must not wait behind it.
                            self.steps.submit(step, Instant::now(), tx.clone());
                        }
                    }
                }
            }
        }
    }
}

/// Runs fault operations one at a time, in the order they arrived, and reports each on the
/// stream it came from. Once `closing` is set (shutdown) it applies nothing more.
async fn worker(
    live: Arc<LiveFaults>,
    mut work: mpsc::UnboundedReceiver<Job>,
    closing: Arc<AtomicBool>,
) {
    while let Some((job, tx)) = work.recv().await {
        let live = live.clone();
        if let (Work::Apply(apply, _), true) = (&job, closing.load(Ordering::SeqCst)) {
            let refused = FaultReport {
                fault_id: apply.fault_id.clone(),
                phase: FaultPhase::Applied as i32,
                ..FaultReport::default()
            };
            let refused = failed(refused, FaultError::ShuttingDown);
            send(&tx, agent_message::Msg::FaultReport(refused)).await;
            continue;
        }
        let report = tokio::task::spawn_blocking(move || match job {
            Work::Apply(apply, received) => apply_fault(&live, apply, received),
            Work::Revert(fault_id, received) => revert_fault(&live, &fault_id, received),
            Work::Check(check) => check_fault(&live, check),
        })
        .await;
        match report {
            Ok(report) => send(&tx, agent_message::Msg::FaultReport(report)).await,
            Err(e) => tracing::error!(error = %e, "fault operation panicked"),
        }
    }
}

/// The typed fault a request carries; `request` names the message in the error.
fn decode(spec: Option<&v1::FaultSpec>, request: &str) -> Result<Fault, FaultError> {
    match spec.map(Fault::from_wire) {
        Some(Ok(f)) => Ok(f),
        Some(Err(e)) => Err(FaultError::Spec(e)),
        None => Err(FaultError::Invalid(format!("{request} without a spec"))),
    }
}

fn apply_fault(live: &LiveFaults, apply: v1::ApplyFault, received: Instant) -> FaultReport {
    let mut report = FaultReport {
        fault_id: apply.fault_id.clone(),
        phase: FaultPhase::Applied as i32,
        ..FaultReport::default()
    };
    let fault = match decode(apply.spec.as_ref(), "ApplyFault") {
        Ok(f) => f,
        Err(e) => return failed(report, e),
    };
    // The agent enforces the fault's own duration and the controller's deadline itself,
    // whichever ends first, whatever happens to the controller.
    let deadline = Duration::from_millis(apply.deadline_ms.max(1));
    let lifetime = fault.duration().map_or(deadline, |d| d.get().min(deadline));
    // `live` logs the apply (or the refusal) once, for the host owner.
    match live.apply(&apply.fault_id, &apply.run_id, &fault, lifetime) {
        Ok(applied) => {
            report.apply_us = applied
                .effect_at
                .saturating_duration_since(received)
                .as_micros() as u64;
            report.evidence = Some(applied.evidence);
            report.since_effect_us = applied.effect_at.elapsed().as_micros() as u64;
            report
        }
        Err(e) => failed(report, e),
    }
}

/// Checks a fault as applying it would, without applying it (the controller's preflight).
fn check_fault(live: &LiveFaults, check: v1::CheckFault) -> FaultReport {
    let report = FaultReport {
        fault_id: check.fault_id.clone(),
        phase: FaultPhase::Checked as i32,
        ..FaultReport::default()
    };
    let fault = match decode(check.spec.as_ref(), "CheckFault") {
        Ok(f) => f,
        Err(e) => return failed(report, e),
    };
    match live.check(&check.fault_id, &fault) {
        Ok(warnings) => {
            tracing::debug!(fault = %check.fault_id, run = %check.run_id, kind = fault.kind().name(), "checked: would be accepted");
            for warning in &warnings {
                tracing::info!(fault = %check.fault_id, run = %check.run_id, kind = fault.kind().name(), %warning, "checked: would be accepted, with a warning");
            }
            FaultReport { warnings, ..report }
        }
        Err(e) => {
            tracing::info!(fault = %check.fault_id, run = %check.run_id, kind = fault.kind().name(), error = %e, "checked: would be refused");
            failed(report, e)
        }
    }
}

fn revert_fault(live: &LiveFaults, fault_id: &str, received: Instant) -> FaultReport {
    let mut report = FaultReport {
        fault_id: fault_id.to_string(),
        phase: FaultPhase::Reverted as i32,
        ..FaultReport::default()
    };
    match live.revert(fault_id) {
        Ok(reverted) => {
            let done = Instant::now();
            report.apply_us = done.duration_since(received).as_micros() as u64;
            report.evidence = Some(reverted.evidence);
            report.since_effect_us = done.elapsed().as_micros() as u64;
            report
        }
        Err(e) => failed(report, e),
    }
}

fn failed(mut report: FaultReport, e: FaultError) -> FaultReport {
    report.failure = Some(v1::FaultFailure {
        kind: e.kind() as i32,
        message: e.to_string(),
    });
    report
}

async fn send(tx: &mpsc::Sender<AgentMessage>, msg: agent_message::Msg) {
    // A closed channel means the stream is gone; the session loop notices and reconnects.
    let _ = tx.send(AgentMessage { msg: Some(msg) }).await;
}

#[cfg(test)]
mod timing_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use gameday_proto::ProcessPause;

    fn live(dir: &std::path::Path) -> Arc<LiveFaults> {
        let host = Host {
            processes: Arc::new(crate::os::RealOs::default()),
            network: faults::network_partition::Backend::new(Arc::new(
                crate::os::nft::Nft::with_program("/nonexistent/nft"),
            )),
            disk: faults::disk_fill::Backend::default(),
            dns: faults::dns_poison::Backend::default(),
            controller: Vec::new(),
        };
        let journal = Journal::open(&dir.join("journal")).unwrap();
        Arc::new(LiveFaults::new(
            Arc::new(host),
            Arc::new(Policy::permissive()),
            journal,
        ))
    }

    fn pause_of(pid_file: &std::path::Path) -> v1::ApplyFault {
        let fault = Fault::ProcessPause(ProcessPause {
            selector: gameday_proto::ProcessSelector {
                target: Some(gameday_proto::ProcessMatch::PidFile(pid_file.to_path_buf())),
                place: None,
                netns: None,
                pidns: None,
            },
            count: Default::default(),
            duration: None,
        });
        v1::ApplyFault {
            fault_id: "f1".into(),
            run_id: "r1".into(),
            spec: Some(fault.to_wire()),
            deadline_ms: 60_000,
        }
    }

    /// A `sleep` child to pause, with its pid file in `dir`.
    fn sleeper(dir: &std::path::Path) -> (std::process::Child, std::path::PathBuf) {
        // A process of the test's own to fault.
        #[allow(clippy::disallowed_methods)]
        let sleeper = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid_file = dir.join("sleeper.pid");
        std::fs::write(&pid_file, sleeper.id().to_string()).unwrap();
        (sleeper, pid_file)
    }

    /// Queues a pause of the process in `pid_file` on a fresh worker (already `closing` or
    /// not), closes its queue and waits for it to end: the replies it sent.
    async fn apply_and_end_worker(
        live: &Arc<LiveFaults>,
        pid_file: &std::path::Path,
        closing: bool,
    ) -> mpsc::Receiver<AgentMessage> {
        let (work_tx, work_rx) = mpsc::unbounded_channel::<Job>();
        let (reply_tx, replies) = mpsc::channel(4);
        let worker = tokio::spawn(worker(
            live.clone(),
            work_rx,
            Arc::new(AtomicBool::new(closing)),
        ));
        work_tx
            .send((Work::Apply(pause_of(pid_file), Instant::now()), reply_tx))
            .unwrap();
        drop(work_tx);
        worker.await.unwrap();
        replies
    }

    /// Polls `cond` for up to 5 s.
    fn eventually(cond: impl Fn() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !cond() {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    /// Whether `pid` is in state T (stopped).
    fn stopped(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('T'))
        })
    }

    #[tokio::test]
    async fn once_closing_the_worker_applies_nothing_more() {
        let dir = tempfile::tempdir().unwrap();
        let (mut sleeper, pid_file) = sleeper(dir.path());
        let live = live(dir.path());
        let mut replies = apply_and_end_worker(&live, &pid_file, true).await;
        let Some(agent_message::Msg::FaultReport(report)) = replies.recv().await.unwrap().msg
        else {
            panic!("a fault report");
        };
        let failure = report.failure.expect("refused");
        assert!(failure.message.contains("shutting down"), "{failure:?}");
        assert!(live.is_empty());
        assert!(!stopped(sleeper.id()));
        sleeper.kill().unwrap();
        sleeper.wait().unwrap();
    }

    #[tokio::test]
    async fn the_worker_ends_only_after_the_apply_in_progress_so_the_final_revert_sees_it() {
        let dir = tempfile::tempdir().unwrap();
        let (mut sleeper, pid_file) = sleeper(dir.path());
        let live = live(dir.path());
        let _replies = apply_and_end_worker(&live, &pid_file, false).await;
        assert_eq!(live.len(), 1, "applied before the worker ended");
        // A signal is delivered asynchronously: poll for the state it leads to.
        assert!(eventually(|| stopped(sleeper.id())), "paused");
        assert!(live.revert_all().is_empty());
        assert!(eventually(|| !stopped(sleeper.id())), "resumed");
        sleeper.kill().unwrap();
        sleeper.wait().unwrap();
    }

    #[tokio::test]
    async fn a_step_runs_beside_heartbeats_and_fault_operations() {
        let dir = tempfile::tempdir().unwrap();
        let live = live(dir.path());
        let text = "name = \"web-1\"\ncontroller = \"https://127.0.0.1:7443\"\n\
                    heartbeat = \"20ms\"\n[tls]\nca = \"c\"\ncert = \"d\"\nkey = \"e\"\n";
        let config = crate::config::parse("agent.toml", text, dir.path()).unwrap();
        let steps = StepRunner::new(toml::from_str(r#"commands = ["/bin/sleep"]"#).unwrap());
        let wakeups = Wakeups::default();
        let (to_agent, inbound) = mpsc::channel(8);
        let (tx, mut from_agent) = mpsc::channel::<AgentMessage>(64);
        let (work_tx, work_rx) = mpsc::unbounded_channel::<Job>();
        let worker = tokio::spawn(worker(
            live.clone(),
            work_rx,
            Arc::new(AtomicBool::new(false)),
        ));
        let conversation = Conversation {
            live: &live,
            config: &config,
            wakeups: &wakeups,
            steps: &steps,
        };
        let step = v1::RunStep {
            step_id: "s1".into(),
            run_id: "r1".into(),
            argv: vec!["/bin/sleep".into(), "1".into()],
            timeout_ms: 10_000,
            ..v1::RunStep::default()
        };
        let fault: Fault = toml::from_str("kind = \"process_kill\"\nname = \"x\"").unwrap();
        let check = v1::CheckFault {
            fault_id: "f1".into(),
            run_id: "r1".into(),
            spec: Some(fault.to_wire()),
        };
        let controller = async {
            let send = |msg| to_agent.send(Ok(v1::ControllerMessage { msg: Some(msg) }));
            send(controller_message::Msg::RunStep(step)).await.unwrap();
            // What the agent says while the step runs, until it ends.
            let mut while_running = Vec::new();
            loop {
                let msg = tokio::time::timeout(Duration::from_secs(20), from_agent.recv())
                    .await
                    .expect("the step ends within its timeout")
                    .and_then(|m| m.msg)
                    .expect("a message");
                match msg {
                    agent_message::Msg::StepReport(r) if r.phase() == v1::StepPhase::Started => {
                        send(controller_message::Msg::Check(check.clone()))
                            .await
                            .unwrap();
                    }
                    agent_message::Msg::StepReport(r) => {
                        assert_eq!(r.phase(), v1::StepPhase::Ended);
                        assert_eq!(r.exit_code, 0);
                        return while_running;
                    }
                    other => while_running.push(other),
                }
            }
        };
        let while_running = tokio::select! {
            heard = controller => heard,
            ended = conversation.run(ReceiverStream::new(inbound), &tx, &work_tx) => {
                panic!("the conversation ended: {ended:?}")
            }
        };
        let heartbeats = while_running
            .iter()
            .filter(|m| matches!(m, agent_message::Msg::Heartbeat(_)))
            .count();
        // 1 s of a 20 ms period: far more than a handful unless the step blocked the loop.
        assert!(
            heartbeats >= 10,
            "{heartbeats} heartbeats: {while_running:?}"
        );
        assert!(
            while_running.iter().any(|m| matches!(
                m,
                agent_message::Msg::FaultReport(r) if r.fault_id == "f1"
            )),
            "the fault check was answered while the step ran: {while_running:?}"
        );
        drop(work_tx);
        worker.await.unwrap();
    }

    #[test]
    fn a_check_answers_with_the_agents_warnings() {
        // A fake /proc: two `worker` processes in different cgroups and network namespaces.
        let proc_root = tempfile::tempdir().unwrap();
        for (pid, cgroup, net) in [
            (4_000_001, "/system.slice/worker.service", 4026531840u64),
            (4_000_002, "/system.slice/docker-x.scope", 4026532500),
        ] {
            let dir = proc_root.path().join(pid.to_string());
            std::fs::create_dir_all(dir.join("ns")).unwrap();
            std::fs::write(
                dir.join("stat"),
                format!("{pid} (worker) S 1 {pid} {pid} 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 100 1 1"),
            )
            .unwrap();
            std::fs::write(dir.join("cmdline"), b"worker\x00").unwrap();
            std::fs::write(dir.join("cgroup"), format!("0::{cgroup}\n")).unwrap();
            std::os::unix::fs::symlink(format!("net:[{net}]"), dir.join("ns/net")).unwrap();
            std::os::unix::fs::symlink("pid:[4026531836]", dir.join("ns/pid")).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let host = Host {
            processes: Arc::new(crate::os::RealOs::with_proc_root(
                proc_root.path().to_path_buf(),
            )),
            network: Default::default(),
            disk: Default::default(),
            dns: Default::default(),
            controller: Vec::new(),
        };
        let live = Arc::new(LiveFaults::new(
            Arc::new(host),
            Arc::new(Policy::permissive()),
            Journal::open(&dir.path().join("journal")).unwrap(),
        ));
        let fault: Fault = toml::from_str("kind = \"process_kill\"\nname = \"worker\"").unwrap();
        let report = check_fault(
            &live,
            v1::CheckFault {
                fault_id: "f1".into(),
                run_id: "r1".into(),
                spec: Some(fault.to_wire()),
            },
        );
        assert_eq!(report.failure, None);
        assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
        assert!(
            report.warnings[0].starts_with("name \"worker\" matches processes in 2 cgroups"),
            "{:?}",
            report.warnings
        );
        assert!(report.warnings[0].contains("2 network namespaces"));
    }
}
