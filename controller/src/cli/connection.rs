//! What the operator CLI says when it cannot talk to the controller: checked before dialing
//! where possible (an `http://` URL, TLS files that cannot work), otherwise the root cause from
//! the bottom of the error chain, said once (not tonic's `transport error: tcp connect error:
//! tcp connect error: …`), with what it means and what to do.

use std::error::Error;
use std::path::Path;

use gameday_proto::tls::{self, TlsFile, TlsFileError, TlsMaterial, TlsPaths};
use rustls::{AlertDescription, CertificateError};

/// The role an operator's certificate must carry.
const OPERATOR_ROLE: &str = "operator";

/// Where and with what the CLI dials: for messages.
pub(super) struct Dial<'a> {
    /// The controller URL.
    pub controller: &'a str,
    /// `--ca`.
    pub ca: &'a Path,
    /// `--cert`.
    pub cert: &'a Path,
}

/// The controller serves mutual TLS only: an `http://` URL cannot work.
pub(super) fn check_url(controller: &str) -> anyhow::Result<()> {
    let scheme = controller.split_once("://").map(|(s, _)| s);
    match scheme {
        Some(s) if s.eq_ignore_ascii_case("https") => Ok(()),
        Some(s) if s.eq_ignore_ascii_case("http") => anyhow::bail!(
            "the controller speaks https only: use --controller https://{}",
            &controller[s.len() + 3..]
        ),
        _ => anyhow::bail!(
            "--controller {controller:?} is not an https:// URL (e.g. https://gameday.internal:7443)"
        ),
    }
}

/// Reads and checks `--ca`, `--cert` and `--key` together (PEM, a CA, signed by it, the key
/// belongs), and that the certificate is an operator's.
pub(super) fn check_files(ca: &Path, cert: &Path, key: &Path) -> anyhow::Result<TlsMaterial> {
    let material = tls::load(TlsPaths { ca, cert, key }).map_err(flag_error)?;
    let role = material.role().unwrap_or_default();
    if role != OPERATOR_ROLE {
        anyhow::bail!(
            "--cert ({}): this is {} certificate; the CLI needs operator certificates, from \
             `gameday certs issue --operator <name>`",
            cert.display(),
            if role.is_empty() {
                "a role-less".to_string()
            } else {
                format!("an {role}")
            }
        );
    }
    Ok(material)
}

/// A file problem said with the flag that names the file.
fn flag_error(e: TlsFileError) -> anyhow::Error {
    let flag = match e.file {
        TlsFile::Ca => "--ca",
        TlsFile::Cert => "--cert",
        TlsFile::Key => "--key",
    };
    anyhow::anyhow!("{flag} ({}): {}", e.path.display(), e.problem)
}

/// Connecting failed.
pub(super) fn connect_failed(error: &tonic::transport::Error, dial: &Dial<'_>) -> anyhow::Error {
    anyhow::anyhow!("{}", describe(error, dial))
}

/// A call on an established connection failed at the transport (not an answer of the
/// controller's: those are said as they are).
pub(super) fn call_failed(status: &tonic::Status, dial: &Dial<'_>) -> anyhow::Error {
    anyhow::anyhow!("{}", describe(status, dial))
}

/// The run's stream broke after the run began: the controller went away.
pub(super) fn lost_during_run(status: &tonic::Status, dial: &Dial<'_>, run: &str) -> anyhow::Error {
    let cause = root_cause(&gameday_proto::error_chain::chain(status));
    anyhow::anyhow!(
        "lost the controller at {} during {run} ({cause}); its agents revert every fault within \
         their lease (10s unless the controller's `lease` says otherwise), and the run will show \
         as interrupted (`gameday runs --status interrupted`)",
        dial.controller
    )
}

fn describe(error: &(dyn Error + 'static), dial: &Dial<'_>) -> String {
    let chain = gameday_proto::error_chain::chain(error);
    let cause = root_cause(&chain);
    let url = dial.controller;
    let host = url
        .parse::<tonic::codegen::http::Uri>()
        .ok()
        .and_then(|u| u.host().map(str::to_string))
        .unwrap_or_else(|| url.to_string());
    for e in &chain {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            if let Some(text) = tls_text(tls, dial, &host, &cause) {
                return text;
            }
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => {
                    return format!(
                        "cannot reach the controller at {url}: connection refused; is `gameday \
                         serve` running there, listening on that port?"
                    )
                }
                std::io::ErrorKind::TimedOut => {
                    return format!("cannot reach the controller at {url}: timed out ({cause})")
                }
                _ => {}
            }
        }
        let text = e.to_string();
        if text.contains("received fatal alert") {
            return refused_certificate(dial, &cause);
        }
        if text.contains("dns error") || text.contains("failed to lookup address") {
            return format!("cannot resolve the controller's host {host}: {cause}");
        }
    }
    let closed = chain.iter().any(|e| {
        let t = e.to_string();
        t.contains("connection closed")
            || t.contains("connection was not ready")
            || t.contains("operation was canceled")
            || t.contains("broken pipe")
            || t.contains("connection reset")
    });
    if closed {
        // With TLS 1.3 the controller checks the client certificate after the client thinks
        // the handshake is over, so its refusal arrives as a closed connection.
        return format!(
            "the controller at {url} closed the connection without answering ({cause}); it most \
             likely did not accept this certificate ({}): it must be signed by the controller's \
             fleet CA, which --ca ({}) must be too (the controller's log names the reason)",
            dial.cert.display(),
            dial.ca.display()
        );
    }
    format!("cannot talk to the controller at {url}: {cause}")
}

