//! The agent config file: who the agent is, where its controller is, and the host's policy.
//!
//! Loading goes file → TOML (unknown keys are errors) → validation, and every error names the
//! file, the line and column, and what was expected. The TLS files it names are read and
//! checked by [`tls::load`], before the agent starts anything.
//!
//! ```toml
//! name = "web-1"
//! controller = "https://gameday.example:7443"
//! lease = "10s"
//! heartbeat = "1s"
//!
//! [tls]                   # relative paths are read from the config file's directory
//! ca = "ca.pem"
//! cert = "web-1.pem"
//! key = "web-1.key"
//!
//! [labels]
//! role = "web"
//!
//! [policy]
//! allow_faults = ["process_kill"]
//! [policy.process_kill]
//! allow = ["^nginx"]
//! deny = ["^sshd", "^postgres"]
//! signals = ["SIGKILL", "SIGTERM"]
//! [policy.remediation]    # runbook commands the controller may run here; none by default
//! commands = ["/usr/local/bin/promote-replica"]
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use gameday_proto::Duration;
use serde::Deserialize;
use toml::de::{DeTable, DeValue};

use crate::policy::{Policy, PolicyConfig};

mod controller_url;
pub mod tls;

pub use controller_url::ControllerUrl;

/// The longest lease the agent accepts: a fault may outlive a lost controller by this much.
pub const MAX_LEASE: std::time::Duration = std::time::Duration::from_secs(3600);

/// The agent's configuration, validated, with TLS paths made relative to the config file.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The agent's name; must equal its certificate's common name (the controller checks).
    pub name: String,
    /// The controller's URL, e.g. `https://127.0.0.1:7443`: https, a host, a port in 1..=65535
    /// (443 when left out).
    pub controller: ControllerUrl,
    /// Certificates for mutual TLS.
    pub tls: TlsPaths,
    /// Labels scenarios select targets by.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The agent reverts every live fault after this long without hearing from the controller;
    /// more than zero and at most [`MAX_LEASE`].
    #[serde(default = "default_lease")]
    pub lease: Duration,
    /// How often the agent sends a heartbeat; must be shorter than the lease.
    #[serde(default = "default_heartbeat")]
    pub heartbeat: Duration,
    /// Where the agent keeps its fault journal (`STATE_DIR/journal/`); it must survive a
    /// crash-restart of the agent, so not a tmpfs that a restart clears.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// What the host owner allows faults to do here.
    #[serde(default)]
    pub policy: PolicyConfig,
}

/// The `[tls]` table: PEM files for mutual TLS.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsPaths {
    /// The fleet CA certificate, which the controller's certificate must chain to.
    pub ca: PathBuf,
    /// This agent's certificate.
    pub cert: PathBuf,
    /// This agent's private key.
    pub key: PathBuf,
}

fn default_lease() -> Duration {
    Duration::from_millis(10_000)
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/gameday-agent")
}

fn default_heartbeat() -> Duration {
    Duration::from_millis(1_000)
}

/// A 1-based position in a config file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    /// Line, from 1.
    pub line: usize,
    /// Column in characters, from 1.
    pub column: usize,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// A config file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The file was read but is not a valid config.
    #[error("{file}{}: {message}", position.map(|p| format!(":{p}")).unwrap_or_default())]
    Invalid {
        /// The file name as given.
        file: String,
        /// Where the mistake is, when it can be pinned down.
        position: Option<Position>,
        /// What is wrong and what was expected.
        message: String,
    },
}

/// Reads, parses and validates the config file at `path`.
pub fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let base_dir = path.parent().unwrap_or(Path::new(""));
    parse(&path.display().to_string(), &text, base_dir)
}

/// Parses and validates config `text`; `file_name` is used in errors and relative TLS paths are
/// resolved against `base_dir`.
pub fn parse(file_name: &str, text: &str, base_dir: &Path) -> Result<AgentConfig, ConfigError> {
    let invalid = |position, message| ConfigError::Invalid {
        file: file_name.to_string(),
        position,
        message,
    };
    let mut config: AgentConfig = toml::from_str(text).map_err(|e| {
        let position = e.span().map(|span| position_of(text, span.start));
        invalid(position, e.message().trim_end().to_string())
    })?;
    validate(&config).map_err(|(key_path, message)| invalid(locate(text, &key_path), message))?;
    for path in [
        &mut config.tls.ca,
        &mut config.tls.cert,
        &mut config.state_dir,
        &mut config.tls.key,
    ] {
        if path.is_relative() {
            *path = base_dir.join(&*path);
        }
    }
    Ok(config)
}

