//! `AuditLog` on the `audit` table: group-committed appends, indexed newest-first queries, and
//! retention by age.
//!
//! Owns: `AuditQueue` (the appends waiting for the next commit), the flusher that commits them
//! in batches, the query SQL, and `SqliteStore::prune_audit_before`.
//!
//! Must not: commit an append outside the journal's mutex or a move outside the writer's,
//! answer an append before its transaction committed (by default `synchronous=FULL`:
//! committed means fsynced; with `AuditDurability::ProcessCrash`, written to the journal's
//! WAL), delete a journal row before a committed move put it into `audit`, or return a row of
//! a host other than the one asked for.
//!
//! Group commit: `synchronous=FULL` costs one fsync per commit, a few hundred per second on
//! ordinary disks, so one transaction per record could not keep up with a busy data plane.
//! Each append queues its entry and waits; the first append that finds no flusher running
//! starts one on a blocking thread, which takes everything queued (up to `MAX_BATCH`), writes
//! it in one transaction, answers every waiter, and repeats until the queue is empty. Appends
//! that arrive during a commit ride the next one, so the commit rate stays at the disk's fsync
//! rate while throughput grows with concurrency, and a lone append still commits at once.
//! With `AuditDurability::ProcessCrash` the append that finds the queue idle commits on its own
//! thread instead (`commit_inline`): a commit without an fsync is a write into the page cache,
//! tens of microseconds, less than the two wake-ups of handing it to a blocking thread and the
//! answer back. It first gives way once to whatever else is runnable on its worker
//! (`yield_now`), so the appends that are ready at that moment ride its commit instead of
//! making one each (under load, most of the batching); alone, it goes on at once. Should its
//! caller give up meanwhile, a flusher thread takes the queue over (`HandOff`). What
//! queues during the commit goes to the blocking flusher; so does any move. An fsynced commit
//! never runs on an async thread.
//!
//! Journal: a commit writes its records into `audit_journal`, a table with one index (the
//! record id, for duplicates) in a SQLite file of its own beside the store's
//! (`<file>.audit-journal`), not into `audit` with its eight: two or three pages per commit
//! instead of about ten, so each fsync flushes less. Once the journal holds `MOVE_ROWS` rows
//! that are not in `audit` yet, the flusher, after answering the batch that got there, starts a
//! move on another thread: one transaction on the store's file copies them into `audit`,
//! keeping every sequence, so the indexes are built a few hundred rows at a time. The two files
//! have two write locks: appends commit to the journal while a move writes `audit`, and no
//! append waits for one (a move of 256 rows holds its lock for milliseconds; when appends and
//! moves shared one, every append that arrived meanwhile waited, which was the whole p99 of an
//! append at 1,000 a second). Only when appends outrun the moves, and `MAX_UNMOVED` rows wait
//! in the journal, does the flusher move them itself before committing more, so the journal
//! every query scans stays small. Opening the store and pruning move the journal too.
//! After a move, the next append's transaction deletes the moved rows from the journal. Until
//! then a row is in both tables; every query reads the journal's rows only above the highest
//! sequence `audit` ever held (its `sqlite_sequence`), so it is counted once. A move commits
//! fsynced, so a row is forgotten by the journal only once `audit` holds it durably; a power
//! loss between the two leaves it in both, which reads the same.
//! Sequences are assigned by the store: one above the highest in either table and in
//! `sqlite_sequence` (which remembers pruned ones), so they are never reused.
//!
//! Queries: one SQL statement per page, `WHERE host_id = ? AND seq < cursor AND <filters>
//! ORDER BY seq DESC LIMIT limit + 1` (the extra row says whether a next page exists), over
//! the journal (a scan of at most a few hundred rows) and `audit` merged in one statement. The
//! two files have a snapshot each; the query takes the journal's first, in a read transaction,
//! then the store's, so a move committed in between shows its rows in both (and the sequence
//! bound above counts them once) rather than in neither. Every
//! index starts with the host, so no plan can read another tenant's rows, and each equality
//! filter has an index ending in `seq`, so a filtered page walks matching rows only. Time
//! bounds are exact on `time_ms`, and pick the plan themselves: a capped count on the time
//! index first says how many of the host's records lie in the range; up to
//! `TIME_INDEX_ROWS` the page is read through the time index and sorted (cost: the range),
//! beyond that through the sequence order with the time as a filter (cost: the rows walked
//! until the page is full, few when the range is that dense). Left to itself SQLite picks the
//! time index for any range, and sorts all of a wide one.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use async_trait::async_trait;
use portcullis_store::{
    AuditCursor, AuditDecision, AuditEntry, AuditError, AuditFilter, AuditLog, AuditPage,
    AuditReceipt, BoxError, RecordedAudit, validate_audit_entry, validate_audit_query,
};
use rusqlite::types::Value;
use rusqlite::{OptionalExtension, Row, TransactionBehavior, params};
use tokio::sync::oneshot;

