//! End-to-end game days in the namespace lab (`lab/lab.sh`): real haproxy, nginx, redis under
//! supervisord, dnsmasq and a disk-writing app, each on a host of its own, with the real
//! controller and agents. Every scenario in `scenarios/lab/` that documents a verdict
//! (`# lab-expect-verdict: ...`) is run; its verdict, exit code and, where it documents one,
//! its recovery time are checked. The recovery ranges are derived here from the services'
//! configuration in `lab/conf/` (haproxy's `inter`/`fall`/`rise`/timeouts, supervisord's
//! restart loop, haproxy's resolution interval) and from the scenario (probe interval, fault
//! duration), and must equal the range the scenario documents, so the docs cannot drift from
//! the configs. A game day with `[detect]` and `[[stages]]` has its time to detect (the lab's
//! Prometheus and Alertmanager: scrape and evaluation intervals, the rule's `for`, the probe's
//! timeout, `group_wait`) and each stage checked the same way. The whole catalog runs twice,
//! each time in a lab brought up and torn down again, to show that a run leaves nothing behind
//! and that the verdicts repeat.
// Integration tests start the real binaries, services and helper processes.
#![allow(clippy::disallowed_methods)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use common::lab::privileged;
use common::{agent_bin, gameday_bin};
use gameday::timeline::monotonic_ns;

/// How far a recovery estimate may lie from haproxy's own DOWN instant beyond the probe's
/// longest period (its interval + 10 % jitter): the latency of a check through haproxy with
/// `spread = 2`, and scheduling. The promise is interval + 5 ms, which the lab meets on a
/// quiet machine (+1..+5 ms); a debug build on a loaded CI machine has been seen 6 ms over it.
const DOWN_SLACK_MS: f64 = 10.0;
/// Tolerances, in ms, on top of what the configs say (explained in each scenario's header):
/// scheduling and request latency around the probe's own interval.
const SLACK_MS: f64 = 30.0;
/// How late a timed revert may land after the fault's planned duration: its round trip, the
/// nftables/file work, and the controller's observation tick (at most 50ms, here 20ms).
const REVERT_MS: f64 = 100.0;
/// Tolerance, in ms, on the time to detect: Prometheus's evaluation and Alertmanager's flush
/// running late on a busy machine, the hand-over between them, the delivery over TLS.
const DETECT_SLACK_MS: f64 = 100.0;
/// The blackbox exporter's `--timeout-offset` (lab.sh leaves its default): a probe gets the
/// scrape's timeout minus this, or the module's timeout if that is shorter.
const BLACKBOX_OFFSET_MS: f64 = 500.0;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The lab of this test: its own prefix, network and state directory, so it can run beside
/// other tests (and another lab). Torn down when dropped, also on panic.
struct Lab {
    prefix: String,
    net: String,
    dir: PathBuf,
    up: bool,
}

impl Lab {
    fn new() -> Lab {
        let pid = std::process::id();
        let prefix = format!("gde{}", pid % 10_000_000);
        Lab {
            dir: PathBuf::from(format!("/tmp/gameday-lab-{prefix}")),
            net: format!("10.{}.{}", 201 + pid % 50, (pid / 50) % 250),
            prefix,
            up: false,
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(repo().join("lab/lab.sh"));
        c.args(args)
            .env("LAB_PREFIX", &self.prefix)
            .env("LAB_NET", &self.net)
            .env("LAB_DIR", &self.dir)
            .env("GAMEDAY", gameday_bin())
            .env("GAMEDAY_AGENT", agent_bin())
            .env_remove("LAB_KEEP_FAILED")
            .env_remove("LAB_NO_WAIT");
        c
    }

    fn sh(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run lab/lab.sh")
    }

    fn up(&mut self) {
        let started = Instant::now();
        self.up = true; // a failed `up` tears itself down, but the guard makes sure
        let out = self.sh(&["up"]);
        assert!(
            out.status.success(),
            "lab.sh up failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!(
            "lab {} up on {}.0/24 in {:.1}s",
            self.prefix,
            self.net,
            started.elapsed().as_secs_f64()
        );
    }

    fn down(&mut self) -> Output {
        self.up = false;
        self.sh(&["down"])
    }

    /// `lab.sh run FILE --output json`: exit code, report, stderr.
    fn run(&self, scenario: &Path) -> (i32, serde_json::Value, String) {
        common::report_of(
            self.cmd(&["run", scenario.to_str().unwrap(), "--output", "json"])
                .output()
                .expect("lab.sh run"),
        )
    }

    fn namespaces(&self) -> Vec<String> {
        let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|n| n.starts_with(&format!("{}-", self.prefix)))
            .map(str::to_string)
            .collect()
    }

    /// The instants haproxy logged `Server BACKEND/SERVER is DOWN`, on CLOCK_MONOTONIC (µs).
    /// haproxy stamps its log in wall-clock time (ISO 8601, µs); the offset between the two
    /// clocks is read here, once, in this process.
    fn haproxy_downs(&self, backend: &str, server: &str) -> Vec<i64> {
        let log = std::fs::read_to_string(self.dir.join("logs/haproxy.log")).unwrap_or_default();
        let wall_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros() as i64;
        let offset_us = wall_us - monotonic_ns() as i64 / 1000;
        let needle = format!(" Server {backend}/{server} is DOWN");
        log.lines()
            .filter_map(|l| {
                let (stamp, rest) = l.split_once(' ')?;
                if !format!(" {rest}").starts_with(&needle) {
                    return None;
                }
                let at = chrono::DateTime::parse_from_rfc3339(stamp).ok()?;
                Some(at.timestamp_micros() - offset_us)
            })
            .collect()
    }