/// Checks what the types alone cannot; an error carries the key path it is about.
fn validate(config: &AgentConfig) -> Result<(), (Vec<&'static str>, String)> {
    let name_ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if config.name.is_empty() || !config.name.chars().all(name_ok) {
        return Err((
            vec!["name"],
            format!(
                "name: expected letters, digits, `.`, `_` or `-` (the certificate's common \
                 name), found {:?}",
                config.name
            ),
        ));
    }
    for (key, path) in [
        ("ca", &config.tls.ca),
        ("cert", &config.tls.cert),
        ("key", &config.tls.key),
    ] {
        if path.as_os_str().is_empty() {
            return Err((vec!["tls", key], format!("tls.{key}: expected a file path")));
        }
    }
    if config.lease.get().is_zero() || config.lease.get() > MAX_LEASE {
        return Err((
            vec!["lease"],
            format!(
                "lease ({}) must be longer than zero and at most {}: a fault outlives a lost \
                 controller by up to the lease",
                config.lease,
                Duration::from(MAX_LEASE)
            ),
        ));
    }
    if config.heartbeat.get().is_zero() || config.heartbeat >= config.lease {
        return Err((
            vec!["heartbeat"],
            format!(
                "heartbeat ({}) must be longer than zero and shorter than lease ({}), or the \
                 agent would revert its faults between two heartbeats",
                config.heartbeat, config.lease
            ),
        ));
    }
    if let Err(e) = Policy::from_config(&config.policy) {
        let mut path = vec!["policy"];
        path.extend_from_slice(e.key_path());
        return Err((path, format!("policy.{e}")));
    }
    Ok(())
}

/// The position of the value at `key_path`, or of the deepest part of the path that exists.
fn locate(text: &str, key_path: &[&str]) -> Option<Position> {
    let doc = DeTable::parse(text).ok()?;
    let mut table = doc.get_ref();
    let mut found = None;
    for key in key_path {
        let Some((_, value)) = table.iter().find(|(k, _)| k.get_ref() == key) else {
            break;
        };
        found = Some(value.span().start);
        match value.get_ref() {
            DeValue::Table(inner) => table = inner,
            _ => break,
        }
    }
    found.map(|offset| position_of(text, offset))
}

