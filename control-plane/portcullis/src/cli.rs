//! The command line: one `clap` struct per subcommand. Every flag has a `PORTCULLIS_*`
//! environment variable and a documented default; values are parsed into typed settings by
//! `config`, which is where validation errors are worded.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Portcullis: a self-hosted security gateway between MCP clients and upstream MCP servers.
///
/// `portcullis dev` runs everything in one process on an embedded store. In production the
/// control plane, the projector and any number of data planes run as separate processes
/// sharing a NATS JetStream cluster.
#[derive(Debug, Parser)]
#[command(
    name = "portcullis",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the control plane, projector and data plane in one process on an embedded SQLite
    /// store under --data-dir. For a single machine; nothing else to run.
    Dev(DevArgs),
    /// Run the control plane (admin API, OAuth authorization server, consent pages) against
    /// NATS JetStream.
    ControlPlane(ControlPlaneArgs),
    /// Run a data plane (the MCP proxy) that serves from read models kept current by a watch
    /// on NATS JetStream. Stateless: run as many as needed behind a load balancer.
    DataPlane(DataPlaneArgs),
    /// Run the projector, which folds the event log into the read models on NATS JetStream.
    Projector(ClusterArgs),
}

/// Flags every subcommand has.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Address to listen on for HTTP (and gRPC, where served).
    #[arg(long, env = "PORTCULLIS_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Log format: `text` for people, `json` for log pipelines.
    #[arg(long, env = "PORTCULLIS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter in `tracing` syntax, e.g. `info` or `info,portcullis_store_jetstream=debug`.
    #[arg(long, env = "PORTCULLIS_LOG", default_value = "info")]
    pub log: String,

    /// How long to wait for in-flight requests on shutdown before stopping anyway
    /// (e.g. `10s`, `500ms`).
    #[arg(long, env = "PORTCULLIS_SHUTDOWN_GRACE", default_value = "10s")]
    pub shutdown_grace: String,

    /// Export traces over OTLP/gRPC to this collector, e.g. `http://otel-collector:4317`.
    /// Unset: no traces leave the process. Spans at `info` and above are exported whatever
    /// `--log` says; W3C `traceparent` is read from MCP clients and sent to upstreams.
    #[arg(long, env = "PORTCULLIS_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
}

/// `portcullis dev`.
#[derive(Debug, Args)]
pub struct DevArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Directory holding the embedded store (`portcullis.db`, and its audit journal
    /// `portcullis.db.audit-journal`) and everything else `dev` writes. Created if missing
    /// (mode 0700). Two processes cannot share it.
    #[arg(long, env = "PORTCULLIS_DATA_DIR", default_value = "./portcullis-data")]
    pub data_dir: PathBuf,

    /// How long the data plane may serve from read models it cannot keep current before it
    /// refuses requests with 503 (e.g. `10s`).
    #[arg(long, env = "PORTCULLIS_MAX_STALENESS", default_value = "10s")]
    pub max_staleness: String,

    /// How long a request waits for read models that are not current (a NATS node or
    /// leader failing over) to become current again before it is refused with 503; `0s`
    /// refuses at once.
    #[arg(long, env = "PORTCULLIS_STALE_WAIT", default_value = "10s")]
    pub stale_wait: String,

    #[command(flatten)]
    pub admin: AdminArgs,

    #[command(flatten)]
    pub mcp: McpArgs,

    /// Refuse upstream MCP servers on private and loopback addresses, as a deployment does
    /// (by default `dev` allows them, so local servers can be imported).
    #[arg(long, env = "PORTCULLIS_REFUSE_PRIVATE_UPSTREAMS")]
    pub refuse_private_upstreams: bool,

    /// How long audit records are kept (e.g. `90d`, `1y`; 1 day to 10 years): older ones are
    /// removed at start and then hourly. On the cluster the audit stream's `max_age` does this.
    #[arg(long, env = "PORTCULLIS_AUDIT_RETENTION", default_value = "90d")]
    pub audit_retention: String,

    /// What an audit record survives once the call it records is forwarded: `power-loss`
    /// (fsynced first) or `process-crash` (written to the store's WAL first and fsynced within
    /// a second: a crash or SIGKILL of `dev` loses nothing, a crash of the machine may lose the
    /// last second's records). Events and read models are fsynced either way.
    #[arg(
        long,
        env = "PORTCULLIS_AUDIT_DURABILITY",
        value_enum,
        default_value_t = AuditDurabilityArg::PowerLoss
    )]
    pub audit_durability: AuditDurabilityArg,
}

/// `--audit-durability`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AuditDurabilityArg {
    /// Fsynced before the call is forwarded.
    PowerLoss,
    /// Written to the write-ahead log before the call is forwarded.
    ProcessCrash,
}

