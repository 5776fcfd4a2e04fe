//! Certificates to tonic TLS configurations: the controller serves mutual TLS only, agents and
//! operators dial it with their own certificate.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

use super::files;
use super::fleet::leaf_file_stem;
use super::{CertError, Pem, Role};

/// A TLS handshake that takes longer than this is dropped, so idle half-open connections
/// cannot pile up on the controller.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The controller's server TLS: presents `controller` and requires every client to present a
/// certificate signed by the fleet CA (`ca_pem`); a client without one fails the handshake.
pub fn server_tls(ca_pem: &str, controller: &Pem) -> ServerTlsConfig {
    ServerTlsConfig::new()
        .identity(Identity::from_pem(&controller.cert, &controller.key))
        .client_ca_root(Certificate::from_pem(ca_pem))
        .client_auth_optional(false)
        .timeout(HANDSHAKE_TIMEOUT)
}

/// A client's TLS to the controller: trusts only the fleet CA (`ca_pem`), presents `me`, and
/// checks that the controller's certificate is valid for `server_name` (a SAN of it).
pub fn client_tls(ca_pem: &str, me: &Pem, server_name: &str) -> ClientTlsConfig {
    ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .identity(Identity::from_pem(&me.cert, &me.key))
        .domain_name(server_name)
}

/// Where one party's TLS material lives: the CA certificate, its own certificate and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The fleet CA certificate (`ca.pem`).
    pub ca: PathBuf,
    /// This party's certificate.
    pub cert: PathBuf,
    /// This party's private key.
    pub key: PathBuf,
}

impl TlsFiles {
    /// The files `gameday certs init` writes into `dir` for the given party:
    /// `ca.pem` and `controller.pem/.key`, `agent-NAME.pem/.key` or `operator-NAME.pem/.key`.
    pub fn in_dir(dir: &Path, role: Role, name: &str) -> TlsFiles {
        let stem = leaf_file_stem(role, name);
        TlsFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join(format!("{stem}.pem")),
            key: dir.join(format!("{stem}.key")),
        }
    }

    /// Reads the three files: `(CA certificate PEM, own certificate and key)`. Each must hold
    /// the PEM block it should; errors name the path.
    pub fn read(&self) -> Result<(String, Pem), CertError> {
        let ca = files::read_pem(&self.ca, "CERTIFICATE", "certificate")?;
        let cert = files::read_pem(&self.cert, "CERTIFICATE", "certificate")?;
        let key = files::read_pem(&self.key, "PRIVATE KEY", "private key")?;
        Ok((ca, Pem { cert, key }))
    }
}
