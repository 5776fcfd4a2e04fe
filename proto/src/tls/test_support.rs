//! Throw-away fleets for tests (not for production): a CA and certificates it signs, with the
//! subject gameday uses (CN = name, OU = role), written as PEM files.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
};

/// A test CA.
pub struct TestCa {
    params: CertificateParams,
    key: KeyPair,
    /// The CA certificate, PEM.
    pub cert_pem: String,
}

/// The files of one party, as [`TestCa::write`] left them.
#[derive(Clone, Debug)]
pub struct TestFiles {
    /// The CA certificate.
    pub ca: PathBuf,
    /// The party's certificate.
    pub cert: PathBuf,
    /// The party's key.
    pub key: PathBuf,
}

impl TestCa {
    /// A new CA with common name `name`.
    pub fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert_pem = params.self_signed(&key).expect("CA certificate").pem();
        TestCa {
            params,
            key,
            cert_pem,
        }
    }

    /// An intermediate CA with common name `name`, signed by this one.
    pub fn intermediate(&self, name: &str) -> TestCa {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert_pem = params
            .signed_by(&key, &issuer)
            .expect("CA certificate")
            .pem();
        TestCa {
            params,
            key,
            cert_pem,
        }
    }

    /// A certificate and key (PEM) with CN = `name` and OU = `role`, valid for `localhost`
    /// and `127.0.0.1`.
    pub fn issue(&self, role: &str, name: &str) -> (String, String) {
        let mut params =
            CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).expect("SANs");
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, role);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().expect("key");
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).expect("certificate");
        (cert.pem(), key.serialize_pem())
    }

    /// Writes `ca.pem`, `NAME.pem` and `NAME.key` for a party into `dir`.
    pub fn write(&self, dir: &Path, role: &str, name: &str) -> TestFiles {
        let (cert, key) = self.issue(role, name);
        let files = TestFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}.key")),
        };
        std::fs::write(&files.ca, &self.cert_pem).expect("write ca.pem");
        std::fs::write(&files.cert, cert).expect("write certificate");
        std::fs::write(&files.key, key).expect("write key");
        files
    }
}
