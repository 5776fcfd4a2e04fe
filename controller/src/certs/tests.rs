//! Tests of the CA, the certificate directory and the ephemeral fleet: what is issued parses
//! back with the right subject, SANs and key usages; files land with the right modes.

use std::fs;
use std::net::IpAddr;
use std::path::Path;

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use super::files::mode_of;
use super::*;
use crate::identity::{parse_leaf, PeerIdentity};

/// Parses a PEM certificate and hands the parsed form to `check`.
fn with_cert<R>(pem: &str, check: impl FnOnce(&X509Certificate<'_>) -> R) -> R {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).expect("PEM");
    let cert = pem.parse_x509().expect("X.509");
    check(&cert)
}

fn sans_of(cert: &X509Certificate<'_>) -> Vec<String> {
    let Some(ext) = cert.subject_alternative_name().unwrap() else {
        return Vec::new();
    };
    ext.value
        .general_names
        .iter()
        .map(|name| match name {
            GeneralName::DNSName(dns) => format!("dns:{dns}"),
            GeneralName::IPAddress(b) if b.len() == 4 => {
                format!("ip:{}", IpAddr::from(<[u8; 4]>::try_from(*b).unwrap()))
            }
            GeneralName::IPAddress(b) => {
                format!("ip:{}", IpAddr::from(<[u8; 16]>::try_from(*b).unwrap()))
            }
            other => format!("other:{other}"),
        })
        .collect()
}

/// (serverAuth, clientAuth)
fn ekus_of(cert: &X509Certificate<'_>) -> (bool, bool) {
    let eku = cert.extended_key_usage().unwrap().expect("EKU extension");
    (eku.value.server_auth, eku.value.client_auth)
}

fn identity_of(pem: &str) -> PeerIdentity {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    parse_leaf(&pem.contents).unwrap()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn ca_is_a_ca_and_signs_what_it_issues() {
    let ca = Ca::generate("test fleet CA").unwrap();
    let (ca_subject, ca_ski) = with_cert(ca.cert_pem(), |cert| {
        assert!(cert.is_ca());
        let cn: Vec<_> = cert.subject().iter_common_name().collect();
        assert_eq!(cn[0].as_str().unwrap(), "test fleet CA");
        let ski = cert
            .iter_extensions()
            .find_map(|e| match e.parsed_extension() {
                x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(k) => {
                    Some(k.0.to_vec())
                }
                _ => None,
            });
        (cert.subject().as_raw().to_vec(), ski.expect("SKI"))
    });
    let pem = ca.issue(Role::Agent, "web1", &[]).unwrap();
    with_cert(&pem.cert, |cert| {
        assert!(!cert.is_ca());
        assert_eq!(cert.issuer().as_raw(), &ca_subject[..]);
        let aki = cert
            .iter_extensions()
            .find_map(|e| match e.parsed_extension() {
                x509_parser::extensions::ParsedExtension::AuthorityKeyIdentifier(a) => {
                    a.key_identifier.as_ref().map(|k| k.0.to_vec())
                }
                _ => None,
            });
        assert_eq!(aki, Some(ca_ski));
        assert!(ca.is_issuer_of(cert));
    });
    assert!(pem.key.contains("-----BEGIN PRIVATE KEY-----"));
}

#[test]
fn controller_certificate_serves_loopback_and_the_given_names() {
    let ca = Ca::generate("test fleet CA").unwrap();
    let sans = strings(&["gameday.example.org", "10.0.0.5", "fd00::7", "localhost"]);
    let pem = ca.issue(Role::Controller, CONTROLLER_NAME, &sans).unwrap();
    assert_eq!(
        identity_of(&pem.cert),
        PeerIdentity {
            name: CONTROLLER_NAME.into(),
            role: Role::Controller
        }
    );
    with_cert(&pem.cert, |cert| {
        assert_eq!(
            sans_of(cert),
            strings(&[
                "dns:localhost",
                "ip:127.0.0.1",
                "ip:::1",
                "dns:gameday.example.org",
                "ip:10.0.0.5",
                "ip:fd00::7",
            ])
        );
        assert_eq!(ekus_of(cert), (true, true));
    });
}

#[test]
fn agent_and_operator_certificates_are_client_certificates() {
    let ca = Ca::generate("test fleet CA").unwrap();
    for role in [Role::Agent, Role::Operator] {
        let pem = ca.issue(role, "alice.ops_1", &[]).unwrap();
        assert_eq!(
            identity_of(&pem.cert),
            PeerIdentity {
                name: "alice.ops_1".into(),
                role
            }
        );
        with_cert(&pem.cert, |cert| {
            assert_eq!(ekus_of(cert), (false, true), "{role}");
            assert!(sans_of(cert).is_empty(), "{role}");
            assert!(cert.validity().is_valid());
        });
    }
}

#[test]
fn bad_names_and_sans_are_rejected_by_value() {
    let ca = Ca::generate("test fleet CA").unwrap();
    let too_long = "a".repeat(65);
    for bad in [
        "",
        "web 1",
        "web/1",
        "../x",
        "wéb",
        "a:b",
        too_long.as_str(),
    ] {
        let err = ca.issue(Role::Agent, bad, &[]).unwrap_err();
        assert!(
            matches!(err, CertError::InvalidName { .. }),
            "{bad:?}: {err}"
        );
        assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
    }
    assert!(ca.issue(Role::Agent, &"a".repeat(64), &[]).is_ok());
    for bad in ["bad host", "-x.example", "a..b", "under_score.example", ""] {
        let err = ca
            .issue(Role::Controller, CONTROLLER_NAME, &strings(&[bad]))
            .unwrap_err();
        assert!(
            matches!(err, CertError::InvalidSan { .. }),
            "{bad:?}: {err}"
        );
        assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
    }
    assert!(Ca::generate("").is_err());
}

#[test]
fn a_written_ca_loads_back_and_keeps_signing_for_the_same_subject() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::generate("test fleet CA").unwrap();
    ca.write(dir.path()).unwrap();
    assert_eq!(mode_of(&dir.path().join("ca.key")), 0o600);
    assert_eq!(mode_of(&dir.path().join("ca.pem")), 0o644);

    let loaded = Ca::load(dir.path()).unwrap();
    assert_eq!(loaded.cert_pem(), ca.cert_pem());
    let pem = loaded.issue(Role::Agent, "web1", &[]).unwrap();
    with_cert(&pem.cert, |cert| assert!(ca.is_issuer_of(cert)));

    let err = ca.write(dir.path()).unwrap_err();
    assert!(matches!(err, CertError::CaExists { .. }), "{err}");
}

#[test]
fn loading_a_broken_ca_says_what_is_wrong_and_where() {
    let dir = tempfile::tempdir().unwrap();
    let err = Ca::load(dir.path()).unwrap_err();
    assert!(matches!(err, CertError::NoCa { .. }), "{err}");

    let ca = Ca::generate("one").unwrap();
    ca.write(dir.path()).unwrap();
    // Another CA's key next to this CA's certificate.
    let other = tempfile::tempdir().unwrap();
    Ca::generate("two").unwrap().write(other.path()).unwrap();
    fs::copy(other.path().join("ca.key"), dir.path().join("ca.key")).unwrap();
    let err = Ca::load(dir.path()).unwrap_err();
    assert!(matches!(err, CertError::CaKeyMismatch { .. }), "{err}");

    // A leaf certificate is not a CA.
    let leaf = ca.issue(Role::Agent, "web1", &[]).unwrap();
    fs::write(dir.path().join("ca.pem"), &leaf.cert).unwrap();
    fs::write(dir.path().join("ca.key"), &leaf.key).unwrap();
    let err = Ca::load(dir.path()).unwrap_err();
    assert!(matches!(err, CertError::BadCaCert { .. }), "{err}");
    assert!(err.to_string().contains("ca.pem"), "{err}");

    fs::remove_file(dir.path().join("ca.pem")).unwrap();
    let err = Ca::load(dir.path()).unwrap_err();
    assert!(matches!(err, CertError::CaCertMissing { .. }), "{err}");
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn init(
    dir: &Path,
    agents: &[&str],
    operators: &[&str],
    sans: &[&str],
) -> Result<Vec<CertAction>, CertError> {
    init_dir(
        dir,
        &strings(agents),
        &strings(operators),
        &strings(sans),
        Validity::default(),
    )
}

fn issue(dir: &Path, role: Role, name: &str) -> Result<CertAction, CertError> {
    issue_into(dir, role, name, &[], LEAF_VALIDITY)
}

#[test]
fn init_dir_writes_every_party_with_private_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("fleet");
    let actions = init(&dir, &["web1", "db1"], &["alice"], &["gameday.internal"]).unwrap();
    let expected = [
        "agent-db1.key",
        "agent-db1.pem",
        "agent-web1.key",
        "agent-web1.pem",
        "ca.key",
        "ca.pem",
        "controller.key",
        "controller.pem",
        "operator-alice.key",
        "operator-alice.pem",
    ];
    assert_eq!(names_in(&dir), expected);
    assert_eq!(written(&actions).len(), expected.len());
    assert!(actions
        .iter()
        .all(|a| matches!(a.outcome, CertOutcome::Created(_))));
    assert_eq!(mode_of(&dir), 0o700);
    for name in expected {
        let want = if name.ends_with(".key") { 0o600 } else { 0o644 };
        assert_eq!(mode_of(&dir.join(name)), want, "{name}");
    }

    let files = TlsFiles::in_dir(&dir, Role::Agent, "web1");
    let (ca_pem, pem) = files.read().unwrap();
    assert_eq!(ca_pem, fs::read_to_string(dir.join("ca.pem")).unwrap());
    assert_eq!(identity_of(&pem.cert).name, "web1");
    let controller = fs::read_to_string(dir.join("controller.pem")).unwrap();
    with_cert(&controller, |cert| {
        assert!(sans_of(cert).contains(&"dns:gameday.internal".to_owned()));
    });
}

#[test]
fn init_dir_reuses_the_ca_and_says_what_it_kept_and_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    init(dir, &["web1"], &[], &[]).unwrap();
    let read = |name: &str| fs::read_to_string(dir.join(name)).unwrap();
    let (ca_pem, ca_key, web1) = (read("ca.pem"), read("ca.key"), read("agent-web1.pem"));

    let actions = init(dir, &["web1", "web2"], &[], &[]).unwrap();
    assert_eq!(read("ca.pem"), ca_pem);
    assert_eq!(read("ca.key"), ca_key);
    assert_eq!(read("agent-web1.pem"), web1);
    assert_eq!(
        written(&actions),
        vec![dir.join("agent-web2.key"), dir.join("agent-web2.pem")]
    );
    // Nothing is skipped silently: what was kept is said, with its expiry.
    let said: Vec<String> = actions.iter().map(ToString::to_string).collect();
    assert_eq!(said.len(), 3, "{said:#?}");
    assert!(
        said[0].starts_with(&format!(
            "kept {} (controller: current, valid until 20",
            dir.join("controller.pem").display()
        )),
        "{said:#?}"
    );
    assert!(said[1].starts_with("kept "), "{said:#?}");
    assert!(
        said[2].starts_with(&format!(
            "created {} and its key (agent web2, valid for 730 days)",
            dir.join("agent-web2.pem").display()
        )),
        "{said:#?}"
    );
    with_cert(&read("agent-web2.pem"), |cert| {
        assert!(Ca::load(dir).unwrap().is_issuer_of(cert));
    });

    // A lost key replaces its certificate, and says so.
    fs::remove_file(dir.join("agent-web1.key")).unwrap();
    let actions = init(dir, &["web1"], &[], &[]).unwrap();
    assert_eq!(
        written(&actions),
        vec![dir.join("agent-web1.key"), dir.join("agent-web1.pem")]
    );
    let replaced = actions[1].to_string();
    assert!(
        replaced.contains("(agent web1: its key") && replaced.contains("is missing;"),
        "{replaced}"
    );
    assert_eq!(read("ca.pem"), ca_pem);
}