use crate::log::now_ms;
use crate::{Inner, SqliteStore, columns};

/// Most records one transaction commits; a longer queue is committed in several.
const MAX_BATCH: usize = 1024;

/// Most records of a host in a queried time range for which the page is read through the time
/// index (and sorted); a wider range is read in sequence order instead.
const TIME_INDEX_ROWS: i64 = 4096;

/// Rows in the journal and not yet in the indexed table at which the flusher, once it has
/// answered a batch, starts a move.
const MOVE_ROWS: usize = if cfg!(test) { 5 } else { 256 };

/// Rows in the journal and not yet in the indexed table at which the flusher moves them itself,
/// before committing more: appends then wait for the move, which keeps the journal (that every
/// query scans) bounded when appends come faster than a move on another thread keeps up with.
const MAX_UNMOVED: i64 = if cfg!(test) { 20 } else { 4096 };

/// The `nice` value of a move's thread (0 is the default, 19 the lowest priority).
const MOVE_NICE: i32 = 10;

/// Rows `prune_audit_before` removes per transaction, so appends are never held up for long.
const PRUNE_CHUNK: i64 = if cfg!(test) { 3 } else { 2000 };

/// Appends waiting for the flusher. Shared (`Arc`) by the store and a running flusher, which
/// holds the store itself only while committing.
#[derive(Default)]
pub(crate) struct AuditQueue {
    state: Mutex<QueueState>,
    /// Transactions committed by flushers so far (for tests and debugging: with concurrent
    /// appends it grows much more slowly than the number of records).
    commits: AtomicU64,
    /// Rows committed to the journal and not yet moved: added to after each append's commit,
    /// taken from after each move's, so briefly below zero when a move takes rows whose
    /// append has not counted them yet. Read by the flusher, which takes the store for a move
    /// only when one is due (see `flush`).
    unmoved: AtomicI64,
    /// The highest sequence `audit` has ever held (its `sqlite_sequence`) after the last
    /// move: every journal row at or below it is in `audit`, or was pruned from there.
    moved_through: AtomicI64,
    /// Journal rows at or below this have been deleted. Changed under the journal's mutex.
    collected_through: AtomicI64,
    /// Whether a move started by the flusher is running.
    moving: AtomicBool,
}

/// Clears `moving` when the move the flusher started ends, even by a panic.
struct MovingGuard(Arc<AuditQueue>);

impl Drop for MovingGuard {
    fn drop(&mut self) {
        self.0.moving.store(false, Ordering::Release);
    }
}

#[derive(Default)]
struct QueueState {
    /// Entries not yet taken by the flusher, in arrival order.
    pending: Vec<Pending>,
    /// Whether a flusher is running; it alone clears this, when it finds `pending` empty.
    flushing: bool,
}

/// One waiting append.
struct Pending {
    entry: AuditEntry,
    reply: oneshot::Sender<Result<AuditReceipt, AuditError>>,
}

impl AuditQueue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // Nothing half-done can be seen through a poisoned queue: pushes and takes are single
        // `Vec` operations.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Clears `flushing` if the flusher unwinds, and drops what is queued, so its waiters get an
/// error instead of waiting for a flusher that is gone.
struct FlusherGuard<'a> {
    queue: &'a AuditQueue,
    finished: bool,
}

impl Drop for FlusherGuard<'_> {
    fn drop(&mut self) {
        if !self.finished {
            let mut state = self.queue.lock();
            state.flushing = false;
            state.pending.clear();
        }
    }
}

/// The appender that found the queue idle, between finding it and committing inline: if its
/// future is dropped meanwhile, the blocking flusher takes over, so what queued behind it is
/// still committed.
struct HandOff<'a> {
    queue: &'a Arc<AuditQueue>,
    store: &'a Weak<Inner>,
    armed: bool,
}

