//! The HTTP side: one axum router with rmcp's Streamable HTTP service at `/mcp`, set up the
//! way a correct local MCP server is.
//!
//! Owns: the transport settings: sessions on (legacy era), loopback-only `Host` and `Origin`
//! (DNS-rebinding protection, which the suite's `dns-rebinding-protection` scenario checks),
//! the SSE `retry` hint, and ending every session on shutdown.
//!
//! Must not: answer MCP anywhere but `/mcp`.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use crate::handler::ConformanceServer;
use crate::sessions::Sessions;

/// The `retry` every SSE stream announces in its priming event: short, so clients that honour
/// it resume a closed stream (`test_reconnection`) quickly.
pub(crate) const SSE_RETRY: Duration = Duration::from_secs(1);

/// `Host` values accepted, with any port: loopback names only.
const ALLOWED_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];
/// `Origin` values accepted (a request without `Origin` passes): loopback pages, any port.
const ALLOWED_ORIGINS: [&str; 6] = [
    "http://localhost:*",
    "http://127.0.0.1:*",
    "http://[::1]:*",
    "https://localhost:*",
    "https://127.0.0.1:*",
    "https://[::1]:*",
];

/// The fixture's routes; cancelling `shutdown` ends every session and open SSE stream.
pub(crate) fn router(shutdown: CancellationToken) -> Router {
    let sessions = Arc::new(Sessions::new(SSE_RETRY));
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(true)
        .with_sse_retry(Some(SSE_RETRY))
        .with_allowed_hosts(ALLOWED_HOSTS)
        .with_allowed_origins(ALLOWED_ORIGINS)
        .with_cancellation_token(shutdown);
    let service = StreamableHttpService::new(
        {
            let sessions = Arc::clone(&sessions);
            move || Ok(ConformanceServer::new(Arc::clone(&sessions)))
        },
        sessions,
        config,
    );
    Router::new().nest_service("/mcp", service)
}