/// Turns a byte offset into a 1-based line and character column.
fn position_of(text: &str, offset: usize) -> Position {
    let (line, column) = gameday_proto::position::line_column(text, offset);
    Position { line, column }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = r#"
name = "web-1"
controller = "https://127.0.0.1:7443"
heartbeat = "500ms"

[tls]
ca = "ca.pem"
cert = "/etc/gameday/web-1.pem"
key = "keys/web-1.key"

[labels]
role = "web"

[policy]
allow_faults = ["process_kill"]
[policy.process_kill]
deny = ["^sshd"]
"#;

    fn parse_err(text: &str) -> String {
        parse("agent.toml", text, Path::new("/etc/gameday"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn parses_a_valid_file_and_resolves_relative_tls_paths() {
        let config = parse("agent.toml", VALID, Path::new("/etc/gameday")).unwrap();
        assert_eq!(config.name, "web-1");
        assert_eq!(config.lease, Duration::from_millis(10_000));
        assert_eq!(config.heartbeat, Duration::from_millis(500));
        assert_eq!(config.labels["role"], "web");
        assert_eq!(config.tls.ca, Path::new("/etc/gameday/ca.pem"));
        assert_eq!(config.tls.cert, Path::new("/etc/gameday/web-1.pem"));
        assert_eq!(config.tls.key, Path::new("/etc/gameday/keys/web-1.key"));
        assert_eq!(config.policy.process_kill.deny, vec!["^sshd"]);
    }

    #[test]
    fn defaults_allow_every_kind() {
        let minimal = "name = \"a\"\ncontroller = \"https://c:1\"\n\
                       [tls]\nca = \"c\"\ncert = \"d\"\nkey = \"e\"\n";
        let config = parse("agent.toml", minimal, Path::new("")).unwrap();
        assert_eq!(config.heartbeat, Duration::from_millis(1_000));
        assert_eq!(config.policy, PolicyConfig::default());
        assert_eq!(config.tls.ca, Path::new("c"));
    }

    #[test]
    fn unknown_keys_name_line_and_column() {
        let text = VALID.replace("[labels]", "[labels]\n").replace(
            "deny = [\"^sshd\"]",
            "deny = [\"^sshd\"]\n  denny = [\"x\"]",
        );
        let err = parse_err(&text);
        assert!(
            err.starts_with("agent.toml:19:3: unknown field `denny`"),
            "{err}"
        );
        assert!(err.contains("expected one of"), "{err}");
        let top = parse_err(&format!("colour = \"red\"\n{VALID}"));
        assert!(
            top.starts_with("agent.toml:1:1: unknown field `colour`"),
            "{top}"
        );
    }

    #[test]
    fn refuses_plaintext_controllers() {
        let err = parse_err(&VALID.replace("https://", "http://"));
        assert_eq!(
            err,
            "agent.toml:3:14: controller: the controller speaks https only (mutual TLS); write \
             \"https://127.0.0.1:7443\" (found \"http://127.0.0.1:7443\")"
        );
        assert!(parse_err(&VALID.replace("https://", "")).contains("expected an https:// URL"));
    }

    #[test]
    fn refuses_controller_ports_out_of_range() {
        let err = parse_err(&VALID.replace(":7443", ":99999"));
        assert!(
            err.starts_with("agent.toml:3:14: controller: port 99999 is out of range"),
            "{err}"
        );
        let err = parse_err(&VALID.replace(":7443", ":0"));
        assert!(err.contains("port 0 is out of range"), "{err}");
    }

    #[test]
    fn refuses_zero_and_overlong_leases() {
        let with_lease =
            |lease: &str| VALID.replace("heartbeat", &format!("lease = \"{lease}\"\nheartbeat"));
        let err = parse_err(&with_lease("0s"));
        assert!(
            err.starts_with("agent.toml:4:9: lease (0s) must be longer than zero and at most 1h"),
            "{err}"
        );
        let err = parse_err(&with_lease("2h"));
        assert!(
            err.starts_with("agent.toml:4:9: lease (2h) must be"),
            "{err}"
        );
        parse("agent.toml", &with_lease("1h"), Path::new("/")).unwrap();
        let err = parse_err(&VALID.replace("\"500ms\"", "\"0s\""));
        assert!(
            err.starts_with("agent.toml:4:13: heartbeat (0s) must be"),
            "{err}"
        );
    }

    #[test]
    fn validates_names_durations_and_policy() {
        let err = parse_err(&VALID.replace("\"web-1\"", "\"web 1\""));
        assert!(
            err.starts_with("agent.toml:2:8: name: expected letters"),
            "{err}"
        );
        let err = parse_err(&VALID.replace("\"500ms\"", "\"10s\""));
        assert!(
            err.starts_with("agent.toml:4:13: heartbeat (10s) must be"),
            "{err}"
        );
        let err = parse_err(&VALID.replace("\"500ms\"", "\"500\""));
        assert!(
            err.starts_with("agent.toml:4:13: invalid duration"),
            "{err}"
        );
        let err = parse_err(&VALID.replace("^sshd", "(sshd"));
        assert!(
            err.starts_with("agent.toml:17:8: policy.process_kill.deny[0]: invalid regular"),
            "{err}"
        );
        let err = parse_err(&VALID.replace("[\"process_kill\"]", "[\"meteor\"]"));
        assert!(
            err.starts_with("agent.toml:15:16: policy.allow_faults: unknown"),
            "{err}"
        );
    }

    #[test]
    fn parses_the_remediation_policy_and_points_at_its_mistakes() {
        let with = |table: &str| format!("{VALID}[policy.remediation]\n{table}");
        let config = parse(
            "agent.toml",
            &with(
                "commands = [\"/usr/local/bin/promote-replica\", \"/bin/true\"]\nshell = true\n\
                 max_timeout = \"2m\"\nmax_running = 2\n",
            ),
            Path::new("/etc/gameday"),
        )
        .unwrap();
        let remediation = &config.policy.remediation;
        assert_eq!(
            remediation.commands,
            [
                Path::new("/usr/local/bin/promote-replica"),
                Path::new("/bin/true")
            ]
        );
        assert!(remediation.shell);
        assert_eq!(remediation.max_timeout, Duration::from_millis(120_000));
        assert_eq!(remediation.max_running, 2);
        // Absent: no steps at all.
        let config = parse("agent.toml", VALID, Path::new("/")).unwrap();
        assert_eq!(
            config.policy.remediation,
            crate::steps::RemediationPolicy::default()
        );
        // VALID has 17 lines; the table's first key is on line 19.
        for (table, says) in [
            (
                "commands = [\"/bin/true\", \"promote-replica\"]",
                "agent.toml:19:12: policy.remediation.commands[1]: \"promote-replica\" is not an \
                 absolute path (steps run a listed program by its full path, never through PATH)",
            ),
            (
                "max_timeout = \"0s\"",
                "agent.toml:19:15: policy.remediation.max_timeout (0s) must be longer than zero; \
                 to run no steps, leave commands empty",
            ),
            (
                "max_running = 0",
                "agent.toml:19:15: policy.remediation.max_running must be at least 1; to run no \
                 steps, leave commands empty",
            ),
        ] {
            assert_eq!(parse_err(&with(table)), says);
        }
        let err = parse_err(&with("max_timeout = \"10\""));
        assert!(
            err.starts_with("agent.toml:19:15: invalid duration \"10\": missing unit"),
            "{err}"
        );
        let err = parse_err(&with("shell = \"yes\""));
        assert!(err.starts_with("agent.toml:19:9: invalid type"), "{err}");
        let err = parse_err(&with("command = []"));
        assert!(
            err.starts_with("agent.toml:19:1: unknown field `command`"),
            "{err}"
        );
    }

    #[test]
    fn load_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        let err = load(&path).unwrap_err().to_string();
        assert!(err.starts_with("cannot read config file"), "{err}");
        assert!(err.contains("agent.toml"), "{err}");
        std::fs::write(&path, VALID).unwrap();
        let config = load(&path).unwrap();
        assert_eq!(config.tls.ca, dir.path().join("ca.pem"));
        std::fs::write(&path, VALID.replace("https://", "http://")).unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{}:3:14:", path.display())),
            "{err}"
        );
    }
}
