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
    serve_on(bind(addr).await?, router, shutdown).await
}

/// [`serve`], over TLS when `tls` names a certificate and key ([`crate::tls`]).
pub async fn serve_tls(
    addr: SocketAddr,
    tls: Option<&crate::tls::TlsFiles>,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    serve_bound(bind_tls(addr, tls).await?, router, shutdown).await
}

/// A bound listener, plain or TLS.
enum Bound {
    Plain(tokio::net::TcpListener),
    Tls(crate::tls::TlsListener),
}

/// Reads the TLS files (when given) and binds `addr`: a bad pair or a taken port is an error
/// here, before anything is served.
async fn bind_tls(addr: SocketAddr, tls: Option<&crate::tls::TlsFiles>) -> std::io::Result<Bound> {
    let Some(files) = tls else {
        return Ok(Bound::Plain(bind(addr).await?));
    };
    let acceptor = files
        .acceptor()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    Ok(Bound::Tls(crate::tls::TlsListener::new(
        bind(addr).await?,
        acceptor,
    )?))
}

async fn serve_bound(
    bound: Bound,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    match bound {
        Bound::Plain(listener) => serve_on(listener, router, shutdown).await,
        Bound::Tls(listener) => {
            tracing::info!(addr = %axum::serve::Listener::local_addr(&listener)?, "https listening");
            // tap_io: the peer address reaches handlers (`ConnectInfo<SocketAddr>`) as with TCP.
            axum::serve(
                axum::serve::ListenerExt::tap_io(listener, |_| {}),
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
        }
    }
}

/// Binds the admin listener, with the address in the error (a port already taken is the usual
/// cause).
async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
}

async fn serve_on(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    tracing::info!(addr = %listener.local_addr()?, "http listening");
    // With the peer address available to handlers (`ConnectInfo<SocketAddr>`).
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { shutdown.cancelled().await })
    .await
}

/// A service's two listeners: `public` (its API, plus `/healthz` and `/readyz` for load
/// balancers) on `listen`, over TLS when `tls` names files, and `/metrics` with the health checks
/// on `admin_listen`, bound first so that a taken port fails the start. Never `/metrics` on
/// the public port.
pub async fn serve_public_and_admin(
    listen: SocketAddr,
    tls: Option<&crate::tls::TlsFiles>,
    public: Router,
    admin_listen: SocketAddr,
    readiness: Readiness,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let public = public.merge(health_router(readiness.clone()));
    let serving = serve_tls(listen, tls, public, shutdown.clone());
    serve_while(admin_listen, router(readiness), &shutdown, serving).await?
}

/// Serves `router` on `addr` while `work` runs, then stops the server and returns `work`'s
/// result. The server also stops if `shutdown` is cancelled. The address is bound before `work`
/// starts: a port that cannot be bound is an error at once, never a service running without its
/// health and metrics endpoints.
pub async fn serve_while<T>(
    addr: SocketAddr,
    router: Router,
    shutdown: &CancellationToken,
    work: impl std::future::Future<Output = T>,
) -> std::io::Result<T> {
    serve_tls_while(addr, None, router, shutdown, work).await
}

/// [`serve_while`], over TLS when `tls` names a certificate and key.
pub async fn serve_tls_while<T>(
    addr: SocketAddr,
    tls: Option<&crate::tls::TlsFiles>,
    router: Router,
    shutdown: &CancellationToken,
    work: impl std::future::Future<Output = T>,
) -> std::io::Result<T> {
    let bound = bind_tls(addr, tls).await?;
    let server_shutdown = shutdown.child_token();
    let server = tokio::spawn(serve_bound(bound, router, server_shutdown.clone()));
    let result = work.await;
    server_shutdown.cancel();
    match server.await {
        Ok(Err(e)) => tracing::warn!(addr = %addr, error = %e, "admin http server failed"),
        Err(e) => tracing::warn!(error = %e, "admin http server task failed"),
        Ok(Ok(())) => {}
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_taken_port_is_an_error_before_the_work_starts() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = taken.local_addr().expect("addr");
        let started = std::sync::atomic::AtomicBool::new(false);
        let work = async { started.store(true, std::sync::atomic::Ordering::SeqCst) };
        let err = serve_while(addr, Router::new(), &CancellationToken::new(), work)
            .await
            .expect_err("the port is taken");
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
        assert!(!started.load(std::sync::atomic::Ordering::SeqCst));
    }

    #[tokio::test]
    async fn the_work_runs_while_the_port_serves() {
        let addr: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let out = serve_while(addr, Router::new(), &CancellationToken::new(), async { 7 })
            .await
            .expect("bound");
        assert_eq!(out, 7);
    }
}
