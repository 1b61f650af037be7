//! The contract suite against the embedded SQLite backend: one store file in a temp dir per test.
//!
//! Owns: `SqliteBackend`, the `Backend` harness for `SqliteStore`. Must not: hold a second
//! handle on the store (a restart has to be able to take the file's lock again).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test harness: a failed setup is the failure report

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use portcullis_contract_tests::{Backend, Stores};
use portcullis_store_sqlite::{AuditDurability, SqliteStore, StoreOptions};

/// One store in its own temp dir. Every client shares the one open store, as the processes of
/// a single-node deployment do.
struct SqliteBackend {
    /// `None` only during a restart. Declared before `_dir` so the store closes first.
    store: Option<Arc<SqliteStore>>,
    /// The store file.
    path: PathBuf,
    /// How the store is opened, at first and after every restart.
    options: StoreOptions,
    /// Removed when the test ends.
    _dir: tempfile::TempDir,
}

impl SqliteBackend {
    async fn new(options: StoreOptions) -> SqliteBackend {
        let dir = tempfile::tempdir().expect("create a temp dir");
        let path = dir.path().join("store.sqlite");
        let store = open(path.clone(), options).await;
        SqliteBackend {
            store: Some(store),
            path,
            options,
            _dir: dir,
        }
    }
}

/// Opens the store off the async worker threads (opening blocks on file IO).
async fn open(path: PathBuf, options: StoreOptions) -> Arc<SqliteStore> {
    let store = tokio::task::spawn_blocking(move || SqliteStore::open_with(&path, options))
        .await
        .expect("the open task ran")
        .expect("open the store");
    Arc::new(store)
}

#[async_trait]
impl Backend for SqliteBackend {
    async fn connect(&self) -> Stores {
        let store = self.store.clone().expect("the store is open");
        Stores {
            log: store.clone(),
            kv: store.clone(),
            audit: store,
        }
    }

    async fn restart(&mut self) {
        // The tests drop their clients first, so this is the last handle: dropping it closes the
        // connections and releases the lock, and the reopen below must be able to take it.
        let store = self.store.take().expect("the store is open");
        assert_eq!(
            Arc::strong_count(&store),
            1,
            "a client outlived the restart"
        );
        drop(store);
        self.store = Some(open(self.path.clone(), self.options).await);
    }
}

portcullis_contract_tests::contract_tests!(SqliteBackend::new(StoreOptions::default()));

/// The same contract on a store whose audit appends survive a crash of the process, not of the
/// machine (`portcullis dev --audit-durability process-crash`): the audit log is written by a
/// second connection, and everything else must behave exactly as above.
mod audit_durable_against_process_crash {
    use super::*;

    portcullis_contract_tests::contract_tests!(SqliteBackend::new(
        StoreOptions::default().with_audit_durability(AuditDurability::ProcessCrash)
    ));
}
