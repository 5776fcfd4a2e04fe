//! The controller's config file (`gameday serve --config FILE`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use gameday_proto::position::line_column;
use gameday_proto::Duration;
use serde::Deserialize;

use crate::server::ChannelTiming;

/// The longest `heartbeat_interval`, `heartbeat_timeout` and `lease` accepted.
pub const MAX_DURATION: std::time::Duration = std::time::Duration::from_secs(3600);

/// `gameday serve`'s configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControllerConfig {
    /// Address agents and operators connect to.
    pub listen: SocketAddr,
    /// The fleet CA and the controller's certificate.
    pub tls: TlsPaths,
    /// How often agents send heartbeats; more than zero, at most [`MAX_DURATION`].
    #[serde(default = "default_heartbeat_interval")]
    pub heartbeat_interval: Duration,
    /// An agent silent this long is dropped; longer than `heartbeat_interval`, at most
    /// [`MAX_DURATION`].
    #[serde(default = "default_heartbeat_timeout")]
    pub heartbeat_timeout: Duration,
    /// What agents are told their lease is; more than zero, at most [`MAX_DURATION`].
    #[serde(default = "default_lease")]
    pub lease: Duration,
    /// On SIGTERM: how long running runs get to revert their faults, and then how long open
    /// connections get to close; more than zero, at most [`MAX_DURATION`]. The whole stop
    /// takes at most about twice this (the shipped systemd unit allows 30 s).
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace: Duration,
    /// Where the controller keeps its run history (`DATA_DIR/history.sqlite3`).
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Probe samples older than this are pruned; verdicts and figures are kept forever.
    #[serde(default)]
    pub sample_retention: Option<Duration>,
    /// Serve Prometheus metrics over HTTP on this address (`/metrics`).
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
    /// Scenarios that run on a schedule (`[[schedules]]`).
    #[serde(default)]
    pub schedules: Vec<crate::schedule::ScheduleConfig>,
    /// The alert receiver (`[alerts]`): where Alertmanager delivers, for time to detect.
    #[serde(default)]
    pub alerts: Option<AlertsConfig>,
    /// The team's runbook automation (`[runbooks.NAME]`), which remediation steps call by name.
    #[serde(default)]
    pub runbooks: std::collections::BTreeMap<String, crate::webhook::runbook::RunbookConfig>,
}

/// `[alerts]`: an HTTPS listener of its own, serving the controller's certificate. Senders
/// authenticate with the bearer token in `token_file` or an operator certificate.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// Where to listen (`"0.0.0.0:9443"`); must differ from `listen` and `metrics_listen`.
    pub listen: SocketAddr,
    /// A file holding the bearer token senders present; relative to the config file. Without
    /// it, only operator certificates are accepted.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

impl AlertsConfig {
    /// The bearer token from `token_file`, if one is set; an unreadable or empty file is an
    /// error naming it.
    pub fn token(&self) -> Result<Option<crate::alerts::receiver::Token>, String> {
        let Some(path) = &self.token_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("alerts.token_file ({}): {e}", path.display()))?;
        crate::alerts::receiver::Token::new(&text)
            .map(Some)
            .ok_or_else(|| {
                format!(
                    "alerts.token_file ({}) is empty; write the token senders present",
                    path.display()
                )
            })
    }
}

/// PEM files; relative paths are resolved against the config file's directory.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsPaths {
    /// The fleet CA certificate.
    pub ca: PathBuf,
    /// The controller's certificate.
    pub cert: PathBuf,
    /// The controller's key.
    pub key: PathBuf,
}

fn default_heartbeat_interval() -> Duration {
    Duration::from_millis(1_000)
}
fn default_heartbeat_timeout() -> Duration {
    Duration::from_millis(5_000)
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/gameday")
}
fn default_shutdown_grace() -> Duration {
    Duration::from_millis(10_000)
}
fn default_lease() -> Duration {
    Duration::from_millis(10_000)
}

/// A config file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Unreadable.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not valid TOML or not the expected shape.
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What was wrong.
        message: String,
    },
    /// Inconsistent values.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What was wrong.
        message: String,
    },
}

