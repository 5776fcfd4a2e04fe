//! The heart of gameday: measured recovery time against an outage whose length is known
//! independently of the probes.
//!
//! The test service is restarted D ms after it dies by a restart loop; the service itself
//! writes the CLOCK_MONOTONIC instant it is listening again, and the loop the instant its
//! child died. The run report carries CLOCK_MONOTONIC at its epoch, so both line up.
//!
//! What must hold, with a 10 ms probe interval:
//! - the reported bracket (last failed sample .. first good sample) contains the true instant
//!   the service came back — no tolerance, this is structural;
//! - the point estimate lies within [true − TOLERANCE, true + interval + TOLERANCE];
//! - the measured recovery time lies within the true outage, plus the interval, ± TOLERANCE.
//!
//! TOLERANCE covers the probe's own latency on loopback (well under 1 ms) and scheduling delay
//! of a loaded CI machine running tests in parallel (a sample may start a few ms late); 25 ms.
//!
//! Three ways of being down, each with a 10 ms interval and a 1 s timeout, because they look
//! different to a probe: a closed port refuses at once; a blackholed one lets every check hang
//! until its timeout; a paused process holds every check and answers those still waiting just
//! after it is continued. Probe checks overlap, so a hanging check never stops the clock: in all
//! three the estimate must lie within the interval + 5 ms of the truth, and the bracket must
//! contain it. And a partial outage, as behind a round-robin balancer with one bad backend:
//! every other request fails (after 50 ms, as a balancer's connect timeout would) until the
//! bad backend is taken out; with `spread = 2` the same bound holds.
// Integration tests start the real binaries, services and helper processes.
#![allow(clippy::disallowed_methods)]

mod common;

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use gameday::timeline::monotonic_ns;

const INTERVAL_US: i64 = 10_000;
const TOLERANCE_US: i64 = 25_000;
/// How far the estimate may lie from the truth in the refuse, hang and pause cases: the
/// interval plus 5 ms of probe latency and scheduling.
const ESTIMATE_SLACK_US: i64 = 5_000;

fn check_outage(restart_delay: &str, delay_us: i64) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _service = supervised_service(dir.path(), port, restart_delay);
    let scenario = ScenarioBuilder::new(&format!("truth-{restart_delay}"))
        .rto("5s")
        .repeat(3)
        .steady_state("300ms")
        .observe("8s")
        .agents(["local"])
        .fault(FaultBuilder::kill(dir.path().join("service.pid")))
        .probe(demo_http_probe(port).timeout("500ms"))
        .write(dir.path().join("truth.toml"));
    let (code, report, stderr) = run_local(&scenario);
    assert_eq!(
        code, 0,
        "every run should pass; stderr:\n{stderr}\nreport: {report:#}"
    );
    let events = events(&dir.path().join("events"));
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3);
    for run in runs {
        let epoch_ns = run["epoch_monotonic_ns"].as_u64().unwrap() as i64;
        let inject = &run["inject"];
        let inject_abs_us = epoch_ns / 1000 + inject["at_us"].as_i64().unwrap();
        let uncertainty_us = inject["uncertainty_us"].as_i64().unwrap();
        let ttr = &run["grade"]["time_to_recover"];
        let (us, low, high) = (
            ttr["us"].as_i64().unwrap(),
            ttr["low_us"].as_i64().unwrap(),
            ttr["high_us"].as_i64().unwrap(),
        );
        // The first death after the injection, and the first listening after that death.
        let died_us = events
            .iter()
            .find(|(e, t)| {
                e == "exited" && *t as i64 / 1000 >= inject_abs_us - uncertainty_us - TOLERANCE_US
            })
            .map(|(_, t)| *t as i64 / 1000)
            .expect("the loop saw its child die after the injection");
        let up_us = events
            .iter()
            .find(|(e, t)| e == "listening" && *t as i64 / 1000 > died_us)
            .map(|(_, t)| *t as i64 / 1000)
            .expect("the service listened again");
        let true_outage = up_us - died_us;
        let true_recovery = up_us - inject_abs_us;
        eprintln!(
            "delay {restart_delay}: true outage {:.1} ms, measured recovery {:.1} ms [{:.1} .. {:.1}], error {:+.1} ms, inject ±{} µs",
            true_outage as f64 / 1e3,
            us as f64 / 1e3,
            low as f64 / 1e3,
            high as f64 / 1e3,
            (us - true_outage) as f64 / 1e3,
            uncertainty_us
        );
        assert!(true_outage >= delay_us, "the loop waited its delay");
        assert!(
            (died_us - inject_abs_us).abs() <= uncertainty_us + TOLERANCE_US,
            "the kill took effect at t_inject: died {died_us}, inject {inject_abs_us} ±{uncertainty_us}"
        );
        assert!(
            low <= true_recovery && true_recovery <= high,
            "bracket [{low}, {high}] must contain the true recovery {true_recovery} (µs after inject)"
        );
        assert!(
            us >= true_recovery - TOLERANCE_US && us <= true_recovery + INTERVAL_US + TOLERANCE_US,
            "point estimate {us} vs true recovery {true_recovery}"
        );
        assert!(
            us >= true_outage - TOLERANCE_US && us <= true_outage + INTERVAL_US + TOLERANCE_US,
            "measured {us} vs true outage {true_outage}"
        );
    }
    wait_for(
        "the service to be up after the runs",
        Duration::from_secs(5),
        || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
    );
}

