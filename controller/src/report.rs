//! Run reports: the per-run record, the summary over repeats, exit codes, and the human text.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::grade::{fmt_us, judge, Grade, Measured, Tally, Verdict};
use crate::timeline::{Moment, ProbeTimeline};

/// What happened to one fault on one target.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultRecord {
    /// The fault's id (unique per run, target and fault).
    pub fault_id: String,
    /// The agent it ran on.
    pub agent: String,
    /// Its kind.
    pub kind: String,
    /// When it took effect, on the run's clock.
    pub applied: Option<Moment>,
    /// How long the agent took from request to effect.
    pub apply_us: Option<u64>,
    /// What the fault hit (pids, summary).
    pub evidence: String,
    /// Pids signalled, where relevant.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pids: Vec<i32>,
    /// Named figures from the agent: packets dropped, bytes written, queries answered...
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub figures: std::collections::BTreeMap<String, i64>,
    /// Named figures the agent reported when it reverted the fault (free space after the fill
    /// file was removed, packets dropped over the fault's life...), apart from the apply
    /// figures above so neither overwrites the other.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub revert_figures: std::collections::BTreeMap<String, i64>,
    /// When it was reverted (microseconds since the epoch).
    pub reverted_us: Option<u64>,
    /// What the revert reported.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub revert_evidence: String,
    /// The agent's or the transport's error, if applying or reverting failed.
    pub error: Option<String>,
}

impl FaultRecord {
    /// "applied at +1.005s (±1.3ms), took 2.8ms", or "not applied".
    pub fn applied_text(&self) -> String {
        match (&self.applied, self.apply_us) {
            (Some(m), Some(a)) => format!(
                "applied at +{} (±{}), took {}",
                fmt_us(m.at_us),
                fmt_us(m.uncertainty_us),
                fmt_us(a)
            ),
            _ => "not applied".into(),
        }
    }
}

impl RunReport {
    /// The game day's timeline beyond recovery, as (what, text) for every report format:
    /// each stage, what monitoring noticed, when remediation began, and the notes.
    pub fn timeline_facts(&self) -> Vec<(&'static str, String)> {
        let mut facts: Vec<(&'static str, String)> =
            self.stages.iter().map(|st| ("stage", st.line())).collect();
        if let Some(d) = &self.detection {
            facts.push(("monitoring", d.summary()));
        }
        if let Some(r) = &self.remediation {
            facts.push(("remediation start", r.line()));
        }
        facts.extend(
            self.remediation_steps
                .iter()
                .map(|s| ("remediation step", s.line())),
        );
        facts.extend(
            crate::annotation::lines(self)
                .into_iter()
                .map(|line| ("note", line)),
        );
        facts
    }
}

/// One run of a scenario.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunReport {
    /// Unique run id.
    pub run_id: String,
    /// 1-based index among the scenario's repeats.
    pub index: u32,
    /// The verdict.
    pub verdict: Verdict,
    /// Why, in one sentence.
    pub reason: String,
    /// Whether the verdict is what the scenario expects.
    pub met_expectation: bool,
    /// The agents targeted.
    pub targets: Vec<String>,
    /// CLOCK_MONOTONIC at the run's epoch, in nanoseconds, so others on the host can line up
    /// their own timestamps with the run's.
    pub epoch_monotonic_ns: u64,
    /// Wall-clock start of the run, milliseconds since the Unix epoch (for history and trends).
    #[serde(default)]
    pub started_unix_ms: u64,
    /// When the fault took effect (the first target's), microseconds since the epoch.
    pub inject: Option<Moment>,
    /// When the faults were reverted, for faults that hold.
    pub revert_us: Option<u64>,
    /// Figures.
    pub grade: Option<Grade>,
    /// Each stage of recovery, for a scenario with `[[stages]]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<crate::grade::StageGrade>,
    /// What the team's monitoring made of the fault, for a scenario with `[detect]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detection: Option<crate::grade::detect::Detection>,
    /// Notes the people in the room added, during the run or after it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<crate::annotation::Annotation>,
    /// Time to remediation start, from the first `remediation_started` annotation, the
    /// remediation signal or a remediation step's start, whichever came first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remediation: Option<crate::annotation::Remediation>,
    /// When a probe with `signals = "remediation"` first turned good after the fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remediation_signal: Option<crate::annotation::SignalSeen>,
    /// The scenario's remediation steps (`[[remediation]]`): when each ran and how it went.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remediation_steps: Vec<crate::remediation::StepRecord>,
    /// Every fault on every target.
    pub faults: Vec<FaultRecord>,
    /// The whole probe timeline.
    pub probes: Vec<ProbeTimeline>,
}

