//! The store against a real SQLite file in a temp dir: schema, observer calls, interrupted
//! runs, retention, queries.

use std::time::Duration;

use super::*;
use crate::engine::{RunIdentity, RunObserver, RunStart, StartedBy};
use crate::grade::{Grade, Measured};
use crate::report::FaultRecord;
use crate::scenario::Scenario;
use crate::timeline::{Moment, ProbeTimeline, Sample};

const TOML: &str = r#"
name = "NAME"
rto = "2s"
observe = "10s"
min_pass_rate = 0.5

[targets]
agents = ["web-1"]

[[faults]]
kind = "process_kill"
pid_file = "/run/web.pid"

[[probes]]
name = "http"
kind = "http"
url = "http://127.0.0.1:8080/"
recovered_after = 3

[[probes]]
name = "port"
kind = "tcp"
address = "127.0.0.1:8080"
"#;

fn scenario(name: &str) -> (Scenario, String) {
    let text = TOML.replace("NAME", name);
    (crate::scenario::parse("s.toml", &text).unwrap(), text)
}

fn sample(start_us: u64, ok: bool) -> Sample {
    Sample {
        start_us,
        end_us: start_us + 500,
        ok,
        error: if ok { String::new() } else { "refused".into() },
    }
}

fn start(store: &Store, run_id: &str, s: &Scenario, text: &str) {
    let unrecorded = RunIdentity {
        invocation: String::new(),
        started_by: StartedBy::Unspecified,
    };
    start_as(store, run_id, 1, s, text, &unrecorded);
}

fn start_as(
    store: &Store,
    run_id: &str,
    index: u32,
    s: &Scenario,
    text: &str,
    identity: &RunIdentity,
) {
    let input = crate::scenario::ScenarioFile {
        file: "s.toml".into(),
        source: text.into(),
        scenario: s.clone(),
    };
    store.run_started(&RunStart {
        run_id,
        index,
        input: &input,
        targets: &["web-1".to_string()],
        epoch_monotonic_ns: 42,
        identity,
    });
}

fn fault(run_id: &str, reverted: Option<u64>) -> FaultRecord {
    FaultRecord {
        fault_id: format!("{run_id}-f0-web-1"),
        agent: "web-1".into(),
        kind: "process_kill".into(),
        applied: Some(Moment {
            at_us: 1_000,
            uncertainty_us: 20,
        }),
        apply_us: Some(150),
        evidence: "killed 1 process".into(),
        pids: vec![7],
        reverted_us: reverted,
        ..FaultRecord::default()
    }
}

fn graded(run_id: &str, verdict: Verdict, recover_us: Option<u64>, started: u64) -> RunReport {
    RunReport {
        run_id: run_id.into(),
        index: 1,
        verdict,
        reason: format!("{verdict} for a reason"),
        met_expectation: verdict == Verdict::Pass,
        targets: vec!["web-1".into()],
        epoch_monotonic_ns: 42,
        started_unix_ms: started,
        inject: Some(Moment {
            at_us: 1_000,
            uncertainty_us: 20,
        }),
        revert_us: None,
        grade: Some(Grade {
            verdict,
            reason: String::new(),
            time_to_detect: Some(Measured {
                us: 30,
                low_us: 10,
                high_us: 40,
            }),
            time_to_recover: recover_us.map(|us| Measured {
                us,
                low_us: us - 10,
                high_us: us,
            }),
            recover_after_revert_us: None,
            recovered_by: None,
            probes: vec![],
        }),
        stages: vec![],
        detection: None,
        annotations: vec![],
        remediation: None,
        remediation_signal: None,
        remediation_steps: vec![],
        faults: vec![fault(run_id, None)],
        probes: vec![ProbeTimeline {
            name: "http".into(),
            recovered_after: 3,
            skipped: 0,
            seed: None,
            samples: vec![sample(0, true), sample(1_500, false), sample(3_000, true)],
        }],
    }
}

