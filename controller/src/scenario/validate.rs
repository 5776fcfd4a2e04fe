//! Whole-file validation: the walk over every part of a scenario, each checked on its own so
//! that one pass reports every problem.

use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::echo;
use super::error::Diagnostics;
use super::{detect, fault, probe, remediation, settings, stages, targets, Scenario};

/// Where errors about something missing from the whole file point: line 1, column 1.
pub(crate) const TOP: Range<usize> = 0..0;

/// Parses `text` and checks all of it, reporting every problem to `diagnostics`.
///
/// Returns the scenario only when every part could be read; the caller still checks that
/// nothing was reported.
pub(crate) fn scenario(diagnostics: &mut Diagnostics<'_>, text: &str) -> Option<Scenario> {
    let root = match DeTable::parse(text) {
        Ok(root) => root,
        Err(e) => {
            syntax_error(diagnostics, &e, text);
            return None;
        }
    };
    let table = root.get_ref();

    let top = settings::top_level(diagnostics, table);
    let targets = match table.get("targets") {
        Some(value) => targets::targets(diagnostics, value),
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

    let detect = table
        .get("detect")
        .map(|value| detect::detect(diagnostics, value, top.observe));
    let probe_names: Vec<String> = probes
        .iter()
        .flatten()
        .filter(|p| p.signals.is_none())
        .map(|p| p.name.clone())
        .collect();
    let all_signals = !probes.is_empty()
        && probes
            .iter()
            .all(|p| p.as_ref().is_some_and(|p| p.signals.is_some()));
    if all_signals {
        diagnostics.error(
            TOP,
            "every probe has `signals`: a scenario needs at least one probe that watches the service",
        );
    }
    let stages = match table.get("stages") {
        Some(value) => {
            let tables = array_of_tables(diagnostics, "stages", "stage", value)
                .into_iter()
                .map(|(value, table)| (value.span(), table))
                .collect();
            stages::stages(diagnostics, tables, &probe_names)
        }
        None => Vec::new(),
    };
    let stage_names: Vec<String> = stages.iter().flatten().map(|s| s.name.clone()).collect();
    let steps = match table.get("remediation") {
        Some(value) => {
            let tables = array_of_tables(diagnostics, "remediation", "remediation step", value)
                .into_iter()
                .map(|(value, table)| (value.span(), table))
                .collect();
            let cx = remediation::Context {
                detect: table.contains_key("detect"),
                stages: &stage_names,
                observe: top.observe,
            };
            remediation::steps(diagnostics, tables, &cx)
        }
        None => Vec::new(),
    };

    Some(Scenario {
        stages: stages.into_iter().collect::<Option<Vec<_>>>()?,
        remediation: steps.into_iter().collect::<Option<Vec<_>>>()?,
        detect: match detect {
            Some(d) => Some(d?),
            None => None,
        },
        name: top.name?,
        description: top.description,
        rto: top.rto?,
        repeat: top.repeat?,
        min_pass_rate: top.min_pass_rate?,
        steady_state: top.steady_state?,
        observe: top.observe?,
        cooldown: top.cooldown?,
        expect: top.expect?,
        revert: top.revert?,
        recovery: top.recovery?,
        targets: targets?,
        faults: faults.into_iter().collect::<Option<Vec<_>>>()?,
        probes: probes.into_iter().collect::<Option<Vec<_>>>()?,
    })
}

/// Reports a TOML syntax error, which stops the parse. toml's "duplicate key" points at the
/// second definition without naming it; the key is named here, from the text it points at.
fn syntax_error(diagnostics: &mut Diagnostics<'_>, error: &toml::de::Error, text: &str) {
    let span = error.span().unwrap_or(TOP);
    let key = text
        .get(span.clone())
        .filter(|_| error.message() == "duplicate key");
    match key {
        Some(key) => {
            let key = key.trim_matches(|c| c == '"' || c == '\'');
            diagnostics.error(
                span,
                format!(
                    "duplicate key {}: a key may be set once per table",
                    echo::ticked(key)
                ),
            );
        }
        None => diagnostics.toml_error(error, None, TOP),
    }
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

#[cfg(test)]
mod tests {
    use super::super::fixture::{
        assert_error, assert_only_error, errors, valid_with, MINIMAL, VALID,
    };

    const FAULT: &str = "[[faults]]\nkind = \"process_kill\"\nname = \"nginx\"\n";
    const PROBE: &str = "[[probes]]\nname = \"port\"\nkind = \"tcp\"\naddress = \"127.0.0.1:80\"\n";
    const TARGETS: &str = "[targets]\nlabels = { role = \"web\" }\n";

    #[test]
    fn missing_required_settings_point_at_the_top() {
        assert_only_error(&valid_with("name = \"demo\"\n", ""), 1, 1, "missing `name`");
        assert_only_error(
            &valid_with("name = \"demo\"", "name = \" \""),
            1,
            8,
            "`name` must not be empty",
        );
        assert_only_error(&valid_with("rto = \"2s\"\n", ""), 1, 1, "missing `rto`");
        assert_only_error(&MINIMAL.replace(TARGETS, ""), 1, 1, "missing [targets]");
        assert_only_error(&MINIMAL.replace(FAULT, ""), 1, 1, "missing [[faults]]");
        assert_only_error(&MINIMAL.replace(PROBE, ""), 1, 1, "missing [[probes]]");
        let found = errors("");
        assert_eq!(found.len(), 5, "{found:#?}");
        assert!(found
            .iter()
            .all(|(line, column, _)| (*line, *column) == (1, 1)));
    }

    #[test]
    fn faults_and_probes_must_be_non_empty_arrays_of_tables() {
        let text = MINIMAL
            .replace(FAULT, "")
            .replace("rto = \"5s\"", "rto = \"5s\"\nfaults = []");
        assert_only_error(
            &text,
            3,
            10,
            "`faults` is empty: a scenario needs at least one fault",
        );
        let text = MINIMAL
            .replace(PROBE, "")
            .replace("rto = \"5s\"", "rto = \"5s\"\nprobes = \"port\"");
        assert_only_error(
            &text,
            3,
            10,
            "`probes` must be an array of tables, written [[probes]], not string",
        );
        let text = MINIMAL.replace(
            FAULT,
            "[faults]\nkind = \"process_kill\"\nname = \"nginx\"\n",
        );
        assert_only_error(&text, 7, 1, "`faults` must be an array of tables");
        let text = MINIMAL
            .replace(FAULT, "")
            .replace("rto = \"5s\"", "rto = \"5s\"\nfaults = [1]");
        assert_only_error(&text, 3, 11, "`faults[0]` must be a table, not integer");
    }

    #[test]
    fn one_bad_part_does_not_hide_the_others() {
        // A serde error at the top level (unknown key) still lets targets, faults and probes be
        // checked.
        let text = VALID
            .replace("repeat = 3", "retries = 3")
            .replace("agents = [\"local\"]", "agents = []")
            .replace("signal = \"SIGKILL\"", "signal = \"SIGNOPE\"")
            .replace("timeout = \"200ms\"", "timeout = \"0s\"");
        let found = errors(&text);
        assert_eq!(found.len(), 4, "{found:#?}");
        assert_error(&found, 4, 1, "unknown field `retries`");
        assert_error(&found, 8, 1, "empty targets");
        assert_error(&found, 14, 10, "unknown signal \"SIGNOPE\"");
        assert_error(&found, 23, 11, "`timeout` must be more than 0");
    }
}
