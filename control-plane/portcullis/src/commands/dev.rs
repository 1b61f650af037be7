//! `portcullis dev`: the control plane, the projector and the data plane in one process, on
//! the embedded store under `--data-dir`.

use portcullis_commands::Context;
use portcullis_commands::bootstrap::ensure_default_host;
use portcullis_data_plane::replica::{Replica, ReplicaConfig};
use portcullis_projector::Buckets;

use crate::config::DevSettings;
use crate::health::{self, Readiness};

/// Runs until SIGINT or SIGTERM.
pub async fn run(settings: DevSettings) -> anyhow::Result<()> {
    let shutdown = crate::shutdown::on_signal()?;
    let stores = crate::stores::open_embedded(&settings.data_dir).await?;
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

    let replica = Replica::start(
        ReplicaConfig::new(
            buckets.read_models().cloned().collect(),
            settings.max_staleness,
        ),
        stores.kv.clone(),
        stores.log.clone(),
        shutdown.clone(),
    );
    let mirror = replica.clone();
    readiness.add("read_models", move || {
        mirror.freshness().map_err(|e| e.to_string())
    });

    let key_ring = crate::admin::key_ring(&settings.admin, Some(&settings.data_dir))?;
    let control = crate::admin::control(&stores, key_ring)?;
    crate::admin::bootstrap_admin(&control, &stores, &settings.admin, Some(&settings.data_dir))
        .await?;
    let public_urls = crate::admin::public_urls(&settings.admin, settings.common.listen, true);
    let api = crate::admin::router(
        control,
        stores.audit.clone(),
        public_urls,
        settings.allow_private_upstreams,
    );

    let app = health::router(readiness)
        .merge(health::metrics_router(move || replica.metrics_text()))
        .merge(api);
    let served = health::serve(
        settings.common.listen,
        app,
        shutdown.clone(),
        settings.common.shutdown_grace,
    )
    .await;
    shutdown.cancel();
    let _ = projector.await;
    served?;
    tracing::info!("Stopped.");
    Ok(())
}
