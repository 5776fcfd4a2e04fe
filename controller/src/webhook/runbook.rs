//! Runbook webhooks (`[runbooks.NAME]` in the controller's config): the team's runbook
//! automation, which a scenario's remediation step calls by name. The URL and its secret stay
//! in the controller's config, so a scenario cannot make the controller call an address its
//! owner did not list.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Bytes;
use serde::{Deserialize, Serialize};

use super::{RetryPolicy, WebhookClient, WebhookFormat, WebhookTarget};

/// `[runbooks.NAME]` as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunbookConfig {
    /// Where to POST (`http://` or `https://`).
    pub url: String,
    /// A file holding a bearer token sent as `Authorization: Bearer`; relative to the config.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// The CA bundle the runbook's HTTPS certificate chains to (else the system's roots).
    #[serde(default)]
    pub ca: Option<PathBuf>,
}

/// One runbook, ready to call.
#[derive(Clone, Debug)]
pub struct Runbook {
    client: WebhookClient,
    token: Option<String>,
}

/// What a remediation step posts to its runbook.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RunbookCall {
    /// The run.
    pub run_id: String,
    /// The scenario's name.
    pub scenario: String,
    /// The step's name.
    pub step: String,
    /// What started it ("when the alert arrives").
    pub trigger: String,
    /// When the fault took effect, ms since the Unix epoch.
    pub fault_unix_ms: u64,
}

/// The answer of a runbook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunbookAnswer {
    /// The HTTP status.
    pub status: u16,
    /// Its body, lossy UTF-8.
    pub body: String,
}

impl Runbook {
    /// Checks the URL, reads the CA and the token; errors name the runbook and the key.
    pub fn new(name: &str, config: &RunbookConfig) -> Result<Runbook, String> {
        let target =
            WebhookTarget::new(&config.url, WebhookFormat::Json, config.ca.as_deref(), None)
                .map_err(|e| format!("runbooks.{name}: {e}"))?;
        let token = match &config.token_file {
            Some(path) => Some(read_token(name, path)?),
            None => None,
        };
        let retry = RetryPolicy {
            attempts: 1,
            ..RetryPolicy::default()
        };
        let client =
            WebhookClient::new(target, retry).map_err(|e| format!("runbooks.{name}: {e}"))?;
        Ok(Runbook { client, token })
    }

    /// `scheme://host:port/...`, safe to show.
    pub fn redacted(&self) -> String {
        self.client.target().redacted()
    }

    /// POSTs `call` once and waits at most `timeout` for the answer.
    pub async fn call(
        &self,
        call: &RunbookCall,
        timeout: Duration,
    ) -> Result<RunbookAnswer, String> {
        let body = Bytes::from(serde_json::to_vec(call).map_err(|e| e.to_string())?);
        match tokio::time::timeout(timeout, self.client.post(body, self.token.as_deref())).await {
            Ok(Ok((status, body))) => Ok(RunbookAnswer {
                status: status.as_u16(),
                body: String::from_utf8_lossy(&body).into_owned(),
            }),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!(
                "no answer within {}",
                gameday_proto::Duration::from(timeout)
            )),
        }
    }
}

fn read_token(name: &str, path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("runbooks.{name}.token_file ({}): {e}", path.display()))?;
    let token = text.trim();
    if token.is_empty() || token.chars().any(|c| c.is_control()) {
        return Err(format!(
            "runbooks.{name}.token_file ({}) must hold one token on one line",
            path.display()
        ));
    }
    Ok(token.to_string())
}

/// Every configured runbook, by name.
pub type Runbooks = BTreeMap<String, Arc<Runbook>>;

/// Builds every runbook of the config; the first error names the runbook.
pub fn build(configs: &BTreeMap<String, RunbookConfig>) -> Result<Runbooks, String> {
    configs
        .iter()
        .map(|(name, c)| Ok((name.clone(), Arc::new(Runbook::new(name, c)?))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runbook_needs_a_usable_url_and_token() {
        let dir = tempfile::tempdir().unwrap();
        let config = |url: &str, token: Option<&str>| RunbookConfig {
            url: url.into(),
            token_file: token.map(|t| {
                let p = dir.path().join("token");
                std::fs::write(&p, t).unwrap();
                p
            }),
            ca: None,
        };
        let e = Runbook::new("promote", &config("ftp://x/", None)).unwrap_err();
        assert!(
            e.starts_with("runbooks.promote: webhook URL must start with http"),
            "{e}"
        );
        let e = Runbook::new("promote", &config("http://127.0.0.1:9/", Some("  \n"))).unwrap_err();
        assert!(
            e.contains("runbooks.promote.token_file") && e.contains("one token"),
            "{e}"
        );
        let ok = Runbook::new(
            "promote",
            &config("http://127.0.0.1:9/hook?secret=1", Some("t0k\n")),
        )
        .unwrap();
        assert_eq!(ok.redacted(), "http://127.0.0.1:9/...");
        assert_eq!(ok.token.as_deref(), Some("t0k"));
    }
}
