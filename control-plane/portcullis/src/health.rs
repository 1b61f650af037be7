//! `/healthz` (the process is alive) and `/readyz` (every readiness check passes), shared by
//! every subcommand, and the HTTP server loop with graceful shutdown.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use serde_json::json;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// A readiness check: `Ok` when ready, otherwise why not. Evaluated on every `/readyz`.
pub type Check = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// The named readiness checks of a process.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Arc<StdMutex<BTreeMap<&'static str, Check>>>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.report()).finish()
    }
}

impl Readiness {
    /// Adds (or replaces) a named check.
    pub fn add(
        &self,
        name: &'static str,
        check: impl Fn() -> Result<(), String> + Send + Sync + 'static,
    ) {
        if let Ok(mut checks) = self.checks.lock() {
            checks.insert(name, Arc::new(check));
        }
    }

    /// Adds a check whose state is pushed through the returned sender (initially `starting`).
    pub fn add_reported(&self, name: &'static str) -> watch::Sender<Result<(), String>> {
        let (sender, receiver) = watch::channel(Err("starting".to_owned()));
        self.add(name, move || receiver.borrow().clone());
        sender
    }

    /// Every check's current state.
    pub fn report(&self) -> BTreeMap<&'static str, Result<(), String>> {
        let checks: Vec<(&'static str, Check)> = match self.checks.lock() {
            Ok(checks) => checks.iter().map(|(n, c)| (*n, c.clone())).collect(),
            Err(_) => return BTreeMap::from([("readiness", Err("lock poisoned".to_owned()))]),
        };
        // Run the checks outside the lock: a check may take locks of its own.
        checks
            .into_iter()
            .map(|(name, check)| (name, check()))
            .collect()
    }

    /// Whether every check passes.
    pub fn is_ready(&self) -> bool {
        self.report().values().all(Result::is_ok)
    }
}

/// `GET /metrics` serving whatever `render` produces, in the Prometheus text format.
pub fn metrics_router(render: impl Fn() -> String + Clone + Send + Sync + 'static) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let render = render.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4",
                    )],
                    render(),
                )
            }
        }),
    )
}

/// The health routes, to merge into a process's router.
pub fn router(readiness: Readiness) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .with_state(readiness)
}

async fn readyz(State(readiness): State<Readiness>) -> impl IntoResponse {
    let report = readiness.report();
    let ready = report.values().all(Result::is_ok);
    let checks: serde_json::Map<String, serde_json::Value> = report
        .into_iter()
        .map(|(name, state)| {
            let value = match state {
                Ok(()) => json!({"ready": true}),
                Err(why) => json!({"ready": false, "reason": why}),
            };
            (name.to_owned(), value)
        })
        .collect();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({"status": if ready { "ready" } else { "not_ready" }, "checks": checks});
    (status, Json(body))
}

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("HTTP server on {addr} failed")]
    Serve {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Binds `addr` and serves `app` until `shutdown` is cancelled, then lets in-flight requests
/// finish for at most `grace`.
pub async fn serve(
    addr: SocketAddr,
    app: Router,
    shutdown: CancellationToken,
    grace: Duration,
) -> Result<(), ServeError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let local = listener.local_addr().unwrap_or(addr);
    tracing::info!(listen = %local, "Listening.");
    // Client addresses feed the consent pages' rate limits.
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    let server = axum::serve(listener, app).with_graceful_shutdown({
        let shutdown = shutdown.clone();
        async move { shutdown.cancelled().await }
    });
    let graceful = async {
        shutdown.cancelled().await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = server => result.map_err(|source| ServeError::Serve { addr, source }),
        () = graceful => {
            tracing::warn!(grace_seconds = grace.as_secs_f64(), "In-flight requests outlived the grace period; stopping anyway.");
            Ok(())
        }
    }
}
