//! dns probes through `parse`: server, query, record type and expected addresses.

use super::address::{check_dns_name, dns_server};
use crate::scenario::fixture::{assert_error, assert_only_error, errors, valid_with};
use crate::scenario::parse;
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
