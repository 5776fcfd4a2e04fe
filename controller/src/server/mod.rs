//! The controller's gRPC server: the agents' control stream and the operators' service, both
//! behind mutual TLS.

mod agent_control;
mod operator;
pub mod status;
mod tls_accept;

pub(crate) use tls_accept::handshake;
pub use tls_accept::{ServerTls, ServerTlsError};

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use gameday_proto::v1::agent_control_server::AgentControlServer;
use gameday_proto::v1::operator_server::OperatorServer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::transport::Server;

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
    /// At shutdown, how long runs get to revert, then how long connections get to close.
    pub shutdown_grace: Duration,
}

impl Default for ChannelTiming {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(1),
            heartbeat_timeout: Duration::from_secs(5),
            lease: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// TLS configuration or transport failure.
    #[error("grpc transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The server task panicked.
    #[error("the grpc server stopped unexpectedly: {0}")]
    Crashed(String),
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

/// Serves agents and operators on `listener` until `shutdown` resolves, then stops in order:
/// no new runs; runs going on are stopped and revert their faults while the agents' streams
/// are still open; the agents' streams are closed (their leases take over); open connections
/// and tracked tasks get a bounded time to end.
pub async fn serve(
    tls: ServerTls,
    timing: ChannelTiming,
    engine: Arc<Engine>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    serve_with(tls, timing, engine, Extras::default(), listener, shutdown).await
}

/// Like [`serve`], with history and schedules answering the operators' calls about them.
pub async fn serve_with(
    tls: ServerTls,
    timing: ChannelTiming,
    engine: Arc<Engine>,
    extras: Extras,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let registry = engine.registry().clone();
    let expiry_registry = registry.clone();
    let expiry = tokio::spawn(async move {
        let timeout = timing.heartbeat_timeout;
        expiry_registry
            .expire_silent(timeout, |name| {
                tracing::warn!(agent = %name, ?timeout, "agent lost: no heartbeat");
            })
            .await;
    });
    let (drain_tx, drain) = tokio::sync::oneshot::channel::<()>();
    let (stop_accepting, acceptor) = (CancellationToken::new(), TaskTracker::new());
    let incoming = tls_accept::incoming(listener, tls, stop_accepting.clone(), acceptor.clone());
    let server = Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(5)))
        .add_service(AgentControlServer::new(
            agent_control::AgentControlService::new(engine.clone(), timing),
        ))
        .add_service(
            OperatorServer::new(
                operator::OperatorService::new(engine.clone())
                    .with_history(extras.history)
                    .with_schedules(extras.schedules),
            )
            .max_decoding_message_size(crate::limits::MAX_REQUEST_BYTES),
        )
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = drain.await;
        });
    // The server runs on its own task: it must keep answering agents while the runs revert.
    let mut server = tokio::spawn(server);
    tokio::select! {
        result = &mut server => {
            expiry.abort();
            stop_accepting.cancel();
            return flatten(result);
        }
        _ = shutdown => {}
    }
    tracing::info!("shutting down: no new runs; stopping the runs going on");
    engine.shutdown_runs(timing.shutdown_grace).await;
    let closed = registry.close_all(status::ApiError::ShuttingDownForAgents.into());
    tracing::info!(agents = closed, "closed the agents' streams");
    let _ = drain_tx.send(());
    let result = match tokio::time::timeout(timing.shutdown_grace, &mut server).await {
        Ok(result) => flatten(result),
        Err(_) => {
            tracing::warn!(grace = ?timing.shutdown_grace, "connections still open after the grace period; closing them");
            server.abort();
            Ok(())
        }
    };
    stop_accepting.cancel();
    acceptor.close();
    engine.join_tasks(timing.shutdown_grace).await;
    let _ = tokio::time::timeout(timing.shutdown_grace, acceptor.wait()).await;
    expiry.abort();
    let _ = expiry.await;
    result
}

fn flatten(
    joined: Result<Result<(), tonic::transport::Error>, tokio::task::JoinError>,
) -> Result<(), ServeError> {
    match joined {
        Ok(r) => Ok(r?),
        Err(e) => Err(ServeError::Crashed(e.to_string())),
    }
}
