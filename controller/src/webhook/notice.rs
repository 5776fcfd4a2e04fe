//! What a webhook says about a scheduled firing: the [`Notice`] (the JSON body) and its
//! Slack-compatible text.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{report_link, WebhookFormat};
use crate::grade::fmt_us;
use crate::report::{exit, ScenarioReport};

/// When a scheduled firing happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Firing {
    /// The cron slot it was for.
    pub slot: DateTime<Utc>,
    /// When the run started.
    pub started: DateTime<Utc>,
    /// When it ended.
    pub finished: DateTime<Utc>,
    /// A catch-up for slots missed while the controller was down.
    pub catch_up: bool,
}

/// One run in a [`Notice`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NoticeRun {
    /// Run id.
    pub run_id: String,
    /// PASS, FAIL, NO_IMPACT, INCONCLUSIVE, ABORTED or ERROR.
    pub verdict: String,
    /// Why, in one sentence.
    pub reason: String,
    /// Whether the verdict is what the scenario expects.
    pub met_expectation: bool,
    /// Recovery time, microseconds, when the service recovered.
    pub time_to_recover_us: Option<u64>,
}

/// What a webhook says about a scheduled firing (the JSON body; Slack gets [`Notice::text`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    /// `"finished"` when the scenario ran (whatever its verdict), `"error"` when it could not
    /// (unreadable or invalid scenario file).
    pub event: String,
    /// The schedule's name.
    pub schedule: String,
    /// The scenario's name (the file's stem when it could not be read).
    pub scenario: String,
    /// The scenario file.
    pub file: String,
    /// Timing.
    #[serde(flatten)]
    pub firing: Firing,
    /// `ok`, `breach`, `invalid`, `inconclusive` or `infra`: the exit code in words.
    pub result: String,
    /// The process exit code this outcome maps to (0 ok, 1 breach, 2 invalid, 3
    /// inconclusive, 4 infrastructure), as `gameday run` would exit.
    pub exit_code: i32,
    /// The scenario's verdict, as every report says it: PASS, FAIL, INCONCLUSIVE, ABORTED or
    /// ERROR; INVALID when the scenario could not be read.
    #[serde(default)]
    pub verdict: String,
    /// Why, with the pass rate's arithmetic (the reports' summary line).
    #[serde(default)]
    pub summary: String,
    /// Every run's verdict, in order.
    pub verdicts: Vec<String>,
    /// The runs.
    pub runs: Vec<NoticeRun>,
    /// The run ids, in order.
    pub run_ids: Vec<String>,
    /// Runs that met the expectation.
    pub passed: u32,
    /// passed / graded runs.
    pub pass_rate: f64,
    /// The scenario's required pass rate.
    pub min_pass_rate: f64,
    /// The scenario's RTO, microseconds.
    pub rto_us: Option<u64>,
    /// Recovery time percentiles over the runs that recovered, microseconds.
    pub recovery_p50_us: Option<u64>,
    /// 95th percentile.
    pub recovery_p95_us: Option<u64>,
    /// Worst.
    pub recovery_max_us: Option<u64>,
    /// What stopped the firing before or instead of a run, if anything.
    pub error: Option<String>,
    /// The last run's report: a URL (`report_url`) or the `gameday report RUN` command.
    pub report: Option<String>,
}

/// `exit` code in words.
fn result_word(code: i32) -> &'static str {
    match code {
        exit::OK => "ok",
        exit::BREACH => "breach",
        exit::INVALID => "invalid",
        exit::INCONCLUSIVE => "inconclusive",
        _ => "infra",
    }
}

