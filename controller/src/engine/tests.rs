//! Engine behaviour that needs no agent process: a run whose task panics is still graded and
//! recorded, whatever an agent still holds for a finished run is reverted, and the cooldown
//! between repeats ends early for an abort or a shutdown.

use std::sync::Mutex;

use gameday_proto::v1;
use tokio::sync::mpsc;

use super::*;
use crate::grade::Verdict;
use crate::registry::AgentConn;
use crate::report::RunReport;
use crate::scenario::Scenario;

fn scenario() -> Scenario {
    crate::scenario::parse(
        "s.toml",
        r#"name = "kill"
rto = "3s"
[targets]
agents = ["web-1"]
[[faults]]
kind = "process_kill"
pid_file = "/run/x.pid"
[[probes]]
name = "tcp"
kind = "tcp"
address = "127.0.0.1:1"
"#,
    )
    .unwrap()
}

/// An agent connection with nobody behind it: what the controller sends piles up in `rx`.
fn agent() -> (
    Arc<AgentConn>,
    mpsc::Receiver<Result<v1::ControllerMessage, tonic::Status>>,
) {
    let (tx, rx) = mpsc::channel(16);
    let register = v1::Register {
        name: "web-1".into(),
        capabilities: vec!["process_kill".into()],
        ..v1::Register::default()
    };
    (Arc::new(AgentConn::new(register, "test".into(), tx)), rx)
}

/// Panics when a run starts: a stand-in for any bug inside a run.
struct PanicsAtStart;

impl RunObserver for PanicsAtStart {
    fn run_started(&self, _run: &RunStart<'_>) {
        panic!("a bug inside the run");
    }
}

#[derive(Default)]
struct Finished(Mutex<Vec<RunReport>>);

impl RunObserver for Finished {
    fn run_finished(&self, _scenario: &Scenario, run: &RunReport) {
        self.0.lock().unwrap().push(run.clone());
    }
}

#[tokio::test]
async fn a_run_whose_task_panics_is_graded_error_and_recorded() {
    let registry = Arc::new(AgentRegistry::default());
    let (conn, _rx) = agent();
    registry.register(conn, Duration::from_secs(5)).unwrap();
    let finished = Arc::new(Finished::default());
    let engine = Engine::new(registry)
        .with_observer(Arc::new(PanicsAtStart))
        .with_observer(finished.clone());
    let (progress, _lines) = mpsc::unbounded_channel();
    let report = engine
        .run_scenario(
            &crate::scenario::ScenarioFile {
                file: "s.toml".into(),
                source: String::new(),
                scenario: scenario(),
            },
            &progress,
        )
        .await;
    assert_eq!(report.runs.len(), 1);
    assert_eq!(report.runs[0].verdict, Verdict::Error);
    assert!(
        report.runs[0].reason.contains("a bug inside the run"),
        "{}",
        report.runs[0].reason
    );
    let recorded = finished.0.lock().unwrap();
    assert_eq!(recorded.len(), 1, "the history hears of it");
    assert_eq!(recorded[0].verdict, Verdict::Error);
    assert!(!engine.while_active(&recorded[0].run_id, || ()));
}

#[tokio::test]
async fn a_fault_adopted_for_a_run_that_ended_is_reverted_by_the_sweep() {
    let registry = Arc::new(AgentRegistry::default());
    let (conn, mut rx) = agent();
    registry
        .register(conn.clone(), Duration::from_secs(5))
        .unwrap();
    conn.track(
        "f1".into(),
        "r1".into(),
        "process_pause",
        crate::registry::LiveState::Adopted,
    );
    let engine = Engine::new(registry);
    let sweep = engine.revert_leftovers("r1");
    let answer = async {
        let Some(Ok(v1::ControllerMessage {
            msg: Some(v1::controller_message::Msg::Revert(r)),
        })) = rx.recv().await
        else {
            panic!("a revert request");
        };
        conn.deliver(v1::FaultReport {
            fault_id: r.fault_id,
            phase: v1::FaultPhase::Reverted as i32,
            ..v1::FaultReport::default()
        });
    };
    tokio::join!(sweep, answer);
    assert!(conn.live_faults().is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_cooldown_waits_its_length_unless_the_invocation_is_stopped() {
    let cooldown = Duration::from_secs(30);
    let closing = CancellationToken::new();
    let (stop, mut stopped) = watch::channel(None);
    let start = tokio::time::Instant::now();
    cool_down(cooldown, &mut stopped, &closing).await;
    assert_eq!(start.elapsed(), cooldown);

    let start = tokio::time::Instant::now();
    let abort = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        stop.send_replace(Some("operator alice".into()));
    };
    tokio::join!(cool_down(cooldown, &mut stopped, &closing), abort);
    assert_eq!(start.elapsed(), Duration::from_secs(2), "an abort ends it");

    let (_stop, mut stopped) = watch::channel(None);
    let start = tokio::time::Instant::now();
    let shutdown = async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        closing.cancel();
    };
    tokio::join!(cool_down(cooldown, &mut stopped, &closing), shutdown);
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(5),
        "a shutdown ends it"
    );
}
