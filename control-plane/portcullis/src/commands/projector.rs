//! Running the projector under supervision: a projector that stops on an error is restarted
//! with backoff (it resumes from its checkpoint), and readiness says why it is not current.

use std::time::Duration;

use portcullis_projector::{Projector, ProjectorOptions};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::health::Readiness;
use crate::stores::Stores;

/// Starts the supervised projector and registers its `projector` readiness check (ready once
/// it has applied everything that was in the log when it started).
pub fn spawn(stores: Stores, readiness: &Readiness, shutdown: CancellationToken) -> JoinHandle<()> {
    let status = readiness.add_reported("projector");
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(500);
        loop {
            let projector = match Projector::new(
                stores.log.clone(),
                stores.kv.clone(),
                ProjectorOptions::default(),
            ) {
                Ok(projector) => projector,
                Err(error) => {
                    // Only invalid options fail here, and the defaults are valid.
                    let _ = status.send(Err(format!("{error:#}")));
                    tracing::error!(error = format!("{error:#}"), "Projector cannot be built.");
                    return;
                }
            };
            let mut progress = projector.progress();
            let report = status.clone();
            let reporter = tokio::spawn(async move {
                loop {
                    let state = *progress.borrow_and_update();
                    let _ = report.send(if state.caught_up {
                        Ok(())
                    } else {
                        Err(format!(
                            "catching up: applied {} of {}",
                            state.applied_through, state.head_at_start
                        ))
                    });
                    if progress.changed().await.is_err() {
                        return;
                    }
                }
            });
            let result = projector.run(shutdown.clone()).await;
            reporter.abort();
            match result {
                Ok(()) => return,
                Err(error) => {
                    let message = format!("{error:#}");
                    tracing::error!(error = %message, retry_in_ms = backoff.as_millis() as u64, "Projector stopped; restarting from its checkpoint.");
                    let _ = status.send(Err(format!("stopped: {message}")));
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    })
}
