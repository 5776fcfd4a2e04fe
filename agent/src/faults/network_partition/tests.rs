//! Unit tests of the partition's logic against the recording fake: naming, the rules for
//! every direction, port and protocol, the exemptions, the policy, revert and residue.

use std::net::SocketAddr;
use std::sync::Arc;

use gameday_proto::fault::{Direction, Protocol};
use gameday_proto::NetworkPartition;
use serde_json::json;

use super::fake::{FakeFirewall, Mode};
use super::rules::{minimal, table_name, Net};
use super::*;
use crate::faults::{self, Fault};
use crate::policy::Policy;
use crate::policy::PolicyConfig as HostPolicy;
use gameday_proto::v1::{FailureKind, UnavailableCause};

/// [`super::prepare`] with the whole policy, as the agent's dispatch calls it.
fn prepare(
    spec: &NetworkPartition,
    fault_id: &str,
    policy: &Policy,
    host: &Host,
) -> Result<Plan, FaultError> {
    super::prepare(spec, fault_id, &policy.network_partition, host)
}

const CONTROLLER: &str = "192.0.2.10:7443";

fn host(fw: &Arc<FakeFirewall>) -> Host {
    Host {
        processes: Arc::new(crate::os::RealOs::default()),
        network: Backend::new(fw.clone()),
        disk: Default::default(),
        dns: Default::default(),
        controller: vec![CONTROLLER.parse().unwrap()],
    }
}

fn spec(
    direction: Direction,
    peers: &[&str],
    ports: &[u16],
    protocol: Protocol,
) -> NetworkPartition {
    NetworkPartition {
        direction,
        peers: peers.iter().map(|p| Net::parse(p).unwrap()).collect(),
        peer_agents: vec![],
        ports: ports.to_vec(),
        protocol,
        duration: None,
    }
}

fn policy(toml_text: &str) -> Policy {
    let config: HostPolicy = toml::from_str(toml_text).unwrap();
    Policy::from_config(&config).unwrap()
}

/// Prepares and applies; returns the fake's rules, `chain: rule` per line.
fn installed(s: &NetworkPartition) -> Vec<String> {
    let fw = Arc::new(FakeFirewall::default());
    let host = host(&fw);
    let plan = prepare(s, "run-1-f0-web", &Policy::permissive(), &host).unwrap();
    apply(&plan, &host).unwrap();
    fw.rules(&plan.table)
}

const CTRL_RULES: [&str; 2] = [
    "ip daddr 192.0.2.10 meta l4proto tcp th dport 7443 counter accept",
    "ip saddr 192.0.2.10 meta l4proto tcp th sport 7443 counter accept",
];

fn chain(name: &str, rules: &[&str]) -> Vec<String> {
    rules.iter().map(|r| format!("{name}: {r}")).collect()
}

#[test]
fn table_names_are_recognisable_valid_and_unique() {
    let a = table_name("run-1-f0-web");
    assert!(a.starts_with("gameday_run_1_f0_web_"), "{a}");
    assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    assert_eq!(a, table_name("run-1-f0-web"), "stable");
    assert_ne!(table_name("a-b"), table_name("a_b"));
    let long = "x".repeat(300);
    let l = table_name(&long);
    assert!(l.len() <= 64, "{l}");
    assert_ne!(l, table_name(&format!("{long}y")));
}

#[test]
fn networks_are_canonical_and_minimal() {
    assert_eq!(
        Net::parse("10.0.0.7/24").unwrap().to_string(),
        "10.0.0.0/24"
    );
    assert_eq!(Net::parse("10.0.0.7").unwrap().to_string(), "10.0.0.7/32");
    assert_eq!(Net::parse("fd00::1/64").unwrap().to_string(), "fd00::/64");
    assert!(Net::parse("10.0.0.0/33").is_err());
    assert!(Net::parse("db.internal").is_err());
    let nets: Vec<Net> = ["10.0.0.0/8", "10.1.2.3", "192.168.0.0/16", "10.0.0.0/8"]
        .iter()
        .map(|n| Net::parse(n).unwrap())
        .collect();
    let m: Vec<String> = minimal(&nets).iter().map(ToString::to_string).collect();
    assert_eq!(m, ["10.0.0.0/8", "192.168.0.0/16"]);
}