    /// Starts a client that asks `url` every `period_ms` from the lab's `host`, next to the
    /// probe (curl in a shell loop, in its own process group so it can be ended whole).
    fn competing_client(&self, host: &str, url: &str, period_ms: u32) -> Competitor {
        use std::os::unix::process::CommandExt as _;
        let script = format!(
            "while :; do curl -s -o /dev/null -m 1 {url}; sleep {}; done",
            f64::from(period_ms) / 1000.0
        );
        let child = self
            .cmd(&["exec", host, "sh", "-c", &script])
            .process_group(0)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start the competing client");
        Competitor(child)
    }

    /// nftables tables inside the lab's hosts, as `namespace: table`.
    fn nft_tables(&self) -> Vec<String> {
        let mut found = Vec::new();
        for ns in self.namespaces() {
            let out = Command::new("ip")
                .args(["netns", "exec", &ns, "nft", "list", "tables"])
                .output()
                .unwrap();
            found.extend(
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| format!("{ns}: {l}")),
            );
        }
        found
    }

    /// Everything of the lab that is still there: namespaces, mounts, processes.
    fn leftovers(&self) -> Vec<String> {
        let mut left: Vec<String> = self
            .namespaces()
            .into_iter()
            .map(|n| format!("namespace {n}"))
            .collect();
        let dir = self.dir.display().to_string();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        left.extend(
            mounts
                .lines()
                .filter(|l| l.contains(&dir) || l.contains(&format!("{}-app-data", self.prefix)))
                .map(|l| format!("mount {l}")),
        );
        // Every process of the lab has a path under its state directory on its command line.
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(&dir) {
                left.push(format!(
                    "process {}: {cmdline}",
                    entry.file_name().to_string_lossy()
                ));
            }
        }
        for n in [
            "sw", "ctl", "lb", "web1", "web2", "cache", "app", "dns", "mon",
        ] {
            let etc = format!("/etc/netns/{}-{n}", self.prefix);
            if Path::new(&etc).exists() {
                left.push(format!("directory {etc}"));
            }
        }
        if self.dir.exists() {
            left.push(format!("directory {dir}"));
        }
        left
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.up {
            let out = self.down();
            eprintln!(
                "lab {} torn down by the guard: {}",
                self.prefix,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
}

/// A periodic client of the lab's balancer, ended (with its whole process group) on drop.
struct Competitor(std::process::Child);

impl Drop for Competitor {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.wait();
    }
}

/// A scenario of the catalog, with what its header documents.
struct Entry {
    file: PathBuf,
    verdict: String,
    exit: i32,
    recovery: Option<(f64, f64)>,
    after_revert: Option<(f64, f64)>,
    derive: Option<String>,
    /// `lab-expect-stage: NAME LOW..HIGH`, one line per stage.
    stages: Vec<(String, Range)>,
    /// `lab-derive-stage: NAME MODEL...`, by stage.
    stage_derive: BTreeMap<String, String>,
    /// `lab-expect-detect-fired` / `-delivered`: time to detect by the alert's startsAt and by
    /// its delivery.
    detect_fired: Option<Range>,
    detect_delivered: Option<Range>,
    /// `lab-derive-detect: prometheus JOB`.
    detect_derive: Option<String>,
    /// `lab-expect-remediation`: time to remediation start.
    remediation: Option<Range>,
    scenario: toml::Value,
}

/// "0.68s" / "680ms" → milliseconds.
fn ms(text: &str) -> f64 {
    let t = text.trim();
    if let Some(v) = t.strip_suffix("ms") {
        v.parse().unwrap_or_else(|_| panic!("bad duration {t:?}"))
    } else if let Some(v) = t.strip_suffix('s') {
        v.parse::<f64>()
            .unwrap_or_else(|_| panic!("bad duration {t:?}"))
            * 1000.0
    } else {
        panic!("duration without a unit: {t:?}")
    }
}

fn range(text: &str) -> (f64, f64) {
    let (a, b) = text
        .split_once("..")
        .unwrap_or_else(|| panic!("expected LOW..HIGH, found {text:?}"));
    (ms(a), ms(b))
}

fn catalog() -> Vec<Entry> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("scenarios/lab"))
        .expect("scenarios/lab")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut entries = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let mut tags = BTreeMap::new();
        let (mut stages, mut stage_derive) = (Vec::new(), BTreeMap::new());
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# lab-") {
                if let Some((k, v)) = rest.split_once(':') {
                    let (k, v) = (k.trim(), v.trim());
                    // Per stage: the stage's name, then the range or the model.
                    let per_stage = || {
                        let (name, what) = v.split_once(' ').unwrap_or_else(|| {
                            panic!("{}: lab-{k}: NAME then a range or model", file.display())
                        });
                        (name.to_string(), what.trim().to_string())
                    };
                    match k {
                        "expect-stage" => {
                            let (name, r) = per_stage();
                            stages.push((name, range(&r)));
                        }
                        "derive-stage" => {
                            let (name, model) = per_stage();
                            stage_derive.insert(name, model);
                        }
                        _ => {
                            tags.insert(k.to_string(), v.to_string());
                        }
                    }
                }
            }
        }
        let Some(verdict) = tags.get("expect-verdict") else {
            continue;
        };
        let exit = match tags.get("expect-exit") {
            Some(e) => e.parse().expect("lab-expect-exit: a number"),
            None => i32::from(verdict == "FAIL"),
        };
        entries.push(Entry {
            verdict: verdict.clone(),
            exit,
            recovery: tags.get("expect-recovery").map(|r| range(r)),
            after_revert: tags.get("expect-after-revert").map(|r| range(r)),
            derive: tags.get("derive").cloned(),
            stages,
            stage_derive,
            detect_fired: tags.get("expect-detect-fired").map(|r| range(r)),
            detect_delivered: tags.get("expect-detect-delivered").map(|r| range(r)),
            detect_derive: tags.get("derive-detect").cloned(),
            remediation: tags.get("expect-remediation").map(|r| range(r)),
            scenario: toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display())),
            file,
        });
    }
    entries
}

