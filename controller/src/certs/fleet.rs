//! A fleet's certificate directory (`gameday certs init` / `gameday certs issue`) and the
//! throw-away in-memory fleet of the demo and local runs.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use x509_parser::extensions::GeneralName;

use super::ca::{parse_san, CA_VALIDITY, LEAF_VALIDITY};
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

/// How long the certificates [`init_dir`] and [`issue_into`] make are valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    /// A new CA's.
    pub ca: Duration,
    /// Controller, agent and operator certificates'.
    pub leaf: Duration,
}

impl Default for Validity {
    fn default() -> Validity {
        Validity {
            ca: CA_VALIDITY,
            leaf: LEAF_VALIDITY,
        }
    }
}

impl Validity {
    /// A certificate is renewed by `certs init` when it has less than this left: 30 days, or
    /// a third of its validity for short-lived ones (so a re-run does not renew what it just
    /// made).
    fn renew_before(self) -> Duration {
        RENEW_BEFORE.min(self.leaf / 3)
    }
}

/// What `certs init` or `certs issue` did about one certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertAction {
    /// Whose certificate: `CA`, `controller`, `agent web-1`, `operator alice`.
    pub party: String,
    /// The certificate file.
    pub cert: PathBuf,
    /// The key file.
    pub key: PathBuf,
    /// What was done.
    pub outcome: CertOutcome,
}

/// What was done about a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertOutcome {
    /// There was none; it is written, valid for this long.
    Created(Duration),
    /// The one in place is current and kept; it expires at this moment (RFC 3339).
    Kept(String),
    /// The one in place was replaced (written anew, valid for this long), for this reason.
    Replaced(Duration, String),
}

impl CertAction {
    /// The files written, key first.
    pub fn written(&self) -> Vec<PathBuf> {
        match self.outcome {
            CertOutcome::Kept(_) => Vec::new(),
            _ => vec![self.key.clone(), self.cert.clone()],
        }
    }
}

impl std::fmt::Display for CertAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let days = |d: &Duration| d.as_secs() / (24 * 3600);
        let file = self.cert.display();
        match &self.outcome {
            CertOutcome::Created(valid) => write!(
                f,
                "created {file} and its key ({}, valid for {} days)",
                self.party,
                days(valid)
            ),
            CertOutcome::Kept(until) => write!(
                f,
                "kept {file} ({}: current, valid until {until})",
                self.party
            ),
            CertOutcome::Replaced(valid, why) => write!(
                f,
                "replaced {file} and its key ({}: {why}; valid for {} days)",
                self.party,
                days(valid)
            ),
        }
    }
}

/// All the files of `actions` that were written, in order.
pub fn written(actions: &[CertAction]) -> Vec<PathBuf> {
    actions.iter().flat_map(CertAction::written).collect()
}

