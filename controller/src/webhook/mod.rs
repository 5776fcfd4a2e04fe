//! Webhooks for scheduled runs: the notice (verdicts, figures, run ids, a link to the report) as
//! JSON or as a Slack-compatible `{"text": ...}`, POSTed over HTTP/1.1 (plain or TLS) with a
//! few retries. A webhook never affects the run: failures are returned for logging only.
//!
//! Webhook URLs often carry a secret in their path (Slack's do), so only
//! [`WebhookTarget::redacted`] — scheme, host and port — is ever logged or shown.

mod client;
mod notice;
pub mod runbook;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::time::Duration;

use hyper::{StatusCode, Uri};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;
use serde::{Deserialize, Serialize};

pub use client::{RetryPolicy, WebhookClient};
pub use notice::{Firing, Notice, NoticeRun};

/// What the webhook body looks like (`webhook_format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    /// The [`Notice`] as a JSON document.
    #[default]
    Json,
    /// `{"text": "..."}` with Slack mrkdwn (Slack, Mattermost, Rocket.Chat incoming webhooks).
    Slack,
}

impl std::fmt::Display for WebhookFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WebhookFormat::Json => "json",
            WebhookFormat::Slack => "slack",
        })
    }
}

/// Why a webhook could not be configured or delivered.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The URL is not an absolute `http://` or `https://` URL with a host.
    #[error("webhook URL {0}")]
    Url(String),
    /// The CA bundle could not be read.
    #[error("webhook_ca {path}: {message}")]
    Ca {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// `report_url` lacks its placeholder.
    #[error(
        "report_url must contain {{run_id}}, e.g. \"https://reports.example.com/runs/{{run_id}}\""
    )]
    ReportUrl,
    /// Connecting, TLS or HTTP failed.
    #[error("{0}")]
    Transport(String),
    /// No answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The receiver answered with an error status.
    #[error("the receiver answered {0}")]
    Status(StatusCode),
    /// Every attempt failed.
    #[error("gave up after {attempts} attempt(s); last error: {last}")]
    GaveUp {
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: Box<WebhookError>,
    },
}

/// A checked webhook destination. Its `Debug` shows the redacted URL only.
#[derive(Clone)]
pub struct WebhookTarget {
    url: Uri,
    format: WebhookFormat,
    ca_pem: Option<String>,
    report_url: Option<String>,
}

impl std::fmt::Debug for WebhookTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookTarget")
            .field("url", &self.redacted())
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl WebhookTarget {
    /// Checks the URL (absolute, `http` or `https`, with a host), reads the CA bundle when one
    /// is given, and checks that `report_url` has its `{run_id}` placeholder.
    pub fn new(
        url: &str,
        format: WebhookFormat,
        ca: Option<&Path>,
        report_url: Option<&str>,
    ) -> Result<WebhookTarget, WebhookError> {
        let uri: Uri = url
            .parse()
            .map_err(|e| WebhookError::Url(format!("is not a URL: {e}")))?;
        match uri.scheme_str() {
            Some("http") | Some("https") => {}
            _ => {
                return Err(WebhookError::Url(
                    "must start with http:// or https://".into(),
                ))
            }
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(WebhookError::Url("has no host".into()));
        }
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            return Err(WebhookError::Url(
                "must not carry credentials (user:password@); put the token in the path or query"
                    .into(),
            ));
        }
        let ca_pem = match ca {
            Some(path) => {
                let ca_error = |message: String| WebhookError::Ca {
                    path: path.display().to_string(),
                    message,
                };
                if uri.scheme_str() != Some("https") {
                    return Err(ca_error("only applies to an https:// webhook".into()));
                }
                let pem = std::fs::read_to_string(path).map_err(|e| ca_error(e.to_string()))?;
                let count = CertificateDer::pem_slice_iter(pem.as_bytes())
                    .map(|c| c.map_err(|e| ca_error(format!("not PEM certificates: {e}"))))
                    .collect::<Result<Vec<_>, _>>()?
                    .len();
                if count == 0 {
                    return Err(ca_error("holds no certificate".into()));
                }
                Some(pem)
            }
            None => None,
        };
        if report_url.is_some_and(|r| !r.contains("{run_id}")) {
            return Err(WebhookError::ReportUrl);
        }
        Ok(WebhookTarget {
            url: uri,
            format,
            ca_pem,
            report_url: report_url.map(str::to_string),
        })
    }

    /// The body format.
    pub fn format(&self) -> WebhookFormat {
        self.format
    }

    /// The report link template, if configured.
    pub fn report_url(&self) -> Option<&str> {
        self.report_url.as_deref()
    }

    /// `scheme://host:port`, safe to log.
    pub fn redacted(&self) -> String {
        format!(
            "{}://{}/...",
            self.url.scheme_str().unwrap_or("http"),
            self.url.authority().map_or("", |a| a.as_str())
        )
    }

    /// Where a run's report is: `report_url` with the id filled in, or the command that
    /// prints it.
    pub fn report_link(&self, run_id: &str) -> String {
        report_link(self.report_url.as_deref(), run_id)
    }
}

fn report_link(template: Option<&str>, run_id: &str) -> String {
    match template {
        Some(t) => t.replace("{run_id}", run_id),
        None => format!("gameday report {run_id}"),
    }
}
