//! `[detect]`: the alerts of the team's own monitoring that should notice the fault, how soon,
//! and whether going unnoticed fails the run.

use std::collections::BTreeMap;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::error::Diagnostics;
use super::fields::{Field, Fields};
use super::limits::MAX_OBSERVE;
use super::names::label_table;
use super::settings::{bounded_duration, Lower};
use super::Detect;
use crate::alerts::LabelSelector;

/// `[detect]`: `alerts` (a label selector), `within` (default: the observe window) and
/// `expect_alert`.
pub(crate) fn detect(
    diagnostics: &mut Diagnostics<'_>,
    value: &Spanned<DeValue<'_>>,
    observe: Option<gameday_proto::Duration>,
) -> Option<Detect> {
    let DeValue::Table(table) = value.get_ref() else {
        diagnostics.error(
            value.span(),
            format!(
                "`detect` must be a table, like [detect] with alerts = {{ alertname = \"RedisDown\" }}, not {}",
                value.get_ref().type_str()
            ),
        );
        return None;
    };
    let raw = RawDetect::read(diagnostics, table);
    let mut selector = BTreeMap::new();
    let mut ok = true;
    match &raw.alerts {
        Field::Given(labels) if labels.get_ref().is_empty() => {
            diagnostics.error(
                labels.span(),
                "`alerts` selects nothing: give at least one label, like { alertname = \"RedisDown\" }",
            );
            ok = false;
        }
        Field::Given(labels) => match label_table(diagnostics, "alerts", labels.get_ref()) {
            Some(checked) => selector = checked,
            None => ok = false,
        },
        Field::Absent => {
            diagnostics.error(
                value.span(),
                "[detect] needs `alerts`: the labels of the alert that should notice the fault, like { alertname = \"RedisDown\" }",
            );
            ok = false;
        }
        Field::Invalid => ok = false,
    }
    let within = bounded_duration(
        diagnostics,
        "within",
        &raw.within,
        observe.unwrap_or(MAX_OBSERVE),
        Lower::Positive,
        MAX_OBSERVE,
    );
    let expect_alert = match &raw.expect_alert {
        Field::Given(b) => Some(*b.get_ref()),
        Field::Absent => Some(false),
        Field::Invalid => None,
    };
    if !ok {
        return None;
    }
    Some(Detect {
        alerts: LabelSelector(selector),
        within: within?,
        expect_alert: expect_alert?,
    })
}

/// `[detect]` as written.
struct RawDetect {
    alerts: Field<BTreeMap<Spanned<String>, Spanned<String>>>,
    within: Field<String>,
    expect_alert: Field<bool>,
}

impl RawDetect {
    fn read(diagnostics: &mut Diagnostics<'_>, table: &DeTable<'_>) -> Self {
        let mut fields = Fields::new(table);
        let d = diagnostics;
        let raw = Self {
            alerts: fields.take(d, "alerts"),
            within: fields.take(d, "within"),
            expect_alert: fields.take(d, "expect_alert"),
        };
        fields.reject_unknown(d);
        raw
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{assert_only_error, MINIMAL};
    use super::super::parse;

    #[test]
    fn detect_parses_with_within_defaulting_to_the_observe_window() {
        let text = format!("{MINIMAL}\n[detect]\nalerts = {{ alertname = \"RedisDown\" }}\n");
        let s = parse("test.toml", &text).unwrap();
        let d = s.detect.unwrap();
        assert_eq!(d.alerts.to_string(), "{alertname=\"RedisDown\"}");
        assert_eq!(d.within, s.observe);
        assert!(!d.expect_alert);
    }

    #[test]
    fn bad_detect_tables_are_named_where_they_are_wrong() {
        let empty = format!("{MINIMAL}\n[detect]\nalerts = {{}}\n");
        assert_only_error(&empty, 17, 10, "`alerts` selects nothing");
        let zero = format!("{MINIMAL}\n[detect]\nalerts = {{ a = \"b\" }}\nwithin = \"0s\"\n");
        assert_only_error(&zero, 18, 10, "`within` must be more than 0");
        let unknown = format!("{MINIMAL}\n[detect]\nalerts = {{ a = \"b\" }}\nexpect = true\n");
        assert_only_error(&unknown, 18, 1, "unknown field `expect`");
        let missing = format!("{MINIMAL}\n[detect]\nwithin = \"1m\"\n");
        assert_only_error(&missing, 16, 1, "[detect] needs `alerts`");
    }

    #[test]
    fn a_window_shorter_than_alertmanagers_group_wait_is_warned_about() {
        let short = format!("{MINIMAL}\n[detect]\nalerts = {{ a = \"b\" }}\nwithin = \"10s\"\n");
        let warnings = parse("test.toml", &short).unwrap().warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with(
                "[detect] within = \"10s\" is shorter than Alertmanager's default group_wait"
            ),
            "{warnings:?}"
        );
        let long = short.replace("\"10s\"", "\"2m\"");
        assert!(parse("test.toml", &long).unwrap().warnings().is_empty());
    }
}
