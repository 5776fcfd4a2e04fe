//! Scenario files: parsing and whole-file validation with file, line and column in every error.
//!
//! A scenario is read in two steps. toml parses the text into its spanned tree; then each part
//! (the top level, `[targets]`, every `[[faults]]` and `[[probes]]` table) is deserialized on its
//! own and checked, so one pass reports every problem it can find, each at its own place. Nothing
//! runs unless the whole file is valid.

mod error;
mod fault;
mod position;
mod probe;
mod raw;
mod tree;
mod validate;

use std::collections::BTreeMap;
use std::path::Path;

use gameday_proto::{Duration, Fault};
use serde::{Deserialize, Serialize};

pub use error::{ScenarioError, ScenarioErrors};

use error::Diagnostics;

/// A validated scenario: what to break, where, how to watch the service, and how fast it must
/// come back.
///
/// Build one with [`parse`] or [`load`], which check everything. `Serialize` and `Deserialize`
/// are there for reports and run history, which embed the scenario; they do not validate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    /// Short name, used in reports and history.
    pub name: String,
    /// What the scenario does and why; empty when the file has none.
    pub description: String,
    /// Recovery time objective: the longest outage that still passes.
    pub rto: Duration,
    /// How many runs to make (each graded on its own, then together); at least 1.
    pub repeat: u32,
    /// Fraction of runs that must PASS for the scenario to pass, in (0, 1].
    pub min_pass_rate: f64,
    /// How long every probe must be healthy before the fault is injected; more than zero.
    pub steady_state: Duration,
    /// How long to watch for recovery after injection; at least the RTO.
    pub observe: Duration,
    /// Pause between repeats.
    pub cooldown: Duration,
    /// What the scenario expects the fault to do to the service.
    pub expect: Expectation,
    /// Which agents the faults are applied on.
    pub targets: Targets,
    /// The faults injected on every target; at least one, each valid.
    pub faults: Vec<Fault>,
    /// The probes watching the service; at least one, with unique names.
    pub probes: Vec<ProbeSpec>,
}

/// What the scenario expects the fault to do (`expect = "recovery" | "no_impact"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expectation {
    /// The service goes down and must come back within the RTO.
    #[default]
    Recovery,
    /// The service must not notice the fault at all (redundancy absorbs it).
    NoImpact,
}

/// The agents a scenario runs on: those named, plus those carrying all the labels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Targets {
    /// Agents by name (unique, non-empty).
    pub agents: Vec<String>,
    /// Labels an agent must all carry to be a target.
    pub labels: BTreeMap<String, String>,
    /// Blast-radius limit: the most agents one run may touch; at least 1 and at least the
    /// number of agents named.
    pub max_targets: u32,
}

/// One synthetic probe watching the service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeSpec {
    /// Name, unique within the scenario.
    pub name: String,
    /// Time between checks; at least 10ms.
    pub interval: Duration,
    /// How long one check may take before it counts as failed; more than zero.
    pub timeout: Duration,
    /// Consecutive successes that mark the service as recovered; at least 1.
    pub recovered_after: u32,
    /// What is checked.
    #[serde(flatten)]
    pub check: ProbeCheck,
}

/// What a probe checks (`kind = "tcp" | "http"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProbeCheck {
    /// A TCP connect to `host:port`.
    Tcp {
        /// `host:port`, `ip:port` or `[ipv6]:port`.
        address: String,
    },
    /// An HTTP GET whose status (and optionally body) must match.
    Http {
        /// `http://` URL (https is not supported yet).
        url: String,
        /// Expected status code; 200 unless set.
        expect_status: u16,
        /// Text the body must contain, when set.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expect_body: Option<String>,
    },
}

/// Parses and validates the scenario in `text`; `file_name` is only used in the errors.
///
/// Reports every problem found, in file order. A TOML syntax error stops the parse, so it is
/// reported alone.
pub fn parse(file_name: &str, text: &str) -> Result<Scenario, ScenarioErrors> {
    let mut diagnostics = Diagnostics::new(file_name, text);
    let scenario = validate::scenario(&mut diagnostics, text);
    match scenario {
        Some(scenario) if diagnostics.is_empty() => Ok(scenario),
        _ => {
            if diagnostics.is_empty() {
                // Every step that gives up reports why; this only guards that promise.
                diagnostics.error(0..0, "the scenario is incomplete");
            }
            Err(diagnostics.into_errors())
        }
    }
}

/// Reads the scenario file at `path` and validates it with [`parse`].
///
/// A file that cannot be read is reported as an error at line 1, column 1 of that file; bytes
/// that are not UTF-8 are reported where they are.
pub fn load(path: &Path) -> Result<Scenario, ScenarioErrors> {
    let file_name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| {
        let mut diagnostics = Diagnostics::new(&file_name, "");
        diagnostics.error(0..0, format!("cannot read the scenario: {e}"));
        diagnostics.into_errors()
    })?;
    match String::from_utf8(bytes) {
        Ok(text) => parse(&file_name, &text),
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let text = String::from_utf8_lossy(&e.as_bytes()[..valid]).into_owned();
            let mut diagnostics = Diagnostics::new(&file_name, &text);
            diagnostics.error(valid..valid, "the file is not valid UTF-8 text");
            Err(diagnostics.into_errors())
        }
    }
}
