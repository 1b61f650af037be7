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
    let (_dir, path) = temp_store_path();
    let store = Arc::new(open(&path).await);
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
        "{commits} commits for 300 appends: no group commit"
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
    drop(store);
    // Backdate the first five as if stored long ago; the sixth stays young, the seventh old
    // again: retention removes a prefix, so it must stop at the sixth.
    // Opening moved the journal into `audit`; the first store's last rows may have been
    // left in the journal, so plant the dates in both tables.
    raw(&path)
        .execute_batch(
            "UPDATE audit SET recorded_at_ms = 1000 WHERE seq <= 5 OR seq = 7;
             UPDATE audit_journal SET recorded_at_ms = 1000 WHERE seq <= 5 OR seq = 7;",
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
            "UPDATE audit_journal SET decision = 'maybe' WHERE seq = 2",
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
        (count("audit_journal"), count("audit"))
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
    // The append that reaches the threshold moves the whole journal, after it is answered.
    let last = format!("r{}", threshold - 1);
    store.append(entry("h1", &last)).await.unwrap();
    let moved = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while journal_rows(&path).0 != 0 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(
        moved.is_ok(),
        "journal never moved: {:?}",
        journal_rows(&path)
    );
    assert_eq!(journal_rows(&path), (0, threshold as i64));
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
async fn only_the_audit_log_is_relaxed_when_it_need_survive_only_the_process() {
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
        let store = tokio::task::spawn_blocking(move || SqliteStore::open_with(&path, options))
            .await
            .unwrap()
            .unwrap();
        let (events_before, moves_before) = {
            let mut writer = store.inner.lock_writer();
            (
                writer.conn.total_changes(),
                writer.move_conn().total_changes(),
            )
        };
        let receipt = store.append(entry("h1", "r1")).await.unwrap();
        assert!(!receipt.duplicate);
        {
            let mut writer = store.inner.lock_writer();
            assert_eq!(
                pragma(&writer.conn, "synchronous"),
                2,
                "{durability:?}: events stay fsynced"
            );
            assert_eq!(
                pragma(writer.audit_conn(), "synchronous"),
                audit_level,
                "{durability:?}"
            );
            assert_eq!(
                pragma(writer.move_conn(), "synchronous"),
                1,
                "{durability:?}"
            );
            assert_eq!(pragma(&writer.conn, "temp_store"), 2, "{durability:?}");
            assert_eq!(
                pragma(writer.move_conn(), "temp_store"),
                2,
                "{durability:?}"
            );
            // Rows written by each connection: the append went through the audit connection.
            let by_writer = writer.conn.total_changes() - events_before;
            let expected = if durability == AuditDurability::ProcessCrash {
                0
            } else {
                1
            };
            assert_eq!(by_writer, expected, "{durability:?}");
            assert!(writer.audit_conn().total_changes() >= 1, "{durability:?}");
        }
        // A move goes through the relaxed connection whatever the durability: one insert
        // into `audit` and one delete from the journal per row, and nothing on the writer's.
        let events_before = store.inner.lock_writer().conn.total_changes();
        let moved = store
            .inner
            .move_audit_journal(1)
            .expect("the journal moves");
        assert_eq!(moved, 1, "{durability:?}");
        let mut writer = store.inner.lock_writer();
        assert_eq!(
            writer.conn.total_changes(),
            events_before,
            "{durability:?}: the fsynced writer moved nothing"
        );
        let by_mover = writer.move_conn().total_changes() - moves_before;
        let appended_there = u64::from(durability == AuditDurability::ProcessCrash);
        assert_eq!(by_mover, 2 + appended_there, "{durability:?}");
    }
}

fn temp_store_path() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sqlite");
    (dir, path)
}

async fn open(path: &Path) -> SqliteStore {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || SqliteStore::open(&path))
        .await
        .unwrap()
        .unwrap()
}

/// A plain connection to a closed store, to plant what a bug or a hand edit could leave.
fn raw(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap()
}
