//! Typed, validated settings built from the command line. Everything a process needs to start
//! is checked here, once, with an error that names the flag, its environment variable, the
//! bad value and what would be accepted.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{CommonArgs, LogFormat, NatsArgs};

/// A setting that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid --{flag} (env {env}) {value:?}: {reason}")]
pub struct ConfigError {
    /// The flag, without dashes.
    pub flag: &'static str,
    /// Its environment variable.
    pub env: &'static str,
    /// The value given, truncated.
    pub value: String,
    /// What is wrong and what is accepted.
    pub reason: String,
}

impl ConfigError {
    fn new(flag: &'static str, env: &'static str, value: &str, reason: impl Into<String>) -> Self {
        Self {
            flag,
            env,
            value: value.chars().take(200).collect(),
            reason: reason.into(),
        }
    }
}

/// Settings every process has.
#[derive(Clone, Debug)]
pub struct CommonSettings {
    /// Where HTTP (and gRPC) is served.
    pub listen: SocketAddr,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter.
    pub log_filter: String,
    /// Grace period for in-flight requests on shutdown.
    pub shutdown_grace: Duration,
    /// Where traces go over OTLP/gRPC, if anywhere.
    pub otlp_endpoint: Option<url::Url>,
}

impl CommonSettings {
    /// Validates the common flags.
    pub fn from_args(args: &CommonArgs) -> Result<Self, ConfigError> {
        tracing_subscriber::EnvFilter::try_new(&args.log)
            .map_err(|e| ConfigError::new("log", "PORTCULLIS_LOG", &args.log, e.to_string()))?;
        Ok(Self {
            listen: args.listen,
            log_format: args.log_format,
            log_filter: args.log.clone(),
            shutdown_grace: parse_duration(
                "shutdown-grace",
                "PORTCULLIS_SHUTDOWN_GRACE",
                &args.shutdown_grace,
                Duration::ZERO..=Duration::from_secs(600),
            )?,
            otlp_endpoint: args
                .otlp_endpoint
                .as_deref()
                .map(parse_otlp_endpoint)
                .transpose()?,
        })
    }
}

