//! `conformance-upstream`: an MCP server that implements the server surface
//! `@modelcontextprotocol/conformance` tests (its `test_*` tools, `test://` resources,
//! prompts, completion, logging, subscriptions), so that the gateway can be judged by running
//! that suite *through* it against this upstream. rmcp 3.11 serves it over Streamable HTTP
//! with sessions (protocol 2025-06-18 and 2025-11-25) at `/mcp`.
//!
//! Layout: `handler` answers MCP requests and keeps per-session state, `tools`, `resources`
//! and `prompts` hold the fixture surface, `media` the tiny image and sound, `sessions` the
//! session manager that lets `test_reconnection` close its stream mid-call (SEP-1699), and
//! `http` the axum router with its Host/Origin checks.
//!
//! Owns: the command line, binding loopback only, the one ready line on stdout, and stopping
//! cleanly on SIGTERM or SIGINT.
//!
//! Must not: listen beyond loopback, or print anything but the ready line to stdout (the test
//! fixture that starts it reads that line); logs go to stderr.

// The fixture serves the 2025-era protocol on purpose. rmcp 3.11 marks that era's features
// (logging, sampling, elicitation requests, resources/subscribe) deprecated by SEP-2577.
#![allow(deprecated)]

mod handler;
mod http;
mod media;
mod prompts;
mod resources;
mod sessions;
mod tools;

use std::io::{IsTerminal as _, Write as _};
use std::net::SocketAddr;

use anyhow::{Context as _, bail};
use clap::Parser;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// An MCP server with the conformance suite's server surface, on loopback.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on; must be a loopback address. Port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Ignored. Test harnesses put their temp dir here, so that a process left behind can be
    /// found (and stopped) by its command line.
    #[arg(long, hide = true)]
    tag: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CONFORMANCE_UPSTREAM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let args = Args::parse();
    if !args.listen.ip().is_loopback() {
        bail!(
            "refusing to listen on {}: the fixture binds loopback addresses only",
            args.listen
        );
    }

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let address = listener.local_addr().context("reading the bound address")?;
    let shutdown = CancellationToken::new();
    let router = http::router(shutdown.clone());
    // Installed before the ready line: from then on SIGTERM means "stop cleanly", never the
    // default of dying on the spot.
    let stop_signals = StopSignals::install().context("listening for SIGTERM and SIGINT")?;

    // The ready line: the listener is bound, so a client may connect as soon as it is read.
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on http://{address}/mcp").context("writing the ready line")?;
    stdout.flush().context("flushing the ready line")?;
    drop(stdout);

    axum::serve(listener, router)
        .with_graceful_shutdown(stop_signals.wait_then_cancel(shutdown))
        .await
        .context("serving")?;
    tracing::info!("Stopped.");
    Ok(())
}

/// SIGTERM and SIGINT, caught.
#[derive(Debug)]
struct StopSignals {
    terminate: Signal,
    interrupt: Signal,
}

impl StopSignals {
    fn install() -> std::io::Result<Self> {
        Ok(Self {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    /// Resolves on SIGTERM or SIGINT, after cancelling `shutdown`, which ends every open MCP
    /// session and SSE stream (graceful shutdown would otherwise wait for them forever).
    async fn wait_then_cancel(mut self, shutdown: CancellationToken) {
        tokio::select! {
            _ = self.terminate.recv() => {}
            _ = self.interrupt.recv() => {}
        }
        tracing::info!("Stop signal received, stopping.");
        shutdown.cancel();
    }
}
