//! Whole-file validation: the top-level settings and `[targets]`, and the walk over every part.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use gameday_proto::Duration;
use serde::Deserialize;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use super::error::Diagnostics;
use super::raw::{RawScenario, RawTargets};
use super::{fault, probe, Expectation, Scenario, Targets};

/// Where errors about something missing from the whole file point: line 1, column 1.
const TOP: Range<usize> = 0..0;

const DEFAULT_STEADY_STATE: Duration = Duration::from_millis(2_000);
const DEFAULT_OBSERVE: Duration = Duration::from_millis(30_000);
const EXPECTATIONS: &[&str] = &["recovery", "no_impact"];

/// Parses `text` and checks all of it, reporting every problem to `diagnostics`.
///
/// Returns the scenario only when every part could be read; the caller still checks that
/// nothing was reported.
pub(crate) fn scenario(diagnostics: &mut Diagnostics<'_>, text: &str) -> Option<Scenario> {
    let root = match DeTable::parse(text) {
        Ok(root) => root,
        Err(e) => {
            diagnostics.toml_error(&e, None, TOP);
            return None;
        }
    };
    let table = root.get_ref();

    let top = match RawScenario::deserialize(toml::de::Deserializer::from(root.clone())) {
        Ok(raw) => Some(top_level(diagnostics, raw)),
        Err(e) => {
            diagnostics.toml_error(&e, Some(table), TOP);
            None
        }
    };
    let targets = match table.get("targets") {
        Some(value) => targets(diagnostics, value),
        None => {
            diagnostics.error(
                TOP,
                "missing [targets]: name the agents to break with `agents = [...]` and/or \
                 `labels = { ... }` under [targets]",
            );
            None
        }
    };
    let faults = match table.get("faults") {
        Some(value) => array_of_tables(diagnostics, "faults", "fault", value)
            .into_iter()
            .map(|(value, table)| fault::fault(diagnostics, value, table))
            .collect::<Vec<_>>(),
        None => {
            diagnostics.error(
                TOP,
                "missing [[faults]]: a scenario needs at least one fault to inject",
            );
            Vec::new()
        }
    };
    let probes = match table.get("probes") {
        Some(value) => {
            let tables = array_of_tables(diagnostics, "probes", "probe", value);
            probe::probes(diagnostics, tables)
        }
        None => {
            diagnostics.error(
                TOP,
                "missing [[probes]]: a scenario needs at least one probe to watch the service",
            );
            Vec::new()
        }
    };

    let top = top?;
    Some(Scenario {
        name: top.name?,
        description: top.description,
        rto: top.rto?,
        repeat: top.repeat?,
        min_pass_rate: top.min_pass_rate?,
        steady_state: top.steady_state?,
        observe: top.observe?,
        cooldown: top.cooldown?,
        expect: top.expect?,
        targets: targets?,
        faults: faults.into_iter().collect::<Option<Vec<_>>>()?,
        probes: probes.into_iter().collect::<Option<Vec<_>>>()?,
    })
}

/// The top-level settings, each `None` when it was reported as wrong.
struct TopLevel {
    name: Option<String>,
    description: String,
    rto: Option<Duration>,
    repeat: Option<u32>,
    min_pass_rate: Option<f64>,
    steady_state: Option<Duration>,
    observe: Option<Duration>,
    cooldown: Option<Duration>,
    expect: Option<Expectation>,
}

