//! The live agent list: who is connected, what each can do, and the request/answer plumbing
//! that turns one agent stream into awaitable fault operations.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gameday_proto::v1::{
    self, controller_message::Msg, ControllerMessage, FaultPhase, FaultReport,
};
use gameday_proto::Fault;

use crate::server::status::ApiError;
use tokio::sync::{mpsc, oneshot};

/// The outbound half of an agent's stream.
pub type AgentSender = mpsc::Sender<Result<ControllerMessage, tonic::Status>>;

/// How long the controller waits for an agent to answer an apply or revert.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);

/// A fault operation that did not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// The agent's stream closed before it answered.
    #[error("agent {0} disconnected before answering")]
    Disconnected(String),
    /// The agent did not answer in time.
    #[error("agent {agent} did not answer within {timeout:?}")]
    Timeout {
        /// The agent.
        agent: String,
        /// How long we waited.
        timeout: Duration,
    },
}

/// Why an agent's registration was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegisterError {
    /// Another instance of the agent (another host with a copy of its certificate, or a
    /// second process) holds a live stream under the same name.
    #[error(
        "agent {name} is already connected from {peer} (another instance of it, heard {heard_ms}ms \
         ago); two agents cannot share one certificate: give each host its own \
         (`gameday certs issue --agent NAME`)"
    )]
    AlreadyConnected {
        /// The agent's name.
        name: String,
        /// Where the live one connects from.
        peer: String,
        /// How long ago the live one was last heard.
        heard_ms: u64,
    },
}

/// Someone waiting for an agent's answer.
type Waiter = oneshot::Sender<FaultReport>;

/// A remediation step's reports, each with when it arrived (tokio's clock), as they come: a
/// STARTED one, then an ENDED one. The stream ends early when the agent disconnects.
pub type StepReports = mpsc::UnboundedReceiver<(v1::StepReport, tokio::time::Instant)>;

/// One connected agent.
pub struct AgentConn {
    /// Name, from its certificate.
    pub name: String,
    /// Labels it registered with.
    pub labels: BTreeMap<String, String>,
    /// Its version.
    pub version: String,
    /// Fault kinds it can apply.
    pub capabilities: Vec<String>,
    /// Kinds it implements but cannot apply on its host, with why (empty from older agents).
    pub unavailable: Vec<v1::KindUnavailable>,
    /// Its installation's id (empty from older agents): tells its own reconnection from a
    /// second agent presenting the same certificate.
    pub instance_id: String,
    /// It answers CheckFault, so preflight can check faults without applying them.
    pub checks_faults: bool,
    /// It honours unit, cgroup, container and namespace scopes in process faults; an older
    /// agent would ignore them and act on every matching process on its host.
    pub process_scopes: bool,
    /// It runs remediation steps (RunStep).
    pub runs_steps: bool,
    /// Remote address of its stream.
    pub peer: String,
    /// Distinguishes this connection from an earlier one of the same agent.
    pub generation: u64,
    connected_at: Instant,
    last_heard: Mutex<Instant>,
    tx: AgentSender,
    /// Everyone waiting for an answer, by fault and phase: a run's revert and an operator's
    /// abort may wait on the same fault at once.
    pending: Mutex<HashMap<(String, i32), Vec<Waiter>>>,
    live_faults: Mutex<BTreeMap<String, LiveEntry>>,
    /// Remediation steps started or checked on this agent and not yet ended, by step id.
    steps: Mutex<HashMap<String, mpsc::UnboundedSender<(v1::StepReport, tokio::time::Instant)>>>,
}

/// Why the controller counts a fault as live on an agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LiveState {
    /// Applied by a run of this controller.
    Applied,
    /// Reported by the agent when it (re)registered, for a run this controller is running.
    Adopted,
    /// Reported by the agent when it (re)registered, for a run this controller is not running
    /// (its predecessor's, say): being reverted.
    Reverting,
}

impl LiveState {
    /// The word operators see.
    pub fn as_str(self) -> &'static str {
        match self {
            LiveState::Applied => "applied",
            LiveState::Adopted => "adopted",
            LiveState::Reverting => "reverting",
        }
    }
}

/// A holding fault live on an agent: applied and not yet confirmed reverted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveEntry {
    /// The run it belongs to.
    pub run_id: String,
    /// Its kind, e.g. `network_partition`.
    pub kind: String,
    /// How the controller came to know it.
    pub state: LiveState,
}

