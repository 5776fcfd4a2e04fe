//! What became of a run's remediation steps (`[[remediation]]`): when each was triggered,
//! started and ended on the run's timeline, how it ended, and the tail of its output; and their
//! success rate over runs, the RTO guide's "recovery automation success" (M8).

use serde::{Deserialize, Serialize};

use crate::grade::fmt_us;
use crate::timeline::Moment;

/// Most bytes of a step's output kept (the agent keeps no more either).
pub const MAX_OUTPUT_TAIL: usize = 4096;

/// One remediation step of one run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    /// The step's name.
    pub name: String,
    /// Where it ran: "agent db-2" or "runbook page-db".
    pub place: String,
    /// What it ran: the command, or the runbook's redacted address.
    pub command: String,
    /// What was to start it ("when the alert arrives").
    pub trigger: String,
    /// When its trigger came, µs since the run's epoch; `None` when it never came.
    pub triggered_us: Option<u64>,
    /// When the command started (or the call was made).
    pub started: Option<Moment>,
    /// When it ended.
    pub ended: Option<Moment>,
    /// How it went.
    pub outcome: StepOutcome,
    /// The last bytes of its output (or the runbook's answer), lossy UTF-8.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub output_tail: String,
}

/// How a remediation step went.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum StepOutcome {
    /// Exited 0, or the runbook answered 2xx.
    Succeeded {
        /// "exit 0", "HTTP 200".
        how: String,
    },
    /// Ran and failed: a non-zero exit, a signal, its timeout, an error answer; or it could
    /// not be started (refused, not found, unreachable).
    Failed {
        /// "exit 3", "killed by SIGKILL", "timed out after 60s", "HTTP 500"...
        how: String,
    },
    /// Its trigger never came while the run observed.
    NotRun {
        /// Why.
        why: String,
    },
    /// It was started but its end is unknown (the agent disconnected, the run was stopped).
    Unknown {
        /// Why.
        why: String,
    },
}

impl StepOutcome {
    /// Counts against the automation's success rate: it was started (or tried to be).
    pub fn attempted(&self) -> bool {
        !matches!(self, StepOutcome::NotRun { .. })
    }

    /// A one-word status for tables: succeeded, failed, not run, unknown.
    pub fn word(&self) -> &'static str {
        match self {
            StepOutcome::Succeeded { .. } => "succeeded",
            StepOutcome::Failed { .. } => "failed",
            StepOutcome::NotRun { .. } => "not run",
            StepOutcome::Unknown { .. } => "unknown",
        }
    }

    /// The metric label value.
    pub fn label(&self) -> &'static str {
        match self {
            StepOutcome::Succeeded { .. } => "succeeded",
            StepOutcome::Failed { .. } => "failed",
            StepOutcome::NotRun { .. } => "not_run",
            StepOutcome::Unknown { .. } => "unknown",
        }
    }
}

impl std::fmt::Display for StepOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepOutcome::Succeeded { how } => write!(f, "succeeded ({how})"),
            StepOutcome::Failed { how } => write!(f, "FAILED ({how})"),
            StepOutcome::NotRun { why } => write!(f, "not run: {why}"),
            StepOutcome::Unknown { why } => write!(f, "outcome unknown: {why}"),
        }
    }
}

impl StepRecord {
    /// One line for reports: `restart-nginx on agent web1 (when the alert arrives): started
    /// +2.104s, ended +2.361s (took 257.0ms): succeeded (exit 0)`.
    pub fn line(&self) -> String {
        let times = match (&self.started, &self.ended) {
            (Some(s), Some(e)) => format!(
                "started +{}, ended +{} (took {}): ",
                fmt_us(s.at_us),
                fmt_us(e.at_us),
                fmt_us(e.at_us.saturating_sub(s.at_us))
            ),
            (Some(s), None) => format!("started +{}: ", fmt_us(s.at_us)),
            _ => String::new(),
        };
        format!(
            "{} on {} ({}): {times}{}",
            self.name, self.place, self.trigger, self.outcome
        )
    }

