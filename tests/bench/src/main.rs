//! Benchmarks behind `BENCHMARKS.md`, each run in one process so its figures are comparable.
//!
//! Storage, on each backend: append throughput with optimistic-concurrency checks
//! (uncontended and contended), projection lag (append returned → read model visible to a
//! watcher, the path a data plane sees), and durable audit appends from many concurrent
//! callers (the data plane's hot path) with the query latency that follows.
//!
//! The proxy hop (`proxy`, module `proxy`): MCP `tools/call` latency at a fixed rate and
//! throughput at saturation, direct to an upstream, through nginx, and through the gateway.
//!
//! Run through `scripts/bench`, which builds in release mode and starts nothing by hand: the
//! JetStream backends start their own nats-server (one node, or a 3-node cluster) on loopback,
//! and the proxy scenario its own upstream (`bench-upstream`) and nginx.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark driver: failing loudly is right

mod backend;
mod proxy;
mod scenarios;

use std::time::Duration;

use clap::{Parser, ValueEnum};

/// Storage and proxy-hop benchmarks.
#[derive(Debug, Parser)]
struct Args {
    /// Backends to measure, in order (the storage scenarios; `proxy` uses none).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "sqlite,jetstream-r1,jetstream-r3"
    )]
    backends: Vec<backend::Kind>,
    /// Scenarios to run.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "append,contended,lag"
    )]
    scenarios: Vec<Scenario>,
    /// Seconds each throughput scenario runs (in `proxy`: each phase, per target).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrent writers in the throughput scenarios.
    #[arg(long, default_value_t = 16)]
    writers: usize,
    /// Events appended (at `lag-rate` per second) in the lag scenario.
    #[arg(long, default_value_t = 2000)]
    lag_events: usize,
    /// Appends per second in the lag scenario.
    #[arg(long, default_value_t = 200)]
    lag_rate: u32,
    /// Concurrent callers in the audit scenario (each one a tool call being decided).
    #[arg(long, default_value_t = 64)]
    audit_writers: usize,
    /// Appends per second in the audit-rate scenario (the proxy benchmark's call rate).
    #[arg(long, default_value_t = 1000)]
    audit_rate: u32,
    /// Grants revoked (one per round) in the revocation scenario.
    #[arg(long, default_value_t = 200)]
    revocation_rounds: usize,
    #[command(flatten)]
    proxy: proxy::ProxyArgs,
    #[command(flatten)]
    cluster: proxy::cluster::ClusterArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// Each writer appends to its own aggregates: every append checks the expected version.
    Append,
    /// All writers append to the same 4 aggregates: load, append, on conflict reload and retry.
    Contended,
    /// Append at a fixed rate with the projector running; time until a watcher sees each change.
    Lag,
    /// Many callers append audit records as fast as acknowledgements come; then page queries.
    Audit,
    /// Audit records appended at a fixed rate (`--audit-rate`); time until each is
    /// acknowledged.
    AuditRate,
    /// Admin commands through the control service (add a human), projector running: every
    /// write returns once its read model is updated.
    Control,
    /// MCP `tools/call` direct to an upstream, through nginx and through the gateway
    /// (`--gateway-url`): latency at `--rate` calls/s, throughput at `--concurrency`, memory.
    /// Uses no backend.
    Proxy,
    /// A grant revoked through the control service: time until both of two in-process
    /// data-plane replicas deny (embedded store). Uses no backend.
    Revocation,
    /// The distributed deployment on one NATS node: a new data plane's time to ready with
    /// 1,000 servers and 100,000 sessions in the read models, and throughput through nginx
    /// over 1, 2 and 3 data planes. Uses no backend.
    Cluster,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Warnings and errors of the code under measurement go to stderr (RUST_LOG overrides).
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let storage: Vec<Scenario> = args
        .scenarios
        .iter()
        .copied()
        .filter(|s| {
            !matches!(
                s,
                Scenario::Proxy | Scenario::Revocation | Scenario::Cluster
            )
        })
        .collect();
    if !storage.is_empty() {
        println!("| backend | scenario | result | p50 | p99 | notes |\n|---|---|---|---|---|---|");
    }
    for kind in &args.backends {
        for scenario in &storage {
            // A fresh store for every scenario, so no run measures another's leftovers.
            let backend = backend::open(*kind).await?;
            let duration = Duration::from_secs(args.seconds);
            let row = match scenario {
                Scenario::Append => scenarios::append(&backend, args.writers, duration).await?,
                Scenario::Contended => {
                    scenarios::contended(&backend, args.writers, duration).await?
                }
                Scenario::Lag => scenarios::lag(&backend, args.lag_events, args.lag_rate).await?,
                Scenario::Audit => scenarios::audit(&backend, args.audit_writers, duration).await?,
                Scenario::AuditRate => {
                    scenarios::audit_rate(&backend, args.audit_rate, duration).await?
                }
                Scenario::Control => scenarios::control(&backend, args.writers, duration).await?,
                Scenario::Proxy | Scenario::Revocation | Scenario::Cluster => {
                    unreachable!("filtered out above")
                }
            };
            println!(
                "| {} | {} | {} |",
                kind.label(),
                scenario_label(*scenario),
                row
            );
            drop(backend);
        }
    }
    if args.scenarios.contains(&Scenario::Revocation) {
        proxy::revocation::run(args.proxy.upstream_bin.as_deref(), args.revocation_rounds).await?;
    }
    if args.scenarios.contains(&Scenario::Cluster) {
        // On this (the main) thread too: it starts processes.
        proxy::cluster::run(&args.proxy, &args.cluster, args.seconds).await?;
    }
    if args.scenarios.contains(&Scenario::Proxy) {
        // Runs on this (the main) thread: the processes it starts die with it.
        proxy::run(&args.proxy, args.seconds).await?;
    }
    Ok(())
}

fn scenario_label(scenario: Scenario) -> &'static str {
    match scenario {
        Scenario::Append => "append, own aggregates",
        Scenario::Contended => "append, 4 hot aggregates",
        Scenario::Lag => "projection lag",
        Scenario::Audit => "audit append",
        Scenario::AuditRate => "audit append at a fixed rate",
        Scenario::Control => "control commands",
        Scenario::Proxy => "proxy hop",
        Scenario::Revocation => "revocation",
        Scenario::Cluster => "cluster",
    }
}
