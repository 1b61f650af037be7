//! Connections and threads: the one writer of each file, a small pool of read-only
//! connections, and the hop from async code to a blocking thread where SQLite may run.
//!
//! Owns: `Writer` (the store's writer connections and the watch senders notified under its
//! mutex), the audit journal's writer lock, `ReaderPool`, and `run_blocking`.
//!
//! Must not: call SQLite on an async worker thread, or notify watchers outside the writer
//! mutex (see the crate invariant).

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use portcullis_store::{BoxError, Bucket};
use rusqlite::Connection;
use tokio::sync::broadcast;

use crate::kv::Change;
use crate::{Inner, SqliteStore, schema};

/// Read connections kept open between uses; more are opened on demand and closed after use.
const MAX_IDLE_READERS: usize = 4;

/// The writer connection and what must change together with its commits.
pub(crate) struct Writer {
    /// The only connection that writes events and read models.
    pub(crate) conn: Connection,
    /// Live-change senders of the buckets someone watches. An entry is created by the first
    /// watch of its bucket and removed when a send finds no watcher left.
    pub(crate) watchers: HashMap<Bucket, broadcast::Sender<Change>>,
    /// A second writing connection to the store's file, used under this same mutex (so the
    /// two never wait on each other's SQLite lock), with the audit journal's file attached
    /// read-only: it moves journal rows into `audit` (see `audit`). Fsynced like `conn`.
    pub(crate) mover: Connection,
}

impl Writer {
    pub(crate) fn new(conn: Connection, mover: Connection) -> Writer {
        Writer {
            conn,
            watchers: HashMap::new(),
            mover,
        }
    }
}

/// Read-only connections. In WAL mode each sees every commit that finished before its read
/// transaction began, and none of them blocks the writer.
pub(crate) struct ReaderPool {
    path: PathBuf,
    journal: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl ReaderPool {
    pub(crate) fn new(path: &Path, journal: &Path) -> ReaderPool {
        ReaderPool {
            path: path.to_owned(),
            journal: journal.to_owned(),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// An idle reader, or a new one. Blocking: call only on a blocking thread.
    pub(crate) fn get(&self) -> rusqlite::Result<PooledReader<'_>> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = match idle {
            Some(conn) => conn,
            None => schema::open_reader(&self.path, &self.journal)?,
        };
        Ok(PooledReader {
            pool: self,
            conn: Some(conn),
        })
    }
}

/// A reader on loan from the pool; goes back when dropped.
pub(crate) struct PooledReader<'a> {
    pool: &'a ReaderPool,
    /// Always `Some` until `drop`.
    conn: Option<Connection>,
}

impl Deref for PooledReader<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        // Invariant: `conn` is taken only in `drop`.
        self.conn
            .as_ref()
            .expect("a pooled reader holds its connection")
    }
}

impl DerefMut for PooledReader<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        // Invariant: `conn` is taken only in `drop`.
        self.conn
            .as_mut()
            .expect("a pooled reader holds its connection")
    }
}

impl Drop for PooledReader<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            let mut idle = self
                .pool
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if idle.len() < MAX_IDLE_READERS {
                idle.push(conn);
            }
        }
    }
}

impl Inner {
    /// The writer. A panic while it was held leaves nothing half-done (an open transaction
    /// rolls back as it unwinds), so a poisoned mutex is taken over rather than propagated.
    pub(crate) fn lock_writer(&self) -> MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The audit journal's writer; taken over when poisoned, as `lock_writer`.
    pub(crate) fn lock_journal(&self) -> MutexGuard<'_, Connection> {
        self.journal.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl SqliteStore {
    /// Runs `job` against the store on a blocking thread; see `run_blocking`.
    pub(crate) async fn blocking<T, E>(
        &self,
        job: impl FnOnce(&Inner) -> Result<T, E> + Send + 'static,
        lost: impl FnOnce(BoxError) -> E,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: Send + 'static,
    {
        run_blocking(self.inner.clone(), job, lost).await
    }
}

/// Runs `job` on tokio's blocking pool inside the caller's tracing span. `lost` builds the
/// error for a job that never reported back (it panicked, or the runtime is shutting down).
/// Dropping the returned future does not stop a started job: a write still commits.
pub(crate) async fn run_blocking<T, E>(
    inner: Arc<Inner>,
    job: impl FnOnce(&Inner) -> Result<T, E> + Send + 'static,
    lost: impl FnOnce(BoxError) -> E,
) -> Result<T, E>
where
    T: Send + 'static,
    E: Send + 'static,
{
    let span = tracing::Span::current();
    match tokio::task::spawn_blocking(move || span.in_scope(|| job(&inner))).await {
        Ok(result) => result,
        Err(join_error) => Err(lost(Box::new(join_error))),
    }
}