/// Sets up a certificate directory: `gameday certs init --dir DIR [--agent NAME]...
/// [--operator NAME]... [--controller-san HOST]... [--days N] [--ca-days N]`.
///
/// Creates the CA (`ca.pem`, `ca.key`) unless `DIR/ca.pem` exists, in which case that CA is
/// loaded and reused; an orphaned `ca.key` is never replaced. Then writes `controller.pem/.key`
/// (CN [`CONTROLLER_NAME`], SANs `localhost`, `127.0.0.1`, `::1` and `controller_sans`),
/// `agent-NAME.pem/.key` and `operator-NAME.pem/.key`. Keys are mode 0600, certificates 0644,
/// all written atomically. Returns what it did about every certificate, in order.
///
/// Re-running is safe, and says what it did: a certificate already in place is kept when it
/// was issued by that CA for the same name and role, has every requested SAN and is valid for
/// a while yet (see [`Validity`]). An agent or operator certificate that is not is replaced,
/// and the action says why. The controller certificate is never replaced here — the running
/// controller uses it: when it would need to be, nothing at all is written and the error says
/// to reissue it with [`issue_into`] (`gameday certs issue --controller`).
pub fn init_dir(
    dir: &Path,
    agents: &[String],
    operators: &[String],
    controller_sans: &[String],
    validity: Validity,
) -> Result<Vec<CertAction>, CertError> {
    // Check every input before touching the disk, so a typo writes nothing.
    for name in agents.iter().chain(operators) {
        validate_name(name)?;
    }
    for san in controller_sans {
        parse_san(san)?;
    }
    check_validity(validity.ca)?;
    check_validity(validity.leaf)?;

    let existing_ca = if dir.join("ca.pem").exists() {
        Some(Ca::load(dir)?)
    } else if dir.join("ca.key").exists() {
        return Err(CertError::CaCertMissing {
            cert: dir.join("ca.pem"),
            key: dir.join("ca.key"),
        });
    } else {
        None
    };

    let mut leaves = vec![(Role::Controller, CONTROLLER_NAME, controller_sans)];
    leaves.extend(agents.iter().map(|n| (Role::Agent, n.as_str(), &[][..])));
    leaves.extend(
        operators
            .iter()
            .map(|n| (Role::Operator, n.as_str(), &[][..])),
    );
    let mut seen: Vec<(Role, &str)> = Vec::new();
    leaves.retain(|(role, name, _)| {
        let new = !seen.contains(&(*role, *name));
        seen.push((*role, *name));
        new
    });

    // Decide everything first: a refusal must leave the directory as it was.
    let mut plan = Vec::new();
    for (role, name, sans) in leaves {
        let (cert_path, key_path) = leaf_paths(dir, role, name);
        let state = if !cert_path.exists() && !key_path.exists() {
            LeafState::Missing
        } else {
            match &existing_ca {
                Some(ca) => leaf_state(ca, &cert_path, &key_path, role, name, sans, validity),
                None => LeafState::Stale(format!(
                    "{} exists but there was no CA in {}; the new CA did not sign it",
                    cert_path.display(),
                    dir.display()
                )),
            }
        };
        if let (Role::Controller, LeafState::Stale(reason)) = (role, &state) {
            return Err(CertError::ControllerExists {
                path: cert_path,
                reason: reason.clone(),
                dir: dir.to_owned(),
            });
        }
        plan.push((role, name, sans, state));
    }

    files::ensure_dir(dir)?;
    let mut actions = Vec::new();
    let ca = match existing_ca {
        Some(ca) => ca,
        None => {
            let ca = Ca::generate_valid_for(FLEET_CA_NAME, validity.ca)?;
            ca.write(dir)?;
            actions.push(CertAction {
                party: "CA".into(),
                cert: dir.join("ca.pem"),
                key: dir.join("ca.key"),
                outcome: CertOutcome::Created(validity.ca),
            });
            ca
        }
    };
    for (role, name, sans, state) in plan {
        let (cert, key) = leaf_paths(dir, role, name);
        let outcome = match state {
            LeafState::Current(until) => CertOutcome::Kept(until),
            LeafState::Missing => {
                write_leaf(&ca, dir, role, name, sans, validity.leaf)?;
                CertOutcome::Created(validity.leaf)
            }
            LeafState::Stale(why) => {
                write_leaf(&ca, dir, role, name, sans, validity.leaf)?;
                CertOutcome::Replaced(validity.leaf, why)
            }
        };
        actions.push(CertAction {
            party: party(role, name),
            cert,
            key,
            outcome,
        });
    }
    files::sync_dir(dir)?;
    Ok(actions)
}

