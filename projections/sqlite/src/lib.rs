//! Embedded backend of the event log, the read-model store and the audit log: one SQLite file
//! holds all three, and a second one beside it the audit journal (see `audit`).
//!
//! Owns: `SqliteStore` (opening, the single-process lock, schema migrations), its `EventLog`,
//! `ReadModelStore` and `AuditLog` implementations, and the in-process notifications that
//! drive `subscribe` and `watch`.
//!
//! Must not: let two stores (in any process) open one file at once, run SQLite calls on async
//! worker threads (one exception: with `AuditDurability::ProcessCrash` the audit append that
//! finds the queue idle commits its batch to the journal, without an fsync, on its own
//! thread; see `audit`), skip a row it
//! cannot read back, or know any domain event or read model.
//!
//! Invariant: every write to the store's file runs on a writer connection while holding the
//! writer mutex (audit appends, which write only the journal's file, hold its own), and every
//! notification (the log head, a bucket change) is sent under that same mutex after the commit.
//! A reader that registers for notifications and takes its snapshot under the mutex therefore
//! misses nothing and sees nothing twice.
//!
//! Layout: `lock` (the `<file>.lock` advisory lock, for both files), `schema` (pragmas, the
//! journal's file and forward-only migrations), `connections` (the writers, the reader pool,
//! the hop to blocking threads), `checkpoint` (the WAL checkpoints of both files, on a thread
//! of their own), `log` (`EventLog`), `kv` (`ReadModelStore`), `audit` (`AuditLog`, group
//! commit, the journal).

mod audit;
mod checkpoint;
mod columns;
mod connections;
mod kv;
mod lock;
mod log;
mod schema;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use connections::{ReaderPool, Writer};
use schema::Synchronous;
use tokio::sync::watch;

pub use schema::SCHEMA_VERSION;

/// The embedded store: an `EventLog` and a `ReadModelStore` over one SQLite file.
///
/// Cheap to clone; every clone is the same open store. The files close and the lock is
/// released when the last clone is dropped (if a move of the audit journal is running then,
/// when it ends, milliseconds later); open subscriptions and watches then end.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

/// The shared state behind every clone of a store.
struct Inner {
    /// The database file, for error messages.
    path: PathBuf,
    /// The one connection that writes, with the watch senders it notifies (see the crate
    /// invariant). A `std` mutex: it is only ever taken on blocking threads.
    writer: std::sync::Mutex<Writer>,
    /// The connection that commits audit appends to the journal's file (see `audit`), with
    /// the store's file attached read-only. A `std` mutex, taken by one flusher at a time:
    /// on a blocking thread, or with `ProcessCrash` on the thread of the append that found
    /// the queue idle.
    journal: std::sync::Mutex<rusqlite::Connection>,
    /// Read-only connections for `load`, `get`, `keys`, subscriptions and audit queries.
    readers: ReaderPool,
    /// Audit appends waiting to be committed together (see `audit`).
    audit: Arc<audit::AuditQueue>,
    /// Whether an append that finds no flusher running commits its batch on its own thread
    /// (with `AuditDurability::ProcessCrash`: no fsync in the commit; see `audit`).
    commit_inline: bool,
    /// The sequence of the last committed event; subscriptions wait on it when caught up.
    head: watch::Sender<u64>,
    /// Checkpoints the WAL beside the writer; stopped (and its connection closed) on drop.
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "held for its Drop; tests read it")
    )]
    checkpointer: checkpoint::Checkpointer,
    /// Declared last so it is released only after every connection above has closed.
    _lock: lock::StoreLock,
}

/// How a store is opened; `Default` is the strictest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreOptions {
    /// What an acknowledged audit append survives.
    pub audit_durability: AuditDurability,
}

impl StoreOptions {
    /// These options with `audit_durability`.
    #[must_use]
    pub fn with_audit_durability(mut self, audit_durability: AuditDurability) -> StoreOptions {
        self.audit_durability = audit_durability;
        self
    }
}

