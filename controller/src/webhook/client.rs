//! Delivery: one HTTP/1.1 `POST` per attempt on a fresh connection, plain or TLS (rustls), with
//! retries and exponential backoff.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Bytes;
use hyper::{header, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;

use super::{Notice, WebhookError, WebhookTarget};

/// How hard to try.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Attempts in all.
    pub attempts: u32,
    /// Wait before the second attempt; doubled before each further one.
    pub backoff: Duration,
    /// Longest one attempt may take, connection included.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 3,
            backoff: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Posts notices to one target.
#[derive(Clone)]
pub struct WebhookClient {
    target: WebhookTarget,
    tls: Option<tokio_rustls::TlsConnector>,
    retry: RetryPolicy,
}

impl std::fmt::Debug for WebhookClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookClient")
            .field("target", &self.target.redacted())
            .finish_non_exhaustive()
    }
}

impl WebhookClient {
    /// A client for `target`. An `https` target trusts its `webhook_ca`, or else the system's
    /// root certificates.
    pub fn new(target: WebhookTarget, retry: RetryPolicy) -> Result<WebhookClient, WebhookError> {
        let tls = if target.url.scheme_str() == Some("https") {
            Some(tls_connector(target.ca_pem.as_deref())?)
        } else {
            None
        };
        Ok(WebhookClient { target, tls, retry })
    }

    /// The destination.
    pub fn target(&self) -> &WebhookTarget {
        &self.target
    }

    /// Posts `notice`, retrying connection failures, timeouts, 408, 429 and 5xx answers with
    /// exponential backoff. Returns the number of attempts it took.
    pub async fn deliver(&self, notice: &Notice) -> Result<u32, WebhookError> {
        let body = Bytes::from(notice.body(self.target.format));
        let mut backoff = self.retry.backoff;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = tokio::time::timeout(self.retry.timeout, self.post(body.clone(), None))
                .await
                .unwrap_or(Err(WebhookError::Timeout(self.retry.timeout)));
            let error = match result {
                Ok((status, _)) if status.is_success() => return Ok(attempt),
                Ok((status, _)) => WebhookError::Status(status),
                Err(e) => e,
            };
            let retryable = match &error {
                WebhookError::Status(s) => {
                    s.is_server_error()
                        || *s == StatusCode::REQUEST_TIMEOUT
                        || *s == StatusCode::TOO_MANY_REQUESTS
                }
                _ => true,
            };
            if !retryable || attempt >= self.retry.attempts {
                return Err(WebhookError::GaveUp {
                    attempts: attempt,
                    last: Box::new(error),
                });
            }
            tracing::warn!(webhook = %self.target.redacted(), attempt, error = %error, retry_in = ?backoff, "webhook delivery failed; retrying");
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
    }

    /// One POST of `body` (JSON), with `bearer` as an `Authorization: Bearer` token when given;
    /// the answer's status and body (up to 64 KiB). No retry: runbook automation is not
    /// always safe to call twice.
    pub async fn post(
        &self,
        body: Bytes,
        bearer: Option<&str>,
    ) -> Result<(StatusCode, Bytes), WebhookError> {
        let url = &self.target.url;
        let host = url
            .host()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let tls = self.tls.as_ref();
        let port = url
            .port_u16()
            .unwrap_or(if tls.is_some() { 443 } else { 80 });
        let mut request = Request::builder();
        if let Some(token) = bearer {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .method(Method::POST)
            .uri(url.path_and_query().map_or("/", |p| p.as_str()))
            .header(header::HOST, url.authority().map_or(host, |a| a.as_str()))
            .header(header::CONTENT_TYPE, "application/json")
            .header(
                header::USER_AGENT,
                concat!("gameday/", env!("CARGO_PKG_VERSION")),
            )
            .body(Full::new(body))
            .map_err(|e| WebhookError::Transport(e.to_string()))?;
        let transport = |e: &dyn std::fmt::Display| WebhookError::Transport(e.to_string());
        let tcp = TcpStream::connect((host, port))
            .await
            .map_err(|e| transport(&format!("connecting to {host}:{port}: {e}")))?;
        match tls {
            None => exchange(TokioIo::new(tcp), request).await,
            Some(tls) => {
                let name = ServerName::try_from(host.to_string())
                    .map_err(|e| transport(&format!("{host}: {e}")))?;
                let stream = tls
                    .connect(name, tcp)
                    .await
                    .map_err(|e| transport(&format!("TLS with {host}: {e}")))?;
                exchange(TokioIo::new(stream), request).await
            }
        }
    }
}

/// One request on a fresh HTTP/1.1 connection; the answer's body is read (up to 64 KiB, so
/// the connection closes cleanly) and returned with its status.
async fn exchange<T>(
    io: T,
    request: Request<Full<Bytes>>,
) -> Result<(StatusCode, Bytes), WebhookError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let http = |e: hyper::Error| WebhookError::Transport(format!("HTTP: {e}"));
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(http)?;
    let send = async move {
        let response = sender.send_request(request).await?;
        let status = response.status();
        let body = Limited::new(response.into_body(), 64 * 1024)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        Ok::<_, hyper::Error>((status, body))
    };
    let (status, _) = tokio::join!(send, conn);
    status.map_err(http)
}

fn tls_connector(ca_pem: Option<&str>) -> Result<tokio_rustls::TlsConnector, WebhookError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()).flatten() {
                roots
                    .add(cert)
                    .map_err(|e| WebhookError::Transport(format!("webhook CA: {e}")))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::debug!(error = %e, "skipping a system root certificate");
            }
            roots.add_parsable_certificates(found.certs);
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| WebhookError::Transport(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}