/// The answer to a fault operation, with when it was sent and received. The times are tokio's
/// (the same clock as `std::time::Instant` in a running controller), so that engine tests with
/// a paused clock see them in virtual time.
#[derive(Debug)]
pub struct Exchange {
    /// The agent's report.
    pub report: FaultReport,
    /// When the request left the controller.
    pub sent_at: tokio::time::Instant,
    /// When the answer arrived.
    pub received_at: tokio::time::Instant,
}

impl AgentConn {
    /// A connection record; `tx` is the outbound stream.
    pub fn new(register: v1::Register, peer: String, tx: AgentSender) -> AgentConn {
        static GENERATION: AtomicU64 = AtomicU64::new(1);
        let now = Instant::now();
        AgentConn {
            name: register.name,
            labels: register.labels.into_iter().collect(),
            version: register.version,
            capabilities: register.capabilities,
            unavailable: register.unavailable,
            instance_id: register.instance_id,
            checks_faults: register.checks_faults,
            process_scopes: register.process_scopes,
            runs_steps: register.runs_steps,
            peer,
            generation: GENERATION.fetch_add(1, Ordering::Relaxed),
            connected_at: now,
            last_heard: Mutex::new(now),
            tx,
            pending: Mutex::new(HashMap::new()),
            live_faults: Mutex::new(BTreeMap::new()),
            steps: Mutex::new(HashMap::new()),
        }
    }

    /// Records that the agent just spoke.
    pub fn heard(&self) {
        *self.last_heard.lock().expect("last_heard lock") = Instant::now();
    }

    /// How long since the agent last spoke.
    pub fn silent_for(&self) -> Duration {
        self.last_heard.lock().expect("last_heard lock").elapsed()
    }

    /// Sends a message on the agent's stream.
    pub async fn send(&self, msg: Msg) -> Result<(), DispatchError> {
        self.tx
            .send(Ok(ControllerMessage { msg: Some(msg) }))
            .await
            .map_err(|_| DispatchError::Disconnected(self.name.clone()))
    }

    /// Ends the agent's stream with `status` (e.g. replaced by a newer connection).
    pub fn close(&self, status: tonic::Status) {
        let _ = self.tx.try_send(Err(status));
    }

    /// The stream ended: every waiter gets "disconnected" at once instead of a timeout.
    pub fn hang_up(&self) {
        self.pending.lock().expect("pending lock").clear();
        self.steps.lock().expect("steps lock").clear();
    }

