//! The serde shapes of a scenario file, as written: every field optional and spanned, so that
//! validation can report missing or wrong values at their place, many at a time.
//!
//! Unknown keys are rejected here (`deny_unknown_fields`). Integers are read as `i64` so that a
//! negative or zero count gets the same clear message as any other out-of-range value.

use std::collections::BTreeMap;

use serde::de::IgnoredAny;
use serde::Deserialize;
use toml::Spanned;

/// The top level. `[targets]`, `[[faults]]` and `[[probes]]` are read one by one afterwards,
/// so that an error in one does not hide the errors in the others; here they are only skipped.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawScenario {
    pub name: Option<Spanned<String>>,
    pub description: Option<String>,
    pub rto: Option<Spanned<String>>,
    pub repeat: Option<Spanned<i64>>,
    pub min_pass_rate: Option<Spanned<f64>>,
    pub steady_state: Option<Spanned<String>>,
    pub observe: Option<Spanned<String>>,
    pub cooldown: Option<Spanned<String>>,
    pub expect: Option<Spanned<String>>,
    pub revert: Option<Spanned<String>>,
    #[allow(dead_code)]
    pub targets: Option<IgnoredAny>,
    #[allow(dead_code)]
    pub faults: Option<IgnoredAny>,
    #[allow(dead_code)]
    pub probes: Option<IgnoredAny>,
}

/// `[targets]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTargets {
    pub agents: Option<Vec<Spanned<String>>>,
    pub labels: Option<BTreeMap<Spanned<String>, Spanned<String>>>,
    pub max_targets: Option<Spanned<i64>>,
}

/// One `[[probes]]` table: the fields of every kind, checked against its `kind` afterwards.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProbe {
    pub name: Option<Spanned<String>>,
    pub kind: Option<Spanned<String>>,
    pub interval: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    pub recovered_after: Option<Spanned<i64>>,
    /// tcp
    pub address: Option<Spanned<String>>,
    /// http
    pub url: Option<Spanned<String>>,
    /// http
    pub expect_status: Option<Spanned<i64>>,
    /// http
    pub expect_body: Option<Spanned<String>>,
    /// dns
    pub server: Option<Spanned<String>>,
    /// dns
    pub query: Option<Spanned<String>>,
    /// dns
    pub record: Option<Spanned<String>>,
    /// dns
    pub expect: Option<Spanned<Vec<Spanned<String>>>>,
}
