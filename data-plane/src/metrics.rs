//! The data plane's Prometheus metrics: requests, decisions by outcome, latencies, token
//! cache hits, upstream failures. The replica's own gauges (keys, revisions, silence,
//! freshness) are appended by `DataPlane::metrics_text`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels of a request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// HTTP method.
    pub method: &'static str,
    /// JSON-RPC method class (`tools/call`, `tools/list`, `initialize`, `other`, `-`).
    pub rpc: &'static str,
    /// HTTP status.
    pub status: u16,
}

/// Labels of a decision.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// `allowed` or `denied`.
    pub decision: &'static str,
    /// Why (`allowed` or the deny reason).
    pub reason: &'static str,
}

/// Labels of a token check.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    /// `hit` or `miss`.
    pub result: &'static str,
}

/// Labels of an upstream failure.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    /// What failed (`connect`, `timeout`, `status`, `stream`, `too_large`).
    pub kind: &'static str,
}

/// Every metric of the data plane.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Requests answered.
    pub requests: Family<RequestLabels, Counter>,
    /// Time to the response head, seconds.
    pub request_seconds: Family<RequestLabels, Histogram>,
    /// `tools/call` decisions.
    pub decisions: Family<DecisionLabels, Counter>,
    /// Time to decide and audit a `tools/call`, seconds.
    pub decision_seconds: Histogram,
    /// Upstream time to response head, seconds.
    pub upstream_seconds: Histogram,
    /// Upstream failures.
    pub upstream_failures: Family<FailureLabels, Counter>,
    /// Verified-token cache lookups.
    pub token_cache: Family<CacheLabels, Counter>,
}

fn latency_buckets() -> impl Iterator<Item = f64> {
    [
        0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
        0.5, 1.0, 2.5, 5.0, 10.0,
    ]
    .into_iter()
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("portcullis_mcp");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("requests", "MCP HTTP requests answered", requests.clone());
        let request_seconds = Family::<RequestLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(latency_buckets())
        });
        registry.register(
            "request_seconds",
            "Time from request to response head",
            request_seconds.clone(),
        );
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "decisions",
            "tools/call authorization decisions",
            decisions.clone(),
        );
        let decision_seconds = Histogram::new(latency_buckets());
        registry.register(
            "decision_seconds",
            "Time to decide a tools/call and make its audit record durable",
            decision_seconds.clone(),
        );
        let upstream_seconds = Histogram::new(latency_buckets());
        registry.register(
            "upstream_seconds",
            "Upstream time to response head",
            upstream_seconds.clone(),
        );
        let upstream_failures = Family::<FailureLabels, Counter>::default();
        registry.register(
            "upstream_failures",
            "Upstream exchanges that failed",
            upstream_failures.clone(),
        );
        let token_cache = Family::<CacheLabels, Counter>::default();
        registry.register(
            "token_cache",
            "Access-token verifications answered from the cache (hit) or by checking the signature (miss)",
            token_cache.clone(),
        );
        Self {
            registry,
            requests,
            request_seconds,
            decisions,
            decision_seconds,
            upstream_seconds,
            upstream_failures,
            token_cache,
        }
    }
}

impl Metrics {
    /// The Prometheus text exposition (without the trailing `# EOF`).
    pub fn text(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode_registry(&mut out, &self.registry).is_err() {
            return String::new();
        }
        out
    }
}
