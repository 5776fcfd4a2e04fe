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

mod common;

use std::time::Duration;

use common::*;

const INTERVAL_US: i64 = 10_000;
const TOLERANCE_US: i64 = 25_000;

fn check_outage(restart_delay: &str, delay_us: i64) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _service = supervised_service(dir.path(), port, restart_delay);
    let scenario = dir.path().join("truth.toml");
    std::fs::write(
        &scenario,
        format!(
            r#"
name = "truth-{restart_delay}"
rto = "5s"
repeat = 3
steady_state = "300ms"
observe = "8s"

[targets]
agents = ["local"]

[[faults]]
kind = "process_kill"
pid_file = "{pid}"

[[probes]]
name = "http"
kind = "http"
url = "http://127.0.0.1:{port}/"
interval = "10ms"
timeout = "500ms"
recovered_after = 3
expect_body = "ok"
"#,
            pid = dir.path().join("service.pid").display()
        ),
    )
    .unwrap();
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
