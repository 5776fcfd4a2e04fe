//! `[[probes]]`: each table read into a [`ProbeSpec`], with the fields checked against its kind.
//! The kinds' own fields are read in `kinds`, and their addresses, URLs and names checked in
//! `address`.

mod address;
#[cfg(test)]
mod dns_tests;
mod kinds;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::ops::Range;

use gameday_proto::Duration;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::echo;
use super::error::Diagnostics;
use super::fields::Field;
use super::limits::{
    MAX_PROBE_INTERVAL, MAX_PROBE_IN_FLIGHT, MAX_PROBE_SPREAD, MAX_PROBE_TIMEOUT,
    MAX_RECOVERED_AFTER, MIN_PROBE_INTERVAL,
};
use super::names::check_name;
use super::raw::RawProbe;
use super::settings::{bounded_duration, count, Lower};
use super::tree::key_span;
use super::ProbeSpec;
use kinds::{dns, http, tcp};

/// Probe kinds by the name scenarios use.
pub(crate) const PROBE_KINDS: &[&str] = &["tcp", "http", "dns"];

const DEFAULT_INTERVAL: Duration = Duration::from_millis(100);
const DEFAULT_TIMEOUT: Duration = Duration::from_millis(1_000);
const DEFAULT_RECOVERED_AFTER: u32 = 3;
const DEFAULT_STATUS: u16 = 200;
/// The port of a dns probe's `server` written without one.
const DNS_PORT: u16 = 53;

const TCP_FIELDS: &[&str] = &["address"];
const HTTP_FIELDS: &[&str] = &["url", "expect_status", "expect_body"];
const DNS_FIELDS: &[&str] = &["server", "query", "record", "expect"];

/// Every probe, with names checked for uniqueness; `None` entries were reported as wrong.
pub(crate) fn probes(
    diagnostics: &mut Diagnostics<'_>,
    tables: Vec<(&Spanned<DeValue<'_>>, &DeTable<'_>)>,
) -> Vec<Option<ProbeSpec>> {
    let mut first_use: HashMap<String, usize> = HashMap::new();
    let mut specs = Vec::new();
    for (value, table) in tables {
        let spec = probe(diagnostics, value, table).and_then(|(spec, name_span)| {
            if let Some(first) = first_use.get(&spec.name) {
                let line = diagnostics.line(*first);
                diagnostics.error(
                    name_span,
                    format!(
                        "duplicate probe name {} (first used on line {line})",
                        echo::quoted(&spec.name)
                    ),
                );
                return None;
            }
            first_use.insert(spec.name.clone(), name_span.start);
            Some(spec)
        });
        specs.push(spec);
    }
    specs
}

