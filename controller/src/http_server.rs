//! The controller's small HTTP/1.1 listeners (`/metrics`, the alert receiver): hyper on a
//! listener of its own, optionally behind TLS, each connection on a task of its own, and a
//! bounded stop that lets requests in flight finish.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{header, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// How long a stopping server lets requests in flight finish.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// A request whose headers take longer is dropped (a slow or stuck client holds nothing).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more wait to be accepted, so a flood of clients costs a bounded
/// amount of memory and never the controller's probes or heartbeats.
const MAX_CONNECTIONS: usize = 256;

/// Who is on the other end of a connection.
#[derive(Clone, Debug, Default)]
pub struct Peer {
    /// Their address.
    pub addr: Option<SocketAddr>,
    /// The DER of the client certificate they presented over TLS, if any; the TLS layer has
    /// already verified it against the fleet CA.
    pub certificate: Option<Vec<u8>>,
}

/// A listener serving one handler until [`HttpServer::stop`].
#[derive(Debug)]
pub struct HttpServer {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl HttpServer {
    /// Binds `listen` (failing here, before the controller starts anything, if it cannot) and
    /// serves `handler` on it, over TLS when `tls` is given. `what` names it in logs.
    pub async fn start<H, F>(
        listen: SocketAddr,
        tls: Option<TlsAcceptor>,
        what: &'static str,
        handler: H,
    ) -> std::io::Result<HttpServer>
    where
        H: Fn(Request<Incoming>, Peer) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
    {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, tls, what, handler, stopped));
        Ok(HttpServer { addr, stop, task })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets requests in flight finish briefly, and waits for the task.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let abort = self.task.abort_handle();
        if tokio::time::timeout(STOP_GRACE * 2, self.task)
            .await
            .is_err()
        {
            abort.abort();
        }
    }
}

async fn accept_loop<H, F>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    what: &'static str,
    handler: H,
    mut stopped: watch::Receiver<bool>,
) where
    H: Fn(Request<Incoming>, Peer) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let mut connections = JoinSet::new();
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => s,
            _ = stop_requested(&mut stopped) => break,
        };
        let Ok(slot) = slot else { break };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop_requested(&mut stopped) => break,
        };
        while connections.try_join_next().is_some() {}
        let (stream, addr) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: pause rather than spin.
                tracing::warn!(server = what, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (handler, stopped, tls) = (handler.clone(), stopped.clone(), tls.clone());
        connections.spawn(async move {
            let _slot = slot;
            let mut peer = Peer {
                addr: Some(addr),
                certificate: None,
            };
            let Some(tls) = tls else {
                return serve(stream, peer, handler, stopped).await;
            };
            if let Some(stream) = crate::server::handshake(&tls, stream, addr, || {}).await {
                peer.certificate = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .map(|c| c.as_ref().to_vec());
                serve(stream, peer, handler, stopped).await;
            }
        });
    }
    while connections.join_next().await.is_some() {}
}

async fn serve<S, H, F>(stream: S, peer: Peer, handler: H, mut stopped: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request<Incoming>, Peer) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let service = service_fn(move |req| {
        let answer = handler(req, peer.clone());
        async move { Ok::<_, Infallible>(answer.await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stop_requested(&mut stopped) => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(STOP_GRACE, conn).await;
        }
    }
}

/// Resolves once a stop is requested (or its sender is gone).
async fn stop_requested(stopped: &mut watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

/// A response with `status`, `content_type` and `body`.
pub fn reply(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}
