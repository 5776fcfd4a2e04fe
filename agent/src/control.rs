//! The control channel: dial the controller over mutual TLS, register, send heartbeats, apply
//! and revert faults on request, and reconnect with backoff when the stream breaks.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gameday_proto::v1::agent_control_client::AgentControlClient;
use gameday_proto::v1::{self, agent_message, controller_message, AgentMessage, FaultPhase, FaultReport};
use gameday_proto::Fault;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::config::AgentConfig;
use crate::faults::{self, FaultError};
use crate::live::{LiveFault, LiveFaults};
use crate::os::ProcessOs;
use crate::policy::Policy;

/// First and longest wait between reconnect attempts.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Why the agent could not set up its channel at all (bad files or URL).
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// A TLS file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The controller URL or TLS settings are unusable.
    #[error("controller endpoint: {0}")]
    Endpoint(#[from] tonic::transport::Error),
    /// The URL has no host.
    #[error("controller URL {0:?} has no host")]
    NoHost(String),
}

/// What the agent runs with.
pub struct Agent {
    /// Its configuration.
    pub config: Arc<AgentConfig>,
    /// Its policy.
    pub policy: Arc<Policy>,
    /// The kernel boundary.
    pub os: Arc<dyn ProcessOs>,
    /// Live faults.
    pub live: Arc<LiveFaults>,
}

impl Agent {
    /// An agent with nothing live.
    pub fn new(config: Arc<AgentConfig>, policy: Arc<Policy>, os: Arc<dyn ProcessOs>) -> Agent {
        let live = Arc::new(LiveFaults::new(os.clone()));
        Agent {
            config,
            policy,
            os,
            live,
        }
    }

