//! Property test over every numeric field of a scenario: whatever number is written (zero,
//! huge, negative, at a limit, of the wrong type), `scenario::parse` does not panic, accepts it
//! exactly when it is within the documented bounds (`scenario::limits`, README "Limits"), and
//! otherwise names the field in its error.

use std::str::FromStr;

use gameday::scenario::{self, limits};
use gameday_proto::{ByteSize, Duration};
use proptest::prelude::*;

/// A valid scenario with every numeric field written; `{field}` marks where each goes.
const TEMPLATE: &str = r#"name = "limits"
rto = {rto}
repeat = {repeat}
min_pass_rate = {min_pass_rate}
steady_state = {steady_state}
observe = {observe}
cooldown = {cooldown}

[targets]
labels = { role = "web" }
max_targets = {max_targets}

[[faults]]
kind = "process_pause"
name = "x"
duration = {duration}

[[faults]]
kind = "disk_fill"
path = "/srv"
size = {size}

[[faults]]
kind = "disk_fill"
path = "/srv"
fill_to = {fill_to}

[[faults]]
kind = "network_partition"
ports = [{ports}]

[[probes]]
name = "web"
kind = "http"
url = "http://127.0.0.1:8080/"
expect_status = {expect_status}
interval = {interval}
timeout = {timeout}
recovered_after = {recovered_after}
"#;

/// What a field holds, and the values it accepts.
#[derive(Clone, Copy, Debug)]
enum Bounds {
    /// A duration string, from `min` to `max` inclusive.
    Duration(Duration, Duration),
    /// An integer, from `min` to `max` inclusive.
    Integer(i64, i64),
    /// A byte size (string or integer), from `min` to `max` inclusive.
    Bytes(u64, u64),
    /// A float in (0, 1].
    Fraction,
}

fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

const NANOSECOND: Duration = Duration(std::time::Duration::from_nanos(1));

/// Every numeric field, its valid value in the template, and its bounds.
fn fields() -> Vec<(&'static str, &'static str, Bounds)> {
    use Bounds::*;
    vec![
        ("rto", "\"1s\"", Duration(NANOSECOND, limits::MAX_RTO)),
        ("repeat", "1", Integer(1, i64::from(limits::MAX_REPEAT))),
        ("min_pass_rate", "1.0", Fraction),
        (
            "steady_state",
            "\"1s\"",
            Duration(NANOSECOND, limits::MAX_STEADY_STATE),
        ),
        // At least the RTO, which is 1s in the template.
        (
            "observe",
            "\"1day\"",
            Duration(ms(1_000), limits::MAX_OBSERVE),
        ),
        ("cooldown", "\"0s\"", Duration(ms(0), limits::MAX_COOLDOWN)),
        (
            "max_targets",
            "1",
            Integer(1, i64::from(limits::MAX_TARGETS)),
        ),
        (
            "duration",
            "\"1s\"",
            Duration(limits::MIN_FAULT_DURATION, limits::MAX_FAULT_DURATION),
        ),
        ("size", "\"1MiB\"", Bytes(1, limits::MAX_DISK_BYTES)),
        ("fill_to", "90", Integer(1, 100)),
        ("ports", "80", Integer(1, 65_535)),
        ("expect_status", "200", Integer(100, 599)),
        (
            "interval",
            "\"100ms\"",
            Duration(limits::MIN_PROBE_INTERVAL, limits::MAX_PROBE_INTERVAL),
        ),
        (
            "timeout",
            "\"1s\"",
            Duration(NANOSECOND, limits::MAX_PROBE_TIMEOUT),
        ),
        (
            "recovered_after",
            "3",
            Integer(1, i64::from(limits::MAX_RECOVERED_AFTER)),
        ),
    ]
}

/// The template with `field` set to `value` and every other field to its valid value.
fn scenario_with(field: &str, value: &str) -> String {
    let mut text = TEMPLATE.to_string();
    for (name, valid, _) in fields() {
        let written = if name == field { value } else { valid };
        text = text.replace(&format!("{{{name}}}"), written);
    }
    text
}

/// Whether `value` (as written in TOML) is of the field's type and within its bounds.
fn within(bounds: Bounds, value: &str) -> bool {
    let text = value.strip_prefix('"').and_then(|v| v.strip_suffix('"'));
    match bounds {
        Bounds::Duration(min, max) => text
            .and_then(|t| Duration::from_str(t).ok())
            .is_some_and(|d| min <= d && d <= max),
        Bounds::Integer(min, max) => {
            text.is_none() && value.parse::<i64>().is_ok_and(|n| min <= n && n <= max)
        }
        Bounds::Bytes(min, max) => text
            .map_or_else(
                || value.parse::<u64>().ok(),
                |t| ByteSize::from_str(t).ok().map(|b| b.0),
            )
            .is_some_and(|n| min <= n && n <= max),
        Bounds::Fraction => {
            text.is_none() && value.parse::<f64>().is_ok_and(|f| f > 0.0 && f <= 1.0)
        }
    }
}

/// Limits in milliseconds, to aim values just below, at and above each.
fn limits_ms() -> Vec<u64> {
    [
        limits::MAX_RTO,
        limits::MAX_STEADY_STATE,
        limits::MAX_OBSERVE,
        limits::MAX_COOLDOWN,
        limits::MAX_FAULT_DURATION,
        limits::MIN_FAULT_DURATION,
        limits::MIN_PROBE_INTERVAL,
        limits::MAX_PROBE_INTERVAL,
        limits::MAX_PROBE_TIMEOUT,
    ]
    .iter()
    .map(|d| d.get().as_millis() as u64)
    .collect()
}

