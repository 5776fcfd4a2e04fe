//! Prometheus metrics on `metrics_listen` at `/metrics`: the fleet (agents connected, faults
//! live), read from the agent registry at scrape time, and runs (by scenario and verdict,
//! recovery time, last verdict, runs in progress), counted by a [`RunObserver`] as the engine
//! reports them.
//!
//! Served as the Prometheus text format 0.0.4, or OpenMetrics text when the scraper asks for it
//! (`Accept: application/openmetrics-text`), over plain HTTP/1.1: metrics are not secret, and
//! a scraper with a client certificate is rarely at hand. Bind it to an address only the
//! monitoring network reaches.

mod http;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric as _};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::engine::{RunObserver, RunStart};
use crate::grade::Verdict;
use crate::registry::AgentRegistry;
use crate::report::{RunReport, ScenarioReport};
use crate::scenario::Scenario;

pub use http::MetricsServer;

/// Histogram buckets for recovery times, seconds: from sub-second restarts to 10-minute RTOs.
pub const RECOVERY_BUCKETS: [f64; 14] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 180.0, 300.0, 600.0,
];

const VERDICTS: [Verdict; 6] = [
    Verdict::Pass,
    Verdict::Fail,
    Verdict::NoImpact,
    Verdict::Inconclusive,
    Verdict::Aborted,
    Verdict::Error,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScenarioLabels {
    scenario: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictLabels {
    scenario: String,
    verdict: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DetectionLabels {
    scenario: String,
    /// `fired` (the alert's own start) or `delivered` (when it reached the controller).
    by: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabels {
    scenario: String,
    /// `succeeded`, `failed`, `not_run` or `unknown`.
    outcome: String,
}

type HistogramFamily = Family<ScenarioLabels, Histogram, fn() -> Histogram>;

/// The controller's metrics. Register it with the engine as an observer
/// (`Engine::new(..).with_observer(metrics.clone())`) and serve it with [`MetricsServer`].
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    runs: Family<VerdictLabels, Counter>,
    recovery: HistogramFamily,
    detection: Family<DetectionLabels, Histogram, fn() -> Histogram>,
    unnoticed: Family<ScenarioLabels, Counter>,
    steps: Family<StepLabels, Counter>,
    last_verdict: Family<VerdictLabels, Gauge>,
    in_progress: Family<ScenarioLabels, Gauge>,
    /// Runs started and not finished: run id → scenario.
    live: Mutex<HashMap<String, String>>,
    /// Runs counted by `run_finished`, so `scenario_finished` counts only the others
    /// (runs refused at preflight are never started nor finished).
    counted: Mutex<HashSet<String>>,
}

/// Reads the fleet at scrape time.
struct FleetCollector(Arc<AgentRegistry>);

impl std::fmt::Debug for FleetCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FleetCollector")
    }
}

impl Collector for FleetCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let agents = self.0.all();
        let faults: usize = agents.iter().map(|a| a.live_faults().len()).sum();
        for (name, help, value) in [
            (
                "gameday_agents_connected",
                "Agents connected to the controller now.",
                agents.len(),
            ),
            (
                "gameday_active_faults",
                "Faults applied and not yet reverted, over every connected agent.",
                faults,
            ),
        ] {
            let gauge = ConstGauge::new(value as i64);
            let metric = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
            gauge.encode(metric)?;
        }
        Ok(())
    }
}

fn recovery_histogram() -> Histogram {
    Histogram::new(RECOVERY_BUCKETS)
}