/// lab/conf/haproxy.cfg, as sections of `key words...` lines.
struct Haproxy {
    sections: BTreeMap<String, Vec<Vec<String>>>,
}

impl Haproxy {
    fn load() -> Haproxy {
        let text = std::fs::read_to_string(repo().join("lab/conf/haproxy.cfg")).unwrap();
        let mut sections: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
        let mut current = String::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap();
            if line.trim().is_empty() {
                continue;
            }
            let words: Vec<String> = line.split_whitespace().map(str::to_string).collect();
            if !line.starts_with(char::is_whitespace) {
                current = words.join(" ");
                sections.entry(current.clone()).or_default();
            } else {
                sections.get_mut(&current).unwrap().push(words);
            }
        }
        Haproxy { sections }
    }

    /// The value after `key` (one or two words, e.g. "timeout connect") in `section`.
    fn get(&self, section: &str, key: &str) -> Option<String> {
        let key: Vec<&str> = key.split(' ').collect();
        self.sections.get(section)?.iter().find_map(|words| {
            (words.len() > key.len() && words.iter().zip(&key).all(|(w, k)| w == k))
                .then(|| words[key.len()].clone())
        })
    }

    /// A backend's setting, or the `defaults` one.
    fn setting(&self, backend: &str, key: &str) -> Option<String> {
        self.get(&format!("backend {backend}"), key)
            .or_else(|| self.get("defaults", key))
    }

    /// A health-check parameter (`inter`, `fall`, `rise`) of `default-server`; the backend's
    /// servers must not override it.
    fn check_param(&self, backend: &str, param: &str) -> String {
        for words in &self.sections[&format!("backend {backend}")] {
            if words[0] == "server" {
                assert!(
                    !words.iter().any(|w| w == param),
                    "backend {backend}: a server overrides `{param}`; the derivation reads default-server's"
                );
            }
        }
        let ds = self.sections["defaults"]
            .iter()
            .find(|w| w[0] == "default-server")
            .expect("default-server in defaults");
        let i = ds
            .iter()
            .position(|w| w == param)
            .unwrap_or_else(|| panic!("default-server has no `{param}`"));
        ds[i + 1].clone()
    }

    /// The health-check numbers of `backend`.
    fn checks(&self, backend: &str) -> Checks {
        let inter = ms(&self.check_param(backend, "inter"));
        let connect = ms(&self
            .setting(backend, "timeout connect")
            .expect("timeout connect"));
        Checks {
            inter,
            fall: self.check_param(backend, "fall").parse().unwrap(),
            rise: self.check_param(backend, "rise").parse().unwrap(),
            // With `timeout check` set, a check's connect timeout is min(timeout connect,
            // inter); without it, `inter` bounds the whole check.
            tc: if self.setting(backend, "timeout check").is_some() {
                connect.min(inter)
            } else {
                inter
            },
            connect,
            retries: self
                .setting(backend, "retries")
                .map_or(3.0, |r| r.parse().unwrap()),
        }
    }
}

/// A backend's health checks and connection settings, in ms (and counts).
struct Checks {
    /// Between the end of a check and the start of the next.
    inter: f64,
    /// Failed checks that take a server DOWN.
    fall: f64,
    /// Good checks that bring it UP.
    rise: f64,
    /// A check's connect timeout.
    tc: f64,
    /// `timeout connect` for requests.
    connect: f64,
    /// `retries` for requests.
    retries: f64,
}