fn duration_value() -> impl Strategy<Value = String> {
    let number = prop_oneof![0u64..=3, 1u64..=100_000, any::<u64>()];
    let unit = prop::sample::select(vec!["ns", "us", "ms", "s", "m", "h", "d", "y"]);
    prop_oneof![
        (number, unit).prop_map(|(n, unit)| format!("\"{n}{unit}\"")),
        (prop::sample::select(limits_ms()), -1i64..=1)
            .prop_map(|(ms, delta)| format!("\"{}ms\"", ms.saturating_add_signed(delta))),
        any::<i64>().prop_map(|n| n.to_string()),
    ]
}

fn integer_value() -> impl Strategy<Value = String> {
    let edges = vec![
        0, 1, 99, 100, 101, 599, 600, 999, 1_000, 1_001, 10_000, 10_001, 65_535, 65_536,
    ];
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        (-3i64..=3).prop_map(|n| n.to_string()),
        prop::sample::select(edges).prop_map(|n: i64| n.to_string()),
        Just(i64::MAX.to_string()),
        Just(i64::MIN.to_string()),
        any::<u32>().prop_map(|n| format!("\"{n}\"")),
    ]
}

fn size_value() -> impl Strategy<Value = String> {
    let unit = prop::sample::select(vec!["", "B", "KB", "KiB", "MiB", "GiB", "TB", "TiB"]);
    prop_oneof![
        (any::<u64>(), unit).prop_map(|(n, unit)| format!("\"{n}{unit}\"")),
        (0u64..=2048).prop_map(|n| format!("\"{n}TiB\"")),
        (0i64..=i64::MAX).prop_map(|n| n.to_string()),
        (-3i64..=3).prop_map(|n| n.to_string()),
        Just(limits::MAX_DISK_BYTES.to_string()),
        Just((limits::MAX_DISK_BYTES + 1).to_string()),
    ]
}

fn fraction_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<f64>()
            .prop_filter("TOML has no NaN literal of Rust's spelling", |f| f
                .is_finite())
            .prop_map(|f| format!("{f:?}")),
        (-2.0f64..2.0).prop_map(|f| format!("{f:?}")),
        Just("1.0".to_string()),
        Just("0.0".to_string()),
        Just("nan".to_string()),
        Just("inf".to_string()),
    ]
}

/// The property, for one field and one written value.
fn check(field: &str, bounds: Bounds, value: &str) -> Result<(), TestCaseError> {
    let text = scenario_with(field, value);
    let expected = within(bounds, value);
    match scenario::parse("limits.toml", &text) {
        Ok(_) => prop_assert!(expected, "`{field}` = {value} accepted, outside its bounds"),
        Err(errors) => {
            prop_assert!(
                !expected,
                "`{field}` = {value} refused, within its bounds: {errors}"
            );
            // A list entry is named with its index: `ports[0]`.
            let (named, entry) = (format!("`{field}`"), format!("`{field}["));
            prop_assert!(
                errors
                    .errors()
                    .iter()
                    .all(|e| e.message.contains(&named) || e.message.contains(&entry)),
                "`{field}` = {value}: the error does not name the field: {errors}"
            );
        }
    }
    Ok(())
}

#[test]
fn the_template_is_valid() {
    let text = scenario_with("", "");
    if let Err(errors) = scenario::parse("limits.toml", &text) {
        panic!("{errors}");
    }
    for (field, valid, bounds) in fields() {
        assert!(within(bounds, valid), "{field} = {valid}");
    }
}

#[test]
fn every_limit_is_accepted_and_one_past_it_refused() {
    for (field, _, bounds) in fields() {
        let (at, past) = match bounds {
            Bounds::Duration(_, max) => (
                format!("\"{}ms\"", max.get().as_millis()),
                format!("\"{}ms\"", max.get().as_millis() + 1),
            ),
            Bounds::Integer(_, max) => (max.to_string(), (max + 1).to_string()),
            Bounds::Bytes(_, max) => (max.to_string(), (max + 1).to_string()),
            Bounds::Fraction => ("1.0".to_string(), "1.0000001".to_string()),
        };
        for (value, ok) in [(at, true), (past, false)] {
            assert_eq!(within(bounds, &value), ok, "{field} = {value}");
            if let Err(e) = check(field, bounds, &value) {
                panic!("{e}");
            }
        }
    }
}

proptest! {
    #[test]
    fn durations_are_accepted_exactly_within_their_bounds(
        which in 0usize..7,
        value in duration_value(),
    ) {
        let durations: Vec<_> = fields()
            .into_iter()
            .filter(|(_, _, b)| matches!(b, Bounds::Duration(..)))
            .collect();
        let (field, _, bounds) = durations[which % durations.len()];
        check(field, bounds, &value)?;
    }

    #[test]
    fn counts_are_accepted_exactly_within_their_bounds(
        which in 0usize..6,
        value in integer_value(),
    ) {
        let counts: Vec<_> = fields()
            .into_iter()
            .filter(|(_, _, b)| matches!(b, Bounds::Integer(..)))
            .collect();
        let (field, _, bounds) = counts[which % counts.len()];
        check(field, bounds, &value)?;
    }

    #[test]
    fn sizes_are_accepted_exactly_within_their_bounds(value in size_value()) {
        check("size", Bounds::Bytes(1, limits::MAX_DISK_BYTES), &value)?;
    }

    #[test]
    fn pass_rates_are_accepted_exactly_within_their_bounds(value in fraction_value()) {
        check("min_pass_rate", Bounds::Fraction, &value)?;
    }
}
