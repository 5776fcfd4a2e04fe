//! Who is calling: a gRPC peer's name and role, read from the client certificate that TLS
//! verified against the fleet CA, never from what the peer says about itself.

use std::fmt;

use x509_parser::certificate::X509Certificate;
use x509_parser::x509::AttributeTypeAndValue;

use crate::certs::Role;
use crate::server::status::ApiError;

/// The verified identity of a peer: its certificate's common name and organizational unit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PeerIdentity {
    /// The certificate's common name: the agent's or operator's name.
    pub name: String,
    /// The certificate's organizational unit.
    pub role: Role,
}

impl fmt::Display for PeerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.role, self.name)
    }
}

/// Why a certificate does not say who its holder is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The bytes are not a DER X.509 certificate.
    #[error("client certificate is not a valid X.509 certificate: {0}")]
    NotX509(String),
    /// The subject has no common name.
    #[error("client certificate has no common name (CN)")]
    MissingName,
    /// The subject has no organizational unit, so its role is unknown.
    #[error("client certificate for {name} has no organizational unit (OU) naming its role")]
    MissingRole {
        /// The certificate's common name.
        name: String,
    },
    /// The subject has several common names or organizational units.
    #[error("client certificate has more than one {field}; its identity is ambiguous")]
    Ambiguous {
        /// `common name (CN)` or `organizational unit (OU)`.
        field: &'static str,
    },
    /// A subject field is not readable text.
    #[error("client certificate's {field} is not text")]
    NotText {
        /// `common name (CN)` or `organizational unit (OU)`.
        field: &'static str,
    },
    /// The organizational unit names no role.
    #[error(
        "client certificate for {name} has role {role:?}; expected controller, agent or operator"
    )]
    UnknownRole {
        /// The certificate's common name.
        name: String,
        /// The organizational unit found.
        role: String,
    },
}

const CN: &str = "common name (CN)";
const OU: &str = "organizational unit (OU)";

/// The identity of the caller of a gRPC request on a mutual-TLS server.
///
/// tonic hands over the client's certificate chain only after rustls verified it against the
/// CA given to [`crate::certs::server_tls`]; the leaf is the caller. Any failure is
/// `UNAUTHENTICATED`.
pub fn from_request<T>(req: &tonic::Request<T>) -> Result<PeerIdentity, ApiError> {
    let certs = req.peer_certs().ok_or(ApiError::NoCertificate)?;
    let leaf = certs.first().ok_or(ApiError::NoCertificate)?;
    parse_leaf(leaf).map_err(|e| ApiError::BadCertificate(e.to_string()))
}

/// Refuses, with `PERMISSION_DENIED`, a peer whose certificate is not for `role`.
pub fn require_role(id: &PeerIdentity, role: Role) -> Result<(), ApiError> {
    if id.role == role {
        Ok(())
    } else {
        Err(ApiError::WrongRole {
            peer: id.clone(),
            needed: role,
        })
    }
}

/// Reads the identity (CN, and OU as the role) from a DER certificate. Pure: does not check
/// signatures or validity, which is TLS's job before this is called.
pub fn parse_leaf(der: &[u8]) -> Result<PeerIdentity, IdentityError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| IdentityError::NotX509(e.to_string()))?;
    let name = single_text(&cert, CN, |c| c.subject().iter_common_name())?
        .ok_or(IdentityError::MissingName)?;
    let ou = single_text(&cert, OU, |c| c.subject().iter_organizational_unit())?
        .ok_or_else(|| IdentityError::MissingRole { name: name.clone() })?;
    let role = ou.parse().map_err(|_| IdentityError::UnknownRole {
        name: name.clone(),
        role: ou,
    })?;
    Ok(PeerIdentity { name, role })
}

/// The one value of a subject field, if present; more than one is an error.
fn single_text<'c, I>(
    cert: &'c X509Certificate<'c>,
    field: &'static str,
    values: impl FnOnce(&'c X509Certificate<'c>) -> I,
) -> Result<Option<String>, IdentityError>
where
    I: Iterator<Item = &'c AttributeTypeAndValue<'c>>,
{
    let mut values = values(cert);
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(IdentityError::Ambiguous { field });
    }
    first
        .as_str()
        .map(|s| Some(s.to_owned()))
        .map_err(|_| IdentityError::NotText { field })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::Ca;
    use rcgen::{CertificateParams, DnType, KeyPair};

    fn der_of(pem: &str) -> Vec<u8> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        pem.contents
    }

    fn self_signed_with(fields: &[(DnType, &str)]) -> Vec<u8> {
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (ty, value) in fields {
            params.distinguished_name.push(ty.clone(), *value);
        }
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn reads_name_and_role_of_issued_certificates() {
        let ca = Ca::generate("test CA").unwrap();
        for role in Role::ALL {
            let pem = ca.issue(role, "web-1", &[]).unwrap();
            let id = parse_leaf(&der_of(&pem.cert)).unwrap();
            assert_eq!(
                id,
                PeerIdentity {
                    name: "web-1".into(),
                    role
                }
            );
        }
    }

    #[test]
    fn rejects_certificates_without_a_usable_identity() {
        let no_ou = self_signed_with(&[(DnType::CommonName, "web-1")]);
        assert_eq!(
            parse_leaf(&no_ou),
            Err(IdentityError::MissingRole {
                name: "web-1".into()
            })
        );

        let no_cn = self_signed_with(&[(DnType::OrganizationalUnitName, "agent")]);
        assert_eq!(parse_leaf(&no_cn), Err(IdentityError::MissingName));

        let bad_role = self_signed_with(&[
            (DnType::OrganizationalUnitName, "root"),
            (DnType::CommonName, "web-1"),
        ]);
        let err = parse_leaf(&bad_role).unwrap_err();
        assert_eq!(
            err.to_string(),
            "client certificate for web-1 has role \"root\"; expected controller, agent or operator"
        );

        assert!(matches!(
            parse_leaf(b"not der"),
            Err(IdentityError::NotX509(_))
        ));
    }

    #[test]
    fn rejects_ambiguous_subjects() {
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, "agent");
        params.distinguished_name.push(DnType::CommonName, "a");
        // rcgen keeps one value per type; add a second CN under its raw OID.
        params
            .distinguished_name
            .push(DnType::CustomDnType(vec![2, 5, 4, 3]), "b");
        let key = KeyPair::generate().unwrap();
        let der = params.self_signed(&key).unwrap().der().to_vec();
        assert_eq!(
            parse_leaf(&der),
            Err(IdentityError::Ambiguous { field: CN })
        );
    }

    #[test]
    fn require_role_names_both_roles() {
        let id = PeerIdentity {
            name: "web-1".into(),
            role: Role::Agent,
        };
        assert!(require_role(&id, Role::Agent).is_ok());
        let status = tonic::Status::from(require_role(&id, Role::Operator).unwrap_err());
        assert_eq!(status.code(), tonic::Code::PermissionDenied);
        assert_eq!(
            status.message(),
            "certificate for web-1 is an agent certificate; this call needs operator"
        );
    }

    #[test]
    fn a_request_without_tls_is_unauthenticated() {
        let status = tonic::Status::from(from_request(&tonic::Request::new(())).unwrap_err());
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
        assert_eq!(status.message(), "no client certificate");
    }
}
