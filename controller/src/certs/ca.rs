//! The fleet CA: generated once, stored as `ca.pem` + `ca.key`, and used to issue every
//! controller, agent and operator certificate.

use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use rcgen::string::{Ia5String, PrintableString};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, PublicKeyData,
    SanType,
};
use x509_parser::asn1_rs::Tag;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::ParsedExtension;
use x509_parser::x509::X509Name;

use super::files::{self, Existing, CERT_MODE, KEY_MODE};
use super::{fleet::validate_name, CertError, Pem, Role};

/// Organization written into every certificate gameday makes.
const ORGANIZATION: &str = "gameday";
/// How long a CA is valid by default (3650 days). Rotating a CA means re-issuing every
/// certificate, so it is long.
pub const CA_VALIDITY: Duration = Duration::from_secs(3650 * 24 * 3600);
/// How long a controller, agent or operator certificate is valid by default (730 days).
pub const LEAF_VALIDITY: Duration = Duration::from_secs(730 * 24 * 3600);
/// Certificates start being valid this long before they are made, for hosts whose clocks lag.
const CLOCK_SKEW: Duration = Duration::from_secs(3600);
/// Subject alternative names every controller certificate carries, for local use.
const CONTROLLER_DEFAULT_SANS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// The fleet's certificate authority: its certificate and signing key.
pub struct Ca {
    cert_pem: String,
    key: KeyPair,
    /// The CA's subject and key identifier, as rcgen needs them to sign.
    issuer: CertificateParams,
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ca")
            .field("cert_pem", &self.cert_pem)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl Ca {
    /// Generates a new CA (ECDSA P-256, valid for [`CA_VALIDITY`]) with the given common name.
    pub fn generate(common_name: &str) -> Result<Ca, CertError> {
        Ca::generate_valid_for(common_name, CA_VALIDITY)
    }

    /// Generates a new CA valid for `validity` from now.
    pub fn generate_valid_for(common_name: &str, validity: Duration) -> Result<Ca, CertError> {
        if common_name.is_empty()
            || common_name.chars().count() > 64
            || common_name.chars().any(char::is_control)
        {
            return Err(CertError::InvalidName {
                value: common_name.to_owned(),
                reason: "a CA common name has 1 to 64 printable characters",
            });
        }
        let key = KeyPair::generate().map_err(CertError::generate("CA key"))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = fleet_name(None, common_name);
        // The CA signs leaves only, never intermediate CAs.
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        set_validity(&mut params, validity);
        let cert = params
            .self_signed(&key)
            .map_err(CertError::generate("CA certificate"))?;
        Ok(Ca {
            cert_pem: cert.pem(),
            key,
            issuer: params,
        })
    }

    /// Loads the CA from `DIR/ca.pem` and `DIR/ca.key`, checking that the certificate is a CA
    /// and that the key belongs to it.
    pub fn load(dir: &Path) -> Result<Ca, CertError> {
        let (cert_path, key_path) = (dir.join("ca.pem"), dir.join("ca.key"));
        match (cert_path.exists(), key_path.exists()) {
            (false, false) => {
                return Err(CertError::NoCa {
                    dir: dir.to_owned(),
                })
            }
            (false, true) => {
                return Err(CertError::CaCertMissing {
                    cert: cert_path,
                    key: key_path,
                })
            }
            _ => {}
        }
        let cert_pem = files::read_pem(&cert_path, "CERTIFICATE", "certificate")?;
        let key_pem = files::read_pem(&key_path, "PRIVATE KEY", "private key")?;
        Ca::from_pem(cert_pem, &key_pem, &cert_path, &key_path)
    }

    fn from_pem(
        cert_pem: String,
        key_pem: &str,
        cert_path: &Path,
        key_path: &Path,
    ) -> Result<Ca, CertError> {
        let bad_cert = |reason: String| CertError::BadCaCert {
            path: cert_path.to_owned(),
            reason,
        };
        let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
            .map_err(|e| bad_cert(format!("not PEM: {e}")))?;
        let cert = pem
            .parse_x509()
            .map_err(|e| bad_cert(format!("not an X.509 certificate: {e}")))?;
        if !cert.is_ca() {
            return Err(bad_cert(
                "not a CA certificate (basicConstraints CA is false)".into(),
            ));
        }
        let key = KeyPair::from_pem(key_pem).map_err(|source| CertError::BadCaKey {
            path: key_path.to_owned(),
            source,
        })?;
        if key.subject_public_key_info() != cert.public_key().raw {
            return Err(CertError::CaKeyMismatch {
                cert: cert_path.to_owned(),
                key: key_path.to_owned(),
            });
        }
        let issuer = issuer_params(&cert).map_err(bad_cert)?;
        Ok(Ca {
            cert_pem,
            key,
            issuer,
        })
    }

    /// The CA certificate, PEM-encoded: what every party trusts.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Issues a certificate with CN = `name` and OU = `role`, with a fresh ECDSA P-256 key.
    ///
    /// Controller certificates are for serving (serverAuth, plus clientAuth) and carry the SANs
    /// `localhost`, `127.0.0.1` and `::1` before `sans`. Agent and operator certificates are
    /// client certificates (clientAuth) and carry only `sans`, usually none. In `sans`, IP
    /// addresses become IP SANs and everything else DNS SANs.
    pub fn issue(&self, role: Role, name: &str, sans: &[String]) -> Result<Pem, CertError> {
        self.issue_valid_for(role, name, sans, LEAF_VALIDITY)
    }

    /// [`Ca::issue`], valid for `validity` from now.
    pub fn issue_valid_for(
        &self,
        role: Role,
        name: &str,
        sans: &[String],
        validity: Duration,
    ) -> Result<Pem, CertError> {
        validate_name(name)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = fleet_name(Some(role), name);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = match role {
            Role::Controller => vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
            Role::Agent | Role::Operator => vec![ExtendedKeyUsagePurpose::ClientAuth],
        };
        let defaults = match role {
            Role::Controller => &CONTROLLER_DEFAULT_SANS[..],
            Role::Agent | Role::Operator => &[],
        };
        for san in defaults
            .iter()
            .copied()
            .chain(sans.iter().map(String::as_str))
        {
            let san = parse_san(san)?;
            if !params.subject_alt_names.contains(&san) {
                params.subject_alt_names.push(san);
            }
        }
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params, validity);

        let what = format!("{role} certificate for {name}");
        let key = KeyPair::generate().map_err(CertError::generate(what.clone()))?;
        let issuer = Issuer::from_params(&self.issuer, &self.key);
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(CertError::generate(what))?;
        Ok(Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        })
    }

    /// Writes `DIR/ca.key` (mode 0600) and `DIR/ca.pem` (mode 0644), creating `DIR` (0700) if
    /// needed. Refuses to replace an existing CA: certificates it signed would stop working.
    pub fn write(&self, dir: &Path) -> Result<(), CertError> {
        files::ensure_dir(dir)?;
        let (cert_path, key_path) = (dir.join("ca.pem"), dir.join("ca.key"));
        for path in [&cert_path, &key_path] {
            if path.exists() {
                return Err(CertError::CaExists {
                    path: path.to_owned(),
                });
            }
        }
        // The key goes first: `ca.pem` is what marks a complete CA (see `fleet::init_dir`).
        files::write_atomic(
            &key_path,
            &self.key.serialize_pem(),
            KEY_MODE,
            Existing::Refuse,
        )?;
        files::write_atomic(&cert_path, &self.cert_pem, CERT_MODE, Existing::Refuse)?;
        files::sync_dir(dir)
    }

    /// Whether the certificate `cert` names this CA as its issuer (subject and key identifier).
    /// This is a bookkeeping check for re-runs of `certs init`, not a signature verification.
    pub(crate) fn is_issuer_of(&self, cert: &X509Certificate<'_>) -> bool {
        let Ok((_, pem)) = x509_parser::pem::parse_x509_pem(self.cert_pem.as_bytes()) else {
            return false;
        };
        let Ok(ca) = pem.parse_x509() else {
            return false;
        };
        if cert.issuer().as_raw() != ca.subject().as_raw() {
            return false;
        }
        match (authority_key_id(cert), subject_key_id(&ca)) {
            (Some(aki), Some(ski)) => aki == ski,
            _ => true,
        }
    }
}

