//! The HTTPS listener alerts are delivered to. Alertmanager posts to `/alerts/alertmanager`;
//! other systems post the generic form to `/alerts`; runbook automation posts
//! `{"run": ID, "text": ...}` to `/remediation` when it starts acting on a run. A sender
//! authenticates with a bearer token (read from a file) or with an operator certificate from
//! the fleet CA.
//!
//! Alertmanager retries a delivery that got a 5xx and drops one that got a 4xx, so a delivery
//! that can never succeed (bad JSON, wrong token) gets a 4xx, and only a controller that is
//! stopping answers 503. A refused delivery records nothing.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{header, Method, Request, Response, StatusCode};
use sha2::{Digest, Sha256};
use tokio_rustls::TlsAcceptor;

use super::log::AlertLog;
use super::payload;
use crate::certs::Role;
use crate::http_server::{reply, HttpServer, Peer};

/// Largest delivery accepted. Alertmanager sends every alert of a group in one body; a few
/// thousand alerts fit.
pub const MAX_BODY: usize = 1024 * 1024;

/// A bearer token, kept only as its digest so that comparing takes the same time whatever the
/// guess.
#[derive(Clone)]
pub struct Token([u8; 32]);

impl Token {
    /// The token `text` (surrounding whitespace, such as a file's last newline, is not part of
    /// it); `None` when empty.
    pub fn new(text: &str) -> Option<Token> {
        let text = text.trim();
        (!text.is_empty()).then(|| Token(Sha256::digest(text.as_bytes()).into()))
    }

    fn matches(&self, offered: &str) -> bool {
        let offered: [u8; 32] = Sha256::digest(offered.as_bytes()).into();
        self.0
            .iter()
            .zip(offered.iter())
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

/// Marks remediation started on a run: (run id, who, text); what [`crate::annotation::add`]
/// answers.
pub type RemediationHook = Arc<
    dyn Fn(
            String,
            String,
            String,
        )
            -> futures_util::future::BoxFuture<'static, Result<(), crate::annotation::AddError>>
        + Send
        + Sync,
>;

/// What the receiver needs to answer a delivery.
struct State {
    log: Arc<AlertLog>,
    token: Option<Token>,
    stopping: AtomicBool,
    remediation: Option<RemediationHook>,
}

/// The alert receiver, a task of its own until [`AlertReceiver::stop`].
#[derive(Debug)]
pub struct AlertReceiver {
    server: HttpServer,
    state: Arc<State>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State").finish_non_exhaustive()
    }
}

impl AlertReceiver {
    /// Binds `listen` and records what arrives in `log`. `tls` asks for, but does not require,
    /// a client certificate; `token`, when set, is accepted instead of one.
    pub async fn start(
        listen: SocketAddr,
        tls: TlsAcceptor,
        token: Option<Token>,
        log: Arc<AlertLog>,
        remediation: Option<RemediationHook>,
    ) -> std::io::Result<AlertReceiver> {
        let state = Arc::new(State {
            log,
            token,
            stopping: AtomicBool::new(false),
            remediation,
        });
        let shared = state.clone();
        let server = HttpServer::start(listen, Some(tls), "alerts", move |req, peer| {
            let state = shared.clone();
            async move { answer(&state, req, &peer).await }
        })
        .await?;
        tracing::info!(addr = %server.local_addr(), "alert receiver listening (POST /alerts/alertmanager, POST /alerts)");
        Ok(AlertReceiver { server, state })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// Answers 503 from now on (Alertmanager will deliver again, to the next controller), lets
    /// deliveries in flight finish, and stops.
    pub async fn stop(self) {
        self.state.stopping.store(true, Ordering::SeqCst);
        self.server.stop().await
    }
}

const TEXT: &str = "text/plain; charset=utf-8";

/// Which form a delivery is in.
#[derive(Clone, Copy, Debug)]
enum Source {
    /// Alertmanager's webhook.
    Alertmanager,
    /// The generic JSON form.
    Generic,
}

async fn answer(state: &State, req: Request<Incoming>, peer: &Peer) -> Response<Full<Bytes>> {
    let source = match req.uri().path() {
        "/alerts/alertmanager" => Some(Source::Alertmanager),
        "/alerts" => Some(Source::Generic),
        "/remediation" => None,
        other => {
            return reply(
                StatusCode::NOT_FOUND,
                TEXT,
                format!("no endpoint at {other}: Alertmanager posts to /alerts/alertmanager, other systems to /alerts, runbook automation to /remediation\n"),
            )
        }
    };
    if req.method() != Method::POST {
        let mut r = reply(
            StatusCode::METHOD_NOT_ALLOWED,
            TEXT,
            "alerts are delivered with POST\n".into(),
        );
        r.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
        return r;
    }
    if let Err(refusal) = authenticate(state, &req, peer) {
        tracing::warn!(peer = ?peer.addr, reason = %refusal.1, "alert delivery refused");
        let mut r = reply(refusal.0, TEXT, format!("{}\n", refusal.1));
        if refusal.0 == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"gameday alerts\""),
            );
        }
        return r;
    }
    if state.stopping.load(Ordering::SeqCst) {
        return reply(
            StatusCode::SERVICE_UNAVAILABLE,
            TEXT,
            "the controller is stopping; deliver again later\n".into(),
        );
    }
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return reply(
                StatusCode::PAYLOAD_TOO_LARGE,
                TEXT,
                format!("the body is over {MAX_BODY} bytes\n"),
            )
        }
        Err(e) => {
            return reply(
                StatusCode::BAD_REQUEST,
                TEXT,
                format!("the body could not be read: {e}\n"),
            )
        }
    };
    let Some(source) = source else {
        return remediation(state, &body, peer).await;
    };
    let parsed = match source {
        Source::Alertmanager => payload::alertmanager(&body),
        Source::Generic => payload::generic(&body),
    };
    let alerts = match parsed {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(peer = ?peer.addr, error = %e, "alert delivery refused");
            return reply(StatusCode::BAD_REQUEST, TEXT, format!("{e}\n"));
        }
    };
    let count = alerts.len();
    state.log.record(alerts, tokio::time::Instant::now());
    tracing::info!(peer = ?peer.addr, alerts = count, ?source, "alerts received");
    reply(
        StatusCode::OK,
        "application/json",
        format!("{{\"accepted\":{count}}}\n"),
    )
}