/// A whole run through the observer: start, samples, fault, graded.
fn full_run(store: &Store, run_id: &str, name: &str, verdict: Verdict, started: u64) -> RunReport {
    let (s, text) = scenario(name);
    start(store, run_id, &s, &text);
    let report = graded(run_id, verdict, Some(2_000), started);
    store.samples(run_id, "http", &report.probes[0].samples);
    store.fault(run_id, &report.faults[0]);
    store.run_finished(&s, &report);
    report
}

fn temp() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("data")).unwrap();
    (dir, store)
}

fn count(store: &Store, sql: &str) -> i64 {
    store.writer().query_row(sql, [], |r| r.get(0)).unwrap()
}

#[test]
fn open_creates_a_private_directory_and_a_wal_database() {
    use std::os::unix::fs::PermissionsExt as _;
    let (dir, store) = temp();
    let data = dir.path().join("data");
    let mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    assert_eq!(store.path(), data.join(FILE_NAME));
    let conn = store.writer();
    let version: u32 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, schema::SCHEMA_VERSION);
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let fk: bool = conn
        .pragma_query_value(None, "foreign_keys", |r| r.get(0))
        .unwrap();
    assert!(fk);
    drop(conn);
    // Reopening an existing database migrates nothing and keeps its rows.
    full_run(&store, "r1", "kill", Verdict::Pass, 1_000);
    drop(store);
    let again = Store::open(&data).unwrap();
    assert_eq!(again.list_runs(&RunFilter::default()).unwrap().len(), 1);
}

#[test]
fn a_graded_run_keeps_its_samples_once_and_none_is_lost() {
    let (_dir, store) = temp();
    let (s, text) = scenario("kill");
    start(&store, "r1", &s, &text);
    let report = graded("r1", Verdict::Pass, Some(2_000), 5_000);
    // The recorder wrote the first sample; the run ended before it wrote the others.
    store.samples("r1", "http", &report.probes[0].samples[..1]);
    store.run_finished(&s, &report);
    assert_eq!(count(&store, "SELECT count(*) FROM samples"), 3);
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM runs WHERE report_json LIKE '%start_us%'"
        ),
        0,
        "the stored report holds no second copy"
    );
    let done = store.get_run("r1").unwrap().unwrap();
    assert_eq!(done.run, report, "samples come back in their order");
}

#[test]
fn a_database_that_cannot_be_opened_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where the database file should be.
    let path = dir.path().join(FILE_NAME);
    std::fs::create_dir(&path).unwrap();
    let e = Store::open(dir.path()).err().expect("opening must fail");
    assert!(matches!(e, StoreError::Open { .. }), "{e}");
    assert!(e.to_string().contains(&path.display().to_string()), "{e}");
}

#[test]
fn observer_calls_become_rows() {
    let (_dir, store) = temp();
    let (s, text) = scenario("kill");
    start(&store, "r1", &s, &text);

    let listed = store.list_runs(&RunFilter::default()).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].status, RunStatus::Running);
    assert_eq!(listed[0].verdict, None);
    assert_eq!(listed[0].rto_us, 2_000_000);

    store.samples("r1", "http", &[sample(0, true), sample(1_000, true)]);
    store.samples("r1", "http", &[sample(2_000, false)]);
    store.samples("r1", "port", &[sample(0, true)]);
    assert_eq!(count(&store, "SELECT count(*) FROM samples"), 4);

    // Applied, then reverted: one row, updated.
    store.fault("r1", &fault("r1", None));
    store.fault("r1", &fault("r1", Some(9_000)));
    assert_eq!(count(&store, "SELECT count(*) FROM faults"), 1);
    assert_eq!(count(&store, "SELECT reverted_us FROM faults"), 9_000);

    let running = store.get_run("r1").unwrap().unwrap();
    assert_eq!(running.status, RunStatus::Running);
    assert_eq!(running.scenario_toml, text);
    assert_eq!(running.scenario_sha256.len(), 64);
    let names: Vec<&str> = running.run.probes.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["http", "port"], "the scenario's probe order");
    assert_eq!(running.run.probes[0].samples.len(), 3);
    assert_eq!(running.run.probes[0].recovered_after, 3);
    assert_eq!(running.run.faults[0].reverted_us, Some(9_000));
    assert_eq!(running.run.inject.map(|m| m.at_us), Some(1_000));
    assert_eq!(running.run.epoch_monotonic_ns, 42);

    let report = graded("r1", Verdict::Pass, Some(2_000), 5_000);
    store.run_finished(&s, &report);
    let done = store.get_run("r1").unwrap().unwrap();
    assert_eq!(done.status, RunStatus::Finished);
    assert_eq!(done.run, report, "the full report is kept as graded");
    assert!(done.finished_unix_ms.is_some());
    let listed = store.list_runs(&RunFilter::default()).unwrap();
    assert_eq!(listed[0].verdict, Some(Verdict::Pass));
    assert_eq!(listed[0].time_to_recover_us, Some(2_000));
    assert_eq!(listed[0].met_expectation, Some(true));
    assert_eq!(listed[0].started_unix_ms, 5_000);
    assert!(store.get_run("nope").unwrap().is_none());

    let one = done.scenario_report();
    assert_eq!(one.runs.len(), 1);
    assert_eq!(one.summary.exit_code, crate::report::exit::OK);
    assert_eq!(one.summary.min_pass_rate, 0.5);
}

