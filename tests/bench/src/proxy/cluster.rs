//! The `cluster` scenario: the distributed deployment on NATS JetStream, as separate release
//! processes on loopback (issue 6's scale-out figures).
//!
//! 1. **Time to ready.** A new `portcullis data-plane` process, from spawn until `/readyz`
//!    answers 200 (every read-model bucket replayed into its replica and the projector's
//!    checkpoint compared with the log head), first over the read models of a fresh
//!    deployment (one host, one server, one session: the baseline), then with
//!    `--cluster-servers` (1,000) servers and `--cluster-sessions` (100,000) sessions in them.
//!    The extra servers and sessions are written straight into the KV buckets, as the
//!    projector would have from their events: what is measured is the replica's start, not
//!    the projector. Each start is repeated `--ready-rounds` times; resident memory once ready
//!    is reported beside it.
//! 2. **Throughput behind a balancer.** Three data planes run; Debian's nginx (round robin,
//!    no stickiness, `test_fixtures::LoadBalancer`) spreads `--concurrency` MCP connections
//!    over the first 1, 2, then 3 of them; each configuration is measured in the saturation
//!    phase of the proxy scenario (closed loop, `tools/call` to `bench-upstream`).
//!
//! Everything (nats-server, the projector, three data planes, nginx, the upstream and this
//! harness) shares the machine: on a machine with fewer cores than processes, more data
//! planes add no CPU, and the figures say how much a replica costs rather than gains.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use futures::StreamExt as _;
use hyper::header::{AUTHORIZATION, HeaderValue};
use portcullis_commands::Context;
use portcullis_e2e::gateway::{TEST_MASTER_KEY, control_over, import_upstream, now_seconds};
use portcullis_projector::models::{Server, ServerKeyOwner, State, Versioned};
use portcullis_projector::{Buckets, ModelKind, model_key};
use portcullis_proto::TrustLevel;
use portcullis_store::{Expect, ReadModelStore};
use portcullis_store_jetstream::{JetStreamConfig, JetStreamStore};
use portcullis_tokens::PublicUrls;
use test_fixtures::{LoadBalancer, NatsCluster, NatsServer};

use super::child::ManagedChild;
use super::load;
use super::target::{Endpoint, Target};
use super::{ProxyArgs, UPSTREAM_TOOL, gateway, upstream};

/// Concurrent KV writes while seeding.
const SEED_CONCURRENCY: usize = 64;

/// Settings of the `cluster` scenario.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Cluster scenario (--scenarios cluster)")]
pub struct ClusterArgs {
    /// Sessions in the read models when a data plane's start is timed.
    #[arg(long, default_value_t = 100_000)]
    pub cluster_sessions: usize,
    /// Servers in the read models when a data plane's start is timed.
    #[arg(long, default_value_t = 1_000)]
    pub cluster_servers: usize,
    /// Starts timed per configuration.
    #[arg(long, default_value_t = 3)]
    pub ready_rounds: u32,
}

/// The deployment's NATS: one node (`sync_interval: always`: an fsync per message before
/// the acknowledgement) or a 3-node cluster with R3 streams and buckets (an acknowledgement
/// once a quorum holds the message, the server's default fsync interval: production's shape).
enum Nats {
    One(NatsServer),
    Cluster(NatsCluster),
}

impl Nats {
    async fn start(nodes: usize) -> anyhow::Result<Self> {
        Ok(match nodes {
            1 => Nats::One(NatsServer::start().await.context("starting nats-server")?),
            3 => Nats::Cluster(
                NatsCluster::start(3)
                    .await
                    .context("starting a 3-node NATS cluster")?,
            ),
            other => anyhow::bail!("NATS nodes must be 1 or 3, not {other}"),
        })
    }

    fn client_urls(&self) -> Vec<String> {
        match self {
            Nats::One(server) => server.client_urls(),
            Nats::Cluster(cluster) => cluster.client_urls(),
        }
    }

    /// The nodes' process ids.
    fn pids(&self) -> Vec<u32> {
        match self {
            Nats::One(server) => server.pids(),
            Nats::Cluster(cluster) => cluster.pids(),
        }
    }

    /// Stream and bucket replicas: as many as nodes.
    fn replicas(&self) -> usize {
        match self {
            Nats::One(_) => 1,
            Nats::Cluster(cluster) => cluster.size(),
        }
    }
}

