//! Prometheus metrics of the control plane's HTTP and gRPC traffic (admin API, OAuth, consent
//! pages), and of its view of the event log.
//!
//! Routes are labelled by their template (axum's `MatchedPath`, e.g.
//! `/api/v1/hosts/{host}/grants`), never by the raw path, so a scan of random URLs cannot
//! blow up the series count; anything no route matched is `unmatched`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels of an answered request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route template, or `unmatched`.
    pub route: String,
    /// HTTP method (`other` for anything unusual).
    pub method: &'static str,
    /// HTTP status.
    pub status: u16,
}

/// Labels of a request's latency.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The route template, or `unmatched`.
    pub route: String,
    /// HTTP method.
    pub method: &'static str,
}

/// The control plane's metrics.
#[derive(Debug)]
pub struct HttpMetrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Family<RouteLabels, Histogram>,
    log_head: Gauge<i64, std::sync::atomic::AtomicI64>,
    log_reachable: Gauge<i64, std::sync::atomic::AtomicI64>,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("portcullis_control");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Admin API, gRPC, OAuth and consent requests answered",
            requests.clone(),
        );
        let request_seconds = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ])
        });
        registry.register(
            "request_seconds",
            "Time from request to response head",
            request_seconds.clone(),
        );
        let log_head = Gauge::default();
        registry.register(
            "event_log_head",
            "The event log's last sequence, as last read (every second)",
            log_head.clone(),
        );
        let log_reachable = Gauge::default();
        registry.register(
            "event_log_reachable",
            "Whether the last read of the event log's head succeeded (1) or not (0)",
            log_reachable.clone(),
        );
        Self {
            registry,
            requests,
            request_seconds,
            log_head,
            log_reachable,
        }
    }
}

impl HttpMetrics {
    /// The Prometheus text exposition.
    pub fn text(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode_registry(&mut out, &self.registry).is_err() {
            return String::new();
        }
        out
    }

    /// Records what a read of the event log's head returned (`None`: it failed). The head
    /// gauge never goes back: a lagging node may answer with an older head.
    pub fn observe_log(&self, head: Option<u64>) {
        match head {
            Some(head) => {
                let head = i64::try_from(head).unwrap_or(i64::MAX);
                if head > self.log_head.get() {
                    self.log_head.set(head);
                }
                self.log_reachable.set(1);
            }
            None => {
                self.log_reachable.set(0);
            }
        }
    }

    fn record(&self, route: String, method: &'static str, status: u16, took: Duration) {
        self.request_seconds
            .get_or_create(&RouteLabels {
                route: route.clone(),
                method,
            })
            .observe(took.as_secs_f64());
        self.requests
            .get_or_create(&RequestLabels {
                route,
                method,
                status,
            })
            .inc();
    }
}

/// Middleware counting and timing every request by route template, method and status.
pub async fn track(metrics: Arc<HttpMetrics>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = match *request.method() {
        axum::http::Method::GET => "GET",
        axum::http::Method::POST => "POST",
        axum::http::Method::PUT => "PUT",
        axum::http::Method::PATCH => "PATCH",
        axum::http::Method::DELETE => "DELETE",
        axum::http::Method::HEAD => "HEAD",
        axum::http::Method::OPTIONS => "OPTIONS",
        _ => "other",
    };
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.record(route, method, response.status().as_u16(), started.elapsed());
    response
}

/// Reads the event log's head into `metrics` once a second, until `shutdown` (where no
/// readiness probe does it already).
pub async fn follow_log(
    metrics: Arc<HttpMetrics>,
    log: Arc<dyn portcullis_store::EventLog>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let head = tokio::time::timeout(Duration::from_secs(2), log.head()).await;
        metrics.observe_log(match head {
            Ok(Ok(head)) => Some(head),
            _ => None,
        });
    }
}
