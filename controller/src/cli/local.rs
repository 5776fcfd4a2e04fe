//! A fleet of one on this machine: an embedded controller on loopback with throw-away
//! certificates, and a `gameday-agent` child named `local`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use gameday::engine::Engine;
use gameday::registry::AgentRegistry;
use gameday::report::exit;
use gameday::scenario::Scenario;
use gameday::server::{self, ChannelTiming};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};

use super::output::{print_report, ReportOutput};

/// The local agent's name.
pub const LOCAL_AGENT: &str = "local";

/// A running local controller and agent. Dropping it stops both.
pub struct LocalFleet {
    /// The engine of the embedded controller.
    pub engine: Arc<Engine>,
    agent: Child,
    stop_server: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

/// The agent binary: next to this executable, or `GAMEDAY_AGENT_BIN`.
fn agent_binary() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("GAMEDAY_AGENT_BIN") {
        return Ok(PathBuf::from(p));
    }
    let me = std::env::current_exe().context("locating the gameday executable")?;
    let candidate = me.with_file_name("gameday-agent");
    anyhow::ensure!(
        candidate.exists(),
        "gameday-agent not found next to {} (build it with `cargo build`, or set GAMEDAY_AGENT_BIN)",
        me.display()
    );
    Ok(candidate)
}

impl LocalFleet {
    /// Starts the controller and the agent and waits until the agent is registered.
    pub async fn start(policy: Option<&str>) -> anyhow::Result<LocalFleet> {
        let fleet = gameday::certs::ephemeral_fleet(&[LOCAL_AGENT])
            .context("making throw-away certificates")?;
        let dir = tempfile::Builder::new()
            .prefix("gameday-local-")
            .tempdir()?;
        let (_, agent_pem) = &fleet.agents[0];
        write_private(&dir.path().join("ca.pem"), &fleet.ca)?;
        write_private(&dir.path().join("agent.pem"), &agent_pem.cert)?;
        write_private(&dir.path().join("agent.key"), &agent_pem.key)?;

        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let timing = ChannelTiming::default();
        let engine = Arc::new(Engine::new(Arc::new(AgentRegistry::default())));
        let (stop_tx, stop_rx) = oneshot::channel();
        let tls = gameday::certs::server_tls(&fleet.ca, &fleet.controller);
        let server = tokio::spawn({
            let engine = engine.clone();
            async move {
                let shutdown = async {
                    let _ = stop_rx.await;
                };
                if let Err(e) = server::serve(tls, timing, engine, listener, shutdown).await {
                    tracing::error!(error = %e, "embedded controller stopped");
                }
            }
        });

        let mut config = format!(
            "name = \"{LOCAL_AGENT}\"\ncontroller = \"https://127.0.0.1:{port}\"\nlease = \"10s\"\nstate_dir = \"state\"\n\n[labels]\nlocal = \"true\"\n\n[tls]\nca = \"ca.pem\"\ncert = \"agent.pem\"\nkey = \"agent.key\"\n",
            port = addr.port()
        );
        let policy_first_line = config.lines().count() + 2;
        if let Some(policy) = policy {
            config.push_str("\n# --agent-policy\n");
            config.push_str(policy);
        }
        let config_path = dir.path().join("agent.toml");
        std::fs::write(&config_path, config)?;
        let agent = Command::new(agent_binary()?)
            .arg("--config")
            .arg(&config_path)
            // The agent's own log would drown the run's progress; GAMEDAY_LOG still wins.
            .env(
                "GAMEDAY_LOG",
                std::env::var("GAMEDAY_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .kill_on_drop(true)
            .spawn()
            .context("starting the local agent")?;
        let fleet = LocalFleet {
            engine,
            agent,
            stop_server: Some(stop_tx),
            server,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut fleet = fleet;
        while fleet.engine.registry().get(LOCAL_AGENT).is_none() {
            if let Some(status) = fleet.agent.try_wait()? {
                anyhow::bail!(
                    "the local agent exited ({status}) before registering; see its message above{}",
                    if policy.is_some() {
                        format!(" (lines of --agent-policy start at line {policy_first_line} of its config)")
                    } else {
                        String::new()
                    }
                );
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the local agent did not register within 15s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(fleet)
    }

    /// Runs a scenario, streaming progress to stderr.
    pub async fn run(
        &self,
        file: &str,
        source: &str,
        scenario: &Scenario,
    ) -> gameday::report::ScenarioReport {
        let (progress, events) = mpsc::unbounded_channel();
        let printer = tokio::spawn(super::progress::show(events));
        let report = self
            .engine
            .run_scenario(file, source, scenario, &progress)
            .await;
        drop(progress);
        let _ = printer.await;
        report
    }

    /// Stops the agent gracefully (it reverts what it holds), then the controller.
    pub async fn shutdown(mut self) {
        // SIGTERM lets the agent revert its live faults before it exits.
        super::demo::stop_child(&mut self.agent).await;
        if let Some(stop) = self.stop_server.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.server).await;
    }
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents.as_bytes())
}

/// `gameday run --local FILE [--agent-policy POLICY]`.
pub async fn run_file(
    file: &Path,
    policy: Option<&Path>,
    out: ReportOutput,
) -> anyhow::Result<i32> {
    let name = file.display().to_string();
    let source = match std::fs::read_to_string(file) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{name}: {e}");
            return Ok(exit::INVALID);
        }
    };
    if let Err(e) = gameday::limits::check_scenario_size(&name, &source) {
        eprintln!("{e}");
        return Ok(exit::INVALID);
    }
    let scenario = match gameday::scenario::parse(&name, &source) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return Ok(exit::INVALID);
        }
    };
    let policy = match policy.map(std::fs::read_to_string).transpose() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("--agent-policy: {e}");
            return Ok(exit::INVALID);
        }
    };
    let fleet = LocalFleet::start(policy.as_deref()).await?;
    let report = fleet.run(&name, &source, &scenario).await;
    fleet.shutdown().await;
    Ok(print_report(&report, out))
}
