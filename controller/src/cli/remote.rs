//! Subcommands that talk to a running controller as an operator: run, agents, abort.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use gameday::report::{exit, ScenarioReport};
use gameday_proto::v1::{self, operator_client::OperatorClient, run_event::Event};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use super::connection;
use super::output::{print, print_report, ReportOutput};
use super::table::{Align, Table};
use super::{OutputFormat, UsageError};

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

/// A missing flag is a usage error (exit 2).
fn need<'a>(p: &'a Option<PathBuf>, flag: &str) -> Result<&'a Path, UsageError> {
    p.as_deref().ok_or_else(|| {
        UsageError(format!(
            "--{flag} (or GAMEDAY_{}) is required to reach a controller",
            flag.to_uppercase()
        ))
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
    match run_remote(file, conn).await? {
        Ok(report) => print_report(&report, out),
        Err(code) => Ok(code),
    }
}

/// Runs the scenario in `file` on the controller, showing its progress on stderr: its report,
/// or the exit code of a file or scenario refused (the reason already printed).
pub async fn run_remote(
    file: &Path,
    conn: &ConnArgs,
) -> anyhow::Result<Result<ScenarioReport, i32>> {
    // Validate locally first: a bad file is exit code 2 without touching the fleet.
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{}: {e}", file.display());
            return Ok(Err(exit::INVALID));
        }
    };
    let name = file.display().to_string();
    if let Err(e) = gameday::limits::check_scenario_size(&name, &text) {
        eprintln!("{e}");
        return Ok(Err(exit::INVALID));
    }
    let scenario_name = match gameday::scenario::parse(&name, &text) {
        Ok(s) => s.name,
        Err(e) => {
            eprintln!("{e}");
            return Ok(Err(exit::INVALID));
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
            return Ok(Err(exit::INVALID));
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
            Some(Event::Progress(line)) => {
                use std::io::Write as _;
                // A closed stderr must not stop a run that holds faults.
                let _ = writeln!(std::io::stderr(), "{line}");
            }
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
            return Ok(Ok(report));
        }
        Some(Err(msg)) => {
            eprintln!("{msg}");
            return Ok(Err(exit::INVALID));
        }
        None => {}
    }
    anyhow::bail!("the controller closed the stream before sending the report")
}

/// `gameday agents [-o json]`.
pub async fn agents(output: OutputFormat, conn: &ConnArgs) -> anyhow::Result<i32> {
    let mut client = connect(conn).await?;
    let list = match client.list_agents(v1::ListAgentsRequest {}).await {
        Ok(r) => r.into_inner(),
        Err(s) => return Err(explain_with(s, &conn.dial())),
    };
    match output {
        OutputFormat::Text => print(&format_agents(&list.agents))?,
        OutputFormat::Json => print(&format!(
            "{}\n",
            serde_json::to_string_pretty(&agents_json(&list.agents))?
        ))?,
    }
    Ok(exit::OK)
}

/// `gameday agents -o json`: one object per agent, its live faults inside.
fn agents_json(agents: &[v1::AgentInfo]) -> serde_json::Value {
    let agents: Vec<serde_json::Value> = agents
        .iter()
        .map(|a| {
            let faults: Vec<serde_json::Value> = a
                .faults
                .iter()
                .map(|f| {
                    serde_json::json!({
                        "fault_id": f.fault_id,
                        "run_id": f.run_id,
                        "kind": f.kind,
                        "state": f.state,
                    })
                })
                .collect();
            serde_json::json!({
                "name": a.name,
                "labels": a.labels.iter().collect::<std::collections::BTreeMap<_, _>>(),
                "version": a.version,
                "capabilities": a.capabilities,
                "peer_address": a.peer_address,
                "connected_for_ms": a.connected_for_ms,
                "last_heard_ms_ago": a.last_heard_ms_ago,
                "live_faults": a.live_faults,
                "faults": faults,
            })
        })
        .collect();
    serde_json::Value::Array(agents)
}

/// The agent table `gameday agents` prints, then the live faults.
pub fn format_agents(agents: &[v1::AgentInfo]) -> String {
    if agents.is_empty() {
        return "(no agents connected)\n".into();
    }
    let mut table = Table::new(&[
        ("NAME", Align::Left),
        ("PEER", Align::Left),
        ("VERSION", Align::Left),
        ("HEARD", Align::Right),
        ("FAULTS", Align::Right),
        ("CAPABILITIES", Align::Left),
        ("LABELS", Align::Left),
    ]);
    for a in agents {
        let mut labels: Vec<String> = a.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        labels.sort();
        table.row(vec![
            a.name.clone(),
            a.peer_address.clone(),
            a.version.clone(),
            format!("{}ms", a.last_heard_ms_ago),
            a.live_faults.to_string(),
            a.capabilities.join(","),
            labels.join(","),
        ]);
    }
    let mut out = table.render();
    let mut live = Table::new(&[
        ("LIVE FAULT ON", Align::Left),
        ("KIND", Align::Left),
        ("STATE", Align::Left),
        ("RUN", Align::Left),
        ("FAULT", Align::Left),
    ]);
    let mut any = false;
    for a in agents {
        for f in &a.faults {
            any = true;
            live.row(vec![
                a.name.clone(),
                f.kind.clone(),
                f.state.clone(),
                f.run_id.clone(),
                f.fault_id.clone(),
            ]);
        }
    }
    if any {
        out.push('\n');
        out.push_str(&live.render());
    }
    out
}

