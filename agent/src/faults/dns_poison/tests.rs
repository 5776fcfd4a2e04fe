//! Unit tests of `dns_poison` over fakes: an in-memory file system, a recording firewall, and
//! unmarked sockets on loopback (with a fake upstream) so no privilege is needed.

use std::collections::BTreeMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use gameday_proto::v1::{Evidence, FailureKind};
use nftables::schema::{NfCmd, NfListObject, NfObject, Nftables};
use nftables::types::NfFamily;

use super::server::tests::{ask_udp, FakeUpstream, PlainSockets};
use super::*;
use crate::faults::{disk_fill, network_partition, Host};
use crate::os::dns::DnsOsError;
use crate::os::nft::NftError;
use crate::policy::Policy;
use crate::policy::PolicyConfig as AgentPolicy;

/// [`super::prepare`] with the whole policy, as the agent's dispatch calls it.
fn prepare(
    spec: &DnsPoison,
    fault_id: &str,
    policy: &Policy,
    host: &Host,
) -> Result<Plan, FaultError> {
    super::prepare(spec, fault_id, &policy.dns_poison, host)
}

/// [`super::available`] with the whole policy, as the agent's survey calls it.
fn available(policy: &Policy, host: &Host) -> Result<(), Unavailable> {
    super::available(&policy.dns_poison, host)
}

/// Files in memory. `frozen` paths ignore writes (to provoke residue); `readonly` ones
/// refuse them.
#[derive(Default)]
struct FakeFiles {
    files: Mutex<BTreeMap<PathBuf, Vec<u8>>>,
    frozen: Mutex<Vec<PathBuf>>,
    readonly: Mutex<Vec<PathBuf>>,
}

impl FakeFiles {
    fn with(path: &str, bytes: &[u8]) -> Arc<FakeFiles> {
        let f = FakeFiles::default();
        f.put(path, bytes);
        Arc::new(f)
    }

    fn put(&self, path: &str, bytes: &[u8]) {
        self.files
            .lock()
            .unwrap()
            .insert(PathBuf::from(path), bytes.to_vec());
    }

    fn get(&self, path: &str) -> Vec<u8> {
        self.files.lock().unwrap()[Path::new(path)].clone()
    }
}

fn not_found(path: &Path) -> DnsOsError {
    DnsOsError::File {
        path: path.to_path_buf(),
        source: io::ErrorKind::NotFound.into(),
    }
}

impl DnsFiles for FakeFiles {
    fn read(&self, path: &Path, limit: u64) -> Result<Vec<u8>, DnsOsError> {
        let bytes = self
            .files
            .lock()
            .unwrap()
            .get(path)
            .cloned()
            .ok_or_else(|| not_found(path))?;
        if bytes.len() as u64 > limit {
            return Err(DnsOsError::File {
                path: path.to_path_buf(),
                source: io::ErrorKind::InvalidData.into(),
            });
        }
        Ok(bytes)
    }

    fn write_in_place(&self, path: &Path, bytes: &[u8]) -> Result<(), DnsOsError> {
        self.check_writable(path)?;
        if !self.frozen.lock().unwrap().iter().any(|p| p == path) {
            self.files
                .lock()
                .unwrap()
                .insert(path.to_path_buf(), bytes.to_vec());
        }
        Ok(())
    }

    fn check_writable(&self, path: &Path) -> Result<(), DnsOsError> {
        if !self.files.lock().unwrap().contains_key(path) {
            return Err(not_found(path));
        }
        if self.readonly.lock().unwrap().iter().any(|p| p == path) {
            return Err(DnsOsError::File {
                path: path.to_path_buf(),
                source: io::ErrorKind::PermissionDenied.into(),
            });
        }
        Ok(())
    }
}

/// A firewall that records batches and keeps the set of tables they create.
#[derive(Default)]
struct FakeFirewall {
    tables: Mutex<BTreeMap<String, String>>,
    applied: Mutex<Vec<String>>,
    broken: bool,
}

