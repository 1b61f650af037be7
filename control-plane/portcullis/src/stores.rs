//! Opening the store a subcommand runs on: the embedded SQLite file, or NATS JetStream with
//! retries while the cluster is not reachable yet (a Kubernetes pod often starts first).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use portcullis_store::{AuditLog, EventLog, ReadModelStore};
use portcullis_store_jetstream::{ConnectError, JetStreamConfig, JetStreamStore};
use portcullis_store_sqlite::{SqliteStore, StoreOptions};
use tokio_util::sync::CancellationToken;

use crate::config::NatsSettings;

/// Clients of one store.
#[derive(Clone)]
pub struct Stores {
    /// The event log.
    pub log: Arc<dyn EventLog>,
    /// The read models.
    pub kv: Arc<dyn ReadModelStore>,
    /// The audit log.
    pub audit: Arc<dyn AuditLog>,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stores")
    }
}

/// Opens the embedded store at `<data_dir>/portcullis.db`; also returns the store itself, for
/// what only it has (audit retention).
pub async fn open_embedded(
    data_dir: &Path,
    options: StoreOptions,
) -> anyhow::Result<(Stores, Arc<SqliteStore>)> {
    let path = data_dir.join("portcullis.db");
    let shown = path.display().to_string();
    let store = tokio::task::spawn_blocking(move || SqliteStore::open_with(&path, options))
        .await
        .context("opening the embedded store panicked")?
        .with_context(|| format!("cannot open the embedded store {shown}"))?;
    let store = Arc::new(store);
    tracing::info!(path = %shown, "Opened the embedded store.");
    let stores = Stores {
        log: store.clone(),
        kv: store.clone(),
        audit: store.clone(),
    };
    Ok((stores, store))
}

/// Whether a failed connection is worth retrying: the cluster may come up later, but a server
/// that is too old or a stream with the wrong settings will not fix itself.
fn is_retryable(error: &ConnectError) -> bool {
    matches!(
        error,
        ConnectError::Connect { .. } | ConnectError::Stream { .. }
    )
}

/// Connects to NATS JetStream, retrying unreachable clusters with backoff until `shutdown`.
pub async fn connect_jetstream(
    settings: &NatsSettings,
    shutdown: &CancellationToken,
) -> anyhow::Result<Stores> {
    let mut config = JetStreamConfig::new(settings.urls.iter());
    config.namespace = settings.namespace.clone();
    config.replicas = settings.replicas;
    let mut backoff = Duration::from_millis(250);
    loop {
        match JetStreamStore::connect(config.clone()).await {
            Ok(store) => {
                let store = Arc::new(store);
                tracing::info!(urls = %settings.urls.join(","), namespace = %settings.namespace, "Connected to NATS JetStream.");
                return Ok(Stores {
                    log: store.clone(),
                    kv: store.clone(),
                    audit: store,
                });
            }
            Err(error) if is_retryable(&error) => {
                tracing::warn!(
                    error = format!("{error:#}"),
                    retry_in_ms = backoff.as_millis() as u64,
                    "NATS not reachable yet; retrying."
                );
                tokio::select! {
                    () = shutdown.cancelled() => anyhow::bail!("shut down before NATS was reachable"),
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
            Err(error) => return Err(error).context("cannot use NATS JetStream"),
        }
    }
}
