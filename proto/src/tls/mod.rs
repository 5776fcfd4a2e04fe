//! The TLS files every party reads at start (the fleet CA, its own certificate and its own key),
//! parsed and checked together, so a wrong file is named before anything dials or listens
//! instead of surfacing later as a bare `transport error`.
//!
//! Checked: each file is readable PEM of the right kind; the CA file holds a CA certificate;
//! the certificate is X.509, currently valid, and signed by the CA (directly or through
//! intermediates that follow it in its file); the key is one rustls can use and belongs to the
//! certificate. What the certificate's subject must say is the caller's business (see
//! [`TlsMaterial::common_name`] and [`TlsMaterial::role`]).

use std::fmt;
use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::certificate::X509Certificate;

/// How many intermediates a certificate file may carry between the leaf and the CA.
const MAX_CHAIN: usize = 8;

/// Which of the three files (`[tls]` keys `ca`, `cert`, `key` in both configs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsFile {
    /// The fleet CA certificate (`tls.ca`).
    Ca,
    /// This party's certificate (`tls.cert`).
    Cert,
    /// This party's private key (`tls.key`).
    Key,
}

impl TlsFile {
    /// The config key naming the file: `tls.ca`, `tls.cert` or `tls.key`.
    pub fn config_key(self) -> &'static str {
        match self {
            TlsFile::Ca => "tls.ca",
            TlsFile::Cert => "tls.cert",
            TlsFile::Key => "tls.key",
        }
    }
}

/// Paths of the three files.
#[derive(Clone, Copy, Debug)]
pub struct TlsPaths<'a> {
    /// The fleet CA certificate.
    pub ca: &'a Path,
    /// This party's certificate.
    pub cert: &'a Path,
    /// This party's private key.
    pub key: &'a Path,
}

/// A TLS file that cannot be used; the message starts with the config key and the path.
#[derive(Debug, thiserror::Error)]
#[error("{} ({}): {problem}", file.config_key(), path.display())]
pub struct TlsFileError {
    /// Which file.
    pub file: TlsFile,
    /// Its path.
    pub path: PathBuf,
    /// What is wrong with it (boxed: some problems carry several names).
    pub problem: Box<TlsProblem>,
}

