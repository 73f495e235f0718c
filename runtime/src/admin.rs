//! The admin HTTP surface every service exposes: `/healthz`, `/readyz`, `/metrics`.
//!
//! Contract: `/healthz` answers 200 while the process runs; `/readyz` answers 200 only while the
//! service's readiness flag is set (for example: broker reachable, state restored); `/metrics`
//! serves the Prometheus text format of the process-wide default registry.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus::{Encoder, TextEncoder};
use tokio_util::sync::CancellationToken;

/// A readiness flag shared between a service and its `/readyz`.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Relaxed);
    }
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Routes `/healthz`, `/readyz` and `/metrics`, to serve alone or merge into a service's router.
pub fn router(readiness: Readiness) -> Router {
    health_router(readiness).route("/metrics", get(metrics))
}

/// Routes `/healthz` and `/readyz` only, for services that serve their own `/metrics`.
pub fn health_router(readiness: Readiness) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(readiness)
}

async fn readyz(State(readiness): State<Readiness>) -> impl IntoResponse {
    if readiness.is_ready() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

/// The Prometheus text exposition of the default registry.
pub async fn metrics() -> impl IntoResponse {
    let encoder = TextEncoder::new();
    let mut buf = Vec::new();
    if let Err(e) = encoder.encode(&prometheus::gather(), &mut buf) {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            e.to_string().into_bytes(),
        );
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        buf,
    )
}

/// Binds `addr` and serves `router` until `shutdown` is cancelled.
pub async fn serve(
    addr: SocketAddr,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "http listening");
    // With the peer address available to handlers (`ConnectInfo<SocketAddr>`).
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { shutdown.cancelled().await })
    .await
}

/// Serves `router` on `addr` while `work` runs, then stops the server and returns `work`'s
/// result. The server also stops if `shutdown` is cancelled.
pub async fn serve_while<T>(
    addr: SocketAddr,
    router: Router,
    shutdown: &CancellationToken,
    work: impl std::future::Future<Output = T>,
) -> T {
    let server_shutdown = shutdown.child_token();
    let server = tokio::spawn(serve(addr, router, server_shutdown.clone()));
    let result = work.await;
    server_shutdown.cancel();
    match server.await {
        Ok(Err(e)) => tracing::warn!(addr = %addr, error = %e, "admin http server failed"),
        Err(e) => tracing::warn!(error = %e, "admin http server task failed"),
        Ok(Ok(())) => {}
    }
    result
}
