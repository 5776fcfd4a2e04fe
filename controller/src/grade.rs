//! Grading: a pure function from probe samples, fault moments and the RTO to a verdict with
//! its figures. No I/O, no clock: everything it needs is in its arguments.

use serde::{Deserialize, Serialize};

use crate::scenario::{Expectation, RecoveryMode};
pub mod detect;
mod recovery;

use recovery::probe_recovery;

use crate::timeline::{Moment, ProbeTimeline};

/// The outcome of one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Verdict {
    /// Recovered within the RTO.
    Pass,
    /// Recovered too late, or not at all inside the observation window.
    Fail,
    /// No probe ever failed after the fault took effect.
    NoImpact,
    /// The service was not healthy before the fault (steady state or right before injection).
    Inconclusive,
    /// A guardrail or an operator stopped the run.
    Aborted,
    /// The fault could not be applied (or reverted), or a target was missing.
    Error,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::NoImpact => "NO_IMPACT",
            Verdict::Inconclusive => "INCONCLUSIVE",
            Verdict::Aborted => "ABORTED",
            Verdict::Error => "ERROR",
        })
    }
}

/// A figure measured from the fault's effect, with the interval the truth lies in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Measured {
    /// Best estimate, microseconds after the fault took effect.
    pub us: u64,
    /// The truth is no earlier than this (microseconds after the effect).
    pub low_us: u64,
    /// The truth is no later than this (microseconds after the effect).
    pub high_us: u64,
}

/// Recovery of one probe: the bracket runs from the start of its last failed check to the first
/// good answer after it, further after a partial outage (see `grade/recovery.rs`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeRecovery {
    /// The probe's name.
    pub probe: String,
    /// When its first failure after the effect was seen; `None` if it never failed.
    pub impact: Option<Measured>,
    /// When it recovered; `None` if it failed and never recovered.
    pub recovered: Option<Measured>,
    /// Failed checks after it first looked recovered (`recovered_after` good checks in a row):
    /// flapping. Its recovery is after the last of them.
    pub relapses: u32,
    /// Set when the outage was partial (some checks kept passing, as through a balancer with one
    /// bad backend): recovery then needed a longer run of good checks, see `grade/recovery.rs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<Partial>,
    /// This probe's own verdict, by the run's rules: PASS, FAIL or NO_IMPACT; `None` for runs
    /// that were not graded (and in reports written before probes had one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
}

/// A partial outage: how much failed, and the streak its recovery had to show.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partial {
    /// Failed checks per thousand, from the first failed check to the last.
    pub failed_permille: u32,
    /// Good checks in a row that recovery required after the last failure: enough that so many
    /// lucky ones at that failure ratio would come by chance less than 0.1 % of the time. The
    /// bracket's high end reaches as far into them.
    pub streak: u32,
}

/// Figures and verdict of one graded run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grade {
    /// The verdict.
    pub verdict: Verdict,
    /// Why, in one sentence.
    pub reason: String,
    /// From the effect to the first failed sample's answer: how long until anyone could know.
    pub time_to_detect: Option<Measured>,
    /// From the effect to the moment every probe had recovered.
    pub time_to_recover: Option<Measured>,
    /// From the revert to recovery, for faults that hold until reverted.
    pub recover_after_revert_us: Option<u64>,
    /// The probe whose recovery came last, and so set the time to recover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered_by: Option<String>,
    /// Per-probe detail.
    pub probes: Vec<ProbeRecovery>,
}

/// A stage of recovery (`[[stages]]`), graded on its own probes against its own RTO.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageGrade {
    /// The stage's name.
    pub name: String,
    /// Its objective, µs.
    pub rto_us: u64,
    /// Its verdict, by the run's rules over its probes.
    pub verdict: Verdict,
    /// Why, in one sentence.
    pub reason: String,
    /// When it was reached: the last of its probes recovered.
    pub time_to_recover: Option<Measured>,
}

impl StageGrade {
    /// One line for reports: `failover: PASS, reached in 312.0ms [290.0ms .. 330.0ms] (RTO 2.000s)`.
    pub fn line(&self) -> String {
        let reached = match &self.time_to_recover {
            Some(m) => format!(
                "reached in {} [{} .. {}]",
                fmt_us(m.us),
                fmt_us(m.low_us),
                fmt_us(m.high_us)
            ),
            None if self.verdict == Verdict::NoImpact => "no impact".into(),
            None => "not reached".into(),
        };
        format!(
            "{}: {}, {reached} (RTO {})",
            self.name,
            self.verdict,
            fmt_us(self.rto_us)
        )
    }
}