#[test]
fn a_repeat_that_never_started_is_still_recorded() {
    let (_dir, store) = temp();
    let (s, _) = scenario("kill");
    let mut report = graded("r2", Verdict::Error, None, 7_000);
    report.grade = None;
    report.faults.clear();
    store.run_finished(&s, &report);
    let got = store.get_run("r2").unwrap().unwrap();
    assert_eq!(got.status, RunStatus::Finished);
    assert_eq!(got.run.verdict, Verdict::Error);
    assert_eq!(got.scenario, "kill");
}

#[test]
fn write_errors_are_logged_not_raised() {
    let (_dir, store) = temp();
    // Samples of a run that was never started break the foreign key: logged, no panic.
    store.samples("ghost", "http", &[sample(0, true)]);
    store.fault("ghost", &fault("ghost", None));
    assert_eq!(count(&store, "SELECT count(*) FROM samples"), 0);
}

#[test]
fn runs_left_running_are_marked_interrupted_with_their_samples() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let (s, text) = scenario("kill");
        start(&store, "r1", &s, &text);
        store.samples("r1", "http", &[sample(0, true), sample(1_000, false)]);
        store.fault("r1", &fault("r1", None));
        full_run(&store, "r0", "kill", Verdict::Pass, 1);
        // The controller dies here.
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.interrupted_runs_marked(), 0);
    assert_eq!(store.mark_interrupted_runs(123_456).unwrap(), 1);
    assert_eq!(store.interrupted_runs_marked(), 1);
    assert_eq!(store.mark_interrupted_runs(999_999).unwrap(), 0);

    let running = RunFilter {
        status: Some(RunStatus::Running),
        ..RunFilter::default()
    };
    assert!(store.list_runs(&running).unwrap().is_empty());
    let got = store.get_run("r1").unwrap().unwrap();
    assert_eq!(got.status, RunStatus::Interrupted);
    assert_eq!(got.finished_unix_ms, Some(123_456));
    assert_eq!(got.run.reason, INTERRUPTED_REASON);
    assert_eq!(got.run.verdict, Verdict::Aborted);
    assert_eq!(got.run.probes[0].samples.len(), 2);
    assert_eq!(got.run.faults.len(), 1);
    // The finished run is untouched.
    assert_eq!(
        store.get_run("r0").unwrap().unwrap().status,
        RunStatus::Finished
    );
}

