//! The top-level settings of a scenario (name, RTO, repeats, windows, expectation), and the
//! readers for durations and counts that every part uses.

use std::ops::RangeInclusive;

use gameday_proto::Duration;
use toml::de::DeTable;
use toml::Spanned;

use super::echo;
use super::error::Diagnostics;
use super::fields::Field;
use super::limits::{MAX_COOLDOWN, MAX_OBSERVE, MAX_REPEAT, MAX_RTO, MAX_STEADY_STATE};
use super::names::check_name;
use super::raw::RawScenario;
use super::validate::TOP;
use super::{Expectation, RecoveryMode, RevertPolicy};

const DEFAULT_STEADY_STATE: Duration = Duration::from_millis(2_000);
const DEFAULT_OBSERVE: Duration = Duration::from_millis(30_000);

/// The top-level settings, each `None` when it was reported as wrong.
pub(crate) struct TopLevel {
    pub(crate) name: Option<String>,
    pub(crate) description: String,
    pub(crate) rto: Option<Duration>,
    pub(crate) repeat: Option<u32>,
    pub(crate) min_pass_rate: Option<f64>,
    pub(crate) steady_state: Option<Duration>,
    pub(crate) observe: Option<Duration>,
    pub(crate) cooldown: Option<Duration>,
    pub(crate) expect: Option<Expectation>,
    pub(crate) revert: Option<RevertPolicy>,
    pub(crate) recovery: Option<RecoveryMode>,
}

/// Reads and checks the top-level settings, filling in the defaults.
pub(crate) fn top_level(diagnostics: &mut Diagnostics<'_>, table: &DeTable<'_>) -> TopLevel {
    let raw = RawScenario::read(diagnostics, table);
    let name = match &raw.name {
        Field::Absent => {
            diagnostics.error(
                TOP,
                "missing `name`: every scenario needs a name, like name = \"kill-web\"",
            );
            None
        }
        Field::Invalid => None,
        Field::Given(name) => match check_name(name.get_ref()) {
            Ok(()) => Some(name.get_ref().clone()),
            Err(e) => {
                diagnostics.error(name.span(), format!("`name` {e}"));
                None
            }
        },
    };

    let rto = match &raw.rto {
        Field::Absent => {
            diagnostics.error(
                TOP,
                "missing `rto`: the recovery time objective, the longest outage that passes, \
                 like rto = \"30s\"",
            );
            None
        }
        Field::Invalid => None,
        Field::Given(_) => bounded_duration(
            diagnostics,
            "rto",
            &raw.rto,
            Duration::default(),
            Lower::Positive,
            MAX_RTO,
        ),
    };

    let repeat = count(diagnostics, "repeat", &raw.repeat, 1, 1..=MAX_REPEAT);

    let min_pass_rate = match &raw.min_pass_rate {
        Field::Absent => Some(1.0),
        Field::Invalid => None,
        Field::Given(rate) => {
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

    let steady_state = bounded_duration(
        diagnostics,
        "steady_state",
        &raw.steady_state,
        DEFAULT_STEADY_STATE,
        Lower::Positive,
        MAX_STEADY_STATE,
    );
    let observe = bounded_duration(
        diagnostics,
        "observe",
        &raw.observe,
        DEFAULT_OBSERVE,
        Lower::Zero,
        MAX_OBSERVE,
    );
    let cooldown = bounded_duration(
        diagnostics,
        "cooldown",
        &raw.cooldown,
        Duration::default(),
        Lower::Zero,
        MAX_COOLDOWN,
    );

    // Recovery slower than the window cannot be measured, so the window must cover the RTO.
    let observe = match (rto, observe) {
        (Some(rto), Some(observe)) if observe < rto => {
            match raw.observe.given() {
                Some(written) => diagnostics.error(
                    written.span(),
                    format!(
                        "`observe` ({observe}) is shorter than `rto` ({rto}); the observation \
                         window must cover the RTO"
                    ),
                ),
                None => diagnostics.error(
                    raw.rto.span_or(TOP),
                    format!(
                        "`rto` ({rto}) is longer than the default observation window \
                         ({observe}); set `observe` to at least {rto}"
                    ),
                ),
            }
            None
        }
        (_, observe) => observe,
    };

    let expect = one_of(
        diagnostics,
        "expect",
        &raw.expect,
        &[
            ("recovery", Expectation::Recovery),
            ("no_impact", Expectation::NoImpact),
        ],
        Expectation::Recovery,
    );
    let revert = one_of(
        diagnostics,
        "revert",
        &raw.revert,
        &[
            ("after_duration", RevertPolicy::AfterDuration),
            ("on_recovery", RevertPolicy::OnRecovery),
            ("manual", RevertPolicy::Manual),
        ],
        RevertPolicy::AfterDuration,
    );
    let recovery = one_of(
        diagnostics,
        "recovery",
        &raw.recovery,
        &[
            ("self", RecoveryMode::SelfHealing),
            ("after_revert", RecoveryMode::AfterRevert),
        ],
        RecoveryMode::SelfHealing,
    );

    TopLevel {
        name,
        description: raw
            .description
            .given()
            .map(|d| d.get_ref().clone())
            .unwrap_or_default(),
        rto,
        repeat,
        min_pass_rate,
        steady_state,
        observe,
        cooldown,
        expect,
        revert,
        recovery,
    }
}

/// Reads a setting that takes one of a few words, or `default` when it is absent.
fn one_of<T: Copy>(
    diagnostics: &mut Diagnostics<'_>,
    field: &str,
    value: &Field<String>,
    choices: &[(&str, T)],
    default: T,
) -> Option<T> {
    let written = match value {
        Field::Absent => return Some(default),
        Field::Invalid => return None,
        Field::Given(written) => written,
    };
    let found = choices
        .iter()
        .find(|(word, _)| *word == written.get_ref().as_str());
    if found.is_none() {
        let words: Vec<&str> = choices.iter().map(|(word, _)| *word).collect();
        diagnostics.error(
            written.span(),
            format!(
                "unknown `{field}` {} (expected one of: {})",
                echo::quoted(written.get_ref()),
                words.join(", ")
            ),
        );
    }
    found.map(|(_, choice)| *choice)
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
            let reason = echo::shorten_quotes(&e.to_string());
            diagnostics.error(value.span(), format!("`{field}`: {reason}"));
            None
        }
    }
}

