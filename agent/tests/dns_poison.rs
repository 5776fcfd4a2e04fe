//! `dns_poison` against the real thing, inside namespaces the test creates (never the
//! machine's own network or `/etc`): an "upstream" namespace running a real `dnsmasq`, a
//! "client" namespace where the agent's fault runs, and real `dig` and `getent` lookups.
//! Applied means the lookups see the poison; reverted means real answers again, the ruleset
//! exactly as before, and the hosts file byte for byte as it was.
//!
//! Apply and revert times are printed (`--nocapture` shows them), not asserted.
// Integration tests start the real binaries, services and helper processes.
#![allow(clippy::disallowed_methods)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{link, privileged, wait_for, NetNs};
use gameday_agent::faults::{self, disk_fill, dns_poison, network_partition, Host, Plan};
use gameday_agent::os::RealOs;
use gameday_agent::policy::Policy;
use gameday_proto::fault::DnsMode;
use gameday_proto::{DnsPoison, Fault};

const WAIT: Duration = Duration::from_secs(10);
const TOOLS: &[&str] = &["ip", "nft", "dig", "dnsmasq", "getent"];

fn host() -> Host {
    Host {
        processes: Arc::new(RealOs::default()),
        network: network_partition::Backend::default(),
        disk: disk_fill::Backend::default(),
        dns: dns_poison::Backend::default(),
        controller: Vec::new(),
    }
}

fn fault(mode: DnsMode, names: &[&str], answer: &str) -> Fault {
    Fault::DnsPoison(DnsPoison {
        mode,
        names: names.iter().map(|s| s.to_string()).collect(),
        answer: answer.parse().expect("an answer"),
        duration: None,
    })
}

