//! `portcullis dev`: the control plane, the projector and the data plane in one process, on
//! the embedded store under `--data-dir`, and the audit retention the embedded store needs
//! (`--audit-retention`; on the cluster the audit stream's `max_age` does it).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use portcullis_commands::Context;
use portcullis_commands::bootstrap::ensure_default_host;
use portcullis_data_plane::DataPlane;
use portcullis_data_plane::replica::{Replica, ReplicaConfig};
use portcullis_projector::Buckets;
use portcullis_store_sqlite::SqliteStore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::DevSettings;
use crate::health::{self, Readiness};

/// Runs until SIGINT or SIGTERM.
pub async fn run(settings: DevSettings) -> anyhow::Result<()> {
    let shutdown = crate::shutdown::on_signal()?;
    let options = portcullis_store_sqlite::StoreOptions::default()
        .with_audit_durability(settings.audit_durability);
    let (stores, sqlite) = crate::stores::open_embedded(&settings.data_dir, options).await?;
    if settings.audit_durability == portcullis_store_sqlite::AuditDurability::ProcessCrash {
        tracing::warn!(
            "--audit-durability process-crash: a call is forwarded once its audit record is in \
             the store's write-ahead log, before the fsync; a crash of the machine may lose \
             about the last second's records, a crash of Portcullis loses none."
        );
    }
    let readiness = Readiness::default();

    let context = Context::system("dev.bootstrap", &ulid::Ulid::new().to_string());
    let default_host = ensure_default_host(stores.log.as_ref(), &context).await?;
    tracing::info!(
        host = %default_host.host_id,
        created = default_host.created,
        mcp_url = %format!("http://{}/mcp", settings.common.listen),
        "Default host ready; requests whose Host header names no host go to it."
    );

    // The projector creates its buckets too; creating them first spares the replica a
    // start-up race against it.
    let buckets = Buckets::new(None)?;
    for bucket in buckets.read_models() {
        stores.kv.ensure_bucket(bucket).await?;
    }
    let projector = super::projector::spawn(stores.clone(), &readiness, shutdown.clone());
    let retention = spawn_audit_retention(sqlite, settings.audit_retention, shutdown.clone());

    let replica = Replica::start(
        ReplicaConfig::new(
            buckets.read_models().cloned().collect(),
            settings.max_staleness,
        )
        .with_projection(
            buckets.projector().clone(),
            super::cluster::projector_checkpoint()?,
        )
        .with_pending_changes(buckets.clone()),
        stores.kv.clone(),
        stores.log.clone(),
        shutdown.clone(),
    );
    let mirror = replica.clone();
    readiness.add("read_models", move || {
        mirror.freshness().map_err(|e| e.to_string())
    });

    let key_ring = crate::admin::key_ring(&settings.admin, Some(&settings.data_dir))?
        .ok_or_else(|| anyhow::anyhow!("dev always has a master key"))?;
    let control = crate::admin::control(&stores, Some(key_ring.clone()))?;
    crate::admin::bootstrap_admin(&control, &stores, &settings.admin, Some(&settings.data_dir))
        .await?;
    control
        .ensure_signing_key(&context, &default_host.host_id)
        .await?;
    let public_urls = crate::admin::public_urls(&settings.admin, settings.common.listen, true);
    let mut proxy_config = settings
        .mcp
        .proxy_config(public_urls.clone(), settings.allow_private_upstreams);
    proxy_config.stale_wait = settings.stale_wait;
    let proxy = DataPlane::new(
        proxy_config,
        replica,
        buckets,
        key_ring.clone(),
        stores.audit.clone(),
    )?;
    let consent = crate::admin::consent_router(
        control.clone(),
        &stores,
        Some(key_ring.clone()),
        public_urls.clone(),
        &settings.admin.mail,
        Some(&settings.data_dir.join("outbox")),
        settings.allow_private_upstreams,
        &shutdown,
    )
    .await?;
    let api = crate::admin::router(
        control,
        stores.audit.clone(),
        Some(key_ring),
        public_urls,
        settings.allow_private_upstreams,
    );

    // The admin API and consent pages are counted as on a control plane; the MCP endpoints
    // keep the data plane's own metrics.
    let control_metrics = Arc::new(crate::http_metrics::HttpMetrics::default());
    tokio::spawn(crate::http_metrics::follow_log(
        control_metrics.clone(),
        stores.log.clone(),
        shutdown.clone(),
    ));
    let tracked = control_metrics.clone();
    let control_routes = api
        .merge(consent.unwrap_or_default())
        .layer(axum::middleware::from_fn(move |request, next| {
            crate::http_metrics::track(tracked.clone(), request, next)
        }));
    let metrics = proxy.clone();
    let app = health::router(readiness)
        .merge(health::metrics_router(move || {
            let mut text = metrics.metrics_text();
            text.push_str(&control_metrics.text());
            text
        }))
        .merge(control_routes)
        .merge(proxy.router());
    let served = health::serve(
        settings.common.listen,
        app,
        shutdown.clone(),
        settings.common.shutdown_grace,
    )
    .await;
    shutdown.cancel();
    let _ = projector.await;
    let _ = retention.await;
    served?;
    tracing::info!("Stopped.");
    Ok(())
}

/// How often audit records older than the retention period are removed.
const PRUNE_EVERY: Duration = Duration::from_secs(60 * 60);

/// Removes audit records older than `retention` at once and then every `PRUNE_EVERY`, until
/// `shutdown`. A failed pass is logged and retried at the next one.
fn spawn_audit_retention(
    store: Arc<SqliteStore>,
    retention: Duration,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(PRUNE_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = every.tick() => {}
            }
            let cutoff_ms = prune_cutoff_ms(SystemTime::now(), retention);
            tokio::select! {
                () = shutdown.cancelled() => return,
                pruned = store.prune_audit_before(cutoff_ms) => match pruned {
                    Ok(removed) => tracing::info!(
                        removed,
                        retention = %humantime::format_duration(retention),
                        "Pruned audit records older than the retention period."
                    ),
                    Err(error) => tracing::warn!(
                        error = format!("{error:#}"),
                        "Pruning the audit log failed; retrying in an hour."
                    ),
                },
            }
        }
    })
}

/// Milliseconds since the epoch `retention` before `now` (0 for a clock before then).
fn prune_cutoff_ms(now: SystemTime, retention: Duration) -> i64 {
    now.checked_sub(retention)
        .and_then(|cutoff| cutoff.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |since| {
            i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cutoff_is_the_retention_before_now() {
        let now = UNIX_EPOCH + Duration::from_secs(100 * 86_400);
        assert_eq!(
            prune_cutoff_ms(now, Duration::from_secs(90 * 86_400)),
            10 * 86_400 * 1000
        );
        assert_eq!(prune_cutoff_ms(now, Duration::from_secs(200 * 86_400)), 0);
    }
}
