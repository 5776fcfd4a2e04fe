//! The top-level settings of a scenario (name, RTO, repeats, windows, expectation), and the
//! readers for durations and counts that every part uses.

use std::ops::Range;

use gameday_proto::Duration;
use toml::Spanned;

use super::error::Diagnostics;
use super::raw::RawScenario;
use super::validate::TOP;
use super::{Expectation, RevertPolicy};

const DEFAULT_STEADY_STATE: Duration = Duration::from_millis(2_000);
const DEFAULT_OBSERVE: Duration = Duration::from_millis(30_000);
const EXPECTATIONS: &[&str] = &["recovery", "no_impact"];
const REVERT_POLICIES: &[&str] = &["after_duration", "on_recovery"];

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
}

/// Reads and checks the top-level settings, filling in the defaults.
pub(crate) fn top_level(diagnostics: &mut Diagnostics<'_>, raw: RawScenario) -> TopLevel {
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
                    format!(
                        "`observe` ({observe}) is shorter than `rto` ({rto}); the observation \
                         window must cover the RTO"
                    ),
                ),
                None => {
                    let at = raw.rto.as_ref().map_or(TOP, Spanned::span);
                    diagnostics.error(
                        at,
                        format!(
                            "`rto` ({rto}) is longer than the default observation window \
                             ({observe}); set `observe` to at least {rto}"
                        ),
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

    let revert = match &raw.revert {
        None => Some(RevertPolicy::AfterDuration),
        Some(revert) => match revert.get_ref().as_str() {
            "after_duration" => Some(RevertPolicy::AfterDuration),
            "on_recovery" => Some(RevertPolicy::OnRecovery),
            other => {
                diagnostics.error(
                    revert.span(),
                    format!(
                        "unknown `revert` {other:?} (expected one of: {})",
                        REVERT_POLICIES.join(", ")
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
        revert,
    }
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

#[cfg(test)]
mod tests {
    use super::super::fixture::{assert_only_error, valid_with, MINIMAL};
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
            "unknown `revert` \"whenever\" (expected one of: after_duration, on_recovery)",
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
            "`repeat` must be at most 4294967295",
        );
        assert_only_error(
            &valid_with("repeat = 3", "repeat = \"3\""),
            4,
            10,
            "`repeat`: invalid type: string \"3\", expected i64",
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