/// One deployment's shared parts: NATS, the projector, the store, the upstream, a session.
struct Deployment {
    nats: Nats,
    namespace: String,
    binary: std::path::PathBuf,
    public_url: String,
    host_name: String,
    token: String,
    store: Arc<JetStreamStore>,
    host_id: String,
    server_id: String,
    dir: tempfile::TempDir,
    projector: ManagedChild,
    /// `None` when the upstream belongs to the caller (the proxy scenario's).
    _upstream: Option<upstream::Upstream>,
}

impl Deployment {
    /// The processes of the deployment's store: the nats-servers and the projector.
    fn store_pids(&self) -> Vec<u32> {
        let mut pids = self.nats.pids();
        pids.push(self.projector.id());
        pids
    }

    /// `portcullis data-plane` on `listen`, logging warnings to a file in the temp dir.
    fn data_plane(&self, listen: SocketAddr) -> anyhow::Result<ManagedChild> {
        let log = std::fs::File::create(
            self.dir
                .path()
                .join(format!("data-plane-{}.log", listen.port())),
        )?;
        let mut command = Command::new(&self.binary);
        command
            .args(["data-plane", "--nats"])
            .arg(self.nats.client_urls().join(","))
            .args(["--replicas", &self.nats.replicas().to_string()])
            .args(["--namespace", &self.namespace])
            .args(["--master-key", TEST_MASTER_KEY])
            .args(["--public-url", &self.public_url])
            .arg("--allow-private-upstreams")
            .arg("--listen")
            .arg(listen.to_string())
            .env("PORTCULLIS_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        ManagedChild::spawn("portcullis data-plane", command, libc::SIGKILL)
    }
}

/// Runs the scenario and prints its tables. Must run on the main thread (it starts processes).
pub async fn run(args: &ProxyArgs, cluster: &ClusterArgs, seconds: u64) -> anyhow::Result<()> {
    let deployment = deploy(args, None, 1).await?;
    println!(
        "\n## Cluster: data planes on NATS JetStream ({})",
        nats_version()
    );

    let baseline = time_to_ready(&deployment, cluster.ready_rounds).await?;
    eprintln!(
        "Seeding {} servers and {} sessions into the read models…",
        cluster.cluster_servers, cluster.cluster_sessions
    );
    let seeding = Instant::now();
    seed(
        &deployment,
        cluster.cluster_servers,
        cluster.cluster_sessions,
    )
    .await?;
    let seeded_in = seeding.elapsed();
    let loaded = time_to_ready(&deployment, cluster.ready_rounds).await?;
    println!(
        "\nTime from `portcullis data-plane` starting to `/readyz` 200, {} starts each \
         (seeding the KV buckets took {:.1} s):\n",
        cluster.ready_rounds,
        seeded_in.as_secs_f64()
    );
    println!("| read models | median | min | max | resident once ready |\n|---|---|---|---|---|");
    for (label, starts) in [
        ("1 server, 1 session (baseline)".to_owned(), &baseline),
        (
            format!(
                "{} servers, {} sessions",
                cluster.cluster_servers + 1,
                cluster.cluster_sessions + 1
            ),
            &loaded,
        ),
    ] {
        println!(
            "| {label} | {} | {} | {} | {} |",
            ms(starts.median()),
            ms(starts.min()),
            ms(starts.max()),
            starts.memory.describe()
        );
    }
    println!(
        "\nLoaded / baseline (median): {:.1}×",
        loaded.median().as_secs_f64() / baseline.median().as_secs_f64()
    );

    throughput(&deployment, args, seconds).await?;
    Ok(())
}

fn ms(duration: Duration) -> String {
    format!("{:.0} ms", duration.as_secs_f64() * 1000.0)
}

fn nats_version() -> String {
    std::env::var_os("PORTCULLIS_NATS_SERVER")
        .and_then(|binary| Command::new(binary).arg("--version").output().ok())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_else(|| "nats-server".to_owned())
}

/// A deployment with NATS, the projector, an imported upstream (`upstream_url`, or a
/// `bench-upstream` of its own), a human granted High and an agent's session at High.
async fn deploy(
    args: &ProxyArgs,
    upstream_url: Option<&str>,
    nats_nodes: usize,
) -> anyhow::Result<Deployment> {
    let binary = gateway::binary(args.portcullis_bin.as_deref())?;
    let dir = tempfile::Builder::new()
        .prefix("portcullis-bench-cluster-")
        .tempdir()
        .context("a temp dir for the cluster's logs")?;
    let nats = Nats::start(nats_nodes).await?;
    let namespace = test_fixtures::unique_namespace();
    let projector_listen = free_addr()?;
    let mut command = Command::new(&binary);
    command
        .args(["projector", "--nats"])
        .arg(nats.client_urls().join(","))
        .args(["--replicas", &nats.replicas().to_string()])
        .args(["--namespace", &namespace])
        .arg("--listen")
        .arg(projector_listen.to_string())
        .env("PORTCULLIS_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("projector.log"))?);
    let projector = ManagedChild::spawn("portcullis projector", command, libc::SIGKILL)?;
    wait_ready(projector_listen, Duration::from_secs(60)).await?;

    let mut config = JetStreamConfig::new(nats.client_urls());
    config.replicas = nats.replicas();
    config.namespace = namespace.clone();
    let store = Arc::new(
        JetStreamStore::connect(config)
            .await
            .context("connecting to the deployment's JetStream")?,
    );
    let side = control_over(store.clone(), store.clone()).await;
    let (upstream, url) = match upstream_url {
        Some(url) => (None, url.to_owned()),
        None => {
            let binary = upstream::binary(args.upstream_bin.as_deref())?;
            let started =
                upstream::start(&binary, args.upstream_listen, args.upstream_threads).await?;
            let url = started.url.clone();
            (Some(started), url)
        }
    };
    let server = import_upstream(&side.control, &side.admin, &side.host_id, &url, "weather").await;
    let c = &side.control;
    let human = c
        .add_human(
            &side.admin,
            &context("human"),
            None,
            &side.host_id,
            "bench@example.com",
        )
        .await?
        .human_id;
    c.put_grant(
        &side.admin,
        &context("grant"),
        None,
        &side.host_id,
        &human,
        &server.server_id,
        TrustLevel::High,
    )
    .await?;
    let agent = c
        .test_register_agent(&context("agent"), &side.host_id, "bench", Some(&human))
        .await?;
    let session = c
        .test_start_session(
            &context("session"),
            &side.host_id,
            &human,
            &agent,
            &server.server_id,
            TrustLevel::High,
        )
        .await?;
    // Data planes answer for `<host>.localhost:<port>`; the balancer sends that name whatever
    // port it listens on.
    let public_port = free_addr()?.port();
    let urls = PublicUrls {
        scheme: "http".to_owned(),
        base_domain: Some("localhost".to_owned()),
        port: Some(public_port),
        default_host_base: None,
    };
    let token = c
        .test_access_token(
            &side.ring,
            &side.host_id,
            &session,
            &urls.host_base(&side.host_id, false),
            &urls.mcp_url(&side.host_id, false),
            now_seconds(),
            24 * 3600,
        )
        .await?;
    Ok(Deployment {
        host_name: format!("{}.localhost:{public_port}", side.host_id),
        public_url: format!("http://localhost:{public_port}"),
        nats,
        namespace,
        binary,
        token,
        store,
        host_id: side.host_id.clone(),
        server_id: server.server_id,
        dir,
        projector,
        _upstream: upstream,
    })
}

/// One `portcullis data-plane` on a deployment of its own (NATS JetStream, the projector)
/// in front of the proxy scenario's upstream: the distributed deployment's hop, with the
/// audit record acknowledged by JetStream before each call is forwarded. Dropping it stops
/// the data plane, then the deployment.
pub(super) struct StandaloneDataPlane {
    plane: ManagedChild,
    _deployment: Deployment,
}

impl std::fmt::Debug for StandaloneDataPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StandaloneDataPlane")
            .field("pid", &self.plane.id())
            .finish_non_exhaustive()
    }
}

