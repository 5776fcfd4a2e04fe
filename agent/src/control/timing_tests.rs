//! The agent's timing, in process and in virtual time (tokio's paused clock): a scripted
//! controller at the other end of the conversation, a fake process table that records when
//! each signal was sent, and the real enforcer, worker and live-fault tracking in between.

use std::path::Path;
use std::sync::atomic::AtomicU32;
use std::sync::Mutex;

use nix::sys::signal::Signal;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::*;
use crate::os::{OsError, ProcessInfo, ProcessOs};

/// The one process on the fake host.
const WORKER: i32 = 4_000_001;

fn worker_process() -> ProcessInfo {
    ProcessInfo {
        pid: WORKER,
        name: "worker".into(),
        cmdline: "worker --serve".into(),
        start_ticks: 100,
    }
}

/// A process table holding [`WORKER`]; every signal delivered is recorded with the (virtual)
/// time it was sent.
#[derive(Default)]
struct FakeProcesses {
    signals: Mutex<Vec<(Signal, Instant)>>,
    /// How many SIGCONTs the kernel refuses before it delivers one.
    refuse_continue: AtomicU32,
}

impl FakeProcesses {
    /// When `signal` was sent, each time it was.
    fn sent(&self, signal: Signal) -> Vec<Instant> {
        let signals = self.signals.lock().unwrap();
        signals
            .iter()
            .filter(|(s, _)| *s == signal)
            .map(|(_, at)| *at)
            .collect()
    }
}

impl ProcessOs for FakeProcesses {
    fn processes(&self) -> Result<Vec<ProcessInfo>, OsError> {
        Ok(vec![worker_process()])
    }

    fn process(&self, pid: i32) -> Result<Option<ProcessInfo>, OsError> {
        Ok((pid == WORKER).then(worker_process))
    }

    fn read_pid_file(&self, _path: &Path) -> Result<i32, OsError> {
        Ok(WORKER)
    }

    fn signal(&self, pid: i32, signal: Signal) -> Result<(), OsError> {
        assert_eq!(pid, WORKER, "only the fake worker is ever signalled");
        let refuse = signal == Signal::SIGCONT
            && self
                .refuse_continue
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
        if refuse {
            return Err(OsError::Signal {
                pid,
                signal,
                errno: nix::errno::Errno::EPERM,
            });
        }
        self.signals.lock().unwrap().push((signal, Instant::now()));
        Ok(())
    }

    fn own_pid(&self) -> i32 {
        4_000_000
    }

    fn parent_pid(&self) -> i32 {
        3_999_999
    }

    fn state(&self, pid: i32) -> Result<Option<char>, OsError> {
        let last = self.signals.lock().unwrap().last().map(|(s, _)| *s);
        Ok((pid == WORKER).then_some(if last == Some(Signal::SIGSTOP) {
            'T'
        } else {
            'S'
        }))
    }
}

/// A pause of the fake worker, for as long as the controller's deadline allows.
fn pause(fault_id: &str, deadline: Duration) -> v1::ControllerMessage {
    let fault: Fault =
        toml::from_str("kind = \"process_pause\"\npid_file = \"/run/worker.pid\"").unwrap();
    v1::ControllerMessage {
        msg: Some(controller_message::Msg::Apply(v1::ApplyFault {
            fault_id: fault_id.into(),
            run_id: "r1".into(),
            spec: Some(fault.to_wire()),
            deadline_ms: deadline.as_millis() as u64,
        })),
    }
}

fn revert(fault_id: &str) -> v1::ControllerMessage {
    v1::ControllerMessage {
        msg: Some(controller_message::Msg::Revert(v1::RevertFault {
            fault_id: fault_id.into(),
        })),
    }
}