impl HandOff<'_> {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for HandOff<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let queue = self.queue.clone();
        let store = self.store.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(move || flush(&queue, &store))),
            // Dropped outside any runtime (a future polled once, then dropped elsewhere): a
            // thread of its own, since `spawn_blocking` would panic here.
            Err(_) => {
                let spawned = std::thread::Builder::new()
                    .name("sqlite-audit-flush".to_owned())
                    .spawn(move || flush(&queue, &store));
                if let Err(error) = spawned {
                    tracing::error!(%error, "No thread for the audit flusher; queued appends fail.");
                    let mut state = self.queue.lock();
                    state.flushing = false;
                    state.pending.clear();
                }
            }
        }
    }
}

fn unavailable<E: Into<BoxError>>(context: impl Into<String>) -> impl FnOnce(E) -> AuditError {
    let context = context.into();
    move |source| AuditError::Unavailable {
        context,
        source: source.into(),
    }
}

#[async_trait]
impl AuditLog for SqliteStore {
    #[tracing::instrument(
        name = "store.sqlite.audit_append", level = "debug", skip_all,
        fields(host = %entry.host_id, record = %entry.record_id)
    )]
    async fn append(&self, entry: AuditEntry) -> Result<AuditReceipt, AuditError> {
        validate_audit_entry(&entry)?;
        let (reply, answer) = oneshot::channel();
        let start_flusher = {
            let mut state = self.inner.audit.lock();
            state.pending.push(Pending { entry, reply });
            !std::mem::replace(&mut state.flushing, true)
        };
        if start_flusher {
            let queue = &self.inner.audit;
            let store = Arc::downgrade(&self.inner);
            let more = if self.inner.commit_inline {
                // Let the appends already runnable on this worker join the batch: each would
                // otherwise be a commit of its own. With nothing else runnable this returns
                // at once. Dropped here (the caller gave up), the batch goes to the flusher.
                let leader = HandOff {
                    queue,
                    store: &store,
                    armed: true,
                };
                tokio::task::yield_now().await;
                leader.disarm();
                commit_inline(queue, &store)
            } else {
                true
            };
            if more {
                let queue = queue.clone();
                let span = tracing::Span::current();
                // Detached: the flusher answers every waiter through its channel, and keeps
                // committing even if the append that started it is dropped.
                drop(tokio::task::spawn_blocking(move || {
                    span.in_scope(|| flush(&queue, &store));
                }));
            }
        }
        answer.await.map_err(unavailable(
            "the audit writer stopped before committing this record",
        ))?
    }

    #[tracing::instrument(
        name = "store.sqlite.audit_query", level = "debug", skip_all,
        fields(host = %filter.host_id, limit)
    )]
    async fn query(
        &self,
        filter: AuditFilter,
        limit: usize,
        cursor: Option<AuditCursor>,
    ) -> Result<AuditPage, AuditError> {
        validate_audit_query(&filter, limit)?;
        self.blocking(
            move |inner| inner.query_audit(&filter, limit, cursor),
            unavailable("querying the audit log"),
        )
        .await
    }
}

impl SqliteStore {
    /// Removes the oldest audit records stored (by the store's clock) before `cutoff_ms`,
    /// oldest first, stopping at the first younger one; returns how many were removed. Runs
    /// in small transactions so appends go on meanwhile. Call it periodically with
    /// `now - max_age` to keep a retention period (JetStream does the same with `max_age`).
    pub async fn prune_audit_before(&self, cutoff_ms: i64) -> Result<u64, AuditError> {
        self.blocking(
            move |inner| inner.prune_audit(cutoff_ms),
            unavailable("pruning the audit log"),
        )
        .await
    }
}

/// The flusher: commits what is queued, batch after batch, until the queue is empty.
///
/// It holds the store only while committing, and lets go before answering: a caller that
/// drops its last handle right after its append returned closes the store (and frees its lock)
/// at once, not whenever the flusher thread happens to finish. The one exception is a move
/// (one in `MOVE_ROWS` records), which holds the store on its own thread: the store closes
/// when the move ends, milliseconds later.
fn flush(queue: &AuditQueue, store: &Weak<Inner>) {
    let mut guard = FlusherGuard {
        queue,
        finished: false,
    };
    loop {
        if queue.unmoved.load(Ordering::Relaxed) >= MAX_UNMOVED {
            // Behind: move here, after any move running (the writer's mutex), so the queue
            // waits for it.
            if let Some(inner) = store.upgrade()
                && let Err(error) = inner.move_audit_journal(MOVE_ROWS)
            {
                tracing::warn!(%error, "Audit journal not moved; its rows stay queryable there.");
            }
        }
        if !commit_next(queue, store, &mut guard) {
            return;
        }
    }
}