impl FakeFirewall {
    fn broken() -> FakeFirewall {
        FakeFirewall {
            broken: true,
            ..FakeFirewall::default()
        }
    }

    fn refuse(&self) -> Result<(), NftError> {
        if self.broken {
            return Err(NftError::Permission {
                message: "Operation not permitted".into(),
            });
        }
        Ok(())
    }
}

impl Firewall for FakeFirewall {
    fn apply(&self, batch: &Nftables<'_>) -> Result<(), NftError> {
        self.refuse()?;
        let json = serde_json::to_string(batch).unwrap();
        for o in batch.objects.iter() {
            if let NfObject::CmdObject(NfCmd::Add(NfListObject::Table(t))) = o {
                self.tables
                    .lock()
                    .unwrap()
                    .insert(t.name.to_string(), json.clone());
            }
        }
        self.applied.lock().unwrap().push(json);
        Ok(())
    }

    fn table(&self, _family: NfFamily, name: &str) -> Result<Option<Nftables<'static>>, NftError> {
        self.refuse()?;
        if !self.tables.lock().unwrap().contains_key(name) {
            return Ok(None);
        }
        let listed = format!(
            r#"{{"nftables":[{{"table":{{"family":"inet","name":"{name}","handle":1}}}},
            {{"rule":{{"family":"inet","table":"{name}","chain":"output","handle":2,"expr":[
            {{"counter":{{"packets":7,"bytes":420}}}},{{"redirect":{{"port":5300}}}}]}}}}]}}"#
        );
        Ok(Some(serde_json::from_str(&listed).unwrap()))
    }

    fn delete_table(&self, _family: NfFamily, name: &str) -> Result<bool, NftError> {
        self.refuse()?;
        Ok(self.tables.lock().unwrap().remove(name).is_some())
    }

    fn tables(&self) -> Result<Vec<(String, String)>, NftError> {
        self.refuse()?;
        Ok(self
            .tables
            .lock()
            .unwrap()
            .keys()
            .map(|n| ("inet".to_string(), n.clone()))
            .collect())
    }

    fn ruleset(&self) -> Result<serde_json::Value, NftError> {
        self.refuse()?;
        Ok(serde_json::json!({"nftables": []}))
    }
}

const HOSTS: &str = "/etc/netns/test/hosts";

fn host_with(files: Arc<FakeFiles>, firewall: Arc<FakeFirewall>) -> Host {
    Host {
        processes: Arc::new(crate::os::RealOs::default()),
        network: network_partition::Backend::default(),
        disk: disk_fill::Backend::default(),
        dns: Backend::with_os(files, Arc::new(PlainSockets), firewall),
        controller: Vec::new(),
    }
}

fn policy(toml_text: &str) -> Policy {
    let config: AgentPolicy = toml::from_str(toml_text).unwrap();
    Policy::from_config(&config).unwrap()
}

fn hosts_policy() -> Policy {
    policy(&format!("[dns_poison]\nhosts_file = \"{HOSTS}\"\n"))
}

fn spec(mode: DnsMode, names: &[&str], answer: &str) -> DnsPoison {
    DnsPoison {
        mode,
        names: names.iter().map(|s| s.to_string()).collect(),
        answer: answer.parse().unwrap(),
        duration: None,
    }
}

fn residue(e: &Evidence) -> &[String] {
    &e.residue
}

/// Apply then revert `original` in hosts mode; returns the poisoned bytes.
fn round_trip(original: &[u8]) -> Vec<u8> {
    let files = FakeFiles::with(HOSTS, original);
    let host = host_with(files.clone(), Arc::new(FakeFirewall::default()));
    let s = spec(DnsMode::Hosts, &["api.test", "WWW.test"], "10.9.9.9");
    let plan = prepare(&s, "run-1-f0-web", &hosts_policy(), &host).unwrap();
    // The plan survives the journal byte for byte.
    let json = serde_json::to_string(&plan).unwrap();
    let plan: Plan = serde_json::from_str(&json).unwrap();
    let applied = apply(&plan, &host).unwrap();
    assert_eq!(applied.evidence.figures["names_poisoned"], 2);
    let poisoned = files.get(HOSTS);
    assert!(
        poisoned.ends_with(original),
        "the original follows the block"
    );
    let reverted = revert(&plan, &host).unwrap();
    assert_eq!(files.get(HOSTS), original, "restored byte for byte");
    assert!(residue(&reverted.evidence).is_empty(), "{reverted:?}");
    assert_eq!(reverted.evidence.figures["hosts_concurrent_change"], 0);
    // Idempotent: a second revert finds the original and leaves it alone.
    let again = revert(&plan, &host).unwrap();
    assert!(again.evidence.summary.contains("already"), "{again:?}");
    assert_eq!(files.get(HOSTS), original);
    poisoned
}

