//! `gameday serve`: the controller daemon.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use gameday::config::ControllerConfig;
use gameday::engine::Engine;
use gameday::registry::AgentRegistry;
use gameday::report::exit;
use tokio::net::TcpListener;

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
    let read =
        |p: &Path| std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()));
    let ca = read(&config.tls.ca)?;
    let pem = gameday::certs::Pem {
        cert: read(&config.tls.cert)?,
        key: read(&config.tls.key)?,
    };
    let tls = gameday::certs::server_tls(&ca, &pem);
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let engine = Arc::new(Engine::new(Arc::new(AgentRegistry::default())));
    tracing::info!(listen = %listener.local_addr()?, "controller serving");
    eprintln!("gameday controller listening on {}", listener.local_addr()?);
    gameday::server::serve(tls, config.timing(), engine, listener, shutdown_signal()).await?;
    Ok(exit::OK)
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