/// What is wrong with a TLS file.
#[derive(Debug, thiserror::Error)]
pub enum TlsProblem {
    /// The file could not be read.
    #[error("cannot read the file: {0}")]
    Read(#[source] std::io::Error),
    /// The file holds no PEM block of the expected kind, or a broken one.
    #[error("expected PEM {expected} (`-----BEGIN {label}-----`), {found}")]
    NotPem {
        /// What the file should hold, e.g. `certificate`.
        expected: &'static str,
        /// The PEM label expected, e.g. `CERTIFICATE`.
        label: &'static str,
        /// What was found instead.
        found: String,
    },
    /// A PEM certificate block that is not an X.509 certificate.
    #[error("not a valid X.509 certificate: {0}")]
    NotX509(String),
    /// No certificate in the CA file is a CA.
    #[error("holds no CA certificate (the certificate for {subject} is not a CA); expected the fleet CA, `ca.pem` from `gameday certs init`")]
    NotCa {
        /// The subject of the first certificate in the file.
        subject: String,
    },
    /// The certificate is outside its validity period.
    #[error("the certificate for {subject} is valid from {not_before} to {not_after}, not now")]
    NotValidNow {
        /// The certificate's subject.
        subject: String,
        /// Start of validity.
        not_before: String,
        /// End of validity.
        not_after: String,
    },
    /// The certificate was not signed by the CA.
    #[error("the certificate for {subject} was issued by {issuer}, not by the CA in {ca} ({ca_subject}); the other side would refuse it")]
    NotSignedByCa {
        /// The certificate's subject.
        subject: String,
        /// Its issuer.
        issuer: String,
        /// The CA file.
        ca: String,
        /// The CA's subject.
        ca_subject: String,
    },
    /// The key is not a kind rustls can sign with.
    #[error("unusable private key: {0}")]
    BadKey(#[source] rustls::Error),
    /// The key is not the certificate's.
    #[error("this private key does not belong to the certificate {cert}")]
    KeyMismatch {
        /// The certificate file.
        cert: String,
    },
}

/// The three files, read and checked; the PEM texts are what TLS configs are built from.
#[derive(Clone)]
pub struct TlsMaterial {
    /// The CA file's text.
    pub ca_pem: String,
    /// The certificate file's text.
    pub cert_pem: String,
    /// The key file's text.
    pub key_pem: String,
    common_name: Option<String>,
    role: Option<String>,
}

impl fmt::Debug for TlsMaterial {
    // Keys must not end up in logs through a stray `{:?}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("common_name", &self.common_name)
            .field("role", &self.role)
            .field("key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl TlsMaterial {
    /// The certificate's common name (CN): the party's name in a gameday fleet.
    pub fn common_name(&self) -> Option<&str> {
        self.common_name.as_deref()
    }

    /// The certificate's organizational unit (OU): `controller`, `agent` or `operator` in a
    /// gameday fleet.
    pub fn role(&self) -> Option<&str> {
        self.role.as_deref()
    }
}

/// Reads and checks the three files.
pub fn load(paths: TlsPaths<'_>) -> Result<TlsMaterial, TlsFileError> {
    let read = |file, path: &Path| {
        std::fs::read_to_string(path).map_err(|e| TlsFileError {
            file,
            path: path.to_path_buf(),
            problem: Box::new(TlsProblem::Read(e)),
        })
    };
    let ca_pem = read(TlsFile::Ca, paths.ca)?;
    let cert_pem = read(TlsFile::Cert, paths.cert)?;
    let key_pem = read(TlsFile::Key, paths.key)?;
    let (common_name, role) = check(paths, &ca_pem, &cert_pem, &key_pem)?;
    Ok(TlsMaterial {
        ca_pem,
        cert_pem,
        key_pem,
        common_name,
        role,
    })
}

/// Checks the three texts; returns the certificate's CN and OU.
fn check(
    paths: TlsPaths<'_>,
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<(Option<String>, Option<String>), TlsFileError> {
    let fail = |file, path: &Path| {
        let path = path.to_path_buf();
        move |problem| TlsFileError {
            file,
            path,
            problem: Box::new(problem),
        }
    };
    let ca_ders = certificates(ca_pem).map_err(fail(TlsFile::Ca, paths.ca))?;
    let cas = parse_all(&ca_ders).map_err(fail(TlsFile::Ca, paths.ca))?;
    if !cas.iter().any(|ca| ca.is_ca()) {
        return Err(fail(TlsFile::Ca, paths.ca)(TlsProblem::NotCa {
            subject: cas[0].subject().to_string(),
        }));
    }
    let cert_ders = certificates(cert_pem).map_err(fail(TlsFile::Cert, paths.cert))?;
    let chain = parse_all(&cert_ders).map_err(fail(TlsFile::Cert, paths.cert))?;
    let leaf = &chain[0];
    let subject = leaf.subject().to_string();
    if !leaf.validity().is_valid() {
        return Err(fail(TlsFile::Cert, paths.cert)(TlsProblem::NotValidNow {
            subject,
            not_before: leaf.validity().not_before.to_string(),
            not_after: leaf.validity().not_after.to_string(),
        }));
    }
    if !chains_to(leaf, &chain[1..], &cas) {
        return Err(fail(TlsFile::Cert, paths.cert)(TlsProblem::NotSignedByCa {
            subject,
            issuer: leaf.issuer().to_string(),
            ca: paths.ca.display().to_string(),
            ca_subject: cas[0].subject().to_string(),
        }));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| fail(TlsFile::Key, paths.key)(not_pem("private key", "PRIVATE KEY", e)))?;
    let signing_key = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| fail(TlsFile::Key, paths.key)(TlsProblem::BadKey(e)))?;
    let certified = rustls::sign::CertifiedKey::new(vec![cert_ders[0].clone()], signing_key);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(_) => {
            return Err(fail(TlsFile::Key, paths.key)(TlsProblem::KeyMismatch {
                cert: paths.cert.display().to_string(),
            }))
        }
    }
    let text = |attr: Option<&x509_parser::x509::AttributeTypeAndValue<'_>>| {
        attr.and_then(|a| a.as_str().ok()).map(str::to_owned)
    };
    let common_name = text(leaf.subject().iter_common_name().next());
    let role = text(leaf.subject().iter_organizational_unit().next());
    Ok((common_name, role))
}

/// The DER certificates in a PEM text; at least one.
fn certificates(pem: &str) -> Result<Vec<CertificateDer<'static>>, TlsProblem> {
    let ders = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| not_pem("certificate", "CERTIFICATE", e))?;
    if ders.is_empty() {
        return Err(not_pem(
            "certificate",
            "CERTIFICATE",
            rustls::pki_types::pem::Error::NoItemsFound,
        ));
    }
    Ok(ders)
}

