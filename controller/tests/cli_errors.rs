//! What the operator CLI says when it cannot talk to the controller: what happened and what to
//! do, the cause said once, never tonic's raw `code: 'Unknown error', message: "h2 protocol
//! error: …"` or `tcp connect error: tcp connect error: …`.
// Integration tests start the real binaries, services and helper processes.
#![allow(clippy::disallowed_methods)]

mod common;

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

/// The CLI's stderr must not show tonic's raw errors.
fn assert_no_raw_transport_error(stderr: &str) {
    for raw in [
        "code: '",
        "h2 protocol error",
        "transport error",
        "tcp connect error: tcp connect error",
        "dns error: dns error",
    ] {
        assert!(!stderr.contains(raw), "{raw:?} in:\n{stderr}");
    }
}

fn agents(url: &str, env: &[(&str, &std::path::Path)]) -> (i32, String) {
    let out = gameday(&["agents", "--controller", url], env);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn connection_mistakes_are_said_plainly() {
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::init(&dir.path().join("pki"), &[], &["sre"]);
    let other = Certs::init(&dir.path().join("other"), &[], &["sre"]);
    let ctl = Controller::start(dir.path(), &certs, "5s");
    let (cert, key) = certs.pair("operator", "sre");
    let ca = certs.ca();
    let env = ctl.operator_env(&ca, &cert, &key);

    let (code, stderr) = agents(&format!("http://{}", ctl.addr), &env);
    assert_ne!(code, 0);
    assert!(
        stderr.contains(&format!(
            "the controller speaks https only: use --controller https://{}",
            ctl.addr
        )),
        "{stderr}"
    );

    let (code, stderr) = agents(&format!("https://127.0.0.1:{}", free_port()), &env);
    assert_ne!(code, 0);
    assert!(stderr.contains("connection refused;"), "{stderr}");
    assert_no_raw_transport_error(&stderr);

    // Another fleet's CA and operator certificate: the controller's certificate is not theirs.
    let other_ca = other.ca();
    let (other_cert, other_key) = other.pair("operator", "sre");
    let (code, stderr) = agents(
        &ctl.url(),
        &ctl.operator_env(&other_ca, &other_cert, &other_key),
    );
    assert_ne!(code, 0);
    assert!(
        stderr.contains(&format!(
            "the controller's certificate is not signed by the fleet CA in {}",
            other_ca.display()
        )),
        "{stderr}"
    );
    assert_eq!(stderr.matches("BadSignature").count(), 1, "{stderr}");
    assert_no_raw_transport_error(&stderr);

    // Our CA, another fleet's certificate: said before dialing.
    let (code, stderr) = agents(&ctl.url(), &ctl.operator_env(&ca, &other_cert, &other_key));
    assert_ne!(code, 0);
    assert!(
        stderr.contains("--cert (") && stderr.contains("not by the CA in"),
        "{stderr}"
    );
}

#[test]
fn a_controller_lost_mid_run_is_said_with_what_becomes_of_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::init(&dir.path().join("pki"), &["web-1"], &["sre"]);
    let mut ctl = Controller::start(dir.path(), &certs, "5s");
    let (cert, key) = certs.pair("agent", "web-1");
    let ca = certs.ca();
    let _agent = ctl.agent(dir.path(), "web-1", &ca, &cert, &key, "");
    let (op_cert, op_key) = certs.pair("operator", "sre");
    let env = ctl.operator_env(&ca, &op_cert, &op_key);
    wait_for("web-1 to register", Duration::from_secs(20), || {
        ctl.agents(&env).1.contains("web-1")
    });
    let (_target, pid_file) = sleeper(dir.path());
    // The probe watches the controller's own port: healthy until the controller dies.
    let file = dir.path().join("lost.toml");
    std::fs::write(
        &file,
        format!(
            "name = \"lost-controller\"\nrto = \"1s\"\nsteady_state = \"1h\"\nobserve = \"2s\"\n\n\
             [targets]\nagents = [\"web-1\"]\n\n\
             [[faults]]\nkind = \"process_kill\"\npid_file = \"{}\"\n\n\
             [[probes]]\nname = \"ctl\"\nkind = \"tcp\"\naddress = \"{}\"\n",
            pid_file.display(),
            ctl.addr
        ),
    )
    .unwrap();
    let mut cmd = Command::new(gameday_bin());
    cmd.args(["run", "--controller", &ctl.url()])
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in &env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start gameday run");
    let lines: Arc<Mutex<Vec<String>>> = Default::default();
    let reader = {
        let lines = lines.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[gameday run] {line}");
                lines.lock().unwrap().push(line);
            }
        })
    };
    wait_for(
        "the run to reach its steady state",
        Duration::from_secs(30),
        || {
            lines
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains("steady state for"))
        },
    );
    ctl.kill();
    let mut status = None;
    wait_for("the CLI to give up", Duration::from_secs(30), || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    reader.join().unwrap();
    let stderr = lines.lock().unwrap().join("\n");
    assert_ne!(status.unwrap().code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "lost the controller at {} during run 1/1 of lost-controller",
            ctl.url()
        )) && stderr.contains("its agents revert every fault within their lease")
            && stderr.contains("the run will show as interrupted"),
        "{stderr}"
    );
    assert!(!stderr.contains("code: '"), "{stderr}");
}
