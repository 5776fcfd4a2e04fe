//! Synthetic probes: each runs on the controller at its interval and records timestamped samples.

mod dns;
mod http;
mod tcp;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::scenario::limits::MAX_PROBE_IN_FLIGHT as MAX_IN_FLIGHT;
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

    /// Runs `spread` checks at once (each over its own fresh connection, so through a load
    /// balancer they reach several backends); the sample is good only if every one is.
    pub async fn run_spread(&self, timeout: Duration, spread: u32) -> Result<(), ProbeError> {
        futures_util::future::try_join_all((0..spread.max(1)).map(|_| self.run(timeout)))
            .await
            .map(|_| ())
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
                    skipped: 0,
                    seed: None,
                })
                .collect::<Vec<_>>(),
        ));
        let (stop, stop_rx) = watch::channel(false);
        let tasks = specs
            .iter()
            .zip(checks)
            .enumerate()
            .map(|(index, (spec, check))| {
                let (interval, timeout) = (spec.interval.get(), spec.timeout.get());
                let seed = spec.seed.unwrap_or_else(|| fresh_seed(index));
                timelines.lock().expect("probe samples lock")[index].seed = Some(seed);
                let cadence = Cadence {
                    interval,
                    timeout,
                    spread: spec.spread,
                    seed,
                    max_in_flight: spec
                        .max_in_flight
                        .unwrap_or_else(|| default_max_in_flight(interval, timeout)),
                };
                tokio::spawn(sample_loop(
                    index,
                    check,
                    cadence,
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

/// The most checks one probe keeps in flight when its spec does not say: enough to start one
/// every period while earlier ones hang until their timeout — at the shortest jittered period
/// (the interval − [`JITTER`]), plus two for a timeout and a start that land on the same
/// moment — and no more than [`MAX_IN_FLIGHT`].
pub fn default_max_in_flight(interval: Duration, timeout: Duration) -> u32 {
    let shortest = interval.mul_f64(1.0 - JITTER).as_micros().max(1);
    let per_timeout = timeout.as_micros().div_ceil(shortest);
    (per_timeout + 2).clamp(1, u128::from(MAX_IN_FLIGHT)) as u32
}

/// Samples at the probe's cadence: the first check at once, the second after a random phase
/// within one interval, then one every interval ± 10 % (reproducible from the probe's seed), whether or not earlier
/// checks have answered, so a check that hangs until its timeout never delays the next.
/// At most `max_in_flight` checks run at once; a tick that finds them all busy is skipped (and
/// counted). Samples are recorded in the order their answers arrive, each with its own start.
async fn sample_loop(
    index: usize,
    check: Check,
    cadence: Cadence,
    epoch: Instant,
    timelines: Arc<Mutex<Vec<ProbeTimeline>>>,
    mut stop: watch::Receiver<bool>,
) {
    let check = Arc::new(check);
    // Checks in flight: owned by this task, so they are abandoned when it returns.
    let mut in_flight: JoinSet<(Instant, Result<(), ProbeError>)> = JoinSet::new();
    let mut jitter = Jitter(cadence.seed);
    // The first check starts at once (the steady state needs it), the second after a random
    // phase within one interval, the rest one jittered period apart.
    let mut next = tokio::time::Instant::now();
    let mut step = jitter.phase(cadence.interval);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            Some(done) = in_flight.join_next(), if !in_flight.is_empty() => {
                let (start, outcome) = match done {
                    Ok(done) => done,
                    // A check that panicked takes the probe down with it, so that
                    // `ProbeSet::crashed` sees it.
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    Err(_) => continue,
                };
                let sample = Sample {
                    start_us: micros(epoch, start),
                    end_us: micros(epoch, Instant::now()),
                    ok: outcome.is_ok(),
                    error: outcome.err().map(|e| e.to_string()).unwrap_or_default(),
                };
                timelines.lock().expect("probe samples lock")[index]
                    .samples
                    .push(sample);
            }
            _ = tokio::time::sleep_until(next) => {
                if in_flight.len() < cadence.max_in_flight as usize {
                    let check = check.clone();
                    let timeout = cadence.timeout;
                    in_flight.spawn(async move {
                        let start = Instant::now();
                        (start, check.run_spread(timeout, cadence.spread).await)
                    });
                } else {
                    timelines.lock().expect("probe samples lock")[index].skipped += 1;
                }
                // An interval past what the clock can hold means "no next check", not a panic.
                next = next.checked_add(step).unwrap_or_else(|| {
                    tokio::time::Instant::now() + Duration::from_secs(365 * 24 * 3600)
                });
                step = jitter.period(cadence.interval);
                let now = tokio::time::Instant::now();
                if next < now {
                    next = now;
                }
            }
        }
    }
}

/// When one probe starts its checks, and how many may run at once.
#[derive(Clone, Copy, Debug)]
struct Cadence {
    interval: Duration,
    timeout: Duration,
    max_in_flight: u32,
    /// Connections per sample.
    spread: u32,
    /// Seeds the probe's phase and the jitter of its period.
    seed: u64,
}

/// How much a probe's period varies around its interval, either way: enough that two periodic
/// clients drift apart within a few dozen checks, so a round-robin balancer cannot hand the
/// probe the same backend every time.
const JITTER: f64 = 0.1;

/// A small reproducible generator (splitmix64): the same seed gives the same phase and periods.
struct Jitter(u64);

impl Jitter {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The first check's delay: anywhere in one interval.
    fn phase(&mut self, interval: Duration) -> Duration {
        interval.mul_f64(self.unit())
    }

    /// The next period: the interval ± [`JITTER`].
    fn period(&mut self, interval: Duration) -> Duration {
        interval.mul_f64(1.0 - JITTER + 2.0 * JITTER * self.unit())
    }
}

/// A seed for a probe that was given none: different for every probe and every run.
fn fresh_seed(index: usize) -> u64 {
    let mut j = Jitter(
        crate::timeline::monotonic_ns()
            ^ (u64::from(std::process::id()) << 32)
            ^ (index as u64).wrapping_mul(0xA076_1D64_78BD_642F),
    );
    // Seeds are written back into scenarios as TOML integers: keep them below 2^63.
    j.next_u64() >> 1
}

/// Microseconds from `epoch` to `t` (zero if `t` is earlier).
pub fn micros(epoch: Instant, t: Instant) -> u64 {
    t.saturating_duration_since(epoch).as_micros() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use gameday_proto::Duration as Span;

    /// An HTTP probe at 10 ms with a 100 ms timeout against a server that accepts every
    /// connection and never answers.
    fn hanging_probe(max_in_flight: Option<u32>) -> (ProbeSpec, std::net::TcpListener) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let spec = ProbeSpec {
            name: "hang".into(),
            interval: Span::from_millis(10),
            timeout: Span::from_millis(100),
            recovered_after: 3,
            max_in_flight,
            spread: 1,
            seed: None,
            signals: None,
            check: ProbeCheck::Http {
                url: format!("http://127.0.0.1:{port}/"),
                expect_status: 200,
                expect_body: None,
            },
        };
        (spec, listener)
    }

    /// Accepts connections and holds them open, unanswered, until the test ends.
    fn hold(listener: std::net::TcpListener) {
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for s in listener.incoming() {
                held.push(s);
            }
        });
    }

    async fn samples_once(set: &ProbeSet, n: usize) -> Vec<Sample> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let samples = set.snapshot()[0].samples.clone();
            if samples.len() >= n {
                return samples;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} samples",
                samples.len()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn a_hanging_check_does_not_delay_the_next() {
        let (spec, listener) = hanging_probe(None);
        hold(listener);
        let set = ProbeSet::start(&[spec], Instant::now()).unwrap();
        let mut samples = samples_once(&set, 20).await;
        assert!(set.crashed().is_none());
        let timelines = set.stop().await;
        samples.sort_by_key(|s| s.start_us);
        assert!(samples
            .iter()
            .all(|s| !s.ok && s.error.contains("timed out")));
        // Checks start every 10 ms although each hangs for 100 ms (generous for a busy host).
        let gaps: Vec<u64> = samples
            .windows(2)
            .map(|w| w[1].start_us - w[0].start_us)
            .collect();
        let mean = gaps.iter().sum::<u64>() / gaps.len() as u64;
        assert!(mean < 30_000, "mean gap {mean} µs between starts: {gaps:?}");
        assert_eq!(timelines[0].skipped, 0, "14 in flight by default");
    }

    #[tokio::test]
    async fn checks_past_max_in_flight_are_skipped_and_counted() {
        let (spec, listener) = hanging_probe(Some(1));
        hold(listener);
        let set = ProbeSet::start(&[spec], Instant::now()).unwrap();
        let mut samples = samples_once(&set, 3).await;
        let timelines = set.stop().await;
        samples.sort_by_key(|s| s.start_us);
        assert!(
            samples.windows(2).all(|w| w[1].start_us >= w[0].end_us),
            "one at a time: {samples:?}"
        );
        assert!(timelines[0].skipped >= 10, "{}", timelines[0].skipped);
    }

    #[test]
    fn phase_and_jitter_are_reproducible_from_the_seed() {
        let interval = Duration::from_millis(10);
        let draw = |seed| {
            let mut j = Jitter(seed);
            let phase = j.phase(interval);
            let periods: Vec<Duration> = (0..1_000).map(|_| j.period(interval)).collect();
            (phase, periods)
        };
        let (phase, periods) = draw(42);
        assert_eq!((phase, periods.clone()), draw(42));
        assert_ne!(periods, draw(43).1);
        assert!(phase < interval);
        assert!(periods
            .iter()
            .all(|p| *p >= interval.mul_f64(0.9) && *p <= interval.mul_f64(1.1)));
        let mean = periods.iter().sum::<Duration>() / periods.len() as u32;
        assert!(mean > Duration::from_micros(9_900) && mean < Duration::from_micros(10_100));
        assert!(fresh_seed(0) < 1 << 63 && fresh_seed(1) != fresh_seed(0));
    }

    #[tokio::test]
    async fn a_spread_sample_fails_when_any_of_its_connections_does() {
        // Answers ok and 500 in turn, like a balancer over a healthy and a broken backend.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for (n, s) in listener.incoming().enumerate() {
                let Ok(mut s) = s else { continue };
                let mut buf = [0u8; 1024];
                let _ = std::io::Read::read(&mut s, &mut buf);
                let answer: &[u8] = if n % 2 == 0 {
                    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
                } else {
                    b"HTTP/1.1 500 Oops\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                };
                let _ = std::io::Write::write_all(&mut s, answer);
            }
        });
        let check = Check::from_spec(&ProbeCheck::Http {
            url: format!("http://127.0.0.1:{port}/"),
            expect_status: 200,
            expect_body: None,
        })
        .unwrap();
        for _ in 0..10 {
            assert!(check.run_spread(Duration::from_secs(5), 2).await.is_err());
        }
    }

    #[test]
    fn default_max_in_flight_covers_a_timeout_of_hanging_checks() {
        let ms = Duration::from_millis;
        // 100 ms / 9 ms (the shortest jittered period) = 12 checks, + 2.
        assert_eq!(default_max_in_flight(ms(10), ms(100)), 14);
        assert_eq!(default_max_in_flight(ms(100), ms(1_000)), 14);
        assert_eq!(default_max_in_flight(ms(1_000), ms(100)), 3);
        assert_eq!(default_max_in_flight(ms(10), ms(300_000)), MAX_IN_FLIGHT);
    }
}
