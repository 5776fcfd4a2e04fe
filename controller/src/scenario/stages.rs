//! `[[stages]]`: recovery in steps (failover, then full restore), each a group of the
//! scenario's probes with an objective of its own.

use std::collections::HashMap;

use toml::de::DeTable;
use toml::Spanned;

use super::echo;
use super::error::Diagnostics;
use super::fields::{Field, Fields};
use super::limits::MAX_RTO;
use super::names::check_name;
use super::settings::{bounded_duration, Lower};
use super::Stage;

/// Reads every `[[stages]]` table; `probes` are the scenario's probe names (those that
/// parsed), which a stage's `probes` must come from.
pub(crate) fn stages(
    diagnostics: &mut Diagnostics<'_>,
    tables: Vec<(std::ops::Range<usize>, &DeTable<'_>)>,
    probes: &[String],
) -> Vec<Option<Stage>> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    tables
        .into_iter()
        .map(|(span, table)| {
            let raw = RawStage::read(diagnostics, table);
            let name = match &raw.name {
                Field::Given(n) => match check_name(n.get_ref()) {
                    Err(e) => {
                        diagnostics.error(n.span(), format!("stage names {e}"));
                        None
                    }
                    Ok(()) => match seen.get(n.get_ref()) {
                        Some(first) => {
                            let line = diagnostics.line(*first);
                            diagnostics.error(
                                n.span(),
                                format!(
                                    "stage {} is defined twice (first on line {line})",
                                    echo::quoted(n.get_ref())
                                ),
                            );
                            None
                        }
                        None => {
                            seen.insert(n.get_ref().clone(), n.span().start);
                            Some(n.get_ref().clone())
                        }
                    },
                },
                Field::Absent => {
                    diagnostics.error(span.clone(), "a stage needs a `name`, like \"failover\"");
                    None
                }
                Field::Invalid => None,
            };
            let members = match &raw.probes {
                Field::Given(list) if list.get_ref().is_empty() => {
                    diagnostics.error(
                        list.span(),
                        "`probes` is empty: a stage is reached when its probes recover",
                    );
                    None
                }
                Field::Given(list) => {
                    let mut ok = true;
                    for p in list.get_ref() {
                        if !probes.contains(p.get_ref()) {
                            diagnostics.error(
                                p.span(),
                                format!(
                                    "no probe watching the service is named {} (probes: {})",
                                    echo::quoted(p.get_ref()),
                                    probes.join(", ")
                                ),
                            );
                            ok = false;
                        }
                    }
                    ok.then(|| list.get_ref().iter().map(|p| p.get_ref().clone()).collect())
                }
                Field::Absent => {
                    diagnostics.error(
                        span.clone(),
                        "a stage needs `probes`: the probes whose recovery reaches it",
                    );
                    None
                }
                Field::Invalid => None,
            };
            let rto = match &raw.rto {
                Field::Absent => {
                    diagnostics.error(span, "a stage needs an `rto`: its own objective");
                    None
                }
                rto => bounded_duration(diagnostics, "rto", rto, MAX_RTO, Lower::Positive, MAX_RTO),
            };
            Some(Stage {
                name: name?,
                probes: members?,
                rto: rto?,
            })
        })
        .collect()
}

/// One `[[stages]]` table as written.
struct RawStage {
    name: Field<String>,
    probes: Field<Vec<Spanned<String>>>,
    rto: Field<String>,
}

impl RawStage {
    fn read(diagnostics: &mut Diagnostics<'_>, table: &DeTable<'_>) -> Self {
        let mut fields = Fields::new(table);
        let d = diagnostics;
        let raw = Self {
            name: fields.take(d, "name"),
            probes: fields.take(d, "probes"),
            rto: fields.take(d, "rto"),
        };
        fields.reject_unknown(d);
        raw
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{assert_error, assert_only_error, errors, MINIMAL};
    use super::super::parse;

    #[test]
    fn stages_parse_and_name_their_probes() {
        let text = format!(
            "{MINIMAL}\n[[stages]]\nname = \"failover\"\nprobes = [\"port\"]\nrto = \"2s\"\n"
        );
        let s = parse("test.toml", &text).unwrap();
        assert_eq!(s.stages[0].name, "failover");
        assert_eq!(s.stages[0].probes, ["port"]);
        assert_eq!(s.stages[0].rto.to_string(), "2s");
    }

    #[test]
    fn bad_stages_are_named_where_they_are_wrong() {
        // MINIMAL ends on line 14; the stages start on line 16.
        let unknown = format!(
            "{MINIMAL}\n[[stages]]\nname = \"failover\"\nprobes = [\"db\"]\nrto = \"2s\"\n"
        );
        assert_only_error(
            &unknown,
            18,
            11,
            "no probe watching the service is named \"db\" (probes: port)",
        );
        let twice = format!(
            "{MINIMAL}\n[[stages]]\nname = \"a\"\nprobes = [\"port\"]\nrto = \"2s\"\n[[stages]]\nname = \"a\"\nprobes = [\"port\"]\nrto = \"1s\"\n"
        );
        assert_only_error(
            &twice,
            21,
            8,
            "stage \"a\" is defined twice (first on line 17)",
        );
        let missing = format!("{MINIMAL}\n[[stages]]\nname = \"a\"\nprobes = []\n");
        let found = errors(&missing);
        assert_error(&found, 18, 10, "`probes` is empty");
        assert_error(&found, 16, 1, "a stage needs an `rto`");
    }

    #[test]
    fn signal_probes_are_checked() {
        let signal =
            "[[probes]]\nname = \"promoted\"\nkind = \"tcp\"\naddress = \"127.0.0.1:81\"\n";
        let bad = format!("{MINIMAL}\n{signal}signals = \"victory\"\n");
        assert_only_error(
            &bad,
            20,
            11,
            "unknown `signals` \"victory\" (expected: remediation)",
        );
        let staged = format!(
            "{MINIMAL}\n{signal}signals = \"remediation\"\n[[stages]]\nname = \"a\"\nprobes = [\"promoted\"]\nrto = \"1s\"\n"
        );
        assert_error(
            &errors(&staged),
            23,
            11,
            "no probe watching the service is named \"promoted\"",
        );
        let only = MINIMAL.replace(
            "address = \"127.0.0.1:80\"",
            "address = \"127.0.0.1:80\"\nsignals = \"remediation\"",
        );
        assert_only_error(&only, 1, 1, "every probe has `signals`");
    }
}
