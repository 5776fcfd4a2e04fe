//! Command-line interface: argument parsing and dispatch to the subcommands.

mod annotate;
mod certs;
mod connection;
mod demo;
mod local;
mod output;
mod progress;
mod remote;
mod report;
mod runs;
mod schedules;
mod serve;
mod session;
mod table;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use gameday::report::exit;

/// Chaos game days with recovery time measured truthfully and graded against the RTO.
#[derive(Parser, Debug)]
#[command(name = "gameday", version, about)]
pub struct Cli {
    /// Log as JSON lines instead of human text.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the controller daemon.
    Serve {
        /// Config file (TOML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run a scenario and print its graded report.
    Run(RunArgs),
    /// List the connected agents and the faults they hold.
    Agents {
        /// Output format.
        #[arg(long, short, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
        #[command(flatten)]
        conn: remote::ConnArgs,
    },
    /// Abort a run (or all runs) and revert every live fault now.
    Abort {
        /// The run id to abort, or the invocation id `gameday run` printed first (every
        /// repeat of it).
        run: Option<String>,
        /// Abort every active run.
        #[arg(long, conflicts_with = "run")]
        all: bool,
        /// Output format.
        #[arg(long, short, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
        #[command(flatten)]
        conn: remote::ConnArgs,
    },
    /// Add a timestamped note to a live or finished run (an action item, the start of
    /// remediation).
    Annotate(annotate::AnnotateArgs),
    /// Revert now the faults of a run that holds them for people (`revert = "manual"`).
    Revert(annotate::RevertArgs),
    /// Run a game-day session: several scenarios with pauses for discussion, one report.
    Session(session::SessionArgs),
    /// End a game-day session's pause for discussion.
    Continue(session::ContinueArgs),
    /// List past runs from the controller's history, or show one (`gameday runs show RUN`).
    Runs(runs::RunsArgs),
    /// Render a run, or a scenario's recent game days with their trend (md, html, json, junit).
    Report(report::ReportArgs),
    /// List the controller's schedules with their next and last runs.
    Schedules(schedules::SchedulesArgs),
    /// Check scenario files without running them.
    Validate {
        /// Scenario files, or directories: every `*.toml` file in them (not recursive).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Issue fleet certificates.
    #[command(subcommand)]
    Certs(certs::CertsCommand),
    /// Zero-config demo: a local controller, agent and demo service; kill it and grade recovery.
    Demo(demo::DemoArgs),
    /// The demo HTTP service (used by `gameday demo` and tests).
    #[command(hide = true)]
    DemoService {
        #[arg(long)]
        listen: std::net::SocketAddr,
        #[arg(long)]
        events: Option<PathBuf>,
        /// Write a record into this directory (new file, fsync) before answering each
        /// request; answer 500 when that fails (a full disk, say).
        #[arg(long)]
        write_to: Option<PathBuf>,
    },
    /// Restart a command a fixed delay after it exits (used by `gameday demo` and tests).
    #[command(hide = true)]
    DemoSupervise {
        #[arg(long, value_parser = parse_duration)]
        restart_delay: std::time::Duration,
        #[arg(long)]
        pid_file: Option<PathBuf>,
        #[arg(long)]
        events: Option<PathBuf>,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

/// `gameday run`'s arguments.
#[derive(Args, Debug)]
struct RunArgs {
    /// The scenario file.
    file: PathBuf,
    /// Run with an embedded controller and a local agent (named `local`) on this machine.
    #[arg(long)]
    local: bool,
    /// Report format on stdout.
    #[arg(long, short, value_enum, default_value_t = gameday::render::Format::Text)]
    output: gameday::render::Format,
    /// Also write the report as JUnit XML to this file (one test case per run), for CI.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Also write the report as one self-contained HTML file with timeline plots.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// With --local: the local agent stands in for the scenario's target agent NAME (it
    /// registers as NAME and carries the labels the scenario selects by), so a fleet
    /// scenario runs unchanged on this machine, e.g. in CI.
    #[arg(long, value_name = "NAME", requires = "local")]
    target: Option<String>,
    /// With --local: the local agent's `[policy]` (a TOML file with a `[policy]` table), e.g.
    /// to allow disk_fill on a path or dns_poison with a hosts file. Default: every kind, any
    /// process, no disk or DNS targets.
    #[arg(long, value_name = "FILE", requires = "local")]
    agent_policy: Option<PathBuf>,
    #[command(flatten)]
    conn: remote::ConnArgs,
}

impl RunArgs {
    /// Where the report goes.
    fn report_output(&self) -> output::ReportOutput {
        output::ReportOutput {
            format: self.output,
            junit: self.junit.clone(),
            html: self.html.clone(),
        }
    }
}

/// How reports are printed.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum OutputFormat {
    /// For people.
    Text,
    /// For machines: the full report as one JSON document.
    Json,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    s.parse::<gameday_proto::Duration>()
        .map(|d| d.get())
        .map_err(|e| e.to_string())
}

/// Parses arguments, runs the command, and returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            if let Some(hint) = output_flag_hint(&e) {
                eprintln!("{hint}");
            }
            return if e.use_stderr() {
                exit::INVALID
            } else {
                exit::OK
            };
        }
    };
    init_logging(cli.log_json);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return exit::INFRA;
        }
    };
    exit_code(runtime.block_on(dispatch(cli.command)))
}

