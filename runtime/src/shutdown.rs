//! Graceful shutdown: SIGTERM or SIGINT cancels a token; a second signal exits at once, and so
//! does the end of the grace period that the first one starts.
//!
//! Contract: services receive a [`Shutdown`] in `run` (tests pass their own) and on
//! cancellation stop polling, drain in-flight work, flush, commit and return. Whatever they are
//! waiting on (a broker or an object store that is gone), the process exits within the grace
//! period of the first signal: what it could not commit by then is replayed at the next start
//! (outputs are made durable before offsets are committed, so a forced exit is a crash the
//! services already survive exactly once). The deadline runs on a thread of its own, so a
//! blocked runtime cannot hold it back.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// The default grace period: below Kubernetes' 30 s `terminationGracePeriodSeconds`, so that a
/// pod ends by itself, with its own log line, before the kubelet's SIGKILL.
pub const DEFAULT_GRACE_SECS: u64 = 25;

/// Exit status of a process that did not finish its shutdown within the grace period.
pub const EXIT_GRACE_EXPIRED: i32 = 75;

/// The shutdown trigger handed to a service's `run`.
pub type Shutdown = CancellationToken;

/// Returns a token cancelled on the first SIGTERM/SIGINT, after which the process has `grace`
/// to return from `run` and exit ([`exit_after`]). Must be called inside a tokio runtime.
pub fn on_signals(grace: Duration) -> Shutdown {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!(
            grace_secs = grace.as_secs_f64(),
            "shutdown signal received, draining"
        );
        trigger.cancel();
        exit_after(grace);
        wait_for_signal().await;
        tracing::warn!("second shutdown signal, exiting now");
        std::process::exit(130);
    });
    token
}

/// Ends the process after `grace` if it is still running then, with a warning and
/// [`EXIT_GRACE_EXPIRED`].
pub fn exit_after(grace: Duration) {
    let spawned = std::thread::Builder::new()
        .name("shutdown-deadline".into())
        .spawn(move || {
            std::thread::sleep(grace);
            tracing::warn!(
                grace_secs = grace.as_secs_f64(),
                "shutdown did not finish within its grace period (a broker or an object store \
                 that does not answer); exiting now: input not yet committed is replayed at the \
                 next start"
            );
            std::process::exit(EXIT_GRACE_EXPIRED);
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the shutdown deadline; the shutdown is unbounded");
    }
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