impl Notice {
    /// The notice of a scenario that ran.
    pub fn finished(
        schedule: &str,
        firing: Firing,
        report: &ScenarioReport,
        report_url: Option<&str>,
    ) -> Notice {
        let s = &report.summary;
        let runs: Vec<NoticeRun> = report
            .runs
            .iter()
            .map(|r| NoticeRun {
                run_id: r.run_id.clone(),
                verdict: r.verdict.to_string(),
                reason: r.reason.clone(),
                met_expectation: r.met_expectation,
                time_to_recover_us: r
                    .grade
                    .as_ref()
                    .and_then(|g| g.time_to_recover.map(|m| m.us)),
            })
            .collect();
        Notice {
            event: "finished".into(),
            schedule: schedule.into(),
            scenario: report.scenario.clone(),
            file: report.file.clone(),
            firing,
            result: result_word(s.exit_code).into(),
            exit_code: s.exit_code,
            verdict: s.verdict.to_string(),
            summary: s.reason.clone(),
            verdicts: runs.iter().map(|r| r.verdict.clone()).collect(),
            run_ids: runs.iter().map(|r| r.run_id.clone()).collect(),
            report: runs.last().map(|r| report_link(report_url, &r.run_id)),
            runs,
            passed: s.passed,
            pass_rate: s.pass_rate,
            min_pass_rate: s.min_pass_rate,
            rto_us: Some(report.rto_us),
            recovery_p50_us: s.recovery_p50_us,
            recovery_p95_us: s.recovery_p95_us,
            recovery_max_us: s.recovery_max_us,
            error: report.error.clone(),
        }
    }

    /// The notice of a firing whose scenario file could not be read or is invalid.
    pub fn invalid(schedule: &str, file: &Path, firing: Firing, error: String) -> Notice {
        Notice {
            event: "error".into(),
            schedule: schedule.into(),
            scenario: file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            file: file.display().to_string(),
            firing,
            result: result_word(exit::INVALID).into(),
            exit_code: exit::INVALID,
            verdict: "INVALID".into(),
            summary: String::new(),
            verdicts: vec![],
            runs: vec![],
            run_ids: vec![],
            passed: 0,
            pass_rate: 0.0,
            min_pass_rate: 0.0,
            rto_us: None,
            recovery_p50_us: None,
            recovery_p95_us: None,
            recovery_max_us: None,
            error: Some(error),
            report: None,
        }
    }

    /// One-line outcome: `PASS`, `FAIL, PASS`, or `ERROR: why`.
    pub fn outcome(&self) -> String {
        match (&self.error, self.verdicts.is_empty()) {
            (Some(e), true) => format!("ERROR: {e}"),
            _ => self.verdicts.join(", "),
        }
    }

    /// The Slack-compatible text (mrkdwn).
    pub fn text(&self) -> String {
        let icon = match self.exit_code {
            exit::OK => ":white_check_mark:",
            exit::BREACH => ":rotating_light:",
            exit::INCONCLUSIVE => ":grey_question:",
            _ => ":x:",
        };
        let catch_up = if self.firing.catch_up {
            " (catch-up for a missed slot)"
        } else {
            ""
        };
        let verdict = if self.verdict.is_empty() {
            self.result.to_uppercase()
        } else {
            self.verdict.clone()
        };
        let mut text = format!(
            "{icon} *gameday* schedule `{}`{catch_up}: scenario *{}* — *{verdict}*",
            self.schedule, self.scenario,
        );
        if let Some(e) = &self.error {
            text.push_str(&format!("\n{e}"));
        }
        if !self.runs.is_empty() {
            text.push_str(&format!(
                "\nruns: {} — {}",
                self.verdicts.join(", "),
                self.summary
            ));
        }
        if let (Some(p50), Some(p95), Some(max)) = (
            self.recovery_p50_us,
            self.recovery_p95_us,
            self.recovery_max_us,
        ) {
            text.push_str(&format!(
                "\nrecovery p50 {} · p95 {} · max {}",
                fmt_us(p50),
                fmt_us(p95),
                fmt_us(max)
            ));
            if let Some(rto) = self.rto_us {
                text.push_str(&format!(" (RTO {})", fmt_us(rto)));
            }
        }
        if let Some(report) = &self.report {
            if report.starts_with("http://") || report.starts_with("https://") {
                text.push_str(&format!("\nreport: <{report}|{}>", self.run_ids.join(", ")));
            } else {
                text.push_str(&format!("\nreport: `{report}`"));
            }
        }
        text
    }

    /// The request body in `format`.
    pub fn body(&self, format: WebhookFormat) -> Vec<u8> {
        let value = match format {
            WebhookFormat::Json => serde_json::to_value(self),
            WebhookFormat::Slack => Ok(serde_json::json!({ "text": self.text() })),
        };
        value
            .and_then(|v| serde_json::to_vec(&v))
            .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}").into_bytes())
    }
}