/// The first batch of an idle queue, committed on the thread of the append that found it
/// idle (with `AuditDurability::ProcessCrash`): a commit without an fsync is a write into the
/// page cache, tens of microseconds, less than handing the batch to a blocking thread and the
/// answer back, two wake-ups that were most of a lone append's latency. Returns whether more
/// is left for the blocking flusher: appends queued meanwhile, or a move that must run before
/// more commits (never run here: it fsyncs the store's file). `flushing` stays set for it.
fn commit_inline(queue: &AuditQueue, store: &Weak<Inner>) -> bool {
    let mut guard = FlusherGuard {
        queue,
        finished: false,
    };
    if !commit_next(queue, store, &mut guard) {
        return false;
    }
    guard.finished = true;
    let mut state = queue.lock();
    if state.pending.is_empty() && queue.unmoved.load(Ordering::Relaxed) < MAX_UNMOVED {
        state.flushing = false;
        return false;
    }
    true
}

/// Takes the next batch (up to `MAX_BATCH`), commits it and answers its waiters, then starts
/// a move on another thread if one is due. Returns false, with `flushing` cleared, when the
/// queue was empty.
fn commit_next(queue: &AuditQueue, store: &Weak<Inner>, guard: &mut FlusherGuard<'_>) -> bool {
    let batch: Vec<Pending> = {
        let mut state = queue.lock();
        if state.pending.is_empty() {
            state.flushing = false;
            guard.finished = true;
            return false;
        }
        let take = state.pending.len().min(MAX_BATCH);
        state.pending.drain(..take).collect()
    };
    let committed = match store.upgrade() {
        Some(inner) => inner.commit_audit_batch(&batch),
        None => Err(BatchError::Closed),
    };
    match committed {
        Ok(receipts) => {
            for (pending, receipt) in batch.into_iter().zip(receipts) {
                // A waiter that gave up is no error: its record is committed anyway.
                let _ = pending.reply.send(Ok(receipt));
            }
            // Off every waiter's path: the records above are durable and answered. Past
            // `MAX_UNMOVED` the flusher moves them itself instead, before its next commit.
            let unmoved = queue.unmoved.load(Ordering::Relaxed);
            if (MOVE_ROWS as i64..MAX_UNMOVED).contains(&unmoved) {
                start_move(queue, store);
            }
        }
        Err(failure) => {
            tracing::warn!(error = %failure, records = batch.len(), "Audit batch not committed.");
            let reason = failure.to_string();
            for pending in batch {
                let _ = pending.reply.send(Err(AuditError::Unavailable {
                    context: "committing audit records".to_owned(),
                    source: reason.clone().into(),
                }));
            }
        }
    }
    true
}

/// Starts a move of the journal into the indexed table on a thread of its own, unless
/// one is running: appends go on committing to the journal meanwhile.
fn start_move(queue: &AuditQueue, store: &Weak<Inner>) {
    if queue.moving.swap(true, Ordering::AcqRel) {
        return;
    }
    let Some(inner) = store.upgrade() else {
        queue.moving.store(false, Ordering::Release);
        return;
    };
    let span = tracing::Span::current();
    let moving = MovingGuard(inner.audit.clone());
    let run = move || {
        span.in_scope(|| {
            if let Err(error) = inner.move_audit_journal(MOVE_ROWS) {
                tracing::warn!(%error, "Audit journal not moved; its rows stay queryable there.");
            }
        });
        // The store first: once `moving` is clear, this thread no longer holds it open.
        drop(inner);
        drop(moving);
    };
    // A thread of its own, so its priority can be lowered without touching a pool thread
    // that runs appends later. If none can be started, the move is left for a later batch
    // (and `MAX_UNMOVED` bounds how far that can go).
    let spawned = std::thread::Builder::new()
        .name("sqlite-audit-move".to_owned())
        .spawn(move || {
            yield_to_appends();
            run();
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "No thread for an audit journal move; a later batch retries.");
    }
}

