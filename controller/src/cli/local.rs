//! A fleet of one on this machine: an embedded controller on loopback with throw-away
//! certificates, and a `gameday-agent` child named `local`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use gameday::engine::{Engine, StartedBy};
use gameday::registry::AgentRegistry;
use gameday::report::exit;
use gameday::scenario::{Scenario, ScenarioFile};
use gameday::server::{self, ChannelTiming};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};

use super::output::{print_report, ReportOutput};
use super::UsageError;

/// The local agent's name.
pub const LOCAL_AGENT: &str = "local";

/// The local agent: its name and labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalAgent {
    /// The name it registers under (its certificate's).
    pub name: String,
    /// Its labels; `local = "true"` unless the scenario selects by another `local` value.
    pub labels: std::collections::BTreeMap<String, String>,
}

impl Default for LocalAgent {
    fn default() -> LocalAgent {
        LocalAgent {
            name: LOCAL_AGENT.into(),
            labels: [("local".to_string(), "true".to_string())].into(),
        }
    }
}

impl LocalAgent {
    /// The local agent for `scenario`: `local`, or — with `--target NAME` — one standing in
    /// for the scenario's target agent NAME, carrying the labels the scenario selects by. A
    /// `--target` the scenario cannot use is a usage error that says why.
    pub fn for_scenario(
        scenario: &Scenario,
        target: Option<&str>,
    ) -> Result<LocalAgent, UsageError> {
        let wanted = &scenario.targets.agents;
        let Some(name) = target else {
            return Ok(LocalAgent::default());
        };
        gameday::certs::validate_name(name).map_err(|e| UsageError(format!("--target: {e}")))?;
        match wanted.as_slice() {
            [] => {}
            [one] if one == name => {}
            [one] => {
                return Err(UsageError(format!(
                    "--target {name}: the scenario targets agent {one:?}; use --target {one}"
                )))
            }
            several => {
                return Err(UsageError(format!(
                    "--target {name}: the scenario targets {} agents ({}), and a local run has \
                     one agent",
                    several.len(),
                    several.join(", ")
                )))
            }
        }
        let mut labels = LocalAgent::default().labels;
        labels.extend(scenario.targets.labels.clone());
        Ok(LocalAgent {
            name: name.to_string(),
            labels,
        })
    }

    /// Without `--target`: when the local agent is not what `scenario` targets (its preflight
    /// will fail), the flag to add.
    pub fn missing_target_hint(scenario: &Scenario) -> Option<String> {
        let local = LocalAgent::default();
        let by_name = scenario.targets.agents.iter().all(|a| a == LOCAL_AGENT);
        let by_labels = scenario
            .targets
            .labels
            .iter()
            .all(|(k, v)| local.labels.get(k) == Some(v));
        if by_name && by_labels {
            return None;
        }
        let suggestion = scenario
            .targets
            .agents
            .iter()
            .find(|a| *a != LOCAL_AGENT)
            .map_or("NAME", String::as_str);
        Some(format!(
            "the scenario targets {}; with --local the only agent is {LOCAL_AGENT:?}: add \
             `--target {suggestion}` to let it stand in for the scenario's target",
            describe_targets(scenario)
        ))
    }

    /// The agent config's `[labels]` table.
    fn labels_toml(&self) -> String {
        let quote = |s: &str| toml::Value::String(s.to_string()).to_string();
        self.labels
            .iter()
            .map(|(k, v)| format!("{} = {}\n", quote(k), quote(v)))
            .collect()
    }
}

