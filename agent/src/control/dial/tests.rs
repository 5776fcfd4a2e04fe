use std::sync::Arc;

use super::*;

/// A stream failure whose status carries `source`, as tonic builds them from transport errors.
fn stream_failure(source: impl Error + Send + Sync + 'static) -> SessionError {
    let mut status = tonic::Status::unavailable("transport error");
    status.set_source(Arc::new(source));
    SessionError::Stream(status)
}

fn tls_in_io(error: rustls::Error) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, error)
}

#[test]
fn refused_connections_are_retried_with_their_cause() {
    let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
    let failure = classify(&stream_failure(refused));
    assert_eq!(failure.outlook, Outlook::Retry);
    assert_eq!(failure.cause, "connection refused");
}

#[test]
fn an_untrusted_controller_certificate_is_permanent() {
    let error = tls_in_io(rustls::Error::InvalidCertificate(
        CertificateError::UnknownIssuer,
    ));
    let failure = classify(&stream_failure(error));
    assert_eq!(failure.outlook, Outlook::Permanent);
    assert_eq!(
        failure.to_string(),
        "the controller's certificate is not trusted by this agent's tls.ca: invalid peer \
         certificate: UnknownIssuer"
    );
}

#[test]
fn a_certificate_the_controller_refuses_is_permanent() {
    for alert in [
        AlertDescription::UnknownCA,
        AlertDescription::BadCertificate,
        AlertDescription::CertificateRequired,
        AlertDescription::DecryptError,
    ] {
        let failure = classify(&stream_failure(tls_in_io(rustls::Error::AlertReceived(
            alert,
        ))));
        assert_eq!(failure.outlook, Outlook::Permanent, "{alert:?}");
        assert_eq!(
            failure.meaning,
            Some("the controller refused this agent's certificate")
        );
    }
    let denied = tonic::Status::permission_denied("this certificate belongs to agent \"a\"");
    let failure = classify(&SessionError::Stream(denied));
    assert_eq!(failure.outlook, Outlook::Permanent);
    assert_eq!(
        failure.to_string(),
        "the controller refused this agent: PermissionDenied: this certificate belongs to \
         agent \"a\""
    );
}

#[test]
fn a_refusal_alert_known_only_by_its_text_is_permanent() {
    // What h2 hands over: the I/O error's kind and message, not the rustls error.
    let flattened = std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        rustls::Error::AlertReceived(AlertDescription::UnknownCA).to_string(),
    );
    let failure = classify(&stream_failure(flattened));
    assert_eq!(failure.outlook, Outlook::Permanent);
    assert_eq!(
        failure.to_string(),
        "the controller refused this agent's certificate: received fatal alert: UnknownCA"
    );
}

#[test]
fn clock_problems_and_other_alerts_may_heal() {
    for error in [
        rustls::Error::InvalidCertificate(CertificateError::Expired),
        rustls::Error::InvalidCertificate(CertificateError::NotValidYet),
        rustls::Error::AlertReceived(AlertDescription::InternalError),
    ] {
        let failure = classify(&stream_failure(tls_in_io(error.clone())));
        assert_eq!(failure.outlook, Outlook::Retry, "{error:?}");
    }
}

#[test]
fn unresolvable_hosts_are_retried_as_such() {
    #[derive(Debug, thiserror::Error)]
    #[error("dns error")]
    struct Dns(#[source] std::io::Error);
    let lookup =
        std::io::Error::other("failed to lookup address information: Name or service not known");
    let failure = classify(&stream_failure(Dns(lookup)));
    assert_eq!(failure.outlook, Outlook::Unresolved);
    assert_eq!(
        failure.cause,
        "failed to lookup address information: Name or service not known"
    );
}

#[test]
fn a_second_live_agent_with_this_certificate_is_permanent() {
    let refused = tonic::Status::already_exists(
        "agent web-1 is already connected from 10.0.0.5:41234 (another instance)",
    );
    let failure = classify(&SessionError::Stream(refused));
    assert_eq!(failure.outlook, Outlook::Permanent);
    assert_eq!(
        failure.to_string(),
        "another agent with this certificate is connected to the controller: AlreadyExists: \
         agent web-1 is already connected from 10.0.0.5:41234 (another instance)"
    );
}

#[test]
fn a_connection_closed_mid_record_is_said_plainly_and_retried() {
    let eof = std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        "peer closed connection without sending TLS close_notify: https://docs.rs/rustls/latest",
    );
    let failure = classify(&stream_failure(eof));
    assert_eq!(failure.outlook, Outlook::Retry);
    assert_eq!(failure.cause, "the connection closed");
}
