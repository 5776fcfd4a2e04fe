//! Subcommands that talk to a running controller as an operator: run, agents, abort.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use gameday::report::{exit, ScenarioReport};
use gameday_proto::v1::{self, operator_client::OperatorClient, run_event::Event};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use super::connection;
use super::output::{print_report, ReportOutput};

/// How to reach the controller as an operator.
#[derive(Args, Debug)]
pub struct ConnArgs {
    /// Controller URL.
    #[arg(
        long,
        env = "GAMEDAY_CONTROLLER",
        default_value = "https://127.0.0.1:7443"
    )]
    controller: String,
    /// Fleet CA certificate (PEM).
    #[arg(long, env = "GAMEDAY_CA")]
    ca: Option<PathBuf>,
    /// Operator certificate (PEM).
    #[arg(long, env = "GAMEDAY_CERT")]
    cert: Option<PathBuf>,
    /// Operator key (PEM).
    #[arg(long, env = "GAMEDAY_KEY")]
    key: Option<PathBuf>,
}

impl ConnArgs {
    /// The controller URL.
    pub(super) fn controller(&self) -> &str {
        &self.controller
    }

    /// Where and with what the CLI dials, for messages.
    fn dial(&self) -> connection::Dial<'_> {
        connection::Dial {
            controller: &self.controller,
            ca: self.ca.as_deref().unwrap_or(Path::new("(no --ca)")),
            cert: self.cert.as_deref().unwrap_or(Path::new("(no --cert)")),
        }
    }
}

fn need<'a>(p: &'a Option<PathBuf>, flag: &str) -> anyhow::Result<&'a Path> {
    p.as_deref().with_context(|| {
        format!(
            "--{flag} (or GAMEDAY_{}) is required to reach a controller",
            flag.to_uppercase()
        )
    })
}

pub(super) async fn connect(conn: &ConnArgs) -> anyhow::Result<OperatorClient<Channel>> {
    connection::check_url(&conn.controller)?;
    let files = (need(&conn.ca, "ca")?, need(&conn.cert, "cert")?);
    let material = connection::check_files(files.0, files.1, need(&conn.key, "key")?)?;
    let (ca, cert, key) = (material.ca_pem, material.cert_pem, material.key_pem);
    let uri: tonic::codegen::http::Uri = conn
        .controller
        .parse()
        .with_context(|| format!("invalid controller URL {:?}", conn.controller))?;
    let host = uri.host().context("controller URL has no host")?;
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .identity(Identity::from_pem(cert, key))
        .domain_name(host.trim_start_matches('[').trim_end_matches(']'));
    let channel = Endpoint::from_shared(conn.controller.clone())?
        .tls_config(tls)?
        .connect()
        .await
        .map_err(|e| connection::connect_failed(&e, &conn.dial()))?;
    Ok(OperatorClient::new(channel))
}

/// Turns a failed call into an error an operator can act on: the controller's own refusal as
/// it said it, a transport failure by its root cause (see [`connection`]).
pub(super) fn explain(status: tonic::Status, controller: &str) -> anyhow::Error {
    explain_with(
        status,
        &connection::Dial {
            controller,
            ca: Path::new("--ca"),
            cert: Path::new("--cert"),
        },
    )
}

fn explain_with(status: tonic::Status, dial: &connection::Dial<'_>) -> anyhow::Error {
    use tonic::Code;
    match status.code() {
        Code::PermissionDenied | Code::Unauthenticated => {
            anyhow::anyhow!("the controller refused this operator: {}", status.message())
        }
        Code::Unknown | Code::Cancelled | Code::Unavailable => {
            connection::call_failed(&status, dial)
        }
        _ => anyhow::anyhow!("{}", status.message()),
    }
}

/// The controller refused what was sent (bad scenario, over a size limit): the operator's to
/// fix, exit 2.
fn refused_input(s: &tonic::Status) -> bool {
    matches!(
        s.code(),
        tonic::Code::InvalidArgument | tonic::Code::OutOfRange | tonic::Code::ResourceExhausted
    )
}

