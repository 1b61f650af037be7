//! The `proxy` scenario: what one proxy hop costs an MCP `tools/call`, measured in one run
//! against the same upstream (`bench-upstream`): direct, through nginx (`proxy_pass` with
//! upstream keep-alive: the floor of a proxy hop), and through the gateway, both as
//! `portcullis dev` and as the distributed deployment's `portcullis data-plane`.
//!
//! For each target: a real MCP handshake on every connection, then a fixed-rate phase (open
//! loop, default 1,000 calls/s, latency from the intended send time) and a saturation phase
//! (closed loop, default 64 connections). The report gives each proxy's added latency over
//! direct (p50, p99), its throughput next to nginx's, and every target's resident memory.
//!
//! Owns: starting bench-upstream and nginx as separate processes on loopback (killed on
//! exit), the target list, and the order of phases. `load` makes the load, `mcp_client`
//! speaks MCP, `report` writes the tables.
//!
//! The gateway is `portcullis dev` (release build) started by `gateway` on a data directory
//! seeded with the upstream imported, a granted human, an agent's session and its token, and
//! `--gateway-sessions` (100,000) further cached sessions; or an external process given by
//! `--gateway-url`, `--gateway-token` and `--gateway-pid`. The data plane (`cluster::
//! start_data_plane`) runs on a nats-server and projector of its own, with the same upstream
//! imported and as many sessions written into its read models; `--no-data-plane` skips it.

mod child;
pub mod cluster;
mod gateway;
mod load;
mod mcp_client;
mod nginx;
mod report;
pub mod revocation;
mod target;
mod upstream;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use hyper::header::{AUTHORIZATION, HeaderValue};

use target::{Endpoint, Target};

/// The tool every call names on the upstream (a low-trust tool, as most calls are).
const UPSTREAM_TOOL: &str = "get_weather";
const DIRECT: &str = "direct";
const NGINX: &str = "nginx";
/// The forward-only hop on the gateway's own HTTP stack (axum server, hyper-util client).
const HOP: &str = "hop (axum + hyper, forward only)";