#[test]
fn hosts_block_goes_on_top_and_the_original_comes_back_exactly() {
    let original = b"127.0.0.1 localhost\n10.1.1.1 api.test\n";
    let poisoned = round_trip(original);
    let text = String::from_utf8(poisoned).unwrap();
    let expected = "# gameday run-1-f0-web BEGIN: poisoned by the gameday agent, removed when \
                    the fault is reverted\n10.9.9.9 api.test\n10.9.9.9 www.test\n\
                    # gameday run-1-f0-web END\n127.0.0.1 localhost\n10.1.1.1 api.test\n";
    assert_eq!(text, expected);
}

#[test]
fn odd_files_are_restored_exactly() {
    // No trailing newline, CRLF, invalid UTF-8, a NUL, and an empty file.
    round_trip(b"127.0.0.1 localhost\n10.1.1.1 api.test");
    let crlf = round_trip(b"127.0.0.1 localhost\r\n10.1.1.1 api.test\r\n");
    assert!(String::from_utf8(crlf)
        .unwrap()
        .contains("\r\n10.9.9.9 api.test\r\n"));
    round_trip(b"# caf\xe9 \xff\xfe\x00 odd\n127.0.0.1 localhost\n");
    round_trip(b"");
}

#[test]
fn a_change_made_while_poisoned_is_overwritten_and_reported() {
    let files = FakeFiles::with(HOSTS, b"127.0.0.1 localhost\n");
    let host = host_with(files.clone(), Arc::new(FakeFirewall::default()));
    let s = spec(DnsMode::Hosts, &["api.test"], "10.9.9.9");
    let plan = prepare(&s, "f1", &hosts_policy(), &host).unwrap();
    apply(&plan, &host).unwrap();
    let mut edited = files.get(HOSTS);
    edited.extend_from_slice(b"10.2.2.2 added.test\n");
    files.put(HOSTS, &edited);
    let reverted = revert(&plan, &host).unwrap();
    assert_eq!(files.get(HOSTS), b"127.0.0.1 localhost\n");
    assert_eq!(reverted.evidence.figures["hosts_concurrent_change"], 1);
    assert!(
        reverted
            .evidence
            .summary
            .contains("changed by someone else"),
        "{reverted:?}"
    );
    assert!(residue(&reverted.evidence).is_empty());
}

#[test]
fn residue_is_reported_when_the_original_does_not_come_back() {
    let files = FakeFiles::with(HOSTS, b"127.0.0.1 localhost\n");
    let host = host_with(files.clone(), Arc::new(FakeFirewall::default()));
    let s = spec(DnsMode::Hosts, &["api.test"], "10.9.9.9");
    let plan = prepare(&s, "f1", &hosts_policy(), &host).unwrap();
    apply(&plan, &host).unwrap();
    files.frozen.lock().unwrap().push(PathBuf::from(HOSTS));
    let reverted = revert(&plan, &host).unwrap();
    let residue = residue(&reverted.evidence);
    assert_eq!(residue.len(), 1, "{reverted:?}");
    assert!(
        residue[0].contains("differs from its original"),
        "{residue:?}"
    );
    // A file rewritten whole by someone else (no trace of our block) is left alone and
    // the difference reported.
    files.frozen.lock().unwrap().clear();
    files.put(HOSTS, b"10.3.3.3 rewritten.test\n");
    let rewritten = revert(&plan, &host).unwrap();
    assert_eq!(files.get(HOSTS), b"10.3.3.3 rewritten.test\n");
    assert!(
        rewritten.evidence.residue[0].contains("holds no gameday block"),
        "{rewritten:?}"
    );
    // A deleted file is residue too, and is not recreated.
    files.files.lock().unwrap().clear();
    let gone = revert(&plan, &host).unwrap();
    assert!(
        gone.evidence.residue[0].contains("no longer exists"),
        "{gone:?}"
    );
}