/// Figures over all runs of a scenario, and its one verdict ([`crate::grade::judge`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The scenario's verdict: PASS, FAIL, INCONCLUSIVE, ABORTED or ERROR. The exit code
    /// follows from it.
    #[serde(default = "unknown_verdict")]
    pub verdict: Verdict,
    /// Why, in one sentence, with the arithmetic.
    #[serde(default)]
    pub reason: String,
    /// Runs made.
    pub runs: u32,
    /// Runs that met the expectation.
    pub passed: u32,
    /// Runs graded on the fault's effect (PASS, FAIL, NO_IMPACT): the pass rate's denominator.
    #[serde(default)]
    pub graded: u32,
    /// INCONCLUSIVE runs, left out of the pass rate.
    #[serde(default)]
    pub inconclusive: u32,
    /// ABORTED runs, left out of the pass rate.
    #[serde(default)]
    pub aborted: u32,
    /// passed / graded; 0 when no run was graded (then `graded` is 0 and the verdict says why).
    pub pass_rate: f64,
    /// Required pass rate.
    pub min_pass_rate: f64,
    /// Recovery time percentiles over runs that recovered, microseconds.
    pub recovery_p50_us: Option<u64>,
    /// 95th percentile.
    pub recovery_p95_us: Option<u64>,
    /// Worst.
    pub recovery_max_us: Option<u64>,
    /// Remediation steps over the runs: how many ran and how many succeeded (the RTO guide's
    /// recovery automation success, M8).
    #[serde(
        default,
        skip_serializing_if = "crate::remediation::StepTally::is_empty"
    )]
    pub remediation_steps: crate::remediation::StepTally,
    /// The process exit code this outcome maps to.
    pub exit_code: i32,
}

fn unknown_verdict() -> Verdict {
    Verdict::Inconclusive
}

impl Summary {
    /// "PASS — 3 of 3 graded runs met the expectation (pass rate 100%, required 100%)": the
    /// verdict and its reason, the same words in every format.
    pub fn headline(&self) -> String {
        format!("{} — {}", self.verdict, self.reason)
    }
}

/// The graded report of a whole scenario.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScenarioReport {
    /// Scenario name.
    pub scenario: String,
    /// File it came from.
    pub file: String,
    /// What it expects.
    pub expect: crate::scenario::Expectation,
    /// Its RTO, microseconds.
    pub rto_us: u64,
    /// An error that stopped everything before any run (preflight), if any.
    pub error: Option<String>,
    /// The runs.
    pub runs: Vec<RunReport>,
    /// Figures over the runs.
    pub summary: Summary,
}