/// Settings of the `proxy` scenario.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Proxy scenario (--scenarios proxy)")]
pub struct ProxyArgs {
    /// Calls per second in the fixed-rate phase (open loop).
    #[arg(long, default_value_t = 1000)]
    pub rate: u32,
    /// Keep-alive connections (each its own MCP session) that carry the fixed-rate calls.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// Connections in the saturation phase, each calling back to back.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Seconds of unmeasured load before each phase.
    #[arg(long, default_value_t = 2)]
    pub warmup_seconds: u64,
    /// Rounds over all targets, interleaved (direct, nginx, gateway, direct, …), each phase
    /// `--seconds` long per round; results of a target's rounds are merged. More rounds spread
    /// the noise of a shared machine evenly over the targets.
    #[arg(long, default_value_t = 1)]
    pub rounds: u32,
    /// The nginx binary (scripts/bench fetches Debian's and sets PORTCULLIS_NGINX).
    #[arg(long, env = "PORTCULLIS_NGINX")]
    pub nginx: Option<PathBuf>,
    /// nginx worker processes; keep it equal to the gateway's worker threads for a fair floor.
    #[arg(long, default_value_t = 2)]
    pub nginx_workers: usize,
    /// The bench-upstream binary [default: next to this executable].
    #[arg(long, env = "PORTCULLIS_BENCH_UPSTREAM")]
    pub upstream_bin: Option<PathBuf>,
    /// Where the harness's bench-upstream listens (loopback). Fix the port to point an
    /// externally started gateway at it.
    #[arg(long, default_value = "127.0.0.1:0", conflicts_with = "upstream_url")]
    pub upstream_listen: SocketAddr,
    /// bench-upstream's worker threads [default: one per core].
    #[arg(long)]
    pub upstream_threads: Option<usize>,
    /// Measure an upstream that is already running (e.g. the one a gateway was configured
    /// with) instead of starting bench-upstream.
    #[arg(long)]
    pub upstream_url: Option<String>,
    /// Process id of that upstream, for its memory.
    #[arg(long, requires = "upstream_url")]
    pub upstream_pid: Option<u32>,
    /// MCP endpoint of an externally started gateway, measured as a third target, e.g.
    /// http://127.0.0.1:8080/mcp (loopback only).
    #[arg(long)]
    pub gateway_url: Option<String>,
    /// Bearer token for the gateway, sent as `Authorization: Bearer <token>`.
    #[arg(
        long,
        env = "PORTCULLIS_BENCH_GATEWAY_TOKEN",
        hide_env_values = true,
        requires = "gateway_url"
    )]
    pub gateway_token: Option<String>,
    /// Process id of the gateway, for its memory (children included).
    #[arg(long, requires = "gateway_url")]
    pub gateway_pid: Option<u32>,
    /// The name under which the gateway exposes the upstream's `get_weather`.
    #[arg(long, default_value = UPSTREAM_TOOL)]
    pub gateway_tool: String,
    /// Do not measure `bench-hop`, the forward-only hop on the gateway's HTTP stack (axum's
    /// server and a pooled hyper-util client, nothing else): the floor of a Rust proxy hop.
    #[arg(long)]
    pub no_hop: bool,
    /// Do not start `portcullis dev` as a target.
    #[arg(long, conflicts_with = "gateway_url")]
    pub no_gateway: bool,
    /// `portcullis dev` targets, one per `--audit-durability`: `power-loss` (the default:
    /// each audit record fsynced before its call is forwarded) and `process-crash` (written
    /// to the write-ahead log).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "power-loss,process-crash",
        conflicts_with = "gateway_url"
    )]
    pub dev_audit_durability: Vec<gateway::AuditDurability>,
    /// Do not start the distributed deployment's `portcullis data-plane` (on a NATS JetStream
    /// deployment and projector of its own) as a target.
    #[arg(long)]
    pub no_data_plane: bool,
    /// The data plane's NATS, one target each: `3` is a 3-node cluster with R3 streams and
    /// buckets (production's shape: acknowledged once a quorum holds the audit record), `1`
    /// one node with `sync_interval: always` (an fsync per message).
    #[arg(long, value_delimiter = ',', default_value = "3,1", value_parser = clap::value_parser!(u8).range(1..=3))]
    pub data_plane_nats: Vec<u8>,
    /// Consent sessions each started gateway (`dev` and the data plane) holds in its read
    /// models (and so in its cache) besides the one the load uses.
    #[arg(long, default_value_t = 100_000, conflicts_with = "gateway_url")]
    pub gateway_sessions: usize,
    /// The portcullis binary the harness starts [default: next to this executable].
    #[arg(long, env = "PORTCULLIS_BIN", conflicts_with = "gateway_url")]
    pub portcullis_bin: Option<PathBuf>,
}

/// Processes the harness started; dropping it stops them (nginx first, then the upstream).
#[derive(Debug)]
struct Running {
    nginx: nginx::Nginx,
    /// Held for its `Drop` only; `None` with `--no-hop`.
    _hop: Option<upstream::Upstream>,
    /// Held for their `Drop` only; empty when none was started by the harness.
    _gateways: Vec<gateway::Gateway>,
    /// Held for their `Drop` only; empty with `--no-data-plane`.
    _data_planes: Vec<cluster::StandaloneDataPlane>,
    /// Held for its `Drop` only; `None` when the upstream was started by someone else.
    _upstream: Option<upstream::Upstream>,
}

