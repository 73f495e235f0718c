//! Graceful shutdown: SIGTERM or SIGINT cancels a token; a second signal exits at once.
//!
//! Contract: services receive a [`Shutdown`] in `run` (tests pass their own) and on
//! cancellation stop polling, drain in-flight work, flush, commit and return.

use tokio_util::sync::CancellationToken;

/// The shutdown trigger handed to a service's `run`.
pub type Shutdown = CancellationToken;

/// Returns a token cancelled on the first SIGTERM/SIGINT. Must be called inside a tokio runtime.
pub fn on_signals() -> Shutdown {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown signal received, draining");
        trigger.cancel();
        wait_for_signal().await;
        tracing::warn!("second shutdown signal, exiting now");
        std::process::exit(130);
    });
    token
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM, only SIGINT");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