/// `gameday run FILE` against a controller.
pub async fn run_file(file: &Path, out: ReportOutput, conn: &ConnArgs) -> anyhow::Result<i32> {
    // Validate locally first: a bad file is exit code 2 without touching the fleet.
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{}: {e}", file.display());
            return Ok(exit::INVALID);
        }
    };
    let name = file.display().to_string();
    if let Err(e) = gameday::limits::check_scenario_size(&name, &text) {
        eprintln!("{e}");
        return Ok(exit::INVALID);
    }
    let scenario_name = match gameday::scenario::parse(&name, &text) {
        Ok(s) => s.name,
        Err(e) => {
            eprintln!("{e}");
            return Ok(exit::INVALID);
        }
    };
    let mut client = connect(conn).await?;
    let request = v1::RunScenarioRequest {
        file_name: name,
        scenario_toml: text,
    };
    let mut stream = match client.run_scenario(request).await {
        Ok(s) => s.into_inner(),
        Err(s) if refused_input(&s) => {
            eprintln!("{}", s.message());
            return Ok(exit::INVALID);
        }
        Err(s) => return Err(explain_with(s, &conn.dial())),
    };
    let (progress, events) = tokio::sync::mpsc::unbounded_channel();
    // Where the run stood, to say what a lost controller means for it.
    let mut at = format!("scenario {scenario_name} (before its first run started)");
    let printer = tokio::spawn(super::progress::show(events));
    let mut outcome = None;
    loop {
        let event = match stream.message().await {
            Ok(Some(event)) => event,
            Ok(None) => break,
            // The controller's one-line refusal, when the stream carried no `invalid` event.
            Err(s) if refused_input(&s) => {
                outcome = Some(Err(s.message().to_string()));
                break;
            }
            // The connection broke: the controller died or was cut off mid-run.
            Err(s)
                if matches!(
                    s.code(),
                    tonic::Code::Unknown | tonic::Code::Cancelled | tonic::Code::Unavailable
                ) =>
            {
                drop(progress);
                let _ = printer.await;
                return Err(connection::lost_during_run(&s, &conn.dial(), &at));
            }
            Err(s) => return Err(explain_with(s, &conn.dial())),
        };
        match event.event {
            Some(Event::Progress(line)) => eprintln!("{line}"),
            Some(Event::Update(u)) => {
                if u.runs > 0 {
                    at = format!("run {}/{} of {scenario_name}", u.run, u.runs);
                }
                let _ = progress.send(super::progress::from_wire(u));
            }
            Some(Event::ReportJson(json)) => {
                outcome = Some(Ok(json));
                break;
            }
            Some(Event::Invalid(msg)) => {
                outcome = Some(Err(msg));
                break;
            }
            None => {}
        }
    }
    drop(progress);
    let _ = printer.await;
    match outcome {
        Some(Ok(json)) => {
            let report: ScenarioReport = serde_json::from_str(&json)
                .context("the controller sent a report this CLI cannot read")?;
            return Ok(print_report(&report, out));
        }
        Some(Err(msg)) => {
            eprintln!("{msg}");
            return Ok(exit::INVALID);
        }
        None => {}
    }
    anyhow::bail!("the controller closed the stream before sending the report")
}

/// `gameday agents`.
pub async fn agents(conn: &ConnArgs) -> anyhow::Result<i32> {
    let mut client = connect(conn).await?;
    let list = client
        .list_agents(v1::ListAgentsRequest {})
        .await
        .map_err(|s| explain_with(s, &conn.dial()))?
        .into_inner();
    print!("{}", format_agents(&list.agents));
    Ok(exit::OK)
}

/// The agent table `gameday agents` prints.
pub fn format_agents(agents: &[v1::AgentInfo]) -> String {
    let mut out = format!(
        "{:<20} {:<22} {:<10} {:>9} {:>6}  {:<30} {}\n",
        "NAME", "PEER", "VERSION", "HEARD", "FAULTS", "CAPABILITIES", "LABELS"
    );
    for a in agents {
        let mut labels: Vec<String> = a.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        labels.sort();
        out.push_str(&format!(
            "{:<20} {:<22} {:<10} {:>7}ms {:>6}  {:<30} {}\n",
            a.name,
            a.peer_address,
            a.version,
            a.last_heard_ms_ago,
            a.live_faults,
            a.capabilities.join(","),
            labels.join(",")
        ));
    }
    if agents.is_empty() {
        out.push_str("(no agents connected)\n");
    }
    let live: Vec<(&str, &v1::LiveFault)> = agents
        .iter()
        .flat_map(|a| a.faults.iter().map(move |f| (a.name.as_str(), f)))
        .collect();
    if !live.is_empty() {
        out.push_str(&format!(
            "\n{:<20} {:<18} {:<10} {:<28} {}\n",
            "LIVE FAULT ON", "KIND", "STATE", "RUN", "FAULT"
        ));
        for (agent, f) in live {
            out.push_str(&format!(
                "{:<20} {:<18} {:<10} {:<28} {}\n",
                agent, f.kind, f.state, f.run_id, f.fault_id
            ));
        }
    }
    out
}

/// `gameday abort RUN | --all`.
pub async fn abort(run: Option<String>, all: bool, conn: &ConnArgs) -> anyhow::Result<i32> {
    if run.is_none() && !all {
        eprintln!("error: name a run id or pass --all");
        return Ok(exit::INVALID);
    }
    let mut client = connect(conn).await?;
    let r = client
        .abort(v1::AbortRequest {
            run_id: run.unwrap_or_default(),
            all,
        })
        .await;
    match r {
        Ok(r) => {
            let r = r.into_inner();
            println!(
                "aborted {} run(s), reverted {} fault(s)",
                r.aborted_runs, r.reverted_faults
            );
            Ok(exit::OK)
        }
        Err(s) if s.code() == tonic::Code::NotFound => {
            eprintln!("error: {}", s.message());
            Ok(exit::INVALID)
        }
        Err(s) => Err(explain_with(s, &conn.dial())),
    }
}
