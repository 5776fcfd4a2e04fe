//! The operator service: list agents, run a scenario with streamed progress, abort runs.

use std::pin::Pin;
use std::sync::Arc;

use gameday_proto::v1::operator_server::Operator;
use gameday_proto::v1::{self, run_event::Event, RunEvent};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::certs::Role;
use crate::engine::Engine;
use crate::identity;
use crate::scenario;

pub(super) struct OperatorService {
    engine: Arc<Engine>,
}

impl OperatorService {
    pub(super) fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<RunEvent, Status>> + Send>>;

fn operator<T>(request: &Request<T>) -> Result<identity::PeerIdentity, Status> {
    let id = identity::from_request(request)?;
    identity::require_role(&id, Role::Operator)?;
    Ok(id)
}

#[tonic::async_trait]
impl Operator for OperatorService {
    type RunScenarioStream = EventStream;

    async fn list_agents(
        &self,
        request: Request<v1::ListAgentsRequest>,
    ) -> Result<Response<v1::ListAgentsResponse>, Status> {
        operator(&request)?;
        let agents = self
            .engine
            .registry()
            .all()
            .iter()
            .map(|a| a.info())
            .collect();
        Ok(Response::new(v1::ListAgentsResponse { agents }))
    }

    async fn run_scenario(
        &self,
        request: Request<v1::RunScenarioRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let who = operator(&request)?;
        let req = request.into_inner();
        let parsed = scenario::parse(&req.file_name, &req.scenario_toml)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        tracing::info!(operator = %who.name, scenario = %parsed.name, file = %req.file_name, "run requested");
        let (tx, rx) = mpsc::channel(256);
        let engine = self.engine.clone();
        // The run goes on to its end (and reverts) even if the operator hangs up.
        tokio::spawn(async move {
            let (progress, mut lines) = mpsc::unbounded_channel();
            let forward_tx = tx.clone();
            let forward = tokio::spawn(async move {
                while let Some(line) = lines.recv().await {
                    let _ = forward_tx
                        .send(Ok(RunEvent {
                            event: Some(Event::Progress(line)),
                        }))
                        .await;
                }
            });
            let report = engine
                .run_scenario(&req.file_name, &req.scenario_toml, &parsed, &progress)
                .await;
            drop(progress);
            let _ = forward.await;
            let json =
                serde_json::to_string(&report).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
            let _ = tx
                .send(Ok(RunEvent {
                    event: Some(Event::ReportJson(json)),
                }))
                .await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn abort(
        &self,
        request: Request<v1::AbortRequest>,
    ) -> Result<Response<v1::AbortResponse>, Status> {
        let who = operator(&request)?;
        let req = request.into_inner();
        if !req.all && req.run_id.is_empty() {
            return Err(Status::invalid_argument(
                "name a run id or ask for all runs",
            ));
        }
        let run = (!req.all).then_some(req.run_id.as_str());
        tracing::warn!(operator = %who.name, run = ?run, "abort requested");
        let (aborted_runs, reverted_faults) = self.engine.abort(run).await;
        if let Some(r) = run {
            if aborted_runs == 0 && reverted_faults == 0 {
                return Err(Status::not_found(format!("no active run {r:?}")));
            }
        }
        Ok(Response::new(v1::AbortResponse {
            aborted_runs,
            reverted_faults,
        }))
    }
}