    /// Sends a remediation step (to run, or with `check_only` to check) and returns its
    /// reports as they arrive.
    pub async fn run_step(&self, step: v1::RunStep) -> Result<StepReports, DispatchError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let id = step.step_id.clone();
        self.steps
            .lock()
            .expect("steps lock")
            .insert(id.clone(), tx);
        if let Err(e) = self.send(Msg::RunStep(step)).await {
            self.steps.lock().expect("steps lock").remove(&id);
            return Err(e);
        }
        Ok(rx)
    }

    /// Hands an agent's step report to whoever follows that step; its last report (the end,
    /// a check's answer, or a failure to start) ends the stream.
    pub fn deliver_step(&self, report: v1::StepReport) {
        let last = report.failure.is_some() || report.phase != v1::StepPhase::Started as i32;
        let mut steps = self.steps.lock().expect("steps lock");
        let follower = if last {
            steps.remove(&report.step_id)
        } else {
            steps.get(&report.step_id).cloned()
        };
        match follower {
            Some(tx) => {
                let _ = tx.send((report, tokio::time::Instant::now()));
            }
            None => {
                tracing::warn!(agent = %self.name, step = %report.step_id, "a report for a remediation step nobody follows (its run gave up on it)");
            }
        }
    }

    /// Delivers an agent's fault report to whoever waits for it.
    pub fn deliver(&self, report: FaultReport) {
        let key = (report.fault_id.clone(), report.phase);
        let waiters = self.pending.lock().expect("pending lock").remove(&key);
        for waiter in waiters.unwrap_or_default() {
            let _ = waiter.send(report.clone());
        }
    }

    /// Applies `fault` and waits for the agent's answer. A holding fault counts as live from
    /// the agent's confirmation until a confirmed revert; an instant one (a kill) never does.
    pub async fn apply(
        &self,
        apply: v1::ApplyFault,
        fault: &Fault,
    ) -> Result<Exchange, DispatchError> {
        let fault_id = apply.fault_id.clone();
        let run_id = apply.run_id.clone();
        let exchange = self
            .request(fault_id.clone(), FaultPhase::Applied, Msg::Apply(apply))
            .await?;
        if exchange.report.failure.is_none() && !fault.is_instant() {
            self.track(fault_id, run_id, fault.kind().name(), LiveState::Applied);
        }
        Ok(exchange)
    }

    /// Asks the agent whether it would apply `spec` as fault `fault_id`, without applying it
    /// (preflight); the answer's failure says why not.
    pub async fn check(
        &self,
        fault_id: &str,
        run_id: &str,
        spec: v1::FaultSpec,
    ) -> Result<Exchange, DispatchError> {
        self.request(
            fault_id.to_string(),
            FaultPhase::Checked,
            Msg::Check(v1::CheckFault {
                fault_id: fault_id.to_string(),
                run_id: run_id.to_string(),
                spec: Some(spec),
            }),
        )
        .await
    }

    /// Counts a fault as live on this agent (e.g. one it reported when it registered).
    pub fn track(&self, fault_id: String, run_id: String, kind: &str, state: LiveState) {
        self.live_faults.lock().expect("live faults lock").insert(
            fault_id,
            LiveEntry {
                run_id,
                kind: kind.to_string(),
                state,
            },
        );
    }

    /// Reverts a fault and waits for the agent's answer.
    pub async fn revert(&self, fault_id: &str) -> Result<Exchange, DispatchError> {
        let exchange = self
            .request(
                fault_id.to_string(),
                FaultPhase::Reverted,
                Msg::Revert(v1::RevertFault {
                    fault_id: fault_id.to_string(),
                }),
            )
            .await?;
        if exchange.report.failure.is_none() {
            self.live_faults
                .lock()
                .expect("live faults lock")
                .remove(fault_id);
        }
        Ok(exchange)
    }

    /// Holding faults live on this agent and not yet confirmed reverted, by fault id.
    pub fn live_faults(&self) -> BTreeMap<String, LiveEntry> {
        self.live_faults.lock().expect("live faults lock").clone()
    }

    async fn request(
        &self,
        fault_id: String,
        phase: FaultPhase,
        msg: Msg,
    ) -> Result<Exchange, DispatchError> {
        let (tx, rx) = oneshot::channel();
        let key = (fault_id, phase as i32);
        self.pending
            .lock()
            .expect("pending lock")
            .entry(key.clone())
            .or_default()
            .push(tx);
        let sent_at = tokio::time::Instant::now();
        if let Err(e) = self.send(msg).await {
            self.forget_closed_waiters(&key);
            return Err(e);
        }
        match tokio::time::timeout(ANSWER_TIMEOUT, rx).await {
            Ok(Ok(report)) => Ok(Exchange {
                report,
                sent_at,
                received_at: tokio::time::Instant::now(),
            }),
            Ok(Err(_)) => Err(DispatchError::Disconnected(self.name.clone())),
            Err(_) => {
                self.forget_closed_waiters(&key);
                Err(DispatchError::Timeout {
                    agent: self.name.clone(),
                    timeout: ANSWER_TIMEOUT,
                })
            }
        }
    }

    /// Drops the waiters for `key` that gave up (their receiver is gone), keeping the others.
    fn forget_closed_waiters(&self, key: &(String, i32)) {
        let mut pending = self.pending.lock().expect("pending lock");
        if let Some(waiters) = pending.get_mut(key) {
            waiters.retain(|w| !w.is_closed());
            if waiters.is_empty() {
                pending.remove(key);
            }
        }
    }

    /// The operator's view of this agent.
    pub fn info(&self) -> v1::AgentInfo {
        let live = self.live_faults();
        v1::AgentInfo {
            name: self.name.clone(),
            labels: self.labels.clone().into_iter().collect(),
            version: self.version.clone(),
            capabilities: self.capabilities.clone(),
            peer_address: self.peer.clone(),
            connected_for_ms: self.connected_at.elapsed().as_millis() as u64,
            last_heard_ms_ago: self.silent_for().as_millis() as u64,
            live_faults: live.len() as u32,
            faults: live
                .into_iter()
                .map(|(fault_id, e)| v1::LiveFault {
                    fault_id,
                    run_id: e.run_id,
                    kind: e.kind,
                    state: e.state.as_str().to_string(),
                })
                .collect(),
        }
    }
}

