//! A fleet's certificate directory (`gameday certs init` / `gameday certs issue`) and the
//! throw-away in-memory fleet of the demo and local runs.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use x509_parser::extensions::GeneralName;

use super::ca::parse_san;
use super::files::{self, Existing, CERT_MODE, KEY_MODE};
use super::{Ca, CertError, Pem, Role};
use crate::identity::{parse_leaf, PeerIdentity};

/// Common name of the controller's certificate.
pub const CONTROLLER_NAME: &str = "controller";
/// Common name of the CA `certs init` creates.
const FLEET_CA_NAME: &str = "gameday fleet CA";
/// Common name of the CA of an ephemeral fleet.
const EPHEMERAL_CA_NAME: &str = "gameday ephemeral CA";
/// Name of the operator certificate of an ephemeral fleet.
const EPHEMERAL_OPERATOR: &str = "operator";
/// `certs init` re-issues an existing certificate that expires sooner than this.
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);

/// Checks that `name` can be a certificate's common name and part of a file name:
/// 1 to 64 characters from `A-Z a-z 0-9 . _ -`.
pub fn validate_name(name: &str) -> Result<(), CertError> {
    let invalid = |reason| CertError::InvalidName {
        value: name.to_owned(),
        reason,
    };
    if name.is_empty() || name.len() > 64 {
        return Err(invalid("a name has 1 to 64 characters"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(invalid("a name has only letters, digits, '.', '_' and '-'"));
    }
    Ok(())
}

/// The file name, without extension, of a party's certificate and key in a certificate
/// directory: `controller`, `agent-NAME` or `operator-NAME`.
pub fn leaf_file_stem(role: Role, name: &str) -> String {
    match role {
        Role::Controller => "controller".to_owned(),
        Role::Agent | Role::Operator => format!("{role}-{name}"),
    }
}

/// Sets up a certificate directory: `gameday certs init --dir DIR [--agent NAME]...
/// [--operator NAME]... [--controller-san HOST]...`.
///
/// Creates the CA (`ca.pem`, `ca.key`) unless `DIR/ca.pem` exists, in which case that CA is
/// loaded and reused; an orphaned `ca.key` is never replaced. Then writes `controller.pem/.key`
/// (CN [`CONTROLLER_NAME`], SANs `localhost`, `127.0.0.1`, `::1` and `controller_sans`),
/// `agent-NAME.pem/.key` and `operator-NAME.pem/.key`. Keys are mode 0600, certificates 0644,
/// all written atomically.
///
/// Re-running is safe: with a reused CA, a certificate already in place is kept when it was
/// issued by that CA for the same name and role, has every requested SAN and is valid for
/// another 30 days; otherwise it is re-issued. Returns the paths written, in order.
pub fn init_dir(
    dir: &Path,
    agents: &[String],
    operators: &[String],
    controller_sans: &[String],
) -> Result<Vec<PathBuf>, CertError> {
    // Check every input before touching the disk, so a typo writes nothing.
    for name in agents.iter().chain(operators) {
        validate_name(name)?;
    }
    for san in controller_sans {
        parse_san(san)?;
    }

    files::ensure_dir(dir)?;
    let mut written = Vec::new();
    let (ca, ca_is_new) = if dir.join("ca.pem").exists() {
        (Ca::load(dir)?, false)
    } else if dir.join("ca.key").exists() {
        return Err(CertError::CaCertMissing {
            cert: dir.join("ca.pem"),
            key: dir.join("ca.key"),
        });
    } else {
        let ca = Ca::generate(FLEET_CA_NAME)?;
        ca.write(dir)?;
        written.extend([dir.join("ca.key"), dir.join("ca.pem")]);
        (ca, true)
    };

    let mut leaves = vec![(Role::Controller, CONTROLLER_NAME, controller_sans)];
    leaves.extend(agents.iter().map(|n| (Role::Agent, n.as_str(), &[][..])));
    leaves.extend(
        operators
            .iter()
            .map(|n| (Role::Operator, n.as_str(), &[][..])),
    );
    let mut done: Vec<(Role, &str)> = Vec::new();
    for (role, name, sans) in leaves {
        if done.contains(&(role, name)) {
            continue;
        }
        done.push((role, name));
        let (cert_path, key_path) = leaf_paths(dir, role, name);
        if !ca_is_new && leaf_is_current(&ca, &cert_path, &key_path, role, name, sans) {
            continue;
        }
        written.extend(write_leaf(&ca, dir, role, name, sans)?);
    }
    files::sync_dir(dir)?;
    Ok(written)
}

/// Issues one certificate with the CA already in `dir`: `gameday certs issue --dir DIR
/// --agent NAME` (or `--operator NAME`). Replaces that party's existing certificate and key,
/// which is how a lost or leaked key is rotated. Returns the paths written.
///
/// A controller certificate issued this way carries only the default SANs; use [`init_dir`]
/// with `controller_sans` for more.
pub fn issue_into(dir: &Path, role: Role, name: &str) -> Result<Vec<PathBuf>, CertError> {
    validate_name(name)?;
    let ca = Ca::load(dir)?;
    let written = write_leaf(&ca, dir, role, name, &[])?;
    files::sync_dir(dir)?;
    Ok(written.to_vec())
}

fn leaf_paths(dir: &Path, role: Role, name: &str) -> (PathBuf, PathBuf) {
    let stem = leaf_file_stem(role, name);
    (
        dir.join(format!("{stem}.pem")),
        dir.join(format!("{stem}.key")),
    )
}

/// Issues and writes one party's key (first) and certificate.
fn write_leaf(
    ca: &Ca,
    dir: &Path,
    role: Role,
    name: &str,
    sans: &[String],
) -> Result<[PathBuf; 2], CertError> {
    let pem = ca.issue(role, name, sans)?;
    let (cert_path, key_path) = leaf_paths(dir, role, name);
    files::write_atomic(&key_path, &pem.key, KEY_MODE, Existing::Replace)?;
    files::write_atomic(&cert_path, &pem.cert, CERT_MODE, Existing::Replace)?;
    Ok([key_path, cert_path])
}

/// Whether an existing certificate can be kept by a re-run of `certs init` (see [`init_dir`]).
/// Anything unreadable or unexpected means "no": re-issuing is always safe.
fn leaf_is_current(
    ca: &Ca,
    cert_path: &Path,
    key_path: &Path,
    role: Role,
    name: &str,
    sans: &[String],
) -> bool {
    if !key_path.exists() {
        return false;
    }
    let Ok(text) = files::read(cert_path) else {
        return false;
    };
    let Ok((_, pem)) = x509_parser::pem::parse_x509_pem(text.as_bytes()) else {
        return false;
    };
    let Ok(cert) = pem.parse_x509() else {
        return false;
    };
    let expected = PeerIdentity {
        name: name.to_owned(),
        role,
    };
    let lasts = cert
        .validity()
        .time_to_expiration()
        .is_some_and(|left| left > RENEW_BEFORE);
    if !lasts || !ca.is_issuer_of(&cert) || parse_leaf(&pem.contents).ok() != Some(expected) {
        return false;
    }
    let present: Vec<String> = match cert.subject_alternative_name() {
        Ok(Some(ext)) => ext
            .value
            .general_names
            .iter()
            .filter_map(|general| match general {
                GeneralName::DNSName(dns) => Some(dns.to_ascii_lowercase()),
                GeneralName::IPAddress(bytes) => ip_from_bytes(bytes).map(|ip| ip.to_string()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    sans.iter().all(|san| present.contains(&normalize_san(san)))
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

fn normalize_san(san: &str) -> String {
    match san.parse::<IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => san.to_ascii_lowercase(),
    }
}

/// A throw-away fleet whose certificates live only in memory: `gameday demo` and
/// `gameday run --local`. Nothing here is ever written to disk.
#[derive(Debug, Clone)]
pub struct EphemeralFleet {
    /// The ephemeral CA's certificate, PEM-encoded.
    pub ca: String,
    /// The controller's certificate (CN [`CONTROLLER_NAME`], loopback SANs).
    pub controller: Pem,
    /// One operator certificate (CN `operator`).
    pub operator: Pem,
    /// One certificate per agent, by agent name, in the order asked for.
    pub agents: Vec<(String, Pem)>,
}

/// Makes an [`EphemeralFleet`] with a fresh CA and the named agents. The CA's key is dropped
/// when this returns, so nothing else can ever be signed by it.
pub fn ephemeral_fleet(agent_names: &[&str]) -> Result<EphemeralFleet, CertError> {
    let ca = Ca::generate(EPHEMERAL_CA_NAME)?;
    let agents = agent_names
        .iter()
        .map(|name| Ok((name.to_string(), ca.issue(Role::Agent, name, &[])?)))
        .collect::<Result<_, CertError>>()?;
    Ok(EphemeralFleet {
        ca: ca.cert_pem().to_owned(),
        controller: ca.issue(Role::Controller, CONTROLLER_NAME, &[])?,
        operator: ca.issue(Role::Operator, EPHEMERAL_OPERATOR, &[])?,
        agents,
    })
}
