//! Health and metrics endpoints on `--metrics-listen`: `/healthz` (the process answers),
//! `/readyz` (storage answered the last round of uploads) and `/metrics` (Prometheus text).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::{Error, Result};

#[derive(Clone)]
struct Health {
    ready: Arc<AtomicBool>,
    metrics: Metrics,
}

/// The health and metrics routes; `ready` is raised by the engine.
pub fn router(ready: Arc<AtomicBool>, metrics: Metrics) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(Health { ready, metrics })
}

async fn readyz(State(health): State<Health>) -> (StatusCode, &'static str) {
    if health.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "storage not reachable yet")
    }
}

async fn metrics_text(State(health): State<Health>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        health.metrics.encode(),
    )
}

/// Binds `addr` and serves `router` until `stop` is cancelled. Returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    router: Router,
    stop: CancellationToken,
    what: &'static str,
) -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Config {
            setting: what,
            problem: format!("cannot listen on {addr}: {source}"),
        })?;
    let bound = listener
        .local_addr()
        .map_err(Error::io(format!("{addr}")))?;
    tokio::spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "{what} server failed");
        }
    });
    tracing::info!(%bound, "{what} listening");
    Ok(bound)
}
