//! One probe's impact and recovery, from samples that may overlap.
//!
//! A probe starts a check every interval whether or not earlier ones have answered, so a check
//! that hangs behind a partition does not hold the next one back. Each sample is an interval
//! `[start, answer]`, and what it proves depends on how it ended:
//! - a good answer: the service was up at some moment before the answer arrived;
//! - a failure (refused, timed out, wrong answer): the service was down at some moment after
//!   the check started (a refused connection right then; a request that hung was lost then).
//!
//! Recovery is decided the way an observer watching the answers arrive would decide it: the
//! samples are replayed in the order their answers arrived, each placed by its start, and
//! recovery is the first moment when `recovered_after` consecutive samples (by start) that
//! follow a failure have all answered well. A sample answered later, even one that started
//! earlier and hung, cannot move that decision; a late failure that started inside the streak
//! is counted as a relapse.
//!
//! The bracket of the recovery is then:
//! - high: the earliest good answer in the streak (the service was up by then, and stayed up
//!   for the streak);
//! - low: the start of the latest failed check that started before the streak's first check,
//!   including checks that hung and answered after the decision (sound: the service was down
//!   at some moment after such a check started);
//! - the estimate is the first good answer in the streak: the earliest moment anyone could know,
//!   and a check that started while the service hung (a paused process) answers just after it
//!   is back. After a full outage it is also the high end.
//!
//! A partial outage (some checks passed between the first failure and the streak) needs a
//! longer streak and gets a wider bracket; see [`needed`] and the high end in
//! [`probe_recovery`].

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound::{Excluded, Unbounded};

use super::{GradeInput, Measured, Partial, ProbeRecovery};
use crate::timeline::{ProbeTimeline, Sample};

/// Where a sample sits among the answered ones: by start, ties broken by answer order.
type Key = (u64, usize);

/// The probe's impact and recovery (its verdict is left to the caller).
pub(super) fn probe_recovery(p: &ProbeTimeline, input: &GradeInput<'_>) -> ProbeRecovery {
    let t0 = input.inject.at_us;
    let mut window: Vec<&Sample> = p
        .samples
        .iter()
        .filter(|s| s.end_us >= t0 && s.start_us <= input.window_end_us)
        .collect();
    // The order the answers arrived in (ties: the earlier start first).
    window.sort_by_key(|s| (s.end_us, s.start_us));
    let none = ProbeRecovery {
        probe: p.name.clone(),
        impact: None,
        recovered: None,
        relapses: 0,
        partial: None,
        verdict: None,
    };
    let failures = || window.iter().filter(|s| !s.ok);
    let Some(first_fail) = failures().min_by_key(|s| (s.start_us, s.end_us)) else {
        return none;
    };
    // The first failed answer is when anyone could know; the break came after the last good
    // check that began before the first failed one (or the effect).
    let detected = failures()
        .map(|s| s.end_us)
        .min()
        .unwrap_or(first_fail.end_us);
    let last_good_start = window
        .iter()
        .filter(|s| s.ok && s.start_us < first_fail.start_us)
        .map(|s| s.start_us.max(t0))
        .max()
        .unwrap_or(t0)
        .min(detected);
    let impact = Measured {
        us: detected - t0,
        low_us: last_good_start - t0,
        high_us: detected - t0,
    };
    let Some((streak, partial)) = first_streak(&window, p.recovered_after.max(1) as usize) else {
        return ProbeRecovery {
            impact: Some(impact),
            ..none
        };
    };
    let first_start = streak.iter().map(|s| s.start_us).min().unwrap_or(t0);
    let first_good = streak.iter().map(|s| s.end_us).min().unwrap_or(t0).max(t0);
    // In a partial outage the streak's first checks may have been lucky ones that met a healthy
    // backend just before the bad one was fixed: the truth may lie up to as many checks into
    // the streak as luck could explain, so the bracket's high end moves that far.
    let high = match partial {
        None => first_good,
        Some(p) => {
            let ratio = f64::from(p.failed_permille) / 1000.0;
            let lucky =
                ((BRACKET_CHANCE.ln() / (1.0 - ratio).ln()).ceil() as usize).clamp(1, streak.len());
            streak[..lucky]
                .iter()
                .map(|s| s.end_us)
                .max()
                .unwrap_or(first_good)
                .max(first_good)
        }
    };
    let low = failures()
        .filter(|s| s.start_us < first_start)
        .map(|s| s.start_us.max(t0))
        .max()
        .unwrap_or(t0)
        .min(high);
    let relapses = failures().filter(|s| s.start_us > first_start).count() as u32;
    ProbeRecovery {
        impact: Some(impact),
        recovered: Some(Measured {
            us: first_good - t0,
            low_us: low - t0,
            high_us: high - t0,
        }),
        relapses,
        partial,
        ..none
    }
}