#[test]
fn both_directions_every_protocol() {
    let rules = installed(&spec(
        Direction::Both,
        &["10.1.2.0/24", "10.9.9.9"],
        &[],
        Protocol::Any,
    ));
    let mut want = chain("input", &CTRL_RULES);
    want.extend(chain(
        "input",
        &["ip saddr { 10.1.2.0/24, 10.9.9.9 } counter drop"],
    ));
    want.extend(chain("output", &CTRL_RULES));
    want.extend(chain(
        "output",
        &["ip daddr { 10.1.2.0/24, 10.9.9.9 } counter drop"],
    ));
    assert_eq!(rules, want);
}

#[test]
fn ingress_only_uses_the_input_chain() {
    let rules = installed(&spec(
        Direction::Ingress,
        &["10.1.2.0/24"],
        &[],
        Protocol::Tcp,
    ));
    let mut want = chain("input", &CTRL_RULES);
    want.extend(chain(
        "input",
        &["ip saddr 10.1.2.0/24 meta l4proto tcp counter drop"],
    ));
    assert_eq!(rules, want);
}

#[test]
fn egress_only_with_ports_matches_either_end() {
    let rules = installed(&spec(
        Direction::Egress,
        &["10.1.2.7"],
        &[443, 80, 80],
        Protocol::Udp,
    ));
    let mut want = chain("output", &CTRL_RULES);
    want.extend(chain(
        "output",
        &[
            "ip daddr 10.1.2.7 meta l4proto udp th dport { 80, 443 } counter drop",
            "ip daddr 10.1.2.7 meta l4proto udp th sport { 80, 443 } counter drop",
        ],
    ));
    assert_eq!(rules, want);
}

#[test]
fn ports_without_peers_cut_every_address_for_tcp_and_udp() {
    let rules = installed(&spec(Direction::Ingress, &[], &[5432], Protocol::Any));
    let mut want = chain("input", &CTRL_RULES);
    want.extend(chain(
        "input",
        &[
            "meta l4proto { tcp, udp } th dport 5432 counter drop",
            "meta l4proto { tcp, udp } th sport 5432 counter drop",
        ],
    ));
    assert_eq!(rules, want);
}

#[test]
fn ipv6_and_whole_families() {
    let rules = installed(&spec(
        Direction::Egress,
        &["0.0.0.0/0", "fd00::/64"],
        &[],
        Protocol::Any,
    ));
    let mut want = chain("output", &CTRL_RULES);
    want.extend(chain(
        "output",
        &[
            "meta nfproto ipv4 counter drop",
            "ip6 daddr fd00::/64 counter drop",
        ],
    ));
    assert_eq!(rules, want);
}

#[test]
fn exemptions_come_before_every_drop_in_every_chain() {
    let fw = Arc::new(FakeFirewall::default());
    let mut host = host(&fw);
    host.controller.push("[2001:db8::1]:7443".parse().unwrap());
    let p = policy(
        r#"
        [network_partition]
        protect = ["10.1.0.0/16", "172.16.0.0/12"]
        protect_ports = [22]
        "#,
    );
    let plan = prepare(
        &spec(Direction::Both, &["10.0.0.0/8"], &[], Protocol::Any),
        "f",
        &p,
        &host,
    )
    .unwrap();
    apply(&plan, &host).unwrap();
    let rules = fw.rules(&plan.table);
    let mut want = Vec::new();
    for (c, end) in [("input", "saddr"), ("output", "daddr")] {
        want.extend(chain(c, &CTRL_RULES));
        want.extend(chain(
            c,
            &[
                "ip6 daddr 2001:db8::1 meta l4proto tcp th dport 7443 counter accept",
                "ip6 saddr 2001:db8::1 meta l4proto tcp th sport 7443 counter accept",
                // Only the protected network that overlaps the peers.
                &format!("ip {end} 10.1.0.0/16 counter accept"),
                "meta l4proto { tcp, udp } th dport 22 counter accept",
                "meta l4proto { tcp, udp } th sport 22 counter accept",
                &format!("ip {end} 10.0.0.0/8 counter drop"),
            ],
        ));
    }
    assert_eq!(rules, want);
}