#[test]
fn hosts_mode_refusals() {
    let files = FakeFiles::with(HOSTS, b"127.0.0.1 localhost\n");
    let host = host_with(files.clone(), Arc::new(FakeFirewall::default()));
    let s = spec(DnsMode::Hosts, &["api.test"], "10.9.9.9");
    // No hosts_file in the policy: refused by policy, whatever the controller says.
    let err = prepare(&s, "f1", &Policy::permissive(), &host).unwrap_err();
    assert_eq!(err.kind(), FailureKind::Policy, "{err:?}");
    assert!(err.to_string().contains("hosts_file"), "{err}");
    // Wildcards and failure answers need resolver mode: the spec check refuses them, before
    // any fault is built.
    for (name, answer) in [("*.test", "10.9.9.9"), ("api.test", "nxdomain")] {
        let raw = gameday_proto::fault::RawDnsPoison {
            mode: DnsMode::Hosts,
            names: vec![name.into()],
            answer: answer.into(),
            duration: None,
        };
        let err = DnsPoison::try_from(raw).unwrap_err().to_string();
        assert!(err.contains("use mode = \"resolver\""), "{err}");
    }
    // Names outside the allowlist.
    let strict = policy(&format!(
        "[dns_poison]\nhosts_file = \"{HOSTS}\"\nnames = [\"*.internal\", \"db.test\"]\n"
    ));
    let err = prepare(&s, "f1", &strict, &host).unwrap_err();
    assert_eq!(err.kind(), FailureKind::Policy, "{err:?}");
    assert!(err.to_string().contains("api.test"), "{err}");
    let ok = spec(DnsMode::Hosts, &["db.test", "a.b.internal"], "10.9.9.9");
    assert!(prepare(&ok, "f1", &strict, &host).is_ok());
    // A file holding another fault's block.
    let plan = prepare(&s, "f1", &hosts_policy(), &host).unwrap();
    apply(&plan, &host).unwrap();
    let err = prepare(&s, "f2", &hosts_policy(), &host).unwrap_err();
    assert!(
        err.to_string().contains("already holds a gameday block"),
        "{err}"
    );
    revert(&plan, &host).unwrap();
    // A file changed between prepare and apply.
    let plan = prepare(&s, "f3", &hosts_policy(), &host).unwrap();
    files.put(HOSTS, b"127.0.0.1 localhost\n10.0.0.1 x\n");
    let err = apply(&plan, &host).unwrap_err();
    assert!(err.to_string().contains("changed since"), "{err}");
    // The undo of that failed apply leaves the newer file alone.
    revert(&plan, &host).unwrap();
    assert_eq!(files.get(HOSTS), b"127.0.0.1 localhost\n10.0.0.1 x\n");
    // A file the agent may not write: not usable here. One that became read-only after the
    // plan was made is the system failing, and says what the agent was doing.
    let plan = prepare(&s, "f4", &hosts_policy(), &host).unwrap();
    files.readonly.lock().unwrap().push(PathBuf::from(HOSTS));
    let err = prepare(&s, "f4", &hosts_policy(), &host).unwrap_err();
    assert_eq!(err.kind(), FailureKind::Unsupported, "{err:?}");
    assert!(
        err.to_string().starts_with(&format!(
            "hosts mode cannot write the hosts file: {HOSTS}: "
        )),
        "{err}"
    );
    let err = apply(&plan, &host).unwrap_err();
    assert_eq!(err.kind(), FailureKind::System, "{err:?}");
    assert!(
        err.to_string()
            .starts_with(&format!("cannot write the hosts file: {HOSTS}: ")),
        "{err}"
    );
    assert!(
        std::error::Error::source(&err).is_some_and(|s| s.is::<DnsOsError>()),
        "{err:?}"
    );
}

