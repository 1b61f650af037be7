//! Checkpoints off the writers' path: a thread of its own copies each file's WAL into the file.
//!
//! Owns: `Checkpointer` (the thread, its connection, and stopping both).
//!
//! Must not: hold the store (`Inner`) or the writer mutex, or wait for readers or writers
//! (`PASSIVE` only: it backfills what it can and leaves the rest to its next turn).
//!
//! Why: left to SQLite, a commit that grows the WAL past `wal_autocheckpoint` pages runs the
//! checkpoint itself, inside the writer's turn: it writes those pages into the database file
//! and fsyncs it while every append queued behind it waits. On the benchmark machine that was
//! most of `dev`'s latency tail at 1,000 calls/s (BENCHMARKS.md). In WAL mode a checkpoint on
//! another connection runs beside the writer, so this thread does it every `INTERVAL`, and the
//! writers keep SQLite's own only as a backstop (`BACKSTOP_PAGES`) should this thread fall
//! behind or fail. Durability does not depend on it: a commit is in the WAL before it is
//! acknowledged, and SQLite replays the WAL on open.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use crate::OpenError;

/// How often the thread checkpoints.
const INTERVAL: Duration = Duration::from_millis(1000);

/// WAL pages at which a writer's commit checkpoints by itself (SQLite's default is 1,000):
/// about 40 MiB of 4 KiB pages, reached only if this thread does not keep up.
pub(crate) const BACKSTOP_PAGES: i64 = 10_000;

/// The checkpoint thread; dropping it stops the thread and closes its connection.
pub(crate) struct Checkpointer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// What the store and the thread share.
#[derive(Default)]
struct Shared {
    stop: Mutex<bool>,
    wake: Condvar,
    /// Checkpoints that found new frames in the WAL and copied them (for tests and
    /// debugging).
    backfills: AtomicU64,
}

impl Checkpointer {
    /// Opens a connection to each of `paths` (set up already, in WAL mode) and starts the
    /// thread, which checkpoints them in turn.
    pub(crate) fn start(paths: &[&Path]) -> Result<Checkpointer, OpenError> {
        let mut conns = Vec::with_capacity(paths.len());
        for &path in paths {
            let sqlite = |context: &'static str| {
                move |source: rusqlite::Error| OpenError::Sqlite {
                    path: path.to_owned(),
                    context,
                    source,
                }
            };
            let conn =
                Connection::open(path).map_err(sqlite("opening the checkpoint connection"))?;
            // A checkpoint fsyncs the WAL before copying it, and the database file after: this
            // is what bounds the loss of `AuditDurability::ProcessCrash` records on a power
            // loss.
            conn.pragma_update(None, "synchronous", "FULL")
                .map_err(sqlite("setting synchronous on the checkpoint connection"))?;
            conns.push(conn);
        }
        let path = paths
            .first()
            .map(|path| path.to_path_buf())
            .unwrap_or_default();
        let shared = Arc::new(Shared::default());
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".to_owned())
            .spawn({
                let shared = shared.clone();
                let span = tracing::Span::current();
                move || span.in_scope(|| run(&conns, &shared))
            })
            .map_err(|source| OpenError::Thread { path, source })?;
        Ok(Checkpointer {
            shared,
            thread: Some(thread),
        })
    }

    /// Checkpoints that copied new frames so far.
    #[cfg(test)]
    pub(crate) fn backfills(&self) -> u64 {
        self.shared.backfills.load(Ordering::Relaxed)
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        *self
            .shared
            .stop
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            // A checkpoint in progress finishes first (milliseconds); a panicked thread has
            // nothing left to stop.
            let _ = thread.join();
        }
    }
}

/// The thread: a `PASSIVE` checkpoint of each file every `INTERVAL` until stopped.
fn run(conns: &[Connection], shared: &Shared) {
    let mut state = vec![(false, (0, 0)); conns.len()];
    loop {
        {
            let stop = shared.stop.lock().unwrap_or_else(PoisonError::into_inner);
            let (stop, _) = shared
                .wake
                .wait_timeout_while(stop, INTERVAL, |stop| !*stop)
                .unwrap_or_else(PoisonError::into_inner);
            if *stop {
                return;
            }
        }
        for (conn, (failing, last)) in conns.iter().zip(&mut state) {
            checkpoint(conn, shared, failing, last);
        }
    }
}

/// One `PASSIVE` checkpoint of `conn`'s file; `failing` and `last` are what the previous one
/// of the same file left.
fn checkpoint(conn: &Connection, shared: &Shared, failing: &mut bool, last: &mut (i64, i64)) {
    // (busy, frames in the WAL, of them copied into the database file): the same pair as
    // last time means there was nothing new to copy.
    let checkpointed = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        Ok((row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
    });
    match checkpointed {
        Ok(frames) => {
            if frames.1 > 0 && frames != *last {
                shared.backfills.fetch_add(1, Ordering::Relaxed);
            }
            *last = frames;
            if *failing {
                tracing::info!("SQLite checkpoints work again.");
                *failing = false;
            }
        }
        Err(error) => {
            if !*failing {
                tracing::warn!(
                    %error,
                    backstop_pages = BACKSTOP_PAGES,
                    "SQLite checkpoint failed; commits will checkpoint themselves once the \
                     WAL holds the backstop's pages."
                );
                *failing = true;
            }
        }
    }
}
