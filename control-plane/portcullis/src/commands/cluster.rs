//! The distributed subcommands, each one part of a deployment on NATS JetStream.

use std::time::Duration;

use portcullis_data_plane::DataPlane;
use portcullis_data_plane::replica::{Replica, ReplicaConfig};
use portcullis_projector::Buckets;

use crate::config::{AdminSettings, CommonSettings, DataPlaneSettings, NatsSettings};
use crate::health::{self, Readiness};

/// `portcullis control-plane`.
pub async fn control_plane(
    common: CommonSettings,
    nats: NatsSettings,
    admin: AdminSettings,
    allow_private_upstreams: bool,
) -> anyhow::Result<()> {
    let shutdown = crate::shutdown::on_signal()?;
    let stores = crate::stores::connect_jetstream(&nats, &shutdown).await?;
    let readiness = Readiness::default();
    let reachable = readiness.add_reported("event_log");
    let metrics = std::sync::Arc::new(crate::http_metrics::HttpMetrics::default());
    let probe = tokio::spawn(probe_loop(
        stores.log.clone(),
        reachable,
        metrics.clone(),
        shutdown.clone(),
    ));

    let key_ring = crate::admin::key_ring(&admin, None)?;
    let control = crate::admin::control(&stores, key_ring.clone())?;
    // The bootstrap token's write waits for the projector, a separate process that may start
    // later: keep trying in the background and say so in readiness.
    let bootstrapped = readiness.add_reported("bootstrap");
    let bootstrap = tokio::spawn({
        let (control, stores, admin, shutdown) = (
            control.clone(),
            stores.clone(),
            admin.clone(),
            shutdown.clone(),
        );
        async move {
            let mut backoff = Duration::from_secs(1);
            loop {
                match crate::admin::bootstrap_admin(&control, &stores, &admin, None).await {
                    Ok(()) => {
                        let _ = bootstrapped.send(Ok(()));
                        return;
                    }
                    Err(error) => {
                        let message = format!("{error:#}");
                        tracing::warn!(error = %message, "Bootstrap not done yet (is the projector running?); retrying.");
                        let _ = bootstrapped.send(Err(message));
                    }
                }
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(15));
            }
        }
    });
    let public_urls = crate::admin::public_urls(&admin, common.listen, false);
    let consent = crate::admin::consent_router(
        control.clone(),
        &stores,
        key_ring.clone(),
        public_urls.clone(),
        &admin.mail,
        None,
        allow_private_upstreams,
        &shutdown,
    )
    .await?;
    let rendered = metrics.clone();
    let app = health::router(readiness)
        .merge(health::metrics_router(move || rendered.text()))
        .merge(crate::admin::router(
            control,
            stores.audit.clone(),
            key_ring,
            public_urls,
            allow_private_upstreams,
        ))
        .merge(consent.unwrap_or_default())
        .layer(axum::middleware::from_fn(move |request, next| {
            crate::http_metrics::track(metrics.clone(), request, next)
        }));
    let served = health::serve(common.listen, app, shutdown.clone(), common.shutdown_grace).await;
    shutdown.cancel();
    let _ = probe.await;
    let _ = bootstrap.await;
    served?;
    Ok(())
}

/// `portcullis projector`.
pub async fn projector(common: CommonSettings, nats: NatsSettings) -> anyhow::Result<()> {
    let shutdown = crate::shutdown::on_signal()?;
    let stores = crate::stores::connect_jetstream(&nats, &shutdown).await?;
    let readiness = Readiness::default();
    let gauges = super::projector::ProjectorGauges::default();
    let log = stores.log.clone();
    let projector =
        super::projector::spawn_with_gauges(stores, &readiness, gauges.clone(), shutdown.clone());
    let head = LogHead::default();
    tokio::spawn(head.clone().follow(log, shutdown.clone()));
    let router = health::router(readiness).merge(health::metrics_router(move || {
        projector_metrics(&gauges, &head)
    }));
    let served = health::serve(
        common.listen,
        router,
        shutdown.clone(),
        common.shutdown_grace,
    )
    .await;
    shutdown.cancel();
    let _ = projector.await;
    served?;
    Ok(())
}