/// The subject of a fleet certificate: the organization, the role as the organizational unit
/// (leaves only: the CA has none), and the common name.
fn fleet_name(role: Option<Role>, common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, ORGANIZATION);
    if let Some(role) = role {
        dn.push(DnType::OrganizationalUnitName, role.as_str());
    }
    dn.push(DnType::CommonName, common_name);
    dn
}

/// Makes `params` valid from `CLOCK_SKEW` ago until `length` from now.
fn set_validity(params: &mut CertificateParams, length: Duration) {
    // x509-parser's clock gives the `time` type rcgen wants without a direct dependency on it.
    let now = x509_parser::time::ASN1Time::now().to_datetime();
    params.not_before = now - CLOCK_SKEW;
    params.not_after = now + length;
}

/// Parses one SAN: an IP address, or a DNS name of letters, digits, `-` and `.`.
pub(super) fn parse_san(value: &str) -> Result<SanType, CertError> {
    if let Ok(ip) = value.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let invalid = || CertError::InvalidSan {
        value: value.to_owned(),
    };
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if value.len() > 253 || !value.split('.').all(label_ok) {
        return Err(invalid());
    }
    Ia5String::try_from(value)
        .map(SanType::DnsName)
        .map_err(|_| invalid())
}

/// What rcgen needs to sign with a CA loaded from disk: its subject exactly as encoded, and
/// its subject key identifier (so issued certificates' authority key identifier matches).
fn issuer_params(cert: &X509Certificate<'_>) -> Result<CertificateParams, String> {
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(cert.subject())?;
    if let Some(ski) = subject_key_id(cert) {
        params.key_identifier_method = KeyIdMethod::PreSpecified(ski.to_vec());
    }
    Ok(params)
}

