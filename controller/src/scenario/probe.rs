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
                format!("`{field}` does not apply to {kind} probes (besides the common fields, {kind} probes take {takes})"),
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
            format!("`address` {:?} {why} (expected host:port, like \"127.0.0.1:8080\" or \"[::1]:8080\")", address.get_ref()),
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
    if uri.port_u16() == Some(0) {
        return Err(format!("`url` {url:?} has port 0"));
    }
    Ok(())
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
