//! Limits on what operators send, checked before any work is spent on it, so one oversized or
//! hostile request cannot stall probes, heartbeats or grading.

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::scenario::{ScenarioErrors, ScenarioFile};

/// The largest scenario file accepted, in bytes (1 MiB: real scenarios are a few KiB).
pub const MAX_SCENARIO_BYTES: usize = 1024 * 1024;

/// The largest gRPC message the controller decodes: a scenario at its limit plus its envelope.
pub const MAX_REQUEST_BYTES: usize = MAX_SCENARIO_BYTES + 64 * 1024;

/// Why a scenario sent to the controller was refused.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioRefusal {
    /// Over [`MAX_SCENARIO_BYTES`].
    #[error("{file}: {}", oversize(*.bytes))]
    TooLarge {
        /// The file as the operator named it.
        file: String,
        /// Its size.
        bytes: usize,
    },
    /// Validation found problems.
    #[error("{0}")]
    Invalid(ScenarioErrors),
    /// Validation itself failed (a bug): reported, never a stall or a crash.
    #[error("{file}: validation failed unexpectedly: {message}")]
    Crashed {
        /// The file.
        file: String,
        /// What went wrong.
        message: String,
    },
}

impl ScenarioRefusal {
    /// A one-line summary for a gRPC status message (the full list goes in the stream body,
    /// where no header size limit applies).
    pub fn summary(&self) -> String {
        match self {
            ScenarioRefusal::Invalid(e) => format!(
                "the scenario is invalid ({} problem{}); the stream's `invalid` event lists them",
                e.total(),
                if e.total() == 1 { "" } else { "s" }
            ),
            other => other.to_string(),
        }
    }
}

/// What is wrong with a scenario of `bytes` bytes over [`MAX_SCENARIO_BYTES`], in the words
/// every path that reads a scenario uses.
pub fn oversize(bytes: usize) -> String {
    format!("the scenario is {bytes} bytes; the limit is {MAX_SCENARIO_BYTES} bytes (1 MiB)")
}

/// Checks a scenario's size before anything reads it.
pub fn check_scenario_size(file: &str, text: &str) -> Result<(), ScenarioRefusal> {
    if text.len() > MAX_SCENARIO_BYTES {
        return Err(ScenarioRefusal::TooLarge {
            file: file.to_string(),
            bytes: text.len(),
        });
    }
    Ok(())
}

/// Validates scenarios off the async workers, one at a time: validation is CPU work, and on a
/// small controller two hostile files validating at once must still leave a core to the
/// probes and the agents' heartbeats.
#[derive(Clone)]
pub struct Validator {
    permits: Arc<Semaphore>,
}

impl Default for Validator {
    fn default() -> Self {
        Validator {
            permits: Arc::new(Semaphore::new(1)),
        }
    }
}

impl Validator {
    /// Parses and validates `text` on a blocking thread after checking its size.
    pub async fn parse(&self, file: String, text: String) -> Result<ScenarioFile, ScenarioRefusal> {
        check_scenario_size(&file, &text)?;
        let _permit =
            self.permits
                .clone()
                .acquire_owned()
                .await
                .map_err(|e| ScenarioRefusal::Crashed {
                    file: file.clone(),
                    message: e.to_string(),
                })?;
        let name = file.clone();
        tokio::task::spawn_blocking(move || {
            ScenarioFile::parse(&file, text).map_err(ScenarioRefusal::Invalid)
        })
        .await
        .map_err(|e| ScenarioRefusal::Crashed {
            file: name,
            message: e.to_string(),
        })?
    }
}
