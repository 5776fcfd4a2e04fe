//! `[[faults]]`: each table read into a [`gameday_proto::Fault`] and checked, errors pointing
//! into that fault's table.

use std::ops::Range;

use gameday_proto::fault::FAULT_KINDS;
use gameday_proto::{Fault, FaultSpecError, ProcessKill};
use serde::Deserialize;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use super::error::Diagnostics;

/// One fault; `None` when it was reported as wrong.
pub(crate) fn fault(
    diagnostics: &mut Diagnostics<'_>,
    value: &Spanned<DeValue<'_>>,
    table: &DeTable<'_>,
) -> Option<Fault> {
    let header = value.span();
    let expected = FAULT_KINDS.join(", ");
    let Some(kind) = table.get("kind") else {
        diagnostics.error(
            header,
            format!("fault is missing `kind` (expected one of: {expected})"),
        );
        return None;
    };
    let Some(name) = kind.get_ref().as_str() else {
        diagnostics.error(
            kind.span(),
            format!("fault `kind` must be a string, one of: {expected}"),
        );
        return None;
    };
    if !FAULT_KINDS.contains(&name) {
        diagnostics.error(
            kind.span(),
            format!("unknown fault kind {name:?} (expected one of: {expected})"),
        );
        return None;
    }

    let fault = match deserialize(name, value) {
        Ok(fault) => fault,
        Err(e) => {
            diagnostics.toml_error(&e, Some(table), header);
            return None;
        }
    };
    if let Err(e) = fault.validate() {
        let at = spec_error_field(&e)
            .and_then(|field| value_span(table, field))
            .unwrap_or(header);
        diagnostics.error(at, e.to_string());
        return None;
    }
    // The agent matches processes with this regex; a pattern that does not compile would only
    // fail there, mid-run, so check it here.
    if let Fault::ProcessKill(ProcessKill {
        cmdline: Some(pattern),
        ..
    }) = &fault
    {
        if let Err(e) = regex::Regex::new(pattern) {
            let at = value_span(table, "cmdline").unwrap_or(header);
            diagnostics.error(at, FaultSpecError::Regex(regex_reason(&e)).to_string());
            return None;
        }
    }
    Some(fault)
}

/// Reads the fault's table. Kinds known here are read as their own struct, without the `kind`
/// key, so that errors keep the position of the offending key or value; serde's internally
/// tagged enums buffer their input and lose it. Other kinds (added to the proto crate later)
/// still parse through the enum, with errors at the fault's table.
fn deserialize(kind: &str, value: &Spanned<DeValue<'_>>) -> Result<Fault, toml::de::Error> {
    match kind {
        "process_kill" => ProcessKill::deserialize(ValueDeserializer::from(without_kind(value)))
            .map(Fault::ProcessKill),
        _ => through_enum(value),
    }
}

fn through_enum(value: &Spanned<DeValue<'_>>) -> Result<Fault, toml::de::Error> {
    Fault::deserialize(ValueDeserializer::from(value.clone()))
}

fn without_kind<'i>(value: &Spanned<DeValue<'i>>) -> Spanned<DeValue<'i>> {
    let mut value = value.clone();
    if let DeValue::Table(table) = value.get_mut() {
        table.remove("kind");
    }
    value
}

/// The field a spec error is about, when it is about one.
fn spec_error_field(error: &FaultSpecError) -> Option<&'static str> {
    match error {
        FaultSpecError::Signal { .. } => Some("signal"),
        FaultSpecError::Empty { field } => Some(field),
        FaultSpecError::Regex(_) => Some("cmdline"),
        _ => None,
    }
}

fn value_span(table: &DeTable<'_>, key: &str) -> Option<Range<usize>> {
    table.get(key).map(Spanned::span)
}

/// The reason alone: regex's own message spans several lines (pattern, caret, reason), and an
/// error here must fit on one.
fn regex_reason(error: &regex::Error) -> String {
    let text = error.to_string();
    let last = text
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .unwrap_or(&text);
    last.trim().trim_start_matches("error: ").to_string()
}