#[test]
fn init_dir_never_replaces_the_controller_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    init(dir, &[], &[], &[]).unwrap();
    let controller = fs::read_to_string(dir.join("controller.pem")).unwrap();
    // A new SAN would need a new controller certificate: refused, nothing written, and the
    // error says how to reissue it.
    let err = init(dir, &["web9"], &[], &["10.1.2.3"]).unwrap_err();
    assert!(matches!(err, CertError::ControllerExists { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("lacks the subject alternative name(s) 10.1.2.3"),
        "{text}"
    );
    assert!(text.contains("gameday certs issue --dir"), "{text}");
    assert!(text.contains("--controller"), "{text}");
    assert!(!dir.join("agent-web9.pem").exists(), "nothing written");
    assert_eq!(
        fs::read_to_string(dir.join("controller.pem")).unwrap(),
        controller
    );

    // `certs issue --controller` reissues it with the new SANs.
    let action = issue_into(
        dir,
        Role::Controller,
        CONTROLLER_NAME,
        &strings(&["10.1.2.3", "gameday.internal"]),
        LEAF_VALIDITY,
    )
    .unwrap();
    assert!(
        matches!(action.outcome, CertOutcome::Replaced(..)),
        "{action}"
    );
    let reissued = fs::read_to_string(dir.join("controller.pem")).unwrap();
    with_cert(&reissued, |cert| {
        let sans = sans_of(cert);
        assert!(sans.contains(&"ip:10.1.2.3".to_owned()), "{sans:?}");
        assert!(
            sans.contains(&"dns:gameday.internal".to_owned()),
            "{sans:?}"
        );
        assert!(sans.contains(&"dns:localhost".to_owned()), "{sans:?}");
    });
    assert_eq!(identity_of(&reissued).role, Role::Controller);
    // Now init has nothing to refuse.
    let actions = init(dir, &[], &[], &["10.1.2.3"]).unwrap();
    assert!(matches!(actions[0].outcome, CertOutcome::Kept(_)));
}

#[test]
fn validity_periods_are_settable() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let day = std::time::Duration::from_secs(24 * 3600);
    let actions = init_dir(
        dir,
        &strings(&["web1"]),
        &[],
        &[],
        Validity {
            ca: 400 * day,
            leaf: 7 * day,
        },
    )
    .unwrap();
    assert!(
        actions[0].to_string().contains("valid for 400 days"),
        "{}",
        actions[0]
    );
    let left = |name: &str| {
        let pem = fs::read_to_string(dir.join(name)).unwrap();
        with_cert(&pem, |c| c.validity().time_to_expiration().unwrap())
    };
    let days_left = |name: &str| left(name).whole_days();
    assert!(
        (399..=400).contains(&days_left("ca.pem")),
        "{}",
        days_left("ca.pem")
    );
    assert!((6..=7).contains(&days_left("agent-web1.pem")));
    // A short validity is not "about to expire" right after it was made.
    let again = init_dir(
        dir,
        &strings(&["web1"]),
        &[],
        &[],
        Validity {
            ca: 400 * day,
            leaf: 7 * day,
        },
    )
    .unwrap();
    assert!(written(&again).is_empty(), "{again:?}");
    let action = issue_into(dir, Role::Agent, "web2", &[], 30 * day).unwrap();
    assert!(action.to_string().contains("valid for 30 days"), "{action}");
    assert!((29..=30).contains(&days_left("agent-web2.pem")));
    let err = issue_into(dir, Role::Agent, "web3", &[], std::time::Duration::ZERO).unwrap_err();
    assert!(matches!(err, CertError::Validity { days: 0 }), "{err}");
}