/// What a TLS error means; `None` when it says nothing more than its text.
fn tls_text(error: &rustls::Error, dial: &Dial<'_>, host: &str, cause: &str) -> Option<String> {
    Some(match error {
        rustls::Error::InvalidCertificate(e) => match e {
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!(
                    "the controller's certificate is not valid for {host} ({cause}); use a name \
                     it was issued for (`gameday certs init --controller-san NAME`)"
                )
            }
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => format!(
                "the controller's certificate is not valid now ({cause}); check the clocks, or \
                 renew it"
            ),
            _ => format!(
                "the controller's certificate is not signed by the fleet CA in {} ({cause}); \
                 --ca must be the CA of the controller's fleet",
                dial.ca.display()
            ),
        },
        rustls::Error::AlertReceived(alert) if REFUSAL_ALERTS.contains(alert) => {
            refused_certificate(dial, cause)
        }
        _ => return None,
    })
}

const REFUSAL_ALERTS: [AlertDescription; 9] = gameday_proto::tls::CERTIFICATE_REFUSED_ALERTS;

fn refused_certificate(dial: &Dial<'_>, cause: &str) -> String {
    format!(
        "the controller did not accept this certificate ({}): it is not signed by the fleet CA \
         the controller trusts ({cause}); --cert must be issued by the controller's fleet CA \
         (and --ca ({}) be that CA)",
        dial.cert.display(),
        dial.ca.display()
    )
}

/// The lowest error's message (a status without a source said by its message). A connection
/// that ended mid-TLS-record is "the connection closed", not rustls' advice about close_notify.
fn root_cause(chain: &[&(dyn Error + 'static)]) -> String {
    if gameday_proto::error_chain::closed_early(chain) {
        return "the connection closed".to_string();
    }
    let root = chain.last().expect("a chain holds its first error");
    match root.downcast_ref::<tonic::Status>() {
        Some(status) => status.message().to_string(),
        None => root.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn dial() -> Dial<'static> {
        Dial {
            controller: "https://gameday.internal:7443",
            ca: Path::new("/etc/gameday/ca.pem"),
            cert: Path::new("/etc/gameday/operator-sre.pem"),
        }
    }

    fn status_from(source: impl Error + Send + Sync + 'static) -> tonic::Status {
        let mut status = tonic::Status::unknown("transport error");
        status.set_source(Arc::new(source));
        status
    }

    #[test]
    fn an_http_url_is_refused_before_dialing() {
        let e = check_url("http://127.0.0.1:7443").unwrap_err();
        assert_eq!(
            e.to_string(),
            "the controller speaks https only: use --controller https://127.0.0.1:7443"
        );
        assert!(check_url("https://127.0.0.1:7443").is_ok());
    }

    #[test]
    fn causes_are_said_once_with_what_to_do() {
        let refused = status_from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        let text = call_failed(&refused, &dial()).to_string();
        assert_eq!(
            text,
            "cannot reach the controller at https://gameday.internal:7443: connection refused; \
             is `gameday serve` running there, listening on that port?"
        );
        let untrusted = status_from(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(CertificateError::BadSignature),
        ));
        let text = call_failed(&untrusted, &dial()).to_string();
        assert!(
            text.starts_with(
                "the controller's certificate is not signed by the fleet CA in /etc/gameday/ca.pem"
            ),
            "{text}"
        );
        assert_eq!(text.matches("BadSignature").count(), 1, "{text}");
        let alert = status_from(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(AlertDescription::UnknownCA),
        ));
        let text = call_failed(&alert, &dial()).to_string();
        assert!(
            text.starts_with(
                "the controller did not accept this certificate (/etc/gameday/operator-sre.pem): \
                 it is not signed by the fleet CA"
            ),
            "{text}"
        );
    }

    #[test]
    fn a_lost_controller_says_what_becomes_of_the_run() {
        let closed = tonic::Status::unavailable("connection closed");
        let text = lost_during_run(&closed, &dial(), "run 2/3 of checkout-kill").to_string();
        assert!(
            text.starts_with(
                "lost the controller at https://gameday.internal:7443 during run 2/3 of \
                 checkout-kill (connection closed); its agents revert every fault within their \
                 lease (10s"
            ),
            "{text}"
        );
        assert!(text.contains("the run will show as interrupted"), "{text}");
        let eof = status_from(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "peer closed connection without sending TLS close_notify: https://docs.rs/rustls",
        ));
        let text = lost_during_run(&eof, &dial(), "run 1/1 of s").to_string();
        assert!(text.contains("(the connection closed)"), "{text}");
        assert!(!text.contains("docs.rs"), "{text}");
    }
}
