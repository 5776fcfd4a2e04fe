//! Config mistakes that used to loop or mislead: the real binaries exit 2 promptly, naming the
//! file and the problem, instead of retrying forever with `transport error` or printing
//! "listening on" before failing.
// Integration tests start the real binaries, services and helper processes.
#![allow(clippy::disallowed_methods)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

/// Long enough for a debug binary to start and fail; far shorter than "forever".
const PROMPTLY: Duration = Duration::from_secs(15);

/// Runs `gameday-agent --config CONFIG` to its exit.
fn agent_exit(config: &Path) -> (i32, String) {
    exit_within(
        Command::new(agent_bin()).arg("--config").arg(config),
        PROMPTLY,
    )
}

#[test]
fn agent_with_a_garbage_ca_file_exits_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::init(&dir.path().join("pki"), &["web-1"], &[]);
    let garbage = dir.path().join("garbage-ca.pem");
    std::fs::write(&garbage, "not a certificate at all\n").unwrap();
    let (cert, key) = certs.pair("agent", "web-1");
    // Nothing listens on the controller port: the agent must not get as far as dialing.
    let url = format!("https://127.0.0.1:{}", free_port());
    let config = agent_config(dir.path(), "web-1", &url, (&garbage, &cert, &key), "", "");
    let (code, stderr) = agent_exit(&config);
    assert_eq!(code, 2, "stderr:\n{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}: tls.ca ({}): expected PEM certificate",
            config.display(),
            garbage.display()
        )),
        "stderr:\n{stderr}"
    );
}

#[test]
fn agent_trusting_another_fleets_ca_exits_2_with_the_tls_cause() {
    let dir = tempfile::tempdir().unwrap();
    let ours = Certs::init(&dir.path().join("pki"), &["web-1"], &[]);
    let theirs = Certs::init(&dir.path().join("other"), &["web-1"], &[]);
    let ctl = Controller::start(dir.path(), &ours, "5s");
    // A consistent set of files, all from another fleet: only the handshake can tell.
    let (cert, key) = theirs.pair("agent", "web-1");
    let config = agent_config(
        dir.path(),
        "web-1",
        &ctl.url(),
        (&theirs.ca(), &cert, &key),
        "",
        "",
    );
    let (code, stderr) = agent_exit(&config);
    assert_eq!(code, 2, "stderr:\n{stderr}");
    assert!(
        stderr.contains(
            "the controller's certificate is not trusted by this agent's tls.ca: invalid peer \
             certificate: "
        ),
        "stderr:\n{stderr}"
    );
    assert!(!stderr.contains("transport error"), "stderr:\n{stderr}");
}

#[test]
fn agent_whose_certificate_the_controller_refuses_exits_2() {
    // The agent trusts both fleets (a CA bundle), so its files are consistent and it accepts
    // the controller; the controller trusts only its own fleet and refuses the agent's
    // certificate during the handshake.
    let dir = tempfile::tempdir().unwrap();
    let ours = Certs::init(&dir.path().join("pki"), &[], &[]);
    let theirs = Certs::init(&dir.path().join("other"), &["web-1"], &[]);
    let ctl = Controller::start(dir.path(), &ours, "5s");
    let bundle = dir.path().join("bundle.pem");
    let pem = |p: std::path::PathBuf| std::fs::read_to_string(p).unwrap();
    std::fs::write(&bundle, pem(ours.ca()) + &pem(theirs.ca())).unwrap();
    let (cert, key) = theirs.pair("agent", "web-1");
    let config = agent_config(
        dir.path(),
        "web-1",
        &ctl.url(),
        (&bundle, &cert, &key),
        "",
        "",
    );
    let (code, stderr) = agent_exit(&config);
    assert_eq!(code, 2, "stderr:\n{stderr}");
    assert!(
        stderr.contains("the controller refused this agent's certificate"),
        "stderr:\n{stderr}"
    );
}

#[test]
fn agent_retries_a_controller_that_is_not_up_yet_naming_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::init(&dir.path().join("pki"), &["web-1"], &[]);
    let (cert, key) = certs.pair("agent", "web-1");
    let url = format!("https://127.0.0.1:{}", free_port());
    let config = agent_config(
        dir.path(),
        "web-1",
        &url,
        (&certs.ca(), &cert, &key),
        "",
        "",
    );
    let mut child = Command::new(agent_bin())
        .arg("--config")
        .arg(&config)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let lines: Lines = Default::default();
    let kept = lines.clone();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            kept.lock().unwrap().push(line);
        }
    });
    let mut agent = ChildGuard {
        child,
        name: "agent",
    };
    wait_for("two retries logged", PROMPTLY, || {
        let lines = lines.lock().unwrap();
        let retries = lines
            .iter()
            .filter(|l| l.contains("cannot reach the controller; retrying"))
            .count();
        retries >= 2
    });
    let lines = lines.lock().unwrap().join("\n");
    assert!(
        lines.contains("Connection refused"),
        "the cause is named:\n{lines}"
    );
    assert!(agent.alive(), "a refused connection is retried:\n{lines}");
}

/// A controller config in `dir` with the fleet's CA and certificate and the given key.
fn controller_config(dir: &Path, certs: &Certs, key: &Path) -> std::path::PathBuf {
    let config = dir.join("controller.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n\n[tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
            dir.join("controller-data").display(),
            certs.ca().display(),
            certs.dir.join("controller.pem").display(),
            key.display()
        ),
    )
    .unwrap();
    config
}

#[test]
fn serve_with_a_bad_key_exits_2_before_listening() {
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::init(&dir.path().join("pki"), &["web-1"], &[]);
    let serve = |config: &Path| {
        exit_within(
            Command::new(gameday_bin())
                .args(["serve", "--config"])
                .arg(config),
            PROMPTLY,
        )
    };

    let garbage = dir.path().join("garbage.key");
    std::fs::write(&garbage, "-----BEGIN PRIVATE KEY-----\nnope\n").unwrap();
    let config = controller_config(dir.path(), &certs, &garbage);
    let (code, stderr) = serve(&config);
    assert_eq!(code, 2, "stderr:\n{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}: tls.key ({}): expected PEM private key",
            config.display(),
            garbage.display()
        )),
        "stderr:\n{stderr}"
    );
    assert!(!stderr.contains("listening on"), "stderr:\n{stderr}");

    // A well-formed key of another certificate.
    let (_, agent_key) = certs.pair("agent", "web-1");
    let config = controller_config(dir.path(), &certs, &agent_key);
    let (code, stderr) = serve(&config);
    assert_eq!(code, 2, "stderr:\n{stderr}");
    assert!(
        stderr.contains(&format!(
            "tls.key ({}): this private key does not belong to the certificate",
            agent_key.display()
        )),
        "stderr:\n{stderr}"
    );
    assert!(!stderr.contains("listening on"), "stderr:\n{stderr}");
}