#[test]
fn the_table_is_one_create_transaction() {
    let fw = Arc::new(FakeFirewall::default());
    let host = host(&fw);
    let plan = prepare(
        &spec(Direction::Both, &["10.1.2.0/24"], &[], Protocol::Any),
        "f",
        &Policy::permissive(),
        &host,
    )
    .unwrap();
    apply(&plan, &host).unwrap();
    let batches = fw.batches();
    assert_eq!(batches.len(), 1, "one nft run");
    let first = serde_json::to_value(&batches[0].objects[0]).unwrap();
    assert_eq!(
        first,
        json!({"create": {"table": {"family": "inet", "name": plan.table}}})
    );
    let chains: Vec<_> = serde_json::to_value(&batches[0]).unwrap()["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["add"].get("chain").cloned())
        .collect();
    assert_eq!(chains.len(), 2);
    for c in chains {
        assert_eq!(c["prio"], -10);
        assert_eq!(c["policy"], "accept");
        assert_eq!(c["type"], "filter");
    }
    // A second apply of the same plan refuses instead of stacking rules on the first.
    assert!(apply(&plan, &host).is_err_and(|e| e.kind() == FailureKind::System));
    assert_eq!(
        fw.rules(&plan.table).len(),
        6,
        "two chains of two controller rules and a drop"
    );
}

#[test]
fn revert_reports_counters_and_is_idempotent() {
    let fw = Arc::new(FakeFirewall::default());
    let host = host(&fw);
    let plan = prepare(
        &spec(Direction::Both, &["10.1.2.0/24"], &[], Protocol::Any),
        "run-1-f0",
        &Policy::permissive(),
        &host,
    )
    .unwrap();
    let applied = apply(&plan, &host).unwrap();
    assert!(
        applied.evidence.summary.starts_with(
            "cut ingress and egress traffic with 10.1.2.0/24; exempt: controller 192.0.2.10:7443"
        ),
        "{}",
        applied.evidence.summary
    );
    fw.set_counters((3, 180), 5);
    let r = revert(&plan, &host).unwrap();
    // Two drop rules of 3 packets each; four controller rules of 5.
    assert_eq!(r.evidence.figures["packets_dropped"], 6);
    assert_eq!(r.evidence.figures["bytes_dropped"], 360);
    assert_eq!(r.evidence.figures["packets_exempted"], 20);
    assert!(r.evidence.residue.is_empty(), "{:?}", r.evidence.residue);
    assert!(fw.table_names().is_empty());
    let again = revert(&plan, &host).unwrap();
    assert!(
        again.evidence.summary.ends_with("was already gone"),
        "{}",
        again.evidence.summary
    );
    assert!(again.evidence.figures.is_empty());
    assert!(again.evidence.residue.is_empty());
}

#[test]
fn a_plan_that_never_applied_reverts_cleanly() {
    let fw = Arc::new(FakeFirewall::default());
    let host = host(&fw);
    let plan = prepare(
        &spec(Direction::Both, &["10.1.2.0/24"], &[], Protocol::Any),
        "f",
        &Policy::permissive(),
        &host,
    )
    .unwrap();
    fw.set_mode(Mode::ApplyFails);
    let err = apply(&plan, &host).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cannot install the partition: nft failed"),
        "{err}"
    );
    fw.set_mode(Mode::Ok);
    assert!(fw.table_names().is_empty(), "a failed batch leaves nothing");
    assert!(revert(&plan, &host).unwrap().evidence.residue.is_empty());
}