#[test]
fn policy_validation() {
    let check = |text: &str| {
        toml::from_str::<PolicyConfig>(text)
            .map_err(|e| e.to_string())
            .and_then(|c| c.validate())
    };
    assert!(check("").is_ok());
    assert!(check(
        "hosts_file = \"/etc/hosts\"\nupstream = [\"10.0.0.2:53\", \"[fd00::2]:53\"]\n\
         listen_port = 5300\nupstream_timeout = \"1s\"\nmark = 0x10\nnames = [\"*.example\"]"
    )
    .is_ok());
    for (bad, says) in [
        ("hosts_file = \"hosts\"", "absolute"),
        ("resolv_conf = \"r.conf\"", "absolute"),
        (
            "resolv_conf = \"/etc/resolv.conf\"\nupstream = [\"10.0.0.2:53\"]",
            "not both",
        ),
        ("upstream = [\"127.0.0.53:53\"]", "loopback"),
        ("upstream = [\"10.0.0.2:0\"]", "cannot be an upstream"),
        ("upstream = [\"10.0.0.2\"]", "invalid"),
        ("upstream_timeout = \"0s\"", "more than zero"),
        ("upstream_timeout = \"1m\"", "at most 30s"),
        ("mark = 0", "mark"),
        ("names = [\"bad name\"]", "names"),
        ("hostsfile = \"/etc/hosts\"", "unknown field"),
    ] {
        let err = check(bad).unwrap_err();
        assert!(err.contains(says), "{bad}: {err}");
    }
    let p = PolicyConfig::default();
    assert_eq!(p.mark(), DEFAULT_MARK);
    assert_eq!(p.upstream_timeout(), DEFAULT_UPSTREAM_TIMEOUT);
}

#[test]
fn upstreams_come_from_the_policy_or_its_resolv_conf() {
    let (servers, skipped) = parse_resolv_conf(
        "# comment\nsearch example\nnameserver 127.0.0.53\nnameserver 10.0.0.2\n\
         nameserver fe80::1%eth0\nnameserver   fd00::2  \noptions edns0\n",
    );
    assert_eq!(
        servers,
        vec![
            "10.0.0.2:53".parse::<SocketAddr>().unwrap(),
            "[fd00::2]:53".parse().unwrap()
        ]
    );
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    let files = FakeFiles::with("/r/resolv.conf", b"nameserver 10.0.0.3\n");
    files.put("/r/stub.conf", b"nameserver 127.0.0.53\n");
    let config = |path: &str| PolicyConfig {
        resolv_conf: Some(PathBuf::from(path)),
        ..PolicyConfig::default()
    };
    assert_eq!(
        resolver::upstream(&config("/r/resolv.conf"), files.as_ref()).unwrap(),
        vec!["10.0.0.3:53".parse::<SocketAddr>().unwrap()]
    );
    let err = resolver::upstream(&config("/r/stub.conf"), files.as_ref()).unwrap_err();
    assert!(err.contains("127.0.0.53 (loopback)"), "{err}");
    let err = resolver::upstream(&PolicyConfig::default(), files.as_ref()).unwrap_err();
    assert!(err.contains("policy.dns_poison.upstream"), "{err}");
}