/// Lowers the calling thread's priority to `nice` `MOVE_NICE` (never raises it), so a move
/// takes a core from the appends and the proxy beside it only when it is free. On Linux
/// `setpriority` with a thread id changes that thread alone. Best effort: a refusal leaves the
/// priority as it was.
fn yield_to_appends() {
    let thread = rustix::thread::gettid();
    let lowered = rustix::process::getpriority_process(Some(thread)).and_then(|current| {
        if current < MOVE_NICE {
            rustix::process::setpriority_process(Some(thread), MOVE_NICE)
        } else {
            Ok(())
        }
    });
    if let Err(error) = lowered {
        tracing::debug!(%error, "Audit journal mover keeps its priority.");
    }
}

impl Inner {
    /// Writes `batch` into the journal in one transaction; a record id already stored for its
    /// host (in the journal or the indexed table) yields the stored sequence as a duplicate.
    /// All or nothing: on an error nothing was committed.
    fn commit_audit_batch(&self, batch: &[Pending]) -> Result<Vec<AuditReceipt>, BatchError> {
        let mut journal = self.lock_journal();
        let tx = journal.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let recorded_at_ms = now_ms();
        let mut receipts = Vec::with_capacity(batch.len());
        let mut added = 0;
        // Rows the last move put into `audit` leave the journal with this commit.
        let moved_through = self.audit.moved_through.load(Ordering::Acquire);
        let collect = moved_through > self.audit.collected_through.load(Ordering::Relaxed);
        if collect {
            tx.prepare_cached("DELETE FROM main.audit_journal WHERE seq <= ?1")?
                .execute([moved_through])?;
        }
        {
            // The next sequence: above every row in either table and above any `audit` ever
            // had (`sqlite_sequence` keeps that even after retention removed the rows). The
            // store's file is read in a snapshot taken now, under the journal's write lock: a
            // row being moved is in the journal, or already in `audit`, or both.
            let mut next: i64 = tx
                .prepare_cached(
                    "SELECT MAX(
                         COALESCE((SELECT MAX(seq) FROM main.audit_journal), 0),
                         COALESCE((SELECT seq FROM store.sqlite_sequence WHERE name = 'audit'), 0),
                         COALESCE((SELECT MAX(seq) FROM store.audit), 0)) + 1",
                )?
                .query_row([], |row| row.get(0))?;
            let mut indexed = tx.prepare_cached(
                "SELECT seq FROM store.audit WHERE host_id = ?1 AND record_id = ?2",
            )?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO main.audit_journal (seq, host_id, record_id, time_ms, human_id,
                                                 agent_id, server_id, tool, decision,
                                                 recorded_at_ms, record)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                 ON CONFLICT (host_id, record_id) DO NOTHING
                 RETURNING seq",
            )?;
            let mut journaled = tx.prepare_cached(
                "SELECT seq FROM main.audit_journal WHERE host_id = ?1 AND record_id = ?2",
            )?;
            let sequence_of = |row: &Row<'_>| Ok(columns::unsigned(row, 0, "sequence"));
            for Pending { entry, .. } in batch {
                let key = params![entry.host_id, entry.record_id];
                let (sequence, duplicate) =
                    if let Some(sequence) = indexed.query_row(key, sequence_of).optional()? {
                        (sequence, true)
                    } else if let Some(sequence) = insert
                        .query_row(
                            params![
                                next,
                                entry.host_id,
                                entry.record_id,
                                entry.time_ms,
                                entry.human_id,
                                entry.agent_id,
                                entry.server_id,
                                entry.tool,
                                entry.decision.as_str(),
                                recorded_at_ms,
                                &entry.record[..],
                            ],
                            sequence_of,
                        )
                        .optional()?
                    {
                        next += 1;
                        added += 1;
                        (sequence, false)
                    } else {
                        (journaled.query_row(key, sequence_of)?, true)
                    };
                receipts.push(AuditReceipt {
                    sequence: sequence.map_err(BatchError::Corrupt)?,
                    duplicate,
                });
            }
        }
        tx.commit()?;
        if collect {
            self.audit
                .collected_through
                .store(moved_through, Ordering::Relaxed);
        }
        self.audit.unmoved.fetch_add(added, Ordering::Relaxed);
        self.audit.commits.fetch_add(1, Ordering::Relaxed);
        Ok(receipts)
    }

    /// Moves the journal's rows that are not in the indexed table yet into it, in one
    /// transaction on the store's file, once there are at least `threshold` of them (any
    /// number for 0); returns how many moved. Sequences are kept, so a record's place in every
    /// query and every cursor already handed out stay the same. Takes the writer's mutex,
    /// never the journal's: appends go on meanwhile.
    pub(crate) fn move_audit_journal(&self, threshold: usize) -> rusqlite::Result<usize> {
        if threshold > 0 && self.audit.unmoved.load(Ordering::Relaxed) < threshold as i64 {
            return Ok(0);
        }
        let mut writer = self.lock_writer();
        let (moved, through) = move_journal(&mut writer.mover)?;
        drop(writer);
        self.audit
            .moved_through
            .fetch_max(through, Ordering::AcqRel);
        self.audit
            .unmoved
            .fetch_sub(i64::try_from(moved).unwrap_or(i64::MAX), Ordering::Relaxed);
        Ok(moved)
    }

    /// At open: moves what the last run left in the journal and deletes it there, so the
    /// count of unmoved rows starts true at zero.
    pub(crate) fn open_audit_journal(&self) -> rusqlite::Result<()> {
        self.move_audit_journal(0)?;
        let through = self.audit.moved_through.load(Ordering::Acquire);
        self.lock_journal()
            .prepare_cached("DELETE FROM main.audit_journal WHERE seq <= ?1")?
            .execute([through])?;
        self.audit
            .collected_through
            .store(through, Ordering::Relaxed);
        self.audit.unmoved.store(0, Ordering::Relaxed);
        Ok(())
    }

    fn query_audit(
        &self,
        filter: &AuditFilter,
        limit: usize,
        cursor: Option<AuditCursor>,
    ) -> Result<AuditPage, AuditError> {
        let mut reader = self
            .readers
            .get()
            .map_err(unavailable("opening a reader"))?;
        let reader = reader
            .transaction()
            .map_err(unavailable("starting an audit query"))?;
        // The journal's snapshot first, then the store's (see the module header).
        reader
            .query_row(
                "SELECT COUNT(*) FROM journal.audit_journal WHERE seq < 0",
                [],
                |_| Ok(()),
            )
            .map_err(unavailable("reading the audit journal"))?;
        let plan = if filter.since_ms.is_none() && filter.until_ms.is_none() {
            TimePlan::Unbounded
        } else {
            let in_range: i64 = reader
                .prepare_cached(
                    "SELECT COUNT(*) FROM (
                         SELECT 1 FROM main.audit INDEXED BY audit_by_time
                         WHERE host_id = ?1 AND time_ms >= ?2 AND time_ms <= ?3 LIMIT ?4)",
                )
                .and_then(|mut count| {
                    count.query_row(
                        params![
                            filter.host_id,
                            filter.since_ms.unwrap_or(i64::MIN),
                            filter.until_ms.unwrap_or(i64::MAX),
                            TIME_INDEX_ROWS
                        ],
                        |row| row.get(0),
                    )
                })
                .map_err(unavailable("counting audit records in a time range"))?;
            if in_range < TIME_INDEX_ROWS {
                TimePlan::TimeIndex
            } else {
                TimePlan::SequenceOrder
            }
        };
        let (sql, values) = query_sql(filter, limit, cursor, plan);
        let mut statement = reader
            .prepare_cached(&sql)
            .map_err(unavailable("preparing an audit query"))?;
        let mut rows = statement
            .query(rusqlite::params_from_iter(values))
            .map_err(unavailable("querying the audit log"))?;
        let mut records = Vec::new();
        while let Some(row) = rows.next().map_err(unavailable("querying the audit log"))? {
            let record = decode_audit(row)?;
            // The SQL selects exactly this; checking again keeps a schema or planner surprise
            // from ever showing a tenant someone else's record.
            if filter.matches(&record.entry) {
                records.push(record);
            }
        }
        let next = if records.len() > limit {
            records.truncate(limit);
            records.last().map(|r| AuditCursor::before(r.sequence))
        } else {
            None
        };
        Ok(AuditPage { records, next })
    }

    fn prune_audit(&self, cutoff_ms: i64) -> Result<u64, AuditError> {
        // Retention reads `audit` only; the journal goes there first, so a quiet store's last
        // few records are not kept past their time (the journal forgets them with the next
        // append's commit, and queries skip them there already).
        self.move_audit_journal(1)
            .map_err(unavailable("moving the audit journal before pruning"))?;
        let mut removed = 0;
        loop {
            let mut writer = self.lock_writer();
            let tx = writer
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(unavailable("pruning the audit log"))?;
            // The oldest rows, and of them the longest run stored before the cutoff.
            let mut boundary = None;
            let mut whole_chunk = true;
            {
                let mut oldest = tx
                    .prepare_cached("SELECT seq, recorded_at_ms FROM audit ORDER BY seq LIMIT ?1")
                    .map_err(unavailable("pruning the audit log"))?;
                let mut rows = oldest
                    .query([PRUNE_CHUNK])
                    .map_err(unavailable("pruning the audit log"))?;
                let mut seen = 0;
                while let Some(row) = rows.next().map_err(unavailable("pruning the audit log"))? {
                    seen += 1;
                    let corrupt = |reason: String| AuditError::Corrupt {
                        sequence: 0,
                        reason,
                    };
                    let seq = columns::integer(row, 0, "sequence").map_err(corrupt)?;
                    let recorded = columns::integer(row, 1, "recorded_at_ms").map_err(corrupt)?;
                    if recorded >= cutoff_ms {
                        whole_chunk = false;
                        break;
                    }
                    boundary = Some(seq);
                }
                if seen < PRUNE_CHUNK {
                    whole_chunk = false;
                }
            }
            let Some(boundary) = boundary else {
                return Ok(removed);
            };
            let deleted = tx
                .execute("DELETE FROM audit WHERE seq <= ?1", [boundary])
                .map_err(unavailable("pruning the audit log"))?;
            tx.commit().map_err(unavailable("pruning the audit log"))?;
            removed += deleted as u64;
            if !whole_chunk {
                return Ok(removed);
            }
        }
    }
}

