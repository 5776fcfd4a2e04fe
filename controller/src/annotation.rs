//! Annotations: timestamped notes the people in the room add to a live or finished run (a
//! plain note, an action item, or the start of remediation), and the remediation figure they
//! give: time from the fault, and from the alert, to the first recovery action.

use serde::{Deserialize, Serialize};

use crate::grade::fmt_us;
use crate::report::RunReport;

/// Longest annotation text, in characters.
pub const MAX_TEXT: usize = 2_000;

/// What an annotation marks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnnotationKind {
    /// A plain note.
    #[default]
    Note,
    /// A follow-up the team owes; collected in reports.
    ActionItem,
    /// The first recovery action began.
    RemediationStarted,
}

impl AnnotationKind {
    /// How reports label it.
    pub fn label(self) -> &'static str {
        match self {
            AnnotationKind::Note => "note",
            AnnotationKind::ActionItem => "action item",
            AnnotationKind::RemediationStarted => "remediation started",
        }
    }
}

/// One note on a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Annotation {
    /// When it was added, ms since the Unix epoch.
    pub unix_ms: u64,
    /// Who added it ("operator alice", "webhook 10.0.0.7").
    pub author: String,
    /// What it marks.
    pub kind: AnnotationKind,
    /// The note.
    pub text: String,
}

impl Annotation {
    /// When it was added on the run's timeline (µs since its start), from the wall clock.
    pub fn at_us(&self, run: &RunReport) -> u64 {
        self.unix_ms
            .saturating_sub(run.started_unix_ms)
            .saturating_mul(1000)
    }
}

/// Why an annotation was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AnnotationError {
    /// Nothing to say.
    #[error("the annotation text is empty")]
    Empty,
    /// Too long.
    #[error("the annotation text has {0} characters; at most {MAX_TEXT} are kept")]
    TooLong(usize),
    /// Control characters would garble reports and terminals.
    #[error("the annotation text holds a control character; write it on one line")]
    Control,
}

/// Checks annotation text: non-empty, at most [`MAX_TEXT`] characters, one line.
pub fn check_text(text: &str) -> Result<&str, AnnotationError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(AnnotationError::Empty);
    }
    let n = text.chars().count();
    if n > MAX_TEXT {
        return Err(AnnotationError::TooLong(n));
    }
    if text.chars().any(char::is_control) {
        return Err(AnnotationError::Control);
    }
    Ok(text)
}

/// Why an annotation could not be added.
#[derive(Debug, thiserror::Error)]
pub enum AddError {
    /// The text is not acceptable.
    #[error(transparent)]
    Text(#[from] AnnotationError),
    /// No such run, live or in the history.
    #[error("no run {0:?} is going on or in the run history")]
    NoRun(String),
    /// The history could not be written.
    #[error("run history: {0}")]
    History(String),
}

/// Adds a note to run `run_id`: to its live report if it is going on, and to the history (the
/// one lasting copy). Returns whether the run was live.
pub async fn add(
    engine: &crate::engine::Engine,
    history: Option<std::sync::Arc<crate::store::Store>>,
    run_id: &str,
    author: String,
    kind: AnnotationKind,
    text: &str,
) -> Result<(Annotation, bool), AddError> {
    let note = Annotation {
        unix_ms: crate::timeline::unix_ms_now(),
        author,
        kind,
        text: check_text(text)?.to_string(),
    };
    let live = engine.annotate_live(run_id, note.clone());
    let stored = match history {
        Some(store) => {
            let (id, n) = (run_id.to_string(), note.clone());
            tokio::task::spawn_blocking(move || store.add_annotation(&id, &n))
                .await
                .map_err(|e| AddError::History(e.to_string()))?
                .map_err(|e| AddError::History(e.to_string()))?
        }
        None => false,
    };
    if !live && !stored {
        return Err(AddError::NoRun(run_id.to_string()));
    }
    tracing::info!(run = %run_id, author = %note.author, kind = note.kind.label(), "annotation added");
    Ok((note, live))
}

/// A remediation signal probe's first good answer after the fault (following a failure).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalSeen {
    /// The probe.
    pub probe: String,
    /// When its good answer arrived, µs since the run's epoch.
    pub at_us: u64,
}

impl SignalSeen {
    /// The earliest remediation signal among `probes` (the signal probes' timelines), for a
    /// fault that took effect at `inject_us`: a good answer to a check started after it, right
    /// after a failed one. A probe good all along signals nothing.
    pub fn first(probes: &[crate::timeline::ProbeTimeline], inject_us: u64) -> Option<SignalSeen> {
        probes
            .iter()
            .filter_map(|p| {
                let mut samples: Vec<_> = p.samples.iter().collect();
                samples.sort_by_key(|s| s.start_us);
                samples
                    .windows(2)
                    .find(|w| !w[0].ok && w[1].ok && w[1].start_us >= inject_us)
                    .map(|w| SignalSeen {
                        probe: p.name.clone(),
                        at_us: w[1].end_us,
                    })
            })
            .min_by_key(|s| s.at_us)
    }
}