impl ControllerConfig {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<ControllerConfig, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        let mut config: ControllerConfig = toml::from_str(&text).map_err(|e| {
            let (line, column) = e
                .span()
                .map(|s| line_column(&text, s.start))
                .unwrap_or((1, 1));
            ConfigError::Parse {
                path: shown.clone(),
                line,
                column,
                message: e.message().to_string(),
            }
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [
            &mut config.tls.ca,
            &mut config.tls.cert,
            &mut config.tls.key,
            &mut config.data_dir,
        ] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        if let Err(message) = config.check_durations() {
            return Err(ConfigError::Invalid {
                path: shown,
                message,
            });
        }
        if config.metrics_listen == Some(config.listen) && config.listen.port() != 0 {
            return Err(ConfigError::Invalid {
                path: shown,
                message: format!(
                    "metrics_listen ({}) must differ from listen: gRPC and metrics cannot share \
                     a port",
                    config.listen
                ),
            });
        }
        if let Some(alerts) = &mut config.alerts {
            if let Some(p) = alerts.token_file.as_mut().filter(|p| p.is_relative()) {
                *p = base.join(&*p);
            }
            let clash = [Some(config.listen), config.metrics_listen]
                .into_iter()
                .flatten()
                .any(|other| other == alerts.listen && other.port() != 0);
            let token = alerts.token();
            if let Some(message) = clash
                .then(|| {
                    format!(
                        "alerts.listen ({}) must differ from listen and metrics_listen",
                        alerts.listen
                    )
                })
                .or(token.err())
            {
                return Err(ConfigError::Invalid {
                    path: shown,
                    message,
                });
            }
        }
        for runbook in config.runbooks.values_mut() {
            for p in [runbook.token_file.as_mut(), runbook.ca.as_mut()]
                .into_iter()
                .flatten()
                .filter(|p| p.is_relative())
            {
                *p = base.join(&*p);
            }
        }
        if let Err(message) = crate::webhook::runbook::build(&config.runbooks) {
            return Err(ConfigError::Invalid {
                path: shown,
                message,
            });
        }
        for schedule in &mut config.schedules {
            schedule.resolve_paths(base);
        }
        crate::schedule::validate_all(&config.schedules).map_err(|message| {
            ConfigError::Invalid {
                path: shown,
                message,
            }
        })?;
        Ok(config)
    }

    /// Durations must be positive, bounded by [`MAX_DURATION`], and heartbeats must fit in
    /// the timeout.
    fn check_durations(&self) -> Result<(), String> {
        let bounded = [
            ("heartbeat_interval", self.heartbeat_interval),
            ("heartbeat_timeout", self.heartbeat_timeout),
            ("lease", self.lease),
            ("shutdown_grace", self.shutdown_grace),
        ];
        for (key, value) in bounded {
            if value.get().is_zero() || value.get() > MAX_DURATION {
                return Err(format!(
                    "{key} ({value}) must be longer than zero and at most {}",
                    Duration::from(MAX_DURATION)
                ));
            }
        }
        if self.sample_retention.is_some_and(|r| r.get().is_zero()) {
            return Err(
                "sample_retention must be longer than zero (leave it out to keep samples)".into(),
            );
        }
        if self.heartbeat_timeout <= self.heartbeat_interval {
            return Err(format!(
                "heartbeat_timeout ({}) must be longer than heartbeat_interval ({})",
                self.heartbeat_timeout, self.heartbeat_interval
            ));
        }
        Ok(())
    }

    /// The control channel's timing.
    pub fn timing(&self) -> ChannelTiming {
        ChannelTiming {
            heartbeat_interval: self.heartbeat_interval.get(),
            heartbeat_timeout: self.heartbeat_timeout.get(),
            lease: self.lease.get(),
            shutdown_grace: self.shutdown_grace.get(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_err(extra: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("controller.toml");
        std::fs::write(
            &path,
            format!(
                "listen = \"127.0.0.1:7443\"\n{extra}\n[tls]\nca = \"ca.pem\"\ncert = \"c.pem\"\n\
                 key = \"c.key\"\n"
            ),
        )
        .unwrap();
        ControllerConfig::load(&path)
            .map(|_| String::new())
            .unwrap_or_else(|e| e.to_string())
    }

    #[test]
    fn refuses_zero_and_unbounded_durations() {
        assert_eq!(load_err(""), "");
        for (extra, expected) in [
            (
                "lease = \"0s\"",
                "lease (0s) must be longer than zero and at most 1h",
            ),
            ("lease = \"2h\"", "lease (2h) must be longer than zero"),
            (
                "heartbeat_interval = \"0s\"",
                "heartbeat_interval (0s) must be",
            ),
            (
                "heartbeat_timeout = \"3h\"",
                "heartbeat_timeout (3h) must be",
            ),
            (
                "heartbeat_timeout = \"1s\"",
                "heartbeat_timeout (1s) must be longer than",
            ),
            (
                "sample_retention = \"0s\"",
                "sample_retention must be longer than zero",
            ),
            (
                "metrics_listen = \"127.0.0.1:7443\"",
                "metrics_listen (127.0.0.1:7443) must differ",
            ),
        ] {
            let err = load_err(extra);
            assert!(err.contains(expected), "{extra}: {err}");
            assert!(err.contains("controller.toml: "), "{extra}: {err}");
        }
    }
}