/// Unknown runs and bad requests are the operator's to fix: the controller's message and exit
/// 2; the rest is explained.
pub fn refused(status: tonic::Status, conn: &ConnArgs) -> anyhow::Result<i32> {
    match status.code() {
        tonic::Code::NotFound | tonic::Code::InvalidArgument => {
            eprintln!("error: {}", status.message());
            Ok(exit::INVALID)
        }
        _ => Err(explain(status, conn.controller())),
    }
}

/// `gameday abort RUN | --all`.
pub async fn abort(
    run: Option<String>,
    all: bool,
    output: OutputFormat,
    conn: &ConnArgs,
) -> anyhow::Result<i32> {
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
            match output {
                OutputFormat::Text => print(&format_abort(&r))?,
                OutputFormat::Json => print(&format!(
                    "{}\n",
                    serde_json::to_string_pretty(&abort_json(&r))?
                ))?,
            }
            // A fault the abort could not revert is still live on its host.
            Ok(if r.faults.iter().any(|f| !f.error.is_empty()) {
                exit::INFRA
            } else {
                exit::OK
            })
        }
        Err(s) if s.code() == tonic::Code::NotFound => {
            eprintln!("error: {}", s.message());
            Ok(exit::INVALID)
        }
        Err(s) => Err(explain_with(s, &conn.dial())),
    }
}

/// What `gameday abort` did, for people: the runs it stopped, then every fault it reverted.
pub fn format_abort(r: &v1::AbortResponse) -> String {
    let by = if r.aborted_by.is_empty() {
        String::new()
    } else {
        format!(" (recorded as aborted by {})", r.aborted_by)
    };
    let mut out = match r.runs.as_slice() {
        [] if r.invocations.is_empty() => "no run was going on".to_string(),
        [] => String::new(),
        runs => format!("aborted {} run(s): {}{by}", runs.len(), runs.join(", ")),
    };
    if !r.invocations.is_empty() {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&format!(
            "stopped before its next repeat: {}{by}",
            r.invocations.join(", ")
        ));
    }
    out.push('\n');
    if r.faults.is_empty() {
        out.push_str("no fault was live, nothing to revert\n");
        return out;
    }
    for f in &r.faults {
        let what = if f.error.is_empty() {
            "reverted".to_string()
        } else {
            format!("NOT reverted ({})", f.error)
        };
        out.push_str(&format!(
            "{what}: {} on {} (run {}, fault {})\n",
            f.kind, f.agent, f.run_id, f.fault_id
        ));
    }
    out
}

fn abort_json(r: &v1::AbortResponse) -> serde_json::Value {
    serde_json::json!({
        "aborted_by": r.aborted_by,
        "runs": r.runs,
        "invocations": r.invocations,
        "faults": r.faults.iter().map(|f| serde_json::json!({
            "fault_id": f.fault_id,
            "run_id": f.run_id,
            "agent": f.agent,
            "kind": f.kind,
            "reverted": f.error.is_empty(),
            "error": (!f.error.is_empty()).then_some(&f.error),
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(name: &str, peer: &str, labels: &[(&str, &str)]) -> v1::AgentInfo {
        v1::AgentInfo {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            version: "0.1.0".into(),
            capabilities: vec!["process_kill".into(), "process_pause".into()],
            peer_address: peer.into(),
            connected_for_ms: 1,
            last_heard_ms_ago: 12,
            live_faults: 0,
            faults: vec![],
        }
    }

    #[test]
    fn agent_columns_align_whatever_the_names() {
        let long = "an-agent-name-far-longer-than-twenty-characters";
        let out = format_agents(&[
            agent(long, "[fd00:1234:5678:9abc::1]:54321", &[("role", "web")]),
            agent("b", "10.0.0.2:4000", &[]),
        ]);
        let lines: Vec<&str> = out.lines().collect();
        let col = |l: &str, what: &str| l.find(what).unwrap();
        assert_eq!(col(lines[0], "PEER"), col(lines[1], "[fd00"), "{out}");
        assert_eq!(col(lines[0], "PEER"), col(lines[2], "10.0.0.2"), "{out}");
        assert_eq!(col(lines[1], "0.1.0"), col(lines[2], "0.1.0"), "{out}");
        assert_eq!(
            col(lines[1], "process_kill"),
            col(lines[2], "process_kill"),
            "{out}"
        );
        assert!(lines[1].ends_with("role=web"), "{out}");
    }

    #[test]
    fn the_abort_summary_names_what_was_reverted() {
        let r = v1::AbortResponse {
            aborted_runs: 1,
            reverted_faults: 1,
            runs: vec!["run-18f0a00-2".into()],
            faults: vec![
                v1::AbortedFault {
                    fault_id: "run-18f0a00-2-f0-web-1".into(),
                    run_id: "run-18f0a00-2".into(),
                    agent: "web-1".into(),
                    kind: "network_partition".into(),
                    error: String::new(),
                },
                v1::AbortedFault {
                    fault_id: "run-18f0a00-2-f0-web-2".into(),
                    run_id: "run-18f0a00-2".into(),
                    agent: "web-2".into(),
                    kind: "network_partition".into(),
                    error: "agent web-2 is not connected".into(),
                },
            ],
            invocations: vec![],
            aborted_by: "operator alice".into(),
        };
        let out = format_abort(&r);
        assert!(
            out.starts_with(
                "aborted 1 run(s): run-18f0a00-2 (recorded as aborted by operator alice)\n"
            ),
            "{out}"
        );
        assert!(
            out.contains("reverted: network_partition on web-1 (run run-18f0a00-2"),
            "{out}"
        );
        assert!(
            out.contains("NOT reverted (agent web-2 is not connected): network_partition on web-2"),
            "{out}"
        );
        let none = format_abort(&v1::AbortResponse::default());
        assert_eq!(
            none,
            "no run was going on\nno fault was live, nothing to revert\n"
        );
    }
}