/// An agent talking to a scripted controller, all on the test's paused clock.
struct Running {
    started: Instant,
    os: Arc<FakeProcesses>,
    live: Arc<LiveFaults>,
    wakeups: Arc<Wakeups>,
    /// Sends to the agent as the controller.
    to_agent: mpsc::Sender<Result<v1::ControllerMessage, tonic::Status>>,
    /// Everything the agent sent, with when the controller got it.
    heard: Arc<Mutex<Vec<(Instant, agent_message::Msg)>>>,
    tasks: Vec<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Running {
    /// Heartbeats the controller got: sequence number and arrival time.
    fn heartbeats(&self) -> Vec<(u64, Instant)> {
        let heard = self.heard.lock().unwrap();
        heard
            .iter()
            .filter_map(|(at, m)| match m {
                agent_message::Msg::Heartbeat(h) => Some((h.seq, *at)),
                _ => None,
            })
            .collect()
    }

    /// The agent's report on `fault_id` in `phase`, once it arrived.
    fn report(&self, fault_id: &str, phase: FaultPhase) -> Option<FaultReport> {
        let heard = self.heard.lock().unwrap();
        heard.iter().find_map(|(_, m)| match m {
            agent_message::Msg::FaultReport(r)
                if r.fault_id == fault_id && r.phase == phase as i32 =>
            {
                Some(r.clone())
            }
            _ => None,
        })
    }

    /// Sends `msg` as the controller and lets virtual time run until `fault_id` has its
    /// report in `phase` (at most a minute of it).
    async fn ask(
        &self,
        msg: v1::ControllerMessage,
        fault_id: &str,
        phase: FaultPhase,
    ) -> FaultReport {
        self.to_agent.send(Ok(msg)).await.unwrap();
        let give_up = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(report) = self.report(fault_id, phase) {
                return report;
            }
            assert!(
                Instant::now() < give_up,
                "no {phase:?} report for {fault_id}"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Lets virtual time run until `at`.
    async fn until(&self, at: Duration) {
        tokio::time::sleep_until(self.started + at).await;
    }
}

/// Starts an agent with `heartbeat` and `lease` talking to a controller that registers it and
/// answers every heartbeat until `silent_after` (from the start); after that the controller
/// stays connected but says nothing, as one cut off by a partition would.
fn start(heartbeat: &str, lease: &str, silent_after: Duration) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "name = \"web-1\"\ncontroller = \"https://127.0.0.1:7443\"\nheartbeat = \"{heartbeat}\"\n\
         lease = \"{lease}\"\nstate_dir = \"state\"\n[tls]\nca = \"ca.pem\"\ncert = \"a.pem\"\n\
         key = \"a.key\"\n"
    );
    let config = Arc::new(crate::config::parse("agent.toml", &text, dir.path()).unwrap());
    let os = Arc::new(FakeProcesses::default());
    let host = Host {
        processes: os.clone(),
        network: faults::network_partition::Backend::new(Arc::new(
            crate::os::nft::Nft::with_program("/nonexistent/nft"),
        )),
        disk: faults::disk_fill::Backend::default(),
        dns: faults::dns_poison::Backend::default(),
        controller: Vec::new(),
    };
    let journal = Journal::open(&config.state_dir.join("journal")).unwrap();
    let live = Arc::new(LiveFaults::new(
        Arc::new(host),
        Arc::new(Policy::permissive()),
        journal,
    ));
    let wakeups = Arc::new(Wakeups::default());
    let started = Instant::now();
    let (to_agent, inbound) = mpsc::channel(16);
    let (tx, mut from_agent) = mpsc::channel::<AgentMessage>(64);
    let (work_tx, work_rx) = mpsc::unbounded_channel::<Job>();
    let heard = Arc::new(Mutex::new(Vec::new()));
    let controller = {
        let to_agent = to_agent.clone();
        let heard = heard.clone();
        async move {
            let registered = controller_message::Msg::Registered(v1::Registered::default());
            let _ = to_agent
                .send(Ok(v1::ControllerMessage {
                    msg: Some(registered),
                }))
                .await;
            while let Some(AgentMessage { msg: Some(msg) }) = from_agent.recv().await {
                let now = Instant::now();
                let answer =
                    matches!(msg, agent_message::Msg::Heartbeat(_)) && now < started + silent_after;
                heard.lock().unwrap().push((now, msg));
                if answer {
                    let ack = controller_message::Msg::HeartbeatAck(v1::HeartbeatAck::default());
                    let _ = to_agent
                        .send(Ok(v1::ControllerMessage { msg: Some(ack) }))
                        .await;
                }
            }
        }
    };
    let conversation = {
        let (live, config, wakeups) = (live.clone(), config.clone(), wakeups.clone());
        async move {
            let steps = StepRunner::new(Default::default());
            let conversation = Conversation {
                live: &live,
                config: &config,
                wakeups: &wakeups,
                steps: &steps,
            };
            let inbound = ReceiverStream::new(inbound);
            let _ = conversation.run(inbound, &tx, &work_tx).await;
        }
    };
    let tasks = vec![
        tokio::spawn(controller),
        tokio::spawn(conversation),
        tokio::spawn(worker(
            live.clone(),
            work_rx,
            Arc::new(AtomicBool::new(false)),
        )),
        tokio::spawn(enforcer::run(
            live.clone(),
            config.lease.get(),
            wakeups.clone(),
        )),
    ];
    Running {
        started,
        os,
        live,
        wakeups,
        to_agent,
        heard,
        tasks,
        _dir: dir,
    }
}

const FOREVER: Duration = Duration::from_secs(24 * 3600);

#[tokio::test(start_paused = true)]
async fn heartbeats_go_out_at_the_configured_period() {
    let agent = start("250ms", "10s", FOREVER);
    // Between two ticks, so no tick races the test's own wake-up.
    agent.until(Duration::from_millis(1_100)).await;
    let expected: Vec<(u64, Instant)> = (0..5)
        .map(|k| (k + 1, agent.started + Duration::from_millis(250 * k)))
        .collect();
    assert_eq!(agent.heartbeats(), expected);
}

#[tokio::test(start_paused = true)]
async fn a_fault_is_reverted_at_its_deadline_not_before() {
    let agent = start("1s", "10s", FOREVER);
    agent.until(Duration::from_millis(2_500)).await;
    let applied = agent
        .ask(
            pause("f1", Duration::from_secs(5)),
            "f1",
            FaultPhase::Applied,
        )
        .await;
    assert_eq!(applied.failure, None);
    let stopped_at = agent.os.sent(Signal::SIGSTOP);
    assert_eq!(
        stopped_at,
        vec![agent.started + Duration::from_millis(2_500)]
    );
    agent.until(Duration::from_secs(10)).await;
    assert_eq!(
        agent.os.sent(Signal::SIGCONT),
        vec![stopped_at[0] + Duration::from_secs(5)],
        "continued exactly at the deadline"
    );
    assert!(agent.live.is_empty());
    // The controller's own revert, later, gets the evidence of the agent's.
    let reverted = agent.ask(revert("f1"), "f1", FaultPhase::Reverted).await;
    let summary = reverted.evidence.unwrap().summary;
    assert!(summary.contains("deadline passed"), "{summary}");
}

#[tokio::test(start_paused = true)]
async fn a_lost_controller_reverts_live_faults_at_lease_expiry_and_not_before() {
    // The controller answers the heartbeats at 0 s to 3 s, then falls silent.
    let agent = start("1s", "10s", Duration::from_millis(3_500));
    agent.until(Duration::from_millis(500)).await;
    let applied = agent
        .ask(
            pause("f1", Duration::from_secs(60)),
            "f1",
            FaultPhase::Applied,
        )
        .await;
    assert_eq!(applied.failure, None);
    // Past a lease from the apply, but not from the last answer: still live.
    agent.until(Duration::from_millis(12_900)).await;
    assert_eq!(agent.live.len(), 1);
    assert!(agent.os.sent(Signal::SIGCONT).is_empty());
    agent.until(Duration::from_millis(20_500)).await;
    assert_eq!(
        agent.os.sent(Signal::SIGCONT),
        vec![agent.started + Duration::from_secs(3 + 10)],
        "continued exactly one lease after the controller was last heard"
    );
    assert!(agent.live.is_empty());
    let reverted = agent.live.revert("f1").unwrap();
    assert!(
        reverted
            .evidence
            .summary
            .contains("controller lease expired"),
        "{}",
        reverted.evidence.summary
    );
    // Heartbeats went on all the while.
    assert_eq!(agent.heartbeats().len(), 21);
}

#[tokio::test(start_paused = true)]
async fn an_idle_agent_wakes_only_to_send_heartbeats_and_read_their_answers() {
    let agent = start("1s", "10s", FOREVER);
    agent.until(Duration::from_millis(60_500)).await;
    let heartbeats = agent.heartbeats().len() as u64;
    assert_eq!(heartbeats, 61);
    // One look at startup, then nothing until a fault is live.
    assert_eq!(agent.wakeups.enforcer.load(Ordering::Relaxed), 1);
    // Each heartbeat, each answer, and the registration.
    assert_eq!(
        agent.wakeups.conversation.load(Ordering::Relaxed),
        2 * heartbeats + 1
    );
}

#[tokio::test(start_paused = true)]
async fn a_fault_applied_while_the_enforcer_sleeps_gets_its_deadline_enforced() {
    let agent = start("1s", "10s", FOREVER);
    // Idle long enough for the enforcer to be asleep with nothing due.
    agent.until(Duration::from_millis(30_500)).await;
    agent
        .ask(
            pause("f1", Duration::from_secs(2)),
            "f1",
            FaultPhase::Applied,
        )
        .await;
    agent.until(Duration::from_secs(40)).await;
    assert_eq!(
        agent.os.sent(Signal::SIGCONT),
        vec![agent.started + Duration::from_millis(32_500)]
    );
    // Woken by the apply and by the deadline: twice more than at startup.
    assert_eq!(agent.wakeups.enforcer.load(Ordering::Relaxed), 3);
}

#[tokio::test(start_paused = true)]
async fn a_revert_that_fails_is_retried_every_50ms_without_spinning() {
    let agent = start("1s", "10s", FOREVER);
    agent.os.refuse_continue.store(3, Ordering::SeqCst);
    agent.until(Duration::from_millis(500)).await;
    agent
        .ask(
            pause("f1", Duration::from_secs(1)),
            "f1",
            FaultPhase::Applied,
        )
        .await;
    agent.until(Duration::from_secs(5)).await;
    assert_eq!(
        agent.os.sent(Signal::SIGCONT),
        vec![agent.started + Duration::from_millis(1_500 + 3 * 50)],
        "refused three times, then continued"
    );
    assert!(agent.live.is_empty());
    // Startup, the apply, the deadline and three retries.
    assert_eq!(agent.wakeups.enforcer.load(Ordering::Relaxed), 6);
}