#[test]
fn recovery_of_a_200ms_outage_is_measured_truthfully() {
    check_outage("200ms", 200_000);
}

#[test]
fn recovery_of_a_1s_outage_is_measured_truthfully() {
    check_outage("1s", 1_000_000);
}

/// The refuse case again, with the hang and pause cases' 1 s timeout: the estimate must lie
/// within the interval + 5 ms of the moment the service listened again.
#[test]
fn recovery_from_a_refused_port_is_within_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _service = supervised_service(dir.path(), port, "200ms");
    let fault = FaultBuilder::kill(dir.path().join("service.pid"));
    let report = run_truth(dir.path(), "refuse", fault, port, "self", &[]);
    let events = events(&dir.path().join("events"));
    for run in report["runs"].as_array().unwrap() {
        let inject_abs_us = inject_abs_us(run);
        let died_us = events
            .iter()
            .map(|(e, t)| (e, *t as i64 / 1000))
            .find(|(e, t)| *e == "exited" && *t >= inject_abs_us - TOLERANCE_US)
            .map(|(_, t)| t)
            .expect("the loop saw its child die after the injection");
        let up_us = events
            .iter()
            .map(|(e, t)| (e, *t as i64 / 1000))
            .find(|(e, t)| *e == "listening" && *t > died_us)
            .map(|(_, t)| t)
            .expect("the service listened again");
        // The service listens a moment before it writes the event: the truth is no later.
        check_estimate("refuse", run, up_us - 1_000, up_us);
    }
}

/// A blackholed port: a server that, while the fault holds, accepts every connection and never
/// answers it. Checks that started inside the outage hang until their timeout (1 s), long after
/// the service is back; the estimate must not wait for them.
#[test]
fn recovery_from_a_blackhole_is_within_the_interval() {
    // The server answers again from the instant its flag flipped back: that is the truth.
    for (run, lift) in server_outage(Bad::Hang, "300ms", "hang", &[]) {
        check_estimate("hang", &run, lift, lift);
    }
}

