//! Synthetic probes: each runs on the controller at its interval and records timestamped samples.

mod dns;
mod http;
mod tcp;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::scenario::{ProbeCheck, ProbeSpec};
use crate::timeline::{ProbeTimeline, Sample};

pub use dns::DnsCheck;
pub use http::HttpCheck;
pub use tcp::TcpCheck;

/// Why one check failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// No answer within the probe's timeout.
    #[error("timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// Could not connect.
    #[error("connect: {0}")]
    Connect(std::io::Error),
    /// The HTTP exchange failed.
    #[error("http: {0}")]
    Http(String),
    /// The service answered, but not as expected.
    #[error("{0}")]
    Unexpected(String),
    /// An HTTP check failed: the URL it asked, and how it failed.
    #[error("GET {url}: {error}")]
    Request {
        /// The URL.
        url: String,
        /// What went wrong.
        error: Box<ProbeError>,
    },
}

/// One kind of check, ready to run.
#[derive(Clone, Debug)]
pub enum Check {
    /// TCP connect.
    Tcp(TcpCheck),
    /// HTTP request with status (and body) match.
    Http(HttpCheck),
    /// DNS lookup with an expected answer.
    Dns(DnsCheck),
}

impl Check {
    /// Builds the check a probe spec describes.
    pub fn from_spec(spec: &ProbeCheck) -> Result<Check, ProbeError> {
        Ok(match spec {
            ProbeCheck::Tcp { address } => Check::Tcp(TcpCheck::new(address.clone())),
            ProbeCheck::Http {
                url,
                expect_status,
                expect_body,
            } => Check::Http(HttpCheck::new(url, *expect_status, expect_body.clone())?),
            ProbeCheck::Dns {
                server,
                query,
                record,
                expect,
            } => Check::Dns(DnsCheck::new(*server, query, *record, expect.clone())?),
        })
    }

    /// Runs the check once, bounded by `timeout`.
    pub async fn run(&self, timeout: std::time::Duration) -> Result<(), ProbeError> {
        let fut = async {
            match self {
                Check::Tcp(c) => c.check().await,
                Check::Http(c) => c.check().await,
                Check::Dns(c) => c.check().await,
            }
        };
        tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| ProbeError::Timeout(timeout))?
    }
}

/// Probes sampling in the background; their samples are readable while they run.
pub struct ProbeSet {
    timelines: Arc<Mutex<Vec<ProbeTimeline>>>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl ProbeSet {
    /// Starts every probe now. Times are microseconds since `epoch`.
    pub fn start(specs: &[ProbeSpec], epoch: Instant) -> Result<ProbeSet, ProbeError> {
        let checks = specs
            .iter()
            .map(|s| Check::from_spec(&s.check))
            .collect::<Result<Vec<_>, _>>()?;
        let timelines = Arc::new(Mutex::new(
            specs
                .iter()
                .map(|s| ProbeTimeline {
                    name: s.name.clone(),
                    recovered_after: s.recovered_after,
                    samples: Vec::new(),
                })
                .collect::<Vec<_>>(),
        ));
        let (stop, stop_rx) = watch::channel(false);
        let tasks = specs
            .iter()
            .zip(checks)
            .enumerate()
            .map(|(index, (spec, check))| {
                tokio::spawn(sample_loop(
                    index,
                    check,
                    spec.interval.get(),
                    spec.timeout.get(),
                    epoch,
                    timelines.clone(),
                    stop_rx.clone(),
                ))
            })
            .collect();
        Ok(ProbeSet {
            timelines,
            stop,
            tasks,
        })
    }

    /// A handle that reads samples as they arrive, for recording them while the run goes on.
    pub fn reader(&self) -> SampleReader {
        SampleReader {
            timelines: self.timelines.clone(),
            cursors: Vec::new(),
        }
    }

    /// A copy of every probe's samples so far.
    pub fn snapshot(&self) -> Vec<ProbeTimeline> {
        self.timelines.lock().expect("probe samples lock").clone()
    }

    /// The name of a probe whose sampling task ended before it was told to stop (it panicked),
    /// if any: its silence must not be read as a healthy service.
    pub fn crashed(&self) -> Option<String> {
        if *self.stop.borrow() {
            return None;
        }
        let index = self.tasks.iter().position(|t| t.is_finished())?;
        let timelines = self.timelines.lock().expect("probe samples lock");
        Some(
            timelines
                .get(index)
                .map_or_else(|| format!("#{index}"), |t| t.name.clone()),
        )
    }

    /// Stops sampling (a check in flight is abandoned) and returns the samples.
    pub async fn stop(self) -> Vec<ProbeTimeline> {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        let mut t = self.timelines.lock().expect("probe samples lock");
        std::mem::take(&mut *t)
    }
}

/// Reads each probe's samples incrementally.
pub struct SampleReader {
    timelines: Arc<Mutex<Vec<ProbeTimeline>>>,
    cursors: Vec<usize>,
}

impl SampleReader {
    /// Samples taken since the last call, per probe (probes with none are left out).
    pub fn take_new(&mut self) -> Vec<(String, Vec<Sample>)> {
        let timelines = self.timelines.lock().expect("probe samples lock");
        self.cursors.resize(timelines.len(), 0);
        timelines
            .iter()
            .zip(self.cursors.iter_mut())
            .filter_map(|(t, cursor)| {
                let new = t.samples.get(*cursor..).unwrap_or_default().to_vec();
                *cursor = t.samples.len().max(*cursor);
                (!new.is_empty()).then(|| (t.name.clone(), new))
            })
            .collect()
    }
}

/// Samples at a fixed cadence: the k-th check starts at `first + k·interval`, or right after
/// the previous one when a check took longer than the interval. Checks never overlap, so the
/// samples of one probe are totally ordered.
async fn sample_loop(
    index: usize,
    check: Check,
    interval: std::time::Duration,
    timeout: std::time::Duration,
    epoch: Instant,
    timelines: Arc<Mutex<Vec<ProbeTimeline>>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut next = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = stop.changed() => return,
        }
        let start = Instant::now();
        let outcome = tokio::select! {
            r = check.run(timeout) => r,
            _ = stop.changed() => return,
        };
        let end = Instant::now();
        let sample = Sample {
            start_us: micros(epoch, start),
            end_us: micros(epoch, end),
            ok: outcome.is_ok(),
            error: outcome.err().map(|e| e.to_string()).unwrap_or_default(),
        };
        timelines.lock().expect("probe samples lock")[index]
            .samples
            .push(sample);
        // An interval past what the clock can hold means "no next check", not a panic.
        next = next.checked_add(interval).unwrap_or_else(|| {
            tokio::time::Instant::now() + std::time::Duration::from_secs(365 * 24 * 3600)
        });
        let now = tokio::time::Instant::now();
        if next < now {
            next = now;
        }
    }
}

/// Microseconds from `epoch` to `t` (zero if `t` is earlier).
pub fn micros(epoch: Instant, t: Instant) -> u64 {
    t.saturating_duration_since(epoch).as_micros() as u64
}