/// Time to remediation start: the first `remediation_started` annotation, remediation signal
/// or remediation step start.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remediation {
    /// µs after the fault took effect.
    pub after_fault_us: u64,
    /// µs after the alert that noticed the fault was delivered, when one did (negative
    /// intervals, remediation before the alert, read as 0 and say so in `before_alert`).
    pub after_alert_us: Option<u64>,
    /// Remediation began before monitoring noticed.
    #[serde(default)]
    pub before_alert: bool,
    /// Who marked it.
    pub by: String,
    /// What they wrote.
    pub text: String,
}

impl Remediation {
    /// The figure for `run`, from its annotations, injection and detection.
    pub fn of(run: &RunReport) -> Option<Remediation> {
        let inject_us = run.inject?.at_us;
        let noted = run
            .annotations
            .iter()
            .filter(|a| a.kind == AnnotationKind::RemediationStarted)
            .min_by_key(|a| a.unix_ms)
            .map(|a| (a.at_us(run), a.author.clone(), a.text.clone()));
        let signalled = run.remediation_signal.as_ref().map(|s| {
            (
                s.at_us,
                format!("probe {}", s.probe),
                "the remediation signal turned good".to_string(),
            )
        });
        let stepped = run
            .remediation_steps
            .iter()
            .filter_map(|s| s.started.map(|m| (m.at_us, s)))
            .min_by_key(|(at, _)| *at)
            .map(|(at, s)| {
                (
                    at,
                    format!("remediation step {}", s.name),
                    format!("{} started on {}", s.command, s.place),
                )
            });
        let (at, by, text) = [noted, signalled, stepped]
            .into_iter()
            .flatten()
            .min_by_key(|(at, _, _)| *at)?;
        let alert_us = run.detection.as_ref().and_then(|d| {
            d.alert
                .as_ref()
                .map(|a| inject_us.saturating_add(a.delivered_after_us))
        });
        Some(Remediation {
            after_fault_us: at.saturating_sub(inject_us),
            after_alert_us: alert_us.map(|al| at.saturating_sub(al)),
            before_alert: alert_us.is_some_and(|al| at < al),
            by,
            text,
        })
    }

    /// One line for reports.
    pub fn line(&self) -> String {
        let alert = match (self.after_alert_us, self.before_alert) {
            (_, true) => ", before the alert".to_string(),
            (Some(us), false) => format!(", {} after the alert", fmt_us(us)),
            (None, _) => String::new(),
        };
        format!(
            "+{} after the fault{alert} ({}: {})",
            fmt_us(self.after_fault_us),
            self.by,
            self.text
        )
    }
}

/// Lines for a report: `+12.300s operator alice (action item): text`, in time order.
pub fn lines(run: &RunReport) -> Vec<String> {
    let mut notes: Vec<&Annotation> = run.annotations.iter().collect();
    notes.sort_by_key(|a| a.unix_ms);
    notes
        .into_iter()
        .map(|a| {
            let kind = match a.kind {
                AnnotationKind::Note => String::new(),
                k => format!(" ({})", k.label()),
            };
            format!("+{} {}{kind}: {}", fmt_us(a.at_us(run)), a.author, a.text)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::Moment;

    fn note(unix_ms: u64, kind: AnnotationKind, text: &str) -> Annotation {
        Annotation {
            unix_ms,
            author: "operator alice".into(),
            kind,
            text: text.into(),
        }
    }

    #[test]
    fn text_is_checked() {
        assert_eq!(check_text("  restarted redis \n"), Ok("restarted redis"));
        assert_eq!(check_text(" "), Err(AnnotationError::Empty));
        assert_eq!(check_text("a\u{7}b"), Err(AnnotationError::Control));
        assert_eq!(
            check_text(&"x".repeat(MAX_TEXT + 1)),
            Err(AnnotationError::TooLong(MAX_TEXT + 1))
        );
    }

    #[test]
    fn remediation_counts_from_the_fault_and_from_the_alert() {
        let mut run = crate::fixtures::run("r", crate::grade::Verdict::Pass, Some(1));
        run.started_unix_ms = 10_000;
        run.inject = Some(Moment {
            at_us: 1_000_000,
            uncertainty_us: 0,
        });
        run.annotations = vec![
            note(15_000, AnnotationKind::RemediationStarted, "promoted db-2"),
            note(12_000, AnnotationKind::Note, "paged"),
            note(16_000, AnnotationKind::RemediationStarted, "later"),
        ];
        let r = Remediation::of(&run).unwrap();
        assert_eq!(r.after_fault_us, 4_000_000);
        assert_eq!(r.after_alert_us, None);
        assert_eq!(
            r.line(),
            "+4.000s after the fault (operator alice: promoted db-2)"
        );
        assert_eq!(
            lines(&run),
            [
                "+2.000s operator alice: paged",
                "+5.000s operator alice (remediation started): promoted db-2",
                "+6.000s operator alice (remediation started): later",
            ]
        );
    }
}
