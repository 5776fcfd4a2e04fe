//! `gameday serve`: the controller daemon.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use gameday::certs::Role;
use gameday::config::ControllerConfig;
use gameday::engine::Engine;
use gameday::registry::AgentRegistry;
use gameday::report::exit;
use gameday::store::{Store, StoreError};
use gameday_proto::tls::TlsPaths;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// Validates the config (exit 2 when it is wrong, before anything starts), then serves until
/// SIGINT or SIGTERM.
pub async fn run(config_path: &Path) -> anyhow::Result<i32> {
    let config = match ControllerConfig::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return Ok(exit::INVALID);
        }
    };
    // Everything in the config that can be checked is checked before binding, so a broken
    // file is named (exit 2) before "listening on" is ever printed.
    let (tls, alerts_tls) = match check_tls(&config) {
        Ok(tls) => tls,
        Err(e) => {
            eprintln!("{}: {e}", config_path.display());
            return Ok(exit::INVALID);
        }
    };
    let history = match open_history(&config) {
        Ok(h) => h,
        Err(e @ HistoryError::DataDir(_)) => {
            eprintln!("{}: {e}", config_path.display());
            return Ok(exit::INVALID);
        }
        Err(HistoryError::Other(e)) => return Err(e),
    };
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let agents = Arc::new(AgentRegistry::default());
    let metrics = Arc::new(gameday::metrics::Metrics::new(agents.clone()));
    let alert_log = Arc::new(gameday::alerts::AlertLog::default());
    let mut engine = Engine::new(agents)
        .with_observer(history.clone())
        .with_observer(metrics.clone());
    if config.alerts.is_some() {
        engine = engine.with_alerts(alert_log.clone());
    }
    // Checked at load; built again here so a token or CA file changed since is still caught.
    let runbooks =
        gameday::webhook::runbook::build(&config.runbooks).map_err(anyhow::Error::msg)?;
    engine = engine.with_runbooks(runbooks);
    let engine = Arc::new(engine);
    let metrics_server = match config.metrics_listen {
        Some(addr) => Some(
            gameday::metrics::MetricsServer::start(addr, metrics)
                .await
                .with_context(|| format!("binding metrics_listen {addr}"))?,
        ),
        None => None,
    };
    let alert_receiver = match &config.alerts {
        Some(alerts) => {
            // Checked at load; read again here so a file changed since is still caught.
            let token = alerts.token().map_err(anyhow::Error::msg)?;
            let (engine, store) = (engine.clone(), history.clone());
            let hook: gameday::alerts::receiver::RemediationHook =
                Arc::new(move |run: String, who: String, text: String| {
                    let (engine, store) = (engine.clone(), store.clone());
                    Box::pin(async move {
                        let kind = gameday::annotation::AnnotationKind::RemediationStarted;
                        gameday::annotation::add(&engine, Some(store), &run, who, kind, &text)
                            .await
                            .map(|_| ())
                    })
                });
            Some(
                gameday::alerts::receiver::AlertReceiver::start(
                    alerts.listen,
                    alerts_tls.acceptor(),
                    token,
                    alert_log.clone(),
                    Some(hook),
                )
                .await
                .with_context(|| format!("binding alerts.listen {}", alerts.listen))?,
            )
        }
        None => None,
    };
    let scheduler =
        gameday::schedule::Scheduler::start(&config.schedules, &config.data_dir, engine.clone())?;
    let (stop_pruning, pruning) = start_pruning(&history, &config);
    tracing::info!(listen = %listener.local_addr()?, "controller serving");
    eprintln!("gameday controller listening on {}", listener.local_addr()?);
    // Where to look, at the default log level: an operator starting it by hand sees it all.
    if let Some(metrics) = &metrics_server {
        eprintln!("metrics on http://{}/metrics", metrics.local_addr());
    }
    if let Some(receiver) = &alert_receiver {
        eprintln!(
            "alerts on https://{}/alerts/alertmanager",
            receiver.local_addr()
        );
    }
    eprintln!("run history in {}", history.path().display());
    let extras = gameday::server::Extras {
        history: Some(history),
        schedules: Some(scheduler.book()),
    };
    let served = gameday::server::serve_with(
        tls,
        config.timing(),
        engine,
        extras,
        listener,
        shutdown_signal(),
    )
    .await;
    let _ = stop_pruning.send(());
    if let Some(task) = pruning {
        let _ = task.await;
    }
    scheduler.stop().await;
    if let Some(server) = metrics_server {
        server.stop().await;
    }
    if let Some(receiver) = alert_receiver {
        receiver.stop().await;
    }
    served?;
    Ok(exit::OK)
}

