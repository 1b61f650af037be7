//! Unit tests of what the contract suite cannot see on the SQLite audit log: group commit
//! batching, retention, migrating a version-1 file, and rows that cannot be read back.
//!
//! Must not: repeat what `tests/contract` proves for every backend.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed expectation is the report

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use portcullis_store::{AuditDecision, AuditEntry, AuditError, AuditFilter, AuditLog};

use crate::{AuditDurability, SqliteStore, StoreOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_share_commits_and_a_repeated_id_in_one_batch_is_a_duplicate() {
    for durability in [AuditDurability::PowerLoss, AuditDurability::ProcessCrash] {
        concurrent_appends_share_commits(durability).await;
    }
}

async fn concurrent_appends_share_commits(durability: AuditDurability) {
    let (_dir, path) = temp_store_path();
    let store = Arc::new(open_with(&path, durability).await);
    let tasks: Vec<_> = (0..300)
        .map(|i| {
            let store = store.clone();
            // Every tenth append repeats the id of the one before it.
            let id = if i % 10 == 9 { i - 1 } else { i };
            tokio::spawn(async move { store.append(entry("h1", &format!("r{id}"))).await })
        })
        .collect();
    let mut receipts = Vec::new();
    for task in tasks {
        receipts.push(task.await.unwrap().unwrap());
    }
    let fresh = receipts.iter().filter(|r| !r.duplicate).count();
    assert_eq!(fresh, 270);
    let page = store
        .query(AuditFilter::host("h1"), 500, None)
        .await
        .unwrap();
    assert_eq!(page.records.len(), 270);
    let commits = store
        .inner
        .audit
        .commits
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        commits < 100,
        "{commits} commits for 300 appends ({durability:?}): no group commit"
    );
    let mut sequences: Vec<u64> = receipts.iter().map(|r| r.sequence).collect();
    sequences.sort_unstable();
    sequences.dedup();
    assert_eq!(sequences.len(), 270);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_store_right_after_an_append_returns_releases_its_lock() {
    let (_dir, path) = temp_store_path();
    for i in 0..50 {
        let store = open(&path).await;
        store.append(entry("h1", &format!("r{i}"))).await.unwrap();
        // The flusher may still be winding down; it must not hold the store open.
        drop(store);
    }
    let store = open(&path).await;
    let page = store
        .query(AuditFilter::host("h1"), 100, None)
        .await
        .unwrap();
    assert_eq!(page.records.len(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_removes_only_the_oldest_records_stored_before_the_cutoff() {
    let (_dir, path) = temp_store_path();
    let store = open(&path).await;
    for i in 0..8 {
        store.append(entry("h1", &format!("r{i}"))).await.unwrap();
    }
    close(store).await;
    // Backdate the first five as if stored long ago; the sixth stays young, the seventh old
    // again: retention removes a prefix, so it must stop at the sixth.
    // Opening moved the journal into `audit`; the first store's last rows may have been
    // left in the journal, so plant the dates in both tables.
    raw(&path)
        .execute_batch(
            "UPDATE audit SET recorded_at_ms = 1000 WHERE seq <= 5 OR seq = 7;
             UPDATE journal.audit_journal SET recorded_at_ms = 1000 WHERE seq <= 5 OR seq = 7;",
        )
        .unwrap();
    let store = open(&path).await;
    assert_eq!(store.prune_audit_before(2000).await.unwrap(), 5);
    assert_eq!(store.prune_audit_before(2000).await.unwrap(), 0);
    let page = store
        .query(AuditFilter::host("h1"), 10, None)
        .await
        .unwrap();
    let ids: Vec<&str> = page
        .records
        .iter()
        .map(|r| r.entry.record_id.as_str())
        .collect();
    assert_eq!(ids, ["r7", "r6", "r5"]);
    // Sequences are never reused after a prune.
    let next = store.append(entry("h1", "r8")).await.unwrap();
    assert_eq!(next.sequence, 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_one_file_gains_the_audit_table() {
    let (_dir, path) = temp_store_path();
    drop(open(&path).await);
    {
        let conn = raw(&path);
        conn.execute_batch("DROP TABLE audit; DROP TABLE audit_journal; PRAGMA user_version = 1;")
            .unwrap();
    }
    let store = open(&path).await;
    let receipt = store.append(entry("h1", "r1")).await.unwrap();
    assert!(!receipt.duplicate);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_that_cannot_be_read_back_is_an_error_not_a_gap() {
    let (_dir, path) = temp_store_path();
    let store = open(&path).await;
    store.append(entry("h1", "r1")).await.unwrap();
    drop(store);
    // Opening the store moves the record into the indexed table; spoil it there first, then,
    // for a second record, in the journal.
    drop(open(&path).await);
    raw(&path)
        .execute("UPDATE audit SET decision = 'maybe' WHERE seq = 1", [])
        .unwrap();
    let store = open(&path).await;
    let err = store
        .query(AuditFilter::host("h1"), 10, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, AuditError::Corrupt { sequence: 1, .. }),
        "{err:?}"
    );
    raw(&path)
        .execute("UPDATE audit SET decision = 'allowed' WHERE seq = 1", [])
        .unwrap();
    store.append(entry("h1", "r2")).await.unwrap();
    raw(&path)
        .execute(
            "UPDATE journal.audit_journal SET decision = 'maybe' WHERE seq = 2",
            [],
        )
        .unwrap();
    let err = store
        .query(AuditFilter::host("h1"), 10, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, AuditError::Corrupt { sequence: 2, .. }),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journal_moves_into_the_indexed_table_without_changing_what_queries_see() {
    let (_dir, path) = temp_store_path();
    let store = open(&path).await;
    let journal_rows = |path: &Path| -> (i64, i64) {
        let conn = raw(path);
        let count = |table: &str| {
            conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| {
                row.get(0)
            })
            .unwrap()
        };
        (count("journal.audit_journal"), count("main.audit"))
    };
    let ids = |page: &portcullis_store::AuditPage| -> Vec<String> {
        page.records
            .iter()
            .map(|r| format!("{}:{}", r.sequence, r.entry.record_id))
            .collect()
    };
    // Below the threshold every record waits in the journal, and is queried from there.
    let threshold = super::MOVE_ROWS;
    for i in 0..threshold - 1 {
        store.append(entry("h1", &format!("r{i}"))).await.unwrap();
    }
    assert_eq!(journal_rows(&path), (threshold as i64 - 1, 0));
    let before = store
        .query(AuditFilter::host("h1"), 100, None)
        .await
        .unwrap();
    // A retried id in the journal is a duplicate with the stored sequence.
    let again = store.append(entry("h1", "r0")).await.unwrap();
    assert!(again.duplicate && again.sequence == 1, "{again:?}");
    // The append that reaches the threshold starts a move of the whole journal, after it is
    // answered. The journal forgets the moved rows only with the next append's commit;
    // meanwhile they are in both tables and every query counts them once.
    let last = format!("r{}", threshold - 1);
    store.append(entry("h1", &last)).await.unwrap();
    let moved = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while journal_rows(&path).1 == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(
        moved.is_ok(),
        "journal never moved: {:?}",
        journal_rows(&path)
    );
    assert_eq!(journal_rows(&path), (threshold as i64, threshold as i64));
    let after = store
        .query(AuditFilter::host("h1"), 100, None)
        .await
        .unwrap();
    assert_eq!(
        ids(&after)[1..],
        ids(&before)[..],
        "same records, same sequences"
    );
    assert_eq!(ids(&after)[0], format!("{threshold}:{last}"));
    // A retried id in the indexed table is a duplicate too; a new one takes the next sequence
    // and is seen first, across both tables, with cursors paging through both.
    let again = store.append(entry("h1", "r1")).await.unwrap();
    assert!(again.duplicate && again.sequence == 2, "{again:?}");
    assert_eq!(journal_rows(&path), (0, threshold as i64), "collected");
    let fresh = store.append(entry("h1", "new")).await.unwrap();
    assert_eq!(fresh.sequence, threshold as u64 + 1);
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .query(AuditFilter::host("h1"), 2, cursor)
            .await
            .unwrap();
        seen.extend(ids(&page));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let mut expected = vec![format!("{}:new", threshold + 1)];
    expected.extend(ids(&after));
    assert_eq!(seen, expected);
    // Closing with rows in the journal loses nothing: the next open moves them.
    drop(store);
    assert_eq!(journal_rows(&path), (1, threshold as i64));
    let store = open(&path).await;
    assert_eq!(journal_rows(&path), (0, threshold as i64 + 1));
    let page = store
        .query(AuditFilter::host("h1"), 100, None)
        .await
        .unwrap();
    assert_eq!(ids(&page), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequences_stay_above_pruned_and_moved_records() {
    let (_dir, path) = temp_store_path();
    let store = open(&path).await;
    for i in 0..3 {
        store.append(entry("h1", &format!("r{i}"))).await.unwrap();
    }
    // Prune moves the journal first, then removes everything: the next sequence still goes
    // on from 3, not from 1.
    assert_eq!(store.prune_audit_before(i64::MAX).await.unwrap(), 3);
    let next = store.append(entry("h1", "r3")).await.unwrap();
    assert_eq!(next.sequence, 4);
    drop(store);
    let store = open(&path).await;
    let next = store.append(entry("h1", "r4")).await.unwrap();
    assert_eq!(next.sequence, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_two_file_gains_the_journal_and_keeps_its_records() {
    let (_dir, path) = temp_store_path();
    let store = open(&path).await;
    store.append(entry("h1", "r1")).await.unwrap();
    drop(store);
    {
        let conn = raw(&path);
        conn.execute_batch(
            "INSERT INTO audit SELECT * FROM audit_journal; DELETE FROM audit_journal;
             DROP TABLE audit_journal; PRAGMA user_version = 2;",
        )
        .unwrap();
    }
    let store = open(&path).await;
    let duplicate = store.append(entry("h1", "r1")).await.unwrap();
    assert!(duplicate.duplicate && duplicate.sequence == 1);
    let fresh = store.append(entry("h1", "r2")).await.unwrap();
    assert!(!fresh.duplicate && fresh.sequence == 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wide_time_range_is_read_in_sequence_order_and_a_narrow_one_by_time() {
    let (_dir, path) = temp_store_path();
    let store = Arc::new(open(&path).await);
    // 5000 records one millisecond apart, appended concurrently in ten runs (so their
    // sequences are not in time order).
    let total = 5000;
    for run in 0..10 {
        let tasks: Vec<_> = (0..total / 10)
            .map(|i| {
                let store = store.clone();
                let n = run * (total / 10) + i;
                tokio::spawn(async move {
                    let mut e = entry("h1", &format!("r{n}"));
                    e.time_ms = 1_000_000 + n as i64;
                    store.append(e).await
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
    }
    for (since, until, expected) in [
        (Some(1_000_000), None, total),         // wide: sequence order
        (Some(1_004_990), None, 10),            // narrow: the time index
        (Some(1_000_100), Some(1_000_109), 10), // narrow and old
        (None, Some(1_004_500), 4501),          // wide, bounded above
    ] {
        let filter = AuditFilter {
            since_ms: since,
            until_ms: until,
            ..AuditFilter::host("h1")
        };
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = store.query(filter.clone(), 500, cursor).await.unwrap();
            seen.extend(page.records);
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(seen.len(), expected, "{filter:?}");
        assert!(seen.windows(2).all(|w| w[0].sequence > w[1].sequence));
        assert!(seen.iter().all(|r| filter.matches(&r.entry)));
    }

    // The plans themselves, as SQLite reports them.
    let conn = raw(&path);
    let plan_of = |plan: super::TimePlan| {
        let filter = AuditFilter {
            since_ms: Some(1),
            ..AuditFilter::host("h1")
        };
        let (sql, values) = super::query_sql(&filter, 50, None, plan);
        let mut explain = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows = explain
            .query_map(rusqlite::params_from_iter(values), |row| {
                row.get::<_, String>(3)
            })
            .unwrap();
        rows.map(Result::unwrap).collect::<Vec<_>>().join("; ")
    };
    let by_time = plan_of(super::TimePlan::TimeIndex);
    assert!(by_time.contains("audit_by_time"), "{by_time}");
    let by_sequence = plan_of(super::TimePlan::SequenceOrder);
    assert!(
        !by_sequence.contains("audit_by_time") && !by_sequence.contains("TEMP B-TREE"),
        "{by_sequence}"
    );
}

// ---------------------------------------------------------------------------------------

fn entry(host: &str, record_id: &str) -> AuditEntry {
    AuditEntry {
        record_id: record_id.to_owned(),
        host_id: host.to_owned(),
        time_ms: 1_760_000_000_000,
        human_id: "u1".to_owned(),
        agent_id: "a1".to_owned(),
        server_id: "s1".to_owned(),
        tool: "read_file".to_owned(),
        decision: AuditDecision::Allowed,
        record: Bytes::from_static(b"record"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_write_only_the_journal_file_which_alone_is_relaxed_when_it_need_survive_only_the_process()
 {
    // SQLite's numbers: 1 is NORMAL, 2 is FULL; a temp_store of 2 is MEMORY.
    let pragma = |conn: &rusqlite::Connection, name: &str| -> i64 {
        conn.pragma_query_value(None, name, |row| row.get(0))
            .unwrap()
    };
    for (durability, audit_level) in [
        (AuditDurability::PowerLoss, 2),
        (AuditDurability::ProcessCrash, 1),
    ] {
        let (_dir, path) = temp_store_path();
        let options = StoreOptions::default().with_audit_durability(durability);
        let store = tokio::task::spawn_blocking({
            let path = path.clone();
            move || SqliteStore::open_with(&path, options)
        })
        .await
        .unwrap()
        .unwrap();
        // Rows each connection has written so far.
        let changes = |store: &SqliteStore| {
            let writer = store.inner.lock_writer();
            let journal = store.inner.lock_journal();
            (
                writer.conn.total_changes(),
                writer.mover.total_changes(),
                journal.total_changes(),
            )
        };
        let (events, mover, journal) = changes(&store);
        let receipt = store.append(entry("h1", "r1")).await.unwrap();
        assert!(!receipt.duplicate);
        {
            let writer = store.inner.lock_writer();
            let journal = store.inner.lock_journal();
            assert_eq!(
                pragma(&writer.conn, "synchronous"),
                2,
                "{durability:?}: events stay fsynced"
            );
            assert_eq!(
                pragma(&writer.mover, "synchronous"),
                2,
                "{durability:?}: a move is fsynced before the journal forgets its rows"
            );
            assert_eq!(
                pragma(&journal, "synchronous"),
                audit_level,
                "{durability:?}"
            );
            for conn in [&writer.conn, &writer.mover, &*journal] {
                assert_eq!(pragma(conn, "temp_store"), 2, "{durability:?}");
            }
            let journal_file = crate::schema::journal_path(&path);
            assert_eq!(journal.path(), journal_file.to_str(), "{durability:?}");
        }
        assert_eq!(
            changes(&store),
            (events, mover, journal + 1),
            "{durability:?}: the append wrote the journal's file only"
        );
        // A move writes the store's file through the mover; the next append's commit
        // deletes the moved row from the journal.
        let inner = store.inner.clone();
        let moved = tokio::task::spawn_blocking(move || inner.move_audit_journal(1))
            .await
            .unwrap()
            .expect("the journal moves");
        assert_eq!(moved, 1, "{durability:?}");
        assert_eq!(
            changes(&store),
            (events, mover + 1, journal + 1),
            "{durability:?}"
        );
        store.append(entry("h1", "r2")).await.unwrap();
        assert_eq!(
            changes(&store),
            (events, mover + 1, journal + 3),
            "{durability:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_and_queries_go_on_while_the_store_file_is_locked_by_a_move() {
    let (_dir, path) = temp_store_path();
    let store = open(&path).await;
    // Hold the store file's writer as a long move (or an event's commit) would.
    let writer = WriterHeld::take(&store);
    let total = 2 * super::MOVE_ROWS;
    for i in 0..total {
        let receipt = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            store.append(entry("h1", &format!("r{i}"))),
        )
        .await
        .expect("an append waited for the store file's writer")
        .unwrap();
        assert_eq!(receipt.sequence, i as u64 + 1);
    }
    let page = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        store.query(AuditFilter::host("h1"), 100, None),
    )
    .await
    .expect("a query waited for the store file's writer")
    .unwrap();
    assert_eq!(page.records.len(), total);
    // The move that became due has waited for the writer; once it is free, it runs.
    assert_eq!(count(&path, "main.audit"), 0);
    writer.release();
    let moved = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while count(&path, "main.audit") == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(moved.is_ok(), "the due move never ran");
    let page = store
        .query(AuditFilter::host("h1"), 100, None)
        .await
        .unwrap();
    let sequences: Vec<u64> = page.records.iter().map(|r| r.sequence).collect();
    let expected: Vec<u64> = (1..=total as u64).rev().collect();
    assert_eq!(sequences, expected, "every record once, newest first");
    close(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_wait_for_a_move_once_the_journal_is_too_far_behind() {
    // With `ProcessCrash` the append that reaches the limit commits on its own thread and
    // hands the move to the blocking flusher; the next append must still wait for it.
    for durability in [AuditDurability::PowerLoss, AuditDurability::ProcessCrash] {
        appends_wait_for_a_move(durability).await;
    }
}

async fn appends_wait_for_a_move(durability: AuditDurability) {
    let (_dir, path) = temp_store_path();
    let store = open_with(&path, durability).await;
    let writer = WriterHeld::take(&store);
    let limit = usize::try_from(super::MAX_UNMOVED).unwrap();
    for i in 0..limit {
        store.append(entry("h1", &format!("r{i}"))).await.unwrap();
    }
    // The flusher now waits for the writer to move the journal itself, and the next append
    // waits for it.
    let next = tokio::spawn({
        let store = store.clone();
        async move { store.append(entry("h1", "next")).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !next.is_finished(),
        "an append went on past the limit ({durability:?})"
    );
    writer.release();
    let receipt = tokio::time::timeout(std::time::Duration::from_secs(10), next)
        .await
        .expect("the append waited on after the move")
        .unwrap()
        .unwrap();
    assert_eq!(receipt.sequence, limit as u64 + 1);
    // Moved before it committed (a move started earlier may have taken it along too).
    assert!(count(&path, "main.audit") >= i64::try_from(limit).unwrap());
    close(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_a_move_copied_but_the_journal_kept_are_read_once_and_forgotten_at_open() {
    let (_dir, path) = temp_store_path();
    let store = open(&path).await;
    for i in 0..3 {
        store.append(entry("h1", &format!("r{i}"))).await.unwrap();
    }
    let inner = store.inner.clone();
    let moved = tokio::task::spawn_blocking(move || inner.move_audit_journal(0))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(moved, 3);
    // As a crash right after a move leaves them: in both tables.
    assert_eq!(
        (
            count(&path, "journal.audit_journal"),
            count(&path, "main.audit")
        ),
        (3, 3)
    );
    let sequences = |page: portcullis_store::AuditPage| -> Vec<u64> {
        page.records.iter().map(|r| r.sequence).collect()
    };
    let page = store
        .query(AuditFilter::host("h1"), 100, None)
        .await
        .unwrap();
    assert_eq!(sequences(page), [3, 2, 1]);
    let cursor = portcullis_store::AuditCursor::before(3);
    let page = store
        .query(AuditFilter::host("h1"), 1, Some(cursor))
        .await
        .unwrap();
    assert!(page.next.is_some());
    assert_eq!(sequences(page), [2]);
    close(store).await;
    assert_eq!(
        (
            count(&path, "journal.audit_journal"),
            count(&path, "main.audit")
        ),
        (3, 3)
    );
    let store = open(&path).await;
    assert_eq!(
        (
            count(&path, "journal.audit_journal"),
            count(&path, "main.audit")
        ),
        (0, 3),
        "opening forgets the moved rows"
    );
    let page = store
        .query(AuditFilter::host("h1"), 100, None)
        .await
        .unwrap();
    assert_eq!(sequences(page), [3, 2, 1]);
    let again = store.append(entry("h1", "r1")).await.unwrap();
    assert!(again.duplicate && again.sequence == 2, "{again:?}");
    assert_eq!(store.append(entry("h1", "r3")).await.unwrap().sequence, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_rows_an_older_build_left_in_the_store_file_move_into_the_indexed_table() {
    let (_dir, path) = temp_store_path();
    close(open(&path).await).await;
    // Before the journal had a file of its own, it was this table of the store's file.
    raw(&path)
        .execute(
            "INSERT INTO main.audit_journal (seq, host_id, record_id, time_ms, human_id,
                 agent_id, server_id, tool, decision, recorded_at_ms, record)
             VALUES (1, 'h1', 'r1', 1760000000000, 'u1', 'a1', 's1', 'read_file', 'allowed',
                     1760000000000, X'00')",
            [],
        )
        .unwrap();
    let store = open(&path).await;
    assert_eq!(count(&path, "main.audit_journal"), 0);
    assert_eq!(count(&path, "main.audit"), 1);
    let page = store
        .query(AuditFilter::host("h1"), 10, None)
        .await
        .unwrap();
    assert_eq!(page.records.len(), 1);
    assert_eq!(page.records[0].entry.record_id, "r1");
    let again = store.append(entry("h1", "r1")).await.unwrap();
    assert!(again.duplicate && again.sequence == 1, "{again:?}");
    assert_eq!(store.append(entry("h1", "r2")).await.unwrap().sequence, 2);
}

/// Rows in `table` of a store's files (`main.` or `journal.`), read beside the store.
#[test]
fn a_lone_append_that_need_survive_only_the_process_commits_without_a_blocking_thread() {
    for durability in [AuditDurability::ProcessCrash, AuditDurability::PowerLoss] {
        let (_dir, path) = temp_store_path();
        // Opened before the runtime's one blocking thread is taken.
        let store = open_now(&path, durability);
        let (runtime, release) = runtime_with_its_blocking_thread_taken(false);
        let append = runtime.spawn({
            let store = store.clone();
            async move { store.append(entry("h1", "r1")).await }
        });
        let done = runtime.block_on(async {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            append.is_finished()
        });
        // An fsynced commit never runs on an async thread; one without an fsync does.
        assert_eq!(
            done,
            durability == AuditDurability::ProcessCrash,
            "{durability:?}"
        );
        release.send(()).unwrap();
        let receipt = runtime
            .block_on(async {
                tokio::time::timeout(std::time::Duration::from_secs(10), append).await
            })
            .expect("the append finished once a blocking thread was free")
            .unwrap()
            .unwrap();
        assert_eq!(receipt.sequence, 1);
        drop(store);
        runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    }
}

#[test]
fn appends_queued_behind_an_inline_commit_are_committed_by_the_blocking_flusher() {
    let (_dir, path) = temp_store_path();
    let store = open_now(&path, AuditDurability::ProcessCrash);
    let (runtime, release) = runtime_with_its_blocking_thread_taken(true);
    // Two workers appending at once: some appends queue while another commits on its own
    // thread, and are left to the flusher, which cannot start until the thread is free.
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let store = store.clone();
            runtime.spawn(async move { store.append(entry("h1", &format!("r{i}"))).await })
        })
        .collect();
    runtime.block_on(async { tokio::time::sleep(std::time::Duration::from_millis(300)).await });
    release.send(()).unwrap();
    let receipts = runtime.block_on(async {
        let mut receipts = Vec::new();
        for task in tasks {
            let receipt = tokio::time::timeout(std::time::Duration::from_secs(10), task)
                .await
                .expect("every append is committed")
                .unwrap()
                .unwrap();
            receipts.push(receipt.sequence);
        }
        receipts
    });
    let mut sequences = receipts;
    sequences.sort_unstable();
    assert_eq!(sequences, (1..=200).collect::<Vec<u64>>());
    let page = runtime
        .block_on(store.query(AuditFilter::host("h1"), 500, None))
        .unwrap();
    assert_eq!(page.records.len(), 200);
    drop(store);
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
}

#[test]
fn appends_runnable_beside_an_idle_queues_first_share_its_inline_commit() {
    let (_dir, path) = temp_store_path();
    let store = open_now(&path, AuditDurability::ProcessCrash);
    // One worker, no free blocking thread: every commit here is inline.
    let (runtime, release) = runtime_with_its_blocking_thread_taken(false);
    let before = store
        .inner
        .audit
        .commits
        .load(std::sync::atomic::Ordering::Relaxed);
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let store = store.clone();
            runtime.spawn(async move { store.append(entry("h1", &format!("r{i}"))).await })
        })
        .collect();
    let sequences = runtime.block_on(async {
        let mut sequences = Vec::new();
        for task in tasks {
            let receipt = tokio::time::timeout(std::time::Duration::from_secs(5), task)
                .await
                .expect("committed without the blocking thread")
                .unwrap()
                .unwrap();
            sequences.push(receipt.sequence);
        }
        sequences
    });
    assert_eq!(sequences, (1..=10).collect::<Vec<u64>>());
    let commits = store
        .inner
        .audit
        .commits
        .load(std::sync::atomic::Ordering::Relaxed)
        - before;
    assert_eq!(commits, 1, "the ten runnable appends rode one commit");
    release.send(()).unwrap();
    drop(store);
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
}

#[test]
fn an_append_dropped_before_its_inline_commit_hands_the_queue_to_the_flusher() {
    let (_dir, path) = temp_store_path();
    let store = open_now(&path, AuditDurability::ProcessCrash);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let behind = runtime.block_on(async {
        // The first append finds the queue idle and gives way to what else is runnable...
        let mut first = Box::pin(store.append(entry("h1", "dropped")));
        let polled = poll_once(first.as_mut()).await;
        assert!(polled.is_pending(), "the first append waits for its batch");
        // ...an append queues behind it...
        let behind = tokio::spawn({
            let store = store.clone();
            async move { store.append(entry("h1", "behind")).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        // ...and the first one's caller gives up before it committed.
        drop(first);
        tokio::time::timeout(std::time::Duration::from_secs(5), behind)
            .await
            .expect("the append behind it is committed by the flusher")
            .unwrap()
            .unwrap()
    });
    assert_eq!(behind.sequence, 2);
    let page = runtime
        .block_on(store.query(AuditFilter::host("h1"), 10, None))
        .unwrap();
    // The dropped append's record was queued, so it is committed too.
    assert_eq!(page.records.len(), 2);
    drop(store);
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
}

#[test]
fn an_append_dropped_outside_any_runtime_still_hands_the_queue_over() {
    let (_dir, path) = temp_store_path();
    let store = open_now(&path, AuditDurability::ProcessCrash);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut first = Box::pin(store.append(entry("h1", "dropped")));
    let polled = runtime.block_on(poll_once(first.as_mut()));
    assert!(polled.is_pending(), "the first append waits for its batch");
    // Outside `block_on`: no runtime is current on this thread.
    drop(first);
    let next = runtime
        .block_on(async {
            tokio::time::timeout(
                std::time::Duration::from_secs(5),
                store.append(entry("h1", "next")),
            )
            .await
        })
        .expect("the queue was handed over, not left flushing")
        .unwrap();
    assert_eq!(next.sequence, 2);
    drop(store);
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
}

fn count(path: &Path, table: &str) -> i64 {
    raw(path)
        .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| {
            row.get(0)
        })
        .unwrap()
}

fn temp_store_path() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sqlite");
    (dir, path)
}

/// The store file's writer mutex, held by a thread of its own until `release`.
struct WriterHeld {
    release: std::sync::mpsc::Sender<()>,
    holder: std::thread::JoinHandle<()>,
}

impl WriterHeld {
    /// Returns once the writer is held.
    fn take(store: &SqliteStore) -> WriterHeld {
        let (held, is_held) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let inner = store.inner.clone();
        let holder = std::thread::spawn(move || {
            let _writer = inner.lock_writer();
            held.send(()).unwrap();
            let _ = released.recv();
        });
        is_held.recv().unwrap();
        WriterHeld { release, holder }
    }

    fn release(self) {
        self.release.send(()).unwrap();
        self.holder.join().unwrap();
    }
}

/// Drops `store` once no journal move holds it, so it is closed when this returns.
async fn close(store: SqliteStore) {
    while store
        .inner
        .audit
        .moving
        .load(std::sync::atomic::Ordering::Acquire)
    {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    drop(store);
}

async fn open(path: &Path) -> SqliteStore {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || SqliteStore::open(&path))
        .await
        .unwrap()
        .unwrap()
}

async fn open_with(path: &Path, durability: AuditDurability) -> SqliteStore {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || open_now(&path, durability))
        .await
        .unwrap()
}

/// Opens the store at `path` on this thread (outside a runtime, or before its blocking
/// threads are taken).
fn open_now(path: &Path, durability: AuditDurability) -> SqliteStore {
    SqliteStore::open_with(
        path,
        StoreOptions::default().with_audit_durability(durability),
    )
    .unwrap()
}

/// Polls `future` once and says how it went, leaving it to be dropped or polled again.
async fn poll_once<F: Future>(future: std::pin::Pin<&mut F>) -> std::task::Poll<F::Output> {
    let mut future = future;
    std::future::poll_fn(|cx| std::task::Poll::Ready(future.as_mut().poll(cx))).await
}

/// A runtime whose only blocking thread is taken until the returned sender is dropped or sent
/// to, so a commit handed to a blocking thread cannot run meanwhile.
fn runtime_with_its_blocking_thread_taken(
    flavor_multi_thread: bool,
) -> (tokio::runtime::Runtime, std::sync::mpsc::Sender<()>) {
    let mut builder = if flavor_multi_thread {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(2);
        builder
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    let runtime = builder
        .max_blocking_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (taken, is_taken) = std::sync::mpsc::channel();
    drop(runtime.spawn_blocking(move || {
        taken.send(()).unwrap();
        let _ = released.recv();
    }));
    is_taken.recv().unwrap();
    (runtime, release)
}

/// A plain connection to a closed store, to plant what a bug or a hand edit could leave, with
/// the audit journal's file attached as `journal`.
fn raw(path: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).unwrap();
    let journal = crate::schema::journal_path(path);
    conn.execute("ATTACH DATABASE ?1 AS journal", [journal.to_str().unwrap()])
        .unwrap();
    conn
}

#[test]
fn a_move_lowers_the_priority_of_its_own_thread_only() {
    let priority = || rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap();
    let before = priority();
    let mover = std::thread::spawn(move || {
        super::yield_to_appends();
        priority()
    })
    .join()
    .unwrap();
    assert_eq!(mover, super::MOVE_NICE.max(before));
    assert_eq!(
        priority(),
        before,
        "the rest of the process keeps its priority"
    );
}
