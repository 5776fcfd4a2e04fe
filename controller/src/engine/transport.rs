//! How a run reaches its target agents: apply a fault, revert it. The registry's connections
//! are the real transport; tests give the run a scripted agent instead, so every phase runs
//! in-process and under tokio's paused clock.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::FutureExt as _;
use gameday_proto::v1;
use gameday_proto::Fault;

use crate::registry::{AgentConn, AgentRegistry, DispatchError, Exchange};

/// One target agent as a run sees it.
pub trait FaultTransport: Send + Sync {
    /// The agent's name (fault ids and reports carry it).
    fn name(&self) -> &str;

    /// Applies `fault` and waits for the agent's answer, timed on tokio's clock.
    fn apply<'a>(
        &'a self,
        apply: v1::ApplyFault,
        fault: &'a Fault,
    ) -> BoxFuture<'a, Result<Exchange, DispatchError>>;

    /// Reverts fault `fault_id` and waits for the agent's answer.
    fn revert<'a>(&'a self, fault_id: &'a str) -> BoxFuture<'a, Result<Exchange, DispatchError>>;

    /// It answers [`FaultTransport::check`]; older agents do not.
    fn checks_faults(&self) -> bool;

    /// It honours unit, cgroup, container and namespace scopes in process faults; an older
    /// agent would ignore them and act on every matching process on its host.
    fn process_scopes(&self) -> bool;

    /// Asks whether the agent would apply `spec` as fault `fault_id`, without applying it
    /// (preflight); the answer's failure says why not.
    fn check<'a>(
        &'a self,
        fault_id: &'a str,
        run_id: &'a str,
        spec: v1::FaultSpec,
    ) -> BoxFuture<'a, Result<Exchange, DispatchError>>;
}

/// A connected agent, reached through the registry: a revert goes to the connection the agent
/// has now, which is not the one the fault was applied through if it reconnected meanwhile.
pub struct RegisteredAgent {
    registry: Arc<AgentRegistry>,
    conn: Arc<AgentConn>,
}

impl RegisteredAgent {
    /// `conn`, whose later reconnections `registry` knows of.
    pub fn new(registry: Arc<AgentRegistry>, conn: Arc<AgentConn>) -> RegisteredAgent {
        RegisteredAgent { registry, conn }
    }
}

impl FaultTransport for RegisteredAgent {
    fn name(&self) -> &str {
        &self.conn.name
    }

    fn apply<'a>(
        &'a self,
        apply: v1::ApplyFault,
        fault: &'a Fault,
    ) -> BoxFuture<'a, Result<Exchange, DispatchError>> {
        self.conn.apply(apply, fault).boxed()
    }

    fn revert<'a>(&'a self, fault_id: &'a str) -> BoxFuture<'a, Result<Exchange, DispatchError>> {
        async move {
            let current = self
                .registry
                .get(&self.conn.name)
                .unwrap_or_else(|| self.conn.clone());
            current.revert(fault_id).await
        }
        .boxed()
    }

    fn checks_faults(&self) -> bool {
        self.conn.checks_faults
    }

    fn process_scopes(&self) -> bool {
        self.conn.process_scopes
    }

    fn check<'a>(
        &'a self,
        fault_id: &'a str,
        run_id: &'a str,
        spec: v1::FaultSpec,
    ) -> BoxFuture<'a, Result<Exchange, DispatchError>> {
        self.conn.check(fault_id, run_id, spec).boxed()
    }
}

impl super::remediate::StepAgent for RegisteredAgent {
    fn name(&self) -> &str {
        &self.conn.name
    }

    fn runs_steps(&self) -> bool {
        self.conn.runs_steps
    }

    fn run_step(
        &self,
        step: v1::RunStep,
    ) -> BoxFuture<'_, Result<crate::registry::StepReports, DispatchError>> {
        async move {
            // The agent's connection now: it may have reconnected since preflight.
            let current = self
                .registry
                .get(&self.conn.name)
                .unwrap_or_else(|| self.conn.clone());
            current.run_step(step).await
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use gameday_proto::v1::controller_message::Msg;
    use tokio::sync::mpsc;

    use super::*;

    type Stream = mpsc::Receiver<Result<v1::ControllerMessage, tonic::Status>>;

    fn connection() -> (Arc<AgentConn>, Stream) {
        let (tx, rx) = mpsc::channel(4);
        let register = v1::Register {
            name: "web-1".into(),
            instance_id: "aaaa".into(),
            ..v1::Register::default()
        };
        (Arc::new(AgentConn::new(register, "test".into(), tx)), rx)
    }

    #[tokio::test]
    async fn a_revert_goes_to_the_connection_the_agent_has_now() {
        let registry = Arc::new(AgentRegistry::default());
        let (first, _first_rx) = connection();
        registry
            .register(first.clone(), Duration::from_secs(5))
            .unwrap();
        let target = RegisteredAgent::new(registry.clone(), first);
        // The agent reconnects after the fault was applied through its first stream.
        let (second, mut second_rx) = connection();
        registry
            .register(second.clone(), Duration::from_secs(5))
            .unwrap();
        let agent = async {
            let Some(Ok(v1::ControllerMessage {
                msg: Some(Msg::Revert(r)),
            })) = second_rx.recv().await
            else {
                panic!("the revert arrives on the new stream");
            };
            second.deliver(v1::FaultReport {
                fault_id: r.fault_id,
                phase: v1::FaultPhase::Reverted as i32,
                ..v1::FaultReport::default()
            });
        };
        let (answer, ()) = tokio::join!(target.revert("f1"), agent);
        assert!(answer.unwrap().report.failure.is_none());
    }
}
