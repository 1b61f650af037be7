//! The file format: connection pragmas and the forward-only schema migrations.
//!
//! Owns: how a writer and a reader connection are configured, the SQL of every schema version,
//! and `PRAGMA user_version` as the record of which versions a file has.
//!
//! Must not: edit or reorder a released migration (files in the field already ran it; add a new
//! one instead) or open a file whose schema is newer than this build knows.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::OpenError;

/// How long a connection waits for a lock held by another connection before failing. Only a
/// checkpoint or WAL recovery can hold one: writes are serialized by the writer mutex.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Every schema version, oldest first; migration `i` takes a file from version `i` to `i + 1`.
/// Tables are `STRICT`, so a value of the wrong type cannot be stored by mistake.
const MIGRATIONS: &[&str] = &[
    // Version 1: the event log and the read models.
    "CREATE TABLE events (
        -- AUTOINCREMENT: a sequence is never reused, even for a row that was removed.
        seq            INTEGER PRIMARY KEY AUTOINCREMENT,
        subject        TEXT    NOT NULL,
        event_type     TEXT    NOT NULL,
        -- Duplicate detection: kept forever, a superset of the contract's two minutes.
        command_id     TEXT    NOT NULL UNIQUE,
        recorded_at_ms INTEGER NOT NULL,
        payload        BLOB    NOT NULL
    ) STRICT;
    CREATE INDEX events_by_subject ON events (subject, seq);

    CREATE TABLE buckets (
        name     TEXT    PRIMARY KEY NOT NULL,
        -- The last revision handed out in this bucket; puts and deletes each take the next.
        revision INTEGER NOT NULL
    ) STRICT;

    CREATE TABLE kv (
        bucket   TEXT    NOT NULL REFERENCES buckets (name),
        key      TEXT    NOT NULL,
        value    BLOB    NOT NULL,
        revision INTEGER NOT NULL,
        PRIMARY KEY (bucket, key)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX kv_by_revision ON kv (bucket, revision);",
    // Version 2: the audit log. Every query names a host, so every index starts with it and
    // ends with the sequence, which is the order pages come out in (newest first); the
    // equality filters each have one, so a filtered page walks only matching rows.
    "CREATE TABLE audit (
        -- AUTOINCREMENT: a sequence is never reused, even after retention removed the row, so
        -- a cursor (a sequence) never points into different records later.
        seq            INTEGER PRIMARY KEY AUTOINCREMENT,
        host_id        TEXT    NOT NULL,
        record_id      TEXT    NOT NULL,
        time_ms        INTEGER NOT NULL,
        -- Empty when unknown at decision time.
        human_id       TEXT    NOT NULL,
        agent_id       TEXT    NOT NULL,
        server_id      TEXT    NOT NULL,
        tool           TEXT    NOT NULL,
        decision       TEXT    NOT NULL,
        -- By the store's clock; retention removes the oldest rows by it.
        recorded_at_ms INTEGER NOT NULL,
        record         BLOB    NOT NULL
    ) STRICT;
    -- Idempotent appends: a retried record id of a host is found, not stored twice.
    CREATE UNIQUE INDEX audit_by_record_id ON audit (host_id, record_id);
    CREATE INDEX audit_by_host     ON audit (host_id, seq);
    CREATE INDEX audit_by_human    ON audit (host_id, human_id, seq);
    CREATE INDEX audit_by_agent    ON audit (host_id, agent_id, seq);
    CREATE INDEX audit_by_server   ON audit (host_id, server_id, seq);
    CREATE INDEX audit_by_tool     ON audit (host_id, tool, seq);
    CREATE INDEX audit_by_decision ON audit (host_id, decision, seq);
    CREATE INDEX audit_by_time     ON audit (host_id, time_ms);",
    // Version 3: the audit journal. An append commits its record here: one table and one
    // index, two or three pages per commit instead of the ten that `audit`'s eight indexes
    // cost. The flusher moves the whole journal into `audit` once it holds 256 rows, after
    // answering the appends (see `audit.rs`); queries read both. The columns are `audit`'s.
    "CREATE TABLE audit_journal (
        -- Set by the store: the next after both tables' (and `sqlite_sequence`'s) highest,
        -- and kept when the row moves into `audit`.
        seq            INTEGER PRIMARY KEY,
        host_id        TEXT    NOT NULL,
        record_id      TEXT    NOT NULL,
        time_ms        INTEGER NOT NULL,
        human_id       TEXT    NOT NULL,
        agent_id       TEXT    NOT NULL,
        server_id      TEXT    NOT NULL,
        tool           TEXT    NOT NULL,
        decision       TEXT    NOT NULL,
        recorded_at_ms INTEGER NOT NULL,
        record         BLOB    NOT NULL
    ) STRICT;
    CREATE UNIQUE INDEX audit_journal_by_record_id ON audit_journal (host_id, record_id);",
];