#[test]
fn residue_names_what_is_left() {
    let fw = Arc::new(FakeFirewall::default());
    fw.add_host_objects(vec![
        json!({"table": {"family": "inet", "name": "filter", "handle": 1}}),
    ]);
    let host = host(&fw);
    let plan = prepare(
        &spec(Direction::Both, &["10.1.2.0/24"], &[], Protocol::Any),
        "f",
        &Policy::permissive(),
        &host,
    )
    .unwrap();
    apply(&plan, &host).unwrap();
    // While the fault holds, someone adds a table of their own.
    fw.add_host_objects(vec![
        json!({"table": {"family": "ip", "name": "nat", "handle": 2}}),
    ]);
    fw.set_mode(Mode::DeleteKeeps);
    let r = revert(&plan, &host).unwrap();
    assert_eq!(
        r.evidence.residue,
        [
            format!(
                "nftables table inet {} (this fault's) is still present",
                plan.table
            ),
            "nftables table ip nat did not exist before the fault and does now".to_string(),
        ]
    );
}

#[test]
fn the_plan_survives_the_journal() {
    let fw = Arc::new(FakeFirewall::default());
    let host = host(&fw);
    let plan = prepare(
        &spec(Direction::Egress, &["fd00::/64"], &[53], Protocol::Udp),
        "f",
        &Policy::permissive(),
        &host,
    )
    .unwrap();
    let text = serde_json::to_string(&faults::Plan::NetworkPartition(plan.clone())).unwrap();
    let faults::Plan::NetworkPartition(back) = serde_json::from_str(&text).unwrap() else {
        panic!("wrong kind: {text}");
    };
    assert_eq!(back.table, plan.table);
    assert_eq!(back.partition, plan.partition);
    assert_eq!(back.before, plan.before);
}

#[test]
fn goes_through_the_generic_fault_entry_points() {
    let fw = Arc::new(FakeFirewall::default());
    let host = host(&fw);
    let fault =
        Fault::NetworkPartition(spec(Direction::Both, &["10.1.2.0/24"], &[], Protocol::Any));
    let plan = faults::prepare(&fault, "f", &Policy::permissive(), &host).unwrap();
    faults::apply(&plan, &Policy::permissive(), &host).unwrap();
    assert_eq!(fw.table_names().len(), 1);
    faults::revert(&plan, &host).unwrap();
    assert!(fw.table_names().is_empty());
}

fn refusal(p: &Policy, s: &NetworkPartition) -> String {
    let fw = Arc::new(FakeFirewall::default());
    match prepare(s, "f", p, &host(&fw)) {
        Err(e) if e.kind() == FailureKind::Policy => e.to_string(),
        other => panic!("expected a policy refusal, got {other:?}"),
    }
}

#[test]
fn the_policy_refuses_what_the_host_owner_did_not_allow() {
    let p = policy("[network_partition]\nallowed_peers = [\"10.20.0.0/16\"]");
    let s = spec(
        Direction::Both,
        &["10.20.1.0/24", "10.30.0.1"],
        &[],
        Protocol::Any,
    );
    assert_eq!(
        refusal(&p, &s),
        "peer 10.30.0.1/32 is outside policy.network_partition.allowed_peers = [\"10.20.0.0/16\"]"
    );
    assert!(
        refusal(&p, &spec(Direction::Both, &[], &[80], Protocol::Any))
            .contains("would cut every address")
    );

    let p = policy("[network_partition]\nprotect = [\"10.0.0.0/8\"]");
    let s = spec(
        Direction::Both,
        &["10.1.0.0/16", "10.2.0.1"],
        &[],
        Protocol::Any,
    );
    assert!(refusal(&p, &s).starts_with("every peer is protected"));

    let p = policy("[network_partition]\nprotect_ports = [22]");
    let s = spec(Direction::Both, &["10.1.0.0/16"], &[22], Protocol::Tcp);
    assert!(refusal(&p, &s).starts_with("every port is protected"));

    let p = policy("[network_partition]\nmax_duration = \"30s\"");
    let mut s = spec(Direction::Both, &["10.1.0.0/16"], &[], Protocol::Any);
    assert!(refusal(&p, &s).contains("give the fault a `duration`"));
    s.duration = Some("1m".parse().unwrap());
    assert_eq!(
        refusal(&p, &s),
        "duration 1m is longer than policy.network_partition.max_duration = 30s"
    );
    s.duration = Some("30s".parse().unwrap());
    let fw = Arc::new(FakeFirewall::default());
    assert!(prepare(&s, "f", &p, &host(&fw)).is_ok());

    let none = policy("allow_faults = [\"process_kill\"]");
    let fault = Fault::NetworkPartition(s);
    assert!(matches!(
        faults::prepare(&fault, "f", &none, &host(&fw)),
        Err(FaultError::Refused(_))
    ));
}