/// Copies the journal file's rows above `audit`'s highest sequence into `audit`, in one
/// transaction on `conn` (the mover: the store's file, with the journal attached read-only as
/// `journal`); returns how many, and the highest sequence `audit` has held since. The journal
/// is read in a snapshot: rows committed to it meanwhile wait for the next move.
fn move_journal(conn: &mut rusqlite::Connection) -> rusqlite::Result<(usize, i64)> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let moved = tx
        .prepare_cached(
            "INSERT INTO main.audit (seq, host_id, record_id, time_ms, human_id, agent_id,
                                     server_id, tool, decision, recorded_at_ms, record)
             SELECT seq, host_id, record_id, time_ms, human_id, agent_id, server_id, tool,
                    decision, recorded_at_ms, record
             FROM journal.audit_journal
             WHERE seq > COALESCE((SELECT seq FROM main.sqlite_sequence WHERE name = 'audit'), 0)
             ORDER BY seq",
        )?
        .execute([])?;
    let through = tx
        .prepare_cached(
            "SELECT COALESCE((SELECT seq FROM main.sqlite_sequence WHERE name = 'audit'), 0)",
        )?
        .query_row([], |row| row.get(0))?;
    tx.commit()?;
    Ok((moved, through))
}

/// Moves every row of the store file's own `audit_journal` table, where builds before the
/// journal had a file of its own kept it, into `audit` in one transaction; returns how many.
/// A record id found in both would fail the insert and leave both tables as they were
/// (appends checked `audit` before journaling, under the same lock, so it cannot happen short
/// of a hand edit).
pub(crate) fn move_journal_table(conn: &mut rusqlite::Connection) -> rusqlite::Result<usize> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let moved = tx
        .prepare_cached(
            "INSERT INTO main.audit (seq, host_id, record_id, time_ms, human_id, agent_id,
                                     server_id, tool, decision, recorded_at_ms, record)
             SELECT seq, host_id, record_id, time_ms, human_id, agent_id, server_id, tool,
                    decision, recorded_at_ms, record
             FROM main.audit_journal ORDER BY seq",
        )?
        .execute([])?;
    tx.prepare_cached("DELETE FROM main.audit_journal")?
        .execute([])?;
    tx.commit()?;
    Ok(moved)
}

