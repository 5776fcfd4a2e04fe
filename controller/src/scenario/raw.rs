//! The shapes of a scenario file as written: every field read on its own with its place, so
//! that validation can report missing, wrong and unknown values at their place, all at once.
//!
//! Integers are read as `i64` so that a negative or zero count gets the same clear message as
//! any other out-of-range value.

use std::collections::BTreeMap;

use toml::de::DeTable;
use toml::Spanned;

use super::error::Diagnostics;
use super::fields::{Field, Fields};

/// The top level. `[targets]`, `[[faults]]` and `[[probes]]` are read one by one afterwards,
/// so that an error in one does not hide the errors in the others; here they are only known.
pub(crate) struct RawScenario {
    pub name: Field<String>,
    pub description: Field<String>,
    pub rto: Field<String>,
    pub repeat: Field<i64>,
    pub min_pass_rate: Field<f64>,
    pub steady_state: Field<String>,
    pub observe: Field<String>,
    pub cooldown: Field<String>,
    pub expect: Field<String>,
    pub revert: Field<String>,
    pub recovery: Field<String>,
}

impl RawScenario {
    /// Reads the top-level table, reporting wrong types and unknown keys.
    pub(crate) fn read(diagnostics: &mut Diagnostics<'_>, table: &DeTable<'_>) -> Self {
        let mut fields = Fields::new(table);
        let d = diagnostics;
        let raw = Self {
            name: fields.take(d, "name"),
            description: fields.take(d, "description"),
            rto: fields.take(d, "rto"),
            repeat: fields.take(d, "repeat"),
            min_pass_rate: fields.take(d, "min_pass_rate"),
            steady_state: fields.take(d, "steady_state"),
            observe: fields.take(d, "observe"),
            cooldown: fields.take(d, "cooldown"),
            expect: fields.take(d, "expect"),
            revert: fields.take(d, "revert"),
            recovery: fields.take(d, "recovery"),
        };
        for part in [
            "targets",
            "faults",
            "probes",
            "detect",
            "stages",
            "remediation",
        ] {
            fields.skip(part);
        }
        fields.reject_unknown(d);
        raw
    }
}

/// `[targets]`.
pub(crate) struct RawTargets {
    pub agents: Field<Vec<Spanned<String>>>,
    pub labels: Field<BTreeMap<Spanned<String>, Spanned<String>>>,
    pub max_targets: Field<i64>,
}

impl RawTargets {
    /// Reads `[targets]`, reporting wrong types and unknown keys.
    pub(crate) fn read(diagnostics: &mut Diagnostics<'_>, table: &DeTable<'_>) -> Self {
        let mut fields = Fields::new(table);
        let d = diagnostics;
        let raw = Self {
            agents: fields.take(d, "agents"),
            labels: fields.take(d, "labels"),
            max_targets: fields.take(d, "max_targets"),
        };
        fields.reject_unknown(d);
        raw
    }
}

/// One `[[probes]]` table: the fields of every kind, checked against its `kind` afterwards.
pub(crate) struct RawProbe {
    pub name: Field<String>,
    pub kind: Field<String>,
    pub interval: Field<String>,
    pub timeout: Field<String>,
    pub recovered_after: Field<i64>,
    pub max_in_flight: Field<i64>,
    pub spread: Field<i64>,
    pub seed: Field<i64>,
    pub signals: Field<String>,
    /// tcp
    pub address: Field<String>,
    /// http
    pub url: Field<String>,
    /// http
    pub expect_status: Field<i64>,
    /// http
    pub expect_body: Field<String>,
    /// dns
    pub server: Field<String>,
    /// dns
    pub query: Field<String>,
    /// dns
    pub record: Field<String>,
    /// dns
    pub expect: Field<Vec<Spanned<String>>>,
}

impl RawProbe {
    /// Reads one probe table, reporting wrong types and unknown keys.
    pub(crate) fn read(diagnostics: &mut Diagnostics<'_>, table: &DeTable<'_>) -> Self {
        let mut fields = Fields::new(table);
        let d = diagnostics;
        let raw = Self {
            name: fields.take(d, "name"),
            kind: fields.take(d, "kind"),
            interval: fields.take(d, "interval"),
            timeout: fields.take(d, "timeout"),
            recovered_after: fields.take(d, "recovered_after"),
            max_in_flight: fields.take(d, "max_in_flight"),
            spread: fields.take(d, "spread"),
            seed: fields.take(d, "seed"),
            signals: fields.take(d, "signals"),
            address: fields.take(d, "address"),
            url: fields.take(d, "url"),
            expect_status: fields.take(d, "expect_status"),
            expect_body: fields.take(d, "expect_body"),
            server: fields.take(d, "server"),
            query: fields.take(d, "query"),
            record: fields.take(d, "record"),
            expect: fields.take(d, "expect"),
        };
        fields.reject_unknown(d);
        raw
    }
}
