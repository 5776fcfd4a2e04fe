//! `gameday-agent`: applies and reverts faults on this host for a gameday controller.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use gameday_agent::control::{Agent, ControlError};
use gameday_agent::faults::Host;
use gameday_agent::instance::InstanceError;
use gameday_agent::policy::Policy;

/// The gameday agent: dials the controller, applies faults its policy allows, and never leaves
/// one behind.
#[derive(Parser, Debug)]
#[command(name = "gameday-agent", version, about)]
struct Args {
    /// Config file (TOML).
    #[arg(long, short)]
    config: PathBuf,
    /// Log as JSON lines.
    #[arg(long)]
    log_json: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("GAMEDAY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, never into journald or a log file.
        .with_ansi(std::io::stderr().is_terminal());
    if args.log_json {
        logs.json().init();
    } else {
        logs.init();
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Config errors exit 2 before anything starts.
    let config = match gameday_agent::config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    // So are TLS files that cannot work: checked now, not discovered in a connect loop.
    let tls = match gameday_agent::config::tls::load(&config) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{}: {e}", args.config.display());
            return ExitCode::from(2);
        }
    };
    let policy = match Policy::from_config(&config.policy) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{}: policy: {e}", args.config.display());
            return ExitCode::from(2);
        }
    };
    // One thread for the async side: it is one stream and two timers, and everything slow
    // (applying, reverting, the journal) runs on the blocking pool. Worker threads only woke
    // each other at every heartbeat. (A refused certificate is read at once on this runtime
    // too: the controller lingers after its alert instead of resetting the connection.)
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::from(4);
        }
    };
    let host = Arc::new(Host::from_config(&config));
    let agent = match Agent::new(Arc::new(config), Arc::new(policy), host, tls) {
        Ok(a) => a,
        // A second agent on one state directory is a configuration mistake.
        Err(e @ ControlError::Instance(InstanceError::Locked { .. })) => {
            eprintln!("{}: {e}", args.config.display());
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(4);
        }
    };
    match runtime.block_on(agent.run(shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        // A certificate one side refuses is a config problem, like the ones above.
        Err(e @ ControlError::Permanent(_)) => {
            eprintln!("{}: {e}", args.config.display());
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(4)
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
