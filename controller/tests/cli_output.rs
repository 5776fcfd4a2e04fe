//! The CLI's conventions, with the real binary and no controller: `-o/--output` is the format
//! in every subcommand, a closed stdout ends the program quietly, `validate DIR` checks every
//! scenario in it, and a missing certificate flag is a usage error.
// Integration tests start the real binaries, services and helper processes.
#![allow(clippy::disallowed_methods)]

mod common;

use std::path::{Path, PathBuf};

use common::*;

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

fn run(args: &[&str]) -> (i32, String, String) {
    let mut cmd = std::process::Command::new(gameday_bin());
    cmd.args(args);
    for var in [
        "GAMEDAY_CA",
        "GAMEDAY_CERT",
        "GAMEDAY_KEY",
        "GAMEDAY_CONTROLLER",
    ] {
        cmd.env_remove(var);
    }
    let out = cmd.output().expect("run gameday");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_closed_stdout_ends_quietly_with_141() {
    let dir = scenarios_dir();
    let (code, stderr) = gameday_into_closed_pipe(&["validate", dir.to_str().unwrap()], &[]);
    assert!(!stderr.contains("panicked"), "no panic:\n{stderr}");
    assert!(
        !stderr.contains("Broken pipe"),
        "nothing said about it:\n{stderr}"
    );
    assert_eq!(
        code,
        Some(141),
        "128 + SIGPIPE, like a Unix tool:\n{stderr}"
    );
}

#[test]
fn validate_checks_every_scenario_in_a_directory() {
    let (code, out, err) = run(&["validate", scenarios_dir().to_str().unwrap()]);
    assert_eq!(code, 0, "the shipped scenarios are valid:\n{out}\n{err}");
    assert!(out.contains("demo.toml: ok"), "{out}");
    assert!(out.lines().count() > 1, "every file in it:\n{out}");

    let dir = tempfile::tempdir().unwrap();
    let demo = std::fs::read_to_string(scenarios_dir().join("demo.toml")).unwrap();
    std::fs::write(dir.path().join("a.toml"), &demo).unwrap();
    std::fs::write(dir.path().join("b.toml"), demo.replace("rto =", "rtoo =")).unwrap();
    std::fs::write(dir.path().join("c.toml"), &demo).unwrap();
    std::fs::write(dir.path().join("notes.md"), "not a scenario").unwrap();
    let (code, out, err) = run(&["validate", dir.path().to_str().unwrap()]);
    assert_eq!(code, 2, "one invalid file is exit 2:\n{out}\n{err}");
    let ok: Vec<&str> = out.lines().collect();
    assert_eq!(ok.len(), 2, "{out}");
    assert!(
        ok[0].contains("a.toml: ok") && ok[1].contains("c.toml: ok"),
        "{out}"
    );
    assert!(err.contains("b.toml:"), "the bad file is named:\n{err}");
    assert!(err.contains("2 of 3 scenario files valid"), "{err}");

    let empty = tempfile::tempdir().unwrap();
    let (code, _, err) = run(&["validate", empty.path().to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no *.toml files"), "{err}");
}

#[test]
fn a_missing_certificate_flag_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("https://127.0.0.1:{}", free_port());
    for args in [
        vec!["agents", "--controller", &url],
        vec!["runs", "--controller", &url],
        vec!["schedules", "--controller", &url],
    ] {
        let (code, _, err) = run(&args);
        assert_eq!(code, 2, "{args:?}: exit 2, not 4:\n{err}");
        assert!(err.contains("--ca (or GAMEDAY_CA) is required"), "{err}");
    }
    let ca = dir.path().join("missing-ca.pem");
    let (code, _, err) = run(&["agents", "--controller", &url, "--ca", ca.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--cert (or GAMEDAY_CERT) is required"),
        "{err}"
    );
}

#[test]
fn dash_o_is_the_output_format_in_every_subcommand() {
    for sub in [
        &["run"][..],
        &["agents"],
        &["abort"],
        &["runs"],
        &["runs", "show"],
        &["report"],
        &["schedules"],
        &["demo"],
    ] {
        let mut args = sub.to_vec();
        args.push("--help");
        let (code, out, err) = run(&args);
        assert_eq!(code, 0, "{sub:?}: {err}");
        assert!(
            out.contains("-o, --output <OUTPUT>"),
            "{sub:?} takes -o/--output FORMAT:\n{out}"
        );
    }
    let (_, help, _) = run(&["report", "--help"]);
    assert!(help.contains("--out-file <PATH>"), "{help}");

    // The old `report -o FILE`: refused as a format, with the way to write a file.
    let (code, _, err) = run(&["report", "run-x", "-o", "run.html"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("invalid value 'run.html'"), "{err}");
    assert!(err.contains("--out-file run.html"), "{err}");
    let (code, _, err) = run(&["agents", "-o", "yaml"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn certs_init_says_what_it_did_and_never_replaces_the_controller_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pki");
    let dir = dir.to_str().unwrap();
    let (code, out, err) = run(&["certs", "init", "--dir", dir, "--agent", "web-1"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("created ") && out.contains("(CA, valid for 3650 days)"),
        "{out}"
    );
    assert!(out.contains("(agent web-1, valid for 730 days)"), "{out}");

    let (code, out, err) = run(&[
        "certs", "init", "--dir", dir, "--agent", "web-1", "--days", "90",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("kept ") && out.contains("controller: current, valid until"),
        "{out}"
    );
    assert!(out.contains("(agent web-1: current"), "{out}");
    assert!(
        out.ends_with("nothing to do: every certificate is current\n"),
        "{out}"
    );

    let controller = std::fs::read(Path::new(dir).join("controller.pem")).unwrap();
    let (code, out, err) = run(&[
        "certs",
        "init",
        "--dir",
        dir,
        "--controller-san",
        "gameday.internal",
    ]);
    assert_eq!(code, 2, "refused:\n{out}{err}");
    assert!(err.contains("certs issue --dir"), "{err}");
    assert_eq!(
        std::fs::read(Path::new(dir).join("controller.pem")).unwrap(),
        controller
    );

    let (code, out, err) = run(&[
        "certs",
        "issue",
        "--dir",
        dir,
        "--controller",
        "--controller-san",
        "gameday.internal",
        "--days",
        "30",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("replaced ") && out.contains("valid for 30 days"),
        "{out}"
    );
    assert!(out.contains("restart `gameday serve`"), "{out}");
    assert_ne!(
        std::fs::read(Path::new(dir).join("controller.pem")).unwrap(),
        controller
    );

    let (code, _, err) = run(&["certs", "issue", "--dir", dir]);
    assert_eq!(code, 2, "a party is required: {err}");
    let (code, _, err) = run(&[
        "certs",
        "issue",
        "--dir",
        dir,
        "--agent",
        "a",
        "--controller-san",
        "x",
    ]);
    assert_eq!(code, 2, "--controller-san only with --controller: {err}");
}
