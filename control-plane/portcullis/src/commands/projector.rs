//! Running the projector under supervision: a projector that stops on an error is restarted
//! with backoff (it resumes from its checkpoint), readiness says why it is not current, and
//! `ProjectorGauges` count what it applied and how often it restarted, for `/metrics`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use portcullis_projector::{Projector, ProjectorOptions};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::health::Readiness;
use crate::stores::Stores;

/// What the supervised projector has done, for `/metrics`.
#[derive(Clone, Debug, Default)]
pub struct ProjectorGauges {
    /// The last log sequence applied.
    pub applied_through: Arc<AtomicU64>,
    /// How often it stopped on an error and was started again.
    pub restarts: Arc<AtomicU64>,
}

/// Starts the supervised projector and registers its `projector` readiness check (ready once
/// it has applied everything that was in the log when it started).
pub fn spawn(stores: Stores, readiness: &Readiness, shutdown: CancellationToken) -> JoinHandle<()> {
    spawn_with_gauges(stores, readiness, ProjectorGauges::default(), shutdown)
}

/// `spawn`, keeping `gauges` current.
pub fn spawn_with_gauges(
    stores: Stores,
    readiness: &Readiness,
    gauges: ProjectorGauges,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
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
            let applied = gauges.applied_through.clone();
            let reporter = tokio::spawn(async move {
                loop {
                    let state = *progress.borrow_and_update();
                    applied.fetch_max(state.applied_through, Ordering::AcqRel);
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
                    gauges.restarts.fetch_add(1, Ordering::AcqRel);
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