/// Exit codes, so CI can tell outcomes apart.
pub mod exit {
    /// Every run met its expectation.
    pub const OK: i32 = 0;
    /// An RTO was breached, or the service never recovered (pass rate below the threshold).
    pub const BREACH: i32 = 1;
    /// Invalid input or usage.
    pub const INVALID: i32 = 2;
    /// Inconclusive or aborted.
    pub const INCONCLUSIVE: i32 = 3;
    /// Infrastructure failure: agent missing, fault not applied or not reverted.
    pub const INFRA: i32 = 4;
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The exit code of a scenario's verdict: PASS 0, FAIL 1, INCONCLUSIVE and ABORTED 3,
/// ERROR 4. (NO_IMPACT is a run's verdict, never a scenario's; it maps like a PASS.)
pub fn exit_code(verdict: Verdict) -> i32 {
    match verdict {
        Verdict::Pass | Verdict::NoImpact => exit::OK,
        Verdict::Fail => exit::BREACH,
        Verdict::Inconclusive | Verdict::Aborted => exit::INCONCLUSIVE,
        Verdict::Error => exit::INFRA,
    }
}

/// Summarises runs: the scenario's verdict ([`crate::grade::judge`]), pass rate, recovery
/// percentiles and the exit code.
pub fn summarize(runs: &[RunReport], min_pass_rate: f64, preflight_error: bool) -> Summary {
    let mut tally = Tally {
        preflight_error,
        ..Tally::default()
    };
    for r in runs {
        // A fault that failed to revert is an ERROR whatever the grade said.
        let verdict = if r.faults.iter().any(|f| f.error.is_some()) {
            Verdict::Error
        } else {
            r.verdict
        };
        tally.add(verdict, r.met_expectation);
    }
    let judged = judge(&tally, min_pass_rate);
    let mut recoveries: Vec<u64> = runs
        .iter()
        .filter_map(|r| r.grade.as_ref()?.time_to_recover.map(|m| m.us))
        .collect();
    recoveries.sort_unstable();
    Summary {
        exit_code: exit_code(judged.verdict),
        verdict: judged.verdict,
        reason: judged.reason,
        runs: runs.len() as u32,
        passed: tally.met,
        graded: tally.graded(),
        inconclusive: tally.inconclusive,
        aborted: tally.aborted,
        pass_rate: judged.pass_rate.unwrap_or(0.0),
        min_pass_rate,
        recovery_p50_us: percentile(&recoveries, 50.0),
        recovery_p95_us: percentile(&recoveries, 95.0),
        recovery_max_us: recoveries.last().copied(),
        remediation_steps: crate::remediation::StepTally::of(
            runs.iter().flat_map(|r| &r.remediation_steps),
        ),
    }
}

/// "bytes_written=800 free_after=200"
fn figures_text(figures: &std::collections::BTreeMap<String, i64>) -> String {
    let parts: Vec<String> = figures.iter().map(|(k, v)| format!("{k}={v}")).collect();
    parts.join(" ")
}

/// One probe's own figures and verdict: "impact +6.0ms, recovered +36.0ms [25.0ms .. 36.0ms],
/// 1 relapse: PASS"; `None` for a run that was not graded.
/// How a probe sampled: its seed (to sample at the same moments again) and the checks it
/// skipped because `max_in_flight` were still running.
fn sampling_text(p: &crate::timeline::ProbeTimeline) -> String {
    let mut parts = Vec::new();
    if let Some(seed) = p.seed {
        parts.push(format!("seed {seed}"));
    }
    if p.skipped > 0 {
        parts.push(format!(
            "{} due checks skipped: max_in_flight checks were still running, so it sampled \
             more slowly than its interval",
            p.skipped
        ));
    }
    format!("sampling: {}", parts.join("; "))
}

pub fn probe_recovery_text(r: &crate::grade::ProbeRecovery) -> Option<String> {
    let verdict = r.verdict?;
    let mut parts = Vec::new();
    match (&r.impact, &r.recovered) {
        (None, _) => parts.push("never failed".to_string()),
        (Some(i), Some(m)) => {
            parts.push(format!("impact +{}", fmt_us(i.us)));
            parts.push(format!("recovered +{}", bracket(m)));
        }
        (Some(i), None) => {
            parts.push(format!("impact +{}", fmt_us(i.us)));
            parts.push("did not recover".into());
        }
    }
    if r.relapses > 0 {
        parts.push(format!(
            "{} relapse{}",
            r.relapses,
            if r.relapses == 1 { "" } else { "s" }
        ));
    }
    if let Some(p) = r.partial {
        parts.push(format!(
            "partial outage ({:.1}% of checks failed; recovery needed {} good checks in a row \
             after the last failure, and its bracket reaches as far into them as luck could)",
            f64::from(p.failed_permille) / 10.0,
            p.streak
        ));
    }
    Some(format!("{}: {verdict}", parts.join(", ")))
}

fn bracket(m: &Measured) -> String {
    format!(
        "{} [{} .. {}]",
        fmt_us(m.us),
        fmt_us(m.low_us),
        fmt_us(m.high_us)
    )
}

/// The human-readable report.
pub fn render_text(report: &ScenarioReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "scenario {} ({}) — RTO {}, expects {}",
        report.scenario,
        report.file,
        fmt_us(report.rto_us),
        report.expect
    );
    if let Some(e) = &report.error {
        let _ = writeln!(out, "  ERROR before any run: {e}");
    }
    for run in &report.runs {
        let _ = writeln!(
            out,
            "\nrun {} ({}): {} — {}",
            run.index, run.run_id, run.verdict, run.reason
        );
        if !run.targets.is_empty() {
            let _ = writeln!(out, "  targets:            {}", run.targets.join(", "));
        }
        for f in &run.faults {
            let applied = f.applied_text();
            let _ = writeln!(out, "  fault {} on {}: {applied}", f.kind, f.agent);
            if !f.evidence.is_empty() {
                let _ = writeln!(out, "    evidence: {}", f.evidence);
            }
            if !f.figures.is_empty() {
                let _ = writeln!(out, "    figures: {}", figures_text(&f.figures));
            }
            if let Some(r) = f.reverted_us {
                let _ = writeln!(
                    out,
                    "    reverted at +{}{}",
                    fmt_us(r),
                    if f.revert_evidence.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", f.revert_evidence)
                    }
                );
            }
            if !f.revert_figures.is_empty() {
                let _ = writeln!(
                    out,
                    "    revert figures: {}",
                    figures_text(&f.revert_figures)
                );
            }
            if let Some(e) = &f.error {
                let _ = writeln!(out, "    error: {e}");
            }
        }
        if let Some(g) = &run.grade {
            if let Some(d) = &g.time_to_detect {
                let _ = writeln!(out, "  time to detect:     {}", bracket(d));
            }
            if let Some(r) = &g.time_to_recover {
                let _ = writeln!(
                    out,
                    "  time to recover:    {}   (bracket: last failed sample .. first good sample)",
                    bracket(r)
                );
                if let Some(p) = &g.recovered_by {
                    let _ = writeln!(
                        out,
                        "  recovered last:     probe {p} (it set the time to recover)"
                    );
                }
            }
            if let Some(r) = g.recover_after_revert_us {
                let _ = writeln!(out, "  recover after revert: {}", fmt_us(r));
            }
        }
        for (what, text) in run.timeline_facts() {
            let _ = writeln!(out, "  {:<19} {text}", format!("{what}:"));
        }
        for step in run
            .remediation_steps
            .iter()
            .filter(|s| !matches!(s.outcome, crate::remediation::StepOutcome::Succeeded { .. }))
        {
            // Why a step failed is usually in its last lines.
            for line in step.output_lines(5) {
                let _ = writeln!(out, "    {} | {line}", step.name);
            }
        }
        for p in &run.probes {
            let failed = p.samples.iter().filter(|s| !s.ok).count();
            let _ = writeln!(
                out,
                "  probe {}: {} samples, {} failed{}",
                p.name,
                p.samples.len(),
                failed,
                p.samples
                    .iter()
                    .find(|s| !s.ok)
                    .map(|s| format!(" (first error: {})", s.error))
                    .unwrap_or_default()
            );
            let recovery = run
                .grade
                .as_ref()
                .and_then(|g| g.probes.iter().find(|r| r.probe == p.name));
            if let Some(line) = recovery.and_then(probe_recovery_text) {
                let _ = writeln!(out, "    {line}");
            }
            if p.skipped > 0 || p.seed.is_some() {
                let _ = writeln!(out, "    {}", sampling_text(p));
            }
        }
    }
    let s = &report.summary;
    let _ = writeln!(out, "\nsummary: {}", s.headline());
    if let (Some(p50), Some(p95), Some(max)) =
        (s.recovery_p50_us, s.recovery_p95_us, s.recovery_max_us)
    {
        let _ = writeln!(
            out,
            "recovery: p50 {}  p95 {}  max {}",
            fmt_us(p50),
            fmt_us(p95),
            fmt_us(max)
        );
    }
    if let Some(steps) = s.remediation_steps.line() {
        let _ = writeln!(out, "remediation steps: {steps}");
    }
    let _ = writeln!(out, "exit code: {}", s.exit_code);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(verdict: Verdict, met: bool, recover_us: Option<u64>) -> RunReport {
        RunReport {
            met_expectation: met,
            ..crate::fixtures::run("r", verdict, recover_us)
        }
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<u64> = (1..=20).collect();
        assert_eq!(percentile(&v, 50.0), Some(10));
        assert_eq!(percentile(&v, 95.0), Some(19));
        assert_eq!(percentile(&[7], 95.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn exit_codes_follow_precedence() {
        let pass = run(Verdict::Pass, true, Some(10));
        let fail = run(Verdict::Fail, false, Some(99));
        let inc = run(Verdict::Inconclusive, false, None);
        let err = run(Verdict::Error, false, None);
        assert_eq!(
            summarize(std::slice::from_ref(&pass), 1.0, false).exit_code,
            exit::OK
        );
        assert_eq!(
            summarize(&[pass.clone(), fail.clone()], 1.0, false).exit_code,
            exit::BREACH
        );
        assert_eq!(
            summarize(&[pass.clone(), fail.clone()], 0.5, false).exit_code,
            exit::OK
        );
        assert_eq!(
            summarize(&[pass.clone(), inc.clone()], 1.0, false).exit_code,
            exit::INCONCLUSIVE
        );
        assert_eq!(
            summarize(&[fail.clone(), inc], 1.0, false).exit_code,
            exit::BREACH
        );
        assert_eq!(summarize(&[fail, err], 1.0, false).exit_code, exit::INFRA);
        assert_eq!(summarize(&[], 1.0, true).exit_code, exit::INFRA);
    }

    #[test]
    fn unexpected_no_impact_is_a_breach_of_expectation() {
        let s = summarize(&[run(Verdict::NoImpact, false, None)], 1.0, false);
        assert_eq!(s.exit_code, exit::BREACH);
        let s = summarize(&[run(Verdict::NoImpact, true, None)], 1.0, false);
        assert_eq!(s.exit_code, exit::OK);
    }

    fn scenario(runs: Vec<RunReport>, min_pass_rate: f64, error: Option<&str>) -> ScenarioReport {
        ScenarioReport {
            scenario: "s".into(),
            file: "s.toml".into(),
            expect: crate::scenario::Expectation::Recovery,
            rto_us: 1_000_000,
            error: error.map(str::to_string),
            summary: summarize(&runs, min_pass_rate, error.is_some()),
            runs,
        }
    }

    #[test]
    fn the_summary_has_one_denominator_and_says_the_verdict() {
        let pass = run(Verdict::Pass, true, Some(10));
        let inc = run(Verdict::Inconclusive, false, None);
        let text = render_text(&scenario(vec![pass.clone(), pass, inc], 0.5, None));
        assert!(
            text.contains(
                "summary: PASS — 2 of 2 graded runs met the expectation (pass rate 100%, \
                 required 50%); 1 inconclusive run not counted\n"
            ),
            "{text}"
        );
        assert!(text.ends_with("exit code: 0\n"), "{text}");
    }

    #[test]
    fn a_preflight_error_is_no_run_not_zero_percent() {
        let r = scenario(vec![], 1.0, Some("agent web-1 is not connected"));
        assert_eq!(r.summary.exit_code, exit::INFRA);
        assert_eq!(r.summary.verdict, Verdict::Error);
        let text = render_text(&r);
        assert!(
            text.contains(
                "summary: ERROR — no run: preflight stopped the scenario before anything was \
                 injected"
            ),
            "{text}"
        );
        assert!(!text.contains("0/0") && !text.contains("0%"), "{text}");
    }

    #[test]
    fn apply_and_revert_figures_are_shown_apart() {
        let mut r = run(Verdict::Pass, true, Some(10));
        r.faults.push(FaultRecord {
            kind: "disk_fill".into(),
            agent: "app".into(),
            evidence: "wrote 800 bytes, 200 bytes left".into(),
            figures: [("free_after".to_string(), 200)].into_iter().collect(),
            revert_figures: [("free_after".to_string(), 1_000)].into_iter().collect(),
            reverted_us: Some(3_000_000),
            ..FaultRecord::default()
        });
        let text = render_text(&scenario(vec![r], 1.0, None));
        assert!(text.contains("    figures: free_after=200\n"), "{text}");
        assert!(
            text.contains("    revert figures: free_after=1000\n"),
            "{text}"
        );
    }

    #[test]
    fn the_probe_that_set_the_recovery_time_is_named_with_every_probes_recovery() {
        use crate::grade::ProbeRecovery;
        let m = |us| Measured {
            us,
            low_us: us - 5_000,
            high_us: us,
        };
        let mut r = run(Verdict::Pass, true, Some(300_000));
        for name in ["api", "db"] {
            r.probes.push(ProbeTimeline {
                name: name.into(),
                recovered_after: 2,
                skipped: 0,
                seed: None,
                samples: vec![],
            });
        }
        let g = r.grade.as_mut().unwrap();
        g.recovered_by = Some("db".into());
        g.probes = vec![
            ProbeRecovery {
                probe: "api".into(),
                impact: Some(m(10_000)),
                recovered: Some(m(120_000)),
                relapses: 1,
                partial: None,
                verdict: Some(Verdict::Pass),
            },
            ProbeRecovery {
                probe: "db".into(),
                impact: Some(m(20_000)),
                recovered: Some(m(300_000)),
                relapses: 0,
                partial: None,
                verdict: Some(Verdict::Pass),
            },
        ];
        let text = render_text(&scenario(vec![r], 1.0, None));
        assert!(
            text.contains("  recovered last:     probe db (it set the time to recover)\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "  probe api: 0 samples, 0 failed\n    impact +10.0ms, recovered +120.0ms \
                 [115.0ms .. 120.0ms], 1 relapse: PASS\n"
            ),
            "{text}"
        );
        assert!(text.contains("    impact +20.0ms, recovered +300.0ms [295.0ms .. 300.0ms]: PASS"));
    }

    #[test]
    fn summary_figures() {
        let runs = [
            run(Verdict::Pass, true, Some(300)),
            run(Verdict::Pass, true, Some(100)),
            run(Verdict::Fail, false, Some(900)),
        ];
        let s = summarize(&runs, 0.5, false);
        assert_eq!(s.passed, 2);
        assert!((s.pass_rate - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(s.recovery_p50_us, Some(300));
        assert_eq!(s.recovery_max_us, Some(900));
    }
}
