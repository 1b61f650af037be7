//! `bench-hop`: the floor of a proxy hop built on the gateway's own HTTP stack. The `proxy`
//! benchmark puts it in front of `bench-upstream` as a target of its own, next to nginx, so
//! the report can say how much of the gateway's cost is the Rust HTTP stack itself and how
//! much is the gateway's work.
//!
//! It is what the gateway would be if it did nothing but forward: axum's server (hyper, HTTP/1
//! and 2, the same `axum::serve` as `portcullis`), one fallback handler, and a pooled
//! hyper-util client with keep-alive and `TCP_NODELAY` to one fixed upstream, streaming both
//! bodies. No parsing, no token, no policy, no audit record, no TLS.
//!
//! Must not: listen anywhere but loopback, forward anywhere but the one upstream it was given,
//! or log per request.
#![allow(clippy::expect_used)] // only at start-up, where failing loudly is right

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use clap::Parser;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// A forward-only proxy to one loopback upstream, for benchmarks.
#[derive(Debug, Parser)]
struct Args {
    /// Loopback address to listen on; port 0 picks a free one. The chosen address is printed
    /// as `listening on http://<addr>/mcp`.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// The upstream's origin, e.g. `http://127.0.0.1:8081` (loopback only); the request's
    /// path and query are kept.
    #[arg(long)]
    upstream: Uri,
    /// Tokio worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Clone, Debug)]
struct Forward {
    client: Client<HttpConnector, Body>,
    upstream: Uri,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.listen.ip().is_loopback(),
        "bench-hop listens on loopback only, not {}",
        args.listen
    );
    anyhow::ensure!(
        args.upstream.scheme_str() == Some("http")
            && args.upstream.host().is_some_and(is_loopback_host),
        "bench-hop forwards to an http:// loopback upstream only, not {}",
        args.upstream
    );
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.threads {
        runtime.worker_threads(threads.max(1));
    }
    runtime
        .enable_all()
        .build()?
        .block_on(serve(args.listen, args.upstream))
}

fn is_loopback_host(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

async fn serve(listen: SocketAddr, upstream: Uri) -> anyhow::Result<()> {
    use axum::serve::ListenerExt as _;
    use std::io::Write as _;

    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(256)
        .build(connector);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let local = listener.local_addr()?;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on http://{local}/mcp")?;
    stdout.flush()?;
    let router = Router::new()
        .fallback(forward)
        .with_state(Forward { client, upstream });
    axum::serve(listener, router).await?;
    Ok(())
}

/// Sends the request on to the upstream as it came (path, query, headers, streamed body) and
/// streams the answer back.
async fn forward(State(forward): State<Forward>, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    let mut uri = forward.upstream.clone().into_parts();
    uri.path_and_query = parts.uri.path_and_query().cloned();
    let Ok(uri) = Uri::from_parts(uri) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    parts.uri = uri;
    // The upstream connection is HTTP/1.1 whatever the client spoke; the client sets `Host`.
    parts.version = axum::http::Version::HTTP_11;
    parts.headers.remove(header::HOST);
    match forward
        .client
        .request(Request::from_parts(parts, body))
        .await
    {
        Ok(response) => response.map(Body::new),
        Err(error) => (StatusCode::BAD_GATEWAY, error.to_string()).into_response(),
    }
}
