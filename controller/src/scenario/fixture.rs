//! Test fixtures: a valid scenario to start from, and assertions on the errors of a broken one.

use super::{parse, ScenarioError};

/// The example scenario from the design notes, valid as written.
pub(crate) const VALID: &str = r#"name = "demo"
description = "Kill the demo service; its restart loop brings it back."
rto = "2s"
repeat = 3
steady_state = "1s"
observe = "10s"

[targets]
agents = ["local"]
max_targets = 1

[[faults]]
kind = "process_kill"
signal = "SIGKILL"
pid_file = "/tmp/x.pid"
count = "all"

[[probes]]
name = "http"
kind = "http"
url = "http://127.0.0.1:18080/"
interval = "10ms"
timeout = "200ms"
recovered_after = 3
expect_status = 200
expect_body = "ok"

[[probes]]
name = "port"
kind = "tcp"
address = "127.0.0.1:18080"
"#;

/// The smallest valid scenario: everything else defaulted.
pub(crate) const MINIMAL: &str = r#"name = "min"
rto = "5s"

[targets]
labels = { role = "web" }

[[faults]]
kind = "process_kill"
name = "nginx"

[[probes]]
name = "port"
kind = "tcp"
address = "127.0.0.1:80"
"#;

/// The errors `text` produces, as `(line, column, message)`; panics when it is valid.
pub(crate) fn errors(text: &str) -> Vec<(usize, usize, String)> {
    match parse("test.toml", text) {
        Ok(scenario) => panic!("expected errors, parsed {scenario:#?}"),
        Err(errors) => errors
            .errors()
            .iter()
            .cloned()
            .map(
                |ScenarioError {
                     file,
                     line,
                     column,
                     message,
                 }| {
                    assert_eq!(file, "test.toml");
                    (line, column, message)
                },
            )
            .collect(),
    }
}

/// Asserts `text` fails with exactly one error, at `line`:`column`, whose message contains `part`.
#[track_caller]
pub(crate) fn assert_only_error(text: &str, line: usize, column: usize, part: &str) {
    let found = errors(text);
    assert_eq!(found.len(), 1, "expected one error, got {found:#?}");
    assert_error(&found, line, column, part);
}

/// Asserts `found` holds an error at `line`:`column` whose message contains `part`.
#[track_caller]
pub(crate) fn assert_error(
    found: &[(usize, usize, String)],
    line: usize,
    column: usize,
    part: &str,
) {
    assert!(
        found
            .iter()
            .any(|(l, c, m)| *l == line && *c == column && m.contains(part)),
        "no error at {line}:{column} containing {part:?} in {found:#?}"
    );
}

/// `VALID` with the first occurrence of `from` replaced by `to` (which must exist).
pub(crate) fn valid_with(from: &str, to: &str) -> String {
    assert!(VALID.contains(from), "{from:?} is not in the fixture");
    VALID.replacen(from, to, 1)
}