/// A real dnsmasq in its own namespace, killed (by its pid) and reaped however the test ends.
struct Dnsmasq {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Dnsmasq {
    fn start(ns: &NetNs, ip: &str) -> Dnsmasq {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("dnsmasq.pid");
        // `ip netns exec` execs dnsmasq, so the child's pid is dnsmasq's.
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name, "dnsmasq", "--no-daemon"])
            .args([
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                "--port=53",
            ])
            .arg(format!("--listen-address={ip}"))
            .args([
                "--address=/api.test/10.1.1.1",
                "--address=/other.test/10.1.1.2",
            ])
            .arg(format!("--pid-file={}", pid_file.display()))
            .arg("--conf-file=/dev/null")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dnsmasq");
        Dnsmasq { child, _dir: dir }
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client namespace and an upstream namespace with dnsmasq, on a /24 of their own.
struct Lab {
    client: NetNs,
    upstream_ip: String,
    _dnsmasq: Dnsmasq,
    _upstream: NetNs,
}

impl Lab {
    fn new() -> Lab {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let net = format!(
            "10.{}.{}",
            50 + std::process::id() % 100,
            53 + SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let client = NetNs::new("dnc");
        let upstream = NetNs::new("dnu");
        link(
            &client,
            &format!("{net}.1/24"),
            &upstream,
            &format!("{net}.2/24"),
        );
        let upstream_ip = format!("{net}.2");
        let dnsmasq = Dnsmasq::start(&upstream, &upstream_ip);
        let lab = Lab {
            client,
            upstream_ip,
            _dnsmasq: dnsmasq,
            _upstream: upstream,
        };
        wait_for("dnsmasq to answer", WAIT, || {
            lab.ask("api.test", &[]).answers == ["10.1.1.1"]
        });
        lab
    }

    /// `dig @upstream name` from the client namespace, once, waiting one second at most.
    fn ask(&self, name: &str, extra: &[&str]) -> Reply {
        let server = format!("@{}", self.upstream_ip);
        let mut args = vec![
            "dig",
            &server,
            name,
            "A",
            "+time=1",
            "+tries=1",
            "+noall",
            "+comments",
            "+answer",
        ];
        args.extend_from_slice(extra);
        let out = self.client.exec(&args);
        Reply::parse(&String::from_utf8_lossy(&out.stdout))
    }

    fn ruleset(&self) -> String {
        self.client.ok(&["nft", "list", "ruleset"])
    }
}

/// What dig saw: the status (`None` when nothing came back) and the A records.
#[derive(Debug, PartialEq)]
struct Reply {
    status: Option<String>,
    answers: Vec<String>,
}

impl Reply {
    fn parse(text: &str) -> Reply {
        let status = text.lines().find_map(|l| {
            l.split_once("status: ")
                .and_then(|(_, rest)| rest.split(',').next())
                .map(str::to_string)
        });
        let answers = text
            .lines()
            .filter(|l| !l.starts_with(';') && l.contains("\tA\t"))
            .filter_map(|l| l.split_whitespace().last().map(str::to_string))
            .collect();
        Reply { status, answers }
    }
}

fn reply(status: Option<&str>, answers: &[&str]) -> Reply {
    Reply {
        status: status.map(str::to_string),
        answers: answers.iter().map(|s| s.to_string()).collect(),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

#[test]
fn resolver_mode_poisons_forwards_and_leaves_nothing_behind() {
    if !privileged(TOOLS) {
        return;
    }
    let lab = Lab::new();
    let before = lab.ruleset();
    assert_eq!(
        lab.ask("api.test", &[]),
        reply(Some("NOERROR"), &["10.1.1.1"])
    );
    let mut policy = Policy::permissive();
    policy.dns_poison.upstream = vec![format!("{}:53", lab.upstream_ip).parse().unwrap()];
    let host = host();
    let cases: &[(&str, Reply)] = &[
        ("10.9.9.9", reply(Some("NOERROR"), &["10.9.9.9"])),
        ("nxdomain", reply(Some("NXDOMAIN"), &[])),
        ("servfail", reply(Some("SERVFAIL"), &[])),
        ("timeout", reply(None, &[])),
    ];
    for (i, (answer, expected)) in cases.iter().enumerate() {
        let id = format!("dns-resolver-{i}");
        let spec = fault(DnsMode::Resolver, &["api.test", "*.api.test"], answer);
        let (plan, applied, apply_time) = lab.client.run_in(|| {
            let plan = faults::prepare(&spec, &id, &policy, &host).unwrap();
            let start = Instant::now();
            let applied = faults::apply(&plan, &policy, &host).unwrap();
            (plan, applied, start.elapsed())
        });
        println!("resolver mode ({answer}): apply took {}", ms(apply_time));
        assert!(
            applied.evidence.summary.contains("redirects"),
            "{applied:?}"
        );
        let poisoned_rules = lab.ruleset();
        assert!(
            poisoned_rules.contains("meta mark 0x47444e53 return"),
            "{poisoned_rules}"
        );
        assert!(poisoned_rules.contains("redirect to :"), "{poisoned_rules}");
        if i == 0 {
            println!("{poisoned_rules}");
        }
        // Poisoned names, over UDP and TCP; everything else still resolves through us.
        assert_eq!(&lab.ask("api.test", &[]), expected, "{answer}");
        assert_eq!(
            &lab.ask("www.api.test", &["+tcp"]),
            expected,
            "{answer} over TCP"
        );
        assert_eq!(
            lab.ask("other.test", &[]),
            reply(Some("NOERROR"), &["10.1.1.2"])
        );
        assert_eq!(
            lab.ask("other.test", &["+tcp"]),
            reply(Some("NOERROR"), &["10.1.1.2"])
        );
        let (reverted, revert_time) = lab.client.run_in(|| {
            let start = Instant::now();
            let reverted = faults::revert(&plan, &host).unwrap();
            (reverted, start.elapsed())
        });
        println!("resolver mode ({answer}): revert took {}", ms(revert_time));
        let evidence = &reverted.evidence;
        assert!(evidence.residue.is_empty(), "{evidence:?}");
        let poisoned = evidence.figures["queries_answered"] + evidence.figures["queries_dropped"];
        assert_eq!(poisoned, 2, "{evidence:?}");
        assert_eq!(evidence.figures["queries_forwarded"], 2, "{evidence:?}");
        assert!(evidence.figures["packets_redirected"] >= 4, "{evidence:?}");
        assert_eq!(
            lab.ask("api.test", &[]),
            reply(Some("NOERROR"), &["10.1.1.1"])
        );
        assert_eq!(lab.ruleset(), before, "the ruleset is as it was");
    }
}

#[test]
fn a_crashed_agents_redirect_is_removed_by_the_next_one() {
    if !privileged(TOOLS) {
        return;
    }
    let lab = Lab::new();
    let before = lab.ruleset();
    let mut policy = Policy::permissive();
    policy.dns_poison.upstream = vec![format!("{}:53", lab.upstream_ip).parse().unwrap()];
    let spec = fault(DnsMode::Resolver, &["api.test"], "nxdomain");
    let journaled = lab.client.run_in(|| {
        let first = host();
        let plan = faults::prepare(&spec, "dns-crash", &policy, &first).unwrap();
        faults::apply(&plan, &policy, &first).unwrap();
        serde_json::to_string(&plan).unwrap()
        // `first` goes away with its resolver, as a killed agent would; the table stays.
    });
    assert!(lab.ruleset().contains("gameday_dns_dns_crash_"));
    let plan: Plan = serde_json::from_str(&journaled).unwrap();
    let reverted = lab
        .client
        .run_in(|| faults::revert(&plan, &host()).unwrap());
    assert!(reverted.evidence.residue.is_empty(), "{reverted:?}");
    assert_eq!(lab.ruleset(), before);
    assert_eq!(
        lab.ask("api.test", &[]),
        reply(Some("NOERROR"), &["10.1.1.1"])
    );
}

/// `/etc/netns/NAME/`, which `ip netns exec NAME` bind-mounts over `/etc`'s files. Created
/// only if absent, and removed however the test ends.
struct NetnsEtc {
    dir: PathBuf,
}

impl NetnsEtc {
    fn create(ns: &NetNs) -> NetnsEtc {
        let dir = Path::new("/etc/netns").join(&ns.name);
        assert!(!dir.exists(), "{} already exists", dir.display());
        std::fs::create_dir_all(&dir).unwrap();
        NetnsEtc { dir }
    }
}

impl Drop for NetnsEtc {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn getent(ns: &NetNs, name: &str) -> Option<String> {
    let out = ns.exec(&["getent", "hosts", name]);
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().next().map(str::to_string)
}

#[test]
fn hosts_mode_poisons_the_namespace_hosts_file_and_restores_it_exactly() {
    if !privileged(TOOLS) {
        return;
    }
    let ns = NetNs::new("dnh");
    let etc = NetnsEtc::create(&ns);
    let path = etc.dir.join("hosts");
    // No trailing newline, and bytes that are not UTF-8: both must come back as they were.
    let original: &[u8] =
        b"127.0.0.1 localhost\n# caf\xe9, odd bytes \xff\n10.1.1.1 api.test\n::1 localhost";
    std::fs::write(&path, original).unwrap();
    assert_eq!(getent(&ns, "api.test").as_deref(), Some("10.1.1.1"));
    let mut policy = Policy::permissive();
    policy.dns_poison.hosts_file = Some(path.clone());
    let host = host();
    let spec = fault(DnsMode::Hosts, &["api.test", "www.api.test"], "10.9.9.9");
    let plan = faults::prepare(&spec, "dns-hosts", &policy, &host).unwrap();
    let start = Instant::now();
    faults::apply(&plan, &policy, &host).unwrap();
    println!("hosts mode: apply took {}", ms(start.elapsed()));
    assert_eq!(getent(&ns, "api.test").as_deref(), Some("10.9.9.9"));
    assert_eq!(getent(&ns, "www.api.test").as_deref(), Some("10.9.9.9"));
    let start = Instant::now();
    let reverted = faults::revert(&plan, &host).unwrap();
    println!("hosts mode: revert took {}", ms(start.elapsed()));
    assert!(reverted.evidence.residue.is_empty(), "{reverted:?}");
    assert_eq!(std::fs::read(&path).unwrap(), original, "byte for byte");
    assert_eq!(getent(&ns, "api.test").as_deref(), Some("10.1.1.1"));
    assert_eq!(getent(&ns, "www.api.test"), None);
    // Reverting again changes nothing.
    faults::revert(&plan, &host).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), original);
}
