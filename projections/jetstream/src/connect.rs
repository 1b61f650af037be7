//! Connecting a `JetStreamStore`: the server checks and the event stream set-up.
//!
//! Owns: `JetStreamStore::connect`, `ConnectError`, the event stream's wanted settings and the
//! comparison of what the server echoed back with them.
//!
//! Must not: use a stream whose settings differ from ours (a server that silently drops a
//! setting, or a stream made by someone else, is refused with the difference named), or
//! accept a server older than `MINIMUM_SERVER_VERSION`.

use std::time::Duration;

use async_nats::ConnectOptions;
use async_nats::jetstream::context::{CreateStreamError, CreateStreamErrorKind};
use async_nats::jetstream::{
    self,
    stream::{Config as StreamConfig, DiscardPolicy, RetentionPolicy, StorageType},
};
use portcullis_store::BoxError;

use crate::JetStreamStore;
use crate::audit::AuditSettings;
use crate::config::{InvalidConfig, JetStreamConfig, Names};
use crate::publish::retry_delay;
use crate::server_version::{MINIMUM_SERVER_VERSION, ServerVersion, VersionParseError};
use crate::stream_state::{StreamState, has_leader, wait_until_ready};

/// Why `JetStreamStore::connect` failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// A setting is invalid; nothing was contacted.
    #[error(transparent)]
    InvalidConfig(#[from] InvalidConfig),
    /// No server in `urls` could be reached.
    #[error("could not connect to NATS at {urls}")]
    Connect {
        /// The URLs tried, comma-separated.
        urls: String,
        /// What the client said.
        #[source]
        source: async_nats::ConnectError,
    },
    /// The server's INFO carries a version we cannot read.
    #[error("NATS server {server} reports version {version:?}, which cannot be parsed")]
    UnparsableServerVersion {
        /// The server's name.
        server: String,
        /// The version text as sent.
        version: String,
        /// Why it did not parse.
        #[source]
        source: VersionParseError,
    },
    /// The server is too old for this store.
    #[error(
        "NATS server {server} runs version {version}, but Portcullis needs {minimum} or newer: \
         older servers silently ignore stream settings and optimistic-concurrency headers this \
         store relies on (for example Debian's 2.9.10); run a current nats-server"
    )]
    ServerTooOld {
        /// The server's name.
        server: String,
        /// Its version.
        version: ServerVersion,
        /// `MINIMUM_SERVER_VERSION`.
        minimum: ServerVersion,
    },
    /// The server runs without JetStream.
    #[error(
        "NATS server {server} does not have JetStream enabled (start it with -js or a \
         jetstream block in its config)"
    )]
    JetStreamDisabled {
        /// The server's name.
        server: String,
    },
    /// Creating or reading the event stream failed.
    #[error("could not create or read event stream {stream}")]
    Stream {
        /// The stream's name.
        stream: String,
        /// What the server said.
        #[source]
        source: BoxError,
    },
    /// The event stream exists with other settings than this store needs.
    #[error(
        "event stream {stream} exists with settings this store cannot use ({differences}); \
         it is not used as it is: fix or recreate it, or pick another namespace"
    )]
    StreamMismatch {
        /// The stream's name.
        stream: String,
        /// Each differing setting, as `name: wanted X, found Y`, joined by `; `.
        differences: String,
    },
}

impl JetStreamStore {
    /// Connects to NATS, checks the server (version at least `MINIMUM_SERVER_VERSION`,
    /// JetStream on) and creates the event stream, or checks the existing one's settings.
    #[tracing::instrument(name = "store.jetstream.connect", skip_all, fields(namespace = %config.namespace))]
    pub async fn connect(config: JetStreamConfig) -> Result<Self, ConnectError> {
        config.validate()?;
        let mut options = ConnectOptions::new()
            .name("portcullis-store")
            .connection_timeout(config.connect_timeout)
            .request_timeout(Some(config.request_timeout));
        if config.retain_server_order {
            options = options.retain_servers_order();
        }
        let client = async_nats::connect_with_options(config.urls.as_slice(), options)
            .await
            .map_err(|source| ConnectError::Connect {
                urls: config.urls.join(","),
                source,
            })?;

        let info = client.server_info();
        let server = if info.server_name.is_empty() {
            format!("{}:{}", info.host, info.port)
        } else {
            info.server_name.clone()
        };
        let version: ServerVersion =
            info.version
                .parse()
                .map_err(|source| ConnectError::UnparsableServerVersion {
                    server: server.clone(),
                    version: info.version.clone(),
                    source,
                })?;
        if !version.is_supported() {
            return Err(ConnectError::ServerTooOld {
                server,
                version,
                minimum: MINIMUM_SERVER_VERSION,
            });
        }
        if !info.jetstream {
            return Err(ConnectError::JetStreamDisabled { server });
        }

        let js = jetstream::ContextBuilder::new()
            .timeout(config.request_timeout)
            .build(client);
        let names = Names::new(&config.namespace);
        let events = ensure_event_stream(&js, &names, &config).await?;
        tracing::debug!(%server, %version, stream = names.event_stream(), "Connected to JetStream.");
        Ok(Self {
            js,
            events,
            names,
            replicas: config.replicas,
            kv_history: config.kv_history,
            publish_attempts: config.publish_attempts,
            request_timeout: config.request_timeout,
            audit_append_timeout: config.audit_append_timeout,
            audit: std::sync::Arc::new(AuditSettings::new(&config)),
        })
    }
}

