//! Probe validation through `parse`: kinds, keys, limits, names.

use super::address::{check_host_port, check_url};
use crate::scenario::fixture::{assert_error, assert_only_error, errors, valid_with};
use crate::scenario::parse;

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
        (
            "recovered_after = 3",
            "recovered_after = 3\nmax_in_flight = 0",
            25,
            17,
            "`max_in_flight` must be at least 1, got 0",
        ),
        (
            "recovered_after = 3",
            "recovered_after = 3\nmax_in_flight = 201",
            25,
            17,
            "`max_in_flight` must be at most 200, got 201",
        ),
        (
            "recovered_after = 3",
            "recovered_after = 3\nspread = 17",
            25,
            10,
            "`spread` must be at most 16, got 17",
        ),
        (
            "recovered_after = 3",
            "recovered_after = 3\nseed = -1",
            25,
            8,
            "`seed` must be at least 0, got -1",
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
    assert_eq!(http.max_in_flight, None, "sized by the probe engine");
    let text = valid_with(
        "recovered_after = 3",
        "recovered_after = 3\nmax_in_flight = 7",
    );
    assert_eq!(
        parse("x.toml", &text).expect("valid").probes[0].max_in_flight,
        Some(7)
    );
    assert!(matches!(
        &http.check,
        crate::scenario::ProbeCheck::Http {
            expect_status: 200,
            expect_body: None,
            ..
        }
    ));
}
