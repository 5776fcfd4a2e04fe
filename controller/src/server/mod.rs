//! The controller's gRPC server: the agents' control stream and the operators' service, both
//! behind mutual TLS.

mod agent_control;
mod operator;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use gameday_proto::v1::agent_control_server::AgentControlServer;
use gameday_proto::v1::operator_server::OperatorServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Server, ServerTlsConfig};

use crate::engine::Engine;

/// Timing of the control channel.
#[derive(Clone, Copy, Debug)]
pub struct ChannelTiming {
    /// How often agents send heartbeats.
    pub heartbeat_interval: Duration,
    /// An agent silent for this long is dropped from the live list.
    pub heartbeat_timeout: Duration,
    /// Agents revert everything after hearing nothing from the controller for this long.
    pub lease: Duration,
}

impl Default for ChannelTiming {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(1),
            heartbeat_timeout: Duration::from_secs(5),
            lease: Duration::from_secs(10),
        }
    }
}

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// TLS configuration or transport failure.
    #[error("grpc transport: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// What the operator service can answer besides agents and runs; absent parts answer
/// FailedPrecondition ("this controller keeps no history", "runs no scheduler").
#[derive(Default)]
pub struct Extras {
    /// The run history.
    pub history: Option<Arc<crate::store::Store>>,
    /// The scheduler's table of schedules.
    pub schedules: Option<crate::schedule::ScheduleBook>,
}

/// Serves agents and operators on `listener` until `shutdown` resolves.
pub async fn serve(
    tls: ServerTlsConfig,
    timing: ChannelTiming,
    engine: Arc<Engine>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    serve_with(tls, timing, engine, Extras::default(), listener, shutdown).await
}

/// Like [`serve`], with history and schedules answering the operators' calls about them.
pub async fn serve_with(
    tls: ServerTlsConfig,
    timing: ChannelTiming,
    engine: Arc<Engine>,
    extras: Extras,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let registry = engine.registry().clone();
    let expiry = tokio::spawn(async move {
        let mut tick =
            tokio::time::interval(timing.heartbeat_interval.min(Duration::from_millis(500)));
        loop {
            tick.tick().await;
            for name in registry.expire(timing.heartbeat_timeout) {
                tracing::warn!(agent = %name, timeout = ?timing.heartbeat_timeout, "agent lost: no heartbeat");
            }
        }
    });
    let result = Server::builder()
        .tls_config(tls)?
        .http2_keepalive_interval(Some(Duration::from_secs(5)))
        .add_service(AgentControlServer::new(
            agent_control::AgentControlService::new(engine.clone(), timing),
        ))
        .add_service(
            OperatorServer::new(
                operator::OperatorService::new(engine)
                    .with_history(extras.history)
                    .with_schedules(extras.schedules),
            )
            .max_decoding_message_size(crate::limits::MAX_REQUEST_BYTES),
        )
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await;
    expiry.abort();
    Ok(result?)
}