/// The settings the event stream must have.
fn wanted_event_stream(names: &Names, config: &JetStreamConfig) -> StreamConfig {
    StreamConfig {
        name: names.event_stream().to_owned(),
        subjects: names.event_stream_subjects(),
        storage: StorageType::File,
        num_replicas: config.replicas,
        retention: RetentionPolicy::Limits,
        // Append-only: no message is ever removed, and if limits are ever set the stream
        // refuses new events rather than dropping history.
        deny_delete: true,
        deny_purge: true,
        discard: DiscardPolicy::New,
        allow_direct: true,
        duplicate_window: config.duplicate_window,
        ..Default::default()
    }
}

async fn ensure_event_stream(
    js: &jetstream::Context,
    names: &Names,
    config: &JetStreamConfig,
) -> Result<jetstream::stream::Stream<()>, ConnectError> {
    let stream_error = |source: BoxError| ConnectError::Stream {
        stream: names.event_stream().to_owned(),
        source,
    };
    let wanted = wanted_event_stream(names, config);
    // Creating a replicated stream waits for its first leader election, which on a busy or
    // just-started cluster can outlast one request; a create is idempotent, so try again.
    let mut attempt = 0;
    let stream = loop {
        attempt += 1;
        match js.get_or_create_stream(wanted.clone()).await {
            Ok(stream) => break stream,
            Err(err) if attempt < config.publish_attempts && is_transient(&err) => {
                tracing::debug!(attempt, error = %err, "Event stream not ready; trying again.");
                tokio::time::sleep(retry_delay(attempt)).await;
            }
            Err(err) => return Err(stream_error(err.into())),
        }
    };
    // Created concurrently by another client, a replicated stream may have no leader yet and
    // would answer no request: wait for its first election.
    let mut info = stream.cached_info().clone();
    if !has_leader(&info) {
        info = match wait_until_ready(js, names.event_stream(), config.request_timeout)
            .await
            .map_err(|err| stream_error(err.into()))?
        {
            StreamState::Ready(info) => *info,
            StreamState::Leaderless => {
                return Err(stream_error(
                    format!("no leader elected within {:?}", config.request_timeout).into(),
                ));
            }
            StreamState::Missing => {
                return Err(stream_error("deleted while connecting".into()));
            }
        };
    }
    let differences = stream_differences(&wanted, &info.config);
    if !differences.is_empty() {
        return Err(ConnectError::StreamMismatch {
            stream: names.event_stream().to_owned(),
            differences: differences.join("; "),
        });
    }
    js.get_stream_no_info(names.event_stream())
        .await
        .map_err(|err| stream_error(err.into()))
}

/// Whether a stream request failed for a reason that may pass: no answer in time, no
/// JetStream responder yet, or the server's "unavailable" (503, e.g. no meta leader yet).
pub(crate) fn is_transient(error: &CreateStreamError) -> bool {
    match error.kind() {
        CreateStreamErrorKind::TimedOut | CreateStreamErrorKind::JetStreamUnavailable => true,
        CreateStreamErrorKind::JetStream(err) => err.code() == 503,
        _ => false,
    }
}

/// Every setting of `actual` that differs from `wanted`, as `name: wanted X, found Y`. Shared
/// by the event stream and the audit stream: each passes the config it asks the server for, so
/// `max_age` is compared as asked (none for the event log, the retention for audit), and any
/// count or size limit is a difference, since it would delete (or, with discard New, refuse)
/// records. The server reports "unlimited" counts as -1 or 0.
pub(crate) fn stream_differences(wanted: &StreamConfig, actual: &StreamConfig) -> Vec<String> {
    let mut differences = Vec::new();
    let mut check = |name: &str, wanted: String, found: String| {
        if wanted != found {
            differences.push(format!("{name}: wanted {wanted}, found {found}"));
        }
    };
    let age = |age: Duration| {
        if age.is_zero() {
            "unlimited".to_owned()
        } else {
            format!("{age:?}")
        }
    };
    check(
        "subjects",
        format!("{:?}", wanted.subjects),
        format!("{:?}", actual.subjects),
    );
    check(
        "storage",
        format!("{:?}", wanted.storage),
        format!("{:?}", actual.storage),
    );
    check(
        "replicas",
        wanted.num_replicas.to_string(),
        actual.num_replicas.to_string(),
    );
    check(
        "retention",
        format!("{:?}", wanted.retention),
        format!("{:?}", actual.retention),
    );
    check("max_age", age(wanted.max_age), age(actual.max_age));
    check(
        "discard",
        format!("{:?}", wanted.discard),
        format!("{:?}", actual.discard),
    );
    check(
        "deny_delete",
        wanted.deny_delete.to_string(),
        actual.deny_delete.to_string(),
    );
    check(
        "deny_purge",
        wanted.deny_purge.to_string(),
        actual.deny_purge.to_string(),
    );
    check(
        "allow_direct",
        wanted.allow_direct.to_string(),
        actual.allow_direct.to_string(),
    );
    check(
        "duplicate_window",
        format!("{:?}", wanted.duplicate_window),
        format!("{:?}", actual.duplicate_window),
    );
    for (name, value) in [
        ("max_messages", actual.max_messages),
        ("max_bytes", actual.max_bytes),
        ("max_messages_per_subject", actual.max_messages_per_subject),
    ] {
        if value > 0 {
            differences.push(format!("{name}: wanted unlimited, found {value}"));
        }
    }
    if actual.sealed {
        differences.push("sealed: wanted false, found true".to_owned());
    }
    differences
}

#[cfg(test)]
mod tests;
