//! The backends under measurement, each started fresh: a SQLite file in a temp dir, or
//! nats-server processes (one node for R1, three for R3) on free loopback ports.

use std::sync::Arc;

use clap::ValueEnum;
use portcullis_store::{AuditLog, EventLog, ReadModelStore};
use portcullis_store_sqlite::{AuditDurability, SqliteStore, StoreOptions};

/// Which backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// Embedded SQLite (WAL, synchronous=FULL).
    Sqlite,
    /// Embedded SQLite whose audit appends need survive only the process
    /// (`AuditDurability::ProcessCrash`, `dev --audit-durability process-crash`); the rest as
    /// `sqlite`.
    SqliteProcessCrash,
    /// One JetStream node, R1 file storage, `sync_interval: always`.
    JetstreamR1,
    /// A 3-node JetStream cluster on loopback, R3 file storage.
    JetstreamR3,
}

impl Kind {
    /// The name used in tables.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Sqlite => "SQLite",
            Kind::SqliteProcessCrash => "SQLite, audit process-crash",
            Kind::JetstreamR1 => "JetStream R1",
            Kind::JetstreamR3 => "JetStream R3 (3 nodes)",
        }
    }
}

/// Clients of one store.
#[derive(Clone)]
pub struct Stores {
    pub log: Arc<dyn EventLog>,
    pub kv: Arc<dyn ReadModelStore>,
    pub audit: Arc<dyn AuditLog>,
}

enum Inner {
    Sqlite {
        _dir: tempfile::TempDir,
        store: Arc<SqliteStore>,
    },
    JetStream {
        urls: Vec<String>,
        replicas: usize,
        namespace: String,
        /// Connections made so far; rotates the first URL so clients spread over nodes.
        connections: std::sync::atomic::AtomicUsize,
        _servers: Servers,
    },
}

/// Keeps the NATS processes alive while the backend is.
#[allow(dead_code)] // held only for its Drop
enum Servers {
    Single(test_fixtures::NatsServer),
    Cluster(test_fixtures::NatsCluster),
}

/// A running backend; dropping it stops its servers.
pub struct Backend {
    inner: Inner,
}

impl Backend {
    /// A client. On JetStream, a new connection each time.
    pub async fn connect(&self) -> anyhow::Result<Stores> {
        match &self.inner {
            Inner::Sqlite { store, .. } => Ok(Stores {
                log: store.clone(),
                kv: store.clone(),
                audit: store.clone(),
            }),
            Inner::JetStream {
                urls,
                replicas,
                namespace,
                connections,
                ..
            } => {
                let n = connections.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let mut rotated = urls.clone();
                rotated.rotate_left(n % urls.len().max(1));
                let mut config = portcullis_store_jetstream::JetStreamConfig::new(rotated);
                config.namespace = namespace.clone();
                config.replicas = *replicas;
                config.retain_server_order = true;
                let store =
                    Arc::new(portcullis_store_jetstream::JetStreamStore::connect(config).await?);
                Ok(Stores {
                    log: store.clone(),
                    kv: store.clone(),
                    audit: store,
                })
            }
        }
    }
}

/// Starts a fresh backend.
pub async fn open(kind: Kind) -> anyhow::Result<Backend> {
    match kind {
        Kind::Sqlite | Kind::SqliteProcessCrash => {
            let dir = tempfile::tempdir()?;
            let durability = if kind == Kind::Sqlite {
                AuditDurability::PowerLoss
            } else {
                AuditDurability::ProcessCrash
            };
            let store = Arc::new(SqliteStore::open_with(
                &dir.path().join("bench.db"),
                StoreOptions::default().with_audit_durability(durability),
            )?);
            Ok(Backend {
                inner: Inner::Sqlite { _dir: dir, store },
            })
        }
        Kind::JetstreamR1 => {
            let server = test_fixtures::NatsServer::start().await?;
            Ok(Backend {
                inner: Inner::JetStream {
                    urls: server.client_urls(),
                    replicas: 1,
                    namespace: test_fixtures::unique_namespace(),
                    connections: Default::default(),
                    _servers: Servers::Single(server),
                },
            })
        }
        Kind::JetstreamR3 => {
            let cluster = test_fixtures::NatsCluster::start(3).await?;
            Ok(Backend {
                inner: Inner::JetStream {
                    urls: cluster.client_urls(),
                    replicas: 3,
                    namespace: test_fixtures::unique_namespace(),
                    connections: Default::default(),
                    _servers: Servers::Cluster(cluster),
                },
            })
        }
    }
}
