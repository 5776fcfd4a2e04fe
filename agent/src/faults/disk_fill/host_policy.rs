//! `[policy.disk_fill]`: the directories this host lets the agent fill, and how full it may
//! make their filesystems.

use std::path::{Path, PathBuf};

use gameday_proto::ByteSize;
use serde::{Deserialize, Serialize};

use crate::faults::FaultError;
use crate::os::disk::DiskOs;

/// The ceiling when the config names none: high enough to hurt a service, low enough that
/// the host's own logs and package manager keep working.
pub const DEFAULT_MAX_FILL_PERCENT: u8 = 95;

/// The `[policy.disk_fill]` table.
///
/// ```toml
/// [policy.disk_fill]
/// paths = ["/srv/app/data"]   # these directories and everything below them; empty = never
/// max_fill_percent = 100      # refuse fills that leave the filesystem fuller than this
/// min_free = "0"              # refuse fills that leave less than this available
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Directories (and their subtrees) whose filesystems may be filled. Empty, the default,
    /// refuses every disk fill and the agent does not advertise `disk_fill`. Compared after
    /// resolving symlinks and `..`, on both sides.
    #[serde(default)]
    pub paths: Vec<PathBuf>,
    /// The fullest (in `df`'s Use%) a fill may leave a filesystem, 1–100; 95 by default.
    #[serde(default = "default_max_fill_percent")]
    pub max_fill_percent: u8,
    /// The least a fill may leave available (for unprivileged users, as `df` counts it);
    /// 0 by default.
    #[serde(default)]
    pub min_free: ByteSize,
}

fn default_max_fill_percent() -> u8 {
    DEFAULT_MAX_FILL_PERCENT
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            paths: Vec::new(),
            max_fill_percent: DEFAULT_MAX_FILL_PERCENT,
            min_free: ByteSize(0),
        }
    }
}

impl PolicyConfig {
    /// Checks the table is usable: absolute paths, a percentage from 1 to 100. Whether the
    /// paths exist is asked when a fill is prepared: a mount point may appear later.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=100).contains(&self.max_fill_percent) {
            return Err(format!(
                "max_fill_percent = {} is not a percentage from 1 to 100",
                self.max_fill_percent
            ));
        }
        for (i, p) in self.paths.iter().enumerate() {
            if !p.is_absolute() {
                return Err(format!(
                    "paths[{i}] = {:?} is not an absolute path",
                    p.display().to_string()
                ));
            }
        }
        Ok(())
    }

    /// The limits a plan carries, so the apply (and a revert read back from the journal) does
    /// not depend on a config that may have changed since.
    pub fn limits(&self) -> Limits {
        Limits {
            max_fill_percent: self.max_fill_percent,
            min_free: self.min_free.0,
        }
    }
}

/// The policy's limits on how full a fill may leave a filesystem.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// `max_fill_percent`.
    pub max_fill_percent: u8,
    /// `min_free`, in bytes.
    pub min_free: u64,
}

/// The refusal when `paths` is empty.
pub fn disabled() -> FaultError {
    FaultError::PolicyLimit(
        "policy refuses disk_fill: policy.disk_fill.paths is empty, so no directory may be filled"
            .into(),
    )
}

/// Refuses `dir` (already canonical) unless it is one of the policy's paths or below one.
/// Policy paths are canonicalized too, so `/srv/data -> /mnt/disk1/data` symlinks work both
/// ways and `..` or a symlink inside the target cannot escape; a policy path that does not
/// exist allows nothing.
pub fn check_contained(
    dir: &Path,
    config: &PolicyConfig,
    os: &dyn DiskOs,
) -> Result<(), FaultError> {
    if config.paths.is_empty() {
        return Err(disabled());
    }
    let allowed: Vec<PathBuf> = config
        .paths
        .iter()
        .filter_map(|p| os.canonicalize(p).ok())
        .collect();
    // Path::starts_with compares whole components: /srv/data2 is not under /srv/data.
    if allowed.iter().any(|a| dir.starts_with(a)) {
        return Ok(());
    }
    let listed: Vec<String> = config
        .paths
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    Err(FaultError::PolicyLimit(format!(
        "policy refuses to fill {}: it is not inside any of policy.disk_fill.paths = {listed:?}",
        dir.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_validation() {
        let c: PolicyConfig = toml::from_str("").unwrap();
        assert_eq!(c, PolicyConfig::default());
        assert_eq!(c.max_fill_percent, 95);
        assert!(c.validate().is_ok());
        let c: PolicyConfig =
            toml::from_str("paths = [\"/srv\"]\nmax_fill_percent = 100\nmin_free = \"1MiB\"")
                .unwrap();
        assert_eq!(c.limits().min_free, 1 << 20);
        assert!(c.validate().is_ok());
        for bad in [
            "max_fill_percent = 0",
            "max_fill_percent = 101",
            "paths = [\"srv\"]",
        ] {
            let c: PolicyConfig = toml::from_str(bad).unwrap();
            assert!(c.validate().is_err(), "{bad}");
        }
        assert!(toml::from_str::<PolicyConfig>("path = [\"/srv\"]").is_err());
    }

    #[test]
    fn agent_config_files_carry_the_table() {
        let head = "name = \"db-1\"\ncontroller = \"https://127.0.0.1:7443\"\n\
                    [tls]\nca = \"ca.pem\"\ncert = \"c.pem\"\nkey = \"k.pem\"\n";
        let base = Path::new("/etc/gameday");
        let ok =
            format!("{head}[policy.disk_fill]\npaths = [\"/srv/db\"]\nmax_fill_percent = 100\n");
        let config = crate::config::parse("agent.toml", &ok, base).unwrap();
        assert_eq!(
            config.policy.disk_fill.paths,
            vec![PathBuf::from("/srv/db")]
        );
        let bad = format!("{head}[policy.disk_fill]\nmax_fill_percent = 120\n");
        let err = crate::config::parse("agent.toml", &bad, base)
            .unwrap_err()
            .to_string();
        assert!(err.contains("agent.toml:"), "{err}");
        assert!(err.contains("disk_fill: max_fill_percent = 120"), "{err}");
    }
}
