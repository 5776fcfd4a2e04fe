//! `[[faults]]`: each table read as written ([`RawFault`]), then checked into a [`Fault`] by
//! the proto crate's one check, errors pointing into that fault's table.

use std::ops::Range;

use gameday_proto::fault::{
    RawDiskFill, RawDnsPoison, RawNetworkPartition, RawProcessKill, RawProcessPause,
};
use gameday_proto::{Fault, FaultKind, FaultSpecError, RawFault};
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
    let expected = FaultKind::expected();
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
    let kind = match name.parse::<FaultKind>() {
        Ok(kind) => kind,
        Err(e) => {
            diagnostics.error(kind.span(), e.to_string());
            return None;
        }
    };

    let raw = match deserialize(kind, value) {
        Ok(raw) => raw,
        Err(e) => {
            diagnostics.toml_error(&e, Some(table), header);
            return None;
        }
    };
    match Fault::try_from(raw) {
        Ok(fault) => Some(fault),
        Err(e) => {
            let at = spec_error_field(&e)
                .and_then(|field| value_span(table, field))
                .unwrap_or(header);
            diagnostics.error(at, e.to_string());
            None
        }
    }
}

/// Reads the fault's table. Each kind is read as its own struct, without the `kind` key, so
/// that errors keep the position and the name of the offending key or value; serde's
/// internally tagged enums buffer their input and lose both.
fn deserialize(kind: FaultKind, value: &Spanned<DeValue<'_>>) -> Result<RawFault, toml::de::Error> {
    let fields = || ValueDeserializer::from(without_kind(value));
    match kind {
        FaultKind::ProcessKill => RawProcessKill::deserialize(fields()).map(RawFault::ProcessKill),
        FaultKind::ProcessPause => {
            RawProcessPause::deserialize(fields()).map(RawFault::ProcessPause)
        }
        FaultKind::NetworkPartition => {
            RawNetworkPartition::deserialize(fields()).map(RawFault::NetworkPartition)
        }
        FaultKind::DiskFill => RawDiskFill::deserialize(fields()).map(RawFault::DiskFill),
        FaultKind::DnsPoison => RawDnsPoison::deserialize(fields()).map(RawFault::DnsPoison),
    }
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
        FaultSpecError::Invalid { field, .. } => Some(field),
        FaultSpecError::MissingKind
        | FaultSpecError::ProcessMatch { .. }
        | FaultSpecError::ProcessPlace { .. } => None,
    }
}

fn value_span(table: &DeTable<'_>, key: &str) -> Option<Range<usize>> {
    table.get(key).map(Spanned::span)
}

#[cfg(test)]
mod tests {
    use gameday_proto::fault::{Count, ProcessMatch};
    use gameday_proto::{KillSignal, ProcessKill};

    use super::super::fixture::{assert_error, assert_only_error, errors, valid_with, VALID};
    use super::*;

    #[test]
    fn unknown_or_missing_kinds_list_the_expected_ones() {
        assert_only_error(
            &valid_with("kind = \"process_kill\"", "kind = \"cpu_stress\""),
            13,
            8,
            "unknown fault kind \"cpu_stress\" (expected one of: process_kill, process_pause, network_partition, disk_fill, dns_poison)",
        );
        assert_only_error(
            &valid_with("kind = \"process_kill\"\n", ""),
            12,
            1,
            "fault is missing `kind` (expected one of: process_kill, process_pause, network_partition, disk_fill, dns_poison)",
        );
        assert_only_error(
            &valid_with("kind = \"process_kill\"", "kind = 1"),
            13,
            8,
            "fault `kind` must be a string, one of: process_kill",
        );
    }

    #[test]
    fn unknown_keys_and_wrong_values_point_at_themselves() {
        let text = valid_with("count = \"all\"", "count = \"all\"\nsignals = \"SIGTERM\"");
        assert_only_error(
            &text,
            17,
            1,
            "unknown field `signals`, expected one of `signal`, `name`, `cmdline`, `pid_file`, `unit`, \
             `cgroup`, `container`, `netns`, `pidns`, `count`",
        );
        assert_only_error(
            &valid_with("signal = \"SIGKILL\"", "signal = 9"),
            14,
            10,
            "`signal`: invalid type: integer `9`, expected a string",
        );
        assert_only_error(
            &valid_with("count = \"all\"", "count = \"some\""),
            16,
            9,
            "`count`: unknown variant `some`, expected `all` or `one`",
        );
    }

    #[test]
    fn spec_errors_point_at_the_field_or_the_table() {
        assert_only_error(
            &valid_with("signal = \"SIGKILL\"", "signal = \"SIGSTOP\""),
            14,
            10,
            "unknown signal \"SIGSTOP\" (expected one of: SIGKILL",
        );
        assert_only_error(
            &valid_with(
                "pid_file = \"/tmp/x.pid\"",
                "pid_file = \"/tmp/x.pid\"\nname = \"demo\"",
            ),
            12,
            1,
            "a process fault needs exactly one of `name`, `cmdline` or `pid_file` (or only a place: \
             `unit`, `cgroup` or `container`), found 2",
        );
        assert_only_error(
            &valid_with("pid_file = \"/tmp/x.pid\"\n", ""),
            12,
            1,
            "found 0",
        );
        assert_only_error(
            &valid_with("pid_file = \"/tmp/x.pid\"", "name = \"\""),
            15,
            8,
            "`name` must not be empty",
        );
    }

