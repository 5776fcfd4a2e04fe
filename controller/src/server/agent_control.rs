//! `AgentControl.Attach`: registers an agent (its name must match its certificate), answers
//! heartbeats and routes fault reports to the runs waiting for them.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use gameday_proto::v1::agent_control_server::AgentControl;
use gameday_proto::v1::{
    self, agent_message, controller_message::Msg, AgentMessage, ControllerMessage,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use super::status::ApiError;
use super::ChannelTiming;
use crate::certs::Role;
use crate::engine::Engine;
use crate::identity;
use crate::registry::AgentConn;

/// An agent must register this soon after opening its stream.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) struct AgentControlService {
    engine: Arc<Engine>,
    timing: ChannelTiming,
}

impl AgentControlService {
    pub(super) fn new(engine: Arc<Engine>, timing: ChannelTiming) -> Self {
        Self { engine, timing }
    }
}

type OutStream = Pin<Box<dyn Stream<Item = Result<ControllerMessage, Status>> + Send>>;

#[tonic::async_trait]
impl AgentControl for AgentControlService {
    type AttachStream = OutStream;

    async fn attach(
        &self,
        request: Request<Streaming<AgentMessage>>,
    ) -> Result<Response<OutStream>, Status> {
        let id = identity::from_request(&request)?;
        identity::require_role(&id, Role::Agent)?;
        let peer = request
            .remote_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|| "unknown".into());
        let mut inbound = request.into_inner();
        let first = tokio::time::timeout(REGISTER_TIMEOUT, inbound.message())
            .await
            .map_err(|_| ApiError::NoRegistration(REGISTER_TIMEOUT))??;
        let Some(agent_message::Msg::Register(mut register)) = first.and_then(|m| m.msg) else {
            return Err(ApiError::NotRegister.into());
        };
        if register.name != id.name {
            tracing::warn!(cert = %id.name, claimed = %register.name, %peer, "agent name does not match its certificate");
            return Err(ApiError::WrongAgentName {
                cert: id.name,
                claimed: register.name,
            }
            .into());
        }
        let (tx, rx) = mpsc::channel(64);
        let held = std::mem::take(&mut register.held_faults);
        let conn = Arc::new(AgentConn::new(register, peer, tx));
        conn.send(Msg::Registered(v1::Registered {
            lease_ms: self.timing.lease.as_millis() as u64,
            heartbeat_interval_ms: self.timing.heartbeat_interval.as_millis() as u64,
        }))
        .await
        .map_err(|_| ApiError::ClosedDuringRegistration)?;
        let registry = self.engine.registry().clone();
        if self.engine.is_closing() {
            return Err(ApiError::ShuttingDownForAgents.into());
        }
        if let Err(e) = registry.register(conn.clone(), self.timing.heartbeat_timeout) {
            tracing::warn!(agent = %conn.name, peer = %conn.peer, error = %e, "refused a second agent presenting the same certificate");
            return Err(ApiError::Duplicate(e.to_string()).into());
        }
        tracing::info!(agent = %conn.name, peer = %conn.peer, capabilities = %conn.capabilities.join(","), held_faults = held.len(), "agent registered");
        if !held.is_empty() {
            // Needs the reader below running: the reverts' answers arrive on this stream.
            let engine = self.engine.clone();
            let conn = conn.clone();
            let tracker = engine.clone();
            tracker.spawn(async move { engine.reconcile(&conn, held).await });
        }
        // The reader lives as long as the agent's stream; when it ends the agent is gone.
        self.engine.spawn(async move {
            // Whether the agent ended its stream itself (it is stopping) or the stream broke.
            let mut closed_by_agent = false;
            loop {
                match inbound.message().await {
                    Ok(Some(AgentMessage { msg: Some(msg) })) => {
                        conn.heard();
                        match msg {
                            agent_message::Msg::Heartbeat(h) => {
                                let _ = conn
                                    .send(Msg::HeartbeatAck(v1::HeartbeatAck { seq: h.seq }))
                                    .await;
                            }
                            agent_message::Msg::FaultReport(r) => conn.deliver(r),
                            agent_message::Msg::StepReport(r) => conn.deliver_step(r),
                            agent_message::Msg::Register(_) => {
                                tracing::warn!(agent = %conn.name, "ignoring a second Register on one stream");
                            }
                        }
                    }
                    Ok(Some(AgentMessage { msg: None })) => {}
                    Ok(None) => {
                        closed_by_agent = true;
                        break;
                    }
                    Err(e) => {
                        tracing::info!(agent = %conn.name, error = %e.message(), "agent stream ended");
                        break;
                    }
                }
            }
            // Whoever waits for an answer on this stream learns now that none will come.
            conn.hang_up();
            if registry.remove(&conn.name, conn.generation) {
                // An agent that says goodbye (stopping, the end of a `--local` run) is no news;
                // one whose stream broke is.
                if closed_by_agent {
                    tracing::info!(agent = %conn.name, peer = %conn.peer, "agent closed its stream");
                } else {
                    tracing::warn!(agent = %conn.name, peer = %conn.peer, "agent disconnected");
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