/// One probe, and the span of its name (for the uniqueness check).
fn probe(
    diagnostics: &mut Diagnostics<'_>,
    value: &Spanned<DeValue<'_>>,
    table: &DeTable<'_>,
) -> Option<(ProbeSpec, Range<usize>)> {
    let header = value.span();
    let raw = RawProbe::read(diagnostics, table);

    let name = match &raw.name {
        Field::Absent => {
            diagnostics.error(header.clone(), "probe is missing `name`");
            None
        }
        Field::Invalid => None,
        Field::Given(name) => match check_name(name.get_ref()) {
            Ok(()) => Some((name.get_ref().clone(), name.span())),
            Err(e) => {
                diagnostics.error(name.span(), format!("probe `name` {e}"));
                None
            }
        },
    };

    let interval = bounded_duration(
        diagnostics,
        "interval",
        &raw.interval,
        DEFAULT_INTERVAL,
        Lower::AtLeast(MIN_PROBE_INTERVAL),
        MAX_PROBE_INTERVAL,
    );
    let timeout = bounded_duration(
        diagnostics,
        "timeout",
        &raw.timeout,
        DEFAULT_TIMEOUT,
        Lower::Positive,
        MAX_PROBE_TIMEOUT,
    );
    let recovered_after = count(
        diagnostics,
        "recovered_after",
        &raw.recovered_after,
        DEFAULT_RECOVERED_AFTER,
        1..=MAX_RECOVERED_AFTER,
    );
    // Absent: the probe engine sizes it from the interval and the timeout.
    let max_in_flight = match &raw.max_in_flight {
        Field::Absent => Some(None),
        given => count(
            diagnostics,
            "max_in_flight",
            given,
            1,
            1..=MAX_PROBE_IN_FLIGHT,
        )
        .map(Some),
    };
    let spread = count(diagnostics, "spread", &raw.spread, 1, 1..=MAX_PROBE_SPREAD);
    let seed = match &raw.seed {
        Field::Absent => Some(None),
        Field::Invalid => None,
        Field::Given(v) => match u64::try_from(*v.get_ref()) {
            Ok(seed) => Some(Some(seed)),
            Err(_) => {
                diagnostics.error(
                    v.span(),
                    format!("`seed` must be at least 0, got {}", v.get_ref()),
                );
                None
            }
        },
    };
    let signals = match &raw.signals {
        Field::Absent => Some(None),
        Field::Invalid => None,
        Field::Given(v) if v.get_ref() == "remediation" => {
            Some(Some(crate::scenario::ProbeSignal::Remediation))
        }
        Field::Given(v) => {
            diagnostics.error(
                v.span(),
                format!(
                    "unknown `signals` {} (expected: remediation)",
                    super::echo::quoted(v.get_ref())
                ),
            );
            None
        }
    };

    let check = match &raw.kind {
        Field::Invalid => None,
        Field::Absent => {
            diagnostics.error(
                header.clone(),
                format!(
                    "probe is missing `kind` (expected one of: {})",
                    PROBE_KINDS.join(", ")
                ),
            );
            None
        }
        Field::Given(kind) => match kind.get_ref().as_str() {
            "tcp" => {
                let foreign = [HTTP_FIELDS, DNS_FIELDS].concat();
                reject_fields(diagnostics, table, "tcp", TCP_FIELDS, &foreign);
                tcp(diagnostics, &raw, &header)
            }
            "http" => {
                let foreign = [TCP_FIELDS, DNS_FIELDS].concat();
                reject_fields(diagnostics, table, "http", HTTP_FIELDS, &foreign);
                http(diagnostics, &raw, &header)
            }
            "dns" => {
                let foreign = [TCP_FIELDS, HTTP_FIELDS].concat();
                reject_fields(diagnostics, table, "dns", DNS_FIELDS, &foreign);
                dns(diagnostics, &raw, &header)
            }
            other => {
                diagnostics.error(
                    kind.span(),
                    format!(
                        "unknown probe kind {other:?} (expected one of: {})",
                        PROBE_KINDS.join(", ")
                    ),
                );
                None
            }
        },
    };

    let (name, name_span) = name?;
    Some((
        ProbeSpec {
            name,
            interval: interval?,
            timeout: timeout?,
            recovered_after: recovered_after?,
            max_in_flight: max_in_flight?,
            spread: spread?,
            seed: seed?,
            signals: signals?,
            check: check?,
        },
        name_span,
    ))
}

/// Reports each field of `foreign` present in `table`: it belongs to another kind of probe.
fn reject_fields(
    diagnostics: &mut Diagnostics<'_>,
    table: &DeTable<'_>,
    kind: &str,
    own: &[&str],
    foreign: &[&str],
) {
    for field in foreign {
        if let Some(span) = key_span(table, field) {
            let takes = own
                .iter()
                .map(|f| format!("`{f}`"))
                .collect::<Vec<_>>()
                .join(", ");
            diagnostics.error(
                span,
                format!(
                    "`{field}` does not apply to {kind} probes (besides the common fields, \
                     {kind} probes take {takes})"
                ),
            );
        }
    }
}