/// What the grader needs besides the samples.
#[derive(Clone, Copy, Debug)]
pub struct GradeInput<'a> {
    /// Every probe's samples.
    pub probes: &'a [ProbeTimeline],
    /// When the fault took effect.
    pub inject: Moment,
    /// When the fault was reverted, for faults that hold.
    pub revert_us: Option<u64>,
    /// The recovery time objective.
    pub rto_us: u64,
    /// The end of the observation window (microseconds since the epoch).
    pub window_end_us: u64,
    /// What the scenario expects the fault to do.
    pub expect: Expectation,
    /// Whether a recovery after the revert counts.
    pub recovery: RecoveryMode,
}

/// Grades a run whose fault was applied. Runs stopped earlier (preflight, steady state, abort)
/// get their verdict from the engine without grading.
///
/// The rules, in order:
/// - a probe failure that ended before the fault could have taken effect: INCONCLUSIVE;
/// - no probe failed after the effect: NO_IMPACT (what the scenario wanted with
///   `expect = "no_impact"`, a missed or absorbed fault with `expect = "recovery"`);
/// - a probe failed although the scenario expects no impact: FAIL;
/// - a probe did not recover inside the window: FAIL;
/// - the service came back only after the fault was reverted, and the scenario does not say
///   that is what it tests (`recovery = "after_revert"`): FAIL, whatever the RTO, because a
///   service that is back because its fault was lifted has not healed;
/// - recovery within the RTO: PASS; over it: FAIL.
///
/// Each probe gets its own verdict by the same rules; the run's is the worst of them.
pub fn grade(input: &GradeInput<'_>) -> Grade {
    let t0 = input.inject.at_us;
    // A failure that ended before the fault could have taken effect was not caused by it.
    let earliest_effect = t0.saturating_sub(input.inject.uncertainty_us);
    for p in input.probes {
        if let Some(s) = p
            .samples
            .iter()
            .find(|s| !s.ok && s.end_us < earliest_effect)
        {
            return early(
                Verdict::Inconclusive,
                format!(
                    "probe {} failed {} before the fault took effect ({}); the service was not healthy",
                    p.name,
                    fmt_us(t0 - s.end_us),
                    s.error
                ),
                input.probes,
            );
        }
    }

    let probes: Vec<ProbeRecovery> = input
        .probes
        .iter()
        .map(|p| {
            let mut r = probe_recovery(p, input);
            r.verdict = Some(probe_verdict(&r, input));
            r
        })
        .collect();
    let impacted: Vec<&ProbeRecovery> = probes.iter().filter(|p| p.impact.is_some()).collect();
    let graded = |verdict, reason| Grade {
        verdict,
        reason,
        time_to_detect: None,
        time_to_recover: None,
        recover_after_revert_us: None,
        recovered_by: None,
        probes: probes.clone(),
    };
    if impacted.is_empty() {
        let reason = match input.expect {
            Expectation::NoImpact => {
                "no probe failed after the fault took effect, as the scenario expects".into()
            }
            Expectation::Recovery => "no probe failed after the fault took effect, but the \
                 scenario expects recovery: the fault missed, or the service absorbed it"
                .into(),
        };
        return graded(Verdict::NoImpact, reason);
    }
    let time_to_detect = impacted
        .iter()
        .filter_map(|p| p.impact)
        .min_by_key(|m| m.us);
    let stuck = impacted.iter().find(|p| p.recovered.is_none());
    // The service is restored when the last probe is.
    let last = impacted
        .iter()
        .filter(|p| p.recovered.is_some())
        .max_by_key(|p| p.recovered.map(|m| m.us));
    let time_to_recover = match stuck {
        Some(_) => None,
        None => last.and_then(|p| p.recovered),
    };
    // Only a recovery that came after the revert is a recovery "after the revert".
    let recover_after_revert_us = time_to_recover.and_then(|m| after_revert(&m, input));
    let (verdict, reason) = if input.expect == Expectation::NoImpact {
        let first = impacted
            .iter()
            .min_by_key(|p| p.impact.map(|m| m.us))
            .expect("at least one probe was impacted");
        (
            Verdict::Fail,
            format!(
                "impact where none was expected: probe {} failed {} after the fault took effect{}",
                first.probe,
                fmt_us(first.impact.map_or(0, |m| m.us)),
                match time_to_recover {
                    Some(m) => format!("; the service recovered in {}", fmt_us(m.us)),
                    None => "; the service did not recover within the observation window".into(),
                }
            ),
        )
    } else if let Some(stuck) = stuck {
        let partial = stuck
            .partial
            .map(|p| {
                format!(
                    ": it kept failing now and then ({:.1}% of its checks from the first failure \
                     to the last), and recovery needs {} good checks in a row after the last",
                    f64::from(p.failed_permille) / 10.0,
                    p.streak
                )
            })
            .unwrap_or_default();
        (
            Verdict::Fail,
            format!(
                "probe {} did not recover within the observation window ({} after the \
                 fault){partial}",
                stuck.probe,
                fmt_us(input.window_end_us.saturating_sub(t0))
            ),
        )
    } else {
        let m = time_to_recover.expect("every impacted probe recovered");
        let over = m.us > input.rto_us;
        match (recover_after_revert_us, input.recovery) {
            (Some(after), RecoveryMode::SelfHealing) => (
                Verdict::Fail,
                format!(
                    "recovered only after the fault was reverted ({} after the revert), in {} \
                     (RTO {}): the service did not heal by itself",
                    fmt_us(after),
                    fmt_us(m.us),
                    fmt_us(input.rto_us)
                ),
            ),
            (after, _) => {
                let after = after
                    .map(|us| format!(", {} after the revert", fmt_us(us)))
                    .unwrap_or_default();
                if over {
                    (
                        Verdict::Fail,
                        format!(
                            "recovered in {}{after}, over the RTO of {}",
                            fmt_us(m.us),
                            fmt_us(input.rto_us)
                        ),
                    )
                } else {
                    (
                        Verdict::Pass,
                        format!(
                            "recovered in {}{after} (RTO {})",
                            fmt_us(m.us),
                            fmt_us(input.rto_us)
                        ),
                    )
                }
            }
        }
    };
    Grade {
        time_to_detect,
        time_to_recover,
        recover_after_revert_us,
        recovered_by: time_to_recover.and(last.map(|p| p.probe.clone())),
        ..graded(verdict, reason)
    }
}