#[test]
fn availability_follows_configuration_and_nftables() {
    let files = FakeFiles::with(HOSTS, b"");
    let host = host_with(files.clone(), Arc::new(FakeFirewall::default()));
    let err = available(&Policy::permissive(), &host).unwrap_err();
    assert!(err.detail.contains("hosts_file is not set"), "{err}");
    assert!(err.detail.contains("upstream"), "{err}");
    assert_eq!(err.cause, UnavailableCause::Policy);
    assert!(available(&hosts_policy(), &host).is_ok());
    let resolver_policy = policy("[dns_poison]\nupstream = [\"10.0.0.2:53\"]\n");
    assert!(available(&resolver_policy, &host).is_ok());
    let no_nft = host_with(files, Arc::new(FakeFirewall::broken()));
    let err = available(&resolver_policy, &no_nft).unwrap_err();
    assert!(err.detail.contains("needs nftables"), "{err}");
    assert_ne!(err.cause, UnavailableCause::Policy, "{err:?}");
    let s = spec(DnsMode::Resolver, &["api.test"], "nxdomain");
    let err = prepare(&s, "f1", &resolver_policy, &no_nft).unwrap_err();
    assert_eq!(err.kind(), FailureKind::Unsupported, "{err:?}");
    let err = prepare(&s, "f1", &hosts_policy(), &host).unwrap_err();
    assert_eq!(err.kind(), FailureKind::Policy, "{err:?}");
}

fn resolver_policy(upstream: SocketAddr) -> Policy {
    // The fake upstream is on loopback, which the config refuses for real hosts; tests set
    // the policy directly.
    let mut p = Policy::permissive();
    p.dns_poison.upstream = vec![upstream];
    p.dns_poison.upstream_timeout = Some(gameday_proto::Duration::from_millis(300));
    p
}

#[test]
fn resolver_mode_redirects_answers_forwards_and_reverts() {
    let upstream = FakeUpstream::start(Ipv4Addr::new(192, 0, 2, 7));
    let firewall = Arc::new(FakeFirewall::default());
    let host = host_with(Arc::new(FakeFiles::default()), firewall.clone());
    let policy = resolver_policy(upstream.addr);
    let s = spec(DnsMode::Resolver, &["api.test", "*.api.test"], "10.9.9.9");
    let plan = prepare(&s, "run-7-f0-web", &policy, &host).unwrap();
    let ModePlan::Resolver(r) = &plan.mode else {
        panic!("{plan:?}")
    };
    assert!(
        r.table.starts_with("gameday_dns_run_7_f0_web_"),
        "{}",
        r.table
    );
    let applied = apply(&plan, &host).unwrap();
    let port = applied.evidence.figures["listen_port"] as u16;
    let batch = firewall.applied.lock().unwrap()[0].clone();
    assert!(
        batch.contains(&format!("{{\"redirect\":{{\"port\":{port}}}}}")),
        "{batch}"
    );
    assert!(batch.contains(&DEFAULT_MARK.to_string()), "{batch}");
    // The resolver answers as a redirected client would see it.
    let server: SocketAddr = (Ipv4Addr::LOCALHOST, port).into();
    let poisoned = ask_udp(server, "www.api.test", hickory_proto::rr::RecordType::A).unwrap();
    assert_eq!(poisoned.answers()[0].data().to_string(), "10.9.9.9");
    let forwarded = ask_udp(server, "other.test", hickory_proto::rr::RecordType::A).unwrap();
    assert_eq!(forwarded.answers()[0].data().to_string(), "192.0.2.7");
    // A second resolver fault cannot stack on this one.
    let err = prepare(&s, "run-7-f1-web", &policy, &host).unwrap_err();
    assert!(err.to_string().contains("is live"), "{err}");
    let reverted = revert(&plan, &host).unwrap();
    let f = &reverted.evidence.figures;
    assert_eq!(f["queries_answered"], 1, "{reverted:?}");
    assert_eq!(f["queries_forwarded"], 1, "{reverted:?}");
    assert_eq!(f["packets_redirected"], 7, "{reverted:?}");
    assert!(reverted.evidence.residue.is_empty(), "{reverted:?}");
    assert!(firewall.tables.lock().unwrap().is_empty());
    // Idempotent.
    let again = revert(&plan, &host).unwrap();
    assert!(again.evidence.summary.contains("already gone"), "{again:?}");
    assert!(again.evidence.residue.is_empty());
}