/// Every connected agent, by name.
#[derive(Default)]
pub struct AgentRegistry {
    agents: Mutex<BTreeMap<String, Arc<AgentConn>>>,
    /// Told of every registration, so the expiry sweep can sleep while no agent is connected.
    registered: tokio::sync::Notify,
}

impl AgentRegistry {
    /// Adds a connection. A previous connection of the same agent instance (a reconnect, a
    /// restart on the same state directory), or one not heard for `live_within`, is closed
    /// and replaced. A connection of a different instance while the current one is live is
    /// refused: two agents sharing a certificate would otherwise take the name from each other
    /// in turn, and runs would go to whichever held it at the moment.
    pub fn register(
        &self,
        conn: Arc<AgentConn>,
        live_within: Duration,
    ) -> Result<(), RegisterError> {
        let mut agents = self.agents.lock().expect("agents lock");
        if let Some(current) = agents.get(&conn.name) {
            let heard = current.silent_for();
            let live = heard <= live_within && !current.tx.is_closed();
            if live && current.instance_id != conn.instance_id {
                return Err(RegisterError::AlreadyConnected {
                    name: conn.name.clone(),
                    peer: current.peer.clone(),
                    heard_ms: heard.as_millis() as u64,
                });
            }
        }
        let old = agents.insert(conn.name.clone(), conn.clone());
        drop(agents);
        self.registered.notify_one();
        if let Some(old) = old {
            tracing::info!(agent = %conn.name, old_peer = %old.peer, peer = %conn.peer, "agent reconnected; its earlier stream is closed");
            old.close(ApiError::Replaced.into());
        }
        Ok(())
    }

    /// How long until the quietest agent will have been silent for `timeout`, if none speaks
    /// meanwhile; `None` without agents.
    pub fn next_silence(&self, timeout: Duration) -> Option<Duration> {
        let agents = self.agents.lock().expect("agents lock");
        agents
            .values()
            .map(|a| timeout.saturating_sub(a.silent_for()))
            .min()
    }

    /// Drops agents silent for longer than `timeout` as they fall silent, for ever: sleeps until
    /// the quietest agent's moment (or, without agents, the next registration) instead of
    /// polling, so an idle controller stays idle. Calls `lost` with each agent dropped.
    pub async fn expire_silent(&self, timeout: Duration, mut lost: impl FnMut(&str)) {
        loop {
            match self.next_silence(timeout) {
                // Just past it: an agent is dropped when silent for *longer* than the timeout.
                Some(wait) => tokio::time::sleep(wait + Duration::from_millis(1)).await,
                None => self.registered.notified().await,
            }
            for name in self.expire(timeout) {
                lost(&name);
            }
        }
    }

    /// Removes the agent if `generation` is still its current connection.
    pub fn remove(&self, name: &str, generation: u64) -> bool {
        let mut agents = self.agents.lock().expect("agents lock");
        if agents.get(name).is_some_and(|a| a.generation == generation) {
            agents.remove(name);
            true
        } else {
            false
        }
    }

    /// The agent's current connection.
    pub fn get(&self, name: &str) -> Option<Arc<AgentConn>> {
        self.agents.lock().expect("agents lock").get(name).cloned()
    }

    /// Every connected agent.
    pub fn all(&self) -> Vec<Arc<AgentConn>> {
        self.agents
            .lock()
            .expect("agents lock")
            .values()
            .cloned()
            .collect()
    }

    /// Ends every agent's stream with `status` (shutdown) and forgets them all.
    pub fn close_all(&self, status: tonic::Status) -> usize {
        let agents = std::mem::take(&mut *self.agents.lock().expect("agents lock"));
        for a in agents.values() {
            a.close(status.clone());
        }
        agents.len()
    }

