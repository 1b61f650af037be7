//! W3C trace context across the data plane: a client's `traceparent` becomes the parent of
//! the request's span, and each upstream request carries the context of its own span, so one
//! trace runs from the MCP client through the gateway to the upstream server.
//!
//! Without an OTLP exporter (no `--otlp-endpoint`) no propagator is installed and both are
//! no-ops. The incoming header only links spans; it never affects a decision.

use axum::http::HeaderMap;
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// Makes the trace context in `headers` (if any) the parent of `span`.
pub fn continue_from(span: &tracing::Span, headers: &HeaderMap) {
    let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&HeaderExtractor(headers))
    });
    // Fails only when the span is disabled or already started, and then there is nothing to link.
    let _ = span.set_parent(parent);
}

/// The headers that carry `span`'s trace context to an upstream.
pub fn headers_for(span: &tracing::Span) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let context = span.context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut HeaderInjector(&mut headers));
    });
    headers
}