/// The controller's TLS files, checked (see [`gameday_proto::tls`]) and turned into the
/// server's TLS config, and the alert receiver's (a client certificate optional); the
/// certificate must be a controller certificate.
fn check_tls(
    config: &ControllerConfig,
) -> Result<(gameday::server::ServerTls, gameday::server::ServerTls), TlsError> {
    let material = gameday_proto::tls::load(TlsPaths {
        ca: &config.tls.ca,
        cert: &config.tls.cert,
        key: &config.tls.key,
    })?;
    let role = material.role().unwrap_or_default();
    if role != Role::Controller.as_str() {
        return Err(TlsError::WrongRole {
            path: config.tls.cert.clone(),
            role: role.to_string(),
        });
    }
    let pem = gameday::certs::Pem {
        cert: material.cert_pem,
        key: material.key_pem,
    };
    Ok((
        gameday::server::ServerTls::new(&material.ca_pem, &pem)?,
        gameday::server::ServerTls::client_certificate_optional(&material.ca_pem, &pem)?,
    ))
}

/// The controller's TLS files cannot serve.
#[derive(Debug, thiserror::Error)]
enum TlsError {
    /// A file is unreadable, malformed, not signed by the CA, or the key is not the
    /// certificate's.
    #[error(transparent)]
    File(#[from] gameday_proto::tls::TlsFileError),
    /// The files passed their checks but rustls refused the combination.
    #[error("tls: {0}")]
    Server(#[from] gameday::server::ServerTlsError),
    /// The certificate is not a controller certificate.
    #[error(
        "tls.cert ({}): the certificate's role (organizational unit) is {role:?}, not \
         \"controller\"; use the controller.pem that `gameday certs init` writes",
        path.display()
    )]
    WrongRole {
        /// The certificate file.
        path: PathBuf,
        /// Its organizational unit, or `""` when it has none.
        role: String,
    },
}

/// Why the run history could not be opened.
#[derive(Debug, thiserror::Error)]
enum HistoryError {
    /// `data_dir` cannot be created or used: a config problem.
    #[error("data_dir: {0}")]
    DataDir(StoreError),
    /// Anything else.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Opens the run history and marks the runs a previous controller left running as
/// interrupted: none can be going on in a controller that is only starting.
fn open_history(config: &ControllerConfig) -> Result<Arc<Store>, HistoryError> {
    let store = Store::open(&config.data_dir).map_err(|e| match e {
        e @ StoreError::CreateDir { .. } => HistoryError::DataDir(e),
        e => HistoryError::Other(e.into()),
    })?;
    store
        .mark_interrupted_runs(gameday::store::unix_ms_now())
        .with_context(|| format!("marking interrupted runs in {}", store.path().display()))?;
    let marked = store.interrupted_runs_marked();
    if marked > 0 {
        tracing::warn!(
            runs = marked,
            history = %store.path().display(),
            "runs left running by a stopped controller are marked interrupted"
        );
    }
    tracing::info!(history = %store.path().display(), "run history open");
    Ok(Arc::new(store))
}

/// Prunes old probe samples now and every hour, when a retention is configured; the task
/// stops when the returned sender fires (or is dropped).
fn start_pruning(
    history: &Arc<Store>,
    config: &ControllerConfig,
) -> (oneshot::Sender<()>, Option<tokio::task::JoinHandle<()>>) {
    let (stop, stopped) = oneshot::channel::<()>();
    let task = config.sample_retention.map(|retention| {
        tokio::spawn(gameday::store::prune_periodically(
            history.clone(),
            retention.get(),
            std::time::Duration::from_secs(3600),
            async {
                let _ = stopped.await;
            },
        ))
    });
    (stop, task)
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
