//! Scheduled game days: `[[schedules]]` in the controller config. Each names a scenario file, a
//! cron expression read in an IANA time zone, an optional daily window the run must start in,
//! what to do about firings missed while the controller was down, and a webhook told about
//! every outcome.
//!
//! The config is checked whole at load ([`ScheduleConfig::validate`], [`validate_all`]); the
//! scenario file itself is read and validated fresh at every firing, so a fix to it needs no
//! restart and a broken one is reported, never fatal.

mod book;
mod scheduler;
mod state;
#[cfg(test)]
mod tests;
mod timing;
mod window;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::webhook::{WebhookFormat, WebhookTarget};

pub use book::{ScheduleBook, ScheduleStatus};
pub use scheduler::Scheduler;
pub use state::{LastRun, LastSkip, ScheduleState, StateFile, StateStore, STATE_FILE};
pub use timing::{Schedule, Slots, StartPlan};
pub use window::Window;

/// One `[[schedules]]` entry of the controller config, as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Unique name: logs, webhooks, the state file and `gameday schedules` use it.
    pub name: String,
    /// The scenario file to run; relative paths are resolved against the config file's
    /// directory by [`ScheduleConfig::resolve_paths`].
    pub scenario: PathBuf,
    /// Cron expression: 5 fields (minute first) or 6 (seconds first), with an optional year.
    pub cron: String,
    /// IANA time zone the expression and the window are read in (default `UTC`).
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// The run only starts inside this daily window (local time in `timezone`).
    #[serde(default)]
    pub window: Option<WindowConfig>,
    /// Firings missed while the controller was down: `skip` (default) or `run_once`.
    #[serde(default)]
    pub missed: MissedPolicy,
    /// URL told about every outcome (`http://` or `https://`).
    #[serde(default)]
    pub webhook: Option<String>,
    /// Body of the webhook: `json` (default) or `slack` (`{"text": ...}`).
    #[serde(default)]
    pub webhook_format: WebhookFormat,
    /// PEM CA bundle to trust for an `https://` webhook instead of the system's roots.
    #[serde(default)]
    pub webhook_ca: Option<PathBuf>,
    /// Link to a run's report for the webhook, with `{run_id}` replaced; without it the webhook
    /// carries the `gameday report RUN` command.
    #[serde(default)]
    pub report_url: Option<String>,
}

/// `window = { start = "09:00", end = "17:00" }`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// First minute inside the window, `HH:MM`.
    pub start: String,
    /// First minute after the window, `HH:MM`; earlier than `start` for a window over midnight.
    pub end: String,
}

/// What happens to firings missed while the controller was down.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissedPolicy {
    /// Forget them; wait for the next slot.
    #[default]
    Skip,
    /// Run once right away (however many were missed), then keep to the schedule.
    RunOnce,
}

impl std::fmt::Display for MissedPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MissedPolicy::Skip => "skip",
            MissedPolicy::RunOnce => "run_once",
        })
    }
}

fn default_timezone() -> String {
    "UTC".into()
}

/// A `[[schedules]]` entry that cannot be used. Every message names the schedule.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// Empty or unusable name.
    #[error(
        "schedule {0:?}: the name must be non-empty and use only letters, digits, '-', '_' and '.'"
    )]
    Name(String),
    /// Two schedules share a name.
    #[error("schedule {0:?} is defined twice; names must be unique")]
    Duplicate(String),
    /// The cron expression does not parse.
    #[error("schedule {schedule:?}: invalid cron {cron:?}: {message}")]
    Cron {
        /// The schedule.
        schedule: String,
        /// The expression.
        cron: String,
        /// Why.
        message: String,
    },
    /// Not an IANA time zone name.
    #[error("schedule {schedule:?}: unknown time zone {timezone:?} (use an IANA name such as \"Europe/Paris\" or \"UTC\")")]
    Timezone {
        /// The schedule.
        schedule: String,
        /// What was written.
        timezone: String,
    },
    /// The window is malformed or empty.
    #[error("schedule {schedule:?}: invalid window: {message}")]
    Window {
        /// The schedule.
        schedule: String,
        /// Why.
        message: String,
    },
    /// The scenario file is not there.
    #[error("schedule {schedule:?}: scenario file {path} does not exist")]
    ScenarioMissing {
        /// The schedule.
        schedule: String,
        /// The resolved path.
        path: String,
    },
    /// The webhook settings are unusable.
    #[error("schedule {schedule:?}: {message}")]
    Webhook {
        /// The schedule.
        schedule: String,
        /// Why.
        message: String,
    },
}

impl ScheduleConfig {
    /// Resolves relative paths (`scenario`, `webhook_ca`) against `base`, the config file's
    /// directory, as the loader does for the TLS files.
    pub fn resolve_paths(&mut self, base: &Path) {
        for p in [Some(&mut self.scenario), self.webhook_ca.as_mut()]
            .into_iter()
            .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }

    /// Checks everything that can be checked before the first firing: name, cron, time zone,
    /// window, webhook URL and CA, report URL, and that the scenario file exists (its contents
    /// are validated at every firing).
    pub fn validate(&self) -> Result<(), String> {
        self.compile().map(|_| ()).map_err(|e| e.to_string())
    }

    /// The checked, ready-to-use schedule.
    pub fn compile(&self) -> Result<Schedule, ScheduleError> {
        let name = self.name.clone();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(ScheduleError::Name(name));
        }
        let cron = timing::parse_cron(&self.cron).map_err(|message| ScheduleError::Cron {
            schedule: name.clone(),
            cron: self.cron.clone(),
            message,
        })?;
        let tz: chrono_tz::Tz = self.timezone.parse().map_err(|_| ScheduleError::Timezone {
            schedule: name.clone(),
            timezone: self.timezone.clone(),
        })?;
        let window = self
            .window
            .as_ref()
            .map(|w| Window::parse(&w.start, &w.end))
            .transpose()
            .map_err(|message| ScheduleError::Window {
                schedule: name.clone(),
                message,
            })?;
        if !self.scenario.is_file() {
            return Err(ScheduleError::ScenarioMissing {
                schedule: name,
                path: self.scenario.display().to_string(),
            });
        }
        let webhook_error = |message: String| ScheduleError::Webhook {
            schedule: name.clone(),
            message,
        };
        let webhook = match &self.webhook {
            Some(url) => Some(
                WebhookTarget::new(
                    url,
                    self.webhook_format,
                    self.webhook_ca.as_deref(),
                    self.report_url.as_deref(),
                )
                .map_err(|e| webhook_error(e.to_string()))?,
            ),
            None => {
                if self.webhook_ca.is_some() || self.report_url.is_some() {
                    return Err(webhook_error(
                        "webhook_ca and report_url only make sense with a webhook".into(),
                    ));
                }
                None
            }
        };
        Ok(Schedule {
            name: self.name.clone(),
            scenario: self.scenario.clone(),
            cron_text: self.cron.clone(),
            cron,
            tz,
            window,
            missed: self.missed,
            webhook,
        })
    }
}

/// Validates every schedule and that their names are unique; the first problem is returned.
pub fn validate_all(schedules: &[ScheduleConfig]) -> Result<(), String> {
    let mut seen = BTreeSet::new();
    for s in schedules {
        s.validate()?;
        if !seen.insert(s.name.as_str()) {
            return Err(ScheduleError::Duplicate(s.name.clone()).to_string());
        }
    }
    Ok(())
}
