//! Graceful shutdown: one token every task holds; cancelled on SIGINT or SIGTERM.

use tokio_util::sync::CancellationToken;

/// Returns a token that is cancelled when the process receives SIGINT or SIGTERM.
pub fn on_signal() -> std::io::Result<CancellationToken> {
    use tokio::signal::unix::{SignalKind, signal};
    let token = CancellationToken::new();
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let cancel = token.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!(signal = "SIGINT", "Shutting down."),
            _ = terminate.recv() => tracing::info!(signal = "SIGTERM", "Shutting down."),
            () = cancel.cancelled() => {}
        }
        cancel.cancel();
    });
    Ok(token)
}