/// Deploys, seeds `sessions` further live sessions into the `sessions` read model, starts a
/// data plane and waits until it is ready; returns it and the target that measures it.
pub(super) async fn start_data_plane(
    args: &ProxyArgs,
    upstream_url: &str,
    sessions: usize,
    nats_nodes: usize,
) -> anyhow::Result<(StandaloneDataPlane, Target)> {
    let deployment = deploy(args, Some(upstream_url), nats_nodes).await?;
    seed(&deployment, 0, sessions).await?;
    let listen = free_addr()?;
    let plane = deployment.data_plane(listen)?;
    wait_ready(listen, Duration::from_secs(300)).await?;
    let mut bearer = HeaderValue::from_str(&format!("Bearer {}", deployment.token))
        .context("the token is not a valid header value")?;
    bearer.set_sensitive(true);
    let target = Target {
        name: format!("portcullis data-plane, NATS R{nats_nodes}"),
        endpoint: Arc::new(Endpoint {
            url: format!("http://{listen}/mcp (Host: {})", deployment.host_name),
            addr: listen,
            authority: HeaderValue::from_str(&deployment.host_name)?,
            path: "/mcp".to_owned(),
            headers: vec![(AUTHORIZATION, bearer)],
        }),
        tool: UPSTREAM_TOOL.to_owned(),
        pids: vec![plane.id()],
        store_pids: deployment.store_pids(),
    };
    Ok((
        StandaloneDataPlane {
            plane,
            _deployment: deployment,
        },
        target,
    ))
}