/// A partial outage: while the fault holds, every other request fails 50 ms after it arrived,
/// like a round-robin balancer whose second backend stopped answering, until the bad backend is
/// taken out at the lift. With `spread = 2` each sample reaches both backends, so every sample
/// fails until the lift and no lucky check can pass for the recovery: the estimate must lie
/// within interval + 5 ms after the lift.
#[test]
fn recovery_from_a_partial_outage_is_within_the_interval() {
    for (run, lift) in server_outage(Bad::EveryOther, "400ms", "partial", &[("spread", 2)]) {
        // To a probe that reaches every backend the outage was total.
        assert!(
            run["grade"]["probes"][0]["partial"].is_null(),
            "{:#}",
            run["grade"]
        );
        check_estimate("partial, spread 2", &run, lift, lift);
    }
}

/// The same partial outage seen one connection per sample: graded as partial, with a bracket
/// that still contains the lift, and an estimate at most a lucky check early.
#[test]
fn a_partial_outage_without_spread_is_graded_partial_and_bracketed() {
    for (run, lift) in server_outage(Bad::EveryOther, "400ms", "partial", &[]) {
        let partial = &run["grade"]["probes"][0]["partial"];
        let permille = partial["failed_permille"].as_u64();
        assert!(
            permille.is_some_and(|p| (300..=700).contains(&p)),
            "about half the checks failed: {:#}",
            run["grade"]
        );
        let inject = inject_abs_us(&run);
        let ttr = &run["grade"]["time_to_recover"];
        let at = |k: &str| ttr[k].as_i64().unwrap() + inject;
        eprintln!(
            "partial, spread 1: lift {:.1} ms after the effect, measured {:.1} ms [{:.1} .. {:.1}], error {:+.2} ms, {partial}",
            (lift - inject) as f64 / 1e3,
            (at("us") - inject) as f64 / 1e3,
            (at("low_us") - inject) as f64 / 1e3,
            (at("high_us") - inject) as f64 / 1e3,
            (at("us") - lift) as f64 / 1e3,
        );
        assert!(at("low_us") <= lift && lift <= at("high_us"), "{ttr:#}");
        let error = at("us") - lift;
        // Alone on the server, the probe alternates between its backends: one lucky check at
        // most, one interval (± 10 % jitter) early.
        assert!(
            (-INTERVAL_US * 11 / 10 - ESTIMATE_SLACK_US..=INTERVAL_US + ESTIMATE_SLACK_US)
                .contains(&error),
            "error {error} µs"
        );
    }
}

/// Runs a two-run scenario against a [`BlackholeServer`] that is `bad` while a sleeper is
/// paused for `hold` (more probe keys `probe_extra`): each run's report and the instant
/// (CLOCK_MONOTONIC µs) the server stopped being bad.
fn server_outage(
    bad: Bad,
    hold: &str,
    name: &str,
    probe_extra: &[(&str, u32)],
) -> Vec<(serde_json::Value, i64)> {
    let dir = tempfile::tempdir().unwrap();
    let (_sleeper, pid_file) = sleeper(dir.path());
    let pid = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let server = BlackholeServer::start(pid, bad);
    let report = run_truth(
        dir.path(),
        name,
        FaultBuilder::pause(&pid_file, hold),
        server.port,
        "after_revert",
        probe_extra,
    );
    let lifts = server.lifts();
    report["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| {
            let inject = inject_abs_us(run);
            let lift = lifts
                .iter()
                .map(|ns| *ns as i64 / 1000)
                .find(|t| *t > inject)
                .expect("the server stopped being bad after the injection");
            (run.clone(), lift)
        })
        .collect()
}

/// A paused process (SIGSTOP for 1.5 s, longer than the 1 s timeout, so early checks fail): the
/// kernel queues connections, and every check still waiting is answered just after SIGCONT.
#[test]
fn recovery_from_a_pause_is_within_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let service = bare_service(dir.path(), port);
    let watch = StopWatch::start(service.pid());
    let fault = FaultBuilder::pause(dir.path().join("service.pid"), "1500ms");
    let report = run_truth(dir.path(), "pause", fault, port, "after_revert", &[]);
    let resumes = watch.resumes();
    for run in report["runs"].as_array().unwrap() {
        let inject = inject_abs_us(run);
        let (before, after) = resumes
            .iter()
            .map(|(b, a)| (*b as i64 / 1000, *a as i64 / 1000))
            .find(|(_, a)| *a > inject)
            .expect("the service was continued after the injection");
        check_estimate("pause", run, before, after);
    }
}