impl Metrics {
    /// Metrics reading the fleet from `agents`.
    pub fn new(agents: Arc<AgentRegistry>) -> Metrics {
        let mut registry = Registry::default();
        let runs = Family::<VerdictLabels, Counter>::default();
        let recovery: HistogramFamily = Family::new_with_constructor(recovery_histogram);
        let last_verdict = Family::<VerdictLabels, Gauge>::default();
        let in_progress = Family::<ScenarioLabels, Gauge>::default();
        let detection: Family<DetectionLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(recovery_histogram);
        let unnoticed = Family::<ScenarioLabels, Counter>::default();
        let steps = Family::<StepLabels, Counter>::default();
        registry.register_collector(Box::new(FleetCollector(agents)));
        registry.register(
            "gameday_runs",
            "Runs finished, by scenario and verdict",
            runs.clone(),
        );
        registry.register(
            "gameday_recovery_seconds",
            "Measured recovery time (fault effect to every probe recovered) of runs that recovered, by scenario",
            recovery.clone(),
        );
        registry.register(
            "gameday_time_to_detect_seconds",
            "Time from the fault's effect to the first alert of the team's monitoring that noticed it, by scenario, timed by the alert's own start (by=fired) and by its delivery (by=delivered)",
            detection.clone(),
        );
        registry.register(
            "gameday_unnoticed_runs",
            "Runs of a scenario with [detect] whose fault no matching alert noticed in time",
            unnoticed.clone(),
        );
        registry.register(
            "gameday_remediation_steps",
            "Remediation steps of finished runs, by scenario and outcome (succeeded / (succeeded + failed + unknown) is recovery automation success)",
            steps.clone(),
        );
        registry.register(
            "gameday_last_verdict",
            "1 for the verdict of the scenario's latest run, 0 for the other verdicts",
            last_verdict.clone(),
        );
        registry.register(
            "gameday_run_in_progress",
            "Runs of the scenario going on now",
            in_progress.clone(),
        );
        Metrics {
            registry,
            runs,
            recovery,
            detection,
            unnoticed,
            steps,
            last_verdict,
            in_progress,
            live: Mutex::new(HashMap::new()),
            counted: Mutex::new(HashSet::new()),
        }
    }

    /// The Prometheus text format (0.0.4).
    pub fn prometheus_text(&self) -> String {
        let mut out = String::new();
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        {
            tracing::error!(error = %e, "encoding metrics");
        }
        out
    }

    /// The OpenMetrics text format (ends with `# EOF`).
    pub fn openmetrics_text(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "encoding metrics");
        }
        out
    }

    fn count(&self, scenario: &str, verdict: Verdict) {
        let verdict_text = verdict.to_string();
        self.runs
            .get_or_create(&VerdictLabels {
                scenario: scenario.into(),
                verdict: verdict_text,
            })
            .inc();
        for v in VERDICTS {
            self.last_verdict
                .get_or_create(&VerdictLabels {
                    scenario: scenario.into(),
                    verdict: v.to_string(),
                })
                .set(i64::from(v == verdict));
        }
    }
}

impl RunObserver for Metrics {
    fn run_started(&self, run: &RunStart<'_>) {
        let scenario = run.input.scenario.name.clone();
        self.in_progress
            .get_or_create(&ScenarioLabels {
                scenario: scenario.clone(),
            })
            .inc();
        self.live
            .lock()
            .expect("metrics lock")
            .insert(run.run_id.to_string(), scenario);
    }

    fn run_finished(&self, scenario: &Scenario, run: &RunReport) {
        if let Some(started) = self.live.lock().expect("metrics lock").remove(&run.run_id) {
            self.in_progress
                .get_or_create(&ScenarioLabels { scenario: started })
                .dec();
        }
        self.count(&scenario.name, run.verdict);
        if let Some(m) = run.grade.as_ref().and_then(|g| g.time_to_recover) {
            self.recovery
                .get_or_create(&ScenarioLabels {
                    scenario: scenario.name.clone(),
                })
                .observe(m.us as f64 / 1e6);
        }
        if let Some(d) = &run.detection {
            let name = || scenario.name.clone();
            match &d.alert {
                Some(a) => {
                    let timed = [
                        ("fired", a.fired_after_us),
                        ("delivered", Some(a.delivered_after_us)),
                    ];
                    for (by, us) in timed {
                        if let Some(us) = us {
                            self.detection
                                .get_or_create(&DetectionLabels {
                                    scenario: name(),
                                    by: by.into(),
                                })
                                .observe(us as f64 / 1e6);
                        }
                    }
                }
                None => {
                    self.unnoticed
                        .get_or_create(&ScenarioLabels { scenario: name() })
                        .inc();
                }
            }
        }
        for step in &run.remediation_steps {
            self.steps
                .get_or_create(&StepLabels {
                    scenario: scenario.name.clone(),
                    outcome: step.outcome.label().into(),
                })
                .inc();
        }
        self.counted
            .lock()
            .expect("metrics lock")
            .insert(run.run_id.clone());
    }

    fn scenario_finished(&self, report: &ScenarioReport) {
        let uncounted: Vec<Verdict> = {
            let mut counted = self.counted.lock().expect("metrics lock");
            report
                .runs
                .iter()
                .filter(|r| !counted.remove(&r.run_id))
                .map(|r| r.verdict)
                .collect()
        };
        for verdict in uncounted {
            self.count(&report.scenario, verdict);
        }
        if report.runs.is_empty() && report.error.is_some() {
            // Refused at preflight: an attempt that failed, worth an alert like any ERROR run.
            self.count(&report.scenario, Verdict::Error);
        }
    }
}
