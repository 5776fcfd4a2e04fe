use super::test_support::{TestCa, TestFiles};
use super::*;

fn paths(files: &TestFiles) -> TlsPaths<'_> {
    TlsPaths {
        ca: &files.ca,
        cert: &files.cert,
        key: &files.key,
    }
}

fn error(files: &TestFiles) -> String {
    load(paths(files)).unwrap_err().to_string()
}

#[test]
fn reads_a_consistent_set_and_its_subject() {
    let dir = tempfile::tempdir().unwrap();
    let files = TestCa::new("fleet").write(dir.path(), "agent", "web-1");
    let material = load(paths(&files)).unwrap();
    assert_eq!(material.common_name(), Some("web-1"));
    assert_eq!(material.role(), Some("agent"));
    assert!(!format!("{material:?}").contains("PRIVATE"));
}

#[test]
fn names_an_unreadable_or_garbage_file() {
    let dir = tempfile::tempdir().unwrap();
    let files = TestCa::new("fleet").write(dir.path(), "agent", "web-1");
    std::fs::write(&files.ca, "garbage\n").unwrap();
    let err = error(&files);
    assert_eq!(
        err,
        format!(
            "tls.ca ({}): expected PEM certificate (`-----BEGIN CERTIFICATE-----`), found none",
            files.ca.display()
        )
    );
    std::fs::write(
        &files.ca,
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    assert!(
        error(&files).contains("tls.ca") && error(&files).contains("not a valid X.509"),
        "{}",
        error(&files)
    );
    std::fs::remove_file(&files.key).unwrap();
    let mut missing = files.clone();
    missing.ca = dir.path().join("ca.pem");
    std::fs::write(&missing.ca, TestCa::new("x").cert_pem).unwrap();
    let err = error(&missing);
    assert!(err.starts_with("tls.key ("), "{err}");
    assert!(err.contains("cannot read the file"), "{err}");
}

#[test]
fn refuses_a_leaf_as_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let files = TestCa::new("fleet").write(dir.path(), "agent", "web-1");
    std::fs::copy(&files.cert, &files.ca).unwrap();
    let err = error(&files);
    assert!(err.starts_with("tls.ca ("), "{err}");
    assert!(err.contains("holds no CA certificate"), "{err}");
}

#[test]
fn refuses_a_certificate_from_another_ca() {
    let dir = tempfile::tempdir().unwrap();
    let files = TestCa::new("fleet").write(dir.path(), "agent", "web-1");
    std::fs::write(&files.ca, TestCa::new("other fleet").cert_pem).unwrap();
    let err = error(&files);
    assert!(err.starts_with("tls.cert ("), "{err}");
    assert!(
        err.contains("was issued by CN=fleet, not by the CA in")
            && err.contains("(CN=other fleet)"),
        "{err}"
    );
}

#[test]
fn refuses_a_key_of_another_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("fleet");
    let files = ca.write(dir.path(), "agent", "web-1");
    let (_, other_key) = ca.issue("agent", "web-2");
    std::fs::write(&files.key, other_key).unwrap();
    let err = error(&files);
    assert_eq!(
        err,
        format!(
            "tls.key ({}): this private key does not belong to the certificate {}",
            files.key.display(),
            files.cert.display()
        )
    );
    // A certificate where the key should be.
    std::fs::copy(&files.cert, &files.key).unwrap();
    let err = error(&files);
    assert!(
        err.contains("expected PEM private key (`-----BEGIN PRIVATE KEY-----`), found none"),
        "{err}"
    );
}

#[test]
fn accepts_intermediates_after_the_leaf() {
    let dir = tempfile::tempdir().unwrap();
    let root = TestCa::new("root");
    let files = root.write(dir.path(), "agent", "web-1");
    let intermediate = root.intermediate("intermediate");
    let (leaf, key) = intermediate.issue("agent", "web-1");
    std::fs::write(&files.key, &key).unwrap();
    std::fs::write(&files.cert, &leaf).unwrap();
    assert!(error(&files).contains("was issued by CN=intermediate, not by the CA"));
    std::fs::write(&files.cert, format!("{leaf}{}", intermediate.cert_pem)).unwrap();
    load(paths(&files)).unwrap();
}