fn parse_all<'a>(ders: &'a [CertificateDer<'_>]) -> Result<Vec<X509Certificate<'a>>, TlsProblem> {
    ders.iter()
        .map(|der| {
            x509_parser::parse_x509_certificate(der)
                .map(|(_, cert)| cert)
                .map_err(|e| TlsProblem::NotX509(e.to_string()))
        })
        .collect()
}

/// Whether `leaf` is signed by one of `cas`, directly or through `intermediates`.
fn chains_to(
    leaf: &X509Certificate<'_>,
    intermediates: &[X509Certificate<'_>],
    cas: &[X509Certificate<'_>],
) -> bool {
    let signed_by = |cert: &X509Certificate<'_>, by: &X509Certificate<'_>| {
        cert.verify_signature(Some(by.public_key())).is_ok()
    };
    let mut current = leaf;
    for _ in 0..=MAX_CHAIN {
        if cas.iter().any(|ca| signed_by(current, ca)) {
            return true;
        }
        match intermediates.iter().find(|i| signed_by(current, i)) {
            Some(next) if !std::ptr::eq(next, current) => current = next,
            _ => return false,
        }
    }
    false
}

fn not_pem(
    expected: &'static str,
    label: &'static str,
    error: rustls::pki_types::pem::Error,
) -> TlsProblem {
    use rustls::pki_types::pem::Error;
    let found = match error {
        Error::NoItemsFound => "found none".to_string(),
        Error::MissingSectionEnd { .. } => "found a block without its END line".to_string(),
        Error::IllegalSectionStart { .. } => "found a malformed BEGIN line".to_string(),
        Error::Base64Decode(e) => format!("found a block that is not valid base64 ({e})"),
        Error::SectionTooLarge => "found a block larger than 256 MB".to_string(),
        other => format!("could not read it ({other})"),
    };
    TlsProblem::NotPem {
        expected,
        label,
        found,
    }
}

/// TLS alerts by which a peer says it refuses our certificate (rather than the network or
/// the server failing): an agent stops retrying on them, the CLI says which certificate to fix.
pub const CERTIFICATE_REFUSED_ALERTS: [rustls::AlertDescription; 9] = [
    rustls::AlertDescription::BadCertificate,
    rustls::AlertDescription::UnsupportedCertificate,
    rustls::AlertDescription::CertificateRevoked,
    rustls::AlertDescription::CertificateExpired,
    rustls::AlertDescription::CertificateUnknown,
    rustls::AlertDescription::UnknownCA,
    rustls::AlertDescription::AccessDenied,
    rustls::AlertDescription::CertificateRequired,
    // What rustls sends when a certificate's signature does not verify against the peer's CA
    // (another fleet's CA with the same name, say).
    rustls::AlertDescription::DecryptError,
];

#[cfg(any(test, feature = "test-support"))]
pub mod test_support;

#[cfg(test)]
mod tests;
