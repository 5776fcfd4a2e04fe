//! `[targets]`: the agents a scenario runs on, by name and/or labels, and its blast radius.

use std::collections::{BTreeMap, HashMap};

use toml::de::DeValue;
use toml::Spanned;

use super::echo;
use super::error::Diagnostics;
use super::fields::Field;
use super::limits::MAX_TARGETS;
use super::names::{check_name, label_table};
use super::raw::RawTargets;
use super::settings::count;
use super::Targets;

/// `[targets]`: agents by name and/or labels, and the blast-radius limit.
pub(crate) fn targets(
    diagnostics: &mut Diagnostics<'_>,
    value: &Spanned<DeValue<'_>>,
) -> Option<Targets> {
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
    let raw = RawTargets::read(diagnostics, table);
    let mut ok = true;

    let mut agents = Vec::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for agent in raw
        .agents
        .given()
        .map(Spanned::get_ref)
        .into_iter()
        .flatten()
    {
        let name = agent.get_ref().as_str();
        if let Err(e) = check_name(name) {
            diagnostics.error(agent.span(), format!("agent names in `agents` {e}"));
            ok = false;
        } else if let Some(first) = seen.get(name) {
            let line = diagnostics.line(*first);
            diagnostics.error(
                agent.span(),
                format!(
                    "agent {} is listed twice in `agents` (first on line {line})",
                    echo::quoted(name)
                ),
            );
            ok = false;
        } else {
            seen.insert(name, agent.span().start);
            agents.push(name.to_string());
        }
    }

    let labels = match raw.labels.given() {
        Some(given) => label_table(diagnostics, "labels", given.get_ref()).unwrap_or_else(|| {
            ok = false;
            BTreeMap::new()
        }),
        None => BTreeMap::new(),
    };

    // A list of the wrong type was reported already; calling the targets empty would mislead.
    let agents_given = match &raw.agents {
        Field::Absent => false,
        Field::Invalid => true,
        Field::Given(agents) => !agents.get_ref().is_empty(),
    };
    let labels_given = match &raw.labels {
        Field::Absent => false,
        Field::Invalid => true,
        Field::Given(labels) => !labels.get_ref().is_empty(),
    };
    if !agents_given && !labels_given {
        diagnostics.error(
            value.span(),
            "empty targets: set `agents` (agent names) and/or `labels` (labels an agent must \
             all carry)",
        );
        ok = false;
    }

    let max_targets = count(
        diagnostics,
        "max_targets",
        &raw.max_targets,
        1,
        1..=MAX_TARGETS,
    );
    if let Some(max) = max_targets {
        if agents.len() > max as usize {
            // Preflight would refuse every run: say so now, where it can be fixed.
            let at = raw.max_targets.span_or(value.span());
            diagnostics.error(
                at,
                format!(
                    "`agents` names {} agents but `max_targets` is {max}{}; raise \
                     `max_targets` to at least {}",
                    agents.len(),
                    if raw.max_targets.is_absent() {
                        " (the default)"
                    } else {
                        ""
                    },
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

#[cfg(test)]
mod tests {
    use super::super::fixture::{assert_only_error, valid_with, MINIMAL};

    const TARGETS: &str = "[targets]\nlabels = { role = \"web\" }\n";

    #[test]
    fn unknown_target_keys_are_named_with_the_expected_ones() {
        let text = valid_with("max_targets = 1", "max_targets = 1\nzone = \"a\"");
        assert_only_error(
            &text,
            11,
            1,
            "unknown field `zone`, expected one of `agents`, `labels`, `max_targets`",
        );
    }

    #[test]
    fn every_problem_in_targets_is_reported() {
        let text = valid_with(
            "agents = [\"local\"]\nmax_targets = 1",
            "agents = [\"lo\\u0000cal\"]\nmax_targets = \"one\"\nzone = \"a\"\nlabels = { \"ro\\nle\" = \"web\", tier = \"a\\u001b[31m\" }",
        );
        let found = super::super::fixture::errors(&text);
        assert_eq!(found.len(), 5, "{found:#?}");
        let at: Vec<(usize, usize)> = found.iter().map(|(l, c, _)| (*l, *c)).collect();
        assert_eq!(
            at,
            vec![(9, 11), (10, 15), (11, 1), (12, 12), (12, 37)],
            "{found:#?}"
        );
        assert!(
            found[0]
                .2
                .contains("agent names in `agents` must not contain control characters"),
            "{found:#?}"
        );
        assert!(
            found[1]
                .2
                .contains("`max_targets`: invalid type: string \"one\""),
            "{found:#?}"
        );
        assert!(
            found[3]
                .2
                .contains("label names in `labels` must not contain control characters"),
            "{found:#?}"
        );
        assert!(
            found[4]
                .2
                .contains("label values in `labels` must not contain control characters"),
            "{found:#?}"
        );
    }

    #[test]
    fn empty_targets_point_at_the_targets_table() {
        assert_only_error(
            &valid_with("agents = [\"local\"]", "agents = []"),
            8,
            1,
            "empty targets: set `agents`",
        );
        let text = MINIMAL
            .replace(TARGETS, "")
            .replace("rto = \"5s\"", "rto = \"5s\"\ntargets = {}");
        assert_only_error(&text, 3, 11, "empty targets");
        let text = MINIMAL
            .replace(TARGETS, "")
            .replace("rto = \"5s\"", "rto = \"5s\"\ntargets = [\"web-1\"]");
        assert_only_error(&text, 3, 11, "`targets` must be a table");
    }

    #[test]
    fn agents_must_be_named_once_and_fit_the_blast_radius() {
        let text = valid_with(
            "agents = [\"local\"]\nmax_targets = 1",
            "agents = [\"local\", \"local\"]\nmax_targets = 2",
        );
        assert_only_error(
            &text,
            9,
            20,
            "agent \"local\" is listed twice in `agents` (first on line 9)",
        );
        assert_only_error(
            &valid_with("agents = [\"local\"]", "agents = [\"\"]"),
            9,
            11,
            "agent names in `agents` must not be empty",
        );
        let text = valid_with("agents = [\"local\"]", "agents = [\"a\", \"b\"]");
        assert_only_error(
            &text,
            10,
            15,
            "`agents` names 2 agents but `max_targets` is 1; raise `max_targets` to at least 2",
        );
        let text = valid_with(
            "agents = [\"local\"]\nmax_targets = 1",
            "agents = [\"a\", \"b\"]",
        );
        assert_only_error(&text, 8, 1, "`max_targets` is 1 (the default)");
        assert_only_error(
            &valid_with("max_targets = 1", "max_targets = 0"),
            10,
            15,
            "`max_targets` must be at least 1, got 0",
        );
        let text = MINIMAL.replace("labels = { role = \"web\" }", "labels = { \"\" = \"web\" }");
        assert_only_error(&text, 5, 12, "label names in `labels` must not be empty");
    }
}