/// `{"run": ID, "text": "..."}` from runbook automation: remediation started on that run.
async fn remediation(state: &State, body: &[u8], peer: &Peer) -> Response<Full<Bytes>> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Started {
        run: String,
        #[serde(default)]
        text: Option<String>,
    }
    let Some(hook) = &state.remediation else {
        return reply(
            StatusCode::NOT_FOUND,
            TEXT,
            "this controller takes no remediation marks\n".into(),
        );
    };
    let started: Started = match serde_json::from_slice(body) {
        Ok(s) => s,
        Err(e) => {
            return reply(
                StatusCode::BAD_REQUEST,
                TEXT,
                format!("the body is not {{\"run\": ID, \"text\": ...}}: {e}\n"),
            )
        }
    };
    let who = match peer.addr {
        Some(addr) => format!("webhook {}", addr.ip()),
        None => "webhook".into(),
    };
    let text = started
        .text
        .unwrap_or_else(|| "runbook automation started".into());
    match hook(started.run, who, text).await {
        Ok(()) => reply(
            StatusCode::OK,
            "application/json",
            "{\"recorded\":true}\n".into(),
        ),
        Err(e @ crate::annotation::AddError::NoRun(_)) => {
            reply(StatusCode::NOT_FOUND, TEXT, format!("{e}\n"))
        }
        Err(e @ crate::annotation::AddError::Text(_)) => {
            reply(StatusCode::BAD_REQUEST, TEXT, format!("{e}\n"))
        }
        // The history could not be written: worth delivering again.
        Err(e @ crate::annotation::AddError::History(_)) => {
            reply(StatusCode::SERVICE_UNAVAILABLE, TEXT, format!("{e}\n"))
        }
    }
}

/// Accepts the right bearer token, or an operator certificate (TLS has already checked it is
/// from the fleet CA). A wrong token is refused even when a certificate would do: the sender
/// is misconfigured, and saying so beats quietly accepting.
fn authenticate<B>(
    state: &State,
    req: &Request<B>,
    peer: &Peer,
) -> Result<(), (StatusCode, String)> {
    if let Some(value) = req.headers().get(header::AUTHORIZATION) {
        let offered = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        return match (&state.token, offered) {
            (_, None) => Err((
                StatusCode::UNAUTHORIZED,
                "the Authorization header is not a bearer token".into(),
            )),
            (None, Some(_)) => Err((
                StatusCode::UNAUTHORIZED,
                "this controller accepts no bearer token (alerts.token_file is not set); use an operator certificate".into(),
            )),
            (Some(token), Some(offered)) if token.matches(offered) => Ok(()),
            (Some(_), Some(_)) => Err((StatusCode::UNAUTHORIZED, "wrong bearer token".into())),
        };
    }
    let Some(der) = &peer.certificate else {
        return Err((
            StatusCode::UNAUTHORIZED,
            "a bearer token or an operator certificate from the fleet CA is needed".into(),
        ));
    };
    match crate::identity::parse_leaf(der) {
        Ok(id) if id.role == Role::Operator => Ok(()),
        Ok(id) => Err((
            StatusCode::FORBIDDEN,
            format!("{id} may not deliver alerts; an operator certificate may"),
        )),
        Err(e) => Err((StatusCode::FORBIDDEN, e.to_string())),
    }
}