    /// The last `n` lines of its output, for text reports.
    pub fn output_lines(&self, n: usize) -> Vec<&str> {
        let lines: Vec<&str> = self.output_tail.lines().collect();
        lines[lines.len().saturating_sub(n)..].to_vec()
    }
}

/// Keeps the last [`MAX_OUTPUT_TAIL`] bytes of `text`, cut at a character boundary.
pub fn tail(text: &str) -> String {
    let mut start = text.len().saturating_sub(MAX_OUTPUT_TAIL);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_string()
}

/// Remediation steps over runs: how many were attempted and how many succeeded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepTally {
    /// Steps started (or that failed to start).
    pub attempted: u32,
    /// Of those, how many succeeded.
    pub succeeded: u32,
}

impl StepTally {
    /// The tally over `steps` of many runs.
    pub fn of<'a>(steps: impl IntoIterator<Item = &'a StepRecord>) -> StepTally {
        steps
            .into_iter()
            .filter(|s| s.outcome.attempted())
            .fold(StepTally::default(), |t, s| StepTally {
                attempted: t.attempted + 1,
                succeeded: t.succeeded
                    + u32::from(matches!(s.outcome, StepOutcome::Succeeded { .. })),
            })
    }

    /// No step was attempted.
    pub fn is_empty(&self) -> bool {
        self.attempted == 0
    }

    /// "3 of 4 succeeded (75%)", or `None` when no step was attempted.
    pub fn line(&self) -> Option<String> {
        (self.attempted > 0).then(|| {
            format!(
                "{} of {} succeeded ({:.0}%)",
                self.succeeded,
                self.attempted,
                f64::from(self.succeeded) * 100.0 / f64::from(self.attempted)
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(outcome: StepOutcome) -> StepRecord {
        StepRecord {
            name: "restart".into(),
            place: "agent web1".into(),
            command: "/usr/local/bin/restart".into(),
            trigger: "when the alert arrives".into(),
            triggered_us: Some(2_000_000),
            started: Some(Moment {
                at_us: 2_100_000,
                uncertainty_us: 300,
            }),
            ended: Some(Moment {
                at_us: 2_350_000,
                uncertainty_us: 300,
            }),
            outcome,
            output_tail: "one\ntwo\nthree\n".into(),
        }
    }

    #[test]
    fn a_step_reads_as_one_line_with_its_times_and_outcome() {
        let s = step(StepOutcome::Succeeded {
            how: "exit 0".into(),
        });
        assert_eq!(
            s.line(),
            "restart on agent web1 (when the alert arrives): started +2.100s, ended +2.350s \
             (took 250.0ms): succeeded (exit 0)"
        );
        assert_eq!(s.output_lines(2), ["two", "three"]);
    }

    #[test]
    fn the_success_rate_counts_only_attempted_steps() {
        let ok = step(StepOutcome::Succeeded {
            how: "exit 0".into(),
        });
        let failed = step(StepOutcome::Failed {
            how: "exit 1".into(),
        });
        let skipped = step(StepOutcome::NotRun {
            why: "no alert".into(),
        });
        let tally = StepTally::of([&ok, &failed, &skipped, &ok]);
        assert_eq!(
            tally,
            StepTally {
                attempted: 3,
                succeeded: 2
            }
        );
        assert_eq!(tally.line().unwrap(), "2 of 3 succeeded (67%)");
        assert_eq!(StepTally::of([&skipped]).line(), None);
    }

    #[test]
    fn the_tail_keeps_the_end_on_a_character_boundary() {
        let text = format!("{}é{}", "a".repeat(10), "b".repeat(MAX_OUTPUT_TAIL - 1));
        let t = tail(&text);
        assert!(t.len() <= MAX_OUTPUT_TAIL);
        assert!(t.ends_with('b') && t.starts_with('b'));
        assert_eq!(tail("short"), "short");
    }
}
