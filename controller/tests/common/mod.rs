//! Test harness: the real `gameday` and `gameday-agent` binaries, real certificates, real
//! processes on loopback. Everything a test starts is stopped when its guard drops.
#![allow(dead_code)]

pub mod lab;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The `gameday` binary under test.
pub fn gameday_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_gameday"))
}

/// The `gameday-agent` binary, built beside `gameday` by `cargo test --workspace`.
pub fn agent_bin() -> PathBuf {
    let p = gameday_bin().with_file_name("gameday-agent");
    assert!(
        p.exists(),
        "{} is missing: run the tests with `cargo test --workspace` so the agent is built",
        p.display()
    );
    p
}

#[allow(unused_imports)] // not every test binary writes a scenario
pub use gameday_test_support::{FaultBuilder, ProbeBuilder, ScenarioBuilder};
pub use lab::netns::wait_for;

/// The demo service's HTTP check on 127.0.0.1:`port` (a good answer says "ok"), named `http`:
/// every 10 ms, each check bounded by 200 ms, recovered after 3 good answers in a row.
pub fn demo_http_probe(port: u16) -> ProbeBuilder {
    ProbeBuilder::http("http", format!("http://127.0.0.1:{port}/"))
        .interval("10ms")
        .timeout("200ms")
        .recovered_after(3)
        .expect_body("ok")
}

/// A TCP check of 127.0.0.1:`port` named `svc`, every 20 ms (with the default timeout).
pub fn svc_probe(port: u16) -> ProbeBuilder {
    ProbeBuilder::tcp("svc", format!("127.0.0.1:{port}")).interval("20ms")
}

/// A harmless `sleep` child (a fault target) whose pid is written to `dir/target.pid`; its
/// argument makes its command line unique to this test process.
pub fn sleeper(dir: &Path) -> (ChildGuard, PathBuf) {
    let child = Command::new("sleep")
        .arg(format!("300.{}{}", std::process::id(), free_port()))
        .spawn()
        .expect("start sleep");
    let pid_file = dir.join("target.pid");
    std::fs::write(&pid_file, format!("{}\n", child.id())).unwrap();
    let guard = ChildGuard {
        child,
        name: "sleep",
    };
    (guard, pid_file)
}

/// True when the process is stopped (SIGSTOP).
pub fn stopped(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next())
        .is_some_and(|s| s == "T")
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills and reaps a child when dropped, so nothing outlives a failed test.
pub struct ChildGuard {
    pub child: Child,
    pub name: &'static str,
}

impl ChildGuard {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// True while the process has not exited.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// SIGTERM, then wait for it to exit.
    pub fn terminate(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            // SIGTERM first so supervisors take their children with them.
            self.terminate();
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Starts the supervised demo service on `port`, restarted `delay` after it dies, writing its
/// pid to `dir/service.pid` and `listening`/`exited` events to `dir/events`.
pub fn supervised_service(dir: &Path, port: u16, delay: &str) -> ChildGuard {
    let events = dir.join("events");
    let child = Command::new(gameday_bin())
        .args(["demo-supervise", "--restart-delay", delay, "--pid-file"])
        .arg(dir.join("service.pid"))
        .arg("--events")
        .arg(&events)
        .arg("--")
        .arg(gameday_bin())
        .args([
            "demo-service",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--events",
        ])
        .arg(&events)
        .spawn()
        .expect("start the supervised demo service");
    let guard = ChildGuard {
        child,
        name: "supervisor",
    };
    wait_listening(port);
    guard
}

/// The demo service on `port` without a supervisor: once killed it stays down.
pub fn bare_service(dir: &Path, port: u16) -> ChildGuard {
    let child = Command::new(gameday_bin())
        .args([
            "demo-service",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--events",
        ])
        .arg(dir.join("events"))
        .spawn()
        .expect("start the demo service");
    std::fs::write(dir.join("service.pid"), format!("{}\n", child.id())).unwrap();
    let guard = ChildGuard {
        child,
        name: "service",
    };
    wait_listening(port);
    guard
}

pub fn wait_listening(port: u16) {
    wait_for(
        &format!("a listener on 127.0.0.1:{port}"),
        Duration::from_secs(10),
        || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
    );
}

/// `(event, CLOCK_MONOTONIC ns)` lines from an events file.
pub fn events(path: &Path) -> Vec<(String, u64)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (e, t) = l.split_once(' ')?;
            Some((e.to_string(), t.parse().ok()?))
        })
        .collect()
}