#[test]
fn init_dir_validates_everything_before_writing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("fleet");
    let err = init(&dir, &["web1", "bad name"], &[], &[]).unwrap_err();
    assert!(err.to_string().contains("\"bad name\""), "{err}");
    let err = init(&dir, &[], &["ok"], &["not a host"]).unwrap_err();
    assert!(err.to_string().contains("\"not a host\""), "{err}");
    assert!(!dir.exists());
}

#[test]
fn init_dir_refuses_an_orphaned_ca_key() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("ca.key"), "precious").unwrap();
    let err = init(dir.path(), &[], &[], &[]).unwrap_err();
    assert!(matches!(err, CertError::CaCertMissing { .. }), "{err}");
    assert_eq!(
        fs::read_to_string(dir.path().join("ca.key")).unwrap(),
        "precious"
    );
}

#[test]
fn issue_into_uses_the_existing_ca_and_rotates() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let err = issue(dir, Role::Agent, "web1").unwrap_err();
    assert!(matches!(err, CertError::NoCa { .. }), "{err}");

    init(dir, &[], &[], &[]).unwrap();
    let action = issue(dir, Role::Agent, "web1").unwrap();
    assert_eq!(
        action.written(),
        vec![dir.join("agent-web1.key"), dir.join("agent-web1.pem")]
    );
    assert!(matches!(action.outcome, CertOutcome::Created(_)));
    assert_eq!(mode_of(&dir.join("agent-web1.key")), 0o600);
    let first = fs::read_to_string(dir.join("agent-web1.key")).unwrap();
    let again = issue(dir, Role::Agent, "web1").unwrap();
    assert!(again.to_string().starts_with("replaced "), "{again}");
    assert_ne!(
        fs::read_to_string(dir.join("agent-web1.key")).unwrap(),
        first
    );

    let ca = Ca::load(dir).unwrap();
    let operator = issue(dir, Role::Operator, "bob").unwrap();
    let cert = fs::read_to_string(&operator.cert).unwrap();
    with_cert(&cert, |cert| assert!(ca.is_issuer_of(cert)));
    assert_eq!(identity_of(&cert).role, Role::Operator);

    assert!(issue(dir, Role::Agent, "no/slash").is_err());
}

