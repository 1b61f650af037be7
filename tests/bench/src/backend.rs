//! The backends under measurement, each started fresh: a SQLite file in a temp dir, or
//! nats-server processes (one node for R1, three for R3) on free loopback ports.

use std::sync::Arc;

use clap::ValueEnum;
use portcullis_store::{EventLog, ReadModelStore};
use portcullis_store_sqlite::SqliteStore;

/// Which backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// Embedded SQLite (WAL, synchronous=FULL).
    Sqlite,
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
}

enum Inner {
    Sqlite {
        _dir: tempfile::TempDir,
        store: Arc<SqliteStore>,
    },
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
            }),
        }
    }
}

/// Starts a fresh backend.
pub async fn open(kind: Kind) -> anyhow::Result<Backend> {
    match kind {
        Kind::Sqlite => {
            let dir = tempfile::tempdir()?;
            let store = Arc::new(SqliteStore::open(&dir.path().join("bench.db"))?);
            Ok(Backend {
                inner: Inner::Sqlite { _dir: dir, store },
            })
        }
        Kind::JetstreamR1 | Kind::JetstreamR3 => anyhow::bail!("JetStream backends not wired yet"),
    }
}