/// What the admin API needs: the bootstrap token and the master keys that seal secrets.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Bootstrap admin token (at least 24 characters) for the default organization. `dev`
    /// generates one when unset, prints it once and keeps it in `<data-dir>/admin-token`.
    #[arg(long, env = "PORTCULLIS_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Master keys sealing secrets at rest, `id:base64-of-32-bytes[,id:base64…]`; the first
    /// one seals, all open (rotate by putting a new key first). `dev` generates one into
    /// `<data-dir>/master-key` when neither this nor --master-key-file is given.
    #[arg(
        long,
        env = "PORTCULLIS_MASTER_KEY",
        hide_env_values = true,
        conflicts_with = "master_key_file"
    )]
    pub master_key: Option<String>,

    /// File holding the master keys in the --master-key format (e.g. a mounted Secret).
    #[arg(long, env = "PORTCULLIS_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,

    /// Public base URL of the gateway, e.g. `https://gw.example.com`: host `h` is then served
    /// at `https://h.gw.example.com` (wildcard DNS). `dev` defaults to its listen address.
    #[arg(long, env = "PORTCULLIS_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// SMTP server for the consent flow's mail (verification and sign-in codes):
    /// `smtp://[user:password@]host[:port]` (STARTTLS required), `smtps://…` (TLS), or
    /// `smtp://host:port?tls=none` for a local relay. Without it, `dev` writes each message
    /// to `<data-dir>/outbox/` and the control plane to --mail-outbox, if set.
    #[arg(long, env = "PORTCULLIS_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,

    /// Sender of the consent flow's mail, `Name <address>`.
    #[arg(
        long,
        env = "PORTCULLIS_MAIL_FROM",
        default_value = "Portcullis <no-reply@portcullis.localhost>"
    )]
    pub mail_from: String,

    /// Directory that receives each outgoing message as an `.eml` file instead of SMTP (for
    /// development and tests). `dev` defaults to `<data-dir>/outbox`.
    #[arg(long, env = "PORTCULLIS_MAIL_OUTBOX", conflicts_with = "smtp_url")]
    pub mail_outbox: Option<PathBuf>,
}

/// `portcullis control-plane`.
#[derive(Debug, Args)]
pub struct ControlPlaneArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    #[command(flatten)]
    pub nats: NatsArgs,

    #[command(flatten)]
    pub admin: AdminArgs,

    /// Allow upstream MCP servers on private and loopback addresses (refused by default: an
    /// admin could otherwise reach internal services through the gateway).
    #[arg(long, env = "PORTCULLIS_ALLOW_PRIVATE_UPSTREAMS")]
    pub allow_private_upstreams: bool,
}

/// Connection to NATS JetStream.
#[derive(Debug, Args)]
pub struct NatsArgs {
    /// NATS server URLs, comma-separated (e.g. `nats://n1:4222,nats://n2:4222`). Required.
    #[arg(long, env = "PORTCULLIS_NATS", value_delimiter = ',', required = true)]
    pub nats: Vec<String>,

    /// Namespace of this deployment on NATS: prefixes every subject, stream and bucket, so
    /// several deployments can share one NATS cluster. 1-32 of `a-z 0-9 _ -`.
    #[arg(long, env = "PORTCULLIS_NAMESPACE", default_value = "portcullis")]
    pub namespace: String,

    /// Replicas of the event stream and read-model buckets: 1 for one NATS node, 3 in
    /// production. Only used when creating them; existing ones must match.
    #[arg(long, env = "PORTCULLIS_REPLICAS", default_value_t = 1)]
    pub replicas: usize,
}

/// `portcullis projector`.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    #[command(flatten)]
    pub nats: NatsArgs,
}

/// `portcullis data-plane`.
#[derive(Debug, Args)]
pub struct DataPlaneArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    #[command(flatten)]
    pub nats: NatsArgs,

    /// How long the data plane may serve from read models it cannot keep current before it
    /// refuses requests with 503 (e.g. `10s`).
    #[arg(long, env = "PORTCULLIS_MAX_STALENESS", default_value = "10s")]
    pub max_staleness: String,

    /// How long a request waits for read models that are not current (a NATS node or
    /// leader failing over) to become current again before it is refused with 503; `0s`
    /// refuses at once.
    #[arg(long, env = "PORTCULLIS_STALE_WAIT", default_value = "10s")]
    pub stale_wait: String,

    /// Master keys, as given to the control plane (`id:base64[,…]`): they seal MCP session
    /// handles so any replica can open them. Required (or --master-key-file).
    #[arg(
        long,
        env = "PORTCULLIS_MASTER_KEY",
        hide_env_values = true,
        conflicts_with = "master_key_file"
    )]
    pub master_key: Option<String>,

    /// File holding the master keys in the --master-key format.
    #[arg(long, env = "PORTCULLIS_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,

    /// Public base URL of the gateway, as given to the control plane (e.g.
    /// `https://gw.example.com`): host `h` answers at `https://h.gw.example.com`, and tokens
    /// must be issued for it. Required.
    #[arg(long, env = "PORTCULLIS_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Allow upstream MCP servers on private and loopback addresses (as the control plane's
    /// flag of the same name; refused by default).
    #[arg(long, env = "PORTCULLIS_ALLOW_PRIVATE_UPSTREAMS")]
    pub allow_private_upstreams: bool,

    #[command(flatten)]
    pub mcp: McpArgs,
}

/// Limits of the MCP proxy.
#[derive(Debug, Args)]
pub struct McpArgs {
    /// Longest wait for an upstream MCP server's response head (e.g. `60s`), for servers
    /// whose admin set no timeout of their own (`timeout_seconds` on the server).
    #[arg(long, env = "PORTCULLIS_UPSTREAM_TIMEOUT", default_value = "60s")]
    pub upstream_timeout: String,

    /// Longest silence inside an upstream's answer or event stream before the call fails
    /// with an error (e.g. `5m`).
    #[arg(long, env = "PORTCULLIS_UPSTREAM_IDLE_TIMEOUT", default_value = "5m")]
    pub upstream_idle_timeout: String,

    /// Largest MCP request body accepted from a client, bytes.
    #[arg(long, env = "PORTCULLIS_MAX_REQUEST_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_request_bytes: usize,
}

/// How logs are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}