/// The least a duration setting may be.
#[derive(Clone, Copy)]
pub(crate) enum Lower {
    /// Zero is fine (`cooldown = "0s"`).
    Zero,
    /// More than zero: a zero window or timeout would measure nothing.
    Positive,
    /// At least this much.
    AtLeast(Duration),
}

/// Reads the duration `field`, or `default` when it is absent, and checks a written one is
/// within `lower` and `max`. Errors point at the value and name the field, the value and the
/// bound.
pub(crate) fn bounded_duration(
    diagnostics: &mut Diagnostics<'_>,
    field: &str,
    value: &Field<String>,
    default: Duration,
    lower: Lower,
    max: Duration,
) -> Option<Duration> {
    let written = match value {
        Field::Absent => return Some(default),
        Field::Invalid => return None,
        Field::Given(written) => written,
    };
    let d = duration(diagnostics, field, written)?;
    let message = match lower {
        Lower::Positive if d.get().is_zero() => format!("`{field}` must be more than 0"),
        Lower::AtLeast(min) if d < min => format!("`{field}` must be at least {min}, got {d}"),
        _ if d > max => format!("`{field}` must be at most {max}, got {d}"),
        _ => return Some(d),
    };
    diagnostics.error(written.span(), message);
    None
}

/// Reads the count `field`, which must be within `range`, or `default` when it is absent.
pub(crate) fn count(
    diagnostics: &mut Diagnostics<'_>,
    field: &str,
    value: &Field<i64>,
    default: u32,
    range: RangeInclusive<u32>,
) -> Option<u32> {
    let value = match value {
        Field::Absent => return Some(default),
        Field::Invalid => return None,
        Field::Given(value) => value,
    };
    let n = *value.get_ref();
    let (min, max) = (*range.start(), *range.end());
    let message = if n < i64::from(min) {
        format!("`{field}` must be at least {min}, got {n}")
    } else if n > i64::from(max) {
        format!("`{field}` must be at most {max}, got {n}")
    } else {
        // In range, so it fits.
        return u32::try_from(n).ok();
    };
    diagnostics.error(value.span(), message);
    None
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{assert_error, assert_only_error, errors, valid_with, MINIMAL};
    use super::super::parse;

    #[test]
    fn revert_policy_is_one_of_two() {
        let ok = parse(
            "s.toml",
            &valid_with("rto = \"2s\"", "rto = \"2s\"\nrevert = \"on_recovery\""),
        )
        .unwrap();
        assert_eq!(ok.revert, super::super::RevertPolicy::OnRecovery);
        assert_eq!(
            parse("s.toml", MINIMAL).unwrap().revert,
            super::super::RevertPolicy::AfterDuration
        );
        assert_only_error(
            &valid_with("rto = \"2s\"", "rto = \"2s\"\nrevert = \"whenever\""),
            4,
            10,
            "unknown `revert` \"whenever\" (expected one of: after_duration, on_recovery, manual)",
        );
    }

    #[test]
    fn recovery_mode_is_self_or_after_revert() {
        use super::super::RecoveryMode;
        assert_eq!(
            parse("s.toml", MINIMAL).unwrap().recovery,
            RecoveryMode::SelfHealing
        );
        for (word, mode) in [
            ("self", RecoveryMode::SelfHealing),
            ("after_revert", RecoveryMode::AfterRevert),
        ] {
            let text = valid_with(
                "rto = \"2s\"",
                &format!("rto = \"2s\"\nrecovery = \"{word}\""),
            );
            assert_eq!(parse("s.toml", &text).map(|s| s.recovery), Ok(mode));
        }
        assert_only_error(
            &valid_with("rto = \"2s\"", "rto = \"2s\"\nrecovery = \"revert\""),
            4,
            12,
            "unknown `recovery` \"revert\" (expected one of: self, after_revert)",
        );
    }

    #[test]
    fn unknown_top_level_keys_are_named_with_the_expected_ones() {
        let text = valid_with("repeat = 3", "repeat = 3\nretries = 2");
        assert_only_error(
            &text,
            5,
            1,
            "unknown field `retries`, expected one of `name`, `description`",
        );
    }

    #[test]
    fn every_top_level_problem_is_reported_not_only_the_first() {
        // The README's example: an unknown key no longer hides the bad duration.
        let text =
            valid_with("repeat = 3", "retries = 3").replace("rto = \"2s\"", "rto = \"fast\"");
        let found = errors(&text);
        assert_eq!(found.len(), 2, "{found:#?}");
        assert_error(&found, 3, 7, "`rto`: invalid duration \"fast\"");
        assert_error(
            &found,
            4,
            1,
            "unknown field `retries`, expected one of `name`, `description`",
        );

        let text = r#"name = 7
description = []
rto = "fast"
repeat = "3"
min_pass_rate = "all"
steady_state = 1
observe = "forever"
cooldown = "later"
expect = "maybe"
revert = "whenever"
colour = "blue"

[targets]
agents = ["a"]

[[faults]]
kind = "process_kill"
name = "x"

[[probes]]
name = "p"
kind = "tcp"
address = "127.0.0.1:80"
"#;
        let found = errors(text);
        let lines: Vec<usize> = found.iter().map(|(line, _, _)| *line).collect();
        assert_eq!(lines, (1..=11).collect::<Vec<_>>(), "{found:#?}");
        assert_error(
            &found,
            1,
            8,
            "`name`: invalid type: integer `7`, expected a string",
        );
        assert_error(
            &found,
            4,
            10,
            "`repeat`: invalid type: string \"3\", expected i64",
        );
        assert_error(&found, 11, 1, "unknown field `colour`");
    }

    #[test]
    fn a_key_of_the_wrong_type_is_not_also_missing() {
        assert_only_error(
            &valid_with("name = \"demo\"", "name = [\"demo\"]"),
            1,
            8,
            "`name`: invalid type: sequence, expected a string",
        );
        // A wrong `observe` is not replaced by the default (and then compared with the RTO).
        let text = MINIMAL.replace("rto = \"5s\"", "rto = \"45s\"\nobserve = 60");
        assert_only_error(&text, 3, 11, "`observe`: invalid type: integer `60`");
    }

    #[test]
    fn a_huge_unknown_key_is_echoed_cut_short() {
        let key = "k".repeat(1 << 20);
        let text = valid_with("repeat = 3", &format!("repeat = 3\n{key} = 1"));
        let found = errors(&text);
        assert_eq!(found.len(), 1, "{found:#?}");
        let message = &found[0].2;
        assert!(message.len() < 400, "{} bytes", message.len());
        assert!(
            message.starts_with(&format!(
                "unknown field `{}`… (1048576 characters)",
                "k".repeat(64)
            )),
            "{message}"
        );
    }

    #[test]
    fn names_with_control_characters_are_refused() {
        assert_only_error(
            &valid_with("name = \"demo\"", "name = \"de\\u0000mo\""),
            1,
            8,
            "`name` must not contain control characters, found \\u{0} at character 3",
        );
    }

    #[test]
    fn bad_durations_name_their_field() {
        assert_only_error(
            &valid_with("rto = \"2s\"", "rto = \"fast\""),
            3,
            7,
            "`rto`: invalid duration \"fast\"",
        );
        assert_only_error(
            &valid_with("observe = \"10s\"", "observe = \"250\""),
            6,
            11,
            "`observe`: invalid duration \"250\": missing unit",
        );
        assert_only_error(
            &valid_with("steady_state = \"1s\"", "steady_state = \"0s\""),
            5,
            16,
            "`steady_state` must be more than 0",
        );
        assert_only_error(
            &valid_with(
                "observe = \"10s\"",
                "observe = \"10s\"\ncooldown = \"later\"",
            ),
            7,
            12,
            "`cooldown`: invalid duration",
        );
        assert_only_error(
            &valid_with("rto = \"2s\"", "rto = \"0s\""),
            3,
            7,
            "`rto` must be more than 0",
        );
        assert_only_error(
            &valid_with("rto = \"2s\"", "rto = 2"),
            3,
            7,
            "`rto`: invalid type: integer `2`, expected a string",
        );
    }

    #[test]
    fn counts_must_be_in_range() {
        assert_only_error(
            &valid_with("repeat = 3", "repeat = 0"),
            4,
            10,
            "`repeat` must be at least 1, got 0",
        );
        assert_only_error(
            &valid_with("repeat = 3", "repeat = -2"),
            4,
            10,
            "`repeat` must be at least 1, got -2",
        );
        assert_only_error(
            &valid_with("repeat = 3", "repeat = 5000000000"),
            4,
            10,
            "`repeat` must be at most 1000, got 5000000000",
        );
        assert_only_error(
            &valid_with("repeat = 3", "repeat = \"3\""),
            4,
            10,
            "`repeat`: invalid type: string \"3\", expected i64",
        );
    }

    #[test]
    fn durations_and_counts_have_a_maximum() {
        // Once accepted, then the run panicked adding durations.
        assert_only_error(
            &valid_with("observe = \"10s\"", "observe = \"18446744073709551615s\""),
            6,
            11,
            "`observe` must be at most 1day, got 5845",
        );
        let cases = [
            (
                "rto = \"2s\"",
                "rto = \"24h 1s\"",
                3,
                7,
                "`rto` must be at most 1day, got 1day 1s",
            ),
            (
                "steady_state = \"1s\"",
                "steady_state = \"2h\"",
                5,
                16,
                "`steady_state` must be at most 1h, got 2h",
            ),
            (
                "observe = \"10s\"",
                "observe = \"10s\"\ncooldown = \"1day\"",
                7,
                12,
                "`cooldown` must be at most 1h, got 1day",
            ),
            (
                "repeat = 3",
                "repeat = 1001",
                4,
                10,
                "`repeat` must be at most 1000, got 1001",
            ),
            (
                "max_targets = 1",
                "max_targets = 10001",
                10,
                15,
                "`max_targets` must be at most 10000, got 10001",
            ),
        ];
        for (from, to, line, column, message) in cases {
            assert_only_error(&valid_with(from, to), line, column, message);
        }
        let at_max = valid_with("rto = \"2s\"", "rto = \"1day\"")
            .replace("observe = \"10s\"", "observe = \"1day\"")
            .replace("steady_state = \"1s\"", "steady_state = \"1h\"")
            .replace("repeat = 3", "repeat = 1000\ncooldown = \"1h\"")
            .replace("max_targets = 1", "max_targets = 10000");
        assert!(
            parse("max.toml", &at_max).is_ok(),
            "{:?}",
            parse("max.toml", &at_max)
        );
    }

    #[test]
    fn min_pass_rate_is_a_fraction_above_zero() {
        for bad in ["0.0", "-0.5", "1.5", "nan"] {
            let text = valid_with("repeat = 3", &format!("repeat = 3\nmin_pass_rate = {bad}"));
            assert_only_error(
                &text,
                5,
                17,
                "`min_pass_rate` must be more than 0 and at most 1",
            );
        }
        let text = valid_with("repeat = 3", "repeat = 3\nmin_pass_rate = 1");
        assert_eq!(parse("x.toml", &text).map(|s| s.min_pass_rate), Ok(1.0));
    }

    #[test]
    fn the_observation_window_must_cover_the_rto() {
        assert_only_error(
            &valid_with("observe = \"10s\"", "observe = \"1s\""),
            6,
            11,
            "`observe` (1s) is shorter than `rto` (2s)",
        );
        let text = MINIMAL.replace("rto = \"5s\"", "rto = \"45s\"");
        assert_only_error(
            &text,
            2,
            7,
            "longer than the default observation window (30s); set `observe` to at least 45s",
        );
        let equal = valid_with("observe = \"10s\"", "observe = \"2s\"");
        assert!(parse("x.toml", &equal).is_ok());
    }

    #[test]
    fn expect_lists_what_it_takes() {
        let text = valid_with("repeat = 3", "repeat = 3\nexpect = \"maybe\"");
        assert_only_error(
            &text,
            5,
            10,
            "unknown `expect` \"maybe\" (expected one of: recovery, no_impact)",
        );
    }
}
