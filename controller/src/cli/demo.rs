//! `gameday demo`: zero configuration, no root. Starts the demo service under its restart loop,
//! a local controller and agent, runs `scenarios/demo.toml`, and prints the graded report.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use gameday::report::exit;
use gameday::scenario::ScenarioFile;
use tokio::process::Command;

use super::local::{LocalAgent, LocalFleet};
use super::output::print_report;
use super::OutputFormat;

/// The demo scenario, built in so the demo runs from anywhere.
const DEMO_SCENARIO: &str = include_str!("../../../scenarios/demo.toml");
const DEMO_LISTEN: &str = "127.0.0.1:18080";

/// `gameday demo`'s arguments.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// How long the restart loop waits before bringing the service back.
    #[arg(long, default_value = "500ms", value_parser = super::parse_duration)]
    restart_delay: Duration,
    /// Report format.
    #[arg(long, short, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
}

/// Runs the demo.
pub async fn run(args: DemoArgs) -> anyhow::Result<i32> {
    let input = match ScenarioFile::parse("scenarios/demo.toml", DEMO_SCENARIO.to_string()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return Ok(exit::INVALID);
        }
    };
    std::net::TcpListener::bind(DEMO_LISTEN)
        .with_context(|| format!("the demo service needs {DEMO_LISTEN}, which is in use"))?;
    let me = std::env::current_exe().context("locating the gameday executable")?;
    eprintln!(
        "demo: starting the demo service on http://{DEMO_LISTEN}/ (restarted {:?} after it dies)",
        args.restart_delay
    );
    // The demo starts its own service: this binary, supervising itself.
    #[allow(clippy::disallowed_methods)]
    let mut supervisor = Command::new(&me)
        .arg("demo-supervise")
        .arg("--restart-delay")
        .arg(format!("{}ms", args.restart_delay.as_millis()))
        .arg("--")
        .arg(&me)
        .arg("demo-service")
        .arg("--listen")
        .arg(DEMO_LISTEN)
        .kill_on_drop(true)
        .spawn()
        .context("starting the demo service")?;
    let outcome = async {
        wait_listening(DEMO_LISTEN).await?;
        eprintln!("demo: starting a local controller and agent");
        let fleet = LocalFleet::start(&LocalAgent::default(), None).await?;
        let report = fleet.run("demo", &input).await;
        fleet.shutdown().await;
        anyhow::Ok(report)
    }
    .await;
    stop_child(&mut supervisor).await;
    let code = print_report(&outcome?, args.output)?;
    eprint!("{NEXT_STEP}");
    Ok(code)
}

/// What the demo suggests once it is done: the same on the operator's own service.
const NEXT_STEP: &str = "\
next: try it on your own service. Copy scenarios/demo.toml (or one of scenarios/*.toml), point
its probe at your service and its fault at your process, then:
  gameday validate my-scenario.toml
  gameday run --local my-scenario.toml
For a fleet: `gameday certs init` and `gameday serve` (see README.md, \"Running a fleet\").
";

async fn wait_listening(addr: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the demo service did not start listening on {addr}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// SIGTERM (so the restart loop takes its service down with it), then SIGKILL if it lingers.
pub async fn stop_child(child: &mut tokio::process::Child) {
    if let Some(pid) = child.id() {
        #[allow(clippy::disallowed_methods)] // our own child, by its pid
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        if tokio::time::timeout(Duration::from_secs(5), child.wait())
            .await
            .is_ok()
        {
            return;
        }
    }
    let _ = child.kill().await;
}
