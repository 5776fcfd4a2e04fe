//! The fields of each probe kind: tcp, http, dns.

use std::ops::Range;

use super::address::{check_dns_name, check_host_port, check_url, dns_server, expected_address};
use super::DEFAULT_STATUS;
use crate::scenario::echo;
use crate::scenario::error::Diagnostics;
use crate::scenario::fields::Field;
use crate::scenario::raw::RawProbe;
use crate::scenario::{DnsRecord, ProbeCheck};

pub(super) fn tcp(
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

pub(super) fn http(
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

pub(super) fn dns(
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
