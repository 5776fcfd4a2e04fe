//! `[policy.remediation]`: which remediation steps the host owner lets the controller run here.
//!
//! Running commands on request is opt-in: with the defaults the agent runs no step at all.

use std::fmt;
use std::path::PathBuf;

use gameday_proto::Duration;
use serde::Deserialize;

/// The `[policy.remediation]` table of the agent config.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemediationPolicy {
    /// The programs a step may run, as absolute paths; a step's `argv[0]` must equal one of them
    /// byte for byte (no `PATH` lookup, no globbing). Empty, the default: no argv step runs.
    #[serde(default)]
    pub commands: Vec<PathBuf>,
    /// Whether a step may be a command line for `/bin/sh -c` (which can run anything the
    /// agent's user can). False by default.
    #[serde(default)]
    pub shell: bool,
    /// The longest timeout a step may ask for; 10 minutes by default.
    #[serde(default = "default_max_timeout")]
    pub max_timeout: Duration,
    /// How many steps may run at once; 4 by default.
    #[serde(default = "default_max_running")]
    pub max_running: u32,
}

/// The default [`RemediationPolicy::max_timeout`].
pub const DEFAULT_MAX_TIMEOUT: Duration = Duration::from_millis(10 * 60 * 1000);

/// The default [`RemediationPolicy::max_running`].
pub const DEFAULT_MAX_RUNNING: u32 = 4;

fn default_max_timeout() -> Duration {
    DEFAULT_MAX_TIMEOUT
}

fn default_max_running() -> u32 {
    DEFAULT_MAX_RUNNING
}

impl Default for RemediationPolicy {
    fn default() -> Self {
        Self {
            commands: Vec::new(),
            shell: false,
            max_timeout: DEFAULT_MAX_TIMEOUT,
            max_running: DEFAULT_MAX_RUNNING,
        }
    }
}

/// A `[policy.remediation]` table that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemediationPolicyError {
    /// A listed command is not an absolute path: the agent never looks programs up in `PATH`.
    #[error(
        "remediation.commands[{index}]: {path:?} is not an absolute path (steps run a listed \
         program by its full path, never through PATH)"
    )]
    RelativeCommand {
        /// Its position in the list.
        index: usize,
        /// The path as written.
        path: String,
    },
    /// `max_timeout = "0s"` would refuse every step.
    #[error(
        "remediation.max_timeout ({0}) must be longer than zero; to run no steps, leave \
         commands empty"
    )]
    ZeroMaxTimeout(Duration),
    /// `max_running = 0` would refuse every step.
    #[error("remediation.max_running must be at least 1; to run no steps, leave commands empty")]
    ZeroMaxRunning,
}

impl RemediationPolicyError {
    /// The key, inside the `[policy]` table, that holds the mistake.
    pub fn key_path(&self) -> &'static [&'static str] {
        match self {
            Self::RelativeCommand { .. } => &["remediation", "commands"],
            Self::ZeroMaxTimeout(_) => &["remediation", "max_timeout"],
            Self::ZeroMaxRunning => &["remediation", "max_running"],
        }
    }
}

impl RemediationPolicy {
    /// Checks the table is usable: absolute commands, a timeout and a concurrency above zero.
    pub fn validate(&self) -> Result<(), RemediationPolicyError> {
        if let Some((index, path)) = self
            .commands
            .iter()
            .enumerate()
            .find(|(_, p)| !p.is_absolute())
        {
            return Err(RemediationPolicyError::RelativeCommand {
                index,
                path: path.display().to_string(),
            });
        }
        if self.max_timeout.get().is_zero() {
            return Err(RemediationPolicyError::ZeroMaxTimeout(self.max_timeout));
        }
        if self.max_running == 0 {
            return Err(RemediationPolicyError::ZeroMaxRunning);
        }
        Ok(())
    }

    /// Whether `program` (a step's `argv[0]`) is one of [`RemediationPolicy::commands`], compared
    /// byte for byte: `/usr/bin/../bin/rm` is not `/usr/bin/rm`.
    pub fn lists(&self, program: &str) -> bool {
        self.commands.iter().any(|c| c.as_os_str() == program)
    }

    /// The listed commands, comma-separated, for refusals.
    pub(super) fn allowed(&self) -> Allowed<'_> {
        Allowed(self)
    }
}

/// [`RemediationPolicy::commands`] written out for a message.
pub(super) struct Allowed<'a>(&'a RemediationPolicy);

impl fmt::Display for Allowed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, command) in self.0.commands.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}", command.display())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> RemediationPolicy {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn defaults_run_nothing() {
        let p = parse("");
        assert_eq!(p, RemediationPolicy::default());
        assert!(p.commands.is_empty());
        assert!(!p.shell);
        assert_eq!(p.max_timeout.get(), std::time::Duration::from_secs(600));
        assert_eq!(p.max_running, 4);
        assert!(p.validate().is_ok());
    }

    #[test]
    fn lists_only_exact_paths() {
        let p = parse(r#"commands = ["/usr/local/bin/promote-replica", "/bin/true"]"#);
        assert!(p.lists("/bin/true"));
        assert!(!p.lists("/bin/../bin/true"));
        assert!(!p.lists("/bin//true"));
        assert!(!p.lists("true"));
        assert!(!p.lists("/bin/*"));
        assert_eq!(
            p.allowed().to_string(),
            "/usr/local/bin/promote-replica, /bin/true"
        );
    }

    #[test]
    fn refuses_relative_commands_zero_timeouts_and_zero_concurrency() {
        let relative = parse(r#"commands = ["/bin/true", "promote-replica"]"#)
            .validate()
            .unwrap_err();
        assert_eq!(
            relative.to_string(),
            "remediation.commands[1]: \"promote-replica\" is not an absolute path (steps run a \
             listed program by its full path, never through PATH)"
        );
        assert_eq!(relative.key_path(), &["remediation", "commands"]);
        let timeout = parse("max_timeout = \"0s\"").validate().unwrap_err();
        assert_eq!(
            timeout.to_string(),
            "remediation.max_timeout (0s) must be longer than zero; to run no steps, leave \
             commands empty"
        );
        assert_eq!(timeout.key_path(), &["remediation", "max_timeout"]);
        let running = parse("max_running = 0").validate().unwrap_err();
        assert_eq!(running.key_path(), &["remediation", "max_running"]);
        assert!(toml::from_str::<RemediationPolicy>("command = []").is_err());
        assert!(toml::from_str::<RemediationPolicy>("max_timeout = \"10\"").is_err());
    }
}
