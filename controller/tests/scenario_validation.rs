//! Scenario validation through the public API: every scenario shipped in `scenarios/` loads, and
//! a broken file is reported as `FILE:LINE:COL: MESSAGE`, one error per line.

use std::path::{Path, PathBuf};

use gameday::scenario::{self, ProbeCheck};

fn shipped_scenarios() -> Vec<PathBuf> {
    scenarios_in("../scenarios")
}

fn scenarios_in(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_shipped_scenario_is_valid() {
    let mut failures = Vec::new();
    for path in shipped_scenarios() {
        if let Err(errors) = scenario::load(&path) {
            failures.push(errors.to_string());
        }
    }
    assert!(
        failures.is_empty(),
        "invalid scenarios:\n{}",
        failures.join("\n")
    );
}

#[test]
fn no_shipped_scenario_holds_a_fault_for_less_than_its_rto_unless_it_says_why() {
    let mut warned = Vec::new();
    for path in shipped_scenarios()
        .into_iter()
        .chain(scenarios_in("../scenarios/lab"))
    {
        let s = scenario::load(&path).expect("valid");
        for w in s.warnings() {
            warned.push(format!("{}: {w}", path.display()));
        }
    }
    assert!(warned.is_empty(), "warnings:\n{}", warned.join("\n"));
}

#[test]
fn a_broken_file_reports_every_error_with_its_position() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("broken.toml");
    let text = r#"name = "broken"
rto = "2 seconds please"
repeat = 0

[targets]
agents = ["web-1"]

[[faults]]
kind = "process_kill"
name = "nginx"

[[probes]]
name = "web"
kind = "http"
url = "https://web-1/"
"#;
    std::fs::write(&path, text).expect("write");
    let errors = scenario::load(&path).expect_err("broken");
    let file = path.display().to_string();
    let shown = errors.to_string();
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), 3, "{shown}");
    assert!(
        lines[0].starts_with(&format!("{file}:2:7: `rto`: invalid duration")),
        "{shown}"
    );
    assert_eq!(
        lines[1],
        format!("{file}:3:10: `repeat` must be at least 1, got 0")
    );
    assert!(
        lines[2].starts_with(&format!("{file}:15:7: https probes are not supported yet")),
        "{shown}"
    );
    // The errors are a std error, so callers can use `?` into anyhow.
    let boxed: Box<dyn std::error::Error> = Box::new(errors);
    assert_eq!(boxed.to_string(), shown);
}

#[test]
fn a_valid_file_loads_into_the_public_types() {
    let text = r#"name = "kill-web"
rto = "5s"
[targets]
labels = { role = "web" }
max_targets = 2
[[faults]]
kind = "process_kill"
cmdline = "nginx: master"
[[probes]]
name = "port"
kind = "tcp"
address = "127.0.0.1:8080"
"#;
    let parsed = scenario::parse("kill-web.toml", text).expect("valid");
    assert_eq!(parsed.targets.max_targets, 2);
    assert_eq!(parsed.faults[0].kind().name(), "process_kill");
    assert!(
        matches!(&parsed.probes[0].check, ProbeCheck::Tcp { address } if address == "127.0.0.1:8080")
    );
}