#[test]
fn a_crashed_agents_redirect_is_deleted_by_its_successor() {
    let upstream = FakeUpstream::start(Ipv4Addr::new(192, 0, 2, 7));
    let firewall = Arc::new(FakeFirewall::default());
    let policy = resolver_policy(upstream.addr);
    let s = spec(DnsMode::Resolver, &["api.test"], "servfail");
    let journaled = {
        let host = host_with(Arc::new(FakeFiles::default()), firewall.clone());
        let plan = prepare(&s, "f1", &policy, &host).unwrap();
        apply(&plan, &host).unwrap();
        serde_json::to_string(&plan).unwrap()
        // The host (and its resolver) goes away; the table stays, as after a crash.
    };
    assert_eq!(firewall.tables.lock().unwrap().len(), 1);
    let successor = host_with(Arc::new(FakeFiles::default()), firewall.clone());
    let plan: Plan = serde_json::from_str(&journaled).unwrap();
    let reverted = revert(&plan, &successor).unwrap();
    assert!(firewall.tables.lock().unwrap().is_empty());
    assert!(reverted.evidence.residue.is_empty());
    assert!(
        reverted
            .evidence
            .summary
            .contains("died with a previous agent"),
        "{reverted:?}"
    );
}

#[test]
fn a_redirect_that_cannot_be_made_stops_the_resolver() {
    let upstream = FakeUpstream::start(Ipv4Addr::new(192, 0, 2, 7));
    let ok = Arc::new(FakeFirewall::default());
    let policy = resolver_policy(upstream.addr);
    let s = spec(DnsMode::Resolver, &["api.test"], "nxdomain");
    let host = host_with(Arc::new(FakeFiles::default()), ok);
    let plan = prepare(&s, "f1", &policy, &host).unwrap();
    let broken = host_with(
        Arc::new(FakeFiles::default()),
        Arc::new(FakeFirewall::broken()),
    );
    let err = apply(&plan, &broken).unwrap_err();
    assert_eq!(err.kind(), FailureKind::System, "{err:?}");
    assert!(broken.dns.live_resolver().is_none());
}

#[test]
fn fault_ids_become_safe_labels() {
    assert_eq!(label("run-1-f0-web"), "run-1-f0-web");
    assert_eq!(label("a b\n#c"), "a_b__c");
    let t = table_name("run-1.f0");
    assert!(t.starts_with("gameday_dns_run_1_f0_"), "{t}");
    assert_eq!(t.len(), "gameday_dns_run_1_f0_".len() + 8);
    assert_ne!(table_name("a-b"), table_name("a_b"));
    assert_eq!(table_name("a-b"), table_name("a-b"));
    let long = table_name(&"x".repeat(300));
    assert!(long.len() <= 12 + 40 + 1 + 8, "{long}");
}

#[test]
fn the_controllers_name_is_never_poisoned() {
    assert_eq!(
        controller_name(
            crate::config::ControllerUrl::parse("https://GameDay.example:7443/")
                .unwrap()
                .host()
        )
        .as_deref(),
        Some("gameday.example")
    );
    assert_eq!(
        controller_name(
            crate::config::ControllerUrl::parse("https://10.0.0.5:7443")
                .unwrap()
                .host()
        ),
        None
    );
    assert_eq!(
        controller_name(
            crate::config::ControllerUrl::parse("https://[fd00::5]:7443")
                .unwrap()
                .host()
        ),
        None
    );
    let files = FakeFiles::with(HOSTS, b"");
    let mut host = host_with(files, Arc::new(FakeFirewall::default()));
    host.dns = std::mem::take(&mut host.dns).protect("gameday.example");
    let s = spec(DnsMode::Resolver, &["*.example"], "nxdomain");
    let err = prepare(&s, "f1", &hosts_policy(), &host).unwrap_err();
    assert_eq!(err.kind(), FailureKind::Policy, "{err:?}");
    assert!(err.to_string().contains("controller"), "{err}");
    let s = spec(DnsMode::Hosts, &["api.example"], "10.0.0.1");
    assert!(prepare(&s, "f1", &hosts_policy(), &host).is_ok());
}
