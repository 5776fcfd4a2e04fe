//! The controller's own TLS acceptor: every handshake runs on a task of its own (a slow or
//! silent client delays nobody), and every refused one is logged with the peer's address and
//! the reason — a certificate from another fleet, no certificate, plaintext — so an operator
//! can tell why an agent or a CLI cannot get in.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::certs::Pem;

/// A handshake that takes longer than this is dropped, so half-open connections cannot pile up.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes in progress at most; more wait for a slot (accepting goes on, bounded).
const MAX_HANDSHAKES: usize = 256;

/// The controller's server TLS: presents its certificate and requires every client to present
/// one signed by the fleet CA.
#[derive(Clone)]
pub struct ServerTls(Arc<ServerConfig>);

/// Why the server TLS could not be built from the PEM texts.
#[derive(Debug, thiserror::Error)]
pub enum ServerTlsError {
    /// A PEM text holds no usable certificate or key.
    #[error("{what}: {message}")]
    Pem {
        /// Which one: "CA", "certificate", "key".
        what: &'static str,
        /// What is wrong.
        message: String,
    },
    /// rustls refused the combination.
    #[error("server TLS: {0}")]
    Rustls(#[from] rustls::Error),
}

impl ServerTls {
    /// Mutual TLS with `controller`'s certificate and key, trusting clients signed by `ca_pem`.
    pub fn new(ca_pem: &str, controller: &Pem) -> Result<ServerTls, ServerTlsError> {
        ServerTls::build(ca_pem, controller, true)
    }

    /// Like [`ServerTls::new`], but a client may also come without a certificate (one that
    /// presents a certificate must still present one from the fleet CA), for listeners that
    /// authenticate such clients otherwise (a bearer token) and speak HTTP/1.1.
    pub fn client_certificate_optional(
        ca_pem: &str,
        controller: &Pem,
    ) -> Result<ServerTls, ServerTlsError> {
        ServerTls::build(ca_pem, controller, false)
    }

    /// The TLS acceptor for a listener of its own.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.0.clone())
    }

    fn build(ca_pem: &str, controller: &Pem, required: bool) -> Result<ServerTls, ServerTlsError> {
        let pem = |what: &'static str| {
            move |e: rustls::pki_types::pem::Error| ServerTlsError::Pem {
                what,
                message: e.to_string(),
            }
        };
        let mut roots = RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots
                .add(ca.map_err(pem("CA"))?)
                .map_err(ServerTlsError::Rustls)?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
        if !required {
            verifier = verifier.allow_unauthenticated();
        }
        let verifier = verifier.build().map_err(|e| ServerTlsError::Pem {
            what: "CA",
            message: e.to_string(),
        })?;
        let chain = CertificateDer::pem_slice_iter(controller.cert.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(pem("certificate"))?;
        let key = PrivateKeyDer::from_pem_slice(controller.key.as_bytes()).map_err(pem("key"))?;
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)?;
        config.alpn_protocols = if required {
            vec![b"h2".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        Ok(ServerTls(Arc::new(config)))
    }
}

/// Accepts TCP connections on `listener` and yields those whose TLS handshake succeeded, until
/// `stop` is cancelled or the consumer goes away. Handshakes run on `tasks`.
pub(super) fn incoming(
    listener: TcpListener,
    tls: ServerTls,
    stop: CancellationToken,
    tasks: TaskTracker,
) -> ReceiverStream<Result<TlsStream<TcpStream>, std::io::Error>> {
    let (tx, rx) = mpsc::channel(64);
    let acceptor = TlsAcceptor::from(tls.0);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
    let spawner = tasks.clone();
    tasks.spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = stop.cancelled() => return,
                _ = tx.closed() => return,
                accepted = listener.accept() => accepted,
            };
            let (tcp, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            spawner.spawn(async move {
                let mut slot = Some(slot);
                // Lingering takes no handshake slot: refused clients cannot crowd out good ones.
                if let Some(stream) = handshake(&acceptor, tcp, peer, || drop(slot.take())).await {
                    let _ = tx.send(Ok(stream)).await;
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

/// The TLS handshake on `tcp` from `peer`, within [`HANDSHAKE_TIMEOUT`]. A refused one is
/// logged with the reason, `before_linger` runs, and the connection is closed so the client
/// reads why ([`linger_close`]); `None` then, and for a client too slow to finish.
pub(crate) async fn handshake(
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
    before_linger: impl FnOnce(),
) -> Option<TlsStream<TcpStream>> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp).into_fallible()).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err((e, tcp))) => {
            refused(peer, &e);
            before_linger();
            linger_close(tcp).await;
            None
        }
        Err(_) => {
            tracing::warn!(%peer, timeout = ?HANDSHAKE_TIMEOUT, "TLS handshake refused: the client did not finish it in time");
            None
        }
    }
}

/// How long a refused connection is kept half-open to read what the client already sent.
const LINGER: Duration = Duration::from_secs(1);

/// Closes a refused connection so that the client reads our alert. In TLS 1.3 a client sends
/// its first data (an HTTP/2 preface) before it learns its certificate was refused; closing with
/// that data unread makes the kernel answer with a reset, and a client that writes again gets a
/// broken pipe instead of the alert, retrying as if the network had failed. Shutting down our
/// side (FIN after the alert) and reading until the client closes, for at most [`LINGER`], lets
/// the client see why.
async fn linger_close(mut tcp: TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = tcp.shutdown().await;
    let mut scratch = [0u8; 4096];
    let drain = async {
        let mut left: usize = 256 * 1024;
        while let Ok(n @ 1..) = tcp.read(&mut scratch).await {
            left = left.saturating_sub(n);
            if left == 0 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// Logs a failed handshake with what an operator can act on.
fn refused(peer: SocketAddr, e: &std::io::Error) {
    let reason = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .map_or_else(|| e.to_string(), explain);
    tracing::warn!(%peer, reason = %reason, "TLS handshake refused");
}

fn explain(e: &rustls::Error) -> String {
    use rustls::{CertificateError, Error};
    match e {
        Error::NoCertificatesPresented => {
            "the client presented no certificate (agents and operators need one from the fleet CA)"
                .into()
        }
        Error::InvalidCertificate(CertificateError::UnknownIssuer)
        | Error::InvalidCertificate(CertificateError::BadSignature) => {
            "the client's certificate is not signed by this fleet's CA".into()
        }
        Error::InvalidCertificate(CertificateError::Expired) => {
            "the client's certificate has expired".into()
        }
        Error::InvalidMessage(_) => {
            "the client did not speak TLS (plaintext or http:// instead of https://?)".into()
        }
        Error::AlertReceived(alert) => format!(
            "the client gave up the handshake ({alert:?}): it does not trust this controller's \
             certificate (another fleet's CA, or a name not in the certificate)"
        ),
        other => other.to_string(),
    }
}