/// `-o` was a file in `gameday report` before it was the format everywhere: when it is given
/// what looks like a path, say where the path goes now.
fn output_flag_hint(e: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() != ErrorKind::InvalidValue {
        return None;
    }
    let arg = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(a)) => a,
        _ => return None,
    };
    let value = match e.get(ContextKind::InvalidValue) {
        Some(ContextValue::String(v)) => v,
        _ => return None,
    };
    let pathlike = value.contains('.') || value.contains('/');
    (arg.starts_with("--output") && pathlike).then(|| {
        format!(
            "hint: -o/--output is the output format in every subcommand; write a report to a \
             file with `--out-file {value}` (gameday report) or `--junit`/`--html` (gameday run)"
        )
    })
}

/// The exit code of a command's outcome; errors are printed first.
fn exit_code(outcome: anyhow::Result<i32>) -> i32 {
    match outcome {
        Ok(code) => code,
        // `gameday report RUN | head`: the reader has what it wanted; nothing to say.
        Err(e) if e.is::<output::StdoutClosed>() => output::PIPE_CLOSED,
        Err(e) if e.is::<UsageError>() => {
            eprintln!("error: {e:#}");
            exit::INVALID
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            exit::INFRA
        }
    }
}

/// A command was given flags or files it cannot use: the operator's to fix (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

async fn dispatch(command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Serve { config } => serve::run(&config).await,
        Command::Run(args) => {
            if args.local {
                local::run_file(
                    &args.file,
                    args.target.as_deref(),
                    args.agent_policy.as_deref(),
                    args.report_output(),
                )
                .await
            } else {
                remote::run_file(&args.file, args.report_output(), &args.conn).await
            }
        }
        Command::Agents { output, conn } => remote::agents(output, &conn).await,
        Command::Abort {
            run,
            all,
            output,
            conn,
        } => remote::abort(run, all, output, &conn).await,
        Command::Annotate(args) => annotate::run(args).await,
        Command::Revert(args) => annotate::revert(args).await,
        Command::Session(args) => session::run(args).await,
        Command::Continue(args) => session::continue_session(args).await,
        Command::Runs(args) => runs::run(args).await,
        Command::Report(args) => report::run(args).await,
        Command::Schedules(args) => schedules::run(args).await,
        Command::Validate { files } => validate(&files),
        Command::Certs(c) => certs::run(c),
        Command::Demo(args) => demo::run(args).await,
        Command::DemoService {
            listen,
            events,
            write_to,
        } => {
            gameday::demo_service::serve_with(listen, events, write_to).await?;
            Ok(exit::OK)
        }
        Command::DemoSupervise {
            restart_delay,
            pid_file,
            events,
            command,
        } => {
            gameday::demo_service::supervise(&command, restart_delay, pid_file, events).await?;
            Ok(exit::OK)
        }
    }
}

/// `gameday validate FILE|DIR...`: every file named, and every `*.toml` file in every
/// directory named, in name order.
fn validate(paths: &[PathBuf]) -> anyhow::Result<i32> {
    let mut code = exit::OK;
    let mut files = Vec::new();
    for path in paths {
        if !path.is_dir() {
            files.push(path.clone());
            continue;
        }
        let found = scenario_files(path)
            .map_err(|e| UsageError(format!("reading the directory {}: {e}", path.display())))?;
        if found.is_empty() {
            eprintln!("{}: no *.toml files in this directory", path.display());
            code = exit::INVALID;
        }
        files.extend(found);
    }
    let mut invalid = 0;
    for file in &files {
        match gameday::scenario::load(file) {
            Ok(s) => {
                output::print(&format!(
                    "{}: ok — scenario {:?}, {} fault(s), {} probe(s), RTO {}\n",
                    file.display(),
                    s.name,
                    s.faults.len(),
                    s.probes.len(),
                    s.rto
                ))?;
                for w in s.warnings() {
                    eprintln!("{}: warning: {w}", file.display());
                }
            }
            Err(e) => {
                eprintln!("{e}");
                invalid += 1;
                code = exit::INVALID;
            }
        }
    }
    if files.len() > 1 {
        eprintln!(
            "{} of {} scenario files valid",
            files.len() - invalid,
            files.len()
        );
    }
    Ok(code)
}

/// The `*.toml` files directly in `dir`, sorted by name.
fn scenario_files(dir: &std::path::Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "toml") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GAMEDAY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, never into journald or a CI log.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
