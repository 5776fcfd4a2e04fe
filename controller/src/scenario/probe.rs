//! `[[probes]]`: each table read into a [`ProbeSpec`], with the fields checked against its kind.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;

use gameday_proto::Duration;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::echo;
use super::error::Diagnostics;
use super::fields::Field;
use super::limits::{
    MAX_PROBE_INTERVAL, MAX_PROBE_TIMEOUT, MAX_RECOVERED_AFTER, MIN_PROBE_INTERVAL,
};
use super::names::check_name;
use super::raw::RawProbe;
use super::settings::{bounded_duration, count, Lower};
use super::tree::key_span;
use super::{DnsRecord, ProbeCheck, ProbeSpec};

/// Probe kinds by the name scenarios use.
pub(crate) const PROBE_KINDS: &[&str] = &["tcp", "http", "dns"];

const DEFAULT_INTERVAL: Duration = Duration::from_millis(100);
const DEFAULT_TIMEOUT: Duration = Duration::from_millis(1_000);
const DEFAULT_RECOVERED_AFTER: u32 = 3;
const DEFAULT_STATUS: u16 = 200;
/// The port of a dns probe's `server` written without one.
const DNS_PORT: u16 = 53;

const TCP_FIELDS: &[&str] = &["address"];
const HTTP_FIELDS: &[&str] = &["url", "expect_status", "expect_body"];
const DNS_FIELDS: &[&str] = &["server", "query", "record", "expect"];

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
                        "duplicate probe name {} (first used on line {line})",
                        echo::quoted(&spec.name)
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
    let raw = RawProbe::read(diagnostics, table);

    let name = match &raw.name {
        Field::Absent => {
            diagnostics.error(header.clone(), "probe is missing `name`");
            None
        }
        Field::Invalid => None,
        Field::Given(name) => match check_name(name.get_ref()) {
            Ok(()) => Some((name.get_ref().clone(), name.span())),
            Err(e) => {
                diagnostics.error(name.span(), format!("probe `name` {e}"));
                None
            }
        },
    };

    let interval = bounded_duration(
        diagnostics,
        "interval",
        &raw.interval,
        DEFAULT_INTERVAL,
        Lower::AtLeast(MIN_PROBE_INTERVAL),
        MAX_PROBE_INTERVAL,
    );
    let timeout = bounded_duration(
        diagnostics,
        "timeout",
        &raw.timeout,
        DEFAULT_TIMEOUT,
        Lower::Positive,
        MAX_PROBE_TIMEOUT,
    );
    let recovered_after = count(
        diagnostics,
        "recovered_after",
        &raw.recovered_after,
        DEFAULT_RECOVERED_AFTER,
        1..=MAX_RECOVERED_AFTER,
    );

    let check = match &raw.kind {
        Field::Invalid => None,
        Field::Absent => {
            diagnostics.error(
                header.clone(),
                format!(
                    "probe is missing `kind` (expected one of: {})",
                    PROBE_KINDS.join(", ")
                ),
            );
            None
        }
        Field::Given(kind) => match kind.get_ref().as_str() {
            "tcp" => {
                let foreign = [HTTP_FIELDS, DNS_FIELDS].concat();
                reject_fields(diagnostics, table, "tcp", TCP_FIELDS, &foreign);
                tcp(diagnostics, &raw, &header)
            }
            "http" => {
                let foreign = [TCP_FIELDS, DNS_FIELDS].concat();
                reject_fields(diagnostics, table, "http", HTTP_FIELDS, &foreign);
                http(diagnostics, &raw, &header)
            }
            "dns" => {
                let foreign = [TCP_FIELDS, HTTP_FIELDS].concat();
                reject_fields(diagnostics, table, "dns", DNS_FIELDS, &foreign);
                dns(diagnostics, &raw, &header)
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
    let address = match &raw.address {
        Field::Given(address) => address,
        Field::Invalid => return None,
        Field::Absent => {
            diagnostics.error(
                header.clone(),
                "tcp probe is missing `address`, like address = \"127.0.0.1:8080\"",
            );
            return None;
        }
    };
    if let Err(why) = check_host_port(address.get_ref()) {
        diagnostics.error(
            address.span(),
            format!(
                "`address` {} {why} (expected host:port, like \"127.0.0.1:8080\" or \
                 \"[::1]:8080\")",
                echo::quoted(address.get_ref())
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
        Field::Invalid => None,
        Field::Absent => {
            diagnostics.error(
                header.clone(),
                "http probe is missing `url`, like url = \"http://127.0.0.1:8080/health\"",
            );
            None
        }
        Field::Given(url) => match check_url(url.get_ref()) {
            Ok(()) => Some(url.get_ref().clone()),
            Err(why) => {
                diagnostics.error(url.span(), why);
                None
            }
        },
    };
    let expect_status = match &raw.expect_status {
        Field::Absent => Some(DEFAULT_STATUS),
        Field::Invalid => None,
        Field::Given(status) => match u16::try_from(*status.get_ref()) {
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
        expect_body: raw.expect_body.given().map(|b| b.get_ref().clone()),
    })
}

fn dns(
    diagnostics: &mut Diagnostics<'_>,
    raw: &RawProbe,
    header: &Range<usize>,
) -> Option<ProbeCheck> {
    let server = match &raw.server {
        Field::Invalid => None,
        Field::Absent => {
            diagnostics.error(
                header.clone(),
                "dns probe is missing `server`, like server = \"10.0.0.2:53\"",
            );
            None
        }
        Field::Given(server) => match dns_server(server.get_ref()) {
            Ok(address) => Some(address),
            Err(why) => {
                diagnostics.error(
                    server.span(),
                    format!(
                        "`server` {} {why} (expected an IP address with an optional port, \
                         like \"10.0.0.2\", \"10.0.0.2:53\" or \"[fd00::2]:53\")",
                        echo::quoted(server.get_ref())
                    ),
                );
                None
            }
        },
    };
    let query = match &raw.query {
        Field::Invalid => None,
        Field::Absent => {
            diagnostics.error(
                header.clone(),
                "dns probe is missing `query`, like query = \"api.internal\"",
            );
            None
        }
        Field::Given(query) => match check_dns_name(query.get_ref()) {
            Ok(()) => Some(query.get_ref().clone()),
            Err(why) => {
                diagnostics.error(query.span(), why);
                None
            }
        },
    };
    let record = match &raw.record {
        Field::Absent => Some(DnsRecord::default()),
        Field::Invalid => None,
        Field::Given(record) => match record.get_ref().to_ascii_uppercase().as_str() {
            "A" => Some(DnsRecord::A),
            "AAAA" => Some(DnsRecord::Aaaa),
            _ => {
                diagnostics.error(
                    record.span(),
                    format!(
                        "`record` must be \"A\" or \"AAAA\", got {}",
                        echo::quoted(record.get_ref())
                    ),
                );
                None
            }
        },
    };
    let expect = match &raw.expect {
        Field::Absent => Some(Vec::new()),
        Field::Invalid => None,
        Field::Given(list) if list.get_ref().is_empty() => {
            diagnostics.error(
                list.span(),
                "`expect` is empty: leave it out to accept any address, or list the addresses \
                 the answer must contain",
            );
            None
        }
        Field::Given(list) => {
            let mut addresses = Vec::new();
            let mut valid = true;
            for entry in list.get_ref() {
                match expected_address(entry.get_ref(), record) {
                    Ok(ip) => addresses.push(ip),
                    Err(why) => {
                        diagnostics.error(entry.span(), why);
                        valid = false;
                    }
                }
            }
            valid.then_some(addresses)
        }
    };
    Some(ProbeCheck::Dns {
        server: server?,
        query: query?,
        record: record?,
        expect: expect?,
    })
}

const NOT_AN_IP: &str =
    "is not an IP address: the probe asks the server directly, so give its address, not its name";

/// Reads a dns probe's `server`: `ip:port`, `[ipv6]:port`, or an address alone (port 53).
fn dns_server(server: &str) -> Result<SocketAddr, &'static str> {
    let address = match server.parse::<SocketAddr>() {
        Ok(address) => address,
        Err(_) => {
            let bare = server
                .strip_prefix('[')
                .and_then(|s| s.strip_suffix(']'))
                .unwrap_or(server);
            match bare.parse::<IpAddr>() {
                Ok(ip) => SocketAddr::new(ip, DNS_PORT),
                Err(_) => {
                    let host = server.rsplit_once(':').map(|(host, _)| {
                        host.strip_prefix('[')
                            .and_then(|h| h.strip_suffix(']'))
                            .unwrap_or(host)
                    });
                    return Err(match host.map(str::parse::<IpAddr>) {
                        Some(Ok(_)) => "has a port that is not a number from 1 to 65535",
                        _ if server.trim().is_empty() => "is empty",
                        // Resolving the server's own name would make the probe depend on
                        // another DNS server, which a fault may well be breaking.
                        _ => NOT_AN_IP,
                    });
                }
            }
        }
    };
    if address.port() == 0 {
        return Err("has port 0");
    }
    if address.ip().is_unspecified() {
        return Err("is the unspecified address, which no server answers from");
    }
    Ok(address)
}

/// Checks a dns probe's `query` is one DNS name (a trailing dot is allowed).
fn check_dns_name(query: &str) -> Result<(), String> {
    let shown = echo::quoted(query);
    let bare = query.strip_suffix('.').unwrap_or(query);
    if bare.starts_with("*.") {
        return Err(format!(
            "`query` {shown} is a wildcard; a probe looks up one name"
        ));
    }
    if bare.parse::<IpAddr>().is_ok() {
        return Err(format!(
            "`query` {shown} is an IP address; give the name to look up"
        ));
    }
    if !gameday_proto::fault::is_dns_pattern(bare)
        || hickory_proto::rr::Name::from_ascii(bare).is_err()
    {
        return Err(format!(
            "`query` {shown} is not a DNS name (labels of letters, digits, '-' and '_', \
             1 to 63 characters each, 253 in all, like \"api.internal\")"
        ));
    }
    Ok(())
}

/// Reads one `expect` entry of a dns probe: an address of the family `record` asks for (when
/// `record` itself is valid).
fn expected_address(entry: &str, record: Option<DnsRecord>) -> Result<IpAddr, String> {
    let shown = echo::quoted(entry);
    let Ok(ip) = entry.parse::<IpAddr>() else {
        return Err(format!("`expect` entry {shown} is not an IP address"));
    };
    match record {
        Some(record) if !record.holds(&ip) => {
            let (family, other, fix) = match record {
                DnsRecord::A => ("IPv6", "IPv4", "AAAA"),
                DnsRecord::Aaaa => ("IPv4", "IPv6", "A"),
            };
            Err(format!(
                "`expect` entry {shown} is an {family} address, but {record} records hold \
                 {other} addresses (use record = \"{fix}\" for {family})"
            ))
        }
        _ => Ok(ip),
    }
}

/// Checks `url` is a plain-HTTP URL with a host, as the http probe reads it (`hyper::Uri`).
fn check_url(url: &str) -> Result<(), String> {
    let shown = echo::quoted(url);
    if url.to_ascii_lowercase().starts_with("https://") {
        return Err(format!(
            "https probes are not supported yet: use an http:// URL or a tcp probe (got {shown})"
        ));
    }
    if !url.starts_with("http://") {
        return Err(format!("`url` must start with http://, got {shown}"));
    }
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| format!("`url` {shown} is not a valid URL: {e}"))?;
    let Some(authority) = uri.authority() else {
        return Err(format!("`url` {shown} has no host"));
    };
    // Credentials written here would be copied into every report.
    if authority.as_str().contains('@') {
        return Err(format!(
            "`url` {shown} must not carry credentials (user@host)"
        ));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("`url` {shown} has no host"));
    }
    // `Uri` accepts any digits as a port, and the probe would then quietly fall back to port 80.
    let authority = authority.as_str();
    let port = match authority.rfind(']') {
        Some(end) => authority[end + 1..].strip_prefix(':'),
        None => authority.rsplit_once(':').map(|(_, port)| port),
    };
    match port.map(str::parse::<u16>) {
        None | Some(Ok(1..)) => Ok(()),
        Some(Ok(0)) => Err(format!("`url` {shown} has port 0")),
        Some(Err(_)) => Err(format!(
            "`url` {shown} has a port that is not a number from 1 to 65535"
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
    use super::{check_dns_name, check_host_port, check_url, dns_server};
    use crate::scenario::{DnsRecord, ProbeCheck};

    /// `VALID` with its tcp probe (line 28) turned into a dns probe: `kind` on line 30, then
    /// `fields` from line 31 on.
    fn dns_probe(fields: &str) -> String {
        valid_with(
            "kind = \"tcp\"\naddress = \"127.0.0.1:18080\"\n",
            &format!("kind = \"dns\"\n{fields}\n"),
        )
    }

    fn dns_check(fields: &str) -> ProbeCheck {
        let scenario = parse("x.toml", &dns_probe(fields)).expect("valid");
        scenario.probes[1].check.clone()
    }

    #[test]
    fn unknown_or_missing_kinds_list_the_expected_ones() {
        assert_only_error(
            &valid_with("kind = \"tcp\"", "kind = \"grpc\""),
            30,
            8,
            "unknown probe kind \"grpc\" (expected one of: tcp, http, dns)",
        );
        assert_only_error(
            &valid_with("kind = \"tcp\"\n", ""),
            28,
            1,
            "probe is missing `kind` (expected one of: tcp, http, dns)",
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
    fn every_problem_in_a_probe_is_reported() {
        let text = valid_with(
            "expect_body = \"ok\"",
            "expect_body = \"ok\"\nheaders = 1\nretries = 2",
        )
        .replace("timeout = \"200ms\"", "timeout = 200")
        .replace("name = \"port\"", "name = \"po\\u0000rt\"");
        let found = errors(&text);
        let at: Vec<(usize, usize)> = found.iter().map(|(l, c, _)| (*l, *c)).collect();
        assert_eq!(at, vec![(23, 11), (27, 1), (28, 1), (31, 8)], "{found:#?}");
        assert_error(
            &found,
            23,
            11,
            "`timeout`: invalid type: integer `200`, expected a string",
        );
        assert_error(&found, 27, 1, "unknown field `headers`");
        assert_error(&found, 28, 1, "unknown field `retries`");
        assert_error(
            &found,
            31,
            8,
            "probe `name` must not contain control characters",
        );
    }

    #[test]
    fn probe_timing_has_a_maximum() {
        // Once accepted, then the probe panicked.
        assert_only_error(
            &valid_with(
                "interval = \"10ms\"",
                "interval = \"18446744073709551615s\"",
            ),
            22,
            12,
            "`interval` must be at most 1h, got 5845",
        );
        assert_only_error(
            &valid_with("timeout = \"200ms\"", "timeout = \"5m 1s\""),
            23,
            11,
            "`timeout` must be at most 5m, got 5m 1s",
        );
        assert_only_error(
            &valid_with("recovered_after = 3", "recovered_after = 1001"),
            24,
            19,
            "`recovered_after` must be at most 1000, got 1001",
        );
        let at_max = valid_with("interval = \"10ms\"", "interval = \"1h\"")
            .replace("timeout = \"200ms\"", "timeout = \"5m\"")
            .replace("recovered_after = 3", "recovered_after = 1000");
        assert!(parse("max.toml", &at_max).is_ok());
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

    #[test]
    fn a_dns_probe_takes_a_server_a_name_a_type_and_addresses() {
        assert_eq!(
            dns_check("server = \"10.0.0.2\"\nquery = \"api.internal\""),
            ProbeCheck::Dns {
                server: "10.0.0.2:53".parse().unwrap(),
                query: "api.internal".into(),
                record: DnsRecord::A,
                expect: Vec::new(),
            }
        );
        assert_eq!(
            dns_check(
                "server = \"[fd00::2]:5353\"\nquery = \"api.internal.\"\nrecord = \"aaaa\"\n\
                 expect = [\"fd00::5\", \"fd00::6\"]"
            ),
            ProbeCheck::Dns {
                server: "[fd00::2]:5353".parse().unwrap(),
                query: "api.internal.".into(),
                record: DnsRecord::Aaaa,
                expect: vec!["fd00::5".parse().unwrap(), "fd00::6".parse().unwrap()],
            }
        );
        let scenario = parse(
            "x.toml",
            &dns_probe(
                "server = \"10.0.0.2:53\"\nquery = \"api.internal\"\nrecord = \"A\"\n\
                 expect = [\"10.0.0.5\"]\ninterval = \"50ms\"\ntimeout = \"300ms\"",
            ),
        )
        .expect("valid");
        let dns = &scenario.probes[1];
        assert_eq!(dns.interval, gameday_proto::Duration::from_millis(50));
        assert_eq!(dns.timeout, gameday_proto::Duration::from_millis(300));
        // Reports and history embed it as written, defaults spelled out.
        let json = serde_json::to_value(dns).expect("serializes");
        assert_eq!(json["kind"], "dns");
        assert_eq!(json["server"], "10.0.0.2:53");
        assert_eq!(json["query"], "api.internal");
        assert_eq!(json["record"], "A");
        assert_eq!(json["expect"], serde_json::json!(["10.0.0.5"]));
        let back: super::ProbeSpec = serde_json::from_value(json).expect("deserializes");
        assert_eq!(&back, dns);
    }

    #[test]
    fn a_dns_probe_needs_a_server_and_a_query() {
        assert_only_error(
            &dns_probe("query = \"api.internal\""),
            28,
            1,
            "dns probe is missing `server`, like server = \"10.0.0.2:53\"",
        );
        assert_only_error(
            &dns_probe("server = \"10.0.0.2\""),
            28,
            1,
            "dns probe is missing `query`, like query = \"api.internal\"",
        );
    }

    #[test]
    fn dns_servers_are_addresses_not_names() {
        let cases = [
            ("dns.internal:53", "is not an IP address"),
            ("dns.internal", "give its address, not its name"),
            ("10.0.0.2:0", "has port 0"),
            ("10.0.0.2:dns", "not a number from 1 to 65535"),
            ("[fd00::2]:99999", "not a number from 1 to 65535"),
            ("0.0.0.0", "unspecified"),
            ("", "is empty"),
        ];
        for (server, why) in cases {
            let text = dns_probe(&format!("server = \"{server}\"\nquery = \"api.internal\""));
            assert_only_error(&text, 31, 10, why);
            assert_only_error(
                &text,
                31,
                10,
                "(expected an IP address with an optional port",
            );
        }
        for (good, address) in [
            ("10.0.0.2", "10.0.0.2:53"),
            ("10.0.0.2:5353", "10.0.0.2:5353"),
            ("fd00::2", "[fd00::2]:53"),
            ("[fd00::2]", "[fd00::2]:53"),
            ("[fd00::2]:53", "[fd00::2]:53"),
        ] {
            assert_eq!(dns_server(good), Ok(address.parse().unwrap()), "{good}");
        }
    }

    #[test]
    fn dns_queries_are_single_names() {
        let cases = [
            ("*.internal", "is a wildcard"),
            ("10.0.0.5", "is an IP address; give the name to look up"),
            ("api..internal", "is not a DNS name"),
            ("api internal", "is not a DNS name"),
            (".", "is not a DNS name"),
            ("", "is not a DNS name"),
        ];
        for (query, why) in cases {
            let text = dns_probe(&format!("server = \"10.0.0.2\"\nquery = \"{query}\""));
            assert_only_error(&text, 32, 9, why);
        }
        let long = format!("{}.internal", "a".repeat(64));
        assert!(check_dns_name(&long).is_err_and(|e| e.contains("is not a DNS name")));
        for good in [
            "api.internal",
            "api.internal.",
            "localhost",
            "_srv.x-1.example",
        ] {
            assert_eq!(check_dns_name(good), Ok(()), "{good}");
        }
    }

    #[test]
    fn dns_records_are_a_or_aaaa_with_addresses_of_their_family() {
        let base = "server = \"10.0.0.2\"\nquery = \"api.internal\"";
        assert_only_error(
            &dns_probe(&format!("{base}\nrecord = \"MX\"")),
            33,
            10,
            "`record` must be \"A\" or \"AAAA\", got \"MX\"",
        );
        // Every bad entry, each at its place.
        let text = dns_probe(&format!(
            "{base}\nrecord = \"A\"\nexpect = [\"10.0.0.5\", \"nope\", \"fd00::5\"]"
        ));
        let found = errors(&text);
        assert_eq!(found.len(), 2, "{found:#?}");
        assert_error(
            &found,
            34,
            23,
            "`expect` entry \"nope\" is not an IP address",
        );
        assert_error(
            &found,
            34,
            31,
            "`expect` entry \"fd00::5\" is an IPv6 address, but A records hold IPv4 addresses \
             (use record = \"AAAA\" for IPv6)",
        );
        // The default type is A.
        assert_only_error(
            &dns_probe(&format!("{base}\nexpect = [\"fd00::5\"]")),
            33,
            11,
            "is an IPv6 address, but A records",
        );
        assert_only_error(
            &dns_probe(&format!(
                "{base}\nrecord = \"AAAA\"\nexpect = [\"10.0.0.5\"]"
            )),
            34,
            11,
            "is an IPv4 address, but AAAA records hold IPv6 addresses (use record = \"A\"",
        );
        // A wrong type is reported alone; the addresses are not judged against it.
        assert_only_error(
            &dns_probe(&format!("{base}\nrecord = \"TXT\"\nexpect = [\"fd00::5\"]")),
            33,
            10,
            "got \"TXT\"",
        );
        assert_only_error(
            &dns_probe(&format!("{base}\nexpect = []")),
            33,
            10,
            "`expect` is empty: leave it out to accept any address",
        );
        assert_only_error(
            &dns_probe(&format!("{base}\nexpect = \"10.0.0.5\"")),
            33,
            10,
            "`expect`: invalid type: string \"10.0.0.5\"",
        );
    }

    #[test]
    fn dns_fields_belong_to_dns_probes_only() {
        let text = dns_probe(
            "server = \"10.0.0.2\"\nquery = \"api.internal\"\naddress = \"h:1\"\nexpect_status = 200",
        );
        let found = errors(&text);
        assert_eq!(found.len(), 2, "{found:#?}");
        assert_error(
            &found,
            33,
            1,
            "`address` does not apply to dns probes (besides the common fields, dns probes take \
             `server`, `query`, `record`, `expect`)",
        );
        assert_error(
            &found,
            34,
            1,
            "`expect_status` does not apply to dns probes",
        );
        assert_only_error(
            &valid_with(
                "address = \"127.0.0.1:18080\"",
                "address = \"127.0.0.1:18080\"\nquery = \"api.internal\"",
            ),
            32,
            1,
            "`query` does not apply to tcp probes (besides the common fields, tcp probes take \
             `address`)",
        );
        assert_only_error(
            &valid_with(
                "expect_body = \"ok\"",
                "expect_body = \"ok\"\nexpect = [\"10.0.0.5\"]",
            ),
            27,
            1,
            "`expect` does not apply to http probes",
        );
    }
}
