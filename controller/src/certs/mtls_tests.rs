//! Mutual TLS for real: a tonic server on loopback with [`server_tls`], clients with
//! [`client_tls`], and the caller's identity read back through [`crate::identity`].

use std::net::SocketAddr;
use std::time::Duration;

use gameday_proto::v1::operator_client::OperatorClient;
use gameday_proto::v1::operator_server::{Operator, OperatorServer};
use gameday_proto::v1::{
    AbortRequest, AbortResponse, AgentInfo, ListAgentsRequest, ListAgentsResponse, RunEvent,
    RunScenarioRequest,
};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Server};
use tonic::{Request, Response, Status};

use super::*;
use crate::identity;

/// Answers `ListAgents` with one entry naming the caller, as its certificate says.
struct WhoAmI;

#[tonic::async_trait]
impl Operator for WhoAmI {
    async fn list_agents(
        &self,
        request: Request<ListAgentsRequest>,
    ) -> Result<Response<ListAgentsResponse>, Status> {
        let caller = identity::from_request(&request)?;
        Ok(Response::new(ListAgentsResponse {
            agents: vec![AgentInfo {
                name: caller.name,
                labels: [("role".to_owned(), caller.role.to_string())].into(),
                ..AgentInfo::default()
            }],
        }))
    }

    type RunScenarioStream = tokio_stream::Empty<Result<RunEvent, Status>>;

    async fn run_scenario(
        &self,
        _request: Request<RunScenarioRequest>,
    ) -> Result<Response<Self::RunScenarioStream>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn abort(
        &self,
        _request: Request<AbortRequest>,
    ) -> Result<Response<AbortResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn list_runs(
        &self,
        _request: Request<gameday_proto::v1::ListRunsRequest>,
    ) -> Result<Response<gameday_proto::v1::ListRunsResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn get_run(
        &self,
        _request: Request<gameday_proto::v1::GetRunRequest>,
    ) -> Result<Response<gameday_proto::v1::GetRunResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn get_scenario_history(
        &self,
        _request: Request<gameday_proto::v1::GetScenarioHistoryRequest>,
    ) -> Result<Response<gameday_proto::v1::GetScenarioHistoryResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn list_schedules(
        &self,
        _request: Request<gameday_proto::v1::ListSchedulesRequest>,
    ) -> Result<Response<gameday_proto::v1::ListSchedulesResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn annotate(
        &self,
        _request: Request<gameday_proto::v1::AnnotateRequest>,
    ) -> Result<Response<gameday_proto::v1::AnnotateResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn revert(
        &self,
        _request: Request<gameday_proto::v1::RevertRequest>,
    ) -> Result<Response<gameday_proto::v1::RevertResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn await_continue(
        &self,
        _request: Request<gameday_proto::v1::ContinueRequest>,
    ) -> Result<Response<gameday_proto::v1::ContinueResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn r#continue(
        &self,
        _request: Request<gameday_proto::v1::ContinueRequest>,
    ) -> Result<Response<gameday_proto::v1::ContinueResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
}

/// A running test server; stops and is joined on [`TestServer::stop`].
struct TestServer {
    addr: SocketAddr,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl TestServer {
    async fn start(ca_pem: &str, controller: &Pem) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (shutdown, stopped) = oneshot::channel::<()>();
        let router = Server::builder()
            .tls_config(server_tls(ca_pem, controller))
            .unwrap()
            .add_service(OperatorServer::new(WhoAmI));
        let task = tokio::spawn(router.serve_with_incoming_shutdown(
            TcpListenerStream::new(listener),
            async {
                let _ = stopped.await;
            },
        ));
        TestServer {
            addr,
            shutdown,
            task,
        }
    }

    async fn stop(self) {
        let _ = self.shutdown.send(());
        self.task.await.unwrap().unwrap();
    }
}

/// Connects with `tls` and calls `ListAgents`; any failure, at connect or at the call, is an
/// `Err` with its text.
async fn list_agents(addr: SocketAddr, tls: ClientTlsConfig) -> Result<Vec<AgentInfo>, String> {
    let channel = Channel::from_shared(format!("https://{addr}"))
        .map_err(|e| e.to_string())?
        .tls_config(tls)
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| format!("connect: {e:?}"))?;
    OperatorClient::new(channel)
        .list_agents(ListAgentsRequest {})
        .await
        .map(|response| response.into_inner().agents)
        .map_err(|status| format!("call: {status:?}"))
}

/// Retries `list_agents` until it succeeds or `within` passes: the first call may race the
/// server task's start. Returns the last error on timeout.
async fn eventually_list_agents(
    addr: SocketAddr,
    tls: ClientTlsConfig,
    within: Duration,
) -> Result<Vec<AgentInfo>, String> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match list_agents(addr, tls.clone()).await {
            Ok(agents) => return Ok(agents),
            Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

#[tokio::test]
async fn mutual_tls_identifies_callers_and_refuses_strangers() {
    let fleet = ephemeral_fleet(&["web1"]).unwrap();
    let server = TestServer::start(&fleet.ca, &fleet.controller).await;

    // An operator with a certificate from the fleet CA gets in, and is known by its CN and OU.
    let operator = client_tls(&fleet.ca, &fleet.operator, "localhost");
    let agents = eventually_list_agents(server.addr, operator, Duration::from_secs(10))
        .await
        .expect("CA-signed operator is accepted");
    assert_eq!(agents.len(), 1);
    assert_eq!(agents[0].name, "operator");
    assert_eq!(agents[0].labels["role"], "operator");

    // So does an agent, as itself, with the controller addressed by IP.
    let (agent_name, agent_pem) = &fleet.agents[0];
    let agent = client_tls(&fleet.ca, agent_pem, "127.0.0.1");
    let agents = list_agents(server.addr, agent).await.unwrap();
    assert_eq!(agents[0].name, *agent_name);
    assert_eq!(agents[0].labels["role"], "agent");

    // A certificate signed by another CA is refused, even for a name the fleet knows.
    let stranger = ephemeral_fleet(&["web1"]).unwrap();
    let forged = client_tls(&fleet.ca, &stranger.agents[0].1, "localhost");
    let err = list_agents(server.addr, forged).await.unwrap_err();
    assert!(err.contains("fatal alert"), "{err}");

    // A client presenting no certificate at all is refused.
    let anonymous = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&fleet.ca))
        .domain_name("localhost");
    let err = list_agents(server.addr, anonymous).await.unwrap_err();
    assert!(err.contains("CertificateRequired"), "{err}");

    // The client checks the server too: a controller certificate from another CA is refused.
    let impostor = TestServer::start(&fleet.ca, &stranger.controller).await;
    let err = list_agents(
        impostor.addr,
        client_tls(&fleet.ca, &fleet.operator, "localhost"),
    )
    .await
    .unwrap_err();
    assert!(err.contains("InvalidCertificate"), "{err}");
    impostor.stop().await;

    // The server is still healthy after refusing handshakes.
    let operator = client_tls(&fleet.ca, &fleet.operator, "localhost");
    assert!(list_agents(server.addr, operator).await.is_ok());
    server.stop().await;
}