/// Runs a two-run scenario with one fault and the truth cases' probe (plus the keys
/// `probe_extra`); returns the report.
fn run_truth(
    dir: &std::path::Path,
    name: &str,
    fault: FaultBuilder,
    port: u16,
    recovery: &str,
    probe_extra: &[(&str, u32)],
) -> serde_json::Value {
    let probe = probe_extra.iter().fold(
        demo_http_probe(port).timeout("1s"),
        |probe, (key, value)| probe.set(key, *value),
    );
    let scenario = ScenarioBuilder::new(&format!("truth-{name}"))
        .rto("5s")
        .repeat(2)
        .steady_state("300ms")
        .observe("8s")
        .recovery(recovery)
        .agents(["local"])
        .fault(fault)
        .probe(probe)
        .write(dir.join(format!("{name}.toml")));
    let (code, report, stderr) = run_local(&scenario);
    assert_eq!(
        code, 0,
        "every run should pass; stderr:\n{stderr}\nreport: {report:#}"
    );
    assert_eq!(report["runs"].as_array().unwrap().len(), 2);
    report
}

/// When the run's fault took effect, in CLOCK_MONOTONIC microseconds.
fn inject_abs_us(run: &serde_json::Value) -> i64 {
    run["epoch_monotonic_ns"].as_i64().unwrap() / 1000 + run["inject"]["at_us"].as_i64().unwrap()
}

/// The service came back between `truth_low` and `truth_high` (CLOCK_MONOTONIC µs): the
/// bracket must contain that, and the estimate lie within the interval + 5 ms after it.
fn check_estimate(case: &str, run: &serde_json::Value, truth_low: i64, truth_high: i64) {
    let inject = inject_abs_us(run);
    let ttr = &run["grade"]["time_to_recover"];
    let (us, low, high) = (
        ttr["us"].as_i64().expect("a recovery") + inject,
        ttr["low_us"].as_i64().unwrap() + inject,
        ttr["high_us"].as_i64().unwrap() + inject,
    );
    let error = us - truth_high;
    eprintln!(
        "{case}: true recovery {:.1} ms after the effect (±{:.2}), measured {:.1} ms [{:.1} .. {:.1}], error {:+.2} ms",
        (truth_high - inject) as f64 / 1e3,
        (truth_high - truth_low) as f64 / 2e3,
        (us - inject) as f64 / 1e3,
        (low - inject) as f64 / 1e3,
        (high - inject) as f64 / 1e3,
        error as f64 / 1e3,
    );
    assert!(
        low <= truth_high && truth_low <= high,
        "{case}: bracket [{low}, {high}] must contain the truth [{truth_low}, {truth_high}]; \
         samples around it (start, answer, µs after the effect):\n{}",
        samples_near(run, truth_low - inject - 30_000, high - inject)
    );
    assert!(
        us >= truth_low - ESTIMATE_SLACK_US && error <= INTERVAL_US + ESTIMATE_SLACK_US,
        "{case}: estimate {us} vs truth [{truth_low}, {truth_high}]: error {error} µs"
    );
}

/// The run's samples that started between `from_us` and `to_us` after the effect, one a line.
fn samples_near(run: &serde_json::Value, from_us: i64, to_us: i64) -> String {
    let inject = run["inject"]["at_us"].as_i64().unwrap();
    let mut lines = Vec::new();
    for s in run["probes"][0]["samples"].as_array().into_iter().flatten() {
        let start = s["start_us"].as_i64().unwrap_or(0) - inject;
        if (from_us..=to_us).contains(&start) {
            lines.push(format!(
                "  {start} {} {} {}",
                s["end_us"].as_i64().unwrap_or(0) - inject,
                s["ok"],
                s["error"]
            ));
        }
    }
    lines.join("\n")
}