fn describe_targets(scenario: &Scenario) -> String {
    let t = &scenario.targets;
    let mut parts = Vec::new();
    if !t.agents.is_empty() {
        parts.push(format!("agents [{}]", t.agents.join(", ")));
    }
    if !t.labels.is_empty() {
        let labels: Vec<String> = t.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        parts.push(format!("labels {{{}}}", labels.join(", ")));
    }
    parts.join(" and ")
}

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
    pub async fn start(local: &LocalAgent, policy: Option<&str>) -> anyhow::Result<LocalFleet> {
        let fleet = gameday::certs::ephemeral_fleet(&[local.name.as_str()])
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
        let tls = server::ServerTls::new(&fleet.ca, &fleet.controller)?;
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
            "name = \"{name}\"\ncontroller = \"https://127.0.0.1:{port}\"\nlease = \"10s\"\nstate_dir = \"state\"\n\n[labels]\n{labels}\n[tls]\nca = \"ca.pem\"\ncert = \"agent.pem\"\nkey = \"agent.key\"\n",
            name = local.name,
            labels = local.labels_toml(),
            port = addr.port()
        );
        let policy_first_line = config.lines().count() + 2;
        if let Some(policy) = policy {
            config.push_str("\n# --agent-policy\n");
            config.push_str(policy);
        }
        let config_path = dir.path().join("agent.toml");
        std::fs::write(&config_path, config)?;
        // `run --local` and the demo start the agent they drive.
        #[allow(clippy::disallowed_methods)]
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
        while fleet.engine.registry().get(&local.name).is_none() {
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

    /// Runs a scenario for `session` (`local`, `demo`), streaming progress to stderr.
    pub async fn run(
        &self,
        session: &str,
        input: &ScenarioFile,
    ) -> gameday::report::ScenarioReport {
        let (progress, events) = mpsc::unbounded_channel();
        let printer = tokio::spawn(super::progress::show(events));
        let by = StartedBy::Session(session.to_string());
        let report = self.engine.run_scenario_as(by, input, &progress).await;
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

/// `gameday run --local FILE [--target NAME] [--agent-policy POLICY]`.
pub async fn run_file(
    file: &Path,
    target: Option<&str>,
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
    let input = match ScenarioFile::parse(&name, source) {
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
    let scenario = &input.scenario;
    let local = LocalAgent::for_scenario(scenario, target)?;
    if target.is_none() {
        if let Some(hint) = LocalAgent::missing_target_hint(scenario) {
            eprintln!("hint: {hint}");
        }
    }
    if local.name != LOCAL_AGENT {
        eprintln!(
            "local: the local agent stands in for {:?} (labels {})",
            local.name,
            local
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let fleet = LocalFleet::start(&local, policy.as_deref()).await?;
    let report = fleet.run("local", &input).await;
    fleet.shutdown().await;
    print_report(&report, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(targets: &str) -> Scenario {
        let text = format!(
            "name = \"t\"\nrto = \"1s\"\n\n[targets]\n{targets}\n\n[[faults]]\nkind = \"process_kill\"\nname = \"x\"\n\n[[probes]]\nname = \"p\"\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\n"
        );
        gameday::scenario::parse("t.toml", &text).expect("valid scenario")
    }

    #[test]
    fn the_local_agent_stands_in_for_the_named_target() {
        let fleet = scenario("agents = [\"web-1\"]\nlabels = { role = \"web\" }");
        let hint = LocalAgent::missing_target_hint(&fleet).unwrap();
        assert!(
            hint.contains("agents [web-1] and labels {role=web}"),
            "{hint}"
        );
        assert!(hint.contains("--target web-1"), "{hint}");
        assert_eq!(
            LocalAgent::for_scenario(&fleet, None).unwrap(),
            LocalAgent::default()
        );
        let agent = LocalAgent::for_scenario(&fleet, Some("web-1")).unwrap();
        assert_eq!(agent.name, "web-1");
        assert_eq!(agent.labels["role"], "web");
        assert_eq!(agent.labels["local"], "true");
        assert_eq!(
            agent.labels_toml(),
            "\"local\" = \"true\"\n\"role\" = \"web\"\n"
        );
        let err = LocalAgent::for_scenario(&fleet, Some("web-2"))
            .unwrap_err()
            .0;
        assert!(err.contains("use --target web-1"), "{err}");
        let err = LocalAgent::for_scenario(&fleet, Some("bad name"))
            .unwrap_err()
            .0;
        assert!(err.starts_with("--target: invalid name"), "{err}");
    }

    #[test]
    fn scenarios_for_the_local_agent_need_no_flag() {
        let local = scenario("agents = [\"local\"]");
        assert_eq!(LocalAgent::missing_target_hint(&local), None);
        let by_label = scenario("labels = { local = \"true\" }");
        assert_eq!(LocalAgent::missing_target_hint(&by_label), None);
        let two = scenario("agents = [\"a\", \"b\"]\nmax_targets = 2");
        let err = LocalAgent::for_scenario(&two, Some("a")).unwrap_err().0;
        assert!(err.contains("2 agents (a, b)"), "{err}");
        let labels_only = scenario("labels = { role = \"db\" }");
        let agent = LocalAgent::for_scenario(&labels_only, Some("db-1")).unwrap();
        assert_eq!(agent.labels["role"], "db");
    }
}