fn top_level(diagnostics: &mut Diagnostics<'_>, raw: RawScenario) -> TopLevel {
    let name = match &raw.name {
        None => {
            diagnostics.error(
                TOP,
                "missing `name`: every scenario needs a name, like name = \"kill-web\"",
            );
            None
        }
        Some(name) if name.get_ref().trim().is_empty() => {
            diagnostics.error(name.span(), "`name` must not be empty");
            None
        }
        Some(name) => Some(name.get_ref().clone()),
    };

    let rto = match &raw.rto {
        None => {
            diagnostics.error(
                TOP,
                "missing `rto`: the recovery time objective, the longest outage that passes, \
                 like rto = \"30s\"",
            );
            None
        }
        Some(rto) => duration(diagnostics, "rto", rto)
            .filter(|d| positive(diagnostics, "rto", rto.span(), *d)),
    };

    let repeat = count(diagnostics, "repeat", raw.repeat.as_ref(), 1, 1);

    let min_pass_rate = match &raw.min_pass_rate {
        None => Some(1.0),
        Some(rate) => {
            let value = *rate.get_ref();
            if value > 0.0 && value <= 1.0 {
                Some(value)
            } else {
                diagnostics.error(
                    rate.span(),
                    format!(
                        "`min_pass_rate` must be more than 0 and at most 1 (the fraction of runs \
                         that must pass), got {value}"
                    ),
                );
                None
            }
        }
    };

    let steady_state = optional_duration(
        diagnostics,
        "steady_state",
        raw.steady_state.as_ref(),
        DEFAULT_STEADY_STATE,
    )
    .filter(|d| match &raw.steady_state {
        Some(s) => positive(diagnostics, "steady_state", s.span(), *d),
        None => true,
    });
    let observe = optional_duration(
        diagnostics,
        "observe",
        raw.observe.as_ref(),
        DEFAULT_OBSERVE,
    );
    let cooldown = optional_duration(
        diagnostics,
        "cooldown",
        raw.cooldown.as_ref(),
        Duration::default(),
    );

    // Recovery slower than the window cannot be measured, so the window must cover the RTO.
    let observe = match (rto, observe) {
        (Some(rto), Some(observe)) if observe < rto => {
            match &raw.observe {
                Some(written) => diagnostics.error(
                    written.span(),
                    format!("`observe` ({observe}) is shorter than `rto` ({rto}); the observation window must cover the RTO"),
                ),
                None => {
                    let at = raw.rto.as_ref().map_or(TOP, Spanned::span);
                    diagnostics.error(
                        at,
                        format!("`rto` ({rto}) is longer than the default observation window ({observe}); set `observe` to at least {rto}"),
                    );
                }
            }
            None
        }
        (_, observe) => observe,
    };

    let expect = match &raw.expect {
        None => Some(Expectation::Recovery),
        Some(expect) => match expect.get_ref().as_str() {
            "recovery" => Some(Expectation::Recovery),
            "no_impact" => Some(Expectation::NoImpact),
            other => {
                diagnostics.error(
                    expect.span(),
                    format!(
                        "unknown `expect` {other:?} (expected one of: {})",
                        EXPECTATIONS.join(", ")
                    ),
                );
                None
            }
        },
    };

    TopLevel {
        name,
        description: raw.description.unwrap_or_default(),
        rto,
        repeat,
        min_pass_rate,
        steady_state,
        observe,
        cooldown,
        expect,
    }
}

/// `[targets]`: agents by name and/or labels, and the blast-radius limit.
fn targets(diagnostics: &mut Diagnostics<'_>, value: &Spanned<DeValue<'_>>) -> Option<Targets> {
    let DeValue::Table(table) = value.get_ref() else {
        diagnostics.error(
            value.span(),
            format!(
                "`targets` must be a table, like [targets] with agents = [\"web-1\"], not {}",
                value.get_ref().type_str()
            ),
        );
        return None;
    };
    let raw = match RawTargets::deserialize(ValueDeserializer::from(value.clone())) {
        Ok(raw) => raw,
        Err(e) => {
            diagnostics.toml_error(&e, Some(table), value.span());
            return None;
        }
    };
    let mut ok = true;

    let mut agents = Vec::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for agent in raw.agents.iter().flatten() {
        let name = agent.get_ref().as_str();
        if name.trim().is_empty() {
            diagnostics.error(agent.span(), "agent names in `agents` must not be empty");
            ok = false;
        } else if let Some(first) = seen.get(name) {
            let line = diagnostics.line(*first);
            diagnostics.error(
                agent.span(),
                format!("agent {name:?} is listed twice in `agents` (first on line {line})"),
            );
            ok = false;
        } else {
            seen.insert(name, agent.span().start);
            agents.push(name.to_string());
        }
    }

    let mut labels = BTreeMap::new();
    for (key, label) in raw.labels.iter().flatten() {
        if key.get_ref().trim().is_empty() {
            diagnostics.error(key.span(), "label names in `labels` must not be empty");
            ok = false;
        } else {
            labels.insert(key.get_ref().clone(), label.get_ref().clone());
        }
    }

    let agents_given = raw.agents.as_ref().is_some_and(|a| !a.is_empty());
    let labels_given = raw.labels.as_ref().is_some_and(|l| !l.is_empty());
    if !agents_given && !labels_given {
        diagnostics.error(
            value.span(),
            "empty targets: set `agents` (agent names) and/or `labels` (labels an agent must all carry)",
        );
        ok = false;
    }

    let max_targets = count(diagnostics, "max_targets", raw.max_targets.as_ref(), 1, 1);
    if let Some(max) = max_targets {
        if agents.len() > max as usize {
            // Preflight would refuse every run: say so now, where it can be fixed.
            let at = raw.max_targets.as_ref().map_or(value.span(), Spanned::span);
            diagnostics.error(
                at,
                format!(
                    "`agents` names {} agents but `max_targets` is {max}{}; raise `max_targets` to at least {}",
                    agents.len(),
                    if raw.max_targets.is_none() { " (the default)" } else { "" },
                    agents.len()
                ),
            );
            ok = false;
        }
    }

    if !ok {
        return None;
    }
    Some(Targets {
        agents,
        labels,
        max_targets: max_targets?,
    })
}