/// Watches a process's state from a thread, recording each time it was continued after a
/// stop: (last seen stopped, first seen running), CLOCK_MONOTONIC ns.
struct StopWatch {
    done: Arc<AtomicBool>,
    resumes: Arc<Mutex<Vec<(u64, u64)>>>,
}

impl StopWatch {
    fn start(pid: i32) -> StopWatch {
        let done = Arc::new(AtomicBool::new(false));
        let resumes = Arc::new(Mutex::new(Vec::new()));
        let (d, r) = (done.clone(), resumes.clone());
        std::thread::spawn(move || {
            let mut last_stopped: Option<u64> = None;
            while !d.load(Ordering::Relaxed) {
                let now = monotonic_ns();
                if stopped(pid) {
                    last_stopped = Some(now);
                } else if let Some(before) = last_stopped.take() {
                    r.lock().unwrap().push((before, now));
                }
                // Sampling the state, not waiting for it: 100 µs is the truth's resolution.
                std::thread::sleep(Duration::from_micros(100));
            }
        });
        StopWatch { done, resumes }
    }

    fn resumes(&self) -> Vec<(u64, u64)> {
        self.resumes.lock().unwrap().clone()
    }
}

impl Drop for StopWatch {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
    }
}

/// What a [`BlackholeServer`] does to requests while its fault holds.
#[derive(Clone, Copy, PartialEq)]
enum Bad {
    /// Every request hangs, unanswered and open.
    Hang,
    /// Every other connection (counted as they are accepted) gets a 503 after 50 ms.
    EveryOther,
}

/// An HTTP server answering `ok`, bad while the process `pid` is stopped: then it hangs every
/// request, or fails every other one (see [`Bad`]). The instant it stops being bad is recorded
/// exactly, since it is the server's own switch.
struct BlackholeServer {
    port: u16,
    done: Arc<AtomicBool>,
    lifts: Arc<Mutex<Vec<u64>>>,
}

impl BlackholeServer {
    fn start(pid: i32, bad: Bad) -> BlackholeServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let done = Arc::new(AtomicBool::new(false));
        let hanging = Arc::new(AtomicBool::new(false));
        let lifts = Arc::new(Mutex::new(Vec::new()));
        let (d, h, l) = (done.clone(), hanging.clone(), lifts.clone());
        std::thread::spawn(move || {
            while !d.load(Ordering::Relaxed) {
                let stop = stopped(pid);
                if h.swap(stop, Ordering::SeqCst) && !stop {
                    l.lock().unwrap().push(monotonic_ns());
                }
                // Sampling the fault's state: it sets when the blackhole lifts, to 100 µs.
                std::thread::sleep(Duration::from_micros(100));
            }
        });
        let held: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        std::thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                let Ok(mut stream) = stream else { continue };
                let (hanging, held) = (hanging.clone(), held.clone());
                // The balancer's turn is taken when the connection arrives.
                let fails = bad == Bad::EveryOther && n % 2 == 1 && hanging.load(Ordering::SeqCst);
                std::thread::spawn(move || {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf) {
                            Ok(n) if n > 0 => request.extend_from_slice(&buf[..n]),
                            _ => return,
                        }
                    }
                    if fails {
                        std::thread::sleep(Duration::from_millis(50));
                        let _ = stream.write_all(
                            b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        );
                        return;
                    }
                    if bad == Bad::Hang && hanging.load(Ordering::SeqCst) {
                        // Never answered, never closed: the check hangs until its timeout.
                        held.lock().unwrap().push(stream);
                        return;
                    }
                    let _ = stream.write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    );
                });
            }
        });
        BlackholeServer { port, done, lifts }
    }

    fn lifts(&self) -> Vec<u64> {
        self.lifts.lock().unwrap().clone()
    }
}

impl Drop for BlackholeServer {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
    }
}
