//! Dialing the controller: the endpoint built from the TLS material checked at start, and what
//! a failed session means — worth retrying (connection refused, timeouts, a DNS outage) or
//! never going to work (a certificate one side refuses), with the real cause from the bottom of
//! the error chain rather than tonic's `transport error`.

use std::error::Error;
use std::fmt;
use std::time::Duration;

use gameday_proto::tls::TlsMaterial;
use rustls::{AlertDescription, CertificateError};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use crate::config::AgentConfig;

/// How long one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a session with the controller ended.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// No connection could be made (TCP, TLS or HTTP/2 setup).
    #[error("connect: {0}")]
    Connect(#[source] tonic::transport::Error),
    /// The control stream failed or was refused.
    #[error("control stream: {0}")]
    Stream(#[source] tonic::Status),
}

/// What a failure means for the next attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outlook {
    /// May heal by itself (connection refused, timeout, controller restarting): retry.
    Retry,
    /// The controller's host name does not resolve; may be a DNS outage: retry, loudly.
    Unresolved,
    /// A certificate one side refuses: retrying with the same files cannot help.
    Permanent,
}

/// A classified session failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Retry or give up.
    pub outlook: Outlook,
    /// The root cause, as the lowest error in the chain says it.
    pub cause: String,
    /// What it means, for a permanent failure.
    pub meaning: Option<&'static str>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.meaning {
            Some(meaning) => write!(f, "{meaning}: {}", self.cause),
            None => f.write_str(&self.cause),
        }
    }
}

/// The controller endpoint with mutual TLS from the checked files.
pub fn endpoint(
    config: &AgentConfig,
    tls: &TlsMaterial,
) -> Result<Endpoint, tonic::transport::Error> {
    let host = config.controller.host().to_string();
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&tls.ca_pem))
        .identity(Identity::from_pem(&tls.cert_pem, &tls.key_pem))
        .domain_name(host);
    Ok(Endpoint::from_shared(config.controller.to_string())?
        .tls_config(tls)?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(5)))
}

/// Classifies a failed session by walking its error chain.
pub fn classify(error: &SessionError) -> Failure {
    let chain = gameday_proto::error_chain::chain(error);
    let cause = root_cause(&chain);
    let failure = |outlook, meaning| Failure {
        outlook,
        cause: cause.clone(),
        meaning,
    };
    for e in &chain {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            if let Some(meaning) = permanent_tls(tls) {
                return failure(Outlook::Permanent, Some(meaning));
            }
        }
        if refused_alert_text(*e) {
            return failure(Outlook::Permanent, Some(REFUSED_MEANING));
        }
        if let Some(status) = e.downcast_ref::<tonic::Status>() {
            if matches!(
                status.code(),
                tonic::Code::Unauthenticated | tonic::Code::PermissionDenied
            ) {
                return failure(
                    Outlook::Permanent,
                    Some("the controller refused this agent"),
                );
            }
            // Another live agent presents this certificate: retrying would make the two take
            // the stream from each other in turn, so stop and say so.
            if status.code() == tonic::Code::AlreadyExists {
                return failure(
                    Outlook::Permanent,
                    Some("another agent with this certificate is connected to the controller"),
                );
            }
        }
    }
    let unresolved = chain.iter().any(|e| {
        let text = e.to_string();
        text.contains("dns error") || text.contains("failed to lookup address")
    });
    if unresolved {
        return failure(Outlook::Unresolved, None);
    }
    failure(Outlook::Retry, None)
}

/// Alerts by which the controller says it refuses this agent's certificate.
const REFUSED_ALERTS: [AlertDescription; 9] = gameday_proto::tls::CERTIFICATE_REFUSED_ALERTS;

const REFUSED_MEANING: &str = "the controller refused this agent's certificate";

/// A refusal alert that reached us as text only: h2 keeps an I/O error's kind and message but
/// not the error itself, so a rustls alert read by the HTTP/2 connection is a string by then.
fn refused_alert_text(error: &(dyn Error + 'static)) -> bool {
    let text = error.to_string();
    REFUSED_ALERTS
        .iter()
        .any(|alert| text.contains(&format!("received fatal alert: {alert:?}")))
}

/// What a TLS error means when retrying cannot fix it; `None` when it may heal.
fn permanent_tls(error: &rustls::Error) -> Option<&'static str> {
    match error {
        rustls::Error::InvalidCertificate(e) => match e {
            // Clocks get fixed and certificates renewed: worth waiting for.
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => None,
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                Some("the controller's certificate is not valid for the host in `controller`")
            }
            _ => Some("the controller's certificate is not trusted by this agent's tls.ca"),
        },
        rustls::Error::AlertReceived(alert) if REFUSED_ALERTS.contains(alert) => {
            Some(REFUSED_MEANING)
        }
        _ => None,
    }
}

/// The lowest error's message; a status without a source is said with its code. A connection
/// that ended mid-TLS-record is "the connection closed", not rustls' advice about close_notify.
fn root_cause(chain: &[&(dyn Error + 'static)]) -> String {
    if gameday_proto::error_chain::closed_early(chain) {
        return "the connection closed".to_string();
    }
    let root = chain.last().expect("a chain holds its first error");
    match root.downcast_ref::<tonic::Status>() {
        Some(status) => format!("{:?}: {}", status.code(), status.message()),
        None => root.to_string(),
    }
}

#[cfg(test)]
mod tests;