/// The chance that the truth lies past the widened high end of a partial outage's bracket.
const BRACKET_CHANCE: f64 = 0.001;
/// The chance at which a run of lucky checks in a partial outage may be taken for recovery.
const CHANCE: f64 = 0.01;
/// The longest streak a partial outage can ask for (a failure ratio near zero).
const MAX_PARTIAL_STREAK: usize = 1_000;

/// The streak recovery needs after the failure at `after`: `base` (the scenario's
/// `recovered_after`) after a full outage, where every check from the first failure to `after`
/// failed. After a partial one (some checks passed in between: a balancer with one bad backend,
/// or a flapping service), enough consecutive good checks that, at the failure ratio seen, so
/// many would pass by luck somewhere among the checks so far less than [`CHANCE`] of the time.
/// A longer streak only defers the decision; the estimate stays the streak's first good answer.
/// A run of lucky checks right after the first failure, before any ratio can be seen, still
/// passes for recovery: its later failures are counted as relapses, which the report shows.
fn needed(
    answered: &BTreeMap<Key, &Sample>,
    failed: &BTreeSet<Key>,
    after: Key,
    base: usize,
) -> (usize, Option<Partial>) {
    let Some(first) = failed.first().copied() else {
        return (base, None);
    };
    let (mut n, mut f) = (0usize, 0usize);
    for s in answered.range(first..=after).map(|(_, s)| s) {
        n += 1;
        f += usize::from(!s.ok);
    }
    if f == n {
        return (base, None);
    }
    let ratio = f as f64 / n as f64;
    let luck = (CHANCE / n as f64).ln() / (1.0 - ratio).ln();
    let streak = (luck.ceil() as usize).clamp(base, MAX_PARTIAL_STREAK);
    (
        streak,
        Some(Partial {
            failed_permille: (ratio * 1000.0).round() as u32,
            streak: streak as u32,
        }),
    )
}

