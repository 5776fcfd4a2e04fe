//! The demo service and its restart loop: a tiny HTTP server that answers "ok", and a
//! supervisor that restarts it a known delay after it dies. They give `gameday demo` (and the
//! measurement tests) a service whose true outage is known independently of the probes.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::timeline::monotonic_ns;

/// Appends `event <CLOCK_MONOTONIC ns>` to the events file, if there is one. Tests line these
/// up with the run's `epoch_monotonic_ns` to know the true outage.
pub fn record_event(events: Option<&Path>, event: &str) -> std::io::Result<()> {
    let Some(path) = events else { return Ok(()) };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    writeln!(f, "{event} {}", monotonic_ns())?;
    f.sync_data()
}

/// Serves `GET /` → 200 "ok" on `listen` forever.
pub async fn serve(listen: SocketAddr, events: Option<PathBuf>) -> std::io::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    record_event(events.as_deref(), "listening")?;
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let service = service_fn(|_req: Request<hyper::body::Incoming>| async {
                Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from_static(
                    b"ok\n",
                ))))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Runs `command` forever: whenever it exits, waits `delay` and starts it again. Writes the
/// child's pid to `pid_file` each time, and `exited`/`started` events to `events`.
pub async fn supervise(
    command: &[String],
    delay: Duration,
    pid_file: Option<PathBuf>,
    events: Option<PathBuf>,
) -> std::io::Result<()> {
    let (program, args) = command
        .split_first()
        .ok_or_else(|| std::io::Error::other("no command to supervise"))?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        let mut child = tokio::process::Command::new(program)
            .args(args)
            .kill_on_drop(true)
            .spawn()?;
        if let (Some(path), Some(pid)) = (&pid_file, child.id()) {
            let tmp = path.with_extension("pid.tmp");
            std::fs::write(&tmp, format!("{pid}\n"))?;
            std::fs::rename(&tmp, path)?;
        }
        // On SIGTERM the loop takes its service down with it, so nothing outlives the demo.
        let status = tokio::select! {
            status = child.wait() => status?,
            _ = terminate.recv() => {
                let _ = child.kill().await;
                return Ok(());
            }
        };
        record_event(events.as_deref(), "exited")?;
        tracing::info!(%status, ?delay, "demo service exited; restarting after the delay");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = terminate.recv() => return Ok(()),
        }
    }
}