/// supervisord's main-loop poll timeout, read from the installed supervisord when it can be
/// found (4.2: `timeout = 1`, in seconds), else 1s.
fn supervisord_poll_ms() -> f64 {
    let source = ["/usr/lib/python3/dist-packages/supervisor/supervisord.py"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
    source
        .lines()
        .find_map(|l| l.trim().strip_prefix("timeout = "))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(1000.0, |s| s * 1000.0)
}

/// A range of milliseconds, low..high.
type Range = (f64, f64);

/// The recovery range (and the recovery-after-revert range) the configs predict for `entry`.
fn derive(entry: &Entry, haproxy: &Haproxy) -> (Option<Range>, Option<Range>) {
    let Some(model) = &entry.derive else {
        return (None, None);
    };
    let probe = &entry.scenario["probes"][0];
    let interval = ms(probe["interval"].as_str().expect("probe interval"));
    let duration = entry.scenario["faults"][0]
        .get("duration")
        .and_then(|d| d.as_str())
        .map(ms);
    let mut words = model.split_whitespace();
    match (words.next().unwrap(), words.next()) {
        ("supervisord-restart", _) => {
            let conf = std::fs::read_to_string(repo().join("lab/conf/supervisord.conf")).unwrap();
            let program = conf
                .split("[program:redis]")
                .nth(1)
                .expect("[program:redis]");
            assert!(
                program.contains("autorestart=true") && program.contains("startsecs=0"),
                "the supervisord derivation assumes autorestart=true and startsecs=0"
            );
            // Reaped on the loop turn the death wakes (or one turn later), spawned one turn
            // after the reap; plus redis's start, a probe interval and slack for a busy
            // machine (200ms).
            let poll = supervisord_poll_ms();
            (Some((poll, 2.0 * poll + 200.0)), None)
        }
        ("haproxy-down", Some(backend)) => {
            let c = haproxy.checks(backend);
            let down = (
                c.fall * c.tc + (c.fall - 1.0) * c.inter,
                c.fall * c.tc + c.fall * c.inter,
            );
            // The last failed request takes up to (retries + 1) connect timeouts.
            let last_failure = (c.retries + 1.0) * c.connect;
            (
                Some((
                    down.0 - interval,
                    down.1 + last_failure + interval + SLACK_MS,
                )),
                None,
            )
        }
        ("haproxy-up", Some(backend)) => {
            let c = haproxy.checks(backend);
            let after = (
                (c.rise - 1.0) * c.inter - interval,
                c.tc + c.rise * c.inter + interval + SLACK_MS,
            );
            let d = duration.expect("a timed fault");
            (Some((d + after.0, d + after.1 + REVERT_MS)), Some(after))
        }
        ("haproxy-resolve", Some(backend)) => {
            // The `resolvers NAME` the backend's server uses.
            let server = haproxy.sections[&format!("backend {backend}")]
                .iter()
                .find(|w| w[0] == "server")
                .expect("a server");
            let i = server
                .iter()
                .position(|w| w == "resolvers")
                .expect("the server resolves through `resolvers`");
            let resolvers = format!("resolvers {}", server[i + 1]);
            let resolve = ms(&haproxy
                .get(&resolvers, "timeout resolve")
                .expect("timeout resolve"));
            let d = duration.expect("a timed fault");
            (
                Some((d - interval, d + resolve + interval + SLACK_MS + REVERT_MS)),
                None,
            )
        }
        ("fault-duration", _) => {
            let d = duration.expect("a timed fault");
            (
                Some((d - interval, d + interval + SLACK_MS + REVERT_MS)),
                None,
            )
        }
        (other, _) => panic!("{}: unknown lab-derive {other:?}", entry.file.display()),
    }
}

/// The probe of `entry` named `name`.
fn probe<'a>(entry: &'a Entry, name: &str) -> &'a toml::Value {
    entry.scenario["probes"]
        .as_array()
        .expect("probes")
        .iter()
        .find(|p| p["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("{}: no probe {name:?}", entry.file.display()))
}

/// The first fault's kind.
fn fault_kind(entry: &Entry) -> &str {
    entry.scenario["faults"][0]["kind"]
        .as_str()
        .expect("a fault kind")
}

/// The range the configs predict for stage `name` of `entry`, by its `lab-derive-stage`.
///
/// `haproxy-failover BACKEND`: the stage's probes go through a backend whose primary is the
/// target and whose `backup` takes over once the primary is DOWN. A check of the primary fails
/// after tf: at once for a killed server (refused), after `timeout check` for a paused one
/// (connected, no answer: HTTP checks only), after the connect timeout for a cut-off one. DOWN
/// after fall×tf + (fall−1)×inter .. fall×tf + fall×inter; the first request after it is
/// answered by the backup: one probe interval on each side, and scheduling slack.
fn derive_stage(entry: &Entry, name: &str, haproxy: &Haproxy) -> Option<Range> {
    let model = entry.stage_derive.get(name)?;
    let mut words = model.split_whitespace();
    let (Some("haproxy-failover"), Some(backend)) = (words.next(), words.next()) else {
        panic!(
            "{}: unknown lab-derive-stage {model:?}",
            entry.file.display()
        );
    };
    let section = &haproxy.sections[&format!("backend {backend}")];
    assert!(
        section
            .iter()
            .any(|w| w[0] == "server" && w.iter().any(|x| x == "backup")),
        "backend {backend}: a failover needs a `backup` server"
    );
    let http_checks = section
        .iter()
        .any(|w| w.len() > 1 && w[0] == "option" && w[1] == "httpchk");
    let c = haproxy.checks(backend);
    let tf = match fault_kind(entry) {
        "process_kill" => 0.0,
        "process_pause" => {
            assert!(
                http_checks,
                "backend {backend}: a TCP check connects to a paused server all the same; the failover needs `option httpchk`"
            );
            ms(&haproxy
                .setting(backend, "timeout check")
                .expect("timeout check"))
        }
        "network_partition" => c.tc,
        other => panic!("{}: no failover model for {other}", entry.file.display()),
    };
    let interval = stage_interval(entry, name);
    Some((
        c.fall * tf + (c.fall - 1.0) * c.inter - interval,
        c.fall * tf + c.fall * c.inter + interval + SLACK_MS,
    ))
}

/// The longest probe interval of stage `name`.
fn stage_interval(entry: &Entry, name: &str) -> f64 {
    entry.scenario["stages"]
        .as_array()
        .expect("[[stages]]")
        .iter()
        .find(|st| st["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("{}: no stage {name:?}", entry.file.display()))["probes"]
        .as_array()
        .expect("the stage's probes")
        .iter()
        .map(|p| {
            ms(probe(entry, p.as_str().unwrap())["interval"]
                .as_str()
                .unwrap())
        })
        .fold(0.0, f64::max)
}

/// The value of `key:` in one of the lab's YAML files, which write each setting once, on a
/// line of its own.
fn yaml(file: &str, key: &str) -> String {
    let text = std::fs::read_to_string(repo().join("lab/conf").join(file)).unwrap();
    let found: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix(&format!("{key}:")))
        .map(str::trim)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "lab/conf/{file}: `{key}:` once, found {found:?}"
    );
    found[0].to_string()
}

/// The `for:` of alerting rule `alert` in lab/conf/prometheus-rules.yml; its expression must
/// read the probe of `job`.
fn rule_for(alert: &str, job: &str) -> String {
    let text = std::fs::read_to_string(repo().join("lab/conf/prometheus-rules.yml")).unwrap();
    let rule = text
        .split("- alert:")
        .skip(1)
        .find(|r| r.lines().next().map(str::trim) == Some(alert))
        .unwrap_or_else(|| panic!("lab/conf/prometheus-rules.yml has no alert {alert}"));
    assert!(
        rule.contains(&format!("job=\"{job}\"")),
        "alert {alert} does not read the probe of job {job}"
    );
    rule.lines()
        .find_map(|l| l.trim().strip_prefix("for:"))
        .unwrap_or_else(|| panic!("alert {alert} has no `for:`"))
        .trim()
        .to_string()
}

/// Time to detect the configs predict for `entry`, by its `lab-derive-detect: prometheus JOB`
/// (lab/conf/prometheus.yml says how): the alert's startsAt, its delivery, and the delivery
/// after startsAt (Alertmanager's `group_wait` for a new group).
fn derive_detect(entry: &Entry) -> Option<(Range, Range, Range)> {
    let model = entry.detect_derive.as_ref()?;
    let Some(("prometheus", job)) = model.split_once(' ') else {
        panic!(
            "{}: unknown lab-derive-detect {model:?}",
            entry.file.display()
        );
    };
    let scrape = ms(&yaml("prometheus.yml", "scrape_interval"));
    let eval = ms(&yaml("prometheus.yml", "evaluation_interval"));
    let scrape_timeout = ms(&yaml("prometheus.yml", "scrape_timeout"));
    let alert = entry.scenario["detect"]["alerts"]["alertname"]
        .as_str()
        .expect("[detect] alerts has an alertname");
    let hold = ms(&rule_for(alert, job.trim()));
    // How long the probe of the target takes to fail.
    let p = match fault_kind(entry) {
        "process_kill" => 0.0,
        "process_pause" => {
            ms(&yaml("blackbox.yml", "timeout")).min(scrape_timeout - BLACKBOX_OFFSET_MS)
        }
        other => panic!("{}: no detection model for {other}", entry.file.display()),
    };
    let group_wait = ms(&yaml("alertmanager.yml", "group_wait"));
    let fired = (
        p + hold - SLACK_MS,
        scrape + p + eval + hold + DETECT_SLACK_MS,
    );
    let delivered = (fired.0 + group_wait, fired.1 + group_wait + DETECT_SLACK_MS);
    // A fault that ends by itself must outlast the alert's latest start by more than
    // group_wait (a second more, for margin): the alert resolves once the fault is gone, and
    // one resolved before its group's first flush is never delivered.
    let lasts = entry.scenario["faults"][0]
        .get("duration")
        .and_then(|d| d.as_str())
        .map(ms);
    if let Some(d) = lasts {
        assert!(
            d - fired.1 > group_wait + 1000.0,
            "{}: the fault lasts {d}ms, the alert may start as late as {}ms and Alertmanager waits {group_wait}ms: it could resolve before it is delivered",
            entry.file.display(),
            fired.1
        );
    }
    // Never less than group_wait, but startsAt reaches the run's timeline through its
    // wall-clock start, kept in whole ms: 20ms for that.
    let gap = (group_wait - 20.0, group_wait + DETECT_SLACK_MS);
    Some((fired, delivered, gap))
}

fn close(a: (f64, f64), b: (f64, f64)) -> bool {
    (a.0 - b.0).abs() < 1.0 && (a.1 - b.1).abs() < 1.0
}

fn fmt_range(r: Option<(f64, f64)>) -> String {
    r.map_or("-".into(), |(a, b)| {
        format!("{:.2}s..{:.2}s", a / 1000.0, b / 1000.0)
    })
}

fn fmt_ms(us: Option<u64>) -> String {
    us.map_or("-".into(), |us| format!("{:.3}s", us as f64 / 1e6))
}

/// One row of the measured-vs-predicted table.
struct Row {
    round: u32,
    name: String,
    verdict: String,
    exit: i32,
    recovery: Option<u64>,
    predicted: Option<(f64, f64)>,
    after_revert: Option<u64>,
    predicted_after: Option<(f64, f64)>,
    /// Time to detect: (startsAt, delivered), µs after the fault.
    detect: Option<(Option<u64>, Option<u64>)>,
    predicted_detect: Option<(Range, Range)>,
    /// Time to remediation start.
    remediation: Option<u64>,
    /// Each stage: name, reached after (µs), predicted.
    stages: Vec<(String, Option<u64>, Option<Range>)>,
}

/// Runs every catalog entry in an up lab; returns the rows and every failed expectation.
fn run_catalog(
    lab: &Lab,
    round: u32,
    entries: &[Entry],
    haproxy: &Haproxy,
) -> (Vec<Row>, Vec<String>) {
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for e in entries {
        let name = e.file.file_name().unwrap().to_string_lossy().to_string();
        let (recovery, after) = derive(e, haproxy);
        // The documented range must be the derived one: the scenario's header and the
        // service configs cannot drift apart.
        for (what, documented, derived) in [
            ("recovery", e.recovery, recovery),
            ("after-revert", e.after_revert, after),
        ] {
            if let (Some(doc), Some(der)) = (documented, derived) {
                assert!(
                    close(doc, der),
                    "{name}: documents lab-expect-{what}: {} but lab/conf predicts {}",
                    fmt_range(Some(doc)),
                    fmt_range(Some(der))
                );
            }
        }
        let predicted = e.recovery.or(recovery);
        let predicted_after = e.after_revert;
        let mut predicted_stages: Vec<(String, Option<Range>)> = Vec::new();
        let stages = e.scenario.get("stages").and_then(|s| s.as_array());
        for st in stages.into_iter().flatten() {
            let st = st["name"].as_str().unwrap().to_string();
            let derived = derive_stage(e, &st, haproxy);
            let documented = e.stages.iter().find(|(n, _)| *n == st).map(|(_, r)| *r);
            if let (Some(doc), Some(der)) = (documented, derived) {
                assert!(
                    close(doc, der),
                    "{name}: documents lab-expect-stage: {st} {} but lab/conf predicts {}",
                    fmt_range(Some(doc)),
                    fmt_range(Some(der))
                );
            }
            predicted_stages.push((st, documented.or(derived)));
        }
        for (st, _) in &e.stages {
            assert!(
                predicted_stages.iter().any(|(n, _)| n == st),
                "{name}: lab-expect-stage {st}, but the scenario has no such stage"
            );
        }
        let detect = derive_detect(e);
        if let Some((fired, delivered, _)) = detect {
            for (what, documented, derived) in [
                ("detect-fired", e.detect_fired, fired),
                ("detect-delivered", e.detect_delivered, delivered),
            ] {
                let doc = documented.unwrap_or_else(|| {
                    panic!("{name}: lab-derive-detect without lab-expect-{what}")
                });
                assert!(
                    close(doc, derived),
                    "{name}: documents lab-expect-{what}: {} but lab/conf predicts {}",
                    fmt_range(Some(doc)),
                    fmt_range(Some(derived))
                );
            }
        }
        let predicted_detect = e
            .detect_fired
            .zip(e.detect_delivered)
            .or(detect.map(|(f, d, _)| (f, d)));

        let started = Instant::now();
        let (code, report, stderr) = lab.run(&e.file);
        let run = &report["runs"][0];
        let verdict = run["verdict"].as_str().unwrap_or("(no report)").to_string();
        let recovered = run["grade"]["time_to_recover"]["us"].as_u64();
        let after_revert = run["grade"]["recover_after_revert_us"].as_u64();
        eprintln!(
            "round {round}: {name}: {verdict}, exit {code}, recovery {}, after revert {} ({:.1}s)",
            fmt_ms(recovered),
            fmt_ms(after_revert),
            started.elapsed().as_secs_f64()
        );
        let mut fail = |why: String| {
            failures.push(format!(
                "round {round}, {name}: {why}\n  reason: {}\n  stderr (tail): {}",
                run["reason"],
                stderr.lines().rev().take(8).collect::<Vec<_>>().join(" | ")
            ))
        };
        if verdict != e.verdict {
            fail(format!("verdict {verdict}, documented {}", e.verdict));
        }
        if code != e.exit {
            fail(format!("exit code {code}, documented {}", e.exit));
        }
        if let Some((lo, hi)) = predicted {
            match recovered {
                Some(us) if (lo..=hi).contains(&(us as f64 / 1000.0)) => {}
                other => fail(format!(
                    "recovery {} outside the predicted {}",
                    fmt_ms(other),
                    fmt_range(predicted)
                )),
            }
        }
        if let Some((lo, hi)) = predicted_after {
            match after_revert {
                Some(us) if (lo..=hi).contains(&(us as f64 / 1000.0)) => {}
                other => fail(format!(
                    "recovery after the revert {} outside the predicted {}",
                    fmt_ms(other),
                    fmt_range(predicted_after)
                )),
            }
        }
        // A balancer's failover: the recovery must be haproxy's own DOWN instant, to within
        // the probe's interval, and inside the bracket.
        if let Some(backend) = e
            .derive
            .as_deref()
            .and_then(|d| d.strip_prefix("haproxy-down "))
        {
            let interval = ms(e.scenario["probes"][0]["interval"].as_str().unwrap());
            match down_error(lab, run, backend.trim(), &run["grade"]["time_to_recover"]) {
                Ok(d) => {
                    eprintln!(
                        "round {round}: {name}: haproxy's DOWN at +{:.1}ms; measured {:+.1}ms from it, bracket [{:+.1}, {:+.1}]ms",
                        d.down_ms, d.error_ms, d.low_ms, d.high_ms
                    );
                    if d.low_ms > 0.0 || d.high_ms < 0.0 {
                        fail(format!("the bracket [{:+.1}, {:+.1}]ms around haproxy's DOWN instant does not contain it", d.low_ms, d.high_ms));
                    }
                    let longest = interval * 1.1;
                    if d.error_ms < -DOWN_SLACK_MS || d.error_ms > longest + DOWN_SLACK_MS {
                        fail(format!("recovery {:+.1}ms from haproxy's DOWN instant, more than the longest period ({longest}ms) + {DOWN_SLACK_MS}ms", d.error_ms));
                    }
                }
                Err(why) => fail(why),
            }
        }
        // A NO_IMPACT must come from a fault that hit: a partition that dropped nothing
        // missed, it proved nothing about redundancy.
        if e.verdict == "NO_IMPACT" {
            for f in run["faults"].as_array().into_iter().flatten() {
                if f["kind"] == "network_partition" {
                    // Counted when the table is deleted: a revert figure.
                    let dropped = f["revert_figures"]["packets_dropped"].as_i64().unwrap_or(0);
                    if dropped == 0 {
                        fail("NO_IMPACT, but the partition dropped no packet".into());
                    }
                }
            }
        }
        // Time to detect: startsAt and delivery within the predicted ranges, and the delivery
        // `group_wait` after startsAt (a new group: the lab is fresh, and this is the only game
        // day that raises its alert).
        let alert = &run["detection"]["alert"];
        let fired = alert["fired_after_us"].as_u64();
        let delivered = alert["delivered_after_us"].as_u64();
        if let Some((pf, pd)) = predicted_detect {
            eprintln!(
                "round {round}: {name}: detection: {}",
                run["detection"]["alert"]["labels"]
            );
            for (what, got, (lo, hi)) in [("startsAt", fired, pf), ("delivered", delivered, pd)] {
                match got {
                    Some(us) if (lo..=hi).contains(&(us as f64 / 1000.0)) => {}
                    other => fail(format!(
                        "time to detect ({what}) {} outside the predicted {}",
                        fmt_ms(other),
                        fmt_range(Some((lo, hi)))
                    )),
                }
            }
            if let (Some((_, _, (lo, hi))), Some(f), Some(d)) = (detect, fired, delivered) {
                let gap = d.saturating_sub(f) as f64 / 1000.0;
                if !(lo..=hi).contains(&gap) {
                    fail(format!(
                        "delivered {gap:.1}ms after startsAt, not Alertmanager's group_wait ({})",
                        fmt_range(Some((lo, hi)))
                    ));
                }
            }
        }
        let remediation = run["remediation"]["after_fault_us"].as_u64();
        if let Some((lo, hi)) = e.remediation {
            match remediation {
                Some(us) if (lo..=hi).contains(&(us as f64 / 1000.0)) => {}
                other => fail(format!(
                    "remediation start {} outside the predicted {}",
                    fmt_ms(other),
                    fmt_range(e.remediation)
                )),
            }
        }
        let mut stages = Vec::new();
        for (st, predicted) in predicted_stages {
            let graded = run["stages"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|g| g["name"].as_str() == Some(&st));
            let Some(graded) = graded else {
                fail(format!("stage {st} is missing from the report"));
                continue;
            };
            let reached = graded["time_to_recover"]["us"].as_u64();
            if let Some((lo, hi)) = predicted {
                match reached {
                    Some(us) if (lo..=hi).contains(&(us as f64 / 1000.0)) => {}
                    other => fail(format!(
                        "stage {st} reached in {} outside the predicted {}",
                        fmt_ms(other),
                        fmt_range(predicted)
                    )),
                }
            }
            // A failover: the stage is reached when haproxy took the primary DOWN, to within
            // the stage's probe interval, and its bracket holds that instant.
            if let Some(backend) = e
                .stage_derive
                .get(&st)
                .and_then(|d| d.strip_prefix("haproxy-failover "))
            {
                let interval = stage_interval(e, &st);
                match down_error(lab, run, backend.trim(), &graded["time_to_recover"]) {
                    Ok(d) => {
                        eprintln!(
                            "round {round}: {name}: stage {st}: haproxy's DOWN at +{:.1}ms; reached {:+.1}ms from it, bracket [{:+.1}, {:+.1}]ms",
                            d.down_ms, d.error_ms, d.low_ms, d.high_ms
                        );
                        if d.low_ms > 0.0 || d.high_ms < 0.0 {
                            fail(format!("stage {st}: the bracket [{:+.1}, {:+.1}]ms around haproxy's DOWN instant does not contain it", d.low_ms, d.high_ms));
                        }
                        let longest = interval * 1.1;
                        if d.error_ms < -DOWN_SLACK_MS || d.error_ms > longest + DOWN_SLACK_MS {
                            fail(format!("stage {st}: reached {:+.1}ms from haproxy's DOWN instant, more than the longest period ({longest}ms) + {DOWN_SLACK_MS}ms", d.error_ms));
                        }
                    }
                    Err(why) => fail(format!("stage {st}: {why}")),
                }
            }
            stages.push((st, reached, predicted));
        }
        rows.push(Row {
            round,
            name,
            verdict,
            exit: code,
            recovery: recovered,
            predicted,
            after_revert,
            predicted_after,
            detect: predicted_detect.map(|_| (fired, delivered)),
            predicted_detect,
            remediation,
            stages,
        });
    }
    (rows, failures)
}

/// A recovery next to haproxy's DOWN instant, in ms relative to it.
struct DownError {
    /// haproxy's DOWN, after the fault took effect.
    down_ms: f64,
    /// The estimate minus the DOWN instant.
    error_ms: f64,
    /// The bracket's ends minus the DOWN instant.
    low_ms: f64,
    high_ms: f64,
}

/// Lines a measured recovery (`ttr`: the run's time to recover, or a stage's) up with the
/// instant haproxy logged its target server DOWN (the first one after the fault took effect),
/// on CLOCK_MONOTONIC.
fn down_error(
    lab: &Lab,
    run: &serde_json::Value,
    backend: &str,
    ttr: &serde_json::Value,
) -> Result<DownError, String> {
    let server = run["faults"][0]["agent"]
        .as_str()
        .ok_or("no fault in the report")?;
    let inject_us = run["epoch_monotonic_ns"].as_i64().ok_or("no epoch")? / 1000
        + run["inject"]["at_us"].as_i64().ok_or("no inject")?;
    let down_us = lab
        .haproxy_downs(backend, server)
        .into_iter()
        .find(|t| *t > inject_us)
        .ok_or_else(|| format!("haproxy logged no `{backend}/{server} is DOWN` after the fault"))?;
    let at = |k: &str| {
        ttr[k]
            .as_i64()
            .map(|us| (us + inject_us - down_us) as f64 / 1000.0)
    };
    Ok(DownError {
        down_ms: (down_us - inject_us) as f64 / 1000.0,
        error_ms: at("us").ok_or("no recovery measured")?,
        low_ms: at("low_us").ok_or("no bracket")?,
        high_ms: at("high_us").ok_or("no bracket")?,
    })
}

/// The partition of one backend behind round robin, probed with one connection per sample
/// (no `spread`) while a periodic client of the same period shares the balancer: the probe
/// must still see the outage (never NO_IMPACT: jitter keeps it from locking step with the
/// other client), grade it as partial, and bracket haproxy's DOWN instant.
fn aliasing(lab: &Lab, round: u32, entries: &[Entry]) -> Vec<String> {
    let mut failures = Vec::new();
    let e = entries
        .iter()
        .find(|e| e.file.ends_with("partition-one-backend.toml"))
        .expect("scenarios/lab/partition-one-backend.toml");
    let text = std::fs::read_to_string(&e.file).unwrap();
    let single = text.replace("spread = 2\n", "");
    assert_ne!(
        single, text,
        "partition-one-backend.toml probes with spread = 2"
    );
    let file = lab.dir.join("partition-one-backend-single.toml");
    std::fs::write(&file, single).unwrap();
    let interval = e.scenario["probes"][0]["interval"].as_str().unwrap();
    let _client = lab.competing_client("ctl", "http://lb.lab:80/", ms(interval) as u32);
    for attempt in 1..=2 {
        let (code, report, stderr) = lab.run(&file);
        let run = &report["runs"][0];
        let verdict = run["verdict"].as_str().unwrap_or("(no report)");
        let partial = &run["grade"]["probes"][0]["partial"];
        let down = down_error(lab, run, "be_rr", &run["grade"]["time_to_recover"]);
        eprintln!(
            "round {round}: aliasing {attempt}: {verdict}, exit {code}, partial {partial}, DOWN {}",
            match &down {
                Ok(d) => format!(
                    "+{:.1}ms, measured {:+.1}ms [{:+.1}, {:+.1}]",
                    d.down_ms, d.error_ms, d.low_ms, d.high_ms
                ),
                Err(e) => e.clone(),
            }
        );
        let mut fail = |why: String| {
            failures.push(format!(
                "round {round}, aliasing {attempt}: {why}\n  reason: {}\n  stderr (tail): {}",
                run["reason"],
                stderr.lines().rev().take(8).collect::<Vec<_>>().join(" | ")
            ))
        };
        if verdict != "PASS" {
            fail(format!(
                "verdict {verdict}, expected PASS (never NO_IMPACT)"
            ));
        }
        if partial["failed_permille"].as_u64().is_none() {
            fail("not graded as a partial outage".into());
        }
        match down {
            Ok(d) if d.low_ms <= 0.0 && d.high_ms >= 0.0 => {}
            Ok(d) => fail(format!(
                "the bracket [{:+.1}, {:+.1}]ms does not contain haproxy's DOWN instant",
                d.low_ms, d.high_ms
            )),
            Err(why) => fail(why),
        }
    }
    failures
}

#[test]
fn the_lab_catalog_gives_its_documented_verdicts_twice_and_leaves_nothing() {
    if !privileged(&[
        "ip",
        "nft",
        "haproxy",
        "nginx",
        "redis-server",
        "supervisord",
        "supervisorctl",
        "dnsmasq",
        "curl",
        "findmnt",
        "setsid",
        "prometheus",
        "promtool",
        "prometheus-alertmanager",
        "amtool",
        "prometheus-blackbox-exporter",
    ]) {
        return;
    }
    let entries = catalog();
    assert!(
        entries.len() >= 7,
        "scenarios/lab/ should hold the whole catalog, found {}",
        entries.len()
    );
    let haproxy = Haproxy::load();
    let mut lab = Lab::new();
    assert!(
        lab.leftovers().is_empty(),
        "a previous lab {} is still there: {:#?}",
        lab.prefix,
        lab.leftovers()
    );

    let started = Instant::now();
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for round in 1..=2 {
        lab.up();
        let (r, f) = run_catalog(&lab, round, &entries, &haproxy);
        rows.extend(r);
        failures.extend(f);
        failures.extend(aliasing(&lab, round, &entries));
        // Every fault was reverted: no nftables table is left in any host.
        let tables = lab.nft_tables();
        if !tables.is_empty() {
            failures.push(format!(
                "round {round}: nftables tables left after the catalog: {tables:?}"
            ));
        }
        let out = lab.down();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.contains("down check ok"),
            "round {round}: lab.sh down: {stderr}"
        );
        let left = lab.leftovers();
        assert!(
            left.is_empty(),
            "round {round}: left behind after lab.sh down: {left:#?}"
        );
    }

    eprintln!(
        "\nmeasured vs predicted ({} scenarios, 2 rounds, {:.0}s in all):",
        entries.len(),
        started.elapsed().as_secs_f64()
    );
    eprintln!(
        "{:<5} {:<30} {:<9} {:>4} {:>9} {:<13} {:>12} {:<13}",
        "round",
        "scenario",
        "verdict",
        "exit",
        "recovery",
        "predicted",
        "after revert",
        "predicted"
    );
    for r in &rows {
        eprintln!(
            "{:<5} {:<30} {:<9} {:>4} {:>9} {:<13} {:>12} {:<13}",
            r.round,
            r.name,
            r.verdict,
            r.exit,
            fmt_ms(r.recovery),
            fmt_range(r.predicted),
            fmt_ms(r.after_revert),
            fmt_range(r.predicted_after)
        );
    }
    eprintln!(
        "\nthe four timings of the game days with [detect] and [[stages]] (measured, predicted):"
    );
    for r in rows
        .iter()
        .filter(|r| r.detect.is_some() || !r.stages.is_empty())
    {
        eprintln!("round {} {}:", r.round, r.name);
        if let (Some((fired, delivered)), Some((pf, pd))) = (r.detect, r.predicted_detect) {
            eprintln!(
                "  {:<24} {:>9} {}",
                "detect (startsAt)",
                fmt_ms(fired),
                fmt_range(Some(pf))
            );
            eprintln!(
                "  {:<24} {:>9} {}",
                "detect (delivered)",
                fmt_ms(delivered),
                fmt_range(Some(pd))
            );
        }
        eprintln!("  {:<24} {:>9}", "remediation start", fmt_ms(r.remediation));
        for (st, reached, predicted) in &r.stages {
            eprintln!(
                "  {:<24} {:>9} {}",
                format!("stage {st}"),
                fmt_ms(*reached),
                fmt_range(*predicted)
            );
        }
        eprintln!(
            "  {:<24} {:>9} {}",
            "full restore",
            fmt_ms(r.recovery),
            fmt_range(r.predicted)
        );
    }
    // The same verdicts both times.
    let n = entries.len();
    for (a, b) in rows[..n].iter().zip(&rows[n..]) {
        if a.verdict != b.verdict {
            failures.push(format!(
                "{}: {} in round 1, {} in round 2",
                a.name, a.verdict, b.verdict
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