/// Runs `gameday ARGS`, returning its output (exit code, stdout, stderr).
pub fn gameday(args: &[&str], envs: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(gameday_bin());
    cmd.args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.env("GAMEDAY_AGENT_BIN", agent_bin());
    cmd.output().expect("run gameday")
}

/// Runs `gameday ARGS` with its stdout a pipe whose reader is already gone, as in
/// `gameday report RUN | head` once `head` has exited: every write to stdout fails (EPIPE).
/// Returns the exit code and stderr.
pub fn gameday_into_closed_pipe(args: &[&str], envs: &[(&str, &Path)]) -> (Option<i32>, String) {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let mut cmd = Command::new(gameday_bin());
    cmd.args(args)
        .stdout(writer)
        .stderr(Stdio::piped())
        .env("GAMEDAY_AGENT_BIN", agent_bin());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run gameday");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The permission bits a new file gets from this process (0666 less the umask).
pub fn new_file_mode(dir: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    let probe = dir.join(".new-file-mode");
    std::fs::write(&probe, "").unwrap();
    let mode = std::fs::metadata(&probe).unwrap().permissions().mode() & 0o777;
    std::fs::remove_file(&probe).unwrap();
    mode
}

/// The permission bits of `path`.
pub fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// `gameday run --local FILE --output json`: exit code and parsed report.
pub fn run_local(file: &Path) -> (i32, serde_json::Value, String) {
    let out = gameday(
        &["run", "--local", "--output", "json", file.to_str().unwrap()],
        &[],
    );
    report_of(out)
}

/// Exit code, parsed JSON report (Null when there is none) and stderr of a `gameday run`.
pub fn report_of(out: Output) -> (i32, serde_json::Value, String) {
    let code = out.status.code().expect("exit code");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let report = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (code, report, stderr)
}

/// A fleet on disk: CA and certificates made by `gameday certs init`.
pub struct Certs {
    pub dir: PathBuf,
}

impl Certs {
    pub fn init(dir: &Path, agents: &[&str], operators: &[&str]) -> Certs {
        let mut args = vec!["certs", "init", "--dir", dir.to_str().unwrap()];
        for a in agents {
            args.extend(["--agent", a]);
        }
        for o in operators {
            args.extend(["--operator", o]);
        }
        let out = gameday(&args, &[]);
        assert!(
            out.status.success(),
            "certs init: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Certs {
            dir: dir.to_path_buf(),
        }
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// (cert, key) of a party, e.g. `("agent", "web-1")`.
    pub fn pair(&self, role: &str, name: &str) -> (PathBuf, PathBuf) {
        (
            self.dir.join(format!("{role}-{name}.pem")),
            self.dir.join(format!("{role}-{name}.key")),
        )
    }
}

/// A `gameday serve` process on a loopback port of its own.
pub struct Controller {
    pub guard: ChildGuard,
    pub addr: SocketAddr,
    /// The namespace it runs in, if not the test's own.
    pub netns: Option<String>,
}

/// A command for `program`, run inside `netns` when given (`ip netns exec`).
pub fn in_netns(netns: Option<&str>, program: &Path) -> Command {
    match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

impl Controller {
    pub fn start(dir: &Path, certs: &Certs, heartbeat_timeout: &str) -> Controller {
        Controller::start_in(dir, certs, heartbeat_timeout, None, "127.0.0.1")
    }

    /// A controller inside network namespace `netns` (when given), listening on `ip`.
    pub fn start_in(
        dir: &Path,
        certs: &Certs,
        heartbeat_timeout: &str,
        netns: Option<&str>,
        ip: &str,
    ) -> Controller {
        Controller::start_at(dir, certs, heartbeat_timeout, netns, &format!("{ip}:0"))
    }

    /// A controller inside `netns` (when given), listening on `listen` ("ip:port").
    pub fn start_at(
        dir: &Path,
        certs: &Certs,
        heartbeat_timeout: &str,
        netns: Option<&str>,
        listen: &str,
    ) -> Controller {
        Controller::serve(dir, certs, heartbeat_timeout, netns, listen, "", None).0
    }

    /// Writes `dir/controller.toml` (listening on `listen`, its data in `dir/controller-data`,
    /// with `extra` TOML before its `[tls]` table) and starts `gameday serve` on it, inside
    /// `netns` when given, with `GAMEDAY_LOG` set to `log` when given; returns once it has
    /// printed its address. Its stderr lines are echoed and kept in the returned buffer.
    fn serve(
        dir: &Path,
        certs: &Certs,
        heartbeat_timeout: &str,
        netns: Option<&str>,
        listen: &str,
        extra: &str,
        log: Option<&str>,
    ) -> (Controller, Lines) {
        let config = dir.join("controller.toml");
        std::fs::write(
            &config,
            format!(
                "listen = \"{listen}\"\ndata_dir = \"{}\"\nheartbeat_interval = \"200ms\"\nheartbeat_timeout = \"{heartbeat_timeout}\"\n{extra}\n\n[tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
                dir.join("controller-data").display(),
                certs.ca().display(),
                certs.dir.join("controller.pem").display(),
                certs.dir.join("controller.key").display()
            ),
        )
        .unwrap();
        let mut cmd = in_netns(netns, &gameday_bin());
        cmd.args(["serve", "--config"]).arg(&config);
        if let Some(log) = log {
            cmd.env("GAMEDAY_LOG", log);
        }
        let mut child = cmd
            .stderr(Stdio::piped())
            .spawn()
            .expect("start gameday serve");
        let stderr = child.stderr.take().unwrap();
        let lines: Lines = Default::default();
        let (tx, rx) = std::sync::mpsc::channel();
        let kept = lines.clone();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent {
                    if let Some(addr) = line.strip_prefix("gameday controller listening on ") {
                        let _ = tx.send(addr.trim().to_string());
                        sent = true;
                    }
                }
                eprintln!("[controller] {line}");
                kept.lock().unwrap().push(line);
            }
        });
        let guard = ChildGuard {
            child,
            name: "controller",
        };
        let addr = rx
            .recv_timeout(Duration::from_secs(15))
            .expect("the controller printed its address")
            .parse()
            .unwrap();
        let controller = Controller {
            guard,
            addr,
            netns: netns.map(str::to_string),
        };
        (controller, lines)
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Starts an agent named `name` whose certificate is `(cert, key)` and CA `ca`.
    pub fn agent(
        &self,
        dir: &Path,
        name: &str,
        ca: &Path,
        cert: &Path,
        key: &Path,
        labels: &str,
    ) -> ChildGuard {
        self.agent_with(dir, name, (ca, cert, key), None, labels, "")
    }

    /// Starts an agent inside `netns` (when given), with `extra` TOML appended to its config
    /// (a `[policy]` table, say).
    pub fn agent_with(
        &self,
        dir: &Path,
        name: &str,
        (ca, cert, key): (&Path, &Path, &Path),
        netns: Option<&str>,
        labels: &str,
        extra: &str,
    ) -> ChildGuard {
        self.agent_leased(dir, name, (ca, cert, key), netns, labels, extra, "3s")
    }

    /// [`Controller::agent_with`] with the agent's lease set to `lease`.
    #[allow(clippy::too_many_arguments)]
    pub fn agent_leased(
        &self,
        dir: &Path,
        name: &str,
        (ca, cert, key): (&Path, &Path, &Path),
        netns: Option<&str>,
        labels: &str,
        extra: &str,
        lease: &str,
    ) -> ChildGuard {
        let config = agent_config_leased(
            dir,
            name,
            &self.url(),
            (ca, cert, key),
            labels,
            extra,
            lease,
        );
        let child = in_netns(netns, &agent_bin())
            .arg("--config")
            .arg(&config)
            .spawn()
            .expect("start gameday-agent");
        ChildGuard {
            child,
            name: "agent",
        }
    }

    /// Operator environment for `gameday` CLI calls.
    pub fn operator_env<'a>(
        &self,
        ca: &'a Path,
        cert: &'a Path,
        key: &'a Path,
    ) -> Vec<(&'static str, &'a Path)> {
        vec![
            ("GAMEDAY_CA", ca),
            ("GAMEDAY_CERT", cert),
            ("GAMEDAY_KEY", key),
        ]
    }

    /// `gameday agents` output (exit code, stdout+stderr).
    pub fn agents(&self, env: &[(&str, &Path)]) -> (i32, String) {
        let out = gameday(&["agents", "--controller", &self.url()], env);
        (
            out.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    /// `gameday ARGS --controller URL` as the operator `sre` of `certs` (its CA, certificate
    /// and key in GAMEDAY_CA, GAMEDAY_CERT and GAMEDAY_KEY), from the controller's namespace
    /// when it runs in one: a command to run, or to spawn with the pipes the test wants.
    pub fn operator_command(&self, certs: &Certs, args: &[&str]) -> Command {
        let (cert, key) = certs.pair("operator", "sre");
        let mut cmd = in_netns(self.netns.as_deref(), &gameday_bin());
        cmd.args(args)
            .args(["--controller", &self.url()])
            .env("GAMEDAY_CA", certs.ca())
            .env("GAMEDAY_CERT", cert)
            .env("GAMEDAY_KEY", key);
        cmd
    }

    /// Runs `gameday ARGS --controller URL` as the operator `sre` to its end: exit code,
    /// stdout and stderr.
    pub fn cli(&self, certs: &Certs, args: &[&str]) -> (i32, String, String) {
        let out = self
            .operator_command(certs, args)
            .output()
            .expect("run gameday");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `gameday run --output json --controller URL SCENARIO` as the operator `sre`.
    pub fn run_command(&self, certs: &Certs, scenario: &Path) -> Command {
        let mut cmd = self.operator_command(certs, &["run", "--output", "json"]);
        cmd.arg(scenario);
        cmd
    }

    /// Runs `scenario` as the operator `sre` until the run ends: exit code, parsed JSON report
    /// (Null when there is none) and stderr.
    pub fn run(&self, certs: &Certs, scenario: &Path) -> (i32, serde_json::Value, String) {
        report_of(
            self.run_command(certs, scenario)
                .output()
                .expect("run gameday run"),
        )
    }

    /// Whether `gameday agents`, asked as the operator `sre`, succeeds and lists `agent`.
    pub fn lists(&self, certs: &Certs, agent: &str) -> bool {
        let out = self
            .operator_command(certs, &["agents"])
            .output()
            .expect("run gameday agents");
        let row = format!("{agent} ");
        out.status.success()
            && String::from_utf8_lossy(&out.stdout)
                .lines()
                .any(|l| l.starts_with(&row))
    }
}

/// Writes the config of an agent named `name` dialing `url` into `dir` (heartbeat 200ms, lease
/// 3s, its state under `dir`), with `labels` and `extra` TOML; returns its path.
pub fn agent_config(
    dir: &Path,
    name: &str,
    url: &str,
    tls: (&Path, &Path, &Path),
    labels: &str,
    extra: &str,
) -> PathBuf {
    agent_config_leased(dir, name, url, tls, labels, extra, "3s")
}

/// [`agent_config`] with the agent's lease set to `lease`.
#[allow(clippy::too_many_arguments)]
pub fn agent_config_leased(
    dir: &Path,
    name: &str,
    url: &str,
    (ca, cert, key): (&Path, &Path, &Path),
    labels: &str,
    extra: &str,
    lease: &str,
) -> PathBuf {
    let config = dir.join(format!("agent-{name}-{}.toml", free_port()));
    std::fs::write(
        &config,
        format!(
            "name = \"{name}\"\ncontroller = \"{url}\"\nheartbeat = \"200ms\"\nlease = \"{lease}\"\nstate_dir = \"{}\"\n\n[labels]\n{labels}\n\n[tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n\n{extra}\n",
            dir.join(format!("state-{name}")).display(),
            ca.display(),
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
    config
}

/// Runs `cmd` until it exits, at most `timeout` (then kills it and panics, showing its
/// stderr): everything it printed.
pub fn output_within(cmd: &mut Command, timeout: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the command");
    let drain = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let mut guard = ChildGuard {
        child,
        name: "command",
    };
    let deadline = std::time::Instant::now() + timeout;
    let status = loop {
        if let Some(status) = guard.child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() >= deadline {
            let _ = guard.child.kill();
            let _ = guard.child.wait();
            let stderr = String::from_utf8_lossy(&stderr.join().unwrap()).into_owned();
            panic!("{cmd:?} did not exit within {timeout:?}; stderr:\n{stderr}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// Runs `cmd` until it exits, at most `timeout` (then kills it and panics): its exit code and
/// stderr.
pub fn exit_within(cmd: &mut Command, timeout: Duration) -> (i32, String) {
    let out = output_within(cmd, timeout);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The run history database of a controller started in `dir` (its `data_dir` is
/// `dir/controller-data`).
pub fn history_db(dir: &Path) -> PathBuf {
    dir.join("controller-data").join("history.sqlite3")
}

impl Controller {
    /// SIGKILL, then reap: the controller gets no chance to tidy up.
    pub fn kill(&mut self) {
        let _ = self.guard.child.kill();
        let _ = self.guard.child.wait();
    }

    /// Kills this controller (if still alive) and starts a new one with the same directory,
    /// config, data and address, as systemd would restart it: its agents find it again.
    pub fn restart_in_place(&mut self, dir: &Path, certs: &Certs, heartbeat_timeout: &str) {
        self.kill();
        let netns = self.netns.clone();
        let listen = self.addr.to_string();
        *self = Controller::start_at(dir, certs, heartbeat_timeout, netns.as_deref(), &listen);
    }

    /// Kills this controller (if still alive) and starts a new one with the same directory,
    /// config and data, as a restarted daemon would be. It listens on a new port.
    pub fn restart(mut self, dir: &Path, certs: &Certs, heartbeat_timeout: &str) -> Controller {
        self.kill();
        let netns = self.netns.take();
        let ip = self.addr.ip().to_string();
        Controller::start_in(dir, certs, heartbeat_timeout, netns.as_deref(), &ip)
    }
}

/// Stderr lines a process printed, as they arrive.
pub type Lines = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

impl Controller {
    /// A `gameday serve` on loopback whose config gets `extra` TOML before its `[tls]` table
    /// (top-level keys such as `metrics_listen` first, then tables such as `[[schedules]]`),
    /// logging at info level; its stderr lines are kept in the returned buffer too.
    pub fn start_with_extra(
        dir: &Path,
        certs: &Certs,
        heartbeat_timeout: &str,
        extra: &str,
    ) -> (Controller, Lines) {
        Controller::serve(
            dir,
            certs,
            heartbeat_timeout,
            None,
            "127.0.0.1:0",
            extra,
            Some("warn,gameday=info"),
        )
    }
}

/// Writes an executable script `name` into `dir` that starts the demo service again on `port`
/// (in a session of its own, so it outlives the step), waits until it answers, and says so.
pub fn restart_script(dir: &Path, name: &str, port: u16) -> PathBuf {
    let path = dir.join(name);
    let script = format!(
        r#"#!/bin/sh
set -e
setsid {bin} demo-service --listen 127.0.0.1:{port} --events {events} </dev/null >>{log} 2>&1 &
echo $! > {pid}
i=0
until curl -sf -o /dev/null http://127.0.0.1:{port}/; do
  i=$((i + 1))
  [ $i -lt 200 ] || {{ echo "the service did not come back" >&2; exit 1; }}
  sleep 0.02
done
echo "restarted the service as pid $(cat {pid}) for run $GAMEDAY_RUN_ID"
"#,
        bin = gameday_bin().display(),
        events = dir.join("events").display(),
        log = dir.join("restarted.log").display(),
        pid = dir.join("restarted.pid").display(),
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(
        &path,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755),
    )
    .unwrap();
    path
}

/// Ends the service a step restarted (its pid is in `dir/restarted.pid`), when it did.
pub struct Restarted(pub PathBuf);

impl Drop for Restarted {
    fn drop(&mut self) {
        if let Some(pid) = std::fs::read_to_string(self.0.join("restarted.pid"))
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
        {
            let _ = std::process::Command::new("kill")
                .arg(pid.to_string())
                .status();
        }
    }
}