/// Issues one certificate with the CA already in `dir`: `gameday certs issue --dir DIR
/// --agent NAME` (or `--operator NAME`, or `--controller [--controller-san HOST]...`).
/// Replaces that party's existing certificate and key, which is how a lost or leaked key is
/// rotated and how the controller gets new SANs.
pub fn issue_into(
    dir: &Path,
    role: Role,
    name: &str,
    sans: &[String],
    validity: Duration,
) -> Result<CertAction, CertError> {
    validate_name(name)?;
    for san in sans {
        parse_san(san)?;
    }
    check_validity(validity)?;
    let ca = Ca::load(dir)?;
    let (cert, key) = leaf_paths(dir, role, name);
    let existed = cert.exists() || key.exists();
    write_leaf(&ca, dir, role, name, sans, validity)?;
    files::sync_dir(dir)?;
    let outcome = if existed {
        CertOutcome::Replaced(validity, "reissued as asked".into())
    } else {
        CertOutcome::Created(validity)
    };
    Ok(CertAction {
        party: party(role, name),
        cert,
        key,
        outcome,
    })
}

/// Validities gameday accepts: at least a day, at most 100 years.
fn check_validity(validity: Duration) -> Result<(), CertError> {
    const DAY: u64 = 24 * 3600;
    let days = validity.as_secs() / DAY;
    if (1..=36_500).contains(&days) {
        Ok(())
    } else {
        Err(CertError::Validity { days })
    }
}

fn party(role: Role, name: &str) -> String {
    match role {
        Role::Controller => "controller".into(),
        Role::Agent | Role::Operator => format!("{role} {name}"),
    }
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
    validity: Duration,
) -> Result<[PathBuf; 2], CertError> {
    let pem = ca.issue_valid_for(role, name, sans, validity)?;
    let (cert_path, key_path) = leaf_paths(dir, role, name);
    files::write_atomic(&key_path, &pem.key, KEY_MODE, Existing::Replace)?;
    files::write_atomic(&cert_path, &pem.cert, CERT_MODE, Existing::Replace)?;
    Ok([key_path, cert_path])
}

/// What is in place for one party.
enum LeafState {
    /// Nothing.
    Missing,
    /// A certificate `certs init` keeps; it expires then (RFC 3339).
    Current(String),
    /// A certificate that cannot be kept, and why.
    Stale(String),
}

/// Whether an existing certificate can be kept by a re-run of `certs init` (see [`init_dir`]).
fn leaf_state(
    ca: &Ca,
    cert_path: &Path,
    key_path: &Path,
    role: Role,
    name: &str,
    sans: &[String],
    validity: Validity,
) -> LeafState {
    let stale = |why: String| LeafState::Stale(why);
    if !key_path.exists() {
        return stale(format!("its key {} is missing", key_path.display()));
    }
    let Ok(text) = files::read(cert_path) else {
        return stale(format!("{} cannot be read", cert_path.display()));
    };
    let Ok((_, pem)) = x509_parser::pem::parse_x509_pem(text.as_bytes()) else {
        return stale(format!("{} holds no PEM certificate", cert_path.display()));
    };
    let Ok(cert) = pem.parse_x509() else {
        return stale(format!(
            "{} is not an X.509 certificate",
            cert_path.display()
        ));
    };
    let until = cert
        .validity()
        .not_after
        .to_datetime()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| cert.validity().not_after.to_string());
    let lasts = cert
        .validity()
        .time_to_expiration()
        .is_some_and(|left| left > validity.renew_before());
    if !lasts {
        return stale(format!("it expires {until}, too soon"));
    }
    if !ca.is_issuer_of(&cert) {
        return stale("it was not issued by the CA in this directory".into());
    }
    let expected = PeerIdentity {
        name: name.to_owned(),
        role,
    };
    if parse_leaf(&pem.contents).ok() != Some(expected) {
        return stale(format!("it is not a {role} certificate for {name:?}"));
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
    let missing: Vec<&str> = sans
        .iter()
        .filter(|san| !present.contains(&normalize_san(san)))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return stale(format!(
            "it lacks the subject alternative name(s) {}",
            missing.join(", ")
        ));
    }
    LeafState::Current(until)
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
