//! `[[probes]]`: each table read into a [`ProbeSpec`], with the fields checked against its kind.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Range;

use gameday_proto::Duration;
use serde::Deserialize;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use super::error::Diagnostics;
use super::raw::RawProbe;
use super::settings::{count, optional_duration, positive};
use super::tree::key_span;
use super::{ProbeCheck, ProbeSpec};

/// Probe kinds by the name scenarios use.
pub(crate) const PROBE_KINDS: &[&str] = &["tcp", "http"];

const DEFAULT_INTERVAL: Duration = Duration::from_millis(100);
/// Faster probing would load the service more than it tells us.
const MIN_INTERVAL: Duration = Duration::from_millis(10);
const DEFAULT_TIMEOUT: Duration = Duration::from_millis(1_000);
const DEFAULT_RECOVERED_AFTER: u32 = 3;
const DEFAULT_STATUS: u16 = 200;

const TCP_FIELDS: &[&str] = &["address"];
const HTTP_FIELDS: &[&str] = &["url", "expect_status", "expect_body"];

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
                        "duplicate probe name {:?} (first used on line {line})",
                        spec.name
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
    let raw = match RawProbe::deserialize(ValueDeserializer::from(value.clone())) {
        Ok(raw) => raw,
        Err(e) => {
            diagnostics.toml_error(&e, Some(table), header);
            return None;
        }
    };

    let name = match &raw.name {
        None => {
            diagnostics.error(header.clone(), "probe is missing `name`");
            None
        }
        Some(name) if name.get_ref().trim().is_empty() => {
            diagnostics.error(name.span(), "probe `name` must not be empty");
            None
        }
        Some(name) => Some((name.get_ref().clone(), name.span())),
    };

    let interval = optional_duration(
        diagnostics,
        "interval",
        raw.interval.as_ref(),
        DEFAULT_INTERVAL,
    )
    .filter(|interval| {
        if *interval >= MIN_INTERVAL {
            return true;
        }
        let at = raw.interval.as_ref().map_or(header.clone(), Spanned::span);
        diagnostics.error(
            at,
            format!("`interval` must be at least {MIN_INTERVAL}, got {interval}"),
        );
        false
    });
    let timeout = optional_duration(
        diagnostics,
        "timeout",
        raw.timeout.as_ref(),
        DEFAULT_TIMEOUT,
    )
    .filter(|timeout| match &raw.timeout {
        Some(written) => positive(diagnostics, "timeout", written.span(), *timeout),
        None => true,
    });
    let recovered_after = count(
        diagnostics,
        "recovered_after",
        raw.recovered_after.as_ref(),
        DEFAULT_RECOVERED_AFTER,
        1,
    );

    let check = match &raw.kind {
        None => {
            diagnostics.error(
                header.clone(),
                format!(
                    "probe is missing `kind` (expected one of: {})",
                    PROBE_KINDS.join(", ")
                ),
            );
            None
        }
        Some(kind) => match kind.get_ref().as_str() {
            "tcp" => {
                reject_fields(diagnostics, table, "tcp", TCP_FIELDS, HTTP_FIELDS);
                tcp(diagnostics, &raw, &header)
            }
            "http" => {
                reject_fields(diagnostics, table, "http", HTTP_FIELDS, TCP_FIELDS);
                http(diagnostics, &raw, &header)
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

fn tcp(
    diagnostics: &mut Diagnostics<'_>,
    raw: &RawProbe,
    header: &Range<usize>,
) -> Option<ProbeCheck> {
    let Some(address) = &raw.address else {
        diagnostics.error(
            header.clone(),
            "tcp probe is missing `address`, like address = \"127.0.0.1:8080\"",
        );
        return None;
    };
    if let Err(why) = check_host_port(address.get_ref()) {
        diagnostics.error(
            address.span(),
            format!(
                "`address` {:?} {why} (expected host:port, like \"127.0.0.1:8080\" or \
                 \"[::1]:8080\")",
                address.get_ref()
            ),
        );
        return None;
    }
    Some(ProbeCheck::Tcp {
        address: address.get_ref().clone(),
    })
}

fn http(
    diagnostics: &mut Diagnostics<'_>,
    raw: &RawProbe,
    header: &Range<usize>,
) -> Option<ProbeCheck> {
    let url = match &raw.url {
        None => {
            diagnostics.error(
                header.clone(),
                "http probe is missing `url`, like url = \"http://127.0.0.1:8080/health\"",
            );
            None
        }
        Some(url) => match check_url(url.get_ref()) {
            Ok(()) => Some(url.get_ref().clone()),
            Err(why) => {
                diagnostics.error(url.span(), why);
                None
            }
        },
    };
    let expect_status = match &raw.expect_status {
        None => Some(DEFAULT_STATUS),
        Some(status) => match u16::try_from(*status.get_ref()) {
            Ok(code) if (100..=599).contains(&code) => Some(code),
            _ => {
                diagnostics.error(
                    status.span(),
                    format!(
                        "`expect_status` must be an HTTP status code from 100 to 599, got {}",
                        status.get_ref()
                    ),
                );
                None
            }
        },
    };
    Some(ProbeCheck::Http {
        url: url?,
        expect_status: expect_status?,
        expect_body: raw.expect_body.as_ref().map(|b| b.get_ref().clone()),
    })
}

/// Checks `url` is a plain-HTTP URL with a host, as the http probe reads it (`hyper::Uri`).
fn check_url(url: &str) -> Result<(), String> {
    if url.to_ascii_lowercase().starts_with("https://") {
        return Err(format!(
            "https probes are not supported yet: use an http:// URL or a tcp probe (got {url:?})"
        ));
    }
    if !url.starts_with("http://") {
        return Err(format!("`url` must start with http://, got {url:?}"));
    }
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| format!("`url` {url:?} is not a valid URL: {e}"))?;
    let Some(authority) = uri.authority() else {
        return Err(format!("`url` {url:?} has no host"));
    };
    // Credentials written here would be copied into every report.
    if authority.as_str().contains('@') {
        return Err(format!(
            "`url` {url:?} must not carry credentials (user@host)"
        ));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("`url` {url:?} has no host"));
    }
    // `Uri` accepts any digits as a port, and the probe would then quietly fall back to port 80.
    let authority = authority.as_str();
    let port = match authority.rfind(']') {
        Some(end) => authority[end + 1..].strip_prefix(':'),
        None => authority.rsplit_once(':').map(|(_, port)| port),
    };
    match port.map(str::parse::<u16>) {
        None | Some(Ok(1..)) => Ok(()),
        Some(Ok(0)) => Err(format!("`url` {url:?} has port 0")),
        Some(Err(_)) => Err(format!(
            "`url` {url:?} has a port that is not a number from 1 to 65535"
        )),
    }
}

/// Checks `address` is `host:port` or `[ipv6]:port`, as a TCP connect resolves it.
fn check_host_port(address: &str) -> Result<(), &'static str> {
    if let Ok(socket) = address.parse::<SocketAddr>() {
        return match socket.port() {
            0 => Err("has port 0"),
            _ => Ok(()),
        };
    }
    let (host, port) = if let Some(bracketed) = address.strip_prefix('[') {
        let Some((host, after)) = bracketed.split_once(']') else {
            return Err("has an unclosed '['");
        };
        (host, after.strip_prefix(':'))
    } else {
        match address.rsplit_once(':') {
            Some((host, _)) if host.contains(':') => {
                return Err("looks like an IPv6 address without brackets");
            }
            Some((host, port)) => (host, Some(port)),
            None => (address, None),
        }
    };
    if host.is_empty() {
        return Err("has no host");
    }
    if host.chars().any(char::is_whitespace) {
        return Err("has a space in the host");
    }
    match port.map(str::parse::<u16>) {
        None => Err("has no port"),
        Some(Ok(0)) => Err("has port 0"),
        Some(Ok(_)) => Ok(()),
        Some(Err(_)) => Err("has a port that is not a number from 1 to 65535"),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{assert_error, assert_only_error, errors, valid_with};
    use super::super::parse;
    use super::{check_host_port, check_url};

    #[test]
    fn unknown_or_missing_kinds_list_the_expected_ones() {
        assert_only_error(
            &valid_with("kind = \"tcp\"", "kind = \"dns\""),
            30,
            8,
            "unknown probe kind \"dns\" (expected one of: tcp, http)",
        );
        assert_only_error(
            &valid_with("kind = \"tcp\"\n", ""),
            28,
            1,
            "probe is missing `kind` (expected one of: tcp, http)",
        );
        assert_only_error(
            &valid_with("name = \"port\"\n", ""),
            28,
            1,
            "probe is missing `name`",
        );
    }

    #[test]
    fn unknown_keys_and_wrong_types_point_into_the_probe() {
        let text = valid_with("expect_body = \"ok\"", "expect_body = \"ok\"\nheaders = 1");
        assert_only_error(
            &text,
            27,
            1,
            "unknown field `headers`, expected one of `name`, `kind`, `interval`",
        );
        let text = valid_with("recovered_after = 3", "recovered_after = \"3\"");
        assert_only_error(
            &text,
            24,
            19,
            "`recovered_after`: invalid type: string \"3\"",
        );
    }

    #[test]
    fn fields_of_another_kind_are_rejected_at_their_key() {
        let text = valid_with(
            "address = \"127.0.0.1:18080\"",
            "address = \"127.0.0.1:18080\"\nurl = \"http://x/\"\nexpect_status = 204",
        );
        let found = errors(&text);
        assert_eq!(found.len(), 2, "{found:#?}");
        assert_error(
            &found,
            32,
            1,
            "`url` does not apply to tcp probes (besides the common fields, tcp probes take `address`)",
        );
        assert_error(
            &found,
            33,
            1,
            "`expect_status` does not apply to tcp probes",
        );
        let text = valid_with(
            "expect_body = \"ok\"",
            "expect_body = \"ok\"\naddress = \"h:1\"",
        );
        assert_only_error(
            &text,
            27,
            1,
            "`address` does not apply to http probes (besides the common fields, http probes take `url`, `expect_status`, `expect_body`)",
        );
    }

    #[test]
    fn each_kind_needs_its_target() {
        assert_only_error(
            &valid_with("address = \"127.0.0.1:18080\"\n", ""),
            28,
            1,
            "tcp probe is missing `address`",
        );
        assert_only_error(
            &valid_with("url = \"http://127.0.0.1:18080/\"\n", ""),
            18,
            1,
            "http probe is missing `url`",
        );
        assert_only_error(
            &valid_with("address = \"127.0.0.1:18080\"", "address = \"localhost\""),
            31,
            11,
            "`address` \"localhost\" has no port (expected host:port",
        );
    }

    #[test]
    fn https_and_other_schemes_are_refused() {
        let text = valid_with(
            "url = \"http://127.0.0.1:18080/\"",
            "url = \"https://127.0.0.1:18443/\"",
        );
        assert_only_error(&text, 21, 7, "https probes are not supported yet");
        let text = valid_with("url = \"http://127.0.0.1:18080/\"", "url = \"ftp://x/\"");
        assert_only_error(
            &text,
            21,
            7,
            "`url` must start with http://, got \"ftp://x/\"",
        );
    }

    #[test]
    fn timing_and_status_are_range_checked() {
        let cases = [
            (
                "interval = \"10ms\"",
                "interval = \"5ms\"",
                22,
                12,
                "`interval` must be at least 10ms, got 5ms",
            ),
            (
                "interval = \"10ms\"",
                "interval = \"fast\"",
                22,
                12,
                "`interval`: invalid duration \"fast\"",
            ),
            (
                "timeout = \"200ms\"",
                "timeout = \"200\"",
                23,
                11,
                "`timeout`: invalid duration \"200\": missing unit",
            ),
            (
                "recovered_after = 3",
                "recovered_after = 0",
                24,
                19,
                "`recovered_after` must be at least 1, got 0",
            ),
            (
                "expect_status = 200",
                "expect_status = 42",
                25,
                17,
                "`expect_status` must be an HTTP status code from 100 to 599, got 42",
            ),
            (
                "expect_status = 200",
                "expect_status = 70000",
                25,
                17,
                "got 70000",
            ),
        ];
        for (from, to, line, column, part) in cases {
            assert_only_error(&valid_with(from, to), line, column, part);
        }
    }

    #[test]
    fn names_are_unique() {
        assert_only_error(
            &valid_with("name = \"port\"", "name = \"http\""),
            29,
            8,
            "duplicate probe name \"http\" (first used on line 19)",
        );
        assert_only_error(
            &valid_with("name = \"port\"", "name = \"\""),
            29,
            8,
            "probe `name` must not be empty",
        );
    }

    #[test]
    fn errors_in_several_probes_are_all_reported() {
        let text = valid_with("interval = \"10ms\"", "interval = \"1ms\"").replacen(
            "kind = \"tcp\"",
            "kind = \"grpc\"",
            1,
        );
        let found = errors(&text);
        assert_eq!(found.len(), 2, "{found:#?}");
        assert_error(&found, 22, 12, "`interval` must be at least 10ms");
        assert_error(&found, 30, 8, "unknown probe kind \"grpc\"");
    }

    #[test]
    fn addresses_need_a_host_and_a_port() {
        for good in [
            "127.0.0.1:80",
            "localhost:6379",
            "[::1]:8080",
            "web-1.internal:443",
        ] {
            assert_eq!(check_host_port(good), Ok(()), "{good}");
        }
        let bad = [
            ("localhost", "has no port"),
            ("::1:80", "IPv6 address without brackets"),
            ("[::1]", "has no port"),
            ("[::1:80", "unclosed '['"),
            (":80", "has no host"),
            ("web:http", "not a number"),
            ("web:70000", "not a number"),
            ("web:0", "port 0"),
            ("127.0.0.1:0", "port 0"),
            ("my host:80", "space"),
        ];
        for (address, why) in bad {
            let found = check_host_port(address);
            assert!(
                found.is_err_and(|e| e.contains(why)),
                "{address}: {found:?}"
            );
        }
    }

    #[test]
    fn urls_are_plain_http_with_a_host() {
        for good in [
            "http://127.0.0.1:8080/health",
            "http://web/",
            "http://[::1]:80/x?y=1",
            "http://web",
        ] {
            assert_eq!(check_url(good), Ok(()), "{good}");
        }
        let bad = [
            ("HTTPS://web/", "https probes are not supported yet"),
            ("web:80/health", "must start with http://"),
            ("http://", "not a valid URL"),
            ("http://web:99999/", "not a number from 1 to 65535"),
            ("http://web:/", "not a number from 1 to 65535"),
            ("http://user:secret@web/", "must not carry credentials"),
            ("http://web:0/", "port 0"),
        ];
        for (url, why) in bad {
            let found = check_url(url);
            assert!(
                found.as_ref().is_err_and(|e| e.contains(why)),
                "{url}: {found:?}"
            );
        }
    }

    #[test]
    fn a_probe_with_only_the_required_fields_gets_defaults() {
        let text = valid_with(
            "interval = \"10ms\"\ntimeout = \"200ms\"\nrecovered_after = 3\nexpect_status = 200\nexpect_body = \"ok\"\n",
            "",
        );
        let scenario = parse("x.toml", &text).expect("valid");
        let http = &scenario.probes[0];
        assert_eq!(http.interval, gameday_proto::Duration::from_millis(100));
        assert_eq!(http.timeout, gameday_proto::Duration::from_millis(1_000));
        assert_eq!(http.recovered_after, 3);
        assert!(matches!(
            &http.check,
            super::ProbeCheck::Http {
                expect_status: 200,
                expect_body: None,
                ..
            }
        ));
    }
}