/// Runs the scenario and prints its report to stdout (progress goes to stderr).
pub async fn run(args: &ProxyArgs, seconds: u64) -> anyhow::Result<()> {
    let (running, targets) = start_targets(args).await?;
    let has = |wanted: &dyn Fn(&str) -> bool| targets.iter().any(|t| wanted(&t.name));
    println!(
        "\n## Proxy hop: direct vs {} ({} workers){}{}",
        running.nginx.version,
        args.nginx_workers,
        if has(&|name| name == HOP) {
            " vs a forward-only Rust hop"
        } else {
            ""
        },
        if has(&|name| ![DIRECT, NGINX, HOP].contains(&name)) {
            " vs the gateway"
        } else {
            ""
        }
    );
    for target in &targets {
        preflight(target).await?;
    }
    println!("\nLoad average before: {}", load_average());
    let duration = Duration::from_secs(seconds);
    let mut rows: Vec<report::Measured> = Vec::new();
    for round in 0..args.rounds.max(1) {
        for (i, target) in targets.iter().enumerate() {
            let (fixed, saturation) = measure(target, args, duration).await?;
            if round == 0 {
                rows.push(report::Measured {
                    name: target.name.clone(),
                    url: target.endpoint.url.clone(),
                    fixed,
                    saturation,
                    memory: None,
                    cpu_known: !target.pids.is_empty(),
                    has_store: !target.store_pids.is_empty(),
                });
            } else {
                rows[i].fixed.merge(fixed);
                rows[i].saturation.merge(saturation);
            }
        }
    }
    println!("Load average after: {}", load_average());
    // At the end, so VmHWM covers every phase (the upstream served all three targets).
    for (row, target) in rows.iter_mut().zip(&targets) {
        if !target.pids.is_empty() {
            row.memory = Some(target::memory(&target.pids)?);
        }
    }
    let settings = report::Settings {
        tool: UPSTREAM_TOOL.to_owned(),
        rate: args.rate,
        connections: args.connections,
        concurrency: args.concurrency,
        seconds,
        rounds: args.rounds.max(1),
        warmup_seconds: args.warmup_seconds,
    };
    print!("{}", report::render(&rows, &settings, DIRECT, NGINX));
    let nginx_log = running.nginx.dir().join("error.log");
    let complaints = std::fs::read_to_string(&nginx_log).unwrap_or_default();
    if !complaints.trim().is_empty() {
        eprintln!("nginx's error log ({}):\n{complaints}", nginx_log.display());
    }
    drop(running);
    Ok(())
}

/// The 1, 5 and 15 minute load averages: other work on the machine shows in every figure.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// Starts what the harness runs itself and lists the targets: direct, nginx, and the gateway
/// when one is given.
async fn start_targets(args: &ProxyArgs) -> anyhow::Result<(Running, Vec<Target>)> {
    let nginx_binary = nginx::binary(args.nginx.as_deref())?;
    let (upstream, upstream_url, upstream_pids) = match &args.upstream_url {
        Some(url) => (None, url.clone(), args.upstream_pid.into_iter().collect()),
        None => {
            let binary = upstream::binary(args.upstream_bin.as_deref())?;
            let started =
                upstream::start(&binary, args.upstream_listen, args.upstream_threads).await?;
            let (url, pid) = (started.url.clone(), started.process.id());
            (Some(started), url, vec![pid])
        }
    };
    let upstream_endpoint = Arc::new(Endpoint::resolve(&upstream_url, Vec::new()).await?);
    let nginx = nginx::start(
        &nginx_binary,
        upstream_endpoint.addr,
        &upstream_endpoint.path,
        args.nginx_workers,
    )
    .await?;
    let mut targets = vec![
        Target {
            name: DIRECT.to_owned(),
            endpoint: upstream_endpoint,
            tool: UPSTREAM_TOOL.to_owned(),
            pids: upstream_pids,
            store_pids: Vec::new(),
        },
        Target {
            name: NGINX.to_owned(),
            endpoint: Arc::new(Endpoint::resolve(&nginx.url, Vec::new()).await?),
            tool: UPSTREAM_TOOL.to_owned(),
            pids: vec![nginx.process.id()],
            store_pids: Vec::new(),
        },
    ];
    let hop = if args.no_hop {
        None
    } else {
        let hop = upstream::start_hop(&upstream::hop_binary()?, &upstream_url, args.nginx_workers)
            .await?;
        targets.push(Target {
            name: HOP.to_owned(),
            endpoint: Arc::new(Endpoint::resolve(&hop.url, Vec::new()).await?),
            tool: UPSTREAM_TOOL.to_owned(),
            pids: vec![hop.process.id()],
            store_pids: Vec::new(),
        });
        Some(hop)
    };
    let mut started_gateways = Vec::new();
    let devs = if args.gateway_url.is_none() && !args.no_gateway {
        args.dev_audit_durability.as_slice()
    } else {
        &[]
    };
    for &durability in devs {
        let binary = gateway::binary(args.portcullis_bin.as_deref())?;
        eprintln!(
            "Starting `portcullis dev --audit-durability {}` with {} cached sessions…",
            durability.flag(),
            args.gateway_sessions + 1
        );
        let running =
            gateway::start(&binary, &upstream_url, args.gateway_sessions, durability).await?;
        let mut value = HeaderValue::from_str(&format!("Bearer {}", running.token))
            .context("the gateway token is not a valid header value")?;
        value.set_sensitive(true);
        targets.push(Target {
            name: durability.target_name().to_owned(),
            endpoint: Arc::new(
                Endpoint::resolve(&running.url, vec![(AUTHORIZATION, value)]).await?,
            ),
            tool: UPSTREAM_TOOL.to_owned(),
            pids: vec![running.process.id()],
            store_pids: Vec::new(),
        });
        started_gateways.push(running);
    }
    let mut started_data_planes = Vec::new();
    for &nodes in args.data_plane_nats.iter().filter(|_| !args.no_data_plane) {
        eprintln!(
            "Starting a data plane on {nodes} NATS node(s) with {} cached sessions…",
            args.gateway_sessions + 1
        );
        let (running, target) = cluster::start_data_plane(
            args,
            &upstream_url,
            args.gateway_sessions,
            usize::from(nodes),
        )
        .await?;
        targets.push(target);
        started_data_planes.push(running);
    }
    if let Some(url) = &args.gateway_url {
        let mut headers = Vec::new();
        if let Some(token) = &args.gateway_token {
            let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
                .context("the gateway token is not a valid header value")?;
            value.set_sensitive(true);
            headers.push((AUTHORIZATION, value));
        }
        targets.push(Target {
            name: "gateway".to_owned(),
            endpoint: Arc::new(Endpoint::resolve(url, headers).await?),
            tool: args.gateway_tool.clone(),
            pids: args.gateway_pid.into_iter().collect(),
            store_pids: Vec::new(),
        });
    }
    Ok((
        Running {
            nginx,
            _hop: hop,
            _gateways: started_gateways,
            _data_planes: started_data_planes,
            _upstream: upstream,
        },
        targets,
    ))
}