/// How long after the revert a recovery came, when it came after it.
fn after_revert(recovered: &Measured, input: &GradeInput<'_>) -> Option<u64> {
    let at = input.inject.at_us + recovered.us;
    input.revert_us.filter(|r| at >= *r).map(|r| at - r)
}

/// One probe's verdict by the run's rules (see [`grade`]).
fn probe_verdict(p: &ProbeRecovery, input: &GradeInput<'_>) -> Verdict {
    let Some(_) = p.impact else {
        return Verdict::NoImpact;
    };
    let Some(recovered) = p.recovered else {
        return Verdict::Fail;
    };
    let healed_by_revert =
        input.recovery == RecoveryMode::SelfHealing && after_revert(&recovered, input).is_some();
    if input.expect == Expectation::NoImpact || healed_by_revert || recovered.us > input.rto_us {
        Verdict::Fail
    } else {
        Verdict::Pass
    }
}

/// Whether a run's verdict is what the scenario expects: a PASS always is; a NO_IMPACT only
/// when the scenario expects no impact; nothing else ever is.
pub fn meets(expect: Expectation, verdict: Verdict) -> bool {
    match verdict {
        Verdict::Pass => true,
        Verdict::NoImpact => expect == Expectation::NoImpact,
        Verdict::Fail | Verdict::Inconclusive | Verdict::Aborted | Verdict::Error => false,
    }
}

/// True once every probe that failed after the effect has recovered, or none failed and the
/// window is over. The engine uses it to stop observing early.
pub fn settled(input: &GradeInput<'_>) -> bool {
    let mut any_impact = false;
    for p in input.probes {
        let r = probe_recovery(p, input);
        if r.impact.is_some() {
            any_impact = true;
            if r.recovered.is_none() {
                return false;
            }
        }
    }
    any_impact
}

fn early(verdict: Verdict, reason: String, probes: &[ProbeTimeline]) -> Grade {
    Grade {
        verdict,
        reason,
        time_to_detect: None,
        time_to_recover: None,
        recover_after_revert_us: None,
        recovered_by: None,
        probes: probes
            .iter()
            .map(|p| ProbeRecovery::unmeasured(&p.name))
            .collect(),
    }
}

impl ProbeRecovery {
    /// A probe with nothing measured (yet): no impact, no recovery, no verdict.
    pub fn unmeasured(probe: &str) -> ProbeRecovery {
        ProbeRecovery {
            probe: probe.to_string(),
            impact: None,
            recovered: None,
            relapses: 0,
            partial: None,
            verdict: None,
        }
    }
}

/// How a scenario's runs came out, counted: the input of [`judge`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Graded runs (PASS, FAIL, NO_IMPACT) that met the expectation.
    pub met: u32,
    /// Graded runs that did not.
    pub not_met: u32,
    /// INCONCLUSIVE runs: the service was not healthy before the fault; nothing was measured.
    pub inconclusive: u32,
    /// ABORTED runs: an operator or a guardrail stopped them (and the scenario).
    pub aborted: u32,
    /// ERROR runs: a fault could not be applied or reverted, a target was missing.
    pub errors: u32,
    /// Preflight stopped the scenario before its first run.
    pub preflight_error: bool,
}