fn context(what: &str) -> Context {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    Context::system("bench", &format!("bench-{what}-{nanos}"))
}

fn free_addr() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    listener.local_addr().context("reading the free port")
}

/// Polls `/readyz` every 10 ms until it answers 200.
async fn wait_ready(listen: SocketAddr, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        if gateway::ready(listen).await {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{listen} was not ready within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Start times of one configuration, and memory once ready (of the last start).
struct Starts {
    took: Vec<Duration>,
    memory: super::target::Memory,
}

impl Starts {
    fn sorted(&self) -> Vec<Duration> {
        let mut sorted = self.took.clone();
        sorted.sort();
        sorted
    }
    fn median(&self) -> Duration {
        let sorted = self.sorted();
        sorted[sorted.len() / 2]
    }
    fn min(&self) -> Duration {
        self.sorted()[0]
    }
    fn max(&self) -> Duration {
        self.sorted()[self.took.len() - 1]
    }
}

/// Starts a data plane `rounds` times, each time until ready, then stops it.
async fn time_to_ready(deployment: &Deployment, rounds: u32) -> anyhow::Result<Starts> {
    let mut took = Vec::new();
    let mut memory = super::target::Memory::default();
    for _ in 0..rounds.max(1) {
        let listen = free_addr()?;
        let started = Instant::now();
        let process = deployment.data_plane(listen)?;
        wait_ready(listen, Duration::from_secs(300)).await?;
        took.push(started.elapsed());
        memory = super::target::memory(&[process.id()])?;
        drop(process);
    }
    Ok(Starts { took, memory })
}

/// Writes `servers` copies of the imported server (each with its own id and key) and
/// `sessions` live sessions on it straight into the KV buckets.
async fn seed(deployment: &Deployment, servers: usize, sessions: usize) -> anyhow::Result<()> {
    let buckets = Buckets::new(None)?;
    let kv: Arc<dyn ReadModelStore> = deployment.store.clone();
    let servers_bucket = buckets.for_kind(ModelKind::Server).clone();
    let original_key = model_key(
        ModelKind::Server,
        &[&deployment.host_id, &deployment.server_id],
    )?;
    let original = kv
        .get(&servers_bucket, &original_key)
        .await?
        .context("the imported server's read model")?;
    let original: Versioned<Server> = serde_json::from_slice(&original.value)?;
    let State::Live(template) = original.state else {
        anyhow::bail!("the imported server is not live");
    };
    let mut entries = Vec::with_capacity(servers * 2 + sessions);
    for index in 0..servers {
        let server_id = format!("01BENCHSERVER{index:013}");
        let key = format!("bench-{index}");
        let server = Versioned {
            applied_through: original.applied_through,
            state: State::Live(Server {
                key: key.clone(),
                name: format!("Bench server {index}"),
                ..template.clone()
            }),
        };
        entries.push((
            servers_bucket.clone(),
            model_key(ModelKind::Server, &[&deployment.host_id, &server_id])?,
            Bytes::from(serde_json::to_vec(&server)?),
        ));
        let owner = Versioned {
            applied_through: original.applied_through,
            state: State::Live(ServerKeyOwner {
                server_id: server_id.clone(),
            }),
        };
        entries.push((
            servers_bucket.clone(),
            model_key(ModelKind::ServerKey, &[&deployment.host_id, &key])?,
            Bytes::from(serde_json::to_vec(&owner)?),
        ));
    }
    let sessions_bucket = buckets.for_kind(ModelKind::Session).clone();
    for (key, value) in
        gateway::session_entries(&deployment.host_id, &deployment.server_id, sessions)?
    {
        entries.push((sessions_bucket.clone(), key, value));
    }
    let written = futures::stream::iter(entries)
        .map(|(bucket, key, value)| {
            let kv = kv.clone();
            async move { kv.put(&bucket, &key, value, Expect::Any).await }
        })
        .buffer_unordered(SEED_CONCURRENCY)
        .fold(Ok(0usize), |count, put| async move {
            match (count, put) {
                (Ok(count), Ok(_)) => Ok(count + 1),
                (Err(error), _) | (_, Err(error)) => Err(error),
            }
        })
        .await?;
    anyhow::ensure!(written == servers * 2 + sessions, "seeded {written} values");
    Ok(())
}

/// Saturation throughput through nginx over the first 1, 2 and 3 of three data planes.
async fn throughput(deployment: &Deployment, args: &ProxyArgs, seconds: u64) -> anyhow::Result<()> {
    let addrs: Vec<SocketAddr> = (0..3).map(|_| free_addr()).collect::<Result<_, _>>()?;
    let mut planes = Vec::new();
    for addr in &addrs {
        planes.push(deployment.data_plane(*addr)?);
    }
    for addr in &addrs {
        wait_ready(*addr, Duration::from_secs(300)).await?;
    }
    let mut bearer = HeaderValue::from_str(&format!("Bearer {}", deployment.token))
        .context("the token is not a valid header value")?;
    bearer.set_sensitive(true);
    let duration = Duration::from_secs(seconds);
    let warmup = Duration::from_secs(args.warmup_seconds);
    let mut rows = Vec::new();
    for n in 1..=addrs.len() {
        let balancer = LoadBalancer::start_with_host(&addrs[..n], Some(&deployment.host_name))
            .await
            .context("starting nginx")?;
        let target = Target {
            name: format!("{n} data plane(s)"),
            endpoint: Arc::new(Endpoint {
                url: format!("http://{}/mcp", balancer.addr),
                addr: balancer.addr,
                authority: HeaderValue::from_str(&deployment.host_name)?,
                path: "/mcp".to_owned(),
                headers: vec![(AUTHORIZATION, bearer.clone())],
            }),
            tool: UPSTREAM_TOOL.to_owned(),
            pids: planes.iter().take(n).map(ManagedChild::id).collect(),
            store_pids: deployment.store_pids(),
        };
        super::preflight(&target).await?;
        eprintln!(
            "{}: saturation over {} connections for {seconds} s",
            target.name, args.concurrency
        );
        let mut connections = load::open(&target, args.concurrency).await?;
        if !warmup.is_zero() {
            connections = load::saturation(connections, warmup).await?.1;
        }
        let (measured, connections) = load::saturation(connections, duration).await?;
        load::close(connections).await;
        let used: std::collections::BTreeSet<String> =
            balancer.backends_used().into_iter().collect();
        // The first data plane serves in every phase: its memory under load, with every
        // seeded session in its replica.
        let memory = planes
            .first()
            .map(|plane| super::target::memory(&[plane.id()]))
            .transpose()?
            .unwrap_or_default();
        rows.push((n, measured, used, memory));
    }
    println!(
        "\nThroughput through nginx (round robin) over 1, 2 and 3 data planes: saturation, {} \
         connections (each its own MCP session), {seconds} s after {} s of warm-up, \
         `tools/call` to bench-upstream:\n",
        args.concurrency, args.warmup_seconds
    );
    println!(
        "| data planes | calls/s | vs 1 | p50 | p99 | errors | backends used | first data plane's RSS after |\n|---|---|---|---|---|---|---|---|"
    );
    let single = rows
        .first()
        .map(|(_, m, _, _)| m.calls_per_second())
        .unwrap_or(1.0);
    for (n, measured, used, memory) in &rows {
        let p = |q: f64| measured.latency.value_at_quantile(q) as f64 / 1e6;
        println!(
            "| {n} | {:.0} | {:.2}× | {:.2} ms | {:.2} ms | {} | {} | {} |",
            measured.calls_per_second(),
            measured.calls_per_second() / single,
            p(0.5),
            p(0.99),
            measured.errors.values().sum::<u64>(),
            used.len(),
            memory.describe()
        );
    }
    drop(planes);
    Ok(())
}
