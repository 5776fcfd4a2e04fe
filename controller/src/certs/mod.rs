//! Fleet certificates: a CA and the certificates it signs for controller, agents and operators.
//!
//! Every gRPC connection in a fleet is mutual TLS. The fleet's CA signs one certificate per
//! party; the subject says who the party is (CN = name) and what it may do (OU = [`Role`]).
//! A peer's identity is read from its verified certificate (see [`crate::identity`]), never
//! from what it claims on the wire.
//!
//! - [`Ca`] generates or loads the CA and issues certificates.
//! - [`init_dir`] and [`issue_into`] back `gameday certs init` / `gameday certs issue`.
//! - [`ephemeral_fleet`] makes a throw-away in-memory fleet for the demo and local runs.
//! - [`server_tls`], [`client_tls`] and [`TlsFiles`] turn certificates into tonic configs.

mod ca;
mod files;
mod fleet;
mod tls;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

pub use ca::{Ca, CA_VALIDITY, LEAF_VALIDITY};
pub use fleet::{
    ephemeral_fleet, init_dir, issue_into, leaf_file_stem, validate_name, written, CertAction,
    CertOutcome, EphemeralFleet, Validity, CONTROLLER_NAME,
};
pub use tls::{client_tls, server_tls, TlsFiles};

/// What a certificate's holder is; written as the certificate's organizational unit (OU).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The controller: serves gRPC to agents and operators.
    Controller,
    /// An agent on a target host, named by its certificate's common name.
    Agent,
    /// A person or pipeline driving the controller through the CLI.
    Operator,
}

impl Role {
    /// Every role, in a stable order.
    pub const ALL: [Role; 3] = [Role::Controller, Role::Agent, Role::Operator];

    /// The role's name as written in certificates: `controller`, `agent` or `operator`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Controller => "controller",
            Role::Agent => "agent",
            Role::Operator => "operator",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no [`Role`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}: expected controller, agent or operator")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

/// A certificate and its private key, both PEM-encoded.
#[derive(Clone, PartialEq, Eq)]
pub struct Pem {
    /// The certificate, `-----BEGIN CERTIFICATE-----`.
    pub cert: String,
    /// The PKCS#8 private key, `-----BEGIN PRIVATE KEY-----`.
    pub key: String,
}

impl fmt::Debug for Pem {
    // Keys must not end up in logs through a stray `{:?}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pem")
            .field("cert", &self.cert)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// What went wrong while making, reading or writing certificates.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A party name is not usable as a certificate common name and file name.
    #[error("invalid name {value:?}: {reason}")]
    InvalidName {
        /// The rejected name.
        value: String,
        /// What the name must look like.
        reason: &'static str,
    },
    /// A subject alternative name is neither an IP address nor a DNS name.
    #[error("invalid subject alternative name {value:?}: expected an IP address or a DNS name (letters, digits, '-' and '.')")]
    InvalidSan {
        /// The rejected SAN.
        value: String,
    },
    /// rcgen could not generate a key or sign a certificate.
    #[error("generating {what}: {source}")]
    Generate {
        /// Which key or certificate was being made.
        what: String,
        /// The underlying error.
        #[source]
        source: rcgen::Error,
    },
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file or directory could not be written.
    #[error("writing {path}: {source}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file does not hold the PEM block it should.
    #[error("{path} holds no PEM {expected}")]
    NotPem {
        /// The file.
        path: PathBuf,
        /// The PEM block that was expected, e.g. `certificate`.
        expected: &'static str,
    },
    /// The CA certificate cannot be used to issue certificates.
    #[error("CA certificate {path}: {reason}")]
    BadCaCert {
        /// The CA certificate file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The CA private key cannot be parsed.
    #[error("CA private key {path}: {source}")]
    BadCaKey {
        /// The CA key file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: rcgen::Error,
    },
    /// The CA private key does not belong to the CA certificate.
    #[error("CA private key {key} does not match CA certificate {cert}")]
    CaKeyMismatch {
        /// The CA certificate file.
        cert: PathBuf,
        /// The CA key file.
        key: PathBuf,
    },
    /// Writing a CA would replace an existing one; certificates it signed would stop working.
    #[error("{path} already exists; refusing to replace an existing CA")]
    CaExists {
        /// The existing file.
        path: PathBuf,
    },
    /// A CA key exists without its certificate, so neither can be used nor safely replaced.
    #[error("{key} exists but {cert} does not; restore the CA certificate or remove the key deliberately")]
    CaCertMissing {
        /// The missing CA certificate file.
        cert: PathBuf,
        /// The orphaned CA key file.
        key: PathBuf,
    },
    /// `certs init` would have to replace the controller's certificate, which it never does.
    #[error(
        "{path} is in place and {reason}; `certs init` never replaces the controller \
         certificate (a running controller uses it), so nothing was written: reissue it with \
         `gameday certs issue --dir {dir} --controller [--controller-san HOST]...`",
        path = path.display(),
        dir = dir.display()
    )]
    ControllerExists {
        /// The controller certificate.
        path: PathBuf,
        /// Why it cannot be kept.
        reason: String,
        /// The certificate directory.
        dir: PathBuf,
    },
    /// A validity period gameday does not issue.
    #[error("a validity of {days} days: certificates are valid for 1 to 36500 days")]
    Validity {
        /// The days asked for (whole days).
        days: u64,
    },
    /// There is no CA to issue with.
    #[error("no CA in {dir}: run `gameday certs init --dir {dir}` first")]
    NoCa {
        /// The directory that should hold `ca.pem` and `ca.key`.
        dir: PathBuf,
    },
}

impl CertError {
    fn generate(what: impl Into<String>) -> impl FnOnce(rcgen::Error) -> CertError {
        let what = what.into();
        move |source| CertError::Generate { what, source }
    }
}

#[cfg(test)]
mod mtls_tests;
#[cfg(test)]
mod tests;
