//! The `dns` probe against a real dnsmasq, inside namespaces the test creates (never the
//! machine's own network): a "server" namespace running dnsmasq and a "controller" namespace
//! where the probe's UDP socket lives, joined by a veth pair. A correct expectation passes; a
//! wrong one, an unknown name, a name without records of the type and a dead server each fail
//! with their own reason, which is what the sample's error says.
// Integration tests start the real binaries, services and helper processes.
#![allow(clippy::disallowed_methods)]

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::lab::netns::link;
use common::lab::{privileged, NetNs};
use common::{wait_for, ChildGuard, FaultBuilder, ProbeBuilder, ScenarioBuilder};
use gameday::probe::{Check, ProbeError, ProbeSet};
use gameday::scenario::{self, DnsRecord, ProbeCheck};

const WAIT: Duration = Duration::from_secs(10);
/// Each check's bound. dnsmasq answers in well under a millisecond on a veth pair.
const TIMEOUT: Duration = Duration::from_millis(500);
const SERVER_IP: &str = "10.53.0.2";

/// dnsmasq in the server namespace, answering for `*.test` from its own records only:
/// `--local=/test/` makes every other name under `test` NXDOMAIN, and nothing is forwarded.
struct Lab {
    /// Killed and reaped (by its pid) before the namespaces go, however the test ends.
    dnsmasq: ChildGuard,
    controller: NetNs,
    _server: NetNs,
    _dir: tempfile::TempDir,
}

impl Lab {
    fn new() -> Lab {
        let controller = NetNs::new("dpc");
        let server = NetNs::new("dps");
        // The namespaces are private, so a fixed /24 collides with nothing.
        link(
            &controller,
            "10.53.0.1/24",
            &server,
            &format!("{SERVER_IP}/24"),
        );
        let dir = tempfile::tempdir().unwrap();
        // `ip netns exec` execs dnsmasq, so the child's pid is dnsmasq's.
        let child = Command::new("ip")
            .args(["netns", "exec", &server.name, "dnsmasq", "--no-daemon"])
            .args([
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                "--port=53",
            ])
            .arg(format!("--listen-address={SERVER_IP}"))
            .args([
                "--local=/test/",
                "--host-record=api.test,10.1.1.1",
                "--host-record=pool.test,10.1.1.2",
                "--host-record=pool.test,10.1.1.3",
                "--host-record=v6.test,fd00::5",
            ])
            .arg(format!(
                "--pid-file={}",
                dir.path().join("dnsmasq.pid").display()
            ))
            .arg("--conf-file=/dev/null")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dnsmasq");
        let lab = Lab {
            dnsmasq: ChildGuard {
                child,
                name: "dnsmasq",
            },
            controller,
            _server: server,
            _dir: dir,
        };
        wait_for("dnsmasq to answer the probe", WAIT, || {
            lab.check(&dns(SERVER_IP, "api.test", DnsRecord::A, &["10.1.1.1"]))
                .is_ok()
        });
        lab
    }

    /// Runs one check from the controller's namespace, as the probe engine would: on a
    /// thread inside the namespace, with a runtime of its own.
    fn check(&self, spec: &ProbeCheck) -> Result<(), ProbeError> {
        let check = Check::from_spec(spec).expect("a valid check");
        self.controller
            .run_in(|| runtime().block_on(check.run(TIMEOUT)))
    }

