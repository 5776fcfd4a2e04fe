//! `gameday session run FILE`: a game day's scenarios one after another on the controller,
//! with pauses for discussion that `gameday continue SESSION` ends, and one combined report.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use gameday::report::{exit, RunReport};
use gameday::session::{self, Pause, SessionReport};
use gameday_proto::v1;

use super::output::{print, write_replacing};
use super::remote::{self, ConnArgs};
use super::OutputFormat;

/// `gameday session`'s arguments.
#[derive(Args, Debug)]
pub struct SessionArgs {
    #[command(subcommand)]
    command: SessionCommand,
}

#[derive(Subcommand, Debug)]
enum SessionCommand {
    /// Run every scenario of a session file, pausing where it says, and print the combined
    /// report.
    Run(RunArgs),
}

#[derive(Args, Debug)]
struct RunArgs {
    /// The session file: `name`, then `[[scenarios]]` with `file` and `pause_after`.
    file: PathBuf,
    /// Also write the combined report as one HTML page here.
    #[arg(long, value_name = "PATH")]
    html: Option<PathBuf>,
    /// Output format of the combined report.
    #[arg(long, short, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
    #[command(flatten)]
    conn: ConnArgs,
}

/// `gameday continue`'s arguments.
#[derive(Args, Debug)]
pub struct ContinueArgs {
    /// The session (its first line says it: `session session-...`).
    session: String,
    #[command(flatten)]
    conn: ConnArgs,
}

/// Runs the `session` subcommand.
pub async fn run(args: SessionArgs) -> anyhow::Result<i32> {
    match args.command {
        SessionCommand::Run(r) => run_session(r).await,
    }
}

async fn run_session(args: RunArgs) -> anyhow::Result<i32> {
    let session = match session::load(&args.file) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return Ok(exit::INVALID);
        }
    };
    let id = format!(
        "session-{:x}{:04x}",
        gameday::timeline::unix_ms_now(),
        std::process::id() & 0xffff
    );
    let n = session.entries.len();
    eprintln!("session {id}: {}, {n} scenario(s)", session.name);
    let mut scenarios = Vec::new();
    let mut code = exit::OK;
    for (i, entry) in session.entries.iter().enumerate() {
        eprintln!(
            "session {id}: scenario {}/{n}: {}",
            i + 1,
            entry.file.display()
        );
        match remote::run_remote(&entry.file, &args.conn).await? {
            Ok(report) => {
                code = code.max(report.summary.exit_code);
                scenarios.push(report);
            }
            Err(refused) => return Ok(refused),
        }
        if let (Some(pause), true) = (entry.pause_after, i + 1 < n) {
            pause_for(&id, pause, &args.conn).await?;
        }
    }
    // The notes added during the pauses (action items, above all) are in the history.
    for report in &mut scenarios {
        for run in &mut report.runs {
            if let Some(fresh) = fetch_run(&run.run_id, &args.conn).await {
                run.annotations = fresh.annotations;
                run.remediation = fresh.remediation;
            }
        }
    }
    let report = SessionReport {
        session: id,
        name: session.name,
        scenarios,
    };
    if let Some(path) = &args.html {
        write_replacing(path, &session::render_html(&report))
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    }
    match args.output {
        OutputFormat::Text => print(&session::render_text(&report))?,
        OutputFormat::Json => print(&format!("{}\n", serde_json::to_string_pretty(&report)?))?,
    }
    Ok(code)
}

/// Waits out a pause: its length, or until `gameday continue`.
async fn pause_for(id: &str, pause: Pause, conn: &ConnArgs) -> anyhow::Result<()> {
    let mut client = remote::connect(conn).await?;
    let request = v1::ContinueRequest {
        session: id.to_string(),
    };
    let wait = client.await_continue(request);
    let answer = match pause {
        Pause::For(d) => {
            eprintln!(
                "session {id}: pause of {d} for discussion; `gameday continue {id}` ends it early"
            );
            tokio::select! {
                _ = tokio::time::sleep(d.get()) => return Ok(()),
                answer = wait => answer,
            }
        }
        Pause::Manual => {
            eprintln!("session {id}: paused for discussion until `gameday continue {id}`");
            wait.await
        }
    };
    match answer {
        Ok(r) => {
            eprintln!("session {id}: continued by {}", r.into_inner().by);
            Ok(())
        }
        Err(s) => Err(remote::explain(s, conn.controller())),
    }
}

/// A run as the history has it now, if it can be read.
async fn fetch_run(run_id: &str, conn: &ConnArgs) -> Option<RunReport> {
    let mut client = remote::connect(conn).await.ok()?;
    let response = client
        .get_run(v1::GetRunRequest {
            run_id: run_id.to_string(),
        })
        .await
        .ok()?
        .into_inner();
    serde_json::from_str(&response.run_json).ok()
}

/// Ends a session's pause.
pub async fn continue_session(args: ContinueArgs) -> anyhow::Result<i32> {
    let mut client = remote::connect(&args.conn).await?;
    match client
        .r#continue(v1::ContinueRequest {
            session: args.session.clone(),
        })
        .await
    {
        Ok(r) => {
            print(&format!(
                "session {} continues (by {})\n",
                args.session,
                r.into_inner().by
            ))?;
            Ok(exit::OK)
        }
        Err(s) => remote::refused(s, &args.conn),
    }
}