    /// Runs until `shutdown` resolves, then reverts every live fault.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ControlError> {
        let endpoint = endpoint(&self.config)?;
        let lease = self.config.lease.get();
        let live = self.live.clone();
        // The lease and deadlines are enforced whether or not the controller is reachable.
        let enforcer = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            loop {
                tick.tick().await;
                live.enforce(lease);
            }
        });
        let this = Arc::new(self);
        let session_loop = {
            let this = this.clone();
            async move {
                let mut backoff = BACKOFF_MIN;
                loop {
                    let started = Instant::now();
                    match this.session(&endpoint).await {
                        Ok(()) => tracing::warn!("controller closed the stream"),
                        Err(e) => tracing::warn!(error = %e, "control stream failed"),
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
        tokio::select! {
            _ = session_loop => {}
            _ = shutdown => tracing::info!("shutting down"),
        }
        enforcer.abort();
        for (id, e) in this.live.revert_all() {
            tracing::error!(fault = %id, error = %e, "could not revert at shutdown");
        }
        Ok(())
    }

    /// One connected session, until the stream ends.
    async fn session(&self, endpoint: &Endpoint) -> Result<(), tonic::Status> {
        let channel: Channel = endpoint
            .connect()
            .await
            .map_err(|e| tonic::Status::unavailable(format!("connect: {e}")))?;
        let mut client = AgentControlClient::new(channel);
        let (tx, rx) = mpsc::channel::<AgentMessage>(64);
        let register = v1::Register {
            name: self.config.name.clone(),
            labels: self.config.labels.clone().into_iter().collect(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            capabilities: faults::capabilities(&self.policy),
        };
        send(&tx, agent_message::Msg::Register(register)).await;
        let mut inbound = client.attach(ReceiverStream::new(rx)).await?.into_inner();
        let mut heartbeat = tokio::time::interval(self.config.heartbeat.get());
        let mut seq = 0u64;
        tracing::info!(controller = %self.config.controller, "connected");
        loop {
            tokio::select! {
                _ = heartbeat.tick() => {
                    seq += 1;
                    send(&tx, agent_message::Msg::Heartbeat(v1::Heartbeat { seq })).await;
                }
                msg = inbound.message() => {
                    let Some(msg) = msg? else { return Ok(()) };
                    self.live.heard_controller();
                    let Some(msg) = msg.msg else { continue };
                    match msg {
                        controller_message::Msg::Registered(r) => {
                            tracing::info!(lease_ms = r.lease_ms, "registered");
                        }
                        controller_message::Msg::HeartbeatAck(_) => {}
                        controller_message::Msg::Apply(apply) => {
                            let report = self.apply(apply);
                            send(&tx, agent_message::Msg::FaultReport(report)).await;
                        }
                        controller_message::Msg::Revert(revert) => {
                            let report = self.revert(&revert.fault_id);
                            send(&tx, agent_message::Msg::FaultReport(report)).await;
                        }
                    }
                }
            }
        }
    }

    fn apply(&self, apply: v1::ApplyFault) -> FaultReport {
        let received = Instant::now();
        let mut report = FaultReport {
            fault_id: apply.fault_id.clone(),
            phase: FaultPhase::Applied as i32,
            ..FaultReport::default()
        };
        let fault = match apply.spec.as_ref().map(Fault::from_wire) {
            Some(Ok(f)) => f,
            Some(Err(e)) => return failed(report, FaultError::Invalid(e.to_string())),
            None => return failed(report, FaultError::Invalid("ApplyFault without a spec".into())),
        };
        match faults::apply(&fault, &self.policy, self.os.as_ref()) {
            Ok(applied) => {
                // Only faults that hold need tracking; a kill is over once it is sent.
                self.live.insert(
                    apply.fault_id.clone(),
                    LiveFault {
                        fault: fault.clone(),
                        run_id: apply.run_id.clone(),
                        deadline: received + Duration::from_millis(apply.deadline_ms),
                    },
                );
                tracing::info!(fault = %apply.fault_id, kind = fault.kind(), evidence = %applied.evidence.summary, "applied");
                report.apply_us = applied.effect_at.saturating_duration_since(received).as_micros() as u64;
                report.evidence = Some(applied.evidence);
                report.since_effect_us = applied.effect_at.elapsed().as_micros() as u64;
                report
            }
            Err(e) => {
                tracing::warn!(fault = %apply.fault_id, kind = fault.kind(), error = %e, "refused or failed");
                failed(report, e)
            }
        }
    }

    fn revert(&self, fault_id: &str) -> FaultReport {
        let received = Instant::now();
        let mut report = FaultReport {
            fault_id: fault_id.to_string(),
            phase: FaultPhase::Reverted as i32,
            ..FaultReport::default()
        };
        match self.live.revert(fault_id) {
            Ok(()) => {
                let done = Instant::now();
                report.apply_us = done.duration_since(received).as_micros() as u64;
                report.since_effect_us = done.elapsed().as_micros() as u64;
                report
            }
            Err(e) => failed(report, e),
        }
    }
}

fn failed(mut report: FaultReport, e: FaultError) -> FaultReport {
    report.failure = Some(v1::FaultFailure {
        kind: e.kind() as i32,
        message: e.message().to_string(),
    });
    report
}

async fn send(tx: &mpsc::Sender<AgentMessage>, msg: agent_message::Msg) {
    // A closed channel means the stream is gone; the session loop notices and reconnects.
    let _ = tx.send(AgentMessage { msg: Some(msg) }).await;
}

fn read(path: &std::path::Path) -> Result<String, ControlError> {
    std::fs::read_to_string(path).map_err(|source| ControlError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// The controller endpoint with mutual TLS from the config's files.
pub fn endpoint(config: &AgentConfig) -> Result<Endpoint, ControlError> {
    let ca = read(&config.tls.ca)?;
    let cert = read(&config.tls.cert)?;
    let key = read(&config.tls.key)?;
    let uri: tonic::codegen::http::Uri = config
        .controller
        .parse()
        .map_err(|_| ControlError::NoHost(config.controller.clone()))?;
    let host = uri
        .host()
        .ok_or_else(|| ControlError::NoHost(config.controller.clone()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .identity(Identity::from_pem(cert, key))
        .domain_name(host);
    Ok(Endpoint::from_shared(config.controller.clone())?
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(5)))
}