/// The schema version this build writes, and the newest it can open.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

fn sqlite_error(path: &Path, context: &'static str) -> impl FnOnce(rusqlite::Error) -> OpenError {
    move |source| OpenError::Sqlite {
        path: path.to_owned(),
        context,
        source,
    }
}

/// Opens a writing connection to the store's file, creating it if needed: WAL journaling,
/// foreign keys, a checkpoint only as a backstop (`checkpoint::BACKSTOP_PAGES`), temporary
/// data in memory, and `synchronous=FULL` (every commit fsynced, so an acknowledged write
/// survives power loss).
pub(crate) fn open_writer(path: &Path) -> Result<Connection, OpenError> {
    let conn = Connection::open(path).map_err(sqlite_error(path, "opening the file"))?;
    configure_writer(path, &conn, Synchronous::Full)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(sqlite_error(path, "setting foreign_keys"))?;
    Ok(conn)
}

/// What every writing connection, to either file, is set to.
fn configure_writer(
    path: &Path,
    conn: &Connection,
    synchronous: Synchronous,
) -> Result<(), OpenError> {
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(sqlite_error(path, "setting busy_timeout"))?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(sqlite_error(path, "setting journal_mode"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(OpenError::NoWal {
            path: path.to_owned(),
            mode,
        });
    }
    conn.pragma_update(None, "synchronous", synchronous.pragma())
        .map_err(sqlite_error(path, "setting synchronous"))?;
    // Checkpoints run on a thread of their own (`checkpoint`); a commit runs one only if that
    // thread falls this far behind.
    conn.pragma_update(
        None,
        "wal_autocheckpoint",
        crate::checkpoint::BACKSTOP_PAGES,
    )
    .map_err(sqlite_error(path, "setting wal_autocheckpoint"))?;
    // A statement that writes many rows (moving the audit journal) keeps the page images it
    // may have to roll back in a statement journal; past 64 KiB SQLite spills that to a
    // temporary file, one write per page, which was a third of a move's time. In memory it
    // is bounded by the pages one statement touches.
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(sqlite_error(path, "setting temp_store"))?;
    Ok(())
}

/// The audit journal's file beside the store's: `<store file>.audit-journal` (SQLite adds its
/// `-wal` and `-shm` files beside it).
pub(crate) fn journal_path(path: &Path) -> PathBuf {
    let mut journal = path.as_os_str().to_owned();
    journal.push(".audit-journal");
    PathBuf::from(journal)
}

/// The journal file's schema: the `audit_journal` table (the columns of `audit`, one index for
/// duplicates) exactly as version 3 of the store's file created it there, before the journal
/// had a file of its own.
const JOURNAL_SCHEMA: &str = MIGRATIONS[2];

/// The journal file's schema version this build writes, and the newest it can open.
const JOURNAL_VERSION: i64 = 1;

/// Opens the connection that commits audit appends to the journal file at `journal`, creating
/// the file and its table if needed, with `synchronous` as the audit durability asks; the
/// store's file at `store` (already migrated) is attached read-only as `store`, for the
/// duplicate checks and the sequence. Read-only, so `BEGIN IMMEDIATE` takes the journal's
/// write lock and never the store's.
pub(crate) fn open_journal_writer(
    journal: &Path,
    store: &Path,
    synchronous: Synchronous,
) -> Result<Connection, OpenError> {
    let mut conn = Connection::open(journal).map_err(sqlite_error(journal, "opening the file"))?;
    configure_writer(journal, &conn, synchronous)?;
    let found: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(sqlite_error(journal, "reading user_version"))?;
    if found > JOURNAL_VERSION {
        return Err(OpenError::SchemaTooNew {
            path: journal.to_owned(),
            found,
            supported: JOURNAL_VERSION,
        });
    }
    if found < JOURNAL_VERSION {
        // The table and its version in one transaction: a crash between them cannot leave a
        // file that would be created twice.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .and_then(|tx| {
                tx.execute_batch(JOURNAL_SCHEMA)?;
                tx.pragma_update(None, "user_version", JOURNAL_VERSION)?;
                tx.commit()
            });
        tx.map_err(sqlite_error(journal, "creating the audit journal"))?;
    }
    attach_read_only(&conn, store, "store")
        .map_err(sqlite_error(journal, "attaching the store read-only"))?;
    Ok(conn)
}