#[test]
fn tls_files_errors_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let files = TlsFiles::in_dir(dir.path(), Role::Operator, "alice");
    assert_eq!(files.cert, dir.path().join("operator-alice.pem"));
    let err = files.read().unwrap_err();
    assert!(err.to_string().contains("ca.pem"), "{err}");

    init(dir.path(), &[], &["alice"], &[]).unwrap();
    // Key and certificate swapped by mistake.
    let swapped = TlsFiles {
        key: files.cert.clone(),
        ..files.clone()
    };
    let err = swapped.read().unwrap_err();
    assert!(matches!(err, CertError::NotPem { .. }), "{err}");
    assert!(err.to_string().contains("operator-alice.pem"), "{err}");
    assert!(files.read().is_ok());
}

#[test]
fn ephemeral_fleet_has_one_certificate_per_party() {
    let fleet = ephemeral_fleet(&["a1", "a2"]).unwrap();
    assert_eq!(identity_of(&fleet.controller.cert).role, Role::Controller);
    assert_eq!(identity_of(&fleet.operator.cert).role, Role::Operator);
    let agents: Vec<_> = fleet
        .agents
        .iter()
        .map(|(name, pem)| (name.clone(), identity_of(&pem.cert)))
        .collect();
    assert_eq!(
        agents,
        vec![
            (
                "a1".to_owned(),
                PeerIdentity {
                    name: "a1".into(),
                    role: Role::Agent
                }
            ),
            (
                "a2".to_owned(),
                PeerIdentity {
                    name: "a2".into(),
                    role: Role::Agent
                }
            ),
        ]
    );
    assert!(ephemeral_fleet(&["bad name"]).is_err());
}

#[test]
fn role_round_trips_through_its_name() {
    for role in Role::ALL {
        assert_eq!(role.to_string().parse::<Role>(), Ok(role));
    }
    assert_eq!(
        "admin".parse::<Role>(),
        Err(UnknownRole("admin".to_owned()))
    );
}

#[test]
fn pem_debug_hides_the_key() {
    let pem = Pem {
        cert: "CERT".into(),
        key: "SECRET".into(),
    };
    let shown = format!("{pem:?}");
    assert!(shown.contains("CERT"));
    assert!(!shown.contains("SECRET"));
}