impl Tally {
    /// The graded runs: the pass rate's denominator.
    pub fn graded(&self) -> u32 {
        self.met + self.not_met
    }

    /// Every run made.
    pub fn runs(&self) -> u32 {
        self.graded() + self.inconclusive + self.aborted + self.errors
    }

    /// Counts one run.
    pub fn add(&mut self, verdict: Verdict, met_expectation: bool) {
        match verdict {
            Verdict::Pass | Verdict::Fail | Verdict::NoImpact if met_expectation => self.met += 1,
            Verdict::Pass | Verdict::Fail | Verdict::NoImpact => self.not_met += 1,
            Verdict::Inconclusive => self.inconclusive += 1,
            Verdict::Aborted => self.aborted += 1,
            Verdict::Error => self.errors += 1,
        }
    }
}

/// The verdict of a whole scenario, from its runs.
#[derive(Clone, Debug, PartialEq)]
pub struct ScenarioVerdict {
    /// PASS, FAIL, INCONCLUSIVE, ABORTED or ERROR (never NO_IMPACT: a scenario either met its
    /// expectation or did not).
    pub verdict: Verdict,
    /// Why, in one sentence, with the arithmetic.
    pub reason: String,
    /// met / graded; `None` when no run was graded.
    pub pass_rate: Option<f64>,
}

/// The one place where runs add up to a scenario's verdict.
///
/// - The pass rate is met / graded: only PASS, FAIL and NO_IMPACT runs measured something.
///   INCONCLUSIVE and ABORTED runs are left out of it, and are not retried.
/// - ERROR (a run, or preflight): ERROR. The gate could not do its job; fix that first.
/// - A pass rate below `min_pass_rate`: FAIL.
/// - Any ABORTED run: ABORTED (the game day was stopped before it was done).
/// - No graded run at all: INCONCLUSIVE.
/// - INCONCLUSIVE runs that could have changed the outcome (counted as failures, the pass
///   rate would be below `min_pass_rate`): INCONCLUSIVE. Otherwise they do not matter.
/// - Otherwise: PASS.
pub fn judge(t: &Tally, min_pass_rate: f64) -> ScenarioVerdict {
    let graded = t.graded();
    let pass_rate = (graded > 0).then(|| f64::from(t.met) / f64::from(graded));
    let below = |met: u32, of: u32| f64::from(met) + 1e-9 < min_pass_rate * f64::from(of);
    let pct = |x: f64| format!("{:.0}%", x * 100.0);
    let measured = match pass_rate {
        Some(rate) => format!(
            "{} of {graded} graded run{} met the expectation (pass rate {}, required {})",
            t.met,
            plural(graded),
            pct(rate),
            pct(min_pass_rate)
        ),
        None => "no run was graded".into(),
    };
    let not_counted = match (t.inconclusive, t.aborted) {
        (0, 0) => String::new(),
        (i, 0) => format!("; {i} inconclusive run{} not counted", plural(i)),
        (0, a) => format!("; {a} aborted run{} not counted", plural(a)),
        (i, a) => format!(
            "; {i} inconclusive and {a} aborted run{} not counted",
            plural(i + a)
        ),
    };
    let (verdict, reason) = if t.preflight_error && t.runs() == 0 {
        (
            Verdict::Error,
            "no run: preflight stopped the scenario before anything was injected".to_string(),
        )
    } else if t.errors > 0 || t.preflight_error {
        (
            Verdict::Error,
            format!(
                "{} run{} ended in ERROR (a fault not applied or not reverted, a target \
                 missing); {measured}{not_counted}",
                t.errors.max(1),
                plural(t.errors.max(1))
            ),
        )
    } else if graded > 0 && below(t.met, graded) {
        (Verdict::Fail, format!("{measured}{not_counted}"))
    } else if t.aborted > 0 {
        (
            Verdict::Aborted,
            format!("stopped before all runs were made; {measured}{not_counted}"),
        )
    } else if graded == 0 {
        (
            Verdict::Inconclusive,
            format!(
                "no run was graded: {} inconclusive run{}, nothing measured",
                t.inconclusive,
                plural(t.inconclusive)
            ),
        )
    } else if below(t.met, graded + t.inconclusive) {
        (
            Verdict::Inconclusive,
            format!(
                "{measured}, but the {} inconclusive run{} could have changed that: counted as \
                 failures, the pass rate would be {}",
                t.inconclusive,
                plural(t.inconclusive),
                pct(f64::from(t.met) / f64::from(graded + t.inconclusive))
            ),
        )
    } else {
        (Verdict::Pass, format!("{measured}{not_counted}"))
    };
    ScenarioVerdict {
        verdict,
        reason,
        pass_rate,
    }
}

