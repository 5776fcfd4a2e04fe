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
use tokio::net::{TcpListener, TcpSocket};

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
    serve_with(listen, events, None).await
}

/// [`serve`], and when `write_to` is given, every request first writes a small record durably
/// into that directory ([`spool_record`]) and is answered 500 when it cannot: a service whose
/// health depends on its disk, for disk-fill game days.
pub async fn serve_with(
    listen: SocketAddr,
    events: Option<PathBuf>,
    write_to: Option<PathBuf>,
) -> std::io::Result<()> {
    let listener = bind(listen)?;
    record_event(events.as_deref(), "listening")?;
    let write_to = std::sync::Arc::new(write_to);
    let seq = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    loop {
        let (stream, _) = listener.accept().await?;
        let (write_to, seq) = (write_to.clone(), seq.clone());
        tokio::spawn(async move {
            let service = service_fn(move |_req: Request<hyper::body::Incoming>| {
                let (write_to, seq) = (write_to.clone(), seq.clone());
                async move {
                    let Some(dir) = write_to.as_ref().clone() else {
                        return Ok::<_, std::convert::Infallible>(Response::new(Full::new(
                            Bytes::from_static(b"ok\n"),
                        )));
                    };
                    let n = seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let written = tokio::task::spawn_blocking(move || spool_record(&dir, n)).await;
                    Ok(match written {
                        Ok(Ok(())) => Response::new(Full::new(Bytes::from_static(b"ok\n"))),
                        Ok(Err(e)) => error_500(format!("cannot write: {e}\n")),
                        Err(e) => error_500(format!("writer failed: {e}\n")),
                    })
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// How many connections the kernel queues for the service while it does not accept them (it is
/// paused, say): a paused service must not start refusing new clients itself, or a game day
/// that pauses it for a second at a 10 ms probe interval (about 100 queued checks, plus those
/// that gave up) would measure the overflow of the default 128, not the pause.
const BACKLOG: u32 = 1024;

fn bind(listen: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if listen.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(listen)?;
    socket.listen(BACKLOG)
}

/// Writes request `n`'s record durably into `dir`: a new file, written and fsynced, then
/// removed (the lab has no consumer for the spool, and a service that kept them would fill its
/// disk by itself). A new file every time, because it needs a new block: an append to one log
/// file lands in the partly-filled last block, which a full filesystem still has room for, so
/// the service would keep answering 200 for a while after its disk filled.
pub fn spool_record(dir: &Path, n: u64) -> std::io::Result<()> {
    let path = dir.join(format!("request-{}-{n}.rec", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&path)?;
        writeln!(f, "request {n} at {}", monotonic_ns())?;
        f.sync_all()
    })();
    let _ = std::fs::remove_file(&path);
    result
}

fn error_500(body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
    response
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
        // The restart loop's whole job: start the supervised command again.
        #[allow(clippy::disallowed_methods)]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spooled_record_is_written_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        spool_record(dir.path(), 7).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_record_that_cannot_be_written_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = spool_record(&dir.path().join("missing"), 1).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    }
}
