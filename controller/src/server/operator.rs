//! The operator service: list agents, run a scenario with streamed progress, abort runs, read
//! the run history.

use std::pin::Pin;
use std::sync::Arc;

use gameday_proto::v1::operator_server::Operator;
use gameday_proto::v1::{self, run_event::Event, RunEvent};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::status::ApiError;
use crate::certs::Role;
use crate::engine::Engine;
use crate::identity;
use crate::store::{RunFilter, Store, StoreError};

/// Sessions pausing for discussion: session id → who ends the pause is sent here.
type Pauses =
    Arc<std::sync::Mutex<std::collections::HashMap<String, tokio::sync::oneshot::Sender<String>>>>;

pub(super) struct OperatorService {
    engine: Arc<Engine>,
    history: Option<Arc<Store>>,
    schedules: Option<crate::schedule::ScheduleBook>,
    /// Game-day sessions pausing for discussion, each waiting for `gameday continue`.
    pauses: Pauses,
}

/// Takes a session's pause out of the table when its waiter goes away (the session ended or
/// its client was stopped), so a later `continue` says there is no such pause.
struct PauseGuard {
    pauses: Pauses,
    session: String,
}

impl Drop for PauseGuard {
    fn drop(&mut self) {
        if let Ok(mut pauses) = self.pauses.lock() {
            pauses.remove(&self.session);
        }
    }
}

impl OperatorService {
    pub(super) fn new(engine: Arc<Engine>) -> Self {
        Self {
            engine,
            history: None,
            schedules: None,
            pauses: Default::default(),
        }
    }

    /// Answers `ListSchedules` from the scheduler's table (without it the call fails with a
    /// clear message).
    pub(super) fn with_schedules(
        mut self,
        schedules: Option<crate::schedule::ScheduleBook>,
    ) -> Self {
        self.schedules = schedules;
        self
    }

    /// Answers the history calls from `history` (without it they fail with a clear message).
    pub(super) fn with_history(mut self, history: Option<Arc<Store>>) -> Self {
        self.history = history;
        self
    }

    fn history(&self) -> Result<Arc<Store>, ApiError> {
        self.history.clone().ok_or(ApiError::NoHistory)
    }
}

/// Runs a history query off the async threads (SQLite blocks) and maps its errors.
async fn query<T: Send + 'static>(
    store: Arc<Store>,
    f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|e| ApiError::Internal(format!("run history query failed: {e}")))?
        .map_err(|e| {
            tracing::error!(error = %e, "run history query failed");
            ApiError::History(e)
        })
}

type EventStream = Pin<Box<dyn Stream<Item = Result<RunEvent, Status>> + Send>>;