#[test]
fn pruning_removes_old_samples_and_keeps_verdicts_and_figures() {
    let (_dir, store) = temp();
    full_run(&store, "old", "kill", Verdict::Pass, 1_000);
    let (s, text) = scenario("kill");
    start(&store, "live", &s, &text);
    store.samples("live", "http", &[sample(0, true)]);

    let retention = Duration::from_secs(3600);
    // Nothing is old enough yet.
    let none = store.prune_samples(retention, unix_ms_now()).unwrap();
    assert_eq!(none, PruneOutcome::default());
    // Two hours later.
    let later = unix_ms_now() + 2 * 3_600_000;
    let pruned = store.prune_samples(retention, later).unwrap();
    assert_eq!(
        pruned,
        PruneOutcome {
            runs: 1,
            samples: 3
        }
    );
    assert_eq!(
        store.prune_samples(retention, later).unwrap(),
        PruneOutcome::default(),
        "a second pass has nothing to do"
    );

    let old = store.get_run("old").unwrap().unwrap();
    assert!(old.samples_pruned);
    assert_eq!(old.run.verdict, Verdict::Pass);
    assert!(old.run.probes.iter().all(|p| p.samples.is_empty()));
    assert_eq!(
        old.run.grade.unwrap().time_to_recover.map(|m| m.us),
        Some(2_000)
    );
    let listed = store.list_runs(&RunFilter::default()).unwrap();
    let old = listed.iter().find(|r| r.run_id == "old").unwrap();
    assert_eq!(old.time_to_recover_us, Some(2_000));
    // A running run keeps its samples whatever its age.
    let live = store.get_run("live").unwrap().unwrap();
    assert_eq!(live.run.probes[0].samples.len(), 1);
}

#[test]
fn listings_filter_and_order_newest_first() {
    let (_dir, store) = temp();
    full_run(&store, "a", "kill", Verdict::Pass, 1_000);
    full_run(&store, "b", "kill", Verdict::Fail, 2_000);
    full_run(&store, "c", "pause", Verdict::Pass, 3_000);
    let ids = |f: RunFilter| -> Vec<String> {
        store
            .list_runs(&f)
            .unwrap()
            .into_iter()
            .map(|r| r.run_id)
            .collect()
    };
    assert_eq!(ids(RunFilter::default()), ["c", "b", "a"]);
    assert_eq!(
        ids(RunFilter {
            scenario: Some("kill".into()),
            ..RunFilter::default()
        }),
        ["b", "a"]
    );
    assert_eq!(
        ids(RunFilter {
            verdict: Some(Verdict::Pass),
            ..RunFilter::default()
        }),
        ["c", "a"]
    );
    assert_eq!(
        ids(RunFilter {
            since_unix_ms: Some(2_000),
            until_unix_ms: Some(3_000),
            ..RunFilter::default()
        }),
        ["b"]
    );
    assert_eq!(
        ids(RunFilter {
            limit: 1,
            ..RunFilter::default()
        }),
        ["c"]
    );
    assert_eq!(
        ids(RunFilter {
            scenario: Some("kill".into()),
            verdict: Some(Verdict::NoImpact),
            ..RunFilter::default()
        }),
        Vec::<String>::new()
    );
}

#[test]
fn scenario_reports_grade_recent_runs_together_with_a_trend() {
    let (_dir, store) = temp();
    full_run(&store, "a", "kill", Verdict::Pass, 1_000);
    full_run(&store, "b", "kill", Verdict::Fail, 2_000);
    full_run(&store, "x", "other", Verdict::Pass, 2_500);
    full_run(&store, "c", "kill", Verdict::Pass, 3_000);
    let (s, text) = scenario("kill");
    start(&store, "d", &s, &text);
    store.mark_interrupted_runs(4_000).unwrap();

    let h = store.scenario_report("kill", 3).unwrap().unwrap();
    let ids: Vec<&str> = h.report.runs.iter().map(|r| r.run_id.as_str()).collect();
    // "d" started now (its row records the wall clock), so it is the most recent.
    assert_eq!(ids, ["b", "c", "d"], "the 3 most recent, oldest first");
    assert_eq!(h.report.scenario, "kill");
    assert_eq!(h.report.rto_us, 2_000_000);
    assert_eq!(h.report.summary.runs, 3);
    assert_eq!(h.report.summary.passed, 1);
    let trend: Vec<(&str, Verdict)> = h
        .trend
        .iter()
        .map(|t| (t.run_id.as_str(), t.verdict))
        .collect();
    assert_eq!(
        trend,
        [("b", Verdict::Fail), ("c", Verdict::Pass)],
        "graded runs only"
    );
    assert_eq!(h.trend[1].recovery_us, Some(2_000));
    assert_eq!(h.trend[1].started_unix_ms, 3_000);
    assert!(store.scenario_report("never", 10).unwrap().is_none());
}