    /// Agents that went silent for longer than `timeout`: dropped and their streams closed.
    pub fn expire(&self, timeout: Duration) -> Vec<String> {
        let mut agents = self.agents.lock().expect("agents lock");
        let dead: Vec<String> = agents
            .values()
            .filter(|a| a.silent_for() > timeout)
            .map(|a| a.name.clone())
            .collect();
        for name in &dead {
            if let Some(a) = agents.remove(name) {
                a.close(ApiError::Silent.into());
            }
        }
        dead
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(
        instance: &str,
        peer: &str,
    ) -> (
        Arc<AgentConn>,
        mpsc::Receiver<Result<ControllerMessage, tonic::Status>>,
    ) {
        let (tx, rx) = mpsc::channel(4);
        let register = v1::Register {
            name: "web-1".into(),
            instance_id: instance.into(),
            ..v1::Register::default()
        };
        (Arc::new(AgentConn::new(register, peer.into(), tx)), rx)
    }

    const LIVE: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn a_silent_agent_is_dropped_just_after_its_timeout_and_an_empty_registry_sleeps() {
        let registry = Arc::new(AgentRegistry::default());
        assert_eq!(registry.next_silence(LIVE), None, "nothing to wait for");
        let (lost_tx, mut lost_rx) = mpsc::unbounded_channel();
        let sweep = tokio::spawn({
            let registry = registry.clone();
            async move {
                registry
                    .expire_silent(Duration::from_millis(150), |name| {
                        let _ = lost_tx.send((name.to_string(), std::time::Instant::now()));
                    })
                    .await
            }
        });
        // The sweep waits for a registration, then for this agent's silence.
        let (agent, _rx) = conn("aaaa", "10.0.0.5:41234");
        let registered = std::time::Instant::now();
        registry.register(agent, LIVE).unwrap();
        let wait = registry.next_silence(Duration::from_millis(150)).unwrap();
        assert!(wait <= Duration::from_millis(150), "{wait:?}");
        let (name, at) = tokio::time::timeout(Duration::from_secs(10), lost_rx.recv())
            .await
            .expect("the silent agent is dropped")
            .unwrap();
        assert_eq!(name, "web-1");
        assert!(at.duration_since(registered) >= Duration::from_millis(150));
        assert!(registry.get("web-1").is_none());
        sweep.abort();
    }

    #[test]
    fn a_second_live_agent_with_the_same_certificate_is_refused() {
        let registry = AgentRegistry::default();
        let (first, mut first_rx) = conn("aaaa", "10.0.0.5:41234");
        registry.register(first.clone(), LIVE).unwrap();
        let (second, _rx) = conn("bbbb", "10.0.0.6:50000");
        let refused = registry.register(second, LIVE).unwrap_err();
        assert_eq!(
            refused,
            RegisterError::AlreadyConnected {
                name: "web-1".into(),
                peer: "10.0.0.5:41234".into(),
                heard_ms: match &refused {
                    RegisterError::AlreadyConnected { heard_ms, .. } => *heard_ms,
                },
            }
        );
        let text = refused.to_string();
        assert!(
            text.starts_with("agent web-1 is already connected from 10.0.0.5:41234")
                && text.ends_with(
                    "ago); two agents cannot share one certificate: give each host its own \
                     (`gameday certs issue --agent NAME`)"
                ),
            "{refused}"
        );
        // The first keeps its stream and its place.
        assert_eq!(registry.get("web-1").unwrap().generation, first.generation);
        assert!(
            first_rx.try_recv().is_err(),
            "the first stream was not closed"
        );
    }

    #[test]
    fn the_same_instance_reconnecting_replaces_its_old_stream() {
        let registry = AgentRegistry::default();
        let (first, mut first_rx) = conn("aaaa", "10.0.0.5:41234");
        registry.register(first, LIVE).unwrap();
        let (again, _rx) = conn("aaaa", "10.0.0.5:41300");
        registry.register(again.clone(), LIVE).unwrap();
        assert_eq!(registry.get("web-1").unwrap().generation, again.generation);
        let closed = first_rx.try_recv().expect("the old stream is closed");
        assert_eq!(closed.unwrap_err().code(), tonic::Code::Aborted);
    }

    #[test]
    fn a_silent_or_closed_stream_is_replaced_by_another_instance() {
        let registry = AgentRegistry::default();
        let (first, _first_rx) = conn("aaaa", "10.0.0.5:41234");
        registry.register(first, LIVE).unwrap();
        let (second, _rx) = conn("bbbb", "10.0.0.6:50000");
        // Not heard for longer than `live_within`: stale.
        registry.register(second.clone(), Duration::ZERO).unwrap();
        assert_eq!(registry.get("web-1").unwrap().generation, second.generation);
        let (third, _rx3) = conn("cccc", "10.0.0.7:50000");
        drop(_rx);
        registry.register(third.clone(), LIVE).unwrap();
        assert_eq!(registry.get("web-1").unwrap().generation, third.generation);
    }
}
