//! The `portcullis` binary's library: command line, settings, and the wiring of each
//! subcommand (`dev`, `control-plane`, `data-plane`, `projector`).
//!
//! Owns: turning flags and `PORTCULLIS_*` variables into validated settings, starting the
//! parts a subcommand runs (store, projector, replica, HTTP), health and readiness, and
//! graceful shutdown.
//!
//! Must not: hold domain logic or decide anything about policy: it only wires crates that do.

pub mod admin;
pub mod cli;
pub mod commands;
pub mod config;
pub mod health;
pub mod http_metrics;
pub mod shutdown;
pub mod stores;
pub mod telemetry;

use std::process::ExitCode;

use clap::Parser as _;

/// Parses the command line, runs the subcommand, and turns its outcome into an exit code.
/// Errors are printed with their whole cause chain, since that is what an operator needs.
pub fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("portcullis: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "Stopped.");
            eprintln!("portcullis: {error:#}");
            ExitCode::FAILURE
        }
    }
}
