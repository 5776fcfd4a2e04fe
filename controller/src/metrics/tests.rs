//! Unit tests of the metrics: runs counted once with their verdict, recovery observed, a
//! scenario refused at preflight counted as an error.

use super::*;
use crate::report::summarize;

fn scenario() -> Scenario {
    crate::scenario::parse(
        "s.toml",
        r#"name = "pause"
rto = "3s"
[targets]
agents = ["web-1"]
[[faults]]
kind = "process_pause"
pid_file = "/run/x.pid"
duration = "1s"
[[probes]]
name = "tcp"
kind = "tcp"
address = "127.0.0.1:1"
"#,
    )
    .unwrap()
}

fn run(id: &str, verdict: Verdict, recover_us: Option<u64>) -> RunReport {
    crate::fixtures::run(id, verdict, recover_us)
}

fn started(m: &Metrics, s: &Scenario, id: &str) {
    let input = crate::scenario::ScenarioFile {
        file: "s.toml".into(),
        source: String::new(),
        scenario: s.clone(),
    };
    m.run_started(&RunStart {
        run_id: id,
        index: 1,
        input: &input,
        targets: &[],
        epoch_monotonic_ns: 0,
        identity: &crate::engine::RunIdentity::new(crate::engine::StartedBy::Unspecified),
    });
}

#[test]
fn runs_are_counted_once_with_their_verdict_and_recovery() {
    let m = Metrics::new(Arc::new(AgentRegistry::default()));
    let s = scenario();
    started(&m, &s, "r1");
    assert!(m
        .prometheus_text()
        .contains("gameday_run_in_progress{scenario=\"pause\"} 1\n"));
    let r1 = run("r1", Verdict::Pass, Some(1_500_000));
    m.run_finished(&s, &r1);
    started(&m, &s, "r2");
    let r2 = run("r2", Verdict::Fail, None);
    m.run_finished(&s, &r2);
    // A third repeat refused at preflight is only in the scenario's report.
    let r3 = run("r3", Verdict::Error, None);
    let runs = vec![r1, r2, r3];
    m.scenario_finished(&ScenarioReport {
        scenario: "pause".into(),
        file: "s.toml".into(),
        expect: crate::scenario::Expectation::Recovery,
        rto_us: 3_000_000,
        error: None,
        summary: summarize(&runs, 1.0, false),
        runs,
    });
    let text = m.prometheus_text();
    for line in [
        "# TYPE gameday_agents_connected gauge\ngameday_agents_connected 0\n",
        "gameday_active_faults 0\n",
        "# TYPE gameday_runs_total counter\n",
        "gameday_runs_total{scenario=\"pause\",verdict=\"PASS\"} 1\n",
        "gameday_runs_total{scenario=\"pause\",verdict=\"FAIL\"} 1\n",
        "gameday_runs_total{scenario=\"pause\",verdict=\"ERROR\"} 1\n",
        "gameday_last_verdict{scenario=\"pause\",verdict=\"ERROR\"} 1\n",
        "gameday_last_verdict{scenario=\"pause\",verdict=\"PASS\"} 0\n",
        "gameday_run_in_progress{scenario=\"pause\"} 0\n",
        "gameday_recovery_seconds_sum{scenario=\"pause\"} 1.5\n",
        "gameday_recovery_seconds_count{scenario=\"pause\"} 1\n",
    ] {
        assert!(text.contains(line), "{line:?} missing from\n{text}");
    }
    assert!(m.openmetrics_text().ends_with("# EOF\n"));
}

#[test]
fn a_scenario_refused_before_its_first_run_counts_as_an_error() {
    let m = Metrics::new(Arc::new(AgentRegistry::default()));
    m.scenario_finished(&ScenarioReport {
        scenario: "ghost".into(),
        file: "g.toml".into(),
        expect: crate::scenario::Expectation::Recovery,
        rto_us: 1,
        error: Some("preflight: agent ghost is not connected".into()),
        summary: summarize(&[], 1.0, true),
        runs: vec![],
    });
    assert!(m
        .prometheus_text()
        .contains("gameday_runs_total{scenario=\"ghost\",verdict=\"ERROR\"} 1\n"));
}

#[test]
fn time_to_detect_is_observed_both_ways_and_unnoticed_runs_and_steps_are_counted() {
    use crate::grade::detect::{DetectedAlert, Detection};
    let m = Metrics::new(Arc::new(AgentRegistry::default()));
    let s = scenario();
    let detection = |alert: Option<DetectedAlert>| Detection {
        selector: "{alertname=\"X\"}".into(),
        within_us: 60_000_000,
        alert,
        ignored_before: 0,
        ignored_unmatched: 0,
        expect_alert: false,
    };
    let mut noticed = run("r1", Verdict::Pass, Some(1_000_000));
    noticed.detection = Some(detection(Some(DetectedAlert {
        labels: Default::default(),
        summary: None,
        fired_after_us: Some(2_000_000),
        delivered_after_us: 32_000_000,
    })));
    let mut missed = run("r2", Verdict::Pass, Some(1_000_000));
    missed.detection = Some(detection(None));
    let step = |outcome| crate::fixtures::step("promote", outcome);
    noticed.remediation_steps = vec![step(crate::remediation::StepOutcome::Succeeded {
        how: "exit 0".into(),
    })];
    missed.remediation_steps = vec![step(crate::remediation::StepOutcome::NotRun {
        why: "no alert".into(),
    })];
    m.run_finished(&s, &noticed);
    m.run_finished(&s, &missed);
    let text = m.prometheus_text();
    for line in [
        "gameday_time_to_detect_seconds_sum{scenario=\"pause\",by=\"fired\"} 2.0\n",
        "gameday_time_to_detect_seconds_sum{scenario=\"pause\",by=\"delivered\"} 32.0\n",
        "gameday_unnoticed_runs_total{scenario=\"pause\"} 1\n",
        "gameday_remediation_steps_total{scenario=\"pause\",outcome=\"succeeded\"} 1\n",
        "gameday_remediation_steps_total{scenario=\"pause\",outcome=\"not_run\"} 1\n",
    ] {
        assert!(text.contains(line), "{line:?} missing from\n{text}");
    }
}
