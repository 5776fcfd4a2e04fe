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

#[test]
fn init_dir_writes_every_party_with_private_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("fleet");
    let written = init_dir(
        &dir,
        &strings(&["web1", "db1"]),
        &strings(&["alice"]),
        &strings(&["gameday.internal"]),
    )
    .unwrap();
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
    assert_eq!(written.len(), expected.len());
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
fn init_dir_reuses_the_ca_and_keeps_what_is_current() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    init_dir(dir, &strings(&["web1"]), &[], &[]).unwrap();
    let read = |name: &str| fs::read_to_string(dir.join(name)).unwrap();
    let (ca_pem, ca_key, web1) = (read("ca.pem"), read("ca.key"), read("agent-web1.pem"));

    let written = init_dir(dir, &strings(&["web1", "web2"]), &[], &[]).unwrap();
    assert_eq!(read("ca.pem"), ca_pem);
    assert_eq!(read("ca.key"), ca_key);
    assert_eq!(read("agent-web1.pem"), web1);
    assert_eq!(
        written,
        vec![dir.join("agent-web2.key"), dir.join("agent-web2.pem")]
    );
    with_cert(&read("agent-web2.pem"), |cert| {
        assert!(Ca::load(dir).unwrap().is_issuer_of(cert));
    });

    // A new controller SAN re-issues the controller certificate only.
    let written = init_dir(dir, &[], &[], &strings(&["10.1.2.3"])).unwrap();
    assert_eq!(
        written,
        vec![dir.join("controller.key"), dir.join("controller.pem")]
    );
    // A lost key re-issues its certificate.
    fs::remove_file(dir.join("agent-web1.key")).unwrap();
    let written = init_dir(dir, &strings(&["web1"]), &[], &strings(&["10.1.2.3"])).unwrap();
    assert_eq!(
        written,
        vec![dir.join("agent-web1.key"), dir.join("agent-web1.pem")]
    );
    assert_eq!(read("ca.pem"), ca_pem);
}

#[test]
fn init_dir_validates_everything_before_writing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("fleet");
    let err = init_dir(&dir, &strings(&["web1", "bad name"]), &[], &[]).unwrap_err();
    assert!(err.to_string().contains("\"bad name\""), "{err}");
    let err = init_dir(&dir, &[], &strings(&["ok"]), &strings(&["not a host"])).unwrap_err();
    assert!(err.to_string().contains("\"not a host\""), "{err}");
    assert!(!dir.exists());
}

#[test]
fn init_dir_refuses_an_orphaned_ca_key() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("ca.key"), "precious").unwrap();
    let err = init_dir(dir.path(), &[], &[], &[]).unwrap_err();
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
    let err = issue_into(dir, Role::Agent, "web1").unwrap_err();
    assert!(matches!(err, CertError::NoCa { .. }), "{err}");

    init_dir(dir, &[], &[], &[]).unwrap();
    let written = issue_into(dir, Role::Agent, "web1").unwrap();
    assert_eq!(
        written,
        vec![dir.join("agent-web1.key"), dir.join("agent-web1.pem")]
    );
    assert_eq!(mode_of(&dir.join("agent-web1.key")), 0o600);
    let first = fs::read_to_string(dir.join("agent-web1.key")).unwrap();
    issue_into(dir, Role::Agent, "web1").unwrap();
    assert_ne!(
        fs::read_to_string(dir.join("agent-web1.key")).unwrap(),
        first
    );

    let ca = Ca::load(dir).unwrap();
    let operator = issue_into(dir, Role::Operator, "bob").unwrap();
    let cert = fs::read_to_string(&operator[1]).unwrap();
    with_cert(&cert, |cert| assert!(ca.is_issuer_of(cert)));
    assert_eq!(identity_of(&cert).role, Role::Operator);

    assert!(issue_into(dir, Role::Agent, "no/slash").is_err());
}

#[test]
fn tls_files_errors_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let files = TlsFiles::in_dir(dir.path(), Role::Operator, "alice");
    assert_eq!(files.cert, dir.path().join("operator-alice.pem"));
    let err = files.read().unwrap_err();
    assert!(err.to_string().contains("ca.pem"), "{err}");

    init_dir(dir.path(), &[], &strings(&["alice"]), &[]).unwrap();
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
