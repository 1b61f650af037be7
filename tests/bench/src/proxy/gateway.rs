//! The gateway as the harness starts it: the real `portcullis dev` binary (release build, next
//! to the harness), on a data directory seeded as an admin and a consenting human would leave
//! it — the upstream imported, a human granted, an agent's session and its access token —
//! plus `--gateway-sessions` further consent sessions in the read models, so the replica
//! holds as many cached sessions as a busy host would while it is measured.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use portcullis_projector::models::{Session, State, Versioned};
use portcullis_projector::{Buckets, ModelKind, model_key};
use portcullis_proto::TrustLevel;
use portcullis_store::ReadModelStore;

use super::child::ManagedChild;

/// Sessions written per transaction while seeding.
const SEED_BATCH: usize = 10_000;

/// A running gateway and what a client needs to call it.
#[derive(Debug)]
pub struct Gateway {
    /// The process.
    pub process: ManagedChild,
    /// Its MCP endpoint.
    pub url: String,
    /// An access token of a session at trust level High.
    pub token: String,
    _dir: tempfile::TempDir,
}

/// `portcullis` next to the harness (scripts/bench builds both), or `explicit`.
pub fn binary(explicit: Option<&std::path::Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path.to_owned());
    }
    let exe = std::env::current_exe().context("locating the harness")?;
    let path = exe
        .parent()
        .map(|dir| dir.join("portcullis"))
        .context("the harness has no directory")?;
    anyhow::ensure!(
        path.exists(),
        "{} is missing: build it (`cargo build --release -p portcullis`; scripts/bench does)",
        path.display()
    );
    Ok(path)
}

/// `dev`'s `--audit-durability`: what an audit record survives before its call is forwarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AuditDurability {
    /// Fsynced (the default).
    PowerLoss,
    /// Written to SQLite's write-ahead log.
    ProcessCrash,
}

impl AuditDurability {
    /// The flag's value.
    pub fn flag(self) -> &'static str {
        match self {
            AuditDurability::PowerLoss => "power-loss",
            AuditDurability::ProcessCrash => "process-crash",
        }
    }

    /// The target's name in the report.
    pub fn target_name(self) -> &'static str {
        match self {
            AuditDurability::PowerLoss => "portcullis dev",
            AuditDurability::ProcessCrash => "portcullis dev (process-crash)",
        }
    }
}

/// Seeds a data directory for `upstream_url` with `extra_sessions` more sessions, starts
/// `portcullis dev --audit-durability <audit_durability>` on it and waits until it is ready.
pub async fn start(
    binary: &std::path::Path,
    upstream_url: &str,
    extra_sessions: usize,
    audit_durability: AuditDurability,
) -> anyhow::Result<Gateway> {
    let dir = tempfile::Builder::new()
        .prefix("portcullis-bench-gateway-")
        .tempdir()
        .context("creating the gateway's data dir")?;
    let data = dir.path().join("data");
    let listen = free_addr()?;
    let seeded = portcullis_e2e::gateway::seed_dev_data_dir(
        &data,
        listen,
        upstream_url,
        "weather",
        TrustLevel::High,
    )
    .await;
    seed_sessions(&data, &seeded.host_id, &seeded.server_id, extra_sessions).await?;

    let mut command = Command::new(binary);
    command
        .arg("dev")
        .arg("--data-dir")
        .arg(&data)
        .arg("--listen")
        .arg(listen.to_string())
        .arg("--audit-durability")
        .arg(audit_durability.flag())
        .env("PORTCULLIS_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let mut process = ManagedChild::spawn("portcullis dev", command, libc::SIGTERM)?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = process.exited() {
            anyhow::bail!("portcullis dev exited during start-up: {status}");
        }
        if ready(listen).await {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "portcullis dev was not ready within 120 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(Gateway {
        process,
        url: format!("http://{listen}/mcp"),
        token: seeded.token,
        _dir: dir,
    })
}

fn free_addr() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    listener.local_addr().context("reading the free port")
}

/// Whether `/readyz` at `listen` answers 200.
pub async fn ready(listen: SocketAddr) -> bool {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let Ok(mut stream) = tokio::net::TcpStream::connect(listen).await else {
        return false;
    };
    let request = format!("GET /readyz HTTP/1.1\r\nHost: {listen}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    answer.starts_with(b"HTTP/1.1 200")
}

/// Writes `count` live consent sessions on `server_id` into the `sessions` read model, as the
/// projector would have from `SessionStarted` events (the log is not replayed for them: the
/// point is the replica's memory with that many cached sessions, not the projector).
async fn seed_sessions(
    data: &std::path::Path,
    host_id: &str,
    server_id: &str,
    count: usize,
) -> anyhow::Result<()> {
    if count == 0 {
        return Ok(());
    }
    let store = portcullis_store_sqlite::SqliteStore::open(&data.join("portcullis.db"))
        .context("reopening the seeded store")?;
    let buckets = Buckets::new(None)?;
    let bucket = buckets.for_kind(ModelKind::Session).clone();
    let mut entries = session_entries(host_id, server_id, count)?;
    while !entries.is_empty() {
        let rest = entries.split_off(entries.len().min(SEED_BATCH));
        ReadModelStore::put_many(&store, &bucket, std::mem::replace(&mut entries, rest)).await?;
    }
    Ok(())
}

/// `count` live sessions (Medium, on `server_id`, 5,000 humans) as `sessions` read-model
/// entries of `host_id`.
pub fn session_entries(
    host_id: &str,
    server_id: &str,
    count: usize,
) -> anyhow::Result<Vec<(portcullis_store::Key, Bytes)>> {
    let now_ms = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis(),
    )?;
    let mut entries = Vec::with_capacity(count);
    // Ids shaped as the product mints them: ULIDs for sessions, humans and agents, and a
    // lower-case ULID for each agent's own OAuth client (dynamic client registration). 5,000
    // humans with 20 sessions each; an agent and a client per session.
    let stamp = u64::try_from(now_ms)?;
    let id = |kind: u128, index: usize| ulid::Ulid::from_parts(stamp, (kind << 64) | index as u128);
    for index in 0..count {
        let session_id = format!("01BENCH{index:019}");
        let session = Versioned {
            applied_through: 1_000_000 + index as u64,
            state: State::Live(Session {
                human_id: id(1, index % 5_000).to_string(),
                agent_id: id(2, index).to_string(),
                client_id: id(3, index).to_string().to_ascii_lowercase(),
                server_id: server_id.to_owned(),
                trust_level: TrustLevel::Medium,
                started_at_ms: now_ms,
                last_used_ms: now_ms,
                idle_timeout_seconds: portcullis_proto::DEFAULT_SESSION_IDLE_SECONDS,
                absolute_timeout_seconds: portcullis_proto::DEFAULT_SESSION_ABSOLUTE_SECONDS,
                started_sequence: 1_000_000 + index as u64,
                revoked: None,
            }),
        };
        let key = model_key(ModelKind::Session, &[host_id, &session_id])?;
        entries.push((key, Bytes::from(serde_json::to_vec(&session)?)));
    }
    Ok(entries)
}
