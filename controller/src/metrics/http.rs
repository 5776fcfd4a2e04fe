//! The `/metrics` endpoint on its own listener, with content negotiation between the
//! Prometheus text format and OpenMetrics.

use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{header, Method, Request, Response, StatusCode};

use super::Metrics;
use crate::http_server::{reply, HttpServer};

/// The `/metrics` HTTP server, a task of its own until [`MetricsServer::stop`].
#[derive(Debug)]
pub struct MetricsServer(HttpServer);

impl MetricsServer {
    /// Binds `listen` (failing here, before the controller starts anything, if it cannot) and
    /// serves `metrics` on it.
    pub async fn start(
        listen: SocketAddr,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<MetricsServer> {
        let server = HttpServer::start(listen, None, "metrics", move |req, _peer| {
            let response = answer(&metrics, &req);
            async move { response }
        })
        .await?;
        tracing::info!(addr = %server.local_addr(), "metrics served at /metrics");
        Ok(MetricsServer(server))
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.0.local_addr()
    }

    /// Stops accepting, lets open scrapes finish briefly, and waits for the task.
    pub async fn stop(self) {
        self.0.stop().await
    }
}

fn answer<B>(metrics: &Metrics, req: &Request<B>) -> Response<Full<Bytes>> {
    if req.uri().path() != "/metrics" {
        return reply(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "metrics are at /metrics\n".into(),
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "GET /metrics\n".into(),
        );
    }
    let openmetrics = req
        .headers()
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    if openmetrics {
        reply(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.openmetrics_text(),
        )
    } else {
        reply(
            StatusCode::OK,
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            metrics.prometheus_text(),
        )
    }
}