/// `portcullis data-plane`.
pub async fn data_plane(settings: DataPlaneSettings) -> anyhow::Result<()> {
    let DataPlaneSettings {
        common,
        nats,
        max_staleness,
        stale_wait,
        admin,
        mcp,
        allow_private_upstreams,
    } = settings;
    let shutdown = crate::shutdown::on_signal()?;
    let stores = crate::stores::connect_jetstream(&nats, &shutdown).await?;
    let readiness = Readiness::default();
    let buckets = Buckets::new(None)?;
    let replica = Replica::start(
        ReplicaConfig::new(buckets.read_models().cloned().collect(), max_staleness)
            .with_projection(buckets.projector().clone(), projector_checkpoint()?)
            .with_pending_changes(buckets.clone()),
        stores.kv.clone(),
        stores.log.clone(),
        shutdown.clone(),
    );
    let mirror = replica.clone();
    readiness.add("read_models", move || {
        mirror.freshness().map_err(|e| e.to_string())
    });
    let key_ring = admin
        .key_ring
        .clone()
        .ok_or_else(|| anyhow::anyhow!("a master key is required"))?;
    let public_urls = crate::admin::public_urls(&admin, common.listen, false);
    let mut proxy_config = mcp.proxy_config(public_urls, allow_private_upstreams);
    proxy_config.stale_wait = stale_wait;
    let proxy = DataPlane::new(
        proxy_config,
        replica,
        buckets,
        key_ring,
        stores.audit.clone(),
    )?;
    let metrics = proxy.clone();
    let app = health::router(readiness)
        .merge(health::metrics_router(move || metrics.metrics_text()))
        .merge(proxy.router());
    let served = health::serve(common.listen, app, shutdown.clone(), common.shutdown_grace).await;
    shutdown.cancel();
    served?;
    Ok(())
}

/// Reports whether the event log answers (to readiness) and its head (to metrics), once a
/// second.
async fn probe_loop(
    log: std::sync::Arc<dyn portcullis_store::EventLog>,
    status: tokio::sync::watch::Sender<Result<(), String>>,
    metrics: std::sync::Arc<crate::http_metrics::HttpMetrics>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let head = tokio::time::timeout(Duration::from_secs(2), log.head()).await;
        metrics.observe_log(match &head {
            Ok(Ok(head)) => Some(*head),
            _ => None,
        });
        let state = match head {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(format!("{error:#}")),
            Err(_) => Err("event log did not answer within 2s".to_owned()),
        };
        let _ = status.send(state);
    }
}

/// The key of the default projector's checkpoint (`checkpoint.<name>`), which data planes
/// compare with the log head.
pub(crate) fn projector_checkpoint() -> anyhow::Result<portcullis_store::Key> {
    let name = portcullis_projector::ProjectorOptions::default().name;
    Ok(portcullis_store::Key::join(["checkpoint", name.as_str()])?)
}

/// The event log's head as last read (every second), and whether that read succeeded.
#[derive(Clone, Debug, Default)]
struct LogHead {
    sequence: std::sync::Arc<std::sync::atomic::AtomicU64>,
    reachable: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl LogHead {
    async fn follow(
        self,
        log: std::sync::Arc<dyn portcullis_store::EventLog>,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        use std::sync::atomic::Ordering;
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            match tokio::time::timeout(Duration::from_secs(1), log.head()).await {
                Ok(Ok(head)) => {
                    self.sequence.fetch_max(head, Ordering::AcqRel);
                    self.reachable.store(true, Ordering::Release);
                }
                _ => self.reachable.store(false, Ordering::Release),
            }
        }
    }
}

/// The projector's `/metrics`: what it applied, the log's head, the lag between them, whether
/// the log answers, and restarts.
fn projector_metrics(gauges: &super::projector::ProjectorGauges, head: &LogHead) -> String {
    use std::fmt::Write as _;
    use std::sync::atomic::Ordering;
    let applied = gauges.applied_through.load(Ordering::Acquire);
    let log_head = head.sequence.load(Ordering::Acquire);
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, kind: &str, value: u64| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name} {value}");
    };
    gauge(
        "portcullis_projection_applied_through",
        "The last event-log sequence the projector applied.",
        "gauge",
        applied,
    );
    gauge(
        "portcullis_event_log_head",
        "The event log's last sequence, as last read (every second).",
        "gauge",
        log_head,
    );
    gauge(
        "portcullis_projection_lag_events",
        "Events in the log the projector has not applied yet.",
        "gauge",
        log_head.saturating_sub(applied),
    );
    gauge(
        "portcullis_event_log_reachable",
        "Whether the last read of the event log's head succeeded (1) or not (0).",
        "gauge",
        u64::from(head.reachable.load(Ordering::Acquire)),
    );
    gauge(
        "portcullis_projector_restarts_total",
        "How often the projector stopped on an error and was started again.",
        "counter",
        gauges.restarts.load(Ordering::Acquire),
    );
    out
}