/// The first `need` consecutive good samples (by start) after a failure to have all answered,
/// replaying `by_answer` (samples in the order their answers arrived).
fn first_streak<'a>(
    by_answer: &[&'a Sample],
    base: usize,
) -> Option<(Vec<&'a Sample>, Option<Partial>)> {
    let mut answered: BTreeMap<Key, &'a Sample> = BTreeMap::new();
    let mut failed: BTreeSet<Key> = BTreeSet::new();
    for (seq, s) in by_answer.iter().enumerate() {
        let key = (s.start_us, seq);
        answered.insert(key, s);
        if !s.ok {
            failed.insert(key);
        }
        // The run this answer joins (or, for a failure, opens): the good samples between the
        // failure before it and the next failure, by start.
        let Some(after) = (if s.ok {
            failed.range(..key).next_back().copied()
        } else {
            Some(key)
        }) else {
            continue;
        };
        let until = failed
            .range((Excluded(after), Unbounded))
            .next()
            .map_or(Unbounded, |k| Excluded(*k));
        let run: Vec<&Sample> = answered
            .range((Excluded(after), until))
            .take(MAX_PARTIAL_STREAK)
            .map(|(_, s)| *s)
            .collect();
        if run.len() < base {
            continue;
        }
        let (need, partial) = needed(&answered, &failed, after, base);
        if run.len() >= need {
            return Some((run[..need].to_vec(), partial));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{Expectation, RecoveryMode};
    use crate::timeline::Moment;

    const MS: u64 = 1_000;

    fn s(start_ms: u64, end_ms: u64, ok: bool) -> Sample {
        Sample {
            start_us: start_ms * MS,
            end_us: end_ms * MS,
            ok,
            error: if ok { String::new() } else { "x".into() },
        }
    }

    fn recovery(samples: Vec<Sample>, need: u32) -> ProbeRecovery {
        let p = [ProbeTimeline {
            name: "p".into(),
            recovered_after: need,
            skipped: 0,
            seed: None,
            samples,
        }];
        let input = GradeInput {
            probes: &p,
            inject: Moment {
                at_us: 0,
                uncertainty_us: 100,
            },
            revert_us: None,
            rto_us: 10_000 * MS,
            window_end_us: 100_000 * MS,
            expect: Expectation::Recovery,
            recovery: RecoveryMode::SelfHealing,
        };
        probe_recovery(&p[0], &input)
    }

    /// Checks every 10 ms from 0 to `until_ms`, each answering as `answer(start)` says:
    /// `Some((end, ok))`, or `None` for a check still in flight when sampling stopped.
    fn every_10ms(
        until_ms: u64,
        mut answer: impl FnMut(u64) -> Option<(u64, bool)>,
    ) -> Vec<Sample> {
        let mut v: Vec<Sample> = (0..=until_ms / 10)
            .filter_map(|i| answer(i * 10).map(|(end, ok)| s(i * 10, end, ok)))
            .collect();
        // Stored in the order the answers arrived, as the probe records them.
        v.sort_by_key(|s| s.end_us);
        v
    }

    #[test]
    fn refused_port_recovers_at_the_first_good_answer() {
        // Down from 15 to 205 ms; every check answers in 1 ms.
        let up = |t: u64| !(15..205).contains(&t);
        let r = recovery(every_10ms(400, |t| Some((t + 1, up(t)))), 3);
        let m = r.recovered.unwrap();
        assert_eq!((m.low_us, m.us, m.high_us), (200 * MS, 211 * MS, 211 * MS));
        assert_eq!(r.impact.unwrap().us, 21 * MS);
        assert_eq!(r.relapses, 0);
    }

    #[test]
    fn blackhole_brackets_the_lift_with_checks_that_hung() {
        // Blackholed from 15 to 205 ms with a 1 s timeout: checks started inside it time out a
        // second later, long after the good answers began.
        let samples = every_10ms(1_400, |t| {
            if (15..205).contains(&t) {
                Some((t + 1_000, false))
            } else {
                Some((t + 1, true))
            }
        });
        let r = recovery(samples, 3);
        let m = r.recovered.unwrap();
        assert!(m.low_us <= 205 * MS && 205 * MS <= m.high_us, "{m:?}");
        assert_eq!((m.low_us, m.us), (200 * MS, 211 * MS));
        assert_eq!(r.impact.unwrap().us, 1_020 * MS, "the first timeout");
        // The good answers after the lift arrived before any timeout: the decision waited for
        // a failure, then counted the streak after it, not one after the last timeout (1.2 s).
        assert_eq!(r.relapses, 0);
    }

    #[test]
    fn pause_answers_the_checks_it_held_just_after_the_resume() {
        // Paused from 15 to 205 ms: checks started inside it answer well at 206 ms.
        let samples = every_10ms(400, |t| {
            if (15..205).contains(&t) {
                Some((206, true))
            } else {
                Some((t + 1, true))
            }
        });
        // No check failed: the pause was shorter than the timeout, so the probe saw slowness,
        // not failure.
        assert!(recovery(samples, 3).impact.is_none());

        // Paused from 15 to 1_505 ms with a 1 s timeout: the early checks time out, those that
        // started in the last second of the pause answer just after the resume.
        let samples = every_10ms(2_000, |t| {
            if (15..505).contains(&t) {
                Some((t + 1_000, false))
            } else if (505..1_505).contains(&t) {
                Some((1_506, true))
            } else {
                Some((t + 1, true))
            }
        });
        let m = recovery(samples, 3).recovered.unwrap();
        assert!(m.low_us <= 1_505 * MS && 1_505 * MS <= m.high_us, "{m:?}");
        assert_eq!(m.us, 1_506 * MS);
        assert_eq!(m.low_us, 500 * MS);
    }

    #[test]
    fn a_sample_in_flight_at_the_decision_does_not_move_it() {
        // Down 15..45 ms (refused). The check started at 60 ms hangs and fails at 1060 ms, long
        // after 50, 70 and 80 answered well.
        let samples = every_10ms(200, |t| match t {
            20..=40 => Some((t + 1, false)),
            60 => Some((1_060, false)),
            _ => Some((t + 1, true)),
        });
        let r = recovery(samples, 3);
        let m = r.recovered.unwrap();
        assert_eq!(
            m.us,
            51 * MS,
            "decided at 81 ms, before the hung check failed"
        );
        assert_eq!(r.relapses, 1, "the late failure is a relapse");
    }

    /// A round-robin balancer over two backends, one failing from 100 to `fixed_ms`, with a
    /// competing client taking a random share of the requests: the probe's checks land on either
    /// backend by chance (seeded).
    fn partial(seed: u64, fixed_ms: u64, need: u32) -> (ProbeRecovery, u64) {
        let mut rng = seed;
        let mut coin = move || {
            rng = rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = (rng ^ (rng >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            (z ^ (z >> 31)) >> 63 == 0
        };
        let samples = every_10ms(2_000, |t| {
            let bad_backend = coin();
            Some((t + 1, !((100..fixed_ms).contains(&t) && bad_backend)))
        });
        (recovery(samples, need), fixed_ms * MS)
    }

    #[test]
    fn a_partial_outage_needs_a_streak_luck_cannot_explain() {
        let (mut widened, mut early) = (0, 0);
        for seed in 0..200 {
            let (r, truth) = partial(seed, 700, 3);
            let m = r.recovered.expect("recovered");
            if truth > m.high_us {
                // Lucky checks right after the first failure, before a ratio could be seen: the
                // report cannot know, but says the probe relapsed.
                assert!(r.relapses > 0, "seed {seed}: {r:?}");
                early += 1;
                continue;
            }
            assert!(
                m.low_us <= truth,
                "seed {seed}: bracket {m:?} vs truth {truth}"
            );
            if let Some(p) = r.partial {
                widened += 1;
                assert!(p.streak >= 7, "half failing over 60 checks: {p:?}");
                assert!(m.high_us >= m.us + 50 * MS, "widened: {m:?}");
                assert!((300..=700).contains(&p.failed_permille), "{p:?}");
            }
        }
        eprintln!("{widened} of 200 partial, {early} decided by luck before a ratio was seen");
        // A known limit: a block of failures followed by `recovered_after` lucky checks looks
        // like a full outage and its recovery (about a third of these runs at 50 % and
        // recovered_after = 3); every one of them shows its relapses.
        assert!(early <= 90, "{early} of 200 decided early");
        assert!(widened >= 100, "{widened} of 200 runs graded partial");
    }

    #[test]
    fn a_full_outage_keeps_the_scenarios_streak() {
        let samples = every_10ms(1_000, |t| Some((t + 1, !(100..700).contains(&t))));
        let r = recovery(samples, 3);
        assert_eq!(r.partial, None);
        assert_eq!(r.recovered.unwrap().us, 701 * MS);
    }

    #[test]
    fn a_failure_answered_first_still_opens_the_streak_search() {
        // Checks abandoned in flight (None) are simply absent.
        let samples = every_10ms(200, |t| match t {
            20 => Some((21, false)),
            30 => None,
            _ => Some((t + 1, true)),
        });
        let m = recovery(samples, 2).recovered.unwrap();
        assert_eq!((m.low_us, m.us), (20 * MS, 41 * MS));
    }
}
