//! Scheduled game days (being built).

use serde::Deserialize;

/// One `[[schedules]]` entry of the controller config.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// The scenario file to run.
    pub scenario: std::path::PathBuf,
}