    /// The error a failing check reports.
    fn failure(&self, spec: &ProbeCheck) -> String {
        match self.check(spec) {
            Ok(()) => panic!("{spec:?} passed"),
            Err(e) => e.to_string(),
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn dns(server: &str, query: &str, record: DnsRecord, expect: &[&str]) -> ProbeCheck {
    let server: SocketAddr = match server.parse() {
        Ok(address) => address,
        Err(_) => SocketAddr::new(server.parse().unwrap(), 53),
    };
    ProbeCheck::Dns {
        server,
        query: query.into(),
        record,
        expect: expect.iter().map(|ip| ip.parse().unwrap()).collect(),
    }
}

#[test]
fn a_correct_expectation_succeeds() {
    if !privileged(&["ip", "dnsmasq"]) {
        return;
    }
    let lab = Lab::new();
    let passing = [
        dns(SERVER_IP, "api.test", DnsRecord::A, &["10.1.1.1"]),
        dns(SERVER_IP, "API.Test.", DnsRecord::A, &["10.1.1.1"]),
        // Any answer at all, when nothing is expected.
        dns(&format!("{SERVER_IP}:53"), "api.test", DnsRecord::A, &[]),
        // Every expected address, in any order; more is fine.
        dns(
            SERVER_IP,
            "pool.test",
            DnsRecord::A,
            &["10.1.1.3", "10.1.1.2"],
        ),
        dns(SERVER_IP, "pool.test", DnsRecord::A, &["10.1.1.2"]),
        dns(SERVER_IP, "v6.test", DnsRecord::Aaaa, &["fd00::5"]),
    ];
    for spec in &passing {
        assert!(lab.check(spec).is_ok(), "{spec:?}: {:?}", lab.check(spec));
    }
}

#[test]
fn a_wrong_expectation_fails_with_what_was_answered() {
    if !privileged(&["ip", "dnsmasq"]) {
        return;
    }
    let lab = Lab::new();
    assert_eq!(
        lab.failure(&dns(SERVER_IP, "api.test", DnsRecord::A, &["10.1.1.9"])),
        "answered 10.1.1.1, expected 10.1.1.9"
    );
    let missing_one = lab.failure(&dns(
        SERVER_IP,
        "pool.test",
        DnsRecord::A,
        &["10.1.1.2", "10.1.1.4"],
    ));
    assert!(
        missing_one.starts_with("answered ")
            && missing_one.contains("10.1.1.2")
            && missing_one.contains("10.1.1.3")
            && missing_one.ends_with(", expected 10.1.1.2, 10.1.1.4"),
        "{missing_one}"
    );

    // The same reason is what a sample records, from a scenario file through the probe engine.
    let text = ScenarioBuilder::new("dns")
        .rto("1s")
        .agents(["dns-1"])
        .fault(FaultBuilder::new("process_kill").set("name", "dnsmasq"))
        .probe(
            ProbeBuilder::dns("api-name", SERVER_IP, "api.test")
                .set("expect", ["10.1.1.9"])
                .interval("20ms")
                .timeout("500ms"),
        )
        .to_toml();
    let scenario = scenario::parse("dns.toml", &text).expect("a valid scenario");
    let samples = lab.controller.run_in(|| {
        runtime().block_on(async {
            let probes = ProbeSet::start(&scenario.probes, Instant::now()).expect("probes start");
            let deadline = Instant::now() + WAIT;
            while probes.snapshot()[0].samples.len() < 2 {
                assert!(Instant::now() < deadline, "no samples after {WAIT:?}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            probes.stop().await
        })
    });
    let samples = &samples[0].samples;
    assert!(samples.len() >= 2, "{samples:?}");
    for sample in samples {
        assert!(!sample.ok, "{sample:?}");
        assert_eq!(sample.error, "answered 10.1.1.1, expected 10.1.1.9");
    }
}

#[test]
fn an_unknown_name_fails_with_nxdomain() {
    if !privileged(&["ip", "dnsmasq"]) {
        return;
    }
    let lab = Lab::new();
    assert_eq!(
        lab.failure(&dns(SERVER_IP, "gone.test", DnsRecord::A, &[])),
        "NXDOMAIN: gone.test does not exist"
    );
    assert_eq!(
        lab.failure(&dns(SERVER_IP, "gone.test", DnsRecord::A, &["10.1.1.1"])),
        "NXDOMAIN: gone.test does not exist"
    );
    // A name that exists, but not with an address of that family (NODATA).
    assert_eq!(
        lab.failure(&dns(SERVER_IP, "api.test", DnsRecord::Aaaa, &[])),
        "no AAAA records for api.test"
    );
    // Outside its local zone, with nowhere to forward to, dnsmasq refuses.
    let refused = lab.failure(&dns(SERVER_IP, "api.example", DnsRecord::A, &[]));
    assert!(refused.starts_with("REFUSED"), "{refused}");
}

#[test]
fn a_dead_server_times_out() {
    if !privileged(&["ip", "dnsmasq"]) {
        return;
    }
    let mut lab = Lab::new();
    // A live server on a port nobody listens on, and a dead one: either way no answer comes.
    let wrong_port = dns(&format!("{SERVER_IP}:5353"), "api.test", DnsRecord::A, &[]);
    let start = Instant::now();
    assert_eq!(
        lab.failure(&wrong_port),
        format!("timed out after {TIMEOUT:?}")
    );
    assert!(start.elapsed() >= TIMEOUT, "{:?}", start.elapsed());

    lab.dnsmasq.child.kill().expect("kill dnsmasq");
    lab.dnsmasq.child.wait().expect("reap dnsmasq");
    let start = Instant::now();
    assert_eq!(
        lab.failure(&dns(SERVER_IP, "api.test", DnsRecord::A, &["10.1.1.1"])),
        format!("timed out after {TIMEOUT:?}")
    );
    let took = start.elapsed();
    assert!(took >= TIMEOUT && took < TIMEOUT * 4, "{took:?}");
}