fn plural(n: u32) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Formats microseconds for people: "850µs", "12.3ms", "1.250s".
pub fn fmt_us(us: u64) -> String {
    if us < 1_000 {
        format!("{us}µs")
    } else if us < 1_000_000 {
        format!("{:.1}ms", us as f64 / 1e3)
    } else {
        format!("{:.3}s", us as f64 / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::Sample;

    const MS: u64 = 1_000;

    /// A probe sampled every 10 ms from t=0, each check taking 1 ms, with `pattern` giving
    /// ok ('+') or failed ('-') per sample.
    fn probe(name: &str, recovered_after: u32, pattern: &str) -> ProbeTimeline {
        ProbeTimeline {
            name: name.into(),
            recovered_after,
            skipped: 0,
            seed: None,
            samples: pattern
                .chars()
                .enumerate()
                .map(|(i, c)| Sample {
                    start_us: i as u64 * 10 * MS,
                    end_us: i as u64 * 10 * MS + MS,
                    ok: c == '+',
                    error: if c == '+' {
                        String::new()
                    } else {
                        "refused".into()
                    },
                })
                .collect(),
        }
    }

    fn input(probes: &[ProbeTimeline], inject_ms: u64, rto_ms: u64) -> GradeInput<'_> {
        GradeInput {
            probes,
            inject: Moment {
                at_us: inject_ms * MS,
                uncertainty_us: 100,
            },
            revert_us: None,
            rto_us: rto_ms * MS,
            window_end_us: 10_000 * MS,
            expect: Expectation::Recovery,
            recovery: RecoveryMode::SelfHealing,
        }
    }

    #[test]
    fn pass_with_bracket_around_recovery() {
        // Inject at 25 ms; samples 3..=5 (30..50 ms) fail; 60 ms is the first good one.
        let p = [probe("http", 3, "+++---+++++")];
        let g = grade(&input(&p, 25, 100));
        assert_eq!(g.verdict, Verdict::Pass, "{}", g.reason);
        let r = g.time_to_recover.unwrap();
        assert_eq!(r.us, 36 * MS, "the first good answer arrived at 61 ms");
        assert_eq!(r.low_us, 25 * MS, "last failed sample began at 50 ms");
        assert_eq!(r.high_us, 36 * MS, "first good answer arrived at 61 ms");
        let d = g.time_to_detect.unwrap();
        assert_eq!(d.us, 6 * MS, "first failure answered at 31 ms");
    }

    #[test]
    fn fail_when_over_rto() {
        let p = [probe("http", 3, "+++---+++++")];
        let g = grade(&input(&p, 25, 30));
        assert_eq!(g.verdict, Verdict::Fail);
        assert!(g.reason.contains("over the RTO"), "{}", g.reason);
    }

    #[test]
    fn rto_boundary_is_inclusive() {
        let p = [probe("http", 3, "+++---+++++")];
        assert_eq!(grade(&input(&p, 25, 36)).verdict, Verdict::Pass);
        assert_eq!(grade(&input(&p, 25, 35)).verdict, Verdict::Fail);
    }

    #[test]
    fn no_impact_when_nothing_failed() {
        let p = [probe("http", 3, "++++++++")];
        let g = grade(&input(&p, 25, 100));
        assert_eq!(g.verdict, Verdict::NoImpact);
        assert!(g.time_to_recover.is_none());
    }

    #[test]
    fn never_recovered_fails() {
        let p = [probe("http", 3, "+++------++")];
        let g = grade(&input(&p, 25, 10_000));
        assert_eq!(g.verdict, Verdict::Fail);
        assert!(g.reason.contains("did not recover"), "{}", g.reason);
        assert!(g.time_to_detect.is_some());
    }

    #[test]
    fn flapping_recovery_counts_from_the_last_failure() {
        // Recovers at sample 4 but fails again at 6; recovery comes after that last failure
        // (70 ms). Some checks passed between the failures: a partial outage, whose good run
        // must be longer than luck explains (18 at one failure in three).
        let p = [probe("http", 3, "+++-++-++++++++++++++++++")];
        let g = grade(&input(&p, 25, 1_000));
        assert_eq!(g.verdict, Verdict::Pass);
        let r = g.time_to_recover.unwrap();
        assert_eq!(r.us, 46 * MS);
        assert_eq!(r.low_us, 35 * MS, "the flap at 60 ms is the last failure");
    }

    #[test]
    fn a_probe_that_keeps_flapping_fails_and_says_why() {
        let p = [probe("http", 3, "+++-+++-+++-+++-+++-+++")];
        let g = grade(&input(&p, 25, 10_000));
        assert_eq!(g.verdict, Verdict::Fail);
        assert!(
            g.reason
                .contains("kept failing now and then (29.4% of its checks"),
            "{}",
            g.reason
        );
    }

    #[test]
    fn relapses_after_recovery_are_counted() {
        let p = [probe("http", 2, "++--++++-+")];
        let g = grade(&input(&p, 15, 1_000));
        assert_eq!(g.probes[0].relapses, 1);
    }

    #[test]
    fn impact_before_injection_is_inconclusive() {
        let p = [probe("http", 3, "+-++--++++")];
        let g = grade(&input(&p, 35, 1_000));
        assert_eq!(g.verdict, Verdict::Inconclusive);
        assert!(g.reason.contains("before the fault"), "{}", g.reason);
    }

    #[test]
    fn a_failure_straddling_the_injection_counts_as_impact() {
        // Sample 3 runs 30..31 ms; the fault took effect at 30.5 ms.
        let p = [probe("http", 2, "+++-+++")];
        let mut i = input(&p, 30, 1_000);
        i.inject.at_us = 30 * MS + 500;
        let g = grade(&i);
        assert_eq!(g.verdict, Verdict::Pass);
        assert_eq!(g.time_to_detect.unwrap().us, 500);
    }

    #[test]
    fn service_is_restored_when_the_last_probe_is() {
        let p = [
            probe("fast", 2, "++--++++++"),
            probe("slow", 2, "++-----+++"),
        ];
        let g = grade(&input(&p, 15, 1_000));
        assert_eq!(g.verdict, Verdict::Pass);
        assert_eq!(g.time_to_recover.unwrap().us, 56 * MS);
        assert_eq!(g.time_to_detect.unwrap().us, 6 * MS);
    }

    #[test]
    fn a_probe_that_never_failed_does_not_hold_recovery_back() {
        let p = [probe("a", 2, "++--+++"), probe("b", 2, "+++++++")];
        assert_eq!(grade(&input(&p, 15, 1_000)).verdict, Verdict::Pass);
    }

    #[test]
    fn incomplete_streak_at_window_end_is_not_recovered() {
        let p = [probe("http", 3, "++---++")];
        let mut i = input(&p, 15, 10_000);
        i.window_end_us = 70 * MS;
        assert_eq!(grade(&i).verdict, Verdict::Fail);
        assert!(!settled(&i));
    }

    #[test]
    fn samples_after_the_window_are_ignored() {
        let p = [probe("http", 2, "++----++")];
        let mut i = input(&p, 15, 10_000);
        i.window_end_us = 55 * MS;
        assert_eq!(grade(&i).verdict, Verdict::Fail);
    }

    #[test]
    fn recovery_after_revert_is_measured_from_the_revert() {
        let p = [probe("http", 2, "++----+++")];
        let mut i = input(&p, 15, 1_000);
        i.revert_us = Some(50 * MS);
        let g = grade(&i);
        assert_eq!(g.recover_after_revert_us, Some(11 * MS));
    }

    #[test]
    fn recovery_before_the_revert_is_not_after_it() {
        let p = [probe("http", 2, "++--++++")];
        let mut i = input(&p, 15, 1_000);
        i.revert_us = Some(70 * MS);
        assert_eq!(grade(&i).recover_after_revert_us, None);
    }

    #[test]
    fn a_recovery_that_only_came_with_the_revert_is_not_a_pass() {
        // Held from 15 ms to the revert at 75 ms; back at 81 ms, well within a 1 s RTO.
        let p = [probe("http", 2, "++------++")];
        let mut i = input(&p, 15, 1_000);
        i.revert_us = Some(75 * MS);
        let g = grade(&i);
        assert_eq!(g.verdict, Verdict::Fail, "{}", g.reason);
        assert_eq!(
            g.reason,
            "recovered only after the fault was reverted (6.0ms after the revert), in 66.0ms \
             (RTO 1.000s): the service did not heal by itself"
        );
        assert_eq!(g.recover_after_revert_us, Some(6 * MS));
        assert_eq!(g.probes[0].verdict, Some(Verdict::Fail));
        // Also over the RTO: the revert is still the reason given.
        i.rto_us = 30 * MS;
        assert!(grade(&i)
            .reason
            .starts_with("recovered only after the fault was reverted"));
    }

    #[test]
    fn recovery_after_the_revert_passes_when_that_is_what_the_scenario_tests() {
        let p = [probe("http", 2, "++------++")];
        let mut i = input(&p, 15, 1_000);
        i.revert_us = Some(75 * MS);
        i.recovery = RecoveryMode::AfterRevert;
        let g = grade(&i);
        assert_eq!(g.verdict, Verdict::Pass, "{}", g.reason);
        assert_eq!(
            g.reason,
            "recovered in 66.0ms, 6.0ms after the revert (RTO 1.000s)"
        );
        i.rto_us = 30 * MS;
        let g = grade(&i);
        assert_eq!(g.verdict, Verdict::Fail);
        assert_eq!(
            g.reason,
            "recovered in 66.0ms, 6.0ms after the revert, over the RTO of 30.0ms"
        );
    }

    #[test]
    fn healing_before_the_revert_is_healing() {
        // Back at 61 ms while the fault held until 90 ms.
        let p = [probe("http", 2, "++----++++")];
        let mut i = input(&p, 15, 1_000);
        i.revert_us = Some(90 * MS);
        let g = grade(&i);
        assert_eq!(g.verdict, Verdict::Pass, "{}", g.reason);
        assert_eq!(g.recover_after_revert_us, None);
    }

    #[test]
    fn impact_where_none_was_expected_is_a_fail() {
        let p = [probe("http", 2, "+++--+++")];
        let mut i = input(&p, 25, 1_000);
        i.expect = Expectation::NoImpact;
        let g = grade(&i);
        assert_eq!(g.verdict, Verdict::Fail, "never a PASS: {}", g.reason);
        assert_eq!(
            g.reason,
            "impact where none was expected: probe http failed 6.0ms after the fault took \
             effect; the service recovered in 26.0ms"
        );
        assert!(!meets(Expectation::NoImpact, g.verdict));
        assert_eq!(g.probes[0].verdict, Some(Verdict::Fail));
        let never = [probe("http", 2, "+++-----")];
        let mut i = input(&never, 25, 1_000);
        i.expect = Expectation::NoImpact;
        assert!(grade(&i)
            .reason
            .ends_with("did not recover within the observation window"));
    }

    #[test]
    fn no_impact_says_what_the_scenario_expected() {
        let p = [probe("http", 3, "++++++++")];
        let mut i = input(&p, 25, 100);
        let g = grade(&i);
        assert_eq!(g.verdict, Verdict::NoImpact);
        assert!(
            g.reason.contains("but the scenario expects recovery"),
            "{}",
            g.reason
        );
        assert!(!meets(i.expect, g.verdict));
        i.expect = Expectation::NoImpact;
        let g = grade(&i);
        assert_eq!(g.verdict, Verdict::NoImpact);
        assert!(
            g.reason.ends_with("as the scenario expects"),
            "{}",
            g.reason
        );
        assert!(meets(i.expect, g.verdict));
    }

    #[test]
    fn meeting_the_expectation_follows_from_the_verdict() {
        use Expectation::{NoImpact, Recovery};
        for (expect, verdict, met) in [
            (Recovery, Verdict::Pass, true),
            (Recovery, Verdict::Fail, false),
            (Recovery, Verdict::NoImpact, false),
            (NoImpact, Verdict::NoImpact, true),
            (NoImpact, Verdict::Fail, false),
            (NoImpact, Verdict::Pass, true),
        ] {
            assert_eq!(meets(expect, verdict), met, "{expect:?} {verdict}");
        }
        for v in [Verdict::Inconclusive, Verdict::Aborted, Verdict::Error] {
            assert!(!meets(Recovery, v) && !meets(NoImpact, v), "{v}");
        }
    }

    #[test]
    fn the_probe_that_recovered_last_is_named_and_each_probe_has_a_verdict() {
        let p = [
            probe("fast", 2, "++--++++++"),
            probe("slow", 2, "++-----+++"),
            probe("calm", 2, "++++++++++"),
        ];
        let mut i = input(&p, 15, 40);
        let g = grade(&i);
        assert_eq!(g.recovered_by.as_deref(), Some("slow"));
        let verdicts: Vec<Option<Verdict>> = g.probes.iter().map(|p| p.verdict).collect();
        // slow is back at 71 ms: 56 ms after the fault, over the 40 ms RTO.
        assert_eq!(
            verdicts,
            [
                Some(Verdict::Pass),
                Some(Verdict::Fail),
                Some(Verdict::NoImpact)
            ]
        );
        assert_eq!(g.verdict, Verdict::Fail);
        i.rto_us = 1_000 * MS;
        assert_eq!(grade(&i).verdict, Verdict::Pass);
        // Nobody recovered, nobody set the time.
        let stuck = [probe("a", 2, "++---")];
        assert_eq!(grade(&input(&stuck, 15, 40)).recovered_by, None);
    }

    #[test]
    fn settled_needs_impact_and_every_recovery() {
        let p = [probe("http", 2, "++--++")];
        assert!(settled(&input(&p, 15, 1_000)));
        let p = [probe("http", 2, "++--+")];
        assert!(!settled(&input(&p, 15, 1_000)));
        let p = [probe("http", 2, "+++++")];
        assert!(!settled(&input(&p, 15, 1_000)));
    }

    fn tally(met: u32, not_met: u32, inconclusive: u32, aborted: u32, errors: u32) -> Tally {
        Tally {
            met,
            not_met,
            inconclusive,
            aborted,
            errors,
            preflight_error: false,
        }
    }

    /// Every row of the README's table "How runs add up".
    #[test]
    fn runs_add_up_to_one_scenario_verdict() {
        use Verdict::*;
        let rows: [(Tally, f64, Verdict, Option<f64>); 15] = [
            // All runs met the expectation.
            (tally(3, 0, 0, 0, 0), 1.0, Pass, Some(1.0)),
            // Enough met it.
            (tally(2, 1, 0, 0, 0), 0.5, Pass, Some(2.0 / 3.0)),
            // Too few met it.
            (tally(2, 1, 0, 0, 0), 1.0, Fail, Some(2.0 / 3.0)),
            (tally(0, 1, 0, 0, 0), 1.0, Fail, Some(0.0)),
            // An inconclusive run that cannot change the outcome is left out.
            (tally(2, 0, 1, 0, 0), 0.5, Pass, Some(1.0)),
            // ... one that could is not.
            (tally(2, 0, 1, 0, 0), 1.0, Inconclusive, Some(1.0)),
            // A breach among the graded runs stands whatever the inconclusive ones were.
            (tally(1, 1, 1, 0, 0), 1.0, Fail, Some(0.5)),
            // Nothing graded.
            (tally(0, 0, 3, 0, 0), 1.0, Inconclusive, None),
            // Stopped by an operator.
            (tally(1, 0, 0, 1, 0), 1.0, Aborted, Some(1.0)),
            (tally(0, 0, 0, 1, 0), 1.0, Aborted, None),
            // ... after a breach that already decided it.
            (tally(0, 1, 0, 1, 0), 1.0, Fail, Some(0.0)),
            // An error wins over everything.
            (tally(2, 1, 0, 0, 1), 1.0, Error, Some(2.0 / 3.0)),
            (tally(0, 0, 1, 1, 1), 1.0, Error, None),
            // Preflight stopped a later repeat.
            (
                Tally {
                    preflight_error: true,
                    ..tally(1, 0, 0, 0, 0)
                },
                1.0,
                Error,
                Some(1.0),
            ),
            // ... or the first: no run at all.
            (
                Tally {
                    preflight_error: true,
                    ..Tally::default()
                },
                1.0,
                Error,
                None,
            ),
        ];
        for (t, min, verdict, rate) in rows {
            let v = judge(&t, min);
            assert_eq!(
                (v.verdict, v.pass_rate),
                (verdict, rate),
                "{t:?} at {min}: {}",
                v.reason
            );
        }
    }

    #[test]
    fn the_reason_carries_one_denominator() {
        let v = judge(&tally(4, 1, 1, 0, 0), 1.0);
        assert_eq!(
            v.reason,
            "4 of 5 graded runs met the expectation (pass rate 80%, required 100%); 1 \
             inconclusive run not counted"
        );
        let v = judge(&tally(2, 0, 1, 0, 0), 1.0);
        assert_eq!(
            v.reason,
            "2 of 2 graded runs met the expectation (pass rate 100%, required 100%), but the 1 \
             inconclusive run could have changed that: counted as failures, the pass rate would \
             be 67%"
        );
        let v = judge(
            &Tally {
                preflight_error: true,
                ..Tally::default()
            },
            1.0,
        );
        assert_eq!(v.verdict, Verdict::Error);
        assert_eq!(v.pass_rate, None);
        assert_eq!(
            v.reason,
            "no run: preflight stopped the scenario before anything was injected"
        );
        assert!(!v.reason.contains("0%"));
        let v = judge(&tally(0, 0, 2, 0, 0), 1.0);
        assert_eq!(
            v.reason,
            "no run was graded: 2 inconclusive runs, nothing measured"
        );
    }

    #[test]
    fn tally_counts_by_verdict_and_expectation() {
        let mut t = Tally::default();
        for (v, met) in [
            (Verdict::Pass, true),
            (Verdict::NoImpact, true),
            (Verdict::NoImpact, false),
            (Verdict::Fail, false),
            (Verdict::Inconclusive, false),
            (Verdict::Aborted, false),
            (Verdict::Error, false),
        ] {
            t.add(v, met);
        }
        assert_eq!(t, tally(2, 2, 1, 1, 1));
        assert_eq!((t.graded(), t.runs()), (4, 7));
    }

    #[test]
    fn formats_durations_for_people() {
        assert_eq!(fmt_us(850), "850µs");
        assert_eq!(fmt_us(12_345), "12.3ms");
        assert_eq!(fmt_us(1_250_000), "1.250s");
    }
}