/// An OTLP/gRPC collector address: `http` or `https`, a host, nothing that would be sent
/// somewhere unexpected (credentials, query, fragment).
fn parse_otlp_endpoint(value: &str) -> Result<url::Url, ConfigError> {
    let invalid = |reason: String| {
        ConfigError::new("otlp-endpoint", "PORTCULLIS_OTLP_ENDPOINT", value, reason)
    };
    let url = url::Url::parse(value.trim())
        .map_err(|e| invalid(format!("{e}; write e.g. `http://otel-collector:4317`")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("must be an http:// or https:// URL".to_owned()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("must name a host".to_owned()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "must not carry credentials; they would end up in logs".to_owned(),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("must not have a query or fragment".to_owned()));
    }
    Ok(url)
}

/// Parses a duration such as `10s`, `500ms` or `2m`, within `range`.
pub fn parse_duration(
    flag: &'static str,
    env: &'static str,
    value: &str,
    range: std::ops::RangeInclusive<Duration>,
) -> Result<Duration, ConfigError> {
    let duration = humantime::parse_duration(value.trim()).map_err(|e| {
        ConfigError::new(
            flag,
            env,
            value,
            format!("{e}; write e.g. `10s`, `500ms` or `2m`"),
        )
    })?;
    if !range.contains(&duration) {
        return Err(ConfigError::new(
            flag,
            env,
            value,
            format!(
                "must be between {} and {}",
                humantime::format_duration(*range.start()),
                humantime::format_duration(*range.end())
            ),
        ));
    }
    Ok(duration)
}

/// The staleness bound of a data plane: at least 1 s (a bound below the watch's own
/// heartbeat would flap), at most 10 minutes (beyond that revocations are not revocations).
pub fn parse_max_staleness(value: &str) -> Result<Duration, ConfigError> {
    parse_duration(
        "max-staleness",
        "PORTCULLIS_MAX_STALENESS",
        value,
        Duration::from_secs(1)..=Duration::from_secs(600),
    )
}

/// How long a data-plane request waits for stale read models: 0 to 60 s.
pub fn parse_stale_wait(value: &str) -> Result<Duration, ConfigError> {
    parse_duration(
        "stale-wait",
        "PORTCULLIS_STALE_WAIT",
        value,
        Duration::ZERO..=Duration::from_secs(60),
    )
}

/// Validated MCP proxy limits.
#[derive(Clone, Copy, Debug)]
pub struct McpSettings {
    /// Longest wait for an upstream's response head.
    pub upstream_timeout: Duration,
    /// Longest silence inside an upstream answer.
    pub upstream_idle_timeout: Duration,
    /// Largest request body.
    pub max_request_bytes: usize,
}

impl McpSettings {
    /// Validates the MCP proxy flags.
    pub fn from_args(args: &crate::cli::McpArgs) -> Result<Self, ConfigError> {
        let upstream_timeout = parse_duration(
            "upstream-timeout",
            "PORTCULLIS_UPSTREAM_TIMEOUT",
            &args.upstream_timeout,
            Duration::from_secs(1)..=Duration::from_secs(3600),
        )?;
        let upstream_idle_timeout = parse_duration(
            "upstream-idle-timeout",
            "PORTCULLIS_UPSTREAM_IDLE_TIMEOUT",
            &args.upstream_idle_timeout,
            Duration::from_secs(1)..=Duration::from_secs(24 * 3600),
        )?;
        if !(1024..=256 * 1024 * 1024).contains(&args.max_request_bytes) {
            return Err(ConfigError::new(
                "max-request-bytes",
                "PORTCULLIS_MAX_REQUEST_BYTES",
                &args.max_request_bytes.to_string(),
                "must be between 1024 and 268435456",
            ));
        }
        Ok(Self {
            upstream_timeout,
            upstream_idle_timeout,
            max_request_bytes: args.max_request_bytes,
        })
    }

    /// The proxy configuration for `public_urls`.
    pub fn proxy_config(
        &self,
        public_urls: portcullis_tokens::PublicUrls,
        allow_private_upstreams: bool,
    ) -> portcullis_data_plane::Config {
        let mut config = portcullis_data_plane::Config::new(
            public_urls,
            portcullis_commands::bootstrap::DEFAULT_ORG_ID,
            portcullis_upstream::UrlPolicy {
                allow_private: allow_private_upstreams,
            },
        );
        config.upstream_timeout = self.upstream_timeout;
        config.sse_idle_timeout = self.upstream_idle_timeout;
        config.limits.max_body_bytes = self.max_request_bytes;
        config
    }
}

/// Validated `data-plane` settings.
#[derive(Clone, Debug)]
pub struct DataPlaneSettings {
    /// Shared settings.
    pub common: CommonSettings,
    /// NATS.
    pub nats: NatsSettings,
    /// Freshness bound.
    pub max_staleness: Duration,
    /// How long a request waits for stale read models to become current.
    pub stale_wait: Duration,
    /// Master keys and public URL (no admin token).
    pub admin: AdminSettings,
    /// Proxy limits.
    pub mcp: McpSettings,
    /// Whether private upstream addresses may be reached.
    pub allow_private_upstreams: bool,
}

impl DataPlaneSettings {
    /// Validates the `data-plane` flags: a master key and a public URL are required.
    pub fn from_args(args: &crate::cli::DataPlaneArgs) -> Result<Self, ConfigError> {
        let common = CommonSettings::from_args(&args.common)?;
        let nats = NatsSettings::from_args(&args.nats)?;
        let max_staleness = parse_max_staleness(&args.max_staleness)?;
        let stale_wait = parse_stale_wait(&args.stale_wait)?;
        let admin = AdminSettings::from_args(&crate::cli::AdminArgs {
            admin_token: None,
            master_key: args.master_key.clone(),
            master_key_file: args.master_key_file.clone(),
            public_url: args.public_url.clone(),
            smtp_url: None,
            mail_from: portcullis_consent::mail::DEFAULT_FROM.to_owned(),
            mail_outbox: None,
        })?;
        if admin.key_ring.is_none() {
            return Err(ConfigError::new(
                "master-key",
                "PORTCULLIS_MASTER_KEY",
                "<unset>",
                "is required: give the control plane's master keys (or --master-key-file)",
            ));
        }
        if admin.public_url.is_none() {
            return Err(ConfigError::new(
                "public-url",
                "PORTCULLIS_PUBLIC_URL",
                "<unset>",
                "is required: give the control plane's public URL, e.g. https://gw.example.com",
            ));
        }
        Ok(Self {
            common,
            nats,
            max_staleness,
            stale_wait,
            admin,
            mcp: McpSettings::from_args(&args.mcp)?,
            allow_private_upstreams: args.allow_private_upstreams,
        })
    }
}

/// How long `dev` keeps audit records: at least a day (shorter would erase an incident before
/// anyone looked), at most 10 years (`humantime`'s years of 365.25 days, so `10y` fits).
pub fn parse_audit_retention(value: &str) -> Result<Duration, ConfigError> {
    const DAY: u64 = 24 * 60 * 60;
    const YEAR: u64 = 31_557_600;
    parse_duration(
        "audit-retention",
        "PORTCULLIS_AUDIT_RETENTION",
        value,
        Duration::from_secs(DAY)..=Duration::from_secs(10 * YEAR),
    )
}

/// Validated NATS settings.
#[derive(Clone, Debug)]
pub struct NatsSettings {
    /// Server URLs.
    pub urls: Vec<String>,
    /// Deployment namespace.
    pub namespace: String,
    /// Stream and bucket replicas.
    pub replicas: usize,
}

impl NatsSettings {
    /// Validates the NATS flags.
    pub fn from_args(args: &NatsArgs) -> Result<Self, ConfigError> {
        const FLAG: &str = "nats";
        const ENV: &str = "PORTCULLIS_NATS";
        let mut urls = Vec::new();
        for raw in &args.nats {
            let url = raw.trim();
            if url.is_empty() {
                continue;
            }
            let rest = match url.split_once("://") {
                Some(("nats" | "tls" | "ws" | "wss", rest)) => rest,
                Some((scheme, _)) => {
                    return Err(ConfigError::new(
                        FLAG,
                        ENV,
                        url,
                        format!(
                            "unsupported scheme {scheme:?}; use nats://, tls://, ws:// or wss://"
                        ),
                    ));
                }
                None => url,
            };
            let host_port = rest.rsplit('@').next().unwrap_or(rest);
            let valid_port = host_port
                .rsplit_once(':')
                .is_none_or(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if host_port.is_empty() || !valid_port || host_port.contains('/') {
                return Err(ConfigError::new(
                    FLAG,
                    ENV,
                    url,
                    "expected [scheme://]host[:port], e.g. nats://127.0.0.1:4222",
                ));
            }
            urls.push(url.to_owned());
        }
        if urls.is_empty() {
            return Err(ConfigError::new(
                FLAG,
                ENV,
                "",
                "at least one NATS URL is required",
            ));
        }
        let namespace = args.namespace.trim();
        if namespace.is_empty()
            || namespace.len() > 32
            || !namespace
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            return Err(ConfigError::new(
                "namespace",
                "PORTCULLIS_NAMESPACE",
                namespace,
                "must be 1 to 32 of a-z, 0-9, '_' and '-'",
            ));
        }
        if !matches!(args.replicas, 1 | 3 | 5) {
            return Err(ConfigError::new(
                "replicas",
                "PORTCULLIS_REPLICAS",
                &args.replicas.to_string(),
                "must be 1, 3 or 5 (an odd quorum size)",
            ));
        }
        Ok(Self {
            urls,
            namespace: namespace.to_owned(),
            replicas: args.replicas,
        })
    }
}

/// Validated `dev` settings.
#[derive(Clone, Debug)]
pub struct DevSettings {
    /// Common settings.
    pub common: CommonSettings,
    /// Admin API settings.
    pub admin: AdminSettings,
    /// Whether upstreams on private and loopback addresses are allowed.
    pub allow_private_upstreams: bool,
    /// The data directory (absolute).
    pub data_dir: PathBuf,
    /// Data-plane staleness bound.
    pub max_staleness: Duration,
    /// How long a request waits for stale read models to become current.
    pub stale_wait: Duration,
    /// MCP proxy limits.
    pub mcp: McpSettings,
    /// How long audit records are kept.
    pub audit_retention: Duration,
    /// What an acknowledged audit record survives.
    pub audit_durability: portcullis_store_sqlite::AuditDurability,
}

impl DevSettings {
    /// Validates the `dev` flags and creates the data directory (mode 0700) if missing.
    pub fn from_args(args: &crate::cli::DevArgs) -> Result<Self, ConfigError> {
        let common = CommonSettings::from_args(&args.common)?;
        let max_staleness = parse_max_staleness(&args.max_staleness)?;
        let stale_wait = parse_stale_wait(&args.stale_wait)?;
        let audit_retention = parse_audit_retention(&args.audit_retention)?;
        let shown = args.data_dir.display().to_string();
        let data_dir_error =
            |reason: String| ConfigError::new("data-dir", "PORTCULLIS_DATA_DIR", &shown, reason);
        if args.data_dir.as_os_str().is_empty() {
            return Err(data_dir_error("must not be empty".to_owned()));
        }
        if !args.data_dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&args.data_dir)
                .map_err(|e| data_dir_error(format!("cannot create it: {e}")))?;
        }
        if !args.data_dir.is_dir() {
            return Err(data_dir_error("exists but is not a directory".to_owned()));
        }
        let data_dir = args
            .data_dir
            .canonicalize()
            .map_err(|e| data_dir_error(format!("cannot resolve it: {e}")))?;
        Ok(Self {
            common,
            admin: AdminSettings::from_args(&args.admin)?,
            allow_private_upstreams: !args.refuse_private_upstreams,
            data_dir,
            max_staleness,
            stale_wait,
            mcp: McpSettings::from_args(&args.mcp)?,
            audit_retention,
            audit_durability: match args.audit_durability {
                crate::cli::AuditDurabilityArg::PowerLoss => {
                    portcullis_store_sqlite::AuditDurability::PowerLoss
                }
                crate::cli::AuditDurabilityArg::ProcessCrash => {
                    portcullis_store_sqlite::AuditDurability::ProcessCrash
                }
            },
        })
    }
}