/// Rebuilds an rcgen distinguished name from a parsed one, keeping each value's string type
/// so the issuer name in issued certificates is byte-identical to the CA's subject.
fn distinguished_name(name: &X509Name<'_>) -> Result<DistinguishedName, String> {
    let mut dn = DistinguishedName::new();
    for rdn in name.iter() {
        let mut attrs = rdn.iter();
        let (Some(attr), None) = (attrs.next(), attrs.next()) else {
            return Err(
                "subject has a multi-valued or empty RDN, which gameday cannot sign with".into(),
            );
        };
        let oid: Vec<u64> = attr
            .attr_type()
            .iter()
            .ok_or("subject has an attribute type OID too large to handle")?
            .collect();
        let value = attr.attr_value();
        let text = std::str::from_utf8(value.data)
            .map_err(|_| format!("subject attribute {} is not text", attr.attr_type()))?;
        let value = match value.header.tag() {
            Tag::Utf8String => DnValue::Utf8String(text.to_owned()),
            Tag::PrintableString => PrintableString::try_from(text)
                .map(DnValue::PrintableString)
                .map_err(|e| e.to_string())?,
            Tag::Ia5String => Ia5String::try_from(text)
                .map(DnValue::Ia5String)
                .map_err(|e| e.to_string())?,
            tag => {
                return Err(format!(
                    "subject attribute {} has string type {tag}, which gameday cannot sign with",
                    attr.attr_type()
                ))
            }
        };
        dn.push(DnType::from_oid(&oid), value);
    }
    Ok(dn)
}

fn subject_key_id<'a>(cert: &'a X509Certificate<'_>) -> Option<&'a [u8]> {
    cert.iter_extensions()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0),
            _ => None,
        })
}

fn authority_key_id<'a>(cert: &'a X509Certificate<'_>) -> Option<&'a [u8]> {
    cert.iter_extensions()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                aki.key_identifier.as_ref().map(|id| id.0)
            }
            _ => None,
        })
}
