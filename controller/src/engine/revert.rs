//! The revert phase: every applied fault is lifted at once, and when each really ended is
//! recorded, so "back only after the revert" is judged against the right moment.

use futures_util::future::join_all;
use gameday_proto::v1;
use tokio::time::Instant;

use super::inject::Applied;
use super::run::{failure_text, micros};
use crate::report::{FaultRecord, RunReport};
use crate::timeline::effect_moment;

/// Reverts every applied fault at once and records each answer on its fault. With
/// `record_time`, each fault's revert moment and the run's (the last of them) are recorded too:
/// not for a fault undone because the inject failed, nor for an instant fault (a kill) whose
/// "revert" lifts nothing the service was waiting for.
pub(super) async fn revert_all(
    report: &mut RunReport,
    applied: &[Applied],
    epoch: Instant,
    record_time: bool,
) {
    let results = join_all(
        applied
            .iter()
            .map(|a| async move { (a.fault_id.clone(), a.agent.revert(&a.fault_id).await) }),
    )
    .await;
    let mut last = None;
    for (fault_id, result) in results {
        let Some(rec) = report.faults.iter_mut().find(|f| f.fault_id == fault_id) else {
            continue;
        };
        match result {
            Ok(x) => match &x.report.failure {
                None => {
                    if let Some(ev) = &x.report.evidence {
                        record_revert_evidence(rec, ev);
                    }
                    let at = effect_moment(
                        micros(epoch, x.sent_at),
                        micros(epoch, x.received_at),
                        x.report.apply_us,
                        x.report.since_effect_us,
                    )
                    .at_us;
                    if record_time {
                        rec.reverted_us = Some(at);
                        last = last.max(Some(at));
                    }
                }
                Some(f) => rec.error = Some(format!("revert: {}", failure_text(f))),
            },
            Err(e) => rec.error = Some(format!("revert: {e}")),
        }
    }
    if record_time {
        report.revert_us = last;
    }
}

/// Holding faults are lifted by their agent when their duration is up, and a revert the
/// controller sends after that only finds them gone: the moment it records is then later than
/// the real one. Each fault's revert is the earlier of the recorded moment and its effect plus
/// its duration (`held`: fault id, microseconds), and the run's is the last of them, so "back
/// only after the revert" is judged against when the fault really ended.
pub(super) fn cap_at_deadlines(report: &mut RunReport, held: &[(String, u64)]) {
    let mut last = None;
    for f in &mut report.faults {
        let deadline = held
            .iter()
            .find(|(id, _)| *id == f.fault_id)
            .zip(f.applied)
            .map(|((_, us), m)| m.at_us.saturating_add(*us));
        if let (Some(r), Some(d)) = (f.reverted_us, deadline) {
            f.reverted_us = Some(r.min(d));
        }
        last = last.max(f.reverted_us);
    }
    if report.revert_us.is_some() {
        report.revert_us = last;
    }
}

/// What the agent reported when it reverted a fault, written down beside what it reported
/// when it applied it.
fn record_revert_evidence(rec: &mut FaultRecord, ev: &v1::Evidence) {
    rec.revert_figures.extend(ev.figures.clone());
    if !ev.summary.is_empty() {
        rec.revert_evidence = ev.summary.clone();
    }
    if !ev.residue.is_empty() {
        rec.error = Some(format!("residue after revert: {}", ev.residue.join("; ")));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::engine::fake::{Fixture, Op, ScriptedAgent};
    use crate::timeline::Moment;

    #[test]
    fn a_fault_its_agent_lifted_at_its_deadline_is_reverted_then() {
        let fault = |id: &str, at_us: u64, reverted_us: u64| FaultRecord {
            fault_id: id.into(),
            applied: Some(Moment {
                at_us,
                uncertainty_us: 0,
            }),
            reverted_us: Some(reverted_us),
            ..FaultRecord::default()
        };
        let mut report = super::super::run::errored("r".into(), 1, String::new());
        // Held 600 ms from 305 ms: the agent lifted it at 905 ms; the controller's revert
        // found it gone at 918 ms. A kill (not held) keeps its moment.
        report.faults = vec![
            fault("pause", 305_000, 917_700),
            fault("kill", 305_000, 310_000),
        ];
        report.revert_us = Some(917_700);
        cap_at_deadlines(&mut report, &[("pause".into(), 600_000)]);
        assert_eq!(report.faults[0].reverted_us, Some(905_000));
        assert_eq!(report.faults[1].reverted_us, Some(310_000));
        assert_eq!(report.revert_us, Some(905_000));
        // A revert before the deadline (revert = "on_recovery") is when it happened.
        report.faults = vec![fault("pause", 305_000, 500_000)];
        report.revert_us = Some(500_000);
        cap_at_deadlines(&mut report, &[("pause".into(), 600_000)]);
        assert_eq!(report.revert_us, Some(500_000));
    }

    #[test]
    fn revert_figures_do_not_overwrite_apply_figures() {
        // A disk fill: what applying found and did, then what reverting found.
        let mut rec = FaultRecord {
            evidence: "filled /data to 95%: wrote 800 bytes".into(),
            figures: [
                ("free_before", 1_000),
                ("free_after", 200),
                ("bytes_written", 800),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
            ..FaultRecord::default()
        };
        let revert = v1::Evidence {
            summary: "removed the fill file".into(),
            figures: [("free_before", 200), ("free_after", 1_000)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            ..v1::Evidence::default()
        };
        record_revert_evidence(&mut rec, &revert);
        assert_eq!(
            rec.figures.get("free_after"),
            Some(&200),
            "the apply figure stays"
        );
        assert_eq!(rec.figures.get("free_before"), Some(&1_000));
        assert_eq!(rec.revert_figures.get("free_after"), Some(&1_000));
        assert_eq!(rec.revert_figures.get("free_before"), Some(&200));
        assert_eq!(rec.revert_evidence, "removed the fill file");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_revert_is_an_error_on_its_fault_and_the_others_are_still_reverted() {
        let mut fx = Fixture::new(Fixture::PAUSE);
        let stuck = ScriptedAgent::new("web-1", Duration::from_millis(10));
        stuck.refuse_revert("SIGCONT failed");
        fx.targets = vec![
            stuck,
            ScriptedAgent::new("web-2", Duration::from_millis(30)),
        ];
        let mut report = fx.report();
        let injection = super::super::inject::inject_all(&fx.ctx(), &mut report, fx.epoch)
            .await
            .unwrap();
        revert_all(&mut report, &injection.applied, fx.epoch, true).await;
        assert_eq!(
            fx.targets[1].calls(),
            vec![(Op::Apply, 0), (Op::Revert, 30)]
        );
        assert_eq!(
            report.faults[0].error.as_deref(),
            Some("revert: system error: SIGCONT failed")
        );
        assert_eq!(report.faults[1].reverted_us, Some(45_000));
        assert_eq!(report.revert_us, Some(45_000));
    }
}