/// The tables of an array of tables (`[[faults]]`), reporting a wrong type, an empty list and
/// entries that are not tables.
fn array_of_tables<'v, 'i>(
    diagnostics: &mut Diagnostics<'_>,
    key: &str,
    singular: &str,
    value: &'v Spanned<DeValue<'i>>,
) -> Vec<(&'v Spanned<DeValue<'i>>, &'v DeTable<'i>)> {
    let DeValue::Array(array) = value.get_ref() else {
        diagnostics.error(
            value.span(),
            format!(
                "`{key}` must be an array of tables, written [[{key}]], not {}",
                value.get_ref().type_str()
            ),
        );
        return Vec::new();
    };
    if array.is_empty() {
        diagnostics.error(
            value.span(),
            format!("`{key}` is empty: a scenario needs at least one {singular}"),
        );
    }
    let mut tables = Vec::new();
    for (i, entry) in array.iter().enumerate() {
        match entry.get_ref() {
            DeValue::Table(table) => tables.push((entry, table)),
            other => diagnostics.error(
                entry.span(),
                format!("`{key}[{i}]` must be a table, not {}", other.type_str()),
            ),
        }
    }
    tables
}

/// Reads the duration `field`, reporting it when it does not parse.
pub(crate) fn duration(
    diagnostics: &mut Diagnostics<'_>,
    field: &str,
    value: &Spanned<String>,
) -> Option<Duration> {
    match value.get_ref().parse::<Duration>() {
        Ok(d) => Some(d),
        Err(e) => {
            diagnostics.error(value.span(), format!("`{field}`: {e}"));
            None
        }
    }
}

/// Reads the duration `field`, or `default` when it is absent.
pub(crate) fn optional_duration(
    diagnostics: &mut Diagnostics<'_>,
    field: &str,
    value: Option<&Spanned<String>>,
    default: Duration,
) -> Option<Duration> {
    match value {
        Some(value) => duration(diagnostics, field, value),
        None => Some(default),
    }
}

/// Whether `d` is more than zero, reporting it at `span` when not.
pub(crate) fn positive(
    diagnostics: &mut Diagnostics<'_>,
    field: &str,
    span: Range<usize>,
    d: Duration,
) -> bool {
    if d.get().is_zero() {
        diagnostics.error(span, format!("`{field}` must be more than 0"));
        return false;
    }
    true
}

/// Reads the count `field` (at least `min`), or `default` when it is absent.
pub(crate) fn count(
    diagnostics: &mut Diagnostics<'_>,
    field: &str,
    value: Option<&Spanned<i64>>,
    default: u32,
    min: u32,
) -> Option<u32> {
    let Some(value) = value else {
        return Some(default);
    };
    let n = *value.get_ref();
    if n < i64::from(min) {
        diagnostics.error(
            value.span(),
            format!("`{field}` must be at least {min}, got {n}"),
        );
        return None;
    }
    match u32::try_from(n) {
        Ok(n) => Some(n),
        Err(_) => {
            diagnostics.error(
                value.span(),
                format!("`{field}` must be at most {}, got {n}", u32::MAX),
            );
            None
        }
    }
}