/// What an acknowledged audit append survives. Events and read models are fsynced at every
/// commit whatever this says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AuditDurability {
    /// A crash of the machine or a power loss: the append's commit is fsynced before it is
    /// acknowledged (`synchronous=FULL`).
    #[default]
    PowerLoss,
    /// A crash or SIGKILL of the process, not of the machine: the commit is written to the
    /// audit journal's WAL file (the operating system holds it) before it is acknowledged,
    /// and fsynced at the next checkpoint, every second (`synchronous=NORMAL` on the journal's
    /// writer; the store's own file is fsynced at every commit). A power loss may take the
    /// records acknowledged since; both files stay consistent.
    ProcessCrash,
}

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Another store holds the lock: another process (or another open `SqliteStore` in this
    /// one) is using this file.
    #[error(
        "store {} is in use by another process{} (lock file {}); stop it or use another file",
        .path.display(),
        .holder.map(|pid| format!(" (pid {pid})")).unwrap_or_default(),
        .lock_path.display()
    )]
    Locked {
        /// The database file.
        path: PathBuf,
        /// The lock file.
        lock_path: PathBuf,
        /// The process id the holder wrote into the lock file, when readable.
        holder: Option<u32>,
    },
    /// The lock file could not be created or locked.
    #[error("cannot lock store {} through {}", .path.display(), .lock_path.display())]
    LockFile {
        /// The database file.
        path: PathBuf,
        /// The lock file.
        lock_path: PathBuf,
        /// What the file system said.
        #[source]
        source: std::io::Error,
    },
    /// SQLite failed while opening, configuring or migrating the file.
    #[error("cannot open SQLite store {}: {context}", .path.display())]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What was being done.
        context: &'static str,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// The file was written by a newer Portcullis; migrations only go forward.
    #[error(
        "store {} has schema version {found}, newer than version {supported} that this build \
         supports; upgrade Portcullis",
        .path.display()
    )]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// The file's `user_version`.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// SQLite refused write-ahead logging (for example on a file system without shared
    /// memory), which the store needs for concurrent readers and durable commits.
    #[error("store {} cannot use WAL journaling (SQLite kept mode {mode:?})", .path.display())]
    NoWal {
        /// The database file.
        path: PathBuf,
        /// The journal mode SQLite reported.
        mode: String,
    },
    /// The checkpoint thread could not be started.
    #[error("cannot start the checkpoint thread of store {}", .path.display())]
    Thread {
        /// The database file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The file holds data this build cannot read.
    #[error("store {} is corrupt: {reason}", .path.display())]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl SqliteStore {
    /// Opens the store in the SQLite file at `path`, creating the file and its schema if needed
    /// and migrating an older schema forward.
    ///
    /// How it is meant to be used: open it once at start-up (this call blocks; from async code
    /// wrap it in `tokio::task::spawn_blocking`), then hand clones of the one store to
    /// everything that needs the event log or the read models, as `Arc<dyn EventLog>` and
    /// `Arc<dyn ReadModelStore>`. Its methods are async and run SQLite on blocking threads
    /// (but for the audit commit of the append that finds the queue idle with
    /// `AuditDurability::ProcessCrash`, see `audit`).
    /// One process at a time: a second open of the same file, here or elsewhere, fails with
    /// `OpenError::Locked` until every clone of the first store is dropped.
    ///
    /// ```no_run
    /// use std::path::Path;
    /// use std::sync::Arc;
    ///
    /// use portcullis_store::{EventLog, ReadModelStore};
    /// use portcullis_store_sqlite::SqliteStore;
    ///
    /// # fn main() -> Result<(), portcullis_store_sqlite::OpenError> {
    /// let store = SqliteStore::open(Path::new("/var/lib/portcullis/store.sqlite"))?;
    /// let log: Arc<dyn EventLog> = Arc::new(store.clone());
    /// let read_models: Arc<dyn ReadModelStore> = Arc::new(store);
    /// # drop((log, read_models));
    /// # Ok(())
    /// # }
    /// ```
    pub fn open(path: &Path) -> Result<SqliteStore, OpenError> {
        SqliteStore::open_with(path, StoreOptions::default())
    }

    /// Opens the store like `open`, with `options` instead of the defaults.
    pub fn open_with(path: &Path, options: StoreOptions) -> Result<SqliteStore, OpenError> {
        let _span = tracing::info_span!("store.sqlite.open", path = %path.display()).entered();
        let lock = lock::StoreLock::acquire(path)?;
        let sqlite = |context: &'static str| {
            move |source: rusqlite::Error| OpenError::Sqlite {
                path: path.to_owned(),
                context,
                source,
            }
        };
        let mut conn = schema::open_writer(path)?;
        schema::migrate(path, &mut conn)?;
        // A file written before the journal had a file of its own may hold journal rows in
        // its `audit_journal` table; they go into the indexed table now, and that table stays
        // empty from here on.
        audit::move_journal_table(&mut conn).map_err(sqlite("moving the audit journal"))?;
        let head: i64 = conn
            .query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |row| {
                row.get(0)
            })
            .map_err(sqlite("reading the log head"))?;
        let head = u64::try_from(head).map_err(|_| OpenError::Corrupt {
            path: path.to_owned(),
            reason: format!("the last event sequence is negative ({head})"),
        })?;
        // Opened after the migration, so they never see an older schema.
        let journal_path = schema::journal_path(path);
        let synchronous = match options.audit_durability {
            AuditDurability::PowerLoss => Synchronous::Full,
            AuditDurability::ProcessCrash => Synchronous::Normal,
        };
        let journal = schema::open_journal_writer(&journal_path, path, synchronous)?;
        let mover = schema::open_mover(path, &journal_path)?;
        let checkpointer = checkpoint::Checkpointer::start(&[path, &journal_path])?;
        let readers = ReaderPool::new(path, &journal_path);
        // Open one reader now, so a file a reader cannot open fails here rather than later.
        drop(readers.get().map_err(sqlite("opening a reader"))?);
        let inner = Inner {
            path: path.to_owned(),
            writer: std::sync::Mutex::new(Writer::new(conn, mover)),
            journal: std::sync::Mutex::new(journal),
            readers,
            audit: Arc::default(),
            commit_inline: options.audit_durability == AuditDurability::ProcessCrash,
            head: watch::Sender::new(head),
            checkpointer,
            _lock: lock,
        };
        // Whatever the last run left in the journal goes into the indexed table now, so the
        // count of rows waiting there starts true at zero.
        inner
            .open_audit_journal()
            .map_err(sqlite("moving the audit journal"))?;
        tracing::info!(head, audit_durability = ?options.audit_durability, "Opened SQLite store.");
        Ok(SqliteStore {
            inner: Arc::new(inner),
        })
    }

    /// The database file this store was opened on.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .field("head", &*self.inner.head.borrow())
            .finish()
    }
}

#[cfg(test)]
mod tests;
