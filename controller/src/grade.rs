//! Grading: a pure function from probe samples, fault moments and the RTO to a verdict with
//! its figures. No I/O, no clock: everything it needs is in its arguments.

use serde::{Deserialize, Serialize};

use crate::timeline::{Moment, ProbeTimeline, Sample};

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

/// Recovery of one probe: the bracket is (last failed sample, first good sample).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeRecovery {
    /// The probe's name.
    pub probe: String,
    /// When its first failure after the effect was seen; `None` if it never failed.
    pub impact: Option<Measured>,
    /// When it recovered; `None` if it failed and never recovered.
    pub recovered: Option<Measured>,
    /// Failed samples after it had recovered (flapping).
    pub relapses: u32,
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
    /// Per-probe detail.
    pub probes: Vec<ProbeRecovery>,
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
}

/// Grades a run whose fault was applied. Runs stopped earlier (preflight, steady state, abort)
/// get their verdict from the engine without grading.
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
        .map(|p| probe_recovery(p, input))
        .collect();
    let impacted: Vec<&ProbeRecovery> = probes.iter().filter(|p| p.impact.is_some()).collect();
    if impacted.is_empty() {
        return Grade {
            verdict: Verdict::NoImpact,
            reason: "no probe failed after the fault took effect".into(),
            time_to_detect: None,
            time_to_recover: None,
            recover_after_revert_us: None,
            probes,
        };
    }
    let time_to_detect = impacted
        .iter()
        .filter_map(|p| p.impact)
        .min_by_key(|m| m.us);
    if let Some(stuck) = impacted.iter().find(|p| p.recovered.is_none()) {
        return Grade {
            verdict: Verdict::Fail,
            reason: format!(
                "probe {} did not recover within the observation window ({} after the fault)",
                stuck.probe,
                fmt_us(input.window_end_us.saturating_sub(t0))
            ),
            time_to_detect,
            time_to_recover: None,
            recover_after_revert_us: None,
            probes,
        };
    }
    // The service is restored when the last probe is.
    let time_to_recover = impacted
        .iter()
        .filter_map(|p| p.recovered)
        .max_by_key(|m| m.us)
        .expect("every impacted probe recovered");
    // Only a recovery that came after the revert is a recovery "after the revert".
    let recovered_at = t0 + time_to_recover.us;
    let recover_after_revert_us = input
        .revert_us
        .filter(|r| recovered_at >= *r)
        .map(|r| recovered_at - r);
    let after_revert = recover_after_revert_us
        .map(|us| format!(", only after the revert ({} after it)", fmt_us(us)))
        .unwrap_or_default();
    let (verdict, reason) = if time_to_recover.us <= input.rto_us {
        (
            Verdict::Pass,
            format!(
                "recovered in {} (RTO {})",
                fmt_us(time_to_recover.us),
                fmt_us(input.rto_us)
            ),
        )
    } else {
        (
            Verdict::Fail,
            format!(
                "recovered in {}{after_revert}, over the RTO of {}",
                fmt_us(time_to_recover.us),
                fmt_us(input.rto_us)
            ),
        )
    };
    Grade {
        verdict,
        reason,
        time_to_detect,
        time_to_recover: Some(time_to_recover),
        recover_after_revert_us,
        probes,
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
        probes: probes
            .iter()
            .map(|p| ProbeRecovery {
                probe: p.name.clone(),
                impact: None,
                recovered: None,
                relapses: 0,
            })
            .collect(),
    }
}

fn probe_recovery(p: &ProbeTimeline, input: &GradeInput<'_>) -> ProbeRecovery {
    let t0 = input.inject.at_us;
    let window: Vec<&Sample> = p
        .samples
        .iter()
        .filter(|s| s.end_us >= t0 && s.start_us <= input.window_end_us)
        .collect();
    let none = ProbeRecovery {
        probe: p.name.clone(),
        impact: None,
        recovered: None,
        relapses: 0,
    };
    let Some(first_fail) = window.iter().position(|s| !s.ok) else {
        return none;
    };
    let failed = window[first_fail];
    // The service broke after the last good answer began (or the effect) and before this answer.
    let last_good_start = window[..first_fail]
        .last()
        .map_or(t0, |s| s.start_us.max(t0));
    let impact = Measured {
        us: failed.end_us - t0,
        low_us: last_good_start - t0,
        high_us: failed.end_us - t0,
    };
    let need = p.recovered_after.max(1) as usize;
    let mut streak = 0usize;
    let mut last_failed = failed;
    for (i, s) in window.iter().enumerate().skip(first_fail) {
        if !s.ok {
            streak = 0;
            last_failed = s;
            continue;
        }
        streak += 1;
        if streak == need {
            let first_good = window[i + 1 - need];
            let relapses = window[i + 1..].iter().filter(|s| !s.ok).count() as u32;
            // The service came back after the last failed check began and before the first good
            // one answered. The answer's arrival is the estimate: a check that started while the
            // service still hung (and waited for it) is only done once the service is back.
            let recovered = Measured {
                us: first_good.end_us - t0,
                low_us: last_failed.start_us.max(t0) - t0,
                high_us: first_good.end_us - t0,
            };
            return ProbeRecovery {
                impact: Some(impact),
                recovered: Some(recovered),
                relapses,
                ..none
            };
        }
    }
    ProbeRecovery {
        impact: Some(impact),
        ..none
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

    const MS: u64 = 1_000;

    /// A probe sampled every 10 ms from t=0, each check taking 1 ms, with `pattern` giving
    /// ok ('+') or failed ('-') per sample.
    fn probe(name: &str, recovered_after: u32, pattern: &str) -> ProbeTimeline {
        ProbeTimeline {
            name: name.into(),
            recovered_after,
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
    fn flapping_recovery_counts_from_the_first_full_streak() {
        // Recovers at sample 4 but fails again at 6; the full streak starts at 7 (70 ms).
        let p = [probe("http", 3, "+++-++-+++++")];
        let g = grade(&input(&p, 25, 1_000));
        assert_eq!(g.verdict, Verdict::Pass);
        let r = g.time_to_recover.unwrap();
        assert_eq!(r.us, 46 * MS);
        assert_eq!(r.low_us, 35 * MS, "the flap at 60 ms is the last failure");
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
    fn a_fail_that_recovers_only_after_the_revert_says_so() {
        let p = [probe("http", 2, "++------++")];
        let mut i = input(&p, 15, 30);
        i.revert_us = Some(75 * MS);
        let g = grade(&i);
        assert_eq!(g.verdict, Verdict::Fail);
        assert!(
            g.reason.contains("only after the revert (6.0ms after it)"),
            "{}",
            g.reason
        );
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

    #[test]
    fn formats_durations_for_people() {
        assert_eq!(fmt_us(850), "850µs");
        assert_eq!(fmt_us(12_345), "12.3ms");
        assert_eq!(fmt_us(1_250_000), "1.250s");
    }
}