/// Why a batch did not commit.
#[derive(Debug, thiserror::Error)]
enum BatchError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("a stored audit sequence is unreadable: {0}")]
    Corrupt(String),
    #[error("the store was closed before the record was committed")]
    Closed,
}

/// How a page with time bounds is read (see the module header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TimePlan {
    /// No time bounds.
    Unbounded,
    /// Few records in the range: through `audit_by_time`, then sorted.
    TimeIndex,
    /// Many: in sequence order, the time only filtering (`+time_ms` keeps SQLite off the time
    /// index).
    SequenceOrder,
}

/// The SQL and parameters of one page. Only the filters that are set become conditions, so
/// SQLite can pick the index of an equality filter.
fn query_sql(
    filter: &AuditFilter,
    limit: usize,
    cursor: Option<AuditCursor>,
    plan: TimePlan,
) -> (String, Vec<Value>) {
    let (index, time) = match plan {
        TimePlan::Unbounded => ("", "time_ms"),
        TimePlan::TimeIndex => (" INDEXED BY audit_by_time", "time_ms"),
        TimePlan::SequenceOrder => ("", "+time_ms"),
    };
    // One condition list for both tables; `time` differs only in keeping `audit` off its
    // time index.
    let mut conditions = vec![(
        "host_id = ?".to_owned(),
        Value::Text(filter.host_id.clone()),
    )];
    if let Some(cursor) = cursor {
        // Sequences never exceed i64::MAX in SQLite; a larger cursor excludes nothing.
        let before = i64::try_from(cursor.before_sequence()).unwrap_or(i64::MAX);
        conditions.push(("seq < ?".to_owned(), Value::Integer(before)));
    }
    for (column, wanted) in [
        ("human_id", &filter.human_id),
        ("agent_id", &filter.agent_id),
        ("server_id", &filter.server_id),
        ("tool", &filter.tool),
    ] {
        if let Some(wanted) = wanted {
            conditions.push((format!("{column} = ?"), Value::Text(wanted.clone())));
        }
    }
    if let Some(decision) = filter.decision {
        conditions.push((
            "decision = ?".to_owned(),
            Value::Text(decision.as_str().to_owned()),
        ));
    }
    if let Some(since) = filter.since_ms {
        conditions.push((format!("{time} >= ?"), Value::Integer(since)));
    }
    if let Some(until) = filter.until_ms {
        conditions.push((format!("{time} <= ?"), Value::Integer(until)));
    }
    let clause = conditions
        .iter()
        .map(|(condition, _)| condition.as_str())
        .collect::<Vec<_>>()
        .join(" AND ");
    // The journal's rows are the newest; a compound ORDER BY merges the two ordered scans
    // and stops at the limit. The journal is small and read in sequence order (`NOT
    // INDEXED`: through its record-id index it would need a sort), above the rows a move
    // already put into `audit` (see the module header).
    let sql = format!(
        "SELECT seq, record_id, host_id, time_ms, human_id, agent_id, server_id, tool, decision,
                record
         FROM journal.audit_journal NOT INDEXED WHERE {clause}
             AND seq > COALESCE((SELECT seq FROM main.sqlite_sequence WHERE name = 'audit'), 0)
         UNION ALL
         SELECT seq, record_id, host_id, time_ms, human_id, agent_id, server_id, tool, decision,
                record
         FROM main.audit{index} WHERE {clause}
         ORDER BY seq DESC LIMIT ?"
    );
    let mut values: Vec<Value> = conditions.iter().map(|(_, v)| v.clone()).collect();
    values.extend(conditions.into_iter().map(|(_, v)| v));
    // `limit` is at most MAX_AUDIT_PAGE, validated before.
    values.push(Value::Integer(limit as i64 + 1));
    (sql, values)
}