    #[test]
    fn fault_durations_and_sizes_have_a_maximum_at_their_value() {
        let pause = "kind = \"process_pause\"\nname = \"x\"";
        let text = valid_with(
            "kind = \"process_kill\"\nsignal = \"SIGKILL\"\npid_file = \"/tmp/x.pid\"\ncount = \"all\"",
            &format!("{pause}\nduration = \"18446744073709551615s\""),
        );
        assert_only_error(&text, 15, 12, "is longer than the maximum, 1day");
        let text = valid_with(
            "kind = \"process_kill\"\nsignal = \"SIGKILL\"\npid_file = \"/tmp/x.pid\"\ncount = \"all\"",
            &format!("{pause}\nduration = \"0s\""),
        );
        assert_only_error(
            &text,
            15,
            12,
            "`duration`: 0s is shorter than the minimum, 1ms",
        );
        let text = valid_with(
            "kind = \"process_kill\"\nsignal = \"SIGKILL\"\npid_file = \"/tmp/x.pid\"\ncount = \"all\"",
            "kind = \"disk_fill\"\npath = \"/srv\"\nsize = \"2048TiB\"",
        );
        assert_only_error(
            &text,
            15,
            8,
            "`size`: 2048TiB is more than the maximum, 1024TiB",
        );
    }

    #[test]
    fn cmdline_regexes_must_compile() {
        let found = errors(&valid_with(
            "pid_file = \"/tmp/x.pid\"",
            "cmdline = \"redis-server (\"",
        ));
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_error(&found, 15, 11, "invalid `cmdline` regex: unclosed group");
        assert!(!found[0].2.contains('\n'), "one line: {:?}", found[0].2);
        let text = valid_with(
            "pid_file = \"/tmp/x.pid\"",
            "cmdline = 'redis-server .*:6379'",
        );
        let Ok(scenario) = super::super::parse("x.toml", &text) else {
            panic!("a valid regex is refused");
        };
        let Fault::ProcessKill(ProcessKill { selector, .. }) = &scenario.faults[0] else {
            panic!("{:?}", scenario.faults[0]);
        };
        assert!(
            matches!(&selector.target, Some(ProcessMatch::Cmdline(c)) if c.as_str() == "redis-server .*:6379")
        );
    }

    #[test]
    fn a_signal_is_accepted_without_its_sig_prefix() {
        let scenario = crate::scenario::parse(
            "s.toml",
            &VALID.replace("signal = \"SIGKILL\"", "signal = \"KILL\""),
        )
        .expect("KILL is SIGKILL");
        assert!(matches!(
            &scenario.faults[0],
            Fault::ProcessKill(ProcessKill {
                signal: KillSignal::Kill,
                ..
            })
        ));
    }

    #[test]
    fn errors_in_several_faults_are_all_reported() {
        let text = VALID
            .replace(
                "count = \"all\"\n",
                "count = \"all\"\n\n[[faults]]\nkind = \"process_kill\"\ncount = \"one\"\n",
            )
            .replace("signal = \"SIGKILL\"", "signal = \"SIGKIL\"");
        let found = errors(&text);
        assert_eq!(found.len(), 2, "{found:#?}");
        assert_error(&found, 14, 10, "unknown signal \"SIGKIL\"");
        assert_error(&found, 18, 1, "found 0");
    }

    #[test]
    fn the_direct_read_matches_the_enum_and_keeps_positions() {
        let text = "[[faults]]\nkind = \"process_kill\"\nname = \"nginx\"\ncount = \"one\"\n\
                    [[faults]]\nkind = \"process_kill\"\nname = \"x\"\nbogus = 1\n";
        let root = DeTable::parse(text).expect("valid toml");
        let Some(DeValue::Array(faults)) = root.get_ref().get("faults").map(Spanned::get_ref)
        else {
            panic!("faults is an array");
        };
        let expected = RawFault::ProcessKill(RawProcessKill {
            signal: "SIGKILL".into(),
            name: Some("nginx".into()),
            cmdline: None,
            pid_file: None,
            unit: None,
            cgroup: None,
            container: None,
            netns: None,
            pidns: None,
            count: Count::One,
        });
        let through_enum = |value: &Spanned<DeValue<'_>>| {
            RawFault::deserialize(ValueDeserializer::from(value.clone()))
        };
        assert_eq!(
            deserialize(FaultKind::ProcessKill, &faults[0]),
            Ok(expected.clone())
        );
        assert_eq!(through_enum(&faults[0]), Ok(expected));

        // Through the enum the unknown key loses its position; read directly it keeps it.
        let direct = deserialize(FaultKind::ProcessKill, &faults[1]).expect_err("unknown key");
        let bogus = text.find("bogus").expect("in text");
        assert_eq!(direct.span(), Some(bogus..bogus + "bogus".len()));
        let via_enum = through_enum(&faults[1]).expect_err("unknown key");
        assert!(via_enum.message().contains("unknown field `bogus`"));
    }
}