use std::os::unix::fs::DirBuilderExt as _;

#[cfg(test)]
mod tests;

/// Validated admin-API settings (bootstrap token, master keys, public URL).
#[derive(Clone)]
pub struct AdminSettings {
    /// The bootstrap admin token, if given.
    pub admin_token: Option<zeroize::Zeroizing<String>>,
    /// The master keys, if given (by value or file).
    pub key_ring: Option<portcullis_secrets::KeyRing>,
    /// Public base URL: scheme, base domain, port.
    pub public_url: Option<(String, String, Option<u16>)>,
    /// Outgoing mail of the consent flow.
    pub mail: portcullis_consent::MailSettings,
}

impl std::fmt::Debug for AdminSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminSettings")
            .field("admin_token", &self.admin_token.as_ref().map(|_| "<set>"))
            .field("key_ring", &self.key_ring)
            .field("public_url", &self.public_url)
            .field("smtp", &self.mail.smtp_url.as_ref().map(|_| "<set>"))
            .field("mail_outbox", &self.mail.outbox)
            .finish()
    }
}

impl AdminSettings {
    /// Validates the admin flags (reads the master-key file if one is named).
    pub fn from_args(args: &crate::cli::AdminArgs) -> Result<Self, ConfigError> {
        let admin_token = match &args.admin_token {
            Some(token) => {
                let token = token.trim();
                if token.len() < 24
                    || token.len() > 512
                    || !token.bytes().all(|b| b.is_ascii_graphic())
                {
                    return Err(ConfigError::new(
                        "admin-token",
                        "PORTCULLIS_ADMIN_TOKEN",
                        "<hidden>",
                        "must be 24 to 512 printable characters without spaces",
                    ));
                }
                Some(zeroize::Zeroizing::new(token.to_owned()))
            }
            None => None,
        };
        let key_text = match (&args.master_key, &args.master_key_file) {
            (Some(text), _) => Some(zeroize::Zeroizing::new(text.clone())),
            (None, Some(path)) => Some(zeroize::Zeroizing::new(
                std::fs::read_to_string(path).map_err(|e| {
                    ConfigError::new(
                        "master-key-file",
                        "PORTCULLIS_MASTER_KEY_FILE",
                        &path.display().to_string(),
                        format!("cannot read it: {e}"),
                    )
                })?,
            )),
            (None, None) => None,
        };
        let key_ring = match key_text {
            Some(text) => Some(portcullis_secrets::KeyRing::parse(&text).map_err(|e| {
                ConfigError::new(
                    "master-key",
                    "PORTCULLIS_MASTER_KEY",
                    "<hidden>",
                    e.to_string(),
                )
            })?),
            None => None,
        };
        let public_url = match &args.public_url {
            Some(url) => Some(parse_public_url(url)?),
            None => None,
        };
        let mail = portcullis_consent::MailSettings {
            smtp_url: args.smtp_url.clone(),
            outbox: args.mail_outbox.clone(),
            from: Some(args.mail_from.clone()),
        };
        // Validated now (without creating the outbox), so a typo stops the start.
        portcullis_consent::Mailer::new(&portcullis_consent::MailSettings {
            outbox: None,
            ..mail.clone()
        })
        .map_err(|e| match e {
            portcullis_consent::MailError::From(_) => ConfigError::new(
                "mail-from",
                "PORTCULLIS_MAIL_FROM",
                &args.mail_from,
                e.to_string(),
            ),
            other => ConfigError::new(
                "smtp-url",
                "PORTCULLIS_SMTP_URL",
                "<hidden>",
                other.to_string(),
            ),
        })?;
        Ok(Self {
            admin_token,
            key_ring,
            public_url,
            mail,
        })
    }
}

/// `https://gw.example.com[:port]` → (scheme, base domain, port).
fn parse_public_url(url: &str) -> Result<(String, String, Option<u16>), ConfigError> {
    let error = |reason: &str| {
        ConfigError::new(
            "public-url",
            "PORTCULLIS_PUBLIC_URL",
            url,
            reason.to_owned(),
        )
    };
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| error("expected http(s)://<domain>[:port]"))?;
    if scheme != "http" && scheme != "https" {
        return Err(error("scheme must be http or https"));
    }
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '?', '#', '@']) {
        return Err(error(
            "give only the scheme, domain and port (no path, query or user)",
        ));
    }
    let (domain, port) = match rest.rsplit_once(':') {
        Some((domain, port)) => (
            domain,
            Some(
                port.parse::<u16>()
                    .map_err(|_| error("the port is not a number"))?,
            ),
        ),
        None => (rest, None),
    };
    let valid_domain = !domain.is_empty()
        && domain.len() <= 200
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !valid_domain {
        return Err(error(
            "the domain must be a DNS name such as gw.example.com",
        ));
    }
    Ok((scheme.to_owned(), domain.to_ascii_lowercase(), port))
}