/// An audit row, or `Corrupt` naming what is wrong with it.
fn decode_audit(row: &Row<'_>) -> Result<RecordedAudit, AuditError> {
    let sequence = columns::unsigned(row, 0, "sequence").map_err(|reason| AuditError::Corrupt {
        sequence: 0,
        reason,
    })?;
    let corrupt = |reason: String| AuditError::Corrupt { sequence, reason };
    let text = |index: usize, name: &str| -> Result<String, AuditError> {
        columns::text(row, index, name)
            .map(str::to_owned)
            .map_err(corrupt)
    };
    let decision = text(8, "decision")?;
    let decision = AuditDecision::parse(&decision).ok_or_else(|| {
        corrupt(format!(
            "decision {decision:?} is neither allowed nor denied"
        ))
    })?;
    let entry = AuditEntry {
        record_id: text(1, "record_id")?,
        host_id: text(2, "host_id")?,
        time_ms: columns::integer(row, 3, "time_ms").map_err(corrupt)?,
        human_id: text(4, "human_id")?,
        agent_id: text(5, "agent_id")?,
        server_id: text(6, "server_id")?,
        tool: text(7, "tool")?,
        decision,
        record: columns::blob(row, 9, "record").map_err(corrupt)?,
    };
    Ok(RecordedAudit { sequence, entry })
}

#[cfg(test)]
mod tests;