/// Opens the connection that moves the audit journal into `audit`: a writer of the store's
/// file (fsynced: the journal forgets a row once its move is committed, see `audit`) with the
/// journal at `journal` attached read-only as `journal`, so `BEGIN IMMEDIATE` takes the
/// store's write lock and never the journal's.
pub(crate) fn open_mover(path: &Path, journal: &Path) -> Result<Connection, OpenError> {
    let conn = open_writer(path)?;
    attach_read_only(&conn, journal, "journal")
        .map_err(sqlite_error(path, "attaching the audit journal read-only"))?;
    Ok(conn)
}

/// Attaches the SQLite file at `path` to `conn` as `schema`, read-only (a `file:` URI with
/// `mode=ro`; the path is percent-encoded, so no character in it can add a URI parameter).
fn attach_read_only(conn: &Connection, path: &Path, schema: &str) -> rusqlite::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let mut uri = String::from("file:");
    for &byte in path.as_os_str().as_bytes() {
        if byte.is_ascii_alphanumeric() || b"/-._~".contains(&byte) {
            uri.push(char::from(byte));
        } else {
            uri.push_str(&format!("%{byte:02X}"));
        }
    }
    uri.push_str("?mode=ro");
    conn.execute(&format!("ATTACH DATABASE ?1 AS {schema}"), [uri])?;
    Ok(())
}

/// SQLite's `synchronous` setting of a writing connection (in WAL mode).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Synchronous {
    /// The WAL is fsynced at every commit.
    Full,
    /// The WAL is written at every commit and fsynced at checkpoints (and by any `Full`
    /// commit after it); a commit survives a crash of the process, not of the machine.
    Normal,
}

impl Synchronous {
    fn pragma(self) -> &'static str {
        match self {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        }
    }
}

/// Opens a read-only connection to the store's file, which the writer has already set up, with
/// the audit journal at `journal` attached (read-only) as `journal`.
pub(crate) fn open_reader(path: &Path, journal: &Path) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    attach_read_only(&conn, journal, "journal")?;
    Ok(conn)
}

/// Brings the file to `SCHEMA_VERSION`, one migration per transaction, or refuses a file from
/// a newer build.
pub(crate) fn migrate(path: &Path, conn: &mut Connection) -> Result<(), OpenError> {
    let found: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(sqlite_error(path, "reading user_version"))?;
    if found > SCHEMA_VERSION {
        return Err(OpenError::SchemaTooNew {
            path: path.to_owned(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    let first_missing = usize::try_from(found).map_err(|_| OpenError::Corrupt {
        path: path.to_owned(),
        reason: format!("negative schema version {found}"),
    })?;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(first_missing) {
        let version = index as i64 + 1;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sqlite_error(path, "starting a migration"))?;
        tx.execute_batch(sql)
            .map_err(sqlite_error(path, "running a migration"))?;
        tx.pragma_update(None, "user_version", version)
            .map_err(sqlite_error(path, "setting user_version"))?;
        tx.commit()
            .map_err(sqlite_error(path, "committing a migration"))?;
        tracing::info!(version, "Migrated SQLite store schema.");
    }
    Ok(())
}