/// One MCP session with the target that lists its tool: fails fast, before any target is
/// measured, on a gateway that is down, refuses the token, or names the tool differently.
async fn preflight(target: &Target) -> anyhow::Result<()> {
    let mut connection = load::open(target, 1).await?.remove(0);
    let tools = connection
        .list_tools()
        .await
        .with_context(|| format!("tools/list on {}", target.endpoint.url))?;
    connection.close().await;
    anyhow::ensure!(
        tools.contains(&target.tool),
        "{} does not list the tool {:?} (it lists {tools:?}); pass the right name with --gateway-tool",
        target.endpoint.url,
        target.tool
    );
    Ok(())
}

/// Both phases against one target, each on fresh connections after a warm-up.
async fn measure(
    target: &Target,
    args: &ProxyArgs,
    duration: Duration,
) -> anyhow::Result<(load::FixedRate, load::Saturation)> {
    let warmup = Duration::from_secs(args.warmup_seconds);
    eprintln!(
        "{}: {} calls/s over {} connections for {} s",
        target.name,
        args.rate,
        args.connections,
        duration.as_secs()
    );
    let fixed = load::fixed_rate_phase(
        target.clone(),
        args.connections,
        args.rate,
        warmup,
        duration,
    )
    .await?;

    eprintln!(
        "{}: saturation over {} connections for {} s",
        target.name,
        args.concurrency,
        duration.as_secs()
    );
    let mut connections = load::open(target, args.concurrency).await?;
    if !warmup.is_zero() {
        connections = load::saturation(connections, warmup).await?.1;
    }
    let before = target.cpu_use()?;
    let (mut saturation, connections) = load::saturation(connections, duration).await?;
    saturation.cpu = target.cpu_use()?.since(before);
    load::close(connections).await;
    Ok((fixed, saturation))
}