fn operator<T>(request: &Request<T>) -> Result<identity::PeerIdentity, ApiError> {
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
        if self.engine.is_closing() {
            return Err(ApiError::ShuttingDown.into());
        }
        let req = request.into_inner();
        let (tx, rx) = mpsc::channel(256);
        let file_name = req.file_name;
        let input = match self
            .engine
            .validator()
            .parse(file_name.clone(), req.scenario_toml)
            .await
        {
            Ok(p) => p,
            Err(refusal) => {
                tracing::info!(operator = %who.name, file = %file_name, refusal = %refusal.summary(), "scenario refused");
                // The problems go in the body, where no header limit truncates them; the
                // status says what kind of failure it is in one line.
                let _ = tx
                    .send(Ok(RunEvent {
                        event: Some(Event::Invalid(refusal.to_string())),
                    }))
                    .await;
                let _ = tx
                    .send(Err(ApiError::Invalid(refusal.summary()).into()))
                    .await;
                return Ok(Response::new(Box::pin(ReceiverStream::new(rx))));
            }
        };
        tracing::info!(operator = %who.name, scenario = %input.scenario.name, file = %input.file, "run requested");
        let engine = self.engine.clone();
        let started_by = crate::engine::StartedBy::Operator(who.name.clone());
        // The run goes on to its end (and reverts) even if the operator hangs up; shutdown
        // stops it and waits for it.
        let tracker = self.engine.clone();
        tracker.spawn(async move {
            let (progress, mut lines) = mpsc::unbounded_channel::<crate::engine::ProgressEvent>();
            let forward_tx = tx.clone();
            let forward = tokio::spawn(async move {
                while let Some(p) = lines.recv().await {
                    let update = v1::ProgressUpdate {
                        line: p.line,
                        phase: v1::Phase::from(p.phase).into(),
                        run: p.run,
                        runs: p.runs,
                        rto_ms: p.rto_ms,
                        injected_unix_ms: p.injected_unix_ms.unwrap_or(0),
                    };
                    let _ = forward_tx
                        .send(Ok(RunEvent {
                            event: Some(Event::Update(update)),
                        }))
                        .await;
                }
            });
            let report = engine.run_scenario_as(started_by, &input, &progress).await;
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

    async fn list_schedules(
        &self,
        request: Request<v1::ListSchedulesRequest>,
    ) -> Result<Response<v1::ListSchedulesResponse>, Status> {
        operator(&request)?;
        let book = self.schedules.as_ref().ok_or(ApiError::NoScheduler)?;
        let schedules = book
            .status(chrono::Utc::now())
            .iter()
            .map(|s| s.to_info())
            .collect();
        Ok(Response::new(v1::ListSchedulesResponse { schedules }))
    }

    async fn annotate(
        &self,
        request: Request<v1::AnnotateRequest>,
    ) -> Result<Response<v1::AnnotateResponse>, Status> {
        use crate::annotation::{add, AddError, AnnotationKind};
        let who = operator(&request)?;
        let req = request.into_inner();
        let kind = match v1::AnnotationKind::try_from(req.kind) {
            Ok(v1::AnnotationKind::ActionItem) => AnnotationKind::ActionItem,
            Ok(v1::AnnotationKind::RemediationStarted) => AnnotationKind::RemediationStarted,
            Ok(v1::AnnotationKind::Note | v1::AnnotationKind::Unspecified) => AnnotationKind::Note,
            Err(_) => {
                return Err(
                    ApiError::Invalid(format!("unknown annotation kind {}", req.kind)).into(),
                )
            }
        };
        let author = format!("operator {}", who.name);
        match add(
            &self.engine,
            self.history.clone(),
            &req.run_id,
            author,
            kind,
            &req.text,
        )
        .await
        {
            Ok((note, live)) => Ok(Response::new(v1::AnnotateResponse {
                unix_ms: note.unix_ms,
                author: note.author,
                live,
            })),
            Err(e @ AddError::Text(_)) => Err(ApiError::Invalid(e.to_string()).into()),
            Err(e @ AddError::NoRun(_)) => Err(ApiError::NotFound(e.to_string()).into()),
            Err(e @ AddError::History(_)) => Err(ApiError::Internal(e.to_string()).into()),
        }
    }

    async fn await_continue(
        &self,
        request: Request<v1::ContinueRequest>,
    ) -> Result<Response<v1::ContinueResponse>, Status> {
        operator(&request)?;
        let session = request.into_inner().session;
        if session.is_empty() {
            return Err(ApiError::Invalid("name the session".into()).into());
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        {
            let mut pauses = self.pauses.lock().expect("pauses lock");
            if pauses.contains_key(&session) {
                return Err(
                    ApiError::Invalid(format!("session {session:?} is already pausing")).into(),
                );
            }
            pauses.insert(session.clone(), tx);
        }
        let _guard = PauseGuard {
            pauses: self.pauses.clone(),
            session,
        };
        match rx.await {
            Ok(by) => Ok(Response::new(v1::ContinueResponse { by })),
            Err(_) => Err(ApiError::Internal("the pause ended without a continue".into()).into()),
        }
    }

    async fn r#continue(
        &self,
        request: Request<v1::ContinueRequest>,
    ) -> Result<Response<v1::ContinueResponse>, Status> {
        let who = operator(&request)?;
        let session = request.into_inner().session;
        let waiter = self.pauses.lock().expect("pauses lock").remove(&session);
        let by = format!("operator {}", who.name);
        match waiter.map(|w| w.send(by.clone())) {
            Some(Ok(())) => {
                tracing::info!(%session, %by, "session continues");
                Ok(Response::new(v1::ContinueResponse { by }))
            }
            _ => Err(ApiError::NotFound(format!("no session {session:?} is pausing")).into()),
        }
    }

    async fn revert(
        &self,
        request: Request<v1::RevertRequest>,
    ) -> Result<Response<v1::RevertResponse>, Status> {
        use crate::engine::RevertError;
        let who = operator(&request)?;
        let run_id = request.into_inner().run_id;
        match self.engine.revert_run(&run_id) {
            Ok(()) => {
                let asked_by = format!("operator {}", who.name);
                tracing::info!(run = %run_id, by = %asked_by, "manual revert requested");
                // The run's notes say who lifted the fault, and when.
                let _ = crate::annotation::add(
                    &self.engine,
                    self.history.clone(),
                    &run_id,
                    asked_by.clone(),
                    crate::annotation::AnnotationKind::Note,
                    "reverted the faults (gameday revert)",
                )
                .await;
                Ok(Response::new(v1::RevertResponse { asked_by }))
            }
            Err(e @ RevertError::NotActive(_)) => Err(ApiError::NotFound(e.to_string()).into()),
            Err(e @ (RevertError::NotManual(_) | RevertError::Already(_))) => {
                Err(ApiError::Invalid(e.to_string()).into())
            }
        }
    }

    async fn abort(
        &self,
        request: Request<v1::AbortRequest>,
    ) -> Result<Response<v1::AbortResponse>, Status> {
        let who = operator(&request)?;
        let req = request.into_inner();
        if !req.all && req.run_id.is_empty() {
            return Err(ApiError::Invalid("name a run id or ask for all runs".into()).into());
        }
        let run = (!req.all).then_some(req.run_id.as_str());
        tracing::info!(operator = %who.name, run = run.unwrap_or("all"), "abort requested");
        let aborted_by = format!("operator {}", who.name);
        let outcome = self.engine.abort_by(run, &aborted_by).await;
        if let Some(r) = run {
            if outcome.runs.is_empty()
                && outcome.invocations.is_empty()
                && outcome.faults.is_empty()
            {
                return Err(ApiError::NotFound(format!("no active run {r:?}")).into());
            }
        }
        Ok(Response::new(v1::AbortResponse {
            aborted_runs: outcome.runs.len() as u32,
            reverted_faults: outcome.reverted(),
            faults: outcome
                .faults
                .into_iter()
                .map(|f| v1::AbortedFault {
                    fault_id: f.fault_id,
                    run_id: f.run_id,
                    agent: f.agent,
                    kind: f.kind,
                    error: f.error.unwrap_or_default(),
                })
                .collect(),
            runs: outcome.runs,
            invocations: outcome.invocations,
            aborted_by,
        }))
    }

    async fn list_runs(
        &self,
        request: Request<v1::ListRunsRequest>,
    ) -> Result<Response<v1::ListRunsResponse>, Status> {
        operator(&request)?;
        let store = self.history()?;
        let filter =
            RunFilter::try_from(request.get_ref()).map_err(|e| ApiError::Invalid(e.to_string()))?;
        let runs = query(store, move |s| s.list_runs(&filter)).await?;
        Ok(Response::new(v1::ListRunsResponse {
            runs: runs.iter().map(v1::RunSummary::from).collect(),
        }))
    }

    async fn get_run(
        &self,
        request: Request<v1::GetRunRequest>,
    ) -> Result<Response<v1::GetRunResponse>, Status> {
        operator(&request)?;
        let store = self.history()?;
        let run_id = request.into_inner().run_id;
        if run_id.is_empty() {
            return Err(ApiError::Invalid("name a run id".into()).into());
        }
        let id = run_id.clone();
        let run = query(store, move |s| s.get_run(&id))
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no run {run_id:?} in the history")))?;
        let response = v1::GetRunResponse::try_from(&run)
            .map_err(|e| ApiError::Internal(format!("run {run_id}: {e}")))?;
        Ok(Response::new(response))
    }

    async fn get_scenario_history(
        &self,
        request: Request<v1::GetScenarioHistoryRequest>,
    ) -> Result<Response<v1::GetScenarioHistoryResponse>, Status> {
        operator(&request)?;
        let store = self.history()?;
        let req = request.into_inner();
        if req.scenario.is_empty() {
            return Err(ApiError::Invalid("name a scenario".into()).into());
        }
        let name = req.scenario.clone();
        let history = query(store, move |s| s.scenario_report(&name, req.limit))
            .await?
            .ok_or_else(|| {
                ApiError::NotFound(format!(
                    "scenario {:?} has no runs in the history",
                    req.scenario
                ))
            })?;
        let encode =
            |e: serde_json::Error| ApiError::Internal(format!("encoding the history: {e}"));
        Ok(Response::new(v1::GetScenarioHistoryResponse {
            report_json: serde_json::to_string(&history.report).map_err(encode)?,
            trend_json: serde_json::to_string(&history.trend).map_err(encode)?,
        }))
    }
}