#[test]
fn refuses_to_partition_without_knowing_the_controller() {
    let fw = Arc::new(FakeFirewall::default());
    let mut host = host(&fw);
    host.controller.clear();
    let s = spec(Direction::Both, &["10.1.0.0/16"], &[], Protocol::Any);
    let err = prepare(&s, "f", &Policy::permissive(), &host).unwrap_err();
    assert!(
        err.to_string()
            .contains("cannot exempt its control connection"),
        "{err}"
    );
}

#[test]
fn rejects_malformed_specs() {
    let fw = Arc::new(FakeFirewall::default());
    let host = host(&fw);
    let p = Policy::permissive();
    // A peer that is no network, or nothing to cut, is refused by the spec check: such a
    // partition never reaches prepare.
    for peers in [vec!["db.internal".to_string()], vec![]] {
        let raw = gameday_proto::fault::RawNetworkPartition {
            peers,
            ..Default::default()
        };
        assert!(NetworkPartition::try_from(raw).is_err());
    }
    let mut unresolved = spec(Direction::Both, &[], &[], Protocol::Any);
    unresolved.peer_agents = vec!["db-1".into()];
    assert!(prepare(&unresolved, "f", &p, &host)
        .unwrap_err()
        .to_string()
        .contains("unresolved"));
}

#[test]
fn policy_tables_are_validated() {
    let parse = |t: &str| toml::from_str::<PolicyConfig>(t);
    assert!(parse("protekt = []").is_err(), "unknown keys are errors");
    assert_eq!(parse("").unwrap(), PolicyConfig::default());
    let bad = parse("protect = [\"10.0.0.0/40\"]")
        .unwrap()
        .limits()
        .unwrap_err();
    assert!(bad.starts_with("protect: "), "{bad}");
    assert!(parse("allowed_peers = [\"x\"]").unwrap().limits().is_err());
    assert!(parse("protect_ports = [0]").unwrap().limits().is_err());
    assert!(parse("max_duration = \"0s\"").unwrap().limits().is_err());
    let err =
        Policy::from_config(&toml::from_str("[network_partition]\nprotect = [\"nope\"]").unwrap())
            .unwrap_err();
    assert_eq!(err.key_path(), &["network_partition"]);
}

#[test]
fn available_only_where_nft_works() {
    let fw = Arc::new(FakeFirewall::default());
    let host = host(&fw);
    let p = Policy::permissive();
    assert!(available(&host).is_ok());
    assert!(faults::capabilities(&p, &host).contains(&"network_partition".to_string()));
    fw.set_mode(Mode::NoNft);
    let missing = available(&host).unwrap_err();
    assert!(missing.detail.starts_with("nft not found"), "{missing}");
    assert_eq!(missing.cause, UnavailableCause::ToolMissing);
    let survey = faults::survey(&p, &host);
    assert!(!survey
        .capabilities
        .contains(&"network_partition".to_string()));
    let why = survey
        .unavailable
        .iter()
        .find(|u| u.kind == "network_partition")
        .expect("the survey says why network_partition is missing");
    assert_eq!(why.cause(), UnavailableCause::ToolMissing);
    fw.set_mode(Mode::NoPermission);
    let no_rights = available(&host).unwrap_err();
    assert!(
        no_rights.detail.starts_with("no permission for nftables"),
        "{no_rights}"
    );
    assert_eq!(no_rights.cause, UnavailableCause::NoRights);
}

#[test]
fn controller_addresses_in_the_plan_are_the_hosts() {
    let fw = Arc::new(FakeFirewall::default());
    let host = host(&fw);
    let plan = prepare(
        &spec(Direction::Both, &["10.1.0.0/16"], &[], Protocol::Any),
        "f",
        &Policy::permissive(),
        &host,
    )
    .unwrap();
    assert_eq!(
        plan.partition.controller,
        vec![CONTROLLER.parse::<SocketAddr>().unwrap()]
    );
}