#[test]
fn verdicts_and_statuses_parse_as_operators_write_them() {
    assert_eq!(parse_verdict("pass"), Ok(Verdict::Pass));
    assert_eq!(parse_verdict("no-impact"), Ok(Verdict::NoImpact));
    assert_eq!(parse_verdict("NO_IMPACT"), Ok(Verdict::NoImpact));
    assert!(parse_verdict("great").unwrap_err().contains("PASS, FAIL"));
    assert_eq!("Interrupted".parse(), Ok(RunStatus::Interrupted));
    assert!("paused".parse::<RunStatus>().is_err());
}

#[test]
fn runs_say_who_started_them_and_the_repeats_of_one_invocation_list_together() {
    let (_dir, store) = temp();
    let (s, text) = scenario("kill");
    let alice = RunIdentity {
        invocation: "run-a0".into(),
        started_by: StartedBy::Operator("alice".into()),
    };
    let cron = RunIdentity {
        invocation: "run-b0".into(),
        started_by: StartedBy::Schedule("monthly".into()),
    };
    // Two invocations whose repeats interleave in time.
    let run = |identity: &RunIdentity, index: u32, at: u64| {
        let id = format!("{}-{index}", identity.invocation);
        start_as(&store, &id, index, &s, &text, identity);
        let mut report = graded(&id, Verdict::Pass, Some(2_000), at);
        report.index = index;
        store.run_finished(&s, &report);
    };
    run(&alice, 1, 1_000);
    run(&cron, 1, 2_000);
    run(&alice, 2, 3_000);
    // The schedule's second repeat failed its preflight: it never started, and still belongs
    // to its invocation and its schedule.
    let mut never = graded("run-b0-2", Verdict::Error, None, 4_000);
    never.index = 2;
    never.grade = None;
    store.run_finished(&s, &never);

    let listed = store.list_runs(&RunFilter::default()).unwrap();
    let ids: Vec<&str> = listed.iter().map(|r| r.run_id.as_str()).collect();
    assert_eq!(ids, ["run-b0-1", "run-b0-2", "run-a0-1", "run-a0-2"]);
    let by: Vec<&str> = listed.iter().map(|r| r.started_by.as_str()).collect();
    assert_eq!(
        by,
        [
            "schedule:monthly",
            "schedule:monthly",
            "operator:alice",
            "operator:alice"
        ]
    );
    assert_eq!(listed[1].invocation, "run-b0");
    let shown = store.get_run("run-a0-2").unwrap().unwrap();
    assert_eq!(shown.started_by, "operator:alice");
    assert_eq!(shown.invocation, "run-a0");
}

#[test]
fn the_history_says_when_the_scenario_text_changed_between_runs() {
    let (_dir, store) = temp();
    let (s, text) = scenario("kill");
    let edited = format!("{text}\n# rto reviewed\n");
    let run = |id: &str, source: &str, at: u64| {
        start(&store, id, &s, source);
        store.run_finished(&s, &graded(id, Verdict::Pass, Some(2_000), at));
    };
    run("r1", &text, 1_000);
    run("r2", &text, 2_000);
    run("r3", &edited, 3_000);
    run("r4", &edited, 4_000);
    let (other, other_text) = scenario("other");
    start(&store, "o1", &other, &other_text);
    store.run_finished(&other, &graded("o1", Verdict::Pass, Some(2_000), 5_000));

    let listed = store.list_runs(&RunFilter::default()).unwrap();
    let changed: Vec<(&str, bool)> = listed
        .iter()
        .map(|r| (r.run_id.as_str(), r.scenario_changed))
        .collect();
    assert_eq!(
        changed,
        [
            ("o1", false),
            ("r4", false),
            ("r3", true),
            ("r2", false),
            ("r1", false)
        ]
    );
    assert_eq!(listed[2].scenario_sha256.len(), 64);
    let r3 = store.get_run("r3").unwrap().unwrap();
    assert_eq!(r3.scenario_changed_since.as_deref(), Some("r2"));
    assert_eq!(
        store.get_run("r4").unwrap().unwrap().scenario_changed_since,
        None
    );
}
